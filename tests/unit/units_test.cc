// Human-readable sizes as used in the config and by dcctl.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "common/result.h"
#include "common/units.h"

namespace {

using dc::format_size;
using dc::parse_size;

uint64_t Size(const std::string& text) {
  auto r = parse_size(text);
  if (!r.ok()) {
    ADD_FAILURE() << "\"" << text << "\": " << r.error().message;
    return 0;
  }
  return *r;
}

TEST(ParseSize, PlainBytes) {
  EXPECT_EQ(Size("0"), 0u);
  EXPECT_EQ(Size("1"), 1u);
  EXPECT_EQ(Size("1048576"), 1048576u);
  EXPECT_EQ(Size("512B"), 512u);
  EXPECT_EQ(Size("512 b"), 512u);
}

TEST(ParseSize, BinaryUnits) {
  EXPECT_EQ(Size("64KiB"), 64u << 10);
  EXPECT_EQ(Size("512MiB"), 512u << 20);
  EXPECT_EQ(Size("4GiB"), 4ULL << 30);
  EXPECT_EQ(Size("2TiB"), 2ULL << 40);
  // Every spelling means powers of 1024: these are memory sizes.
  EXPECT_EQ(Size("1K"), 1024u);
  EXPECT_EQ(Size("1KB"), 1024u);
  EXPECT_EQ(Size("1M"), 1u << 20);
  EXPECT_EQ(Size("1MB"), 1u << 20);
  EXPECT_EQ(Size("1G"), 1u << 30);
  EXPECT_EQ(Size("1gb"), 1u << 30);
  EXPECT_EQ(Size("1T"), 1ULL << 40);
  EXPECT_EQ(Size("4gib"), 4ULL << 30);
  EXPECT_EQ(Size("4 GiB"), 4ULL << 30);
  EXPECT_EQ(Size("  4GiB"), 4ULL << 30);
}

TEST(ParseSize, Rejects) {
  for (const char* bad :
       {"", " ", "GiB", "4XB", "4 GiBs", "-1", "+1", "1.5GiB", "0x10", "4 G B", "4KiB4", "four"}) {
    auto r = parse_size(bad);
    EXPECT_FALSE(r.ok()) << "\"" << bad << "\" gave " << (r.ok() ? *r : 0);
    if (!r.ok()) {
      EXPECT_EQ(r.error().code, dc::Errc::kInvalidArgument);
    }
  }
}

TEST(ParseSize, Overflow) {
  EXPECT_FALSE(parse_size("99999999999999999999").ok());
  EXPECT_FALSE(parse_size("17179869184TiB").ok());        // 2^34 * 2^40
  EXPECT_FALSE(parse_size("18014398509481984KiB").ok());  // 2^54 * 2^10
  EXPECT_EQ(Size("16777215TiB"), 16777215ULL << 40);
  EXPECT_EQ(Size("1844674407370955160"), 1844674407370955160ULL);
}

TEST(ParseSize, UnknownUnitMessageNamesTheUnit) {
  auto r = parse_size("4XB");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("xb"), std::string::npos) << r.error().message;
}

TEST(FormatSize, Values) {
  EXPECT_EQ(format_size(0), "0 B");
  EXPECT_EQ(format_size(1), "1 B");
  EXPECT_EQ(format_size(1023), "1023 B");
  EXPECT_EQ(format_size(1024), "1.0 KiB");
  EXPECT_EQ(format_size(1536), "1.5 KiB");
  EXPECT_EQ(format_size(64u << 10), "64.0 KiB");
  EXPECT_EQ(format_size(16u << 20), "16.0 MiB");
  EXPECT_EQ(format_size(4ULL << 30), "4.0 GiB");
  EXPECT_EQ(format_size(1ULL << 40), "1.0 TiB");
  EXPECT_EQ(format_size(2048ULL << 40), "2048.0 TiB");  // no unit past TiB
  EXPECT_FALSE(format_size(UINT64_MAX).empty());
}

TEST(FormatSize, RoundTripsWholeUnits) {
  for (uint64_t v : {1ULL << 10, 64ULL << 10, 1ULL << 20, 3ULL << 30, 5ULL << 40}) {
    std::string s = format_size(v);
    // "64.0 KiB" -> "64 KiB"
    const size_t dot = s.find(".0 ");
    ASSERT_NE(dot, std::string::npos) << s;
    s.erase(dot, 2);
    EXPECT_EQ(Size(s), v) << s;
  }
}

}  // namespace
