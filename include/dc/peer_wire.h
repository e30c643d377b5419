// Peer protocol between dcagents, over TCP: one versioned header per message,
// followed by `body_len` bytes of body.
//
//   client                                   server (the block's owner)
//   Hello{id, nonce_c}              ─────►
//                                   ◄─────   Challenge{id, nonce_s, proof_s}
//   Auth{proof_c}                   ─────►
//                                   ◄─────   AuthOk
//   Fetch{req id, key, block, range, dataset, path} ...  (many in flight)
//                                   ◄─────   FetchReply{req id, status, crc} + data
//
// proof_x = HMAC-SHA256(cluster secret, role | own nonce | other nonce | own id)
// (daemon/net/auth.h): each side proves it knows the secret for this connection.
// Nothing but Hello and Auth is accepted before AuthOk.
//
// Integrity: every header carries a CRC32C of itself; every body carries a
// CRC32C in the header. For block data the owner combines the CRCs it keeps per
// 32 KiB segment (no second pass over the bytes); the receiver verifies once.
//
// Rules for growth: opcodes and status codes are numbered explicitly and never
// reused. A message that needs new fields gets a new opcode; `version` changes
// only for an incompatible header. Sizes are pinned by static_assert here and by
// tests/unit/arena_abi_test.cc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace dc::peer {

inline constexpr uint32_t kMagic = 0x31504344;  // "DCP1"
inline constexpr uint16_t kVersion = 1;
inline constexpr uint32_t kMaxControlBody = 8192;      // any body but block data
inline constexpr uint32_t kMaxDataBody = 64u << 20;    // largest block, 64 MiB
inline constexpr uint32_t kNonceBytes = 32;
inline constexpr uint32_t kProofBytes = 32;
inline constexpr uint32_t kMaxNodeId = 64;

enum class Op : uint16_t {
  kHello = 1,
  kChallenge = 2,
  kAuth = 3,
  kAuthOk = 4,
  kFetch = 5,
  kFetchReply = 6,
  kPing = 7,
  kPong = 8,
};

enum class Status : int32_t {
  kOk = 0,
  kBadRequest = 1,
  kNotFound = 2,
  kStale = 3,        // the owner sees another version of the file
  kIoError = 4,
  kOutsideDataset = 5,
  kNotOwner = 6,     // answering would wait on a copy this node is fetching from a peer (no wait cycle): read the origin
  kBusy = 7,
  kUnknownDataset = 8,
};

struct Header {
  uint32_t magic;
  uint16_t version;
  uint16_t op;
  uint32_t request_id;
  uint32_t body_len;
  uint32_t body_crc;    // CRC32C of the body; for FetchReply only of FetchReplyBody
                        // (its data is covered by data_crc)
  uint32_t header_crc;  // CRC32C of this header with header_crc = 0
};
static_assert(sizeof(Header) == 24);
static_assert(std::is_trivially_copyable_v<Header>);

// Hello and Challenge: the sender's node id (NUL-padded) and its nonce.
struct HelloBody {
  char node_id[kMaxNodeId];
  uint8_t nonce[kNonceBytes];
};
static_assert(sizeof(HelloBody) == 96);

struct ChallengeBody {
  char node_id[kMaxNodeId];
  uint8_t nonce[kNonceBytes];
  uint8_t proof[kProofBytes];  // server's proof
};
static_assert(sizeof(ChallengeBody) == 128);

struct AuthBody {
  uint8_t proof[kProofBytes];  // client's proof
};
static_assert(sizeof(AuthBody) == 32);

// Fetch: bytes [offset, offset + length) of a block, named by dataset *name* (nodes
// may mount a dataset at different paths) and path relative to its root. Followed
// by dataset_len + path_len bytes.
struct FetchBody {
  uint64_t key_hi;
  uint64_t key_lo;
  uint64_t block;
  uint32_t offset;      // within the block
  uint32_t length;      // 0 = to the end of the block
  uint16_t dataset_len;
  uint16_t path_len;
  uint32_t reserved;
};
static_assert(sizeof(FetchBody) == 40);

// FetchReply: followed by `length` bytes of data when status is kOk;
// body_len = sizeof(FetchReplyBody) + length. Data goes straight into the
// receiver's arena pages and is checked against data_crc once it is all there.
struct FetchReplyBody {
  int32_t status;
  uint32_t length;
  uint32_t data_crc;  // CRC32C of the data (the owner's combined segment CRCs)
  uint32_t reserved;
};
static_assert(sizeof(FetchReplyBody) == 16);

}  // namespace dc::peer
