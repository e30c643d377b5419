// The file key is computed independently by shims, agents and peers of different
// releases: its value is ABI, not an implementation detail (include/dc/file_key.h).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <utility>

#include "dc/file_key.h"

namespace {

using namespace dc;

FileKey key(const std::string& dataset, const std::string& path, uint64_t size, uint64_t mtime,
            uint64_t ino = 1, uint64_t ctime = 1) {
  return make_file_key(dataset.data(), dataset.size(), path.data(), path.size(),
                       FileVersion{size, mtime, ino, ctime});
}

// The documented encoding, written out byte by byte, independently of the
// streaming code in file_key.h.
std::string encoding(const std::string& dataset, const std::string& path, const FileVersion& v) {
  std::string out;
  auto u64 = [&](uint64_t x) {
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(x >> (8 * i)));
  };
  u64(dataset.size());
  out += dataset;
  u64(path.size());
  out += path;
  u64(v.size);
  u64(v.mtime_ns);
  u64(v.ino);
  u64(v.ctime_ns);
  return out;
}

std::string long_path() {
  std::string p;
  for (int i = 0; i < 1000; ++i)
    p.push_back(static_cast<char>((i * 7 + 3) % 251 ? (i * 7 + 3) % 251 : 1));
  return p;
}

// Golden values, computed with the system libxxhash's one-shot XXH3_128bits over
// the documented encoding (built by a separate script, not by this code). If this
// fails the key function changed: every cached block and peer would be keyed
// differently. Do not update the numbers; bump the ABI major instead.
TEST(FileKey, GoldenValues) {
  const FileKey a = key("imagenet", "train/n01440764/n01440764_10026.JPEG", 110592,
                        1700000000123456789ULL, 131077, 1700000000987654321ULL);
  EXPECT_EQ(a.hi, 0x67b8379e5a7fb381ULL);
  EXPECT_EQ(a.lo, 0xd0fd211a9f4f6869ULL);

  const FileKey empty = key("", "", 0, 0, 0, 0);
  EXPECT_EQ(empty.hi, 0x505cd4e066810498ULL);
  EXPECT_EQ(empty.lo, 0xe255222d4cbbadbaULL);

  const FileKey max = key("ds", "abcdefgh", UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX);
  EXPECT_EQ(max.hi, 0x4788fa095b3d82a9ULL);
  EXPECT_EQ(max.lo, 0xec363e7192bd2c99ULL);

  // Longer than XXH3's internal buffer: the streaming path must equal the one-shot.
  const FileKey lng = key("ds", long_path(), 4096, 1, 2, 3);
  EXPECT_EQ(lng.hi, 0x6d5f5f0a8370986aULL);
  EXPECT_EQ(lng.lo, 0x2dd46c40dbed9cf6ULL);
}

// The key is exactly XXH3-128 of the documented encoding, for any input.
TEST(FileKey, IsXxh3Of128DocumentedEncoding) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 2000; ++i) {
    const std::string ds(rng() % 20, static_cast<char>(rng()));
    const std::string path(rng() % 600, static_cast<char>(rng()));
    const FileVersion v{rng(), rng(), rng(), rng()};
    const std::string enc = encoding(ds, path, v);
    const XXH128_hash_t h = XXH3_128bits(enc.data(), enc.size());
    const FileKey k = make_file_key(ds.data(), ds.size(), path.data(), path.size(), v);
    EXPECT_EQ(k.hi, h.high64);
    EXPECT_EQ(k.lo, h.low64);
  }
  // Either side of the size hashed in one call from the stack (the rest stream).
  for (size_t n = detail::kKeyInlineBytes - 60; n < detail::kKeyInlineBytes + 10; ++n) {
    const std::string ds = "ds", path(n, 'p');
    const FileVersion v{1, 2, 3, 4};
    const std::string enc = encoding(ds, path, v);
    const XXH128_hash_t h = XXH3_128bits(enc.data(), enc.size());
    EXPECT_EQ(make_file_key(ds.data(), ds.size(), path.data(), path.size(), v),
              (FileKey{h.high64, h.low64}))
        << n;
  }
}

TEST(FileKey, FromStatUsesSizeMtimeInodeCtime) {
  struct stat st {};
  st.st_size = 110592;
  st.st_mtim = {1700000000, 123456789};
  st.st_ino = 131077;
  st.st_ctim = {1700000000, 987654321};
  // Fields outside the key do not change it: the same file seen from another node
  // (another st_dev) or read since (another atime) keeps its key.
  st.st_dev = 0x803;
  st.st_atim = {1800000000, 5};
  st.st_nlink = 3;
  const FileVersion v = file_version_of(st);
  EXPECT_EQ(v.size, 110592u);
  EXPECT_EQ(v.mtime_ns, 1700000000123456789ULL);
  EXPECT_EQ(v.ino, 131077u);
  EXPECT_EQ(v.ctime_ns, 1700000000987654321ULL);
  const std::string ds = "imagenet", path = "train/n01440764/n01440764_10026.JPEG";
  const FileKey k = file_key_of(ds.data(), ds.size(), path.data(), path.size(), st);
  EXPECT_EQ(k.hi, 0x67b8379e5a7fb381ULL);
  EXPECT_EQ(k.lo, 0xd0fd211a9f4f6869ULL);
  st.st_dev = 0x2a;
  st.st_atim = {1, 1};
  EXPECT_EQ(file_key_of(ds.data(), ds.size(), path.data(), path.size(), st), k);
}

// cp -p, rsync -a, tar -x and touch -r + rename keep size and mtime but not the
// inode number: the replacement must get another key.
TEST(FileKey, ChangesWithInode) {
  const FileKey base =
      key("ds", "shard-0001.tar", 1 << 30, 1700000000000000000ULL, 4242, 1700000005000000000ULL);
  EXPECT_NE(
      key("ds", "shard-0001.tar", 1 << 30, 1700000000000000000ULL, 4243, 1700000005000000000ULL),
      base);
  EXPECT_NE(key("ds", "shard-0001.tar", 1 << 30, 1700000000000000000ULL, 0, 1700000005000000000ULL),
            base);
}

// An in-place rewrite (or a recycled inode number) restoring size and mtime still
// moves the ctime, which user space cannot set.
TEST(FileKey, ChangesWithCtime) {
  const FileKey base =
      key("ds", "shard-0001.tar", 1 << 30, 1700000000000000000ULL, 4242, 1700000005000000000ULL);
  EXPECT_NE(
      key("ds", "shard-0001.tar", 1 << 30, 1700000000000000000ULL, 4242, 1700000005000000001ULL),
      base);
  EXPECT_NE(
      key("ds", "shard-0001.tar", 1 << 30, 1700000000000000000ULL, 4242, 1700000006000000000ULL),
      base);
}

TEST(FileKey, Deterministic) {
  const FileKey a = key("ds", "a/b/c.bin", 4096, 123, 9, 456);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(key("ds", "a/b/c.bin", 4096, 123, 9, 456), a);
  // Only the given length of the buffers counts, not what follows them.
  const char buf1[] = "dsXXXX", buf2[] = "dsYYYY";
  const char p1[] = "a/b/c.binZZ", p2[] = "a/b/c.bin";
  EXPECT_EQ(make_file_key(buf1, 2, p1, 9, FileVersion{4096, 123, 9, 456}), a);
  EXPECT_EQ(make_file_key(buf2, 2, p2, 9, FileVersion{4096, 123, 9, 456}), a);
}

TEST(FileKey, EveryFieldMatters) {
  const FileKey base =
      key("ds", "dir/file.bin", 1 << 20, 1700000000000000000ULL, 77, 1700000000000000005ULL);
  const FileKey changed[] = {
      key("dt", "dir/file.bin", 1 << 20, 1700000000000000000ULL, 77, 1700000000000000005ULL),
      key("ds", "dir/file.bim", 1 << 20, 1700000000000000000ULL, 77, 1700000000000000005ULL),
      key("ds", "dir/file.bin", (1 << 20) + 1, 1700000000000000000ULL, 77, 1700000000000000005ULL),
      key("ds", "dir/file.bin", 1 << 20, 1700000000000000001ULL, 77, 1700000000000000005ULL),
      key("ds", "dir/file.bin", 1 << 20, 1700000000000000000ULL, 78, 1700000000000000005ULL),
      key("ds", "dir/file.bin", 1 << 20, 1700000000000000000ULL, 77, 1700000000000000006ULL),
  };
  for (const FileKey& k : changed) {
    // Each half changes on its own, so both words carry every input bit.
    EXPECT_NE(k.hi, base.hi);
    EXPECT_NE(k.lo, base.lo);
  }
}

TEST(FileKey, NumericFieldsAreNotInterchangeable) {
  EXPECT_NE(key("ds", "f", 1, 2, 3, 4), key("ds", "f", 2, 1, 3, 4));
  EXPECT_NE(key("ds", "f", 1, 2, 3, 4), key("ds", "f", 1, 2, 4, 3));
  EXPECT_NE(key("ds", "f", 1, 2, 3, 4), key("ds", "f", 3, 2, 1, 4));
  EXPECT_NE(key("ds", "f", 1, 2, 3, 4), key("ds", "f", 1, 4, 3, 2));
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

TEST(FileKey, NoCollisionsAmongSimilarFiles) {
  std::set<std::pair<uint64_t, uint64_t>> seen;
  for (int i = 0; i < 20000; ++i) {
    const FileKey k = key("ds", "train/" + std::to_string(i) + ".jpg", 100000, 1);
    EXPECT_TRUE(seen.insert({k.hi, k.lo}).second) << i;
  }
  // Successive inode numbers and ctime ticks of one path (a shard rewritten often).
  for (uint64_t i = 0; i < 10000; ++i) {
    EXPECT_TRUE(seen.insert({key("ds", "shard", 1 << 20, 5, 1000 + i, 5).hi, 0}).second) << i;
    EXPECT_TRUE(seen.insert({key("ds", "shard", 1 << 20, 5, 999, 5 + i).hi, 1}).second) << i;
  }
}

TEST(FileKey, NeverTheEmptyKey) {
  std::mt19937_64 rng(1);
  for (int i = 0; i < 10000; ++i) {
    const std::string path(rng() % 40, static_cast<char>(rng()));
    EXPECT_FALSE(key("ds", path, rng(), rng(), rng(), rng()).empty());
  }
}

TEST(FileKey, EmptyMeansNone) {
  EXPECT_TRUE(FileKey{}.empty());
  EXPECT_FALSE((FileKey{0, 1}).empty());
  EXPECT_FALSE((FileKey{1, 0}).empty());
}

}  // namespace
