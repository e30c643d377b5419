// Read side of the arena, shared by the shim and the tests: look a page up in the
// index and copy bytes out under the entry's seqlock. Never writes shared memory.
#pragma once

#include <cstdint>
#include <cstring>

#include "dc/arena.h"
#include "dc/barrier.h"
#include "dc/file_key.h"

namespace dc {

struct ArenaView {
  const uint8_t* base = nullptr;
  const abi::IndexEntry* index = nullptr;
  const uint8_t* pages = nullptr;
  uint64_t size = 0;
  uint64_t generation = 0;
  uint32_t index_mask = 0;
  uint32_t page_size = 0;
  uint32_t page_shift = 0;
  uint32_t block_size = 0;
  uint32_t block_shift = 0;
  uint32_t page_count = 0;
  uint32_t max_probe = 0;
};

inline uint32_t log2_u32(uint32_t v) { return 31u - static_cast<uint32_t>(__builtin_clz(v)); }

// Validates a mapped arena header and fills `v`. False if the mapping is not an
// arena this reader understands (wrong magic, major, sizes): the caller must then
// not use it.
inline bool arena_view_init(const void* base, uint64_t mapped_size, ArenaView* v) {
  if (mapped_size < sizeof(abi::ArenaHeader)) return false;
  const auto* h = static_cast<const abi::ArenaHeader*>(base);
  if (h->magic != abi::kArenaMagic || h->abi_major != abi::kArenaAbiMajor) return false;
  if (h->header_size != abi::kArenaHeaderSize || h->index_entry_size != sizeof(abi::IndexEntry))
    return false;
  const uint32_t ps = h->page_size, bs = h->block_size, cap = h->index_capacity;
  if (ps == 0 || (ps & (ps - 1)) || bs < ps || (bs & (bs - 1)) || cap == 0 || (cap & (cap - 1)))
    return false;
  // Every bound is checked so that no sum can wrap: the fields are the agent's, but
  // a header that lies must be refused, not trusted into a fault.
  const uint64_t index_bytes = uint64_t{cap} * sizeof(abi::IndexEntry);
  const uint64_t page_bytes = uint64_t{h->page_count} * ps;
  if (h->total_size > mapped_size || h->index_offset < sizeof(abi::ArenaHeader) ||
      h->index_offset > h->total_size || index_bytes > h->total_size - h->index_offset ||
      h->index_offset + index_bytes > h->pages_offset || h->pages_offset > h->total_size ||
      page_bytes > h->total_size - h->pages_offset)
    return false;
  v->base = static_cast<const uint8_t*>(base);
  v->index = reinterpret_cast<const abi::IndexEntry*>(v->base + h->index_offset);
  v->pages = v->base + h->pages_offset;
  v->size = h->total_size;
  v->generation = h->generation;
  v->index_mask = cap - 1;
  v->page_size = ps;
  v->page_shift = log2_u32(ps);
  v->block_size = bs;
  v->block_shift = log2_u32(bs);
  v->page_count = h->page_count;
  v->max_probe = h->max_probe < abi::kMaxProbe ? h->max_probe : abi::kMaxProbe;
  return true;
}

enum : int64_t { kArenaMiss = -1 };

// Copies bytes [off, off + len) of page `page_no` of `key` into `dst`, where off+len
// stays inside one page. Returns the bytes copied (fewer than len only when the page
// is the file's last and ends early; 0 if it ends at or before `off`), or kArenaMiss
// when the page is absent or changed during the copy. `*slot_out` names the page
// slot for hit records.
// `before_copy`, if given, runs with the slot found, before its bytes are read (the
// shim maps pages in bulk there rather than taking one fault per 4 KiB).
using BeforeCopy = void (*)(const ArenaView&, uint32_t slot);
inline int64_t arena_copy(const ArenaView& v, FileKey key, uint64_t page_no, uint32_t off,
                          uint32_t len, void* dst, uint32_t* slot_out, BeforeCopy before_copy = nullptr) {
  uint64_t pos = abi::arena_index_home(key.hi, key.lo, page_no, v.index_mask + 1);
  for (uint32_t probe = 0; probe < v.max_probe; ++probe, pos = (pos + 1) & v.index_mask) {
    const abi::IndexEntry* e = &v.index[pos];
    const uint32_t s1 = seq_read_begin(&e->seq);
    if (s1 & 1u) return kArenaMiss;  // being changed: may be ours; ask the agent
    const uint32_t flags = field_load(&e->flags);
    if (!(flags & abi::kEntryUsed)) {
      // An empty entry ends the probe, unless it changed under us.
      return kArenaMiss;
    }
    if (field_load(&e->key_lo) != key.lo || field_load(&e->key_hi) != key.hi ||
        field_load(&e->page_no) != page_no)
      continue;
    const uint32_t slot = field_load(&e->slot);
    uint32_t plen = field_load(&e->page_len);
    if (slot >= v.page_count || plen > v.page_size) return kArenaMiss;  // torn: retry later
    uint32_t n = 0;
    if (off < plen) n = (plen - off < len) ? plen - off : len;
    if (before_copy && n) before_copy(v, slot);
    if (n) memcpy(dst, v.pages + (static_cast<uint64_t>(slot) << v.page_shift) + off, n);
    if (!seq_read_valid(&e->seq, s1)) return kArenaMiss;
    if (slot_out) *slot_out = slot;
    return n;
  }
  return kArenaMiss;
}

}  // namespace dc
