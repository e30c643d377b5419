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
// included, so every spelling of a dataset path maps to one key. (A costly call:
// a /proc lookup and a d_path, more than the open itself.)
long fd_path(int fd, char* out, size_t cap) {
  char proc[32];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
  long n = syscall(SYS_readlinkat, AT_FDCWD, proc, out, cap - 1);
  if (n <= 0 || static_cast<size_t>(n) >= cap - 1) return -1;
  out[n] = '\0';
  return n;
}

// Fills info's dataset and relative path if absolute path `abs` lies under a
// dataset root.
bool under_root(const DatasetList* ds, const char* abs, size_t n, FdInfo* info) {
  for (uint32_t i = 0; i < ds->count; ++i) {
    const Dataset& d = ds->items[i];
    if (n <= d.root_len + 1 || memcmp(abs, d.root, d.root_len) != 0 || abs[d.root_len] != '/') continue;
    const uint32_t rel_len = static_cast<uint32_t>(n - d.root_len - 1);
    if (rel_len >= kSlotPathMax) return false;
    info->dataset_id = i;
    info->path_len = rel_len;
    memcpy(info->path, abs + d.root_len + 1, rel_len);
    info->path[rel_len] = '\0';
    return true;
  }
  return false;
}

// No empty, "." or ".." component: the path names what it spells, unless a
// component is a symbolic link (which the agent refuses: see FdInfo::lexical).
bool looks_canonical(const char* rel, size_t len) {
  size_t start = 0;
  for (size_t i = 0; i <= len; ++i) {
    if (i < len && rel[i] != '/') continue;
    const size_t c = i - start;
    if (c == 0 || (c == 1 && rel[start] == '.') || (c == 2 && rel[start] == '.' && rel[start + 1] == '.'))
      return false;
    start = i + 1;
  }
  return true;
}

// Directories (hashes of their absolute spelling) under which an application's
// path turned out to hold a symbolic link: opens there ask the kernel at once
// rather than fail one fetch each (symlink farms). A lost or colliding entry only
// costs a kernel lookup or one failed fetch.
constexpr size_t kLinkedDirs = 256;
uint64_t g_linked_dirs[kLinkedDirs];

uint64_t dir_hash(const char* path) {
  const char* slash = strrchr(path, '/');
  uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (const char* p = path; p < slash; ++p) h = (h ^ static_cast<unsigned char>(*p)) * 1099511628211ULL;
  return h | 1;  // never 0, the empty mark
}

bool dir_has_links(uint64_t h) {
  return __atomic_load_n(&g_linked_dirs[h % kLinkedDirs], __ATOMIC_RELAXED) == h;
}

}  // namespace

void track_opened(int fd, int flags, const char* path) {
  if (!shim_enabled()) return;
  const int saved = errno;
  // Whatever this number meant before (a descriptor closed behind our back) is gone.
  fd_clear(fd);
  const DatasetList* ds = (flags & O_PATH) ? nullptr : link_datasets();
  if (!ds) {
    errno = saved;
    return;
  }
  const bool reader = (flags & O_ACCMODE) == O_RDONLY;
  FdInfo info;
  // A reader opened by an absolute path under a root that looks canonical is named
  // by it, sparing the kernel lookup. Writers always ask the kernel: invalidation
  // must name the canonical path.
  bool found = false;
  if (reader && path && path[0] == '/' && !dir_has_links(dir_hash(path))) {
    found = under_root(ds, path, strlen(path), &info) && looks_canonical(info.path, info.path_len);
    info.lexical = found;
  }
  if (!found) {
    char abs[4096];
    const long n = fd_path(fd, abs, sizeof abs);
    found = n > 0 && under_root(ds, abs, static_cast<size_t>(n), &info);
  }
  // Only now, for a dataset file, the one check that costs a system call: a vfork
  // child shares our memory, and must not fill the parent's table with its fds.
  if (!found || link_in_foreign_process()) {
    errno = saved;
    return;
  }
  if (!reader) {
    // A writer of a dataset file: drop what is cached of it now, and again at
    // close (a same-size rewrite within one ctime tick keeps the file key).
    info.kind = SlotKind::kWriter;
    fd_track(fd, info);
    link_invalidate(info.dataset_id, info.path, info.path_len);
    errno = saved;
    return;
  }
  // The stat fields of the key come later (note_fstat, or lookup_reader): the application
  // almost always fstat()s a file it just opened, and one call is enough.
  info.kind = SlotKind::kPending;
  // Without close-on-exec the description may be inherited by programs we never
  // see: keep its offset in the kernel.
  info.own_offset = (flags & O_CLOEXEC) != 0;
  fd_track(fd, info);
  errno = saved;
}

bool rekey_canonical(int fd) {
  FdInfo cur;
  if (!fd_lookup(fd, &cur, true) || !cur.lexical) return false;
  const int saved = errno;
  const DatasetList* ds = link_datasets();
  if (ds && cur.dataset_id < ds->count) {
    // Remember the directory as the application spells it (root + relative path).
    const Dataset& d = ds->items[cur.dataset_id];
    char spelled[4096];
    if (d.root_len + 1 + cur.path_len < sizeof spelled) {
      memcpy(spelled, d.root, d.root_len);
      spelled[d.root_len] = '/';
      memcpy(spelled + d.root_len + 1, cur.path, cur.path_len + 1);
      const uint64_t h = dir_hash(spelled);
      __atomic_store_n(&g_linked_dirs[h % kLinkedDirs], h, __ATOMIC_RELAXED);
    }
  }
  char abs[4096];
  const long n = fd_path(fd, abs, sizeof abs);
  FdInfo info;
  struct stat st;
  bool ok = ds && n > 0 && under_root(ds, abs, static_cast<size_t>(n), &info) &&
            syscall(SYS_newfstatat, fd, "", &st, AT_EMPTY_PATH) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
  if (ok) {
    const Dataset& d = ds->items[info.dataset_id];
    info.kind = SlotKind::kReader;
    info.size = static_cast<uint64_t>(st.st_size);
    info.key = file_key_of(d.name, d.name_len, info.path, info.path_len, st);
    info.lexical = false;
    ok = fd_rekey(fd, cur.gen, info);
  } else {
    fd_untrack(fd);  // not a dataset file after all (a link out of the root)
  }
  errno = saved;
  return ok;
}

namespace {

// Completes pending slot `fd` (copied in `fi`, with its path) from `st`.
void complete(int fd, const FdInfo& fi, const struct stat& st) {
  if (!S_ISREG(st.st_mode) || st.st_size <= 0) {
    fd_untrack(fd);  // not a file the cache serves (empty, a directory, a fifo)
    return;
  }
  const DatasetList* ds = link_datasets();
  if (!ds || fi.dataset_id >= ds->count) {
    fd_untrack(fd);
    return;
  }
  const Dataset& d = ds->items[fi.dataset_id];
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  fd_complete(fd, fi.gen, size, file_key_of(d.name, d.name_len, fi.path, fi.path_len, st));
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
    else fd_untrack(fd);
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
