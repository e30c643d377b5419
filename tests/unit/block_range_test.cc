// Range fetches: the pieces of a block's pages that hold a byte range, and the
// range's CRC combined from segment CRCs, checked against the bytes themselves.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "daemon/cache/block_range.h"
#include "daemon/net/crc32c.h"

namespace {

using namespace dc;

constexpr size_t kPage = 64 * 1024;

// A block of `len` random bytes over pages laid out as an arena would: some
// adjacent in memory, some not.
struct TestBlock {
  std::vector<uint8_t> memory;  // pages live here, with gaps
  std::vector<iovec> pages;
  std::vector<uint8_t> bytes;   // the block, contiguous, for reference
  std::vector<uint32_t> segs;
  TestBlock(size_t len, uint32_t seed) {
    std::mt19937 rng(seed);
    const size_t n = (len + kPage - 1) / kPage;
    memory.resize(n * 2 * kPage);
    bytes.resize(len);
    for (auto& b : bytes) b = static_cast<uint8_t>(rng());
    // Page i at slot order: 0,1 adjacent, then gaps.
    size_t slot = 0;
    for (size_t i = 0, off = 0; i < n; ++i) {
      const size_t m = std::min(kPage, len - off);
      uint8_t* p = memory.data() + slot * kPage;
      std::copy(bytes.begin() + static_cast<long>(off), bytes.begin() + static_cast<long>(off + m), p);
      pages.push_back(iovec{p, m});
      off += m;
      slot += (i % 3 == 0) ? 1 : 2;
    }
    segment_crcs(bytes.data(), bytes.size(), &segs);
  }
};

std::vector<uint8_t> gather(const std::vector<iovec>& v) {
  std::vector<uint8_t> out;
  for (const auto& x : v) out.insert(out.end(), static_cast<uint8_t*>(x.iov_base), static_cast<uint8_t*>(x.iov_base) + x.iov_len);
  return out;
}

TEST(BlockRange, SliceHoldsExactlyTheRangeAndMergesAdjacentPages) {
  TestBlock b(1 << 20, 1);
  std::vector<iovec> out;
  slice_block(b.pages, 0, b.bytes.size(), &out);
  EXPECT_EQ(gather(out), b.bytes);
  EXPECT_LT(out.size(), b.pages.size()) << "adjacent pages merged";
  slice_block(b.pages, kPage - 10, 20, &out);
  ASSERT_EQ(out.size(), 1u) << "pages 0 and 1 are adjacent";
  EXPECT_EQ(gather(out), std::vector<uint8_t>(b.bytes.begin() + kPage - 10, b.bytes.begin() + kPage + 10));
  slice_block(b.pages, 5, 0, &out);
  EXPECT_TRUE(out.empty());
}

TEST(BlockRange, CrcOfAnyRangeMatchesTheBytes) {
  for (size_t len : {size_t{1} << 20, size_t{1500000 - (1 << 20)}, size_t{100}, size_t{32768}, size_t{32769}}) {
    TestBlock b(len, static_cast<uint32_t>(len));
    std::mt19937 rng(7);
    std::vector<std::pair<size_t, size_t>> ranges = {
        {0, len}, {0, 1}, {len - 1, 1}, {0, std::min<size_t>(len, kCrcSegment)}, {len / 2, len - len / 2}};
    if (len > 2 * kCrcSegment) {
      ranges.push_back({kCrcSegment, kCrcSegment});          // one whole segment
      ranges.push_back({kCrcSegment - 1, kCrcSegment + 2});  // partial edges around it
      ranges.push_back({kCrcSegment + 1, kCrcSegment - 2});  // inside one segment
      ranges.push_back({3, len - 3});
    }
    for (int i = 0; i < 200; ++i) {
      const size_t off = rng() % len;
      ranges.push_back({off, 1 + rng() % (len - off)});
    }
    for (auto [off, n] : ranges) {
      const uint32_t want = crc32c(b.bytes.data() + off, n);
      EXPECT_EQ(block_range_crc(b.pages, b.segs, len, off, n), want) << "len " << len << " range " << off << "+" << n;
      EXPECT_EQ(block_range_crc(b.pages, {}, len, off, n), want) << "no segment CRCs";
      std::vector<iovec> out;
      slice_block(b.pages, off, n, &out);
      EXPECT_EQ(crc32c_iov(out.data(), static_cast<int>(out.size())), want);
    }
  }
}

TEST(BlockRange, WrongSegmentCrcsFallBackToTheBytes) {
  TestBlock b(1 << 20, 3);
  std::vector<uint32_t> short_segs(b.segs.begin(), b.segs.begin() + 3);
  EXPECT_EQ(block_range_crc(b.pages, short_segs, b.bytes.size(), 100, 200000), crc32c(b.bytes.data() + 100, 200000));
}

}  // namespace
