// The file key is computed independently by shims, the agent and (later) peers
// of different releases: its value is ABI, not an implementation detail.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <utility>

#include "dc/file_key.h"

namespace {

using namespace dc;

FileKey key(const std::string& dataset, const std::string& path, uint64_t size, uint64_t mtime) {
  return make_file_key(dataset.data(), dataset.size(), path.data(), path.size(), size, mtime);
}

// Golden values computed once from the reference implementation. If this fails the
// key function changed: every cached block and peer would be keyed differently.
// Do not update the numbers; bump the ABI major instead.
TEST(FileKey, GoldenValues) {
  const FileKey a =
      key("imagenet", "train/n01440764/n01440764_10026.JPEG", 110592, 1700000000123456789ULL);
  EXPECT_EQ(a.hi, 0xa1c5c63a43cea301ULL);
  EXPECT_EQ(a.lo, 0x1d8a3686d1eed0eaULL);

  const FileKey empty = key("", "", 0, 0);
  EXPECT_EQ(empty.hi, 0x0408e327b7d5be5dULL);
  EXPECT_EQ(empty.lo, 0x51b33c1f0ee3e0f1ULL);

  // Exactly one 8-byte word of path, so no partial tail word.
  const FileKey word = key("ds", "abcdefgh", 1, 2);
  EXPECT_EQ(word.hi, 0x6900fff0ca2dd4d1ULL);
  EXPECT_EQ(word.lo, 0x748ddeac710903f1ULL);
}

TEST(FileKey, Deterministic) {
  const FileKey a = key("ds", "a/b/c.bin", 4096, 123);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(key("ds", "a/b/c.bin", 4096, 123), a);
  // Only the given length of the buffers counts, not what follows them.
  const char buf1[] = "dsXXXX", buf2[] = "dsYYYY";
  const char p1[] = "a/b/c.binZZ", p2[] = "a/b/c.bin";
  EXPECT_EQ(make_file_key(buf1, 2, p1, 9, 4096, 123), a);
  EXPECT_EQ(make_file_key(buf2, 2, p2, 9, 4096, 123), a);
}

TEST(FileKey, EveryFieldMatters) {
  const FileKey base = key("ds", "dir/file.bin", 1 << 20, 1700000000000000000ULL);
  EXPECT_NE(key("dt", "dir/file.bin", 1 << 20, 1700000000000000000ULL), base);
  EXPECT_NE(key("ds", "dir/file.bim", 1 << 20, 1700000000000000000ULL), base);
  EXPECT_NE(key("ds", "dir/file.bin", (1 << 20) + 1, 1700000000000000000ULL), base);
  EXPECT_NE(key("ds", "dir/file.bin", 1 << 20, 1700000000000000001ULL), base);
  // Each half changes on its own, so both words carry every input bit.
  const FileKey m = key("ds", "dir/file.bin", 1 << 20, 1700000000000000001ULL);
  EXPECT_NE(m.hi, base.hi);
  EXPECT_NE(m.lo, base.lo);
}

TEST(FileKey, SizeAndMtimeAreNotInterchangeable) {
  EXPECT_NE(key("ds", "f", 1, 2), key("ds", "f", 2, 1));
  EXPECT_NE(key("ds", "f", 0, 7), key("ds", "f", 7, 0));
}

TEST(FileKey, LengthPrefixSeparatesFields) {
  EXPECT_NE(key("ab", "c", 1, 1), key("a", "bc", 1, 1));
  EXPECT_NE(key("", "abc", 1, 1), key("abc", "", 1, 1));
  EXPECT_NE(key("abcdefgh", "i", 1, 1), key("abcdefg", "hi", 1, 1));
  // Trailing NULs are part of a name, not padding.
  EXPECT_NE(key("ds", std::string("f\0", 2), 1, 1), key("ds", "f", 1, 1));
  EXPECT_NE(key("ds", std::string(8, '\0'), 1, 1), key("ds", "", 1, 1));
  EXPECT_NE(key("ds", std::string(7, '\0'), 1, 1), key("ds", std::string(8, '\0'), 1, 1));
}

TEST(FileKey, NoCollisionsAmongSimilarPaths) {
  std::set<std::pair<uint64_t, uint64_t>> seen;
  for (int i = 0; i < 20000; ++i) {
    const FileKey k = key("ds", "train/" + std::to_string(i) + ".jpg", 100000, 1);
    EXPECT_TRUE(seen.insert({k.hi, k.lo}).second) << i;
  }
}

TEST(FileKey, NeverTheEmptyKey) {
  std::mt19937_64 rng(1);
  for (int i = 0; i < 10000; ++i) {
    const std::string path(rng() % 40, static_cast<char>(rng()));
    EXPECT_FALSE(key("ds", path, rng(), rng()).empty());
  }
  // The only state that avalanches to (0, 0): finish() must still not return it.
  detail::KeyHasher h;
  h.a = 0;
  h.b = 0;
  const FileKey k = h.finish();
  EXPECT_FALSE(k.empty());
  EXPECT_EQ(k.hi, 0u);
  EXPECT_EQ(k.lo, 1u);
}

TEST(FileKey, EmptyMeansNone) {
  EXPECT_TRUE(FileKey{}.empty());
  EXPECT_FALSE((FileKey{0, 1}).empty());
  EXPECT_FALSE((FileKey{1, 0}).empty());
}

}  // namespace
