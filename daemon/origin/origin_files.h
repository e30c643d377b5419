// Opening dataset files for the agent. A client names a file by (dataset, path
// relative to the root); the agent never follows a path out of the root (openat2
// RESOLVE_BENEATH), checks it is a regular file, and recomputes its file key: a
// client can neither read outside a dataset nor bind a key to other bytes.
#pragma once

#include <cstdint>
#include <list>
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

  // The open file for `key`, opening (dataset_id, rel) if needed. kStale if the
  // file's current key differs from `key`.
  Result<OriginFile> get(uint32_t dataset_id, const std::string& rel, FileKey key);
  // Current key of (dataset_id, rel) and forgets any descriptor open for it.
  Result<FileKey> current_key(uint32_t dataset_id, const std::string& rel);
  // Keys previously served for this path (for invalidation of older versions).
  std::vector<FileKey> keys_seen(uint32_t dataset_id, const std::string& rel) const;
  void forget(FileKey key);
  size_t open_count() const { return open_.size(); }

  // A relative path is acceptable iff it is non-empty, not absolute, and has no
  // empty, "." or ".." component.
  static bool valid_relative_path(const std::string& rel);

 private:
  Result<OriginFile> open_file(uint32_t dataset_id, const std::string& rel);
  int root_fd(uint32_t dataset_id);

  struct Entry {
    OriginFile file;
    std::list<FileKey>::iterator lru;
  };
  struct KeyHash {
    size_t operator()(const FileKey& k) const { return static_cast<size_t>(k.lo ^ k.hi); }
  };
  std::vector<DatasetConfig> datasets_;
  std::vector<int> root_fds_;
  uint32_t max_open_;
  std::unordered_map<FileKey, Entry, KeyHash> open_;
  std::list<FileKey> lru_;  // front: most recent
  std::unordered_map<std::string, std::vector<FileKey>> keys_by_path_;
};

}  // namespace dc
