// Which resident block leaves when room is needed.
//
// Training reads every sample once per epoch in a new random order, often from a
// dataset larger than the cache. LRU and CLOCK thrash there (each block is evicted
// just before its reuse); the best any demand cache can do is keep a fixed subset,
// a hit ratio of cache/dataset. So:
//
//  - probation: a small FIFO (1/32 of the pages) where every new block lands;
//  - main: the rest. A block leaving probation enters main while main has room,
//    or if it was hit while in probation. Once main is full it is *kept*: a block
//    from probation replaces a main block only if that block is dead, i.e. idle
//    for longer than twice the largest reuse distance recently seen on main hits
//    (and never less than the cache's size in accesses). Otherwise the probation
//    block is dropped.
//
// Under epochs this keeps ~31/32 of the cache fixed and reaches ~cache/dataset;
// when the workload moves to other data, the old blocks stop being hit, turn dead
// after a few epochs' worth of accesses and are replaced. Time is counted in pages
// accessed (a block access advances the clock by its page count: fetches plus hits
// reported by shims), not seconds, so it compares directly with the cache's size
// in pages whatever the block size.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace dc {

class EvictionPolicy {
 public:
  using Id = uint32_t;

  explicit EvictionPolicy(uint64_t capacity_pages, uint32_t probation_divisor = 32);

  // A newly resident block (into probation). A prefetched block's first read is
  // its first use, not a reuse: it neither marks it referenced nor counts as reuse.
  void insert(Id id, uint32_t pages, bool prefetched = false);
  void touch(Id id);                   // the block was read
  void erase(Id id);                   // the block left for another reason
  // A block pick_victim() named that cannot leave now (pinned: the kernel is still
  // sending its pages to a peer). It goes back at the probation tail, marked
  // referenced (it was just read), without advancing the clock.
  void requeue(Id id, uint32_t pages);
  bool contains(Id id) const;
  // One block to evict now, or nothing if no resident block is known. May move
  // probation blocks into main as a side effect; call again until there is room.
  std::optional<Id> pick_victim();

  uint64_t now() const { return clock_; }
  uint64_t main_pages() const { return main_.pages; }
  uint64_t probation_pages() const { return probation_.pages; }
  uint64_t dead_threshold() const;

 private:
  enum class Where : uint8_t { kNone, kProbation, kMain };
  struct Node {
    Id prev = kNil, next = kNil;
    uint64_t last_access = 0;
    uint32_t pages = 0;
    Where where = Where::kNone;
    bool referenced = false;
    bool prefetched = false;  // not yet read since readahead brought it in
  };
  struct List {
    Id head = kNil, tail = kNil;  // head: oldest (FIFO front / LRU end)
    uint64_t pages = 0;
  };
  static constexpr Id kNil = UINT32_MAX;

  Node& node(Id id);
  List& list_of(Where w) { return w == Where::kMain ? main_ : probation_; }
  void link_tail(List& l, Id id);
  void unlink(List& l, Id id);
  void promote(Id id);
  void note_reuse(uint64_t distance);

  std::vector<Node> nodes_;
  List probation_, main_;
  uint64_t capacity_pages_;
  uint64_t probation_target_;
  uint64_t main_target_;
  uint64_t clock_ = 0;
  // Largest reuse distance seen on main hits, over the current and previous window.
  uint64_t reuse_cur_ = 0, reuse_prev_ = 0, window_start_ = 0;
};

}  // namespace dc
