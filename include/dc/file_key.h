// File identity shared by shim, agent and (later) peers: a 128-bit hash of
// (dataset name, path relative to the dataset root, size, mtime in ns). A file
// rewritten with a new size or mtime gets a new key, so its old blocks are never
// served for it. The function must give the same answer on every node and in every
// release of a given ABI major: it is part of the arena and peer ABI.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace dc {

struct FileKey {
  uint64_t hi = 0;
  uint64_t lo = 0;
  friend bool operator==(const FileKey&, const FileKey&) = default;
  bool empty() const { return hi == 0 && lo == 0; }
};

namespace detail {

inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

inline uint64_t avalanche64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// Two 64-bit lanes, each absorbing 8-byte little-endian words with a
// multiply-rotate step, cross-fed so every input bit reaches both halves.
struct KeyHasher {
  uint64_t a = 0x6a09e667f3bcc908ULL;
  uint64_t b = 0xbb67ae8584caa73bULL;
  uint64_t total = 0;

  void word(uint64_t w) {
    a = rotl64(a ^ (w * 0x87c37b91114253d5ULL), 31) * 0x4cf5ad432745937fULL;
    b = rotl64(b + (w * 0x4cf5ad432745937fULL), 27) * 0x87c37b91114253d5ULL;
    a += b;
    b ^= rotl64(a, 17);
  }
  void bytes(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    word(n);  // length prefix keeps ("ab","c") apart from ("a","bc")
    while (n >= 8) {
      uint64_t w = 0;
      for (int i = 0; i < 8; ++i) w |= static_cast<uint64_t>(p[i]) << (8 * i);
      word(w);
      p += 8;
      n -= 8;
    }
    uint64_t w = 0;
    for (size_t i = 0; i < n; ++i) w |= static_cast<uint64_t>(p[i]) << (8 * i);
    word(w ^ 0x0100000000000000ULL);
    total += n;
  }
  FileKey finish() const {
    FileKey k{avalanche64(a ^ rotl64(b, 32)), avalanche64(b + a * 3)};
    if (k.empty()) k.lo = 1;  // the all-zero key means "none"
    return k;
  }
};

}  // namespace detail

inline FileKey make_file_key(const char* dataset, size_t dataset_len, const char* rel_path,
                             size_t rel_len, uint64_t size, uint64_t mtime_ns) {
  detail::KeyHasher h;
  h.bytes(dataset, dataset_len);
  h.bytes(rel_path, rel_len);
  h.word(size);
  h.word(mtime_ns);
  return h.finish();
}

}  // namespace dc
