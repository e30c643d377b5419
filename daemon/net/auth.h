// Peer authentication: both ends prove they hold the shared cluster secret with an
// HMAC-SHA256 challenge-response at connect, without ever sending the secret, and
// derive the connection's session keys from it.
//
//   client -> server   client_id, client_nonce, integrity
//   server -> client   server_id, server_nonce, integrity,
//                      prove(secret, "server", server_nonce, client_nonce, server_id,
//                            client_id, integrity)
//   client -> server   prove(secret, "client", client_nonce, server_nonce, client_id,
//                            server_id, integrity)
//   both               derive_session_keys(secret, client/server nonce and id, integrity)
//
// Each side checks the other's proof with verify() before sending anything else.
// Fresh nonces from both sides stop replay of an old proof; the role string stops
// an attacker from reflecting the server's own proof back to it as a client's (or
// opening a second connection to have a node answer its own challenge); binding the
// other side's id and the integrity mode stops a relay from altering them. The
// proofs authenticate the connection's start; the session keys (one per direction)
// authenticate every frame after it (daemon/net/frame_seal.h).
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
inline constexpr size_t kSessionKeySize = 16;  // AES-128

using AuthProof = std::array<uint8_t, kAuthProofSize>;
using SessionKey = std::array<uint8_t, kSessionKeySize>;

// The two keys of one connection: what the client sends is sealed with
// client_to_server, what the server sends with server_to_client. Distinct keys per
// direction: a frame reflected back to its sender does not open.
struct SessionKeys {
  SessionKey client_to_server{};
  SessionKey server_to_client{};
};

// Reads the cluster secret. Refuses a file that is not a regular file, is empty, is
// larger than kMaxSecretSize, or is readable or writable by group or others
// (mode & 077). Trailing '\n' / '\r' are dropped so `echo`-made files agree with
// ones written without a newline. Errors name the file.
Result<std::string> load_secret(const std::string& path);

// 32 bytes from the kernel CSPRNG (getrandom). Aborts if no randomness can be had:
// a predictable nonce would make authentication replayable.
void random_nonce(uint8_t out[kAuthNonceSize]);

// The proof a party in `role` sends: HMAC-SHA256 keyed with the secret over the
// fields "dc-peer-auth-v2", role, my_nonce, their_nonce, my_id, their_id,
// integrity (one byte, peer::Integrity), each preceded by its length as a
// little-endian uint32 (so no two field lists share an encoding).
AuthProof prove(const std::string& secret, std::string_view role,
                const uint8_t my_nonce[kAuthNonceSize], const uint8_t their_nonce[kAuthNonceSize],
                std::string_view my_id, std::string_view their_id, uint8_t integrity);

// Checks a proof received from the peer, with the arguments as the prover passed
// them to prove(): the peer's role, the peer's nonce, our nonce, the peer's id, our
// id, the integrity. Constant-time comparison.
bool verify(const std::string& secret, std::string_view prover_role,
            const uint8_t prover_nonce[kAuthNonceSize],
            const uint8_t verifier_nonce[kAuthNonceSize], std::string_view prover_id,
            std::string_view verifier_id, uint8_t integrity, const AuthProof& proof);

// HKDF-SHA256 (RFC 5869) with the secret as input key material, salt = client
// nonce | server nonce, info = "dc-peer-keys-v2" | direction | client id | server
// id | integrity (length-prefixed as in prove()). Both ends compute the same pair;
// any other nonce, id, role or mode gives unrelated keys. Error only if OpenSSL
// fails (then the connection must not go on).
Result<SessionKeys> derive_session_keys(const std::string& secret,
                                        const uint8_t client_nonce[kAuthNonceSize],
                                        const uint8_t server_nonce[kAuthNonceSize],
                                        std::string_view client_id, std::string_view server_id,
                                        uint8_t integrity);

}  // namespace dc
