// Peer protocol between dcagents, over TCP: one versioned header per message,
// followed by `body_len` bytes of body.
//
//   client                                   server (the block's owner)
//   HelloV2{id, nonce_c, integrity} ─────►
//                                   ◄─────   ChallengeV2{id, nonce_s, proof_s, integrity}
//   Auth{proof_c}                   ─────►
//   ......... sealed from here on (unless integrity = crc) .........
//                                   ◄─────   AuthOk
//   Fetch{req id, key, block, range, dataset, path} ...  (many in flight)
//                                   ◄─────   FetchReply{req id, status, crc} + data
//
// proof_x = HMAC-SHA256(cluster secret, role | own nonce | other nonce | own id |
// other id | integrity) (daemon/net/auth.h): each side proves it knows the secret
// for this connection and binds what it saw of the other side and the integrity
// mode, so a relay that alters any handshake field makes the proofs fail. Nothing
// but HelloV2 and Auth is accepted before AuthOk. Both ends must be configured with
// the same integrity: the server answers a HelloV2 asking for another one with its
// own (so the client can log both) and refuses the Auth that follows.
//
// Integrity (Integrity below). Every header carries a CRC32C of itself (a framing
// check before anything else is trusted). Then:
//  - crc: every control body carries a CRC32C in the header; for block data the
//    owner combines the CRCs it keeps per 32 KiB segment (no second pass over the
//    bytes); the receiver verifies once. Protects against accidents only.
//  - mac / encrypt: after the handshake each direction has its own AES-128-GCM key
//    (HKDF-SHA256 of the secret over both nonces, both ids and the mode), and every
//    message is sealed in up to two parts, each followed by a kTagBytes GCM tag:
//      header | control body | tag_c [| block data | tag_d]
//    tag_c seals header (AAD) and control body; tag_d seals header (AAD) and the
//    data. mac: the bodies are AAD too, sent in the clear (zero-copy send paths
//    stay in place); encrypt: the bodies are encrypted. The GCM nonce of each part
//    is a per-direction counter (0, 1, 2, ...) that the receiver expects in order,
//    so a replayed, reordered, dropped, spliced or reflected part fails its tag.
//    body_crc is 0 (the tag covers the body); data_crc is still sent, unchecked.
//    A receiver acts on a control body, and publishes block data, only after its
//    tag verified; a bad tag drops the connection.
//
// Rules for growth: opcodes and status codes are numbered explicitly and never
// reused. A message that needs new fields gets a new opcode; `version` changes
// only for an incompatible header, or when a field changes meaning. Sizes are
// pinned by static_assert here and by tests/unit/arena_abi_test.cc.
//
// History: version 2: FetchBody's key is the XXH3-128 file key with inode and
// ctime (include/dc/file_key.h, arena major 2). A version-1 peer names every block
// by another function, so it could share none: it is refused at its first header
// rather than answered "stale" on every fetch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace dc::peer {

inline constexpr uint32_t kMagic = 0x31504344;  // "DCP1"
// 2: XXH3-128 file keys with inode and ctime; HelloV2/ChallengeV2 and sealed
// frames (tags after the handshake). 1 (old keys, unsealed Hello/Challenge) is no
// longer spoken: a v1 peer is dropped at its first header.
inline constexpr uint16_t kVersion = 2;
inline constexpr uint32_t kMaxControlBody = 8192;      // any body but block data
inline constexpr uint32_t kMaxDataBody = 64u << 20;    // largest block, 64 MiB
inline constexpr uint32_t kNonceBytes = 32;
inline constexpr uint32_t kProofBytes = 32;
inline constexpr uint32_t kMaxNodeId = 64;
inline constexpr uint32_t kTagBytes = 16;  // AES-GCM tag after each sealed part
inline constexpr uint32_t kKeyBytes = 16;  // AES-128 key per direction

// [cluster] integrity, as negotiated in HelloV2/ChallengeV2. Numbered explicitly,
// never reused.
enum class Integrity : uint8_t {
  kCrc = 0,      // CRC32C only: a trusted fabric
  kMac = 1,      // AES-GCM tag over clear bodies (GMAC)
  kEncrypt = 2,  // AES-GCM: bodies encrypted and authenticated
};

enum class Op : uint16_t {
  kHello = 1,      // v1 only, retired: HelloV2
  kChallenge = 2,  // v1 only, retired: ChallengeV2
  kAuth = 3,
  kAuthOk = 4,
  kFetch = 5,
  kFetchReply = 6,
  kPing = 7,
  kPong = 8,
  kHelloV2 = 9,
  kChallengeV2 = 10,
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

// v1 Hello and Challenge (retired, kept for the record and the ABI pins): the
// sender's node id (NUL-padded) and its nonce.
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

// v2: as v1 plus the integrity the sender is configured with.
struct HelloV2Body {
  char node_id[kMaxNodeId];
  uint8_t nonce[kNonceBytes];
  uint8_t integrity;  // Integrity
  uint8_t reserved[7];
};
static_assert(sizeof(HelloV2Body) == 104);

struct ChallengeV2Body {
  char node_id[kMaxNodeId];
  uint8_t nonce[kNonceBytes];
  uint8_t proof[kProofBytes];  // server's proof (binds the integrity below)
  uint8_t integrity;           // the server's; refuses the Auth if it differs from the client's
  uint8_t reserved[7];
};
static_assert(sizeof(ChallengeV2Body) == 136);

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
