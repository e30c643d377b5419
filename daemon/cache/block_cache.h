// Blocks in the arena: which (file, block) lives in which page slots, which blocks
// are being filled (so concurrent misses of one block read the origin once), and
// eviction. Single-threaded: only the agent's event loop calls it.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

#include "daemon/cache/arena.h"
#include "daemon/cache/eviction.h"
#include "dc/file_key.h"

namespace dc {

class BlockCache {
 public:
  using Handle = uint32_t;
  using Token = uint64_t;  // opaque to the cache: identifies who waits for a fill

  enum class Begin {
    kResident,  // already in the arena: nothing to do
    kJoined,    // being filled; `token` will be returned by finish()
    kStarted,   // pages reserved; the caller fills iovecs() then calls finish()
    kNoSpace,   // every page is busy being filled
  };

  explicit BlockCache(Arena& arena);

  // `len` is the block's byte length (short for a file's last block). A prefetch
  // has no reader waiting (`token` is kNoWaiter) and its first read is no reuse.
  // A copy is a block another node owns: copies live in a bounded FIFO share of
  // the arena and never displace blocks this node owns.
  Begin begin(FileKey key, uint64_t block, uint32_t len, Token token, Handle* out, bool prefetch = false,
              bool copy = false);
  // Cluster mode: at most `pages` pages hold copies; blocks get segment CRCs.
  void set_copies_cap(uint64_t pages) { copies_cap_ = pages; }
  void set_compute_crcs(bool on) { compute_crcs_ = on; }
  // A resident block's pages (one iovec per page, `len` bytes in all) and its CRCs
  // per 32 KiB segment (empty unless computed). False if not resident.
  bool resident_pages(FileKey key, uint64_t block, std::vector<iovec>* pages, uint32_t* len,
                      const std::vector<uint32_t>** seg_crcs, Handle* handle = nullptr);
  // Where page i of a resident block lives in the arena (slot number).

  // Pins: a resident block whose pages the kernel is sending to a peer without a
  // copy (MSG_ZEROCOPY, sendfile) must keep them until the kernel is done. A pinned
  // block is skipped by eviction; invalidate() unpublishes it at once (readers
  // miss, a new fetch fills a new copy) but its slots are reused only after the
  // last unpin. Pins nest; unpin of an unpinned handle is ignored (and counted).
  void pin(Handle h);
  void unpin(Handle h);
  uint64_t pinned_blocks() const { return pinned_blocks_; }
  uint64_t bad_unpins() const { return bad_unpins_; }
  uint64_t copy_pages() const { return copy_pages_; }
  static constexpr Token kNoWaiter = UINT64_MAX;
  // Destinations in the arena for a started fill, one iovec per page.
  void iovecs(Handle h, std::vector<iovec>* out);
  // Ends a fill. On success the pages are published to readers; either way the
  // waiting tokens are returned and the handle is released if it failed.
  std::vector<Token> finish(Handle h, bool ok);

  // A shim read this page slot (hint from its hit ring). On success names the block.
  bool record_hit(uint32_t slot, uint32_t key_lo32, FileKey* key, uint64_t* block);
  // Drops every resident block of `key` (a filling one is dropped when its fill
  // ends); returns pages dropped. Visits only that key's blocks (by_key_), so a
  // writer's open and close cost the file's blocks, not the cache's.
  uint32_t invalidate(FileKey key);
  // Blocks invalidate() has looked at, in all: what its cost is counted in.
  uint64_t invalidate_visits() const { return invalidate_visits_; }

  uint64_t resident_pages() const { return resident_pages_; }
  uint64_t filling_pages() const { return filling_pages_; }
  uint64_t evictions() const { return evictions_; }
  uint64_t unpublishable() const { return unpublishable_; }
  const EvictionPolicy& policy() const { return policy_; }

 private:
  enum class State : uint8_t { kFree, kFilling, kResident };
  struct BlockId {
    FileKey key;
    uint64_t block;
    bool operator==(const BlockId&) const = default;
  };
  struct BlockIdHash {
    size_t operator()(const BlockId& b) const {
      return static_cast<size_t>(b.key.lo ^ (b.key.hi >> 7) ^ (b.block * 0x9e3779b97f4a7c15ULL));
    }
  };
  struct Block {
    BlockId id{};
    uint32_t len = 0;
    uint32_t pages = 0;
    State state = State::kFree;
    bool discard = false;   // invalidated while filling
    bool prefetch = false;  // brought in by readahead, no demand for it yet
    bool copy = false;      // owned by another node (see begin())
    bool retired = false;   // evicted or invalidated while pinned: slots wait for unpin
    uint32_t pins = 0;
    std::list<Handle>::iterator copy_pos;
    uint32_t key_pos = 0;  // index in by_key_[id.key] while in map_
    std::vector<uint32_t> seg_crcs;
    std::vector<uint32_t> slots;
    std::vector<Token> waiters;
  };

  bool make_room(uint32_t pages, bool for_copy);
  void index_add(Handle h);
  void index_remove(Handle h);
  void evict(Handle h);
  void release_slots(Handle h);
  Handle new_handle();

  Arena& arena_;
  EvictionPolicy policy_;
  std::vector<Block> blocks_;
  std::vector<Handle> free_handles_;
  std::vector<uint32_t> free_slots_;
  std::vector<Handle> slot_owner_;
  std::unordered_map<BlockId, Handle, BlockIdHash> map_;
  struct KeyHash {
    size_t operator()(const FileKey& k) const { return static_cast<size_t>(k.lo ^ (k.hi >> 7)); }
  };
  // Every block in map_ (filling or resident, not retired), by file: the blocks
  // one invalidation has to visit. Same membership as map_, kept in step with it.
  std::unordered_map<FileKey, std::vector<Handle>, KeyHash> by_key_;
  uint64_t invalidate_visits_ = 0;
  uint64_t resident_pages_ = 0;
  uint64_t filling_pages_ = 0;
  uint64_t evictions_ = 0;
  uint64_t unpublishable_ = 0;
  std::list<Handle> copies_;  // resident or filling copies, oldest first
  uint64_t copy_pages_ = 0;
  uint64_t copies_cap_ = 0;
  bool compute_crcs_ = false;
  uint64_t pinned_blocks_ = 0;
  uint64_t bad_unpins_ = 0;
};

}  // namespace dc
