// Sequential readahead decisions: windows grow on sequential fetches and on
// reaching the marker block, reset on jumps, never pass the file's end.
#include "daemon/prefetch/readahead.h"

#include <gtest/gtest.h>

namespace dc {
namespace {

const FileKey kKey{1, 2};
const Readahead::Origin kOrigin{0, "f.bin"};

TEST(Readahead, ReadFromStartPrefetchesAWholeWindowThenFollowsTheMarker) {
  Readahead ra(8);
  auto p = ra.on_fetch(kKey, kOrigin, 0, 1, 100);
  EXPECT_EQ(p.first, 1u);
  EXPECT_EQ(p.count, 8u);
  // The reader reaches the marker (first prefetched block): the next window.
  p = ra.on_hit(kKey, 1);
  EXPECT_EQ(p.first, 9u);
  EXPECT_EQ(p.count, 8u);
  EXPECT_EQ(ra.on_hit(kKey, 2).count, 0u) << "not a marker";
  p = ra.on_hit(kKey, 9);
  EXPECT_EQ(p.first, 17u);
  EXPECT_EQ(p.count, 8u) << "capped at the maximum window";
}

TEST(Readahead, SmallFileIsFetchedWhole) {
  Readahead ra(32);
  auto p = ra.on_fetch(kKey, kOrigin, 0, 1, 5);
  EXPECT_EQ(p.first, 1u);
  EXPECT_EQ(p.count, 4u);
}

TEST(Readahead, RandomRecordsNeverPrefetch) {
  Readahead ra(8);
  EXPECT_EQ(ra.on_fetch(kKey, kOrigin, 40, 1, 100).count, 0u);
  EXPECT_EQ(ra.on_fetch(kKey, kOrigin, 7, 1, 100).count, 0u);
  EXPECT_EQ(ra.on_fetch(kKey, kOrigin, 63, 1, 100).count, 0u);
}

TEST(Readahead, SequentialMissesGrowTheWindowAndJumpsResetIt) {
  Readahead ra(16);
  EXPECT_EQ(ra.on_fetch(kKey, kOrigin, 10, 1, 100).count, 0u);
  auto p = ra.on_fetch(kKey, kOrigin, 11, 1, 100);  // continues: start a window
  EXPECT_EQ(p.first, 12u);
  EXPECT_EQ(p.count, 2u);
  p = ra.on_fetch(kKey, kOrigin, 12, 1, 100);  // missed inside the window: grow
  EXPECT_EQ(p.first, 14u);
  EXPECT_GE(p.count, 2u);
  EXPECT_EQ(ra.on_fetch(kKey, kOrigin, 80, 1, 100).count, 0u) << "a jump resets";
}

TEST(Readahead, StopsAtTheEndOfTheFile) {
  Readahead ra(32);
  auto p = ra.on_fetch(kKey, kOrigin, 0, 1, 2);
  EXPECT_EQ(p.first, 1u);
  EXPECT_EQ(p.count, 1u);
  EXPECT_EQ(ra.on_hit(kKey, 1).count, 0u) << "nothing left to fetch";
  EXPECT_EQ(ra.on_fetch(FileKey{9, 9}, kOrigin, 0, 1, 1).count, 0u) << "single-block file";
}

TEST(Readahead, DisabledWithZeroWindow) {
  Readahead ra(0);
  EXPECT_EQ(ra.on_fetch(kKey, kOrigin, 0, 1, 100).count, 0u);
}

TEST(Readahead, ForgetsOldestStreamsBeyondTheLimit) {
  Readahead ra(8, 2);
  ra.on_fetch(FileKey{1, 1}, kOrigin, 0, 1, 100);
  ra.on_fetch(FileKey{2, 2}, kOrigin, 0, 1, 100);
  ra.on_fetch(FileKey{3, 3}, kOrigin, 0, 1, 100);
  EXPECT_EQ(ra.origin_of(FileKey{1, 1}), nullptr);
  EXPECT_NE(ra.origin_of(FileKey{3, 3}), nullptr);
}

}  // namespace
}  // namespace dc
