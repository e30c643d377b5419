// Control protocol between dcagent and its local clients (shims and dcctl), over a
// unix SOCK_SEQPACKET socket: one message per packet, so framing is the kernel's.
//
// Every message starts with MsgHeader. `length` is the whole packet; the agent
// drops a session whose packet is shorter than its op requires, longer than
// kMaxRequest, or disagrees with `length`.
//
// Rules for growth: opcodes and status codes are numbered explicitly and never
// reused (a retired one leaves a gap). Requests are checked for their exact size:
// a request that needs new fields gets a new opcode (fetch and invalidate carry a
// trailing path, so they could not grow at the end anyway); the old opcode stays
// served. Replies may grow at the end; a client ignores a tail it does not know.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace dc::ctl {

inline constexpr uint32_t kMagic = 0x31434344;  // "DCC1"
inline constexpr uint16_t kVersion = 1;
inline constexpr size_t kMaxRequest = 8192;     // largest packet a client may send
inline constexpr size_t kMaxReply = 65536;      // largest packet the agent sends
inline constexpr uint32_t kMaxPath = 4096;
inline constexpr uint32_t kMaxFetchBlocks = 64;  // blocks per fetch request
inline constexpr uint32_t kMaxDatasets = 64;

enum class Op : uint16_t {
  kHello = 1,
  kHelloReply = 2,
  kFetch = 3,
  kFetchReply = 4,
  kStats = 5,
  kStatsReply = 6,
  kInvalidate = 7,
  kInvalidateReply = 8,
  kRing = 9,          // reply: kTextReply with JSON of the ring
  kPeers = 10,        // reply: kTextReply with JSON of the peers
  kTextReply = 11,
};

// Status codes carried in replies. Numbered explicitly, never reused.
enum class Status : int32_t {
  kOk = 0,
  kBadRequest = 1,     // malformed or not allowed
  kNotFound = 2,       // file does not exist (anymore)
  kStale = 3,          // file key no longer matches the file (rewritten)
  kNoSpace = 4,        // nothing could be evicted to make room
  kIoError = 5,        // origin read failed
  kOutsideDataset = 6, // path not inside a configured dataset
  kBusy = 7,           // try again or read the file directly
  kShuttingDown = 8,
};

struct MsgHeader {
  uint32_t magic;
  uint16_t version;
  uint16_t op;
  uint32_t length;      // whole packet, header included
  uint32_t request_id;  // echoed in the reply
};
static_assert(sizeof(MsgHeader) == 16);

enum class Role : uint32_t { kShim = 1, kCtl = 2 };
inline constexpr uint32_t kHelloWantRing = 1u << 0;  // shim: send me a hit ring

struct HelloRequest {
  MsgHeader h;
  uint32_t role;   // Role
  uint32_t flags;  // kHelloWant*
  uint32_t pid;
  uint32_t reserved;
};
static_assert(sizeof(HelloRequest) == 32);

// Followed by `dataset_count` DatasetRecord, each followed by name then root bytes
// (no terminating NUL), each record padded to 8 bytes. The packet carries the
// arena memfd (read-only) and, if asked, the hit ring memfd (SCM_RIGHTS), in that order.
struct HelloReply {
  MsgHeader h;
  int32_t status;
  uint32_t dataset_count;
  uint64_t arena_size;
  uint64_t arena_generation;
  uint32_t fd_count;      // descriptors attached
  uint32_t reserved;
};
static_assert(sizeof(HelloReply) == 48);

struct DatasetRecord {
  uint16_t name_len;
  uint16_t root_len;
  uint32_t reserved;
};
static_assert(sizeof(DatasetRecord) == 8);

// Ask the agent to make blocks [first_block, first_block + block_count) of a file
// resident in the arena. `path` is relative to the dataset root. The agent opens
// the file itself, recomputes its key and refuses if it differs from `key_*`.
struct FetchRequest {
  MsgHeader h;
  uint64_t key_hi;
  uint64_t key_lo;
  uint64_t first_block;
  uint32_t block_count;
  uint16_t dataset_id;  // index into the HelloReply dataset list
  uint16_t path_len;    // bytes of path following this struct
};
static_assert(sizeof(FetchRequest) == 48);

struct FetchReply {
  MsgHeader h;
  int32_t status;
  uint32_t blocks_ready;  // leading blocks of the request now resident
};
static_assert(sizeof(FetchReply) == 24);

// A writer (seen through the shim) changed this file: drop every cached page of it.
struct InvalidateRequest {
  MsgHeader h;
  uint16_t dataset_id;
  uint16_t path_len;
  uint32_t reserved;
};
static_assert(sizeof(InvalidateRequest) == 24);

struct InvalidateReply {
  MsgHeader h;
  int32_t status;
  uint32_t pages_dropped;
};
static_assert(sizeof(InvalidateReply) == 24);

struct StatsRequest {
  MsgHeader h;
};

// Followed by `count` StatEntry.
struct StatsReply {
  MsgHeader h;
  int32_t status;
  uint32_t count;
};
static_assert(sizeof(StatsReply) == 24);

// Followed by `length` bytes of UTF-8 text (JSON for kRing and kPeers).
struct TextReply {
  MsgHeader h;
  int32_t status;
  uint32_t length;
};
static_assert(sizeof(TextReply) == 24);

struct StatEntry {
  char name[40];   // NUL-terminated
  uint64_t value;
};
static_assert(sizeof(StatEntry) == 48);

static_assert(std::is_trivially_copyable_v<FetchRequest>);
static_assert(std::is_trivially_copyable_v<HelloReply>);

inline MsgHeader make_header(Op op, uint32_t length, uint32_t request_id) {
  return MsgHeader{kMagic, kVersion, static_cast<uint16_t>(op), length, request_id};
}

}  // namespace dc::ctl
