// Placement is cluster protocol: every node must pick the same owner, balance must
// be near ideal, and membership changes must move only the blocks they have to.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "daemon/ring/placement.h"

namespace {

using dc::FileKey;
using dc::Member;
using dc::Placement;

struct Pair {
  FileKey key;
  uint64_t block;
};

// 10,000 files of 10 consecutive blocks: consecutive blocks of one file are the
// common case and must spread like unrelated ones.
std::vector<Pair> sample_pairs() {
  std::mt19937_64 rng(20240611);  // mt19937_64's sequence is fixed by the standard
  std::vector<Pair> pairs;
  pairs.reserve(100000);
  for (int f = 0; f < 10000; ++f) {
    const FileKey key{rng(), rng()};
    for (uint64_t b = 0; b < 10; ++b) pairs.push_back({key, b});
  }
  return pairs;
}

std::vector<Member> equal_members(size_t n, size_t first = 0) {
  std::vector<Member> m;
  for (size_t i = first; i < first + n; ++i) m.push_back({"node-" + std::to_string(i), 1.0});
  return m;
}

// Owner's id, so placements over different member lists can be compared.
std::string owner_id(const Placement& p, const Pair& x) {
  return p.members()[p.owner(x.key, x.block)].id;
}

std::vector<size_t> loads(const Placement& p, const std::vector<Pair>& pairs) {
  std::vector<size_t> count(p.members().size());
  for (const Pair& x : pairs) ++count[p.owner(x.key, x.block)];
  return count;
}

TEST(Placement, EqualWeightsBalanceWithinFivePercent) {
  const auto pairs = sample_pairs();
  for (size_t n : {3, 5}) {
    const Placement p(equal_members(n));
    const auto count = loads(p, pairs);
    const double mean = static_cast<double>(pairs.size()) / static_cast<double>(n);
    const double max = static_cast<double>(*std::max_element(count.begin(), count.end()));
    std::printf("N=%zu max/mean %.4f\n", n, max / mean);
    EXPECT_LE(max / mean, 1.05) << "N=" << n;
  }
}

TEST(Placement, RemovalMovesOnlyTheRemovedMembersBlocks) {
  const auto pairs = sample_pairs();
  for (size_t n : {3, 5}) {
    const Placement before(equal_members(n));
    for (size_t gone = 0; gone < n; ++gone) {
      std::vector<Member> rest = equal_members(n);
      const std::string gone_id = rest[gone].id;
      rest.erase(rest.begin() + static_cast<std::ptrdiff_t>(gone));
      const Placement after(rest);
      size_t moved = 0;
      for (const Pair& x : pairs) {
        const std::string was = owner_id(before, x);
        if (was == owner_id(after, x)) continue;
        ++moved;
        ASSERT_EQ(was, gone_id) << "a block not on the removed member moved";
      }
      const double frac = static_cast<double>(moved) / static_cast<double>(pairs.size());
      EXPECT_LE(frac, 1.1 / static_cast<double>(n)) << "N=" << n << " removed " << gone_id;
    }
  }
}

TEST(Placement, AdditionMovesBlocksOnlyOntoTheNewMember) {
  const auto pairs = sample_pairs();
  for (size_t n : {3, 5}) {
    const Placement before(equal_members(n));
    const Placement after(equal_members(n + 1));
    const std::string new_id = after.members().back().id;
    size_t moved = 0;
    for (const Pair& x : pairs) {
      const std::string now = owner_id(after, x);
      if (owner_id(before, x) == now) continue;
      ++moved;
      ASSERT_EQ(now, new_id) << "a block moved between old members";
    }
    const double frac = static_cast<double>(moved) / static_cast<double>(pairs.size());
    EXPECT_LE(frac, 1.1 / static_cast<double>(n + 1)) << "N=" << n;
  }
}

TEST(Placement, WeightsOneTwoOneGiveQuarterHalfQuarter) {
  const auto pairs = sample_pairs();
  const Placement p({{"a", 1.0}, {"b", 2.0}, {"c", 1.0}});
  const auto count = loads(p, pairs);
  const auto expect = p.expected_share();
  ASSERT_EQ(expect.size(), 3u);
  EXPECT_DOUBLE_EQ(expect[0], 0.25);
  EXPECT_DOUBLE_EQ(expect[1], 0.50);
  EXPECT_DOUBLE_EQ(expect[2], 0.25);
  for (size_t i = 0; i < 3; ++i) {
    const double share = static_cast<double>(count[i]) / static_cast<double>(pairs.size());
    EXPECT_NEAR(share, expect[i], 0.05 * expect[i]) << p.members()[i].id;
  }
}

TEST(Placement, LiveMaskEqualsPlacementWithoutDeadMembers) {
  const auto pairs = sample_pairs();
  const std::vector<Member> all = {{"a", 1.0}, {"b", 2.0}, {"c", 1.0}, {"d", 0.5}, {"e", 3.0}};
  const Placement full(all);
  for (const std::vector<bool>& live : {std::vector<bool>{true, false, true, true, true},
                                        std::vector<bool>{false, true, true, false, true},
                                        std::vector<bool>{true, true, true, true, false}}) {
    std::vector<Member> alive;
    for (size_t i = 0; i < all.size(); ++i) {
      if (live[i]) alive.push_back(all[i]);
    }
    const Placement reduced(alive);
    for (const Pair& x : pairs) {
      const size_t masked = full.owner(x.key, x.block, live);
      ASSERT_NE(masked, Placement::kNoOwner);
      ASSERT_TRUE(live[masked]);
      ASSERT_EQ(full.members()[masked].id, owner_id(reduced, x));
    }
  }
}

TEST(Placement, MemberOrderDoesNotChangeTheOwner) {
  const auto pairs = sample_pairs();
  std::vector<Member> members = {{"a", 1.0}, {"b", 2.0}, {"c", 1.0}, {"d", 0.5}};
  const Placement p1(members);
  std::reverse(members.begin(), members.end());
  const Placement p2(members);
  for (const Pair& x : pairs) ASSERT_EQ(owner_id(p1, x), owner_id(p2, x));
}

// Golden values computed once from this implementation. If this fails the placement
// hash changed and nodes of different releases would disagree on owners: do not
// update the numbers, version the peer protocol instead.
TEST(Placement, GoldenOwners) {
  EXPECT_EQ(Placement::id_hash("node-0"), 0x17c55294f426cb2dULL);
  EXPECT_EQ(Placement::key_block_hash(FileKey{1, 2}, 3), 0x8730a189de2a7ed5ULL);
  const Placement p({{"node-0", 1.0}, {"node-1", 1.0}, {"node-2", 2.0}, {"node-3", 1.0}});
  const FileKey k1{0x0123456789abcdefULL, 0xfedcba9876543210ULL};
  const FileKey k2{0xa1c5c63a43cea301ULL, 0x1d8a3686d1eed0eaULL};
  const size_t got[] = {p.owner(k1, 0), p.owner(k1, 1), p.owner(k1, 2), p.owner(k1, 1000),
                        p.owner(k2, 0), p.owner(k2, 1), p.owner(k2, 2), p.owner(k2, 1000)};
  const size_t want[] = {0, 1, 2, 0, 3, 2, 1, 2};
  for (size_t i = 0; i < std::size(want); ++i) EXPECT_EQ(got[i], want[i]) << "input " << i;
}

TEST(Placement, NoLiveMemberMeansNoOwner) {
  const Placement empty(std::vector<Member>{});
  EXPECT_EQ(empty.owner(FileKey{1, 2}, 0), Placement::kNoOwner);
  const Placement p(equal_members(3));
  EXPECT_EQ(p.owner(FileKey{1, 2}, 0, {false, false, false}), Placement::kNoOwner);
}

TEST(Placement, CreateRejectsBadMembers) {
  EXPECT_TRUE(Placement::create(equal_members(3)).ok());
  EXPECT_FALSE(Placement::create({{"", 1.0}}).ok());
  EXPECT_FALSE(Placement::create({{"a", 1.0}, {"a", 2.0}}).ok());
  EXPECT_FALSE(Placement::create({{"a", 0.0}}).ok());
  EXPECT_FALSE(Placement::create({{"a", -1.0}}).ok());
  EXPECT_FALSE(Placement::create({{"a", std::nan("")}}).ok());
  EXPECT_FALSE(Placement::create({{"a", HUGE_VAL}}).ok());
}

TEST(Placement, IndexOfFindsMembers) {
  const Placement p(equal_members(3));
  EXPECT_EQ(p.index_of("node-1"), 1u);
  EXPECT_FALSE(p.index_of("node-9").has_value());
}

// Informational: cost of one lookup on the miss path (best of 3 passes, since the
// machine is shared).
TEST(Placement, LookupCost) {
  const auto pairs = sample_pairs();
  for (size_t n : {3, 10, 100}) {
    const Placement p(equal_members(n));
    size_t sink = 0;
    double best = 1e300;
    for (int pass = 0; pass < 3; ++pass) {
      const auto t0 = std::chrono::steady_clock::now();
      for (const Pair& x : pairs) sink += p.owner(x.key, x.block);
      const auto t1 = std::chrono::steady_clock::now();
      best = std::min(best, std::chrono::duration<double, std::nano>(t1 - t0).count() /
                                static_cast<double>(pairs.size()));
    }
    std::printf("N=%zu: %.0f ns per owner() (%.1f ns per member) [%zu]\n", n, best,
                best / static_cast<double>(n), sink % 7);
  }
}

}  // namespace
