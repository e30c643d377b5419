#include "daemon/cache/block_cache.h"

#include "daemon/net/crc32c.h"

namespace dc {
namespace {
constexpr uint32_t kNoOwner = UINT32_MAX;
}

BlockCache::BlockCache(Arena& arena) : arena_(arena), policy_(arena.page_count()) {
  free_slots_.reserve(arena.page_count());
  for (uint32_t s = arena.page_count(); s > 0; --s) free_slots_.push_back(s - 1);
  slot_owner_.assign(arena.page_count(), kNoOwner);
}

BlockCache::Handle BlockCache::new_handle() {
  if (!free_handles_.empty()) {
    Handle h = free_handles_.back();
    free_handles_.pop_back();
    return h;
  }
  blocks_.emplace_back();
  return static_cast<Handle>(blocks_.size() - 1);
}

// Copies of other nodes' blocks go first, and a copy may only displace copies:
// the cluster's capacity is then close to the sum of its nodes' arenas. Pinned
// blocks (pages still held by the kernel for a peer) are passed over.
bool BlockCache::make_room(uint32_t pages, bool for_copy) {
  auto evict_oldest_copy = [&]() {
    for (Handle h : copies_) {
      const Block& b = blocks_[h];
      if (b.state != State::kResident || b.pins > 0) continue;  // still filling or being sent: not yet
      evict(h);
      return true;
    }
    return false;
  };
  if (for_copy) {
    while (copy_pages_ + pages > copies_cap_)
      if (!evict_oldest_copy()) return false;
  }
  std::vector<Handle> kept;  // victims that were pinned: back into the policy below
  bool ok = true;
  while (free_slots_.size() < pages) {
    if (evict_oldest_copy()) continue;
    if (for_copy) {
      ok = false;
      break;
    }
    auto victim = policy_.pick_victim();
    if (!victim) {
      ok = false;
      break;
    }
    if (blocks_[*victim].pins > 0) {
      kept.push_back(*victim);
      continue;
    }
    evict(*victim);
  }
  for (Handle h : kept) policy_.requeue(h, blocks_[h].pages);
  return ok;
}

void BlockCache::evict(Handle h) {
  Block& b = blocks_[h];
  policy_.erase(h);
  // Unpublish first: the seqlock bump tells readers the slot's bytes are no longer
  // theirs before anything new is written into it.
  for (uint32_t i = 0; i < b.pages; ++i)
    arena_.unpublish(b.id.key, b.id.block * (arena_.block_size() / arena_.page_size()) + i);
  if (b.copy) {
    copies_.erase(b.copy_pos);
    copy_pages_ -= b.pages;
    b.copy = false;
  }
  b.seg_crcs.clear();
  map_.erase(b.id);
  index_remove(h);
  b.waiters.clear();
  ++evictions_;
  // Out of the index and the map, but the kernel still reads its pages: the slots
  // stay taken until the last unpin.
  if (b.pins > 0) b.retired = true;
  else release_slots(h);
}

void BlockCache::release_slots(Handle h) {
  Block& b = blocks_[h];
  for (uint32_t s : b.slots) {
    slot_owner_[s] = kNoOwner;
    free_slots_.push_back(s);
  }
  if (b.state == State::kResident) resident_pages_ -= b.pages;
  b.state = State::kFree;
  b.retired = false;
  b.slots.clear();
  free_handles_.push_back(h);
}

void BlockCache::pin(Handle h) {
  if (blocks_[h].pins++ == 0) ++pinned_blocks_;
}

void BlockCache::unpin(Handle h) {
  if (h >= blocks_.size() || blocks_[h].pins == 0) {
    ++bad_unpins_;
    return;
  }
  Block& b = blocks_[h];
  if (--b.pins > 0) return;
  --pinned_blocks_;
  if (b.retired) release_slots(h);
}

BlockCache::Begin BlockCache::begin(FileKey key, uint64_t block, uint32_t len, Token token,
                                    Handle* out, bool prefetch, bool copy) {
  const BlockId id{key, block};
  if (auto it = map_.find(id); it != map_.end()) {
    Block& b = blocks_[it->second];
    *out = it->second;
    if (b.state == State::kResident) {
      if (!prefetch) policy_.touch(it->second);
      return Begin::kResident;
    }
    if (!prefetch) b.prefetch = false;  // a reader wants it now: its read is a first use
    if (token != kNoWaiter) b.waiters.push_back(token);
    return Begin::kJoined;
  }
  const uint32_t ps = arena_.page_size();
  const uint32_t pages = len == 0 ? 1 : (len + ps - 1) / ps;
  if (!make_room(pages, copy)) return Begin::kNoSpace;
  Handle h = new_handle();
  Block& b = blocks_[h];
  b.copy = copy;
  if (copy) {
    copies_.push_back(h);
    b.copy_pos = std::prev(copies_.end());
    copy_pages_ += pages;
  }
  b.id = id;
  b.len = len;
  b.pages = pages;
  b.state = State::kFilling;
  b.discard = false;
  b.slots.clear();
  for (uint32_t i = 0; i < pages; ++i) {
    uint32_t s = free_slots_.back();
    free_slots_.pop_back();
    slot_owner_[s] = h;
    b.slots.push_back(s);
  }
  b.prefetch = prefetch;
  b.waiters.clear();
  if (token != kNoWaiter) b.waiters.push_back(token);
  map_.emplace(id, h);
  index_add(h);
  filling_pages_ += pages;
  *out = h;
  return Begin::kStarted;
}

void BlockCache::iovecs(Handle h, std::vector<iovec>* out) {
  const Block& b = blocks_[h];
  const uint32_t ps = arena_.page_size();
  out->clear();
  uint32_t left = b.len;
  for (uint32_t i = 0; i < b.pages && left > 0; ++i) {
    uint32_t n = left < ps ? left : ps;
    out->push_back(iovec{arena_.page(b.slots[i]), n});
    left -= n;
  }
}

std::vector<BlockCache::Token> BlockCache::finish(Handle h, bool ok) {
  Block& b = blocks_[h];
  std::vector<Token> waiters;
  waiters.swap(b.waiters);
  filling_pages_ -= b.pages;
  if (!ok || b.discard) {
    b.state = State::kResident;  // so evict() accounts it like any resident block
    resident_pages_ += b.pages;
    evict(h);
    --evictions_;  // a failed fill is not an eviction
    return waiters;
  }
  const uint32_t ps = arena_.page_size();
  const uint64_t first_page = b.id.block * (arena_.block_size() / ps);
  uint32_t left = b.len;
  bool all = true;
  for (uint32_t i = 0; i < b.pages; ++i) {
    uint32_t n = left < ps ? left : ps;
    left -= n;
    if (!arena_.publish(b.id.key, first_page + i, b.slots[i], n)) all = false;
  }
  if (!all) ++unpublishable_;  // readers will miss those pages and read the fd
  b.state = State::kResident;
  resident_pages_ += b.pages;
  if (compute_crcs_ && !b.copy) {
    // Once, as the block enters the node: serving it to peers then needs no pass
    // over its bytes (their CRC is combined from these).
    std::vector<iovec> iov;
    iovecs(h, &iov);
    segment_crcs_iov(iov.data(), static_cast<int>(iov.size()), &b.seg_crcs);
  }
  if (!b.copy) policy_.insert(h, b.pages, b.prefetch);
  return waiters;
}

bool BlockCache::record_hit(uint32_t slot, uint32_t key_lo32, FileKey* key, uint64_t* block) {
  if (slot >= slot_owner_.size()) return false;
  Handle h = slot_owner_[slot];
  if (h == kNoOwner) return false;
  const Block& b = blocks_[h];
  if (b.state != State::kResident || b.retired || static_cast<uint32_t>(b.id.key.lo) != key_lo32) return false;
  policy_.touch(h);
  *key = b.id.key;
  *block = b.id.block;
  return true;
}

void BlockCache::index_add(Handle h) {
  auto& v = by_key_[blocks_[h].id.key];
  blocks_[h].key_pos = static_cast<uint32_t>(v.size());
  v.push_back(h);
}

void BlockCache::index_remove(Handle h) {
  auto it = by_key_.find(blocks_[h].id.key);
  if (it == by_key_.end()) return;
  auto& v = it->second;
  const uint32_t pos = blocks_[h].key_pos;
  if (pos >= v.size() || v[pos] != h)
    return;  // not indexed (cannot happen: map_ and by_key_ agree)
  v[pos] = v.back();
  blocks_[v[pos]].key_pos = pos;
  v.pop_back();
  if (v.empty()) by_key_.erase(it);
}

uint32_t BlockCache::invalidate(FileKey key) {
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return 0;
  const std::vector<Handle> handles = it->second;  // evict() edits the index
  uint32_t dropped = 0;
  for (Handle h : handles) {
    ++invalidate_visits_;
    Block& b = blocks_[h];
    if (b.state == State::kFilling) {
      b.discard = true;
      continue;
    }
    dropped += b.pages;
    evict(h);
    --evictions_;
  }
  return dropped;
}

}  // namespace dc

namespace dc {

bool BlockCache::resident_pages(FileKey key, uint64_t block, std::vector<iovec>* pages, uint32_t* len,
                                const std::vector<uint32_t>** seg_crcs, Handle* handle) {
  auto it = map_.find(BlockId{key, block});
  if (it == map_.end() || blocks_[it->second].state != State::kResident) return false;
  if (handle) *handle = it->second;
  iovecs(it->second, pages);
  *len = blocks_[it->second].len;
  *seg_crcs = &blocks_[it->second].seg_crcs;
  return true;
}

}  // namespace dc
