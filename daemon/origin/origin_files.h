// Opening dataset files for the agent. A client names a file by (dataset, path
// relative to the root); the agent never follows a path out of the root (openat2
// RESOLVE_BENEATH), checks it is a regular file, and recomputes its file key: a
// client can neither read outside a dataset nor bind a key to other bytes.
//
// Threads: open_file() makes the blocking metadata calls and runs on an
// OriginWorkers thread; it reads only the immutable dataset list and the root
// descriptors (under roots_mu_). Everything else is the agent's loop thread's.
#pragma once

#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "daemon/config/config.h"
#include "daemon/origin/origin_fd.h"
#include "dc/file_key.h"

namespace dc {

// A copy holds the descriptor open (see origin_fd.h): keep one only as long as
// something will still read through it.
struct OriginFile {
  OriginFdRef fd;
  uint64_t size = 0;
  FileKey key;
  uint32_t direct_align = 0;  // O_DIRECT: reads must be multiples of this; 0 if buffered
};

class OriginFiles {
 public:
  OriginFiles(const std::vector<DatasetConfig>& datasets, uint32_t max_open);
  ~OriginFiles();
  OriginFiles(const OriginFiles&) = delete;
  OriginFiles& operator=(const OriginFiles&) = delete;

  // The open file whose version is `key`, if one is kept open (and it becomes
  // the most recently used). No system call.
  std::optional<OriginFile> find(FileKey key);
  // Opens (dataset_id, rel) below its root and computes its key. Blocking
  // metadata calls (openat2, fstat): call it on a worker thread, never the loop.
  Result<OriginFile> open_file(uint32_t dataset_id, const std::string& rel) const;
  // Keeps `file`, just opened as (dataset_id, rel), for find(); past max_open
  // files the least recently used is let go (closed once no read holds it).
  void adopt(uint32_t dataset_id, const std::string& rel, const OriginFile& file);
  // Keys previously served for this path (for invalidation of older versions).
  std::vector<FileKey> keys_seen(uint32_t dataset_id, const std::string& rel) const;
  void forget(FileKey key);
  size_t open_count() const { return open_.size(); }

  // A relative path is acceptable iff it is non-empty, not absolute, and has no
  // empty, "." or ".." component.
  static bool valid_relative_path(const std::string& rel);

 private:
  int root_fd(uint32_t dataset_id) const;

  struct Entry {
    OriginFile file;
    std::list<FileKey>::iterator lru;
  };
  struct KeyHash {
    size_t operator()(const FileKey& k) const { return static_cast<size_t>(k.lo ^ k.hi); }
  };
  const std::vector<DatasetConfig> datasets_;
  mutable std::mutex roots_mu_;
  mutable std::vector<int> root_fds_;  // guarded by roots_mu_
  uint32_t max_open_;
  std::unordered_map<FileKey, Entry, KeyHash> open_;
  std::list<FileKey> lru_;  // front: most recent
  std::unordered_map<std::string, std::vector<FileKey>> keys_by_path_;
};

}  // namespace dc
