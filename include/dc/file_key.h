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
// time. The hash uses no heap (the streaming state lives on the stack).
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

inline void key_put_u64(XXH3_state_t* s, uint64_t v) {
  unsigned char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
  XXH3_128bits_update(s, b, sizeof b);
}

inline void key_put_bytes(XXH3_state_t* s, const char* p, size_t n) {
  key_put_u64(s, n);
  if (n) XXH3_128bits_update(s, p, n);
}

}  // namespace detail

inline FileKey make_file_key(const char* dataset, size_t dataset_len, const char* rel_path,
                             size_t rel_len, const FileVersion& v) {
  XXH3_state_t s;
  XXH3_INITSTATE(&s);
  XXH3_128bits_reset(&s);
  detail::key_put_bytes(&s, dataset, dataset_len);
  detail::key_put_bytes(&s, rel_path, rel_len);
  detail::key_put_u64(&s, v.size);
  detail::key_put_u64(&s, v.mtime_ns);
  detail::key_put_u64(&s, v.ino);
  detail::key_put_u64(&s, v.ctime_ns);
  const XXH128_hash_t h = XXH3_128bits_digest(&s);
  FileKey k{h.high64, h.low64};
  if (k.empty()) k.lo = 1;  // the all-zero key means "none"
  return k;
}

// The one way shim and agent key an open file: from its fstat.
inline FileKey file_key_of(const char* dataset, size_t dataset_len, const char* rel_path,
                           size_t rel_len, const struct stat& st) {
  return make_file_key(dataset, dataset_len, rel_path, rel_len, file_version_of(st));
}

}  // namespace dc
