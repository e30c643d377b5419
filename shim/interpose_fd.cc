// Exported wrappers of the open/close/dup family. Each calls the real function
// first (the kernel checks permissions and assigns the number) and then updates
// the fd table. errno after a wrapper is what the real call left.
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim/agent_link.h"
#include "shim/fd_table.h"
#include "shim/kept_errno.h"
#include "shim/real.h"
#include "shim/track.h"

#define DC_EXPORT extern "C" __attribute__((visibility("default")))

using namespace dc::shim;

namespace {

bool needs_mode(int flags) { return (flags & O_CREAT) || ((flags & O_TMPFILE) == O_TMPFILE); }

// After fork, parent and child share every file description open at that moment:
// before it, every offset kept in user space goes back to the kernel, and every
// tracked descriptor becomes shared (read() then leaves offsets to the kernel).
void before_fork() { fd_fork_begin(); }
void after_fork_in_parent() { fd_fork_end(); }

void after_fork_in_child() {
  fd_reset_locks_after_fork();
  fd_fork_end_in_child();
  link_after_fork_child();
}

__attribute__((constructor)) void shim_constructor() { shim_enabled(); }

}  // namespace

void dc::shim::shim_global_init() {
  resolve_real();
  link_init();
  pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
}

namespace {

int finish_open(int fd, int flags, const char* path) {
  if (fd >= 0) keeping_errno([&] { track_opened(fd, flags, path); });
  return fd;
}

void after_dup(int from, int to) {
  if (to < 0 || to == from) return;
  FdInfo info;
  if (!fd_lookup(from, &info, true)) {
    fd_clear(to);  // the new number describes nothing we track (clearing is always safe)
    return;
  }
  // Two numbers now name one description: its offset must live in the kernel,
  // and `to` takes the description's id, so both numbers take one lock for "get
  // offset, serve, set offset" (fd_lock). Syncing takes that lock: a read of
  // `from` in progress finishes first. (Syncing is right even in a vfork child:
  // the description is shared.)
  fd_pos_sync(from, true);
  info.own_offset = false;
  // Setting a slot is not safe in a vfork child (it shares our memory): only now,
  // for a tracked source, pay for the check.
  if (link_in_foreign_process()) return;
  fd_track(to, info);
}

}  // namespace

#define DC_MODE_ARG(flags)             \
  mode_t mode = 0;                     \
  if (needs_mode(flags)) {             \
    va_list ap;                        \
    va_start(ap, flags);               \
    mode = static_cast<mode_t>(va_arg(ap, int)); \
    va_end(ap);                        \
  }

DC_EXPORT int open(const char* path, int flags, ...) {
  DC_MODE_ARG(flags);
  int fd = g_real.open ? g_real.open(path, flags, mode) : sys_openat(AT_FDCWD, path, flags, mode);
  return finish_open(fd, flags, path);
}

DC_EXPORT int open64(const char* path, int flags, ...) {
  DC_MODE_ARG(flags);
  int fd = g_real.open64 ? g_real.open64(path, flags, mode) : sys_openat(AT_FDCWD, path, flags, mode);
  return finish_open(fd, flags, path);
}

DC_EXPORT int openat(int dirfd, const char* path, int flags, ...) {
  DC_MODE_ARG(flags);
  int fd = g_real.openat ? g_real.openat(dirfd, path, flags, mode) : sys_openat(dirfd, path, flags, mode);
  return finish_open(fd, flags, path);
}

DC_EXPORT int openat64(int dirfd, const char* path, int flags, ...) {
  DC_MODE_ARG(flags);
  int fd = g_real.openat64 ? g_real.openat64(dirfd, path, flags, mode) : sys_openat(dirfd, path, flags, mode);
  return finish_open(fd, flags, path);
}

// Fortified variants (-D_FORTIFY_SOURCE): called when the compiler could not prove
// a mode argument is present; they take none.
DC_EXPORT int __open_2(const char* path, int flags) {
  int fd = g_real.open_2 ? g_real.open_2(path, flags) : sys_openat(AT_FDCWD, path, flags, 0);
  return finish_open(fd, flags, path);
}

DC_EXPORT int __open64_2(const char* path, int flags) {
  int fd = g_real.open64_2 ? g_real.open64_2(path, flags) : sys_openat(AT_FDCWD, path, flags, 0);
  return finish_open(fd, flags, path);
}

DC_EXPORT int __openat_2(int dirfd, const char* path, int flags) {
  int fd = g_real.openat_2 ? g_real.openat_2(dirfd, path, flags) : sys_openat(dirfd, path, flags, 0);
  return finish_open(fd, flags, path);
}

DC_EXPORT int __openat64_2(int dirfd, const char* path, int flags) {
  int fd = g_real.openat64_2 ? g_real.openat64_2(dirfd, path, flags) : sys_openat(dirfd, path, flags, 0);
  return finish_open(fd, flags, path);
}

DC_EXPORT int close(int fd) {
  const KeptErrno e;
  link_forget_fd(fd);  // an app closing the shim's own socket: stop using that number
  CloseTicket ticket;
  begin_close(fd, &ticket);  // clear first: the number may be reused the moment it closes
  e.restore();
  int rc = g_real.close ? g_real.close(fd) : sys_close(fd);
  keeping_errno([&] { finish_close(ticket); });
  return rc;
}

DC_EXPORT int dup(int fd) {
  int nfd = g_real.dup ? g_real.dup(fd) : sys_dup(fd);
  keeping_errno([&] { after_dup(fd, nfd); });
  return nfd;
}

DC_EXPORT int dup2(int fd, int target) {
  const KeptErrno e;
  if (fd != target) link_forget_fd(target);
  e.restore();
  int nfd = g_real.dup2 ? g_real.dup2(fd, target) : sys_dup3(fd, target, 0);
  keeping_errno([&] { after_dup(fd, nfd); });
  return nfd;
}

DC_EXPORT int dup3(int fd, int target, int flags) {
  const KeptErrno e;
  link_forget_fd(target);
  e.restore();
  int nfd = g_real.dup3 ? g_real.dup3(fd, target, flags) : sys_dup3(fd, target, flags);
  keeping_errno([&] { after_dup(fd, nfd); });
  return nfd;
}

namespace {
int fcntl_common(int (*real)(int, int, ...), int fd, int cmd, unsigned long arg) {
  const KeptErrno e;
  // Clearing close-on-exec lets an exec'd program inherit the description.
  if (cmd == F_SETFD && !(arg & FD_CLOEXEC)) fd_pos_sync(fd, true);
  // A record lock relative to SEEK_CUR is placed at the kernel's offset.
  if ((cmd == F_GETLK || cmd == F_SETLK || cmd == F_SETLKW || cmd == F_OFD_GETLK || cmd == F_OFD_SETLK ||
       cmd == F_OFD_SETLKW) &&
      arg && reinterpret_cast<const struct flock*>(arg)->l_whence == SEEK_CUR)
    fd_pos_sync(fd, false);
  e.restore();
  int rc = real ? real(fd, cmd, arg) : static_cast<int>(sys_fcntl(fd, cmd, static_cast<long>(arg)));
  if ((cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && rc >= 0)
    keeping_errno([&] { after_dup(fd, rc); });
  return rc;
}
}  // namespace

// fcntl's third argument is an int or a pointer depending on cmd; on the x86-64 and
// aarch64 ABIs both travel in one register, so forwarding it as unsigned long is exact.
DC_EXPORT int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  unsigned long arg = va_arg(ap, unsigned long);
  va_end(ap);
  return fcntl_common(g_real.fcntl, fd, cmd, arg);
}

DC_EXPORT int fcntl64(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  unsigned long arg = va_arg(ap, unsigned long);
  va_end(ap);
  return fcntl_common(g_real.fcntl64 ? g_real.fcntl64 : g_real.fcntl, fd, cmd, arg);
}

// fstat is observed, never altered: the real call's result and errno are returned
// as they are. A successful fstat of a dataset file just opened gives the shim the
// size and mtime it needs for the file's key (track.h), sparing it its own call.
DC_EXPORT int fstat(int fd, struct stat* st) {
  static decltype(&::fstat) real_fn;
  auto real = next_real(&real_fn, "fstat");
  int rc = real ? real(fd, st) : static_cast<int>(syscall(SYS_newfstatat, fd, "", st, AT_EMPTY_PATH));
  if (rc == 0) keeping_errno([&] { note_fstat(fd, *st); });
  return rc;
}

DC_EXPORT int fstat64(int fd, struct stat64* st) {
  static decltype(&::fstat64) real_fn;
  auto real = next_real(&real_fn, "fstat64");
  int rc = real ? real(fd, st) : static_cast<int>(syscall(SYS_newfstatat, fd, "", st, AT_EMPTY_PATH));
  static_assert(sizeof(struct stat64) == sizeof(struct stat), "one stat layout on this ABI");
  if (rc == 0) keeping_errno([&] { note_fstat(fd, *reinterpret_cast<const struct stat*>(st)); });
  return rc;
}
