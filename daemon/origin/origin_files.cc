#include "daemon/origin/origin_files.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace dc {
namespace {

// The key of the file the agent itself opened, from its own fstat: the same
// function of the same stat fields as the shim's (file_key.h), so a fetch names the
// version the agent would read. With the inode and ctime in it, a file replaced at
// the path (rename, tar -x) has another key, and so never meets a descriptor
// cached for the one it replaced.
FileKey origin_file_key(const std::string& dataset, const std::string& rel, const struct stat& st) {
  return file_key_of(dataset.data(), dataset.size(), rel.data(), rel.size(), st);
}

}  // namespace

OriginFiles::OriginFiles(const std::vector<DatasetConfig>& datasets, uint32_t max_open)
    : datasets_(datasets), root_fds_(datasets.size(), -1), max_open_(max_open) {}

OriginFiles::~OriginFiles() {
  for (int fd : root_fds_)
    if (fd >= 0) close(fd);
}

bool OriginFiles::valid_relative_path(const std::string& rel) {
  if (rel.empty() || rel[0] == '/' || rel.size() > 4095) return false;
  size_t start = 0;
  while (start <= rel.size()) {
    size_t end = rel.find('/', start);
    if (end == std::string::npos) end = rel.size();
    std::string_view comp(rel.data() + start, end - start);
    if (comp.empty() || comp == "." || comp == "..") return false;
    if (comp.find('\0') != std::string_view::npos) return false;
    start = end + 1;
  }
  return true;
}

int OriginFiles::root_fd(uint32_t dataset_id) const {
  // Opened lazily and kept: the root may be mounted after the agent starts. The
  // open itself is outside the lock: a hung mount then holds only this worker.
  {
    std::lock_guard lock(roots_mu_);
    if (root_fds_[dataset_id] >= 0) return root_fds_[dataset_id];
  }
  const int fd = open(datasets_[dataset_id].path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  std::lock_guard lock(roots_mu_);
  if (root_fds_[dataset_id] >= 0)
    close(fd);  // another worker was first
  else
    root_fds_[dataset_id] = fd;
  return root_fds_[dataset_id];
}

Result<OriginFile> OriginFiles::open_file(uint32_t dataset_id, const std::string& rel) const {
  if (dataset_id >= datasets_.size()) return make_error(Errc::kInvalidArgument, "no such dataset");
  if (!valid_relative_path(rel)) return make_error(Errc::kInvalidArgument, "bad relative path");
  int root = root_fd(dataset_id);
  if (root < 0) return make_error(Errc::kNotFound, "dataset root " + datasets_[dataset_id].path + ": " + strerror(errno));
  open_how how{};
  how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
  // No symbolic links below the root: every cached file is then named by its one
  // canonical path, which is what lets shims name a file by the path the
  // application opened (when it looks canonical) instead of asking the kernel
  // (docs/architecture.md, "Identity of data"). A shim told no re-keys the file by
  // its canonical path and asks again.
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS;
  int fd = static_cast<int>(syscall(SYS_openat2, root, rel.c_str(), &how, sizeof how));
  if (fd < 0) {
    int e = errno;
    if (e == EXDEV) return make_error(Errc::kPermission, rel + ": leaves the dataset root");
    if (e == ELOOP) return make_error(Errc::kPermission, rel + ": has a symbolic link (not a canonical path)");
    if (e == ENOENT || e == ENOTDIR) return make_error(Errc::kNotFound, rel + ": " + strerror(e));
    return make_error(Errc::kIo, rel + ": " + strerror(e));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return make_error(Errc::kInvalidArgument, rel + ": not a regular file");
  }
  // Back to blocking reads (O_NONBLOCK above only kept open() off FIFOs), and
  // O_DIRECT where the filesystem takes it: the origin's bytes then go straight
  // into arena pages, with no copy through (and no second cache in) the page
  // cache, and io_uring reads them asynchronously instead of in worker threads.
  int fl = fcntl(fd, F_GETFL) & ~O_NONBLOCK;
  uint32_t align = 0;
  if (fcntl(fd, F_SETFL, fl | O_DIRECT) == 0) align = 4096;
  else fcntl(fd, F_SETFL, fl);
  OriginFile f;
  f.fd = std::make_shared<const OriginFd>(fd);
  f.size = static_cast<uint64_t>(st.st_size);
  f.direct_align = align;
  f.key = origin_file_key(datasets_[dataset_id].name, rel, st);
  return f;
}

std::optional<OriginFile> OriginFiles::find(FileKey key) {
  auto it = open_.find(key);
  if (it == open_.end()) return std::nullopt;
  lru_.splice(lru_.begin(), lru_, it->second.lru);
  return it->second.file;
}

void OriginFiles::adopt(uint32_t dataset_id, const std::string& rel, const OriginFile& file) {
  if (open_.count(file.key)) return;
  // Bounded memory: past this many paths, older keys are forgotten (their blocks
  // still age out; only explicit invalidation of those old versions is lost).
  if (keys_by_path_.size() > 65536) keys_by_path_.clear();
  auto& seen = keys_by_path_[std::to_string(dataset_id) + "/" + rel];
  if (seen.size() < 16) seen.push_back(file.key);
  while (open_.size() >= max_open_ && !lru_.empty()) forget(lru_.back());
  lru_.push_front(file.key);
  open_.emplace(file.key, Entry{file, lru_.begin()});
}

std::vector<FileKey> OriginFiles::keys_seen(uint32_t dataset_id, const std::string& rel) const {
  auto it = keys_by_path_.find(std::to_string(dataset_id) + "/" + rel);
  if (it == keys_by_path_.end()) return {};
  return it->second;
}

void OriginFiles::forget(FileKey key) {
  auto it = open_.find(key);
  if (it == open_.end()) return;
  // Drops this table's reference: reads still queued for the file keep it open.
  lru_.erase(it->second.lru);
  open_.erase(it);
}

}  // namespace dc
