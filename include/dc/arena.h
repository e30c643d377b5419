// The arena: the one shared-memory ABI between dcagent and every shim.
//
// One memfd, created and written only by the agent, mapped read-only by shims:
//
//   [ ArenaHeader (4 KiB) ][ index: index_capacity x IndexEntry ][ pages: page_count x page_size ]
//
// The index is open-addressed (linear probing from arena_index_home()). An entry maps
// (file key, page number within the file) to a page slot. Every entry carries a
// seqlock counter (see barrier.h); the page bytes of a slot are covered by the
// counter of the entry that points at it, so a reader copies the page and then
// re-checks that counter.
//
// How this ABI may grow:
//  - abi_major changes when any existing field moves or changes meaning; a shim that
//    sees a major it does not know must not read the arena (it falls back to the fd).
//  - abi_minor grows when fields are added in reserved space; readers ignore fields
//    they do not know, so older shims keep working.
//  - Sizes and offsets are pinned by static_assert below and by tests/unit/arena_abi_test.
//  - Entry and header sizes are also stored in the header, so a reader can check them.
//  - The file key in every index entry is computed by include/dc/file_key.h: a new
//    key function is a new meaning of an existing field, so a major change.
//
// History:
//  - major 1: first release; key = a private 2-lane hash of (dataset, path, size, mtime).
//  - major 2: key = XXH3-128 of (dataset, path, size, mtime, inode, ctime), so that a
//    file replaced with the same size and mtime is a new key. A major-1 shim would
//    find none of its keys here: it must refuse the arena and read through the fd.
//  - major 2 minor 1: ArenaHeader::retired (the agent marks its arena on exit; a
//    reader that sees it drops the mapping and reconnects). Older readers ignore it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace dc::abi {

inline constexpr uint64_t kArenaMagic = 0x314e524141434400ULL;  // "\0DCAARN1"
inline constexpr uint16_t kArenaAbiMajor = 2;
inline constexpr uint16_t kArenaAbiMinor = 1;
inline constexpr uint32_t kArenaHeaderSize = 4096;
// Readers stop probing after this many entries; the agent never places an entry
// farther than this from its home slot.
inline constexpr uint32_t kMaxProbe = 32;

struct ArenaHeader {
  uint64_t magic;             // kArenaMagic once the arena is fully initialised
  uint16_t abi_major;
  uint16_t abi_minor;
  uint32_t header_size;       // kArenaHeaderSize
  uint64_t generation;        // random per arena; a new agent means a new arena
  uint32_t page_size;         // bytes per page slot, power of two
  uint32_t block_size;        // fetch unit, power of two, multiple of page_size
  uint32_t page_count;        // number of page slots
  uint32_t index_capacity;    // number of index entries, power of two
  uint32_t index_entry_size;  // sizeof(IndexEntry)
  uint32_t max_probe;         // kMaxProbe
  uint64_t index_offset;      // from the start of the arena
  uint64_t pages_offset;      // from the start of the arena, page aligned
  uint64_t total_size;        // size of the memfd
  // Minor 1: non-zero once the agent that owns this arena has stopped serving it
  // (it exits). Written once, last; a reader that sees it drops its mapping and
  // connects anew. Zero in arenas of minor 0 agents (reserved space is zeroed).
  uint64_t retired;
  uint8_t reserved[4096 - 80];
};
static_assert(sizeof(ArenaHeader) == kArenaHeaderSize);
static_assert(offsetof(ArenaHeader, generation) == 16);
static_assert(offsetof(ArenaHeader, page_size) == 24);
static_assert(offsetof(ArenaHeader, index_offset) == 48);
static_assert(offsetof(ArenaHeader, total_size) == 64);
static_assert(offsetof(ArenaHeader, retired) == 72);
static_assert(std::is_trivially_copyable_v<ArenaHeader>);

inline constexpr uint32_t kEntryUsed = 1u << 0;

// One cache line. `seq` is the seqlock counter: odd while the agent changes this
// entry or the page it points at; it only ever grows, so a reader that saw value s
// before and after its copy knows nothing changed in between.
struct IndexEntry {
  uint32_t seq;
  uint32_t flags;      // kEntryUsed when the entry maps a page
  uint64_t key_hi;     // file key (see file_key.h)
  uint64_t key_lo;
  uint64_t page_no;    // page number within the file
  uint32_t slot;       // page slot in the pages area
  uint32_t page_len;   // valid bytes in the page (short only for a file's last page)
  uint64_t reserved[3];
};
static_assert(sizeof(IndexEntry) == 64);
static_assert(alignof(IndexEntry) == 8);
static_assert(offsetof(IndexEntry, key_hi) == 8);
static_assert(offsetof(IndexEntry, page_no) == 24);
static_assert(offsetof(IndexEntry, slot) == 32);
static_assert(offsetof(IndexEntry, page_len) == 36);
static_assert(std::is_trivially_copyable_v<IndexEntry>);

// Home position of (key, page) in an index of `capacity` (a power of two) entries.
inline uint64_t arena_index_home(uint64_t key_hi, uint64_t key_lo, uint64_t page_no,
                                 uint32_t capacity) {
  uint64_t h = key_lo ^ (key_hi * 0x9e3779b97f4a7c15ULL) ^ (page_no * 0xc2b2ae3d27d4eb4fULL);
  h ^= h >> 31;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 29;
  return h & (capacity - 1);
}

// Per-client region: a small writable memfd of its own per shim process.
//  - a ring of hit records: the shim appends one per block it served from the
//    arena; the agent drains it to learn recency for eviction;
//  - counters of what the shim served, summed by the agent for `dcctl stats`.
// Records may be lost or overwritten and counters are best effort: the agent uses
// them as hints, and no reader of the arena depends on them.
inline constexpr uint64_t kClientRegionMagic = 0x31474e4952544844ULL;  // "DHTRING1"
inline constexpr uint32_t kHitRingCapacity = 4096;  // records, power of two

struct ClientCounters {
  uint64_t hit_reads;       // read calls served wholly from the arena
  uint64_t hit_bytes;
  uint64_t miss_reads;      // read calls that asked the agent to fetch
  uint64_t miss_bytes;
  uint64_t fallback_reads;  // read calls served by the real fd (agent absent, error, EOF)
  uint64_t fallback_bytes;
  uint64_t reserved[2];
};
static_assert(sizeof(ClientCounters) == 64);

struct ClientRegionHeader {
  uint64_t magic;
  uint32_t ring_capacity;
  uint32_t reserved0;
  uint64_t pad0[6];          // head on its own cache line: producers hammer it
  uint64_t head;             // next record to write; producers fetch-add
  uint64_t pad1[7];
  ClientCounters counters;   // producers add with relaxed atomics
};
static_assert(sizeof(ClientRegionHeader) == 192);
static_assert(offsetof(ClientRegionHeader, head) == 64);
static_assert(offsetof(ClientRegionHeader, counters) == 128);

// A record: page slot in the high half, low 32 bits of the file key's lo word in
// the low half (so the agent can drop records whose slot was reused meanwhile).
inline uint64_t hit_record(uint32_t slot, uint64_t key_lo) {
  return (static_cast<uint64_t>(slot) << 32) | static_cast<uint32_t>(key_lo);
}
inline constexpr size_t kClientRegionBytes =
    sizeof(ClientRegionHeader) + kHitRingCapacity * sizeof(uint64_t);

}  // namespace dc::abi
