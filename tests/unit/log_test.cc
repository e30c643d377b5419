// The rate limit of repeating log lines: one line per interval per call site,
// and the count of lines left out reported with the next one printed.
#include <gtest/gtest.h>

#include "common/log.h"

namespace dc {
namespace {

TEST(LogLimiter, OneLinePerIntervalAndCountsTheRest) {
  LogLimiter lim(1000);
  uint64_t suppressed = 99;
  ASSERT_TRUE(lim.allow(5000, &suppressed));
  EXPECT_EQ(suppressed, 0u);
  for (uint64_t t = 5000; t < 6000; t += 10) EXPECT_FALSE(lim.allow(t, &suppressed));
  ASSERT_TRUE(lim.allow(6000, &suppressed));
  EXPECT_EQ(suppressed, 100u);
  ASSERT_TRUE(lim.allow(9000, &suppressed));
  EXPECT_EQ(suppressed, 0u);
}

TEST(LogLimiter, AFloodOfCallsPrintsAFewLines) {
  LogLimiter lim(1000);
  uint64_t printed = 0, suppressed = 0, reported = 0;
  // A million attempts over ten seconds, as a spinning accept loop would make.
  for (uint64_t i = 0; i < 1000000; ++i) {
    if (lim.allow(i / 100, &suppressed)) {
      ++printed;
      reported += suppressed;
    }
  }
  EXPECT_LE(printed, 11u);
  // Every line is either printed or counted in the next printed one.
  ASSERT_TRUE(lim.allow(1000000000, &suppressed));
  EXPECT_EQ(printed + reported + suppressed, 1000000u);
}

}  // namespace
}  // namespace dc
