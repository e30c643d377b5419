// Peer authentication: both ends prove they hold the shared cluster secret with an
// HMAC-SHA256 challenge-response at connect, without ever sending the secret.
//
//   client -> server   client_id, client_nonce
//   server -> client   server_id, server_nonce,
//                      prove(secret, "server", server_nonce, client_nonce, server_id)
//   client -> server   prove(secret, "client", client_nonce, server_nonce, client_id)
//
// Each side checks the other's proof with verify() before sending anything else.
// Fresh nonces from both sides stop replay of an old proof; the role string stops
// an attacker from reflecting the server's own proof back to it as a client's (or
// opening a second connection to have a node answer its own challenge). This
// authenticates the connection's start only; it does not encrypt or protect later
// bytes against an on-path attacker.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace dc {

inline constexpr size_t kAuthNonceSize = 32;
inline constexpr size_t kAuthProofSize = 32;
inline constexpr size_t kMaxSecretSize = 4096;
inline constexpr std::string_view kAuthRoleClient = "client";
inline constexpr std::string_view kAuthRoleServer = "server";

using AuthProof = std::array<uint8_t, kAuthProofSize>;

// Reads the cluster secret. Refuses a file that is not a regular file, is empty, is
// larger than kMaxSecretSize, or is readable or writable by group or others
// (mode & 077). Trailing '\n' / '\r' are dropped so `echo`-made files agree with
// ones written without a newline. Errors name the file.
Result<std::string> load_secret(const std::string& path);

// 32 bytes from the kernel CSPRNG (getrandom). Aborts if no randomness can be had:
// a predictable nonce would make authentication replayable.
void random_nonce(uint8_t out[kAuthNonceSize]);

// The proof a party in `role` sends: HMAC-SHA256 keyed with the secret over the
// fields "dc-peer-auth-v1", role, my_nonce, their_nonce, my_id, each preceded by its
// length as a little-endian uint32 (so no two field lists share an encoding).
AuthProof prove(const std::string& secret, std::string_view role,
                const uint8_t my_nonce[kAuthNonceSize], const uint8_t their_nonce[kAuthNonceSize],
                std::string_view my_id);

// Checks a proof received from the peer, with the arguments as the prover passed
// them to prove(): the peer's role, the peer's nonce, our nonce, the peer's id.
// Constant-time comparison.
bool verify(const std::string& secret, std::string_view prover_role,
            const uint8_t prover_nonce[kAuthNonceSize],
            const uint8_t verifier_nonce[kAuthNonceSize], std::string_view prover_id,
            const AuthProof& proof);

}  // namespace dc
