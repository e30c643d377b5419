// CRC32C against a bitwise reference, and the algebra the transfer path relies on:
// combining segment CRCs must give exactly the CRC of the bytes.
#include <gtest/gtest.h>

#include <isa-l/crc.h>
#include <sys/uio.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "daemon/net/crc32c.h"

namespace {

using namespace dc;

// Castagnoli, reflected, one bit at a time: slow and obviously right.
uint32_t reference_crc32c(const void* data, size_t len) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < len; ++i) {
    c ^= p[i];
    for (int b = 0; b < 8; ++b) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
  }
  return ~c;
}

std::vector<unsigned char> random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<unsigned char> v(n);
  for (auto& b : v) b = static_cast<unsigned char>(rng());
  return v;
}

TEST(Crc32c, CheckValues) {
  EXPECT_EQ(reference_crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c("", 0), 0u);
  // RFC 3720 B.4: 32 bytes of zeros, of 0xFF.
  const std::vector<unsigned char> zeros(32, 0), ones(32, 0xFF);
  EXPECT_EQ(crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
  EXPECT_EQ(crc32c(ones.data(), ones.size()), 0x62A8AB43u);
}

// Pins isa-l's convention that crc32c() wraps: no inversion on entry or exit.
TEST(Crc32c, IsalCrc32IscsiWorksOnTheRawRegister) {
  unsigned char s[] = "123456789";
  EXPECT_EQ(crc32_iscsi(s, 9, 0xFFFFFFFFu), ~0xE3069283u);
  EXPECT_EQ(crc32_iscsi(s, 0, 0x12345678u), 0x12345678u);
}

TEST(Crc32c, MatchesReferenceForManyLengths) {
  const auto buf = random_bytes(70000, 1);
  std::vector<size_t> lengths;
  for (size_t n = 0; n <= 300; ++n) lengths.push_back(n);
  for (size_t n : {511, 512, 513, 4095, 4096, 4097, 32767, 32768, 32769, 65536, 70000})
    lengths.push_back(n);
  for (size_t off : {0, 1, 3, 7}) {  // unaligned starts take different isa-l paths
    for (size_t n : lengths) {
      if (off + n > buf.size()) continue;
      ASSERT_EQ(crc32c(buf.data() + off, n), reference_crc32c(buf.data() + off, n))
          << "len " << n << " offset " << off;
    }
  }
}

TEST(Crc32c, ContinuationEqualsWhole) {
  const auto buf = random_bytes(10000, 2);
  const uint32_t whole = crc32c(buf.data(), buf.size());
  for (size_t split : {0, 1, 4999, 9999, 10000}) {
    EXPECT_EQ(crc32c(buf.data() + split, buf.size() - split, crc32c(buf.data(), split)), whole);
  }
}

TEST(Crc32c, CombineEqualsCrcOfConcatenation) {
  const auto buf = random_bytes(300000, 3);
  std::mt19937_64 rng(4);
  for (int i = 0; i < 500; ++i) {
    const size_t total = rng() % buf.size();
    size_t split = total == 0 ? 0 : rng() % (total + 1);
    if (i % 10 == 0) split = 0;      // empty A
    if (i % 10 == 1) split = total;  // empty B
    const uint32_t a = crc32c(buf.data(), split);
    const uint32_t b = crc32c(buf.data() + split, total - split);
    ASSERT_EQ(crc32c_combine(a, b, total - split), crc32c(buf.data(), total))
        << "total " << total << " split " << split;
  }
  EXPECT_EQ(crc32c_combine(0, 0, 0), 0u);
}

// Shifts by 2^32 bytes and more use the top of the operator table; checked against
// continuing a CRC over 4 GiB of zeros (well under a second at isa-l speed).
TEST(Crc32c, CombineHandlesLengthsPastFourGiB) {
  const std::vector<unsigned char> zeros(1 << 20, 0);
  const size_t four_gib = size_t{1} << 32;
  uint32_t zero_crc = crc32c(zeros.data(), zeros.size());
  for (size_t len = zeros.size(); len < four_gib; len *= 2) {
    zero_crc = crc32c_combine(zero_crc, zero_crc, len);  // crc(Z^2L) from crc(Z^L)
  }
  const uint32_t a = crc32c("123456789", 9);
  uint32_t direct = a;
  for (size_t done = 0; done < four_gib; done += zeros.size()) {
    direct = crc32c(zeros.data(), zeros.size(), direct);
  }
  EXPECT_EQ(crc32c_combine(a, zero_crc, four_gib), direct);
}

TEST(Crc32c, SegmentsCombineToDirectCrc) {
  const auto buf = random_bytes(1 << 20, 5);
  std::vector<uint32_t> segs;
  for (size_t total : {size_t{0}, size_t{1}, kCrcSegment - 1, kCrcSegment, kCrcSegment + 1,
                       size_t{1} << 20, (size_t{1} << 20) - 12345}) {
    segment_crcs(buf.data(), total, &segs);
    ASSERT_EQ(segs.size(), (total + kCrcSegment - 1) / kCrcSegment);
    for (size_t s = 0; s < segs.size(); ++s) {
      const size_t off = s * kCrcSegment;
      ASSERT_EQ(segs[s], crc32c(buf.data() + off, std::min(kCrcSegment, total - off)));
    }
    const auto whole = range_crc(segs, total);
    ASSERT_TRUE(whole.has_value()) << total;
    EXPECT_EQ(*whole, crc32c(buf.data(), total)) << total;
    // Every aligned sub-range, including ones ending at a short last segment.
    for (size_t first = 0; first <= segs.size(); ++first) {
      for (size_t last = first; last <= segs.size(); ++last) {
        const size_t off = first * kCrcSegment;
        const size_t end = std::min(last * kCrcSegment, total);
        if (off > end) continue;
        const auto r = range_crc(segs, total, off, end - off);
        ASSERT_TRUE(r.has_value()) << total << " " << off << " " << end;
        ASSERT_EQ(*r, crc32c(buf.data() + off, end - off)) << total << " " << off << " " << end;
      }
    }
  }
}

TEST(Crc32c, RangeCrcRefusesUnalignedOrInconsistentInput) {
  const auto buf = random_bytes(3 * kCrcSegment, 6);
  std::vector<uint32_t> segs;
  segment_crcs(buf.data(), buf.size(), &segs);
  EXPECT_FALSE(range_crc(segs, buf.size(), 1, kCrcSegment).has_value());
  EXPECT_FALSE(range_crc(segs, buf.size(), 0, kCrcSegment + 1).has_value());
  EXPECT_FALSE(range_crc(segs, buf.size() + 1).has_value());  // segs too few
  EXPECT_FALSE(range_crc(segs, buf.size(), buf.size() + 1, 0).has_value());
  EXPECT_EQ(range_crc(segs, buf.size(), kCrcSegment, 0), 0u);
  EXPECT_EQ(range_crc(segs, buf.size(), kCrcSegment),
            crc32c(buf.data() + kCrcSegment, 2 * kCrcSegment));
}

// The arena keeps a 1 MiB block as 16 scattered 64 KiB pages.
TEST(Crc32c, IovecEqualsContiguous) {
  const size_t page = 64 * 1024;
  const auto block = random_bytes(16 * page - 777, 7);  // short last page
  std::vector<std::vector<unsigned char>> pages;
  std::vector<iovec> iov;
  for (size_t off = 0; off < block.size(); off += page) {
    pages.emplace_back(
        block.begin() + static_cast<std::ptrdiff_t>(off),
        block.begin() + static_cast<std::ptrdiff_t>(std::min(off + page, block.size())));
  }
  for (auto& p : pages) iov.push_back({p.data(), p.size()});
  const int n = static_cast<int>(iov.size());
  EXPECT_EQ(crc32c_iov(iov.data(), n), crc32c(block.data(), block.size()));
  EXPECT_EQ(crc32c_iov(iov.data(), 0), 0u);

  std::vector<uint32_t> direct, scattered;
  segment_crcs(block.data(), block.size(), &direct);
  segment_crcs_iov(iov.data(), n, &scattered);
  EXPECT_EQ(scattered, direct);

  // Odd-sized pieces make segments straddle buffer boundaries.
  std::vector<iovec> odd;
  for (size_t off = 0; off < block.size(); off += 10007) {
    odd.push_back({const_cast<unsigned char*>(block.data()) + off,
                   std::min<size_t>(10007, block.size() - off)});
  }
  odd.push_back({nullptr, 0});
  segment_crcs_iov(odd.data(), static_cast<int>(odd.size()), &scattered);
  EXPECT_EQ(scattered, direct);
  EXPECT_EQ(crc32c_iov(odd.data(), static_cast<int>(odd.size())),
            crc32c(block.data(), block.size()));
}

// Best of `runs` passes over `bytes`, in GB/s: the machine is shared, so the fastest
// pass is the one least disturbed by other work.
template <typename F>
double best_gbps(size_t bytes, int runs, F&& pass) {
  double best = 0;
  for (int i = 0; i < runs; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    pass();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, static_cast<double>(bytes) / s / 1e9);
  }
  return best;
}

// Informational: throughput of crc32c() on 64 MiB, against isa-l's portable table
// code and the bitwise reference measured in the same run.
TEST(Crc32c, Throughput) {
  const auto buf = random_bytes(64 << 20, 8);
  uint32_t sink = crc32c(buf.data(), buf.size());  // fault the pages in first
  const double fast = best_gbps(buf.size(), 8, [&] { sink ^= crc32c(buf.data(), buf.size()); });
  std::vector<uint32_t> segs;
  const double seg = best_gbps(buf.size(), 8, [&] { segment_crcs(buf.data(), buf.size(), &segs); });
  auto* raw = const_cast<unsigned char*>(buf.data());
  const double table = best_gbps(
      buf.size(), 2, [&] { sink ^= crc32_iscsi_base(raw, static_cast<int>(buf.size()), 0); });
  const size_t small = 4 << 20;  // the bitwise loop would take seconds on 64 MiB
  const double bitwise = best_gbps(small, 2, [&] { sink ^= reference_crc32c(buf.data(), small); });

  std::printf(
      "crc32c 64 MiB: %.2f GB/s (isa-l dispatched); segment_crcs %.2f GB/s; "
      "isa-l base table %.2f GB/s (x%.0f); bitwise reference %.3f GB/s (x%.0f) [%08x]\n",
      fast, seg, table, fast / table, bitwise, fast / bitwise, sink);
}

}  // namespace
