// EvictionPolicy under the workloads it exists for. The simulated cache drives the
// policy exactly as BlockCache does: ids are recycled handles, a miss evicts until
// the new block fits, and every hit is a touch.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <list>
#include <numeric>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "daemon/cache/eviction.h"

namespace {

using dc::EvictionPolicy;

// A page-budgeted cache over EvictionPolicy, keyed by block number.
class PolicyCache {
 public:
  explicit PolicyCache(uint64_t capacity_pages)
      : policy_(capacity_pages), capacity_(capacity_pages) {}

  bool access(uint64_t block, uint32_t pages) {
    if (auto it = handle_of_.find(block); it != handle_of_.end()) {
      policy_.touch(it->second);
      return true;
    }
    while (capacity_ - used_ < pages) {
      const std::optional<EvictionPolicy::Id> v = policy_.pick_victim();
      if (!v) {
        ADD_FAILURE() << "no victim with " << used_ << " pages used";
        return false;
      }
      Evict(*v);
    }
    EvictionPolicy::Id h;
    if (!free_handles_.empty()) {
      h = free_handles_.back();
      free_handles_.pop_back();
    } else {
      h = static_cast<EvictionPolicy::Id>(slots_.size());
      slots_.emplace_back();
    }
    slots_[h] = Slot{block, pages, true};
    handle_of_[block] = h;
    used_ += pages;
    policy_.insert(h, pages);
    if (policy_.main_pages() + policy_.probation_pages() != used_) {
      ADD_FAILURE() << "policy accounts " << policy_.main_pages() + policy_.probation_pages()
                    << " pages, cache holds " << used_;
    }
    return false;
  }

  bool resident(uint64_t block) const { return handle_of_.count(block) != 0; }
  const EvictionPolicy& policy() const { return policy_; }

 private:
  struct Slot {
    uint64_t block = 0;
    uint32_t pages = 0;
    bool live = false;
  };

  void Evict(EvictionPolicy::Id h) {
    if (h >= slots_.size() || !slots_[h].live) {
      ADD_FAILURE() << "victim " << h << " is not resident";
      return;
    }
    if (policy_.contains(h)) ADD_FAILURE() << "victim " << h << " still tracked by the policy";
    Slot& s = slots_[h];
    used_ -= s.pages;
    handle_of_.erase(s.block);
    s.live = false;
    free_handles_.push_back(h);
  }

  EvictionPolicy policy_;
  uint64_t capacity_;
  uint64_t used_ = 0;
  std::vector<Slot> slots_;
  std::vector<EvictionPolicy::Id> free_handles_;
  std::unordered_map<uint64_t, EvictionPolicy::Id> handle_of_;
};

// Plain LRU with the same page budget: the baseline that thrashes under epochs.
class LruCache {
 public:
  explicit LruCache(uint64_t capacity_pages) : capacity_(capacity_pages) {}

  bool access(uint64_t block, uint32_t pages) {
    if (auto it = where_.find(block); it != where_.end()) {
      order_.splice(order_.end(), order_, it->second);
      return true;
    }
    while (capacity_ - used_ < pages) {
      used_ -= pages_[order_.front()];
      where_.erase(order_.front());
      pages_.erase(order_.front());
      order_.pop_front();
    }
    order_.push_back(block);
    where_[block] = std::prev(order_.end());
    pages_[block] = pages;
    used_ += pages;
    return false;
  }

 private:
  uint64_t capacity_;
  uint64_t used_ = 0;
  std::list<uint64_t> order_;  // front: least recently used
  std::unordered_map<uint64_t, std::list<uint64_t>::iterator> where_;
  std::unordered_map<uint64_t, uint32_t> pages_;
};

// Training epochs: every block of [first, first + count) once per epoch, in a new
// random order each time. Returns each epoch's hit ratio.
template <typename Cache>
std::vector<double> RunEpochs(Cache& cache, std::mt19937& rng, uint64_t first, uint64_t count,
                              int epochs, uint32_t pages_per_block) {
  std::vector<uint64_t> order(count);
  std::iota(order.begin(), order.end(), first);
  std::vector<double> ratios;
  for (int e = 0; e < epochs; ++e) {
    std::shuffle(order.begin(), order.end(), rng);
    uint64_t hits = 0;
    for (uint64_t b : order) hits += cache.access(b, pages_per_block);
    ratios.push_back(static_cast<double>(hits) / static_cast<double>(count));
  }
  return ratios;
}

double Mean(const std::vector<double>& v, size_t from, size_t to) {
  return std::accumulate(v.begin() + static_cast<std::ptrdiff_t>(from),
                         v.begin() + static_cast<std::ptrdiff_t>(to), 0.0) /
         static_cast<double>(to - from);
}

std::string Show(const std::vector<double>& v) {
  std::ostringstream out;
  out.precision(3);
  for (size_t i = 0; i < v.size(); ++i) out << (i ? " " : "") << "e" << i + 1 << "=" << v[i];
  return out.str();
}

constexpr uint64_t kCacheBlocks = 256;
constexpr uint64_t kDatasetBlocks = 2 * kCacheBlocks;
constexpr unsigned kSeed = 12345;

// Pages per block: 16 (1 MiB blocks of 64 KiB pages) and 2 (a ~110 KiB image
// as one block of 64 KiB pages).
class EpochTest : public ::testing::TestWithParam<uint32_t> {
 protected:
  uint32_t ppb() const { return GetParam(); }
  uint64_t capacity_pages() const { return kCacheBlocks * ppb(); }
};

// Dataset twice the cache, random order every epoch: the best a demand cache can
// do is keep a fixed half, a hit ratio of 0.5.
TEST_P(EpochTest, KeepsAFixedSubsetAcrossEpochs) {
  PolicyCache cache(capacity_pages());
  std::mt19937 rng(kSeed);
  const std::vector<double> r = RunEpochs(cache, rng, 0, kDatasetBlocks, 6, ppb());
  const double steady = Mean(r, 1, 6);
  EXPECT_GE(steady, 0.45) << Show(r);
  EXPECT_LE(steady, 0.55) << "above cache/dataset: the simulation is wrong. " << Show(r);
  for (size_t e = 1; e < r.size(); ++e)
    EXPECT_GE(r[e], 0.42) << "epoch " << e + 1 << ": " << Show(r);
}

// The same trace under LRU: each block is evicted shortly before its next use.
// Proves the trace discriminates between a policy that works and one that does not.
TEST_P(EpochTest, LruBaselineThrashes) {
  LruCache lru(capacity_pages());
  std::mt19937 rng(kSeed);
  const std::vector<double> r = RunEpochs(lru, rng, 0, kDatasetBlocks, 6, ppb());
  EXPECT_LT(Mean(r, 1, 6), 0.3) << Show(r);
}

// The job moves to another dataset: the blocks kept for the old one are never hit
// again, must turn dead and make room for a fixed subset of the new one.
TEST_P(EpochTest, AdaptsToANewDataset) {
  PolicyCache cache(capacity_pages());
  std::mt19937 rng(kSeed);
  const std::vector<double> a = RunEpochs(cache, rng, 0, kDatasetBlocks, 6, ppb());
  ASSERT_GE(Mean(a, 1, 6), 0.45) << Show(a);
  const std::vector<double> b = RunEpochs(cache, rng, kDatasetBlocks, kDatasetBlocks, 10, ppb());
  EXPECT_GE(Mean(b, 7, 10), 0.45) << "dataset B, " << ppb() << " pages per block, dead threshold "
                                  << cache.policy().dead_threshold() << " accesses (an epoch is "
                                  << kDatasetBlocks << "): " << Show(b);
}

// Time is counted in block accesses, so a cache of 256 blocks must decide the same
// whether a block is one page or many: only the unit of its budget changes.
TEST_P(EpochTest, SameDecisionsAsWithOnePagePerBlock) {
  PolicyCache pages(capacity_pages()), single(kCacheBlocks);
  std::mt19937 rng_pages(kSeed), rng_single(kSeed);
  std::vector<double> a = RunEpochs(pages, rng_pages, 0, kDatasetBlocks, 6, ppb());
  std::vector<double> b = RunEpochs(single, rng_single, 0, kDatasetBlocks, 6, 1);
  const std::vector<double> a2 =
      RunEpochs(pages, rng_pages, kDatasetBlocks, kDatasetBlocks, 10, ppb());
  const std::vector<double> b2 =
      RunEpochs(single, rng_single, kDatasetBlocks, kDatasetBlocks, 10, 1);
  a.insert(a.end(), a2.begin(), a2.end());
  b.insert(b.end(), b2.begin(), b2.end());
  EXPECT_EQ(a, b) << ppb() << " pages per block: " << Show(a) << "\n1 page per block:  " << Show(b);
  const uint64_t t_pages = pages.policy().dead_threshold(),
                 t_single = single.policy().dead_threshold();
  EXPECT_TRUE(t_pages == t_single || t_pages == ppb() * t_single)
      << "dead threshold " << t_pages << " with " << ppb() << " pages per block, " << t_single
      << " with one: it should scale with the block size in pages, or not at all";
}

// A small hot set read all the time while a scan many times the cache's size
// passes through. Hot blocks are 320 accesses apart, more than the cache holds,
// so recency alone (LRU) would lose them.
TEST_P(EpochTest, HotSetSurvivesALargeScan) {
  PolicyCache cache(capacity_pages());
  LruCache lru(capacity_pages());
  constexpr uint64_t kHot = 8, kPeriod = 40, kScanStart = 1000;
  for (int round = 0; round < 3; ++round)
    for (uint64_t h = 0; h < kHot; ++h) {
      cache.access(h, ppb());
      lru.access(h, ppb());
    }
  uint64_t hot_reads = 0, hot_hits = 0, lru_hot_hits = 0, scan = kScanStart;
  uint64_t next_hot = 0;
  for (uint64_t i = 0; i < 40000; ++i) {
    if (i % kPeriod == 0) {
      const uint64_t h = next_hot++ % kHot;
      ++hot_reads;
      hot_hits += cache.access(h, ppb());
      lru_hot_hits += lru.access(h, ppb());
    } else {
      cache.access(scan, ppb());
      lru.access(scan, ppb());
      ++scan;
    }
  }
  ASSERT_GT(scan - kScanStart, 100 * kCacheBlocks);
  EXPECT_GT(static_cast<double>(hot_hits) / static_cast<double>(hot_reads), 0.9)
      << hot_hits << " of " << hot_reads;
  EXPECT_LT(static_cast<double>(lru_hot_hits) / static_cast<double>(hot_reads), 0.1)
      << "LRU keeps the hot set too: the trace proves nothing";
  for (uint64_t h = 0; h < kHot; ++h) EXPECT_TRUE(cache.resident(h)) << "hot block " << h;
}

INSTANTIATE_TEST_SUITE_P(PagesPerBlock, EpochTest, ::testing::Values(16u, 2u),
                         [](const ::testing::TestParamInfo<uint32_t>& info) {
                           return std::to_string(info.param) + "PagesPerBlock";
                         });

// The mechanics the workload tests rely on, one rule at a time.
TEST(EvictionPolicy, EmptyHasNoVictim) {
  EvictionPolicy p(64);
  EXPECT_FALSE(p.pick_victim().has_value());
  EXPECT_FALSE(p.contains(0));
  p.touch(3);  // unknown ids are ignored
  p.erase(3);
  EXPECT_EQ(p.now(), 0u);
  EXPECT_EQ(p.main_pages() + p.probation_pages(), 0u);
}

TEST(EvictionPolicy, InsertTouchErase) {
  EvictionPolicy p(64);
  p.insert(5, 4);
  EXPECT_TRUE(p.contains(5));
  EXPECT_EQ(p.probation_pages(), 4u);
  const uint64_t t = p.now();
  EXPECT_GT(t, 0u);
  p.touch(5);
  EXPECT_GT(p.now(), t);
  p.insert(5, 2);  // re-insert replaces, never double-counts
  EXPECT_EQ(p.probation_pages(), 2u);
  p.erase(5);
  EXPECT_FALSE(p.contains(5));
  EXPECT_EQ(p.probation_pages(), 0u);
  EXPECT_FALSE(p.pick_victim().has_value());
}

// 64 one-page blocks in a 64-page cache: main (62 pages) fills first, in arrival
// order; after that new blocks leave from probation and main is kept.
class FullPolicy : public ::testing::Test {
 protected:
  void SetUp() override {
    for (EvictionPolicy::Id id = 0; id < 64; ++id) p_.insert(id, 1);
    auto v = p_.pick_victim();
    ASSERT_TRUE(v.has_value());
    ASSERT_EQ(*v, 62u);  // probation head once main is full, not a main block
    ASSERT_EQ(p_.main_pages(), 62u);
    ASSERT_EQ(p_.probation_pages(), 1u);
  }
  EvictionPolicy p_{64};
};

TEST_F(FullPolicy, MainIsKeptAgainstNewBlocks) {
  for (EvictionPolicy::Id id = 100; id < 110; ++id) {
    // Main stays in use (otherwise its blocks would rightly turn dead).
    for (EvictionPolicy::Id m = 0; m < 62; ++m) p_.touch(m);
    p_.insert(id, 1);
    auto v = p_.pick_victim();
    ASSERT_TRUE(v.has_value());
    EXPECT_GE(*v, 63u) << "a main block left for a block seen once";
  }
  for (EvictionPolicy::Id id = 0; id < 62; ++id) EXPECT_TRUE(p_.contains(id)) << id;
}

TEST_F(FullPolicy, BlockHitInProbationEntersMain) {
  p_.touch(63);
  p_.insert(200, 1);
  auto v = p_.pick_victim();
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(*v, 0u) << "the least recently used main block makes room";
  EXPECT_TRUE(p_.contains(63));
  EXPECT_EQ(p_.main_pages(), 62u);
}

TEST_F(FullPolicy, DeadMainBlockIsReplaced) {
  EXPECT_GE(p_.dead_threshold(), 64u) << "never below the cache size";
  // Keep every main block but 0 busy until 0 has been idle past the threshold.
  uint64_t rounds = 0;
  while (p_.now() <= p_.dead_threshold() + 64) {
    for (EvictionPolicy::Id id = 1; id < 62; ++id) p_.touch(id);
    ++rounds;
  }
  EXPECT_GE(p_.dead_threshold(), 2 * 60u) << "twice the reuse distance seen on main hits";
  p_.insert(300, 1);
  auto v = p_.pick_victim();
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(*v, 0u) << "after " << rounds << " rounds";
  EXPECT_TRUE(p_.contains(63)) << "the probation block took the dead block's place";
  EXPECT_EQ(p_.main_pages(), 62u);
}

TEST_F(FullPolicy, LiveMainBlocksAreNotDead) {
  for (int r = 0; r < 20; ++r)
    for (EvictionPolicy::Id id = 0; id < 62; ++id) p_.touch(id);
  p_.insert(400, 1);
  auto v = p_.pick_victim();
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(*v, 63u);
  for (EvictionPolicy::Id id = 0; id < 62; ++id) EXPECT_TRUE(p_.contains(id));
}

TEST(EvictionPolicy, MainOnlyStillYieldsVictims) {
  EvictionPolicy p(64);
  for (EvictionPolicy::Id id = 0; id < 10; ++id) p.insert(id, 1);
  std::vector<EvictionPolicy::Id> out;
  while (auto v = p.pick_victim()) out.push_back(*v);
  ASSERT_EQ(out.size(), 10u);
  std::sort(out.begin(), out.end());
  for (EvictionPolicy::Id id = 0; id < 10; ++id) EXPECT_EQ(out[id], id);
  EXPECT_EQ(p.main_pages() + p.probation_pages(), 0u);
}

}  // namespace
