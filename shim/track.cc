#include "shim/track.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "shim/agent_link.h"
#include "shim/fd_table.h"

namespace dc::shim {
namespace {

// The canonical path of an open fd: what the kernel resolved, symlinks and ".."
// included, so every spelling of a dataset path maps to one key.
long fd_path(int fd, char* out, size_t cap) {
  char proc[32];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
  long n = syscall(SYS_readlinkat, AT_FDCWD, proc, out, cap - 1);
  if (n <= 0 || static_cast<size_t>(n) >= cap - 1) return -1;
  out[n] = '\0';
  return n;
}

}  // namespace

void track_opened(int fd, int flags) {
  if (!shim_enabled()) return;
  const int saved = errno;
  // Whatever this number meant before (a descriptor closed behind our back) is gone.
  fd_clear(fd);
  const DatasetList* ds = (flags & O_PATH) ? nullptr : link_datasets();
  char abs[4096];
  long n = ds ? fd_path(fd, abs, sizeof abs) : -1;
  for (uint32_t i = 0; n > 0 && i < ds->count; ++i) {
    const Dataset& d = ds->items[i];
    if (static_cast<size_t>(n) <= d.root_len + 1 || memcmp(abs, d.root, d.root_len) != 0 ||
        abs[d.root_len] != '/')
      continue;
    const char* rel = abs + d.root_len + 1;
    const uint32_t rel_len = static_cast<uint32_t>(n - d.root_len - 1);
    if (rel_len >= kSlotPathMax) break;
    FdInfo info;
    info.dataset_id = i;
    info.path_len = rel_len;
    memcpy(info.path, rel, rel_len);
    info.path[rel_len] = '\0';
    // Only now, for a dataset file, the one check that costs a system call: a vfork
    // child shares our memory, and must not fill the parent's table with its fds.
    if (link_in_foreign_process()) break;
    if ((flags & O_ACCMODE) != O_RDONLY) {
      // A writer of a dataset file: drop what is cached of it now, and again at
      // close (a same-size rewrite within one mtime tick keeps the file key).
      info.kind = SlotKind::kWriter;
      fd_track(fd, info);
      link_invalidate(i, rel, rel_len);
      break;
    }
    // Size and mtime come later (note_fstat, or lookup_reader): the application
    // almost always fstat()s a file it just opened, and one call is enough.
    info.kind = SlotKind::kPending;
    // Without close-on-exec the description may be inherited by programs we never
    // see: keep its offset in the kernel.
    info.own_offset = (flags & O_CLOEXEC) != 0;
    fd_track(fd, info);
    break;
  }
  errno = saved;
}

namespace {

// Completes pending slot `fd` (copied in `fi`, with its path) from `st`.
void complete(int fd, const FdInfo& fi, const struct stat& st) {
  if (!S_ISREG(st.st_mode) || st.st_size <= 0) {
    fd_clear(fd);  // not a file the cache serves (empty, a directory, a fifo)
    return;
  }
  const DatasetList* ds = link_datasets();
  if (!ds || fi.dataset_id >= ds->count) {
    fd_clear(fd);
    return;
  }
  const Dataset& d = ds->items[fi.dataset_id];
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  const uint64_t mtime_ns = static_cast<uint64_t>(st.st_mtim.tv_sec) * 1000000000ULL +
                            static_cast<uint64_t>(st.st_mtim.tv_nsec);
  fd_complete(fd, fi.gen, size, make_file_key(d.name, d.name_len, fi.path, fi.path_len, size, mtime_ns));
}

}  // namespace

bool lookup_reader(int fd, FdInfo* fi) {
  if (!fd_lookup(fd, fi, false)) return false;
  if (fi->kind == SlotKind::kReader) return true;
  if (fi->kind != SlotKind::kPending) return false;
  const int saved = errno;
  FdInfo with_path;
  struct stat st;
  if (fd_lookup(fd, &with_path, true) && with_path.kind == SlotKind::kPending) {
    if (syscall(SYS_newfstatat, fd, "", &st, AT_EMPTY_PATH) == 0) complete(fd, with_path, st);
    else fd_clear(fd);
  }
  errno = saved;
  return fd_lookup(fd, fi, false) && fi->kind == SlotKind::kReader;
}

void note_fstat(int fd, const struct stat& st) {
  FdInfo fi;
  if (!fd_lookup(fd, &fi, true) || fi.kind != SlotKind::kPending) return;
  const int saved = errno;
  complete(fd, fi, st);
  errno = saved;
}

// Clearing a slot is always safe (at worst the parent of a vfork child loses the
// cache for that number), so no vfork check here: close stays one system call.
void begin_close(int fd, CloseTicket* t) {
  t->invalidate = false;
  FdInfo info;
  if (!fd_lookup(fd, &info, true)) return;
  if (info.kind == SlotKind::kWriter) {
    t->invalidate = true;
    t->dataset_id = info.dataset_id;
    t->path_len = info.path_len;
    memcpy(t->path, info.path, info.path_len);
  }
  fd_clear(fd);
}

void finish_close(const CloseTicket& t) {
  if (!t.invalidate) return;
  const int saved = errno;
  link_invalidate(t.dataset_id, t.path, t.path_len);
  errno = saved;
}

}  // namespace dc::shim
