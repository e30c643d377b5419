#include "shim/real.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace dc::shim {

RealFns g_real{};

namespace {
template <typename T>
void find(T* slot, const char* name) {
  *slot = reinterpret_cast<T>(dlsym(RTLD_NEXT, name));
}
}  // namespace

void resolve_real() {
  RealFns r{};
  find(&r.open, "open");
  find(&r.open64, "open64");
  find(&r.openat, "openat");
  find(&r.openat64, "openat64");
  find(&r.open_2, "__open_2");
  find(&r.open64_2, "__open64_2");
  find(&r.openat_2, "__openat_2");
  find(&r.openat64_2, "__openat64_2");
  find(&r.read, "read");
  find(&r.pread, "pread");
  find(&r.pread64, "pread64");
  find(&r.readv, "readv");
  find(&r.preadv, "preadv");
  find(&r.preadv64, "preadv64");
  find(&r.preadv2, "preadv2");
  find(&r.preadv64v2, "preadv64v2");
  find(&r.lseek, "lseek");
  find(&r.lseek64, "lseek64");
  find(&r.close, "close");
  find(&r.dup, "dup");
  find(&r.dup2, "dup2");
  find(&r.dup3, "dup3");
  find(&r.fcntl, "fcntl");
  find(&r.fcntl64, "fcntl64");
  g_real = r;
}

int sys_openat(int dirfd, const char* path, int flags, mode_t mode) {
  return static_cast<int>(syscall(SYS_openat, dirfd, path, flags, mode));
}
ssize_t sys_read(int fd, void* buf, size_t n) { return syscall(SYS_read, fd, buf, n); }
ssize_t sys_pread(int fd, void* buf, size_t n, off_t off) { return syscall(SYS_pread64, fd, buf, n, off); }
ssize_t sys_readv(int fd, const iovec* iov, int cnt) { return syscall(SYS_readv, fd, iov, cnt); }
ssize_t sys_preadv(int fd, const iovec* iov, int cnt, off_t off) {
  return syscall(SYS_preadv, fd, iov, cnt, static_cast<unsigned long>(off), 0UL);
}
ssize_t sys_preadv2(int fd, const iovec* iov, int cnt, off_t off, int flags) {
  // The kernel takes the 64-bit offset split in two longs (low, high).
  return syscall(SYS_preadv2, fd, iov, cnt, static_cast<unsigned long>(off), 0UL, flags);
}
off_t sys_lseek(int fd, off_t off, int whence) { return static_cast<off_t>(syscall(SYS_lseek, fd, off, whence)); }
int sys_close(int fd) { return static_cast<int>(syscall(SYS_close, fd)); }
int sys_dup(int fd) { return static_cast<int>(syscall(SYS_dup, fd)); }
int sys_dup3(int oldfd, int newfd, int flags) {
  if (oldfd == newfd) {
    // dup2(fd, fd) is legal and returns fd if valid; dup3 would fail with EINVAL.
    return syscall(SYS_fcntl, oldfd, F_GETFD) < 0 ? -1 : newfd;
  }
  return static_cast<int>(syscall(SYS_dup3, oldfd, newfd, flags));
}
long sys_fcntl(int fd, int cmd, long arg) { return syscall(SYS_fcntl, fd, cmd, arg); }

}  // namespace dc::shim
