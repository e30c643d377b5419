// File identity shared by shim, agent and peers: which version of which file a
// cached block holds. The function must give the same answer on every node and in
// every release of a given ABI major (kArenaAbiMajor, peer::kVersion): a shim
// looks blocks up by it in the arena, peers name blocks by it on the wire.
//
// A version is (dataset name, path relative to the dataset root, size, mtime ns,
// inode number, ctime ns). Size and mtime alone are not enough: `cp -p`,
// `rsync -a`, `tar -x` and `touch -r` reproduce them, and a rename then puts
// other bytes under the same (path, size, mtime). The inode number and the ctime
// cannot be set from user space: a replaced file has a new inode (or, for a
// recycled inode number, a new ctime), an in-place rewrite a new ctime. Both are
// what a shared filesystem (NFS, Lustre, CephFS) reports identically on every
// client, so the key of one file is the same on every node of a cluster. st_dev is
// left out on purpose: it is a per-machine number for a network filesystem.
//
// Key = XXH3-128 (xxHash >= 0.8.0, where XXH3 is frozen; seed 0) over this byte
// encoding, all integers little-endian:
//
//   u64 dataset_len | dataset bytes | u64 path_len | path bytes |
//   u64 size | u64 mtime_ns | u64 ino | u64 ctime_ns
//
// FileKey::hi is the digest's high64, FileKey::lo its low64; the all-zero digest
// (which means "no key") becomes lo = 1. The length prefixes keep ("ab","c") apart
// from ("a","bc"). tests/unit/file_key_test.cc and arena_abi_test.cc pin values.
//
// Header-only xxHash (XXH_INLINE_ALL): the shim links neither libstdc++ nor
// libxxhash.so, and the agent cannot pick up a different library version at run
// time. The hash uses no heap (the buffer or streaming state lives on the stack).
#pragma once

#include <sys/stat.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#ifndef XXH_INLINE_ALL
#define XXH_INLINE_ALL
#define DC_FILE_KEY_DEFINED_XXH_INLINE_ALL
#endif
#include <xxhash.h>
#ifdef DC_FILE_KEY_DEFINED_XXH_INLINE_ALL
#undef XXH_INLINE_ALL
#undef DC_FILE_KEY_DEFINED_XXH_INLINE_ALL
#endif

static_assert(XXH_VERSION_NUMBER >= 800, "XXH3-128 is stable (frozen output) from xxHash 0.8.0");

namespace dc {

struct FileKey {
  uint64_t hi = 0;
  uint64_t lo = 0;
  friend bool operator==(const FileKey&, const FileKey&) = default;
  bool empty() const { return hi == 0 && lo == 0; }
};

// The parts of a file's status that name one version of its bytes.
struct FileVersion {
  uint64_t size = 0;
  uint64_t mtime_ns = 0;
  uint64_t ino = 0;
  uint64_t ctime_ns = 0;
};

inline uint64_t timespec_ns(const struct timespec& t) {
  // Wraps for times before 1970 or after 2554: still one fixed value per time.
  return static_cast<uint64_t>(t.tv_sec) * 1000000000ULL + static_cast<uint64_t>(t.tv_nsec);
}

inline FileVersion file_version_of(const struct stat& st) {
  return FileVersion{static_cast<uint64_t>(st.st_size), timespec_ns(st.st_mtim),
                     static_cast<uint64_t>(st.st_ino), timespec_ns(st.st_ctim)};
}

namespace detail {

inline unsigned char* key_put_u64(unsigned char* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<unsigned char>(v >> (8 * i));
  return out + 8;
}

inline void key_update_u64(XXH3_state_t* s, uint64_t v) {
  unsigned char b[8];
  key_put_u64(b, v);
  XXH3_128bits_update(s, b, sizeof b);
}

inline FileKey key_of_digest(XXH128_hash_t h) {
  FileKey k{h.high64, h.low64};
  if (k.empty()) k.lo = 1;  // the all-zero key means "none"
  return k;
}

// Encodings up to this size (every key the shim computes: its paths are shorter
// than kSlotPathMax) are hashed in one call from the stack; longer ones are
// streamed. Both give the same digest (tests/unit/file_key_test.cc checks both).
inline constexpr size_t kKeyInlineBytes = 512;

}  // namespace detail

inline FileKey make_file_key(const char* dataset, size_t dataset_len, const char* rel_path,
                             size_t rel_len, const FileVersion& v) {
  const size_t total = 6 * 8 + dataset_len + rel_len;
  if (total <= detail::kKeyInlineBytes) {
    unsigned char buf[detail::kKeyInlineBytes];
    unsigned char* p = detail::key_put_u64(buf, dataset_len);
    if (dataset_len) memcpy(p, dataset, dataset_len);
    p = detail::key_put_u64(p + dataset_len, rel_len);
    if (rel_len) memcpy(p, rel_path, rel_len);
    p += rel_len;
    p = detail::key_put_u64(p, v.size);
    p = detail::key_put_u64(p, v.mtime_ns);
    p = detail::key_put_u64(p, v.ino);
    p = detail::key_put_u64(p, v.ctime_ns);
    return detail::key_of_digest(XXH3_128bits(buf, static_cast<size_t>(p - buf)));
  }
  XXH3_state_t s;
  XXH3_INITSTATE(&s);
  XXH3_128bits_reset(&s);
  detail::key_update_u64(&s, dataset_len);
  if (dataset_len) XXH3_128bits_update(&s, dataset, dataset_len);
  detail::key_update_u64(&s, rel_len);
  if (rel_len) XXH3_128bits_update(&s, rel_path, rel_len);
  detail::key_update_u64(&s, v.size);
  detail::key_update_u64(&s, v.mtime_ns);
  detail::key_update_u64(&s, v.ino);
  detail::key_update_u64(&s, v.ctime_ns);
  return detail::key_of_digest(XXH3_128bits_digest(&s));
}

// The one way shim and agent key an open file: from its fstat.
inline FileKey file_key_of(const char* dataset, size_t dataset_len, const char* rel_path,
                           size_t rel_len, const struct stat& st) {
  return make_file_key(dataset, dataset_len, rel_path, rel_len, file_version_of(st));
}

}  // namespace dc
