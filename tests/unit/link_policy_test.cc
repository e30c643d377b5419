// Connections per peer: which one a fetch goes to, when another opens, which close.
#include <gtest/gtest.h>

#include <vector>

#include "daemon/cluster/link_policy.h"

namespace {

using dc::idle_links;
using dc::LinkLimits;
using dc::LinkLoad;
using dc::pick_link;
using dc::should_grow;

constexpr uint64_t kMiB = 1 << 20;

LinkLoad up(uint64_t bytes, size_t requests = 0, uint64_t last_used_ms = 0) {
  return LinkLoad{true, bytes, requests ? requests : (bytes + kMiB - 1) / kMiB, last_used_ms};
}
LinkLoad opening() { return LinkLoad{false, 0, 0, 0}; }

LinkLimits limits(size_t max = 4) { return LinkLimits{max, 4 * kMiB, 10000}; }

TEST(PickLink, NoneUpMeansNone) {
  EXPECT_EQ(pick_link({}), -1);
  EXPECT_EQ(pick_link({opening(), opening()}), -1);
}

TEST(PickLink, LeastBytesInFlight) {
  EXPECT_EQ(pick_link({up(3 * kMiB), up(1 * kMiB), up(2 * kMiB)}), 1);
  EXPECT_EQ(pick_link({up(5 * kMiB), up(6 * kMiB)}), 0);
}

TEST(PickLink, IgnoresConnectionsNotYetUp) {
  // An idle connection still authenticating must not take fetches.
  EXPECT_EQ(pick_link({up(8 * kMiB), opening()}), 0);
  EXPECT_EQ(pick_link({opening(), up(8 * kMiB)}), 1);
}

TEST(PickLink, TiesGoToTheFirstSoLightTrafficLeavesTheOthersIdle) {
  EXPECT_EQ(pick_link({up(0), up(0), up(0)}), 0);
  EXPECT_EQ(pick_link({up(kMiB), up(0), up(0)}), 1);
}

TEST(ShouldGrow, OnlyWhenEveryConnectionIsBusy) {
  EXPECT_FALSE(should_grow({up(4 * kMiB)}, limits()));  // at the threshold: not over it
  EXPECT_TRUE(should_grow({up(4 * kMiB + 1)}, limits()));
  EXPECT_FALSE(should_grow({up(8 * kMiB), up(1 * kMiB)}, limits()));
  EXPECT_TRUE(should_grow({up(8 * kMiB), up(5 * kMiB)}, limits()));
}

TEST(ShouldGrow, NeverPastTheMaximum) {
  EXPECT_FALSE(should_grow({up(64 * kMiB)}, limits(1)));
  EXPECT_TRUE(should_grow({up(64 * kMiB), up(64 * kMiB)}, limits(3)));
  EXPECT_FALSE(should_grow({up(64 * kMiB), up(64 * kMiB), up(64 * kMiB)}, limits(3)));
}

TEST(ShouldGrow, OneAtATimeWhileAConnectionIsOpening) {
  EXPECT_FALSE(should_grow({up(64 * kMiB), opening()}, limits()));
}

TEST(ShouldGrow, NotWithoutConnections) {
  // Connecting a member from nothing is the reconnect path, not growth.
  EXPECT_FALSE(should_grow({}, limits()));
}

TEST(IdleLinks, TheFirstConnectionNeverCloses) {
  EXPECT_TRUE(idle_links({up(0, 0, 0)}, limits(), 1000000).empty());
}

TEST(IdleLinks, ClosesExtrasIdleForTheIdleTime) {
  const std::vector<LinkLoad> links{up(0, 0, 0), up(0, 0, 5000), up(0, 0, 1000), up(0, 0, 9000)};
  EXPECT_EQ(idle_links(links, limits(), 11000), (std::vector<size_t>{2}));
  EXPECT_EQ(idle_links(links, limits(), 15000), (std::vector<size_t>{1, 2}));
  EXPECT_EQ(idle_links(links, limits(), 19000), (std::vector<size_t>{1, 2, 3}));
}

TEST(IdleLinks, NeverWithRequestsInFlight) {
  // A request outstanding longer than the idle time (a slow origin at the owner)
  // keeps its connection: closing it would fail the request.
  EXPECT_TRUE(idle_links({up(0, 0, 0), up(kMiB, 1, 0)}, limits(), 100000).empty());
}

TEST(IdleLinks, NotWhileOpening) {
  // The handshake has its own deadline (member timeout); idleness is for up links.
  EXPECT_TRUE(idle_links({up(0, 0, 0), opening()}, limits(), 100000).empty());
}

TEST(IdleLinks, ClockBehindLastUseIsNotIdle) {
  EXPECT_TRUE(idle_links({up(0, 0, 0), up(0, 0, 50000)}, limits(), 40000).empty());
}

}  // namespace
