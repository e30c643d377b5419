// The libc functions the shim wraps, as found with dlsym(RTLD_NEXT). Until they
// are resolved (another library's constructor may call open() before ours runs),
// each wrapper issues the raw system call instead, so the bootstrap never fails.
#pragma once

#include <dlfcn.h>
#include <sys/types.h>
#include <sys/uio.h>

namespace dc::shim {

struct RealFns {
  int (*open)(const char*, int, ...);
  int (*open64)(const char*, int, ...);
  int (*openat)(int, const char*, int, ...);
  int (*openat64)(int, const char*, int, ...);
  int (*open_2)(const char*, int);
  int (*open64_2)(const char*, int);
  int (*openat_2)(int, const char*, int);
  int (*openat64_2)(int, const char*, int);
  ssize_t (*read)(int, void*, size_t);
  ssize_t (*pread)(int, void*, size_t, off_t);
  ssize_t (*pread64)(int, void*, size_t, off64_t);
  ssize_t (*readv)(int, const iovec*, int);
  ssize_t (*preadv)(int, const iovec*, int, off_t);
  ssize_t (*preadv64)(int, const iovec*, int, off64_t);
  ssize_t (*preadv2)(int, const iovec*, int, off_t, int);
  ssize_t (*preadv64v2)(int, const iovec*, int, off64_t, int);
  off_t (*lseek)(int, off_t, int);
  off64_t (*lseek64)(int, off64_t, int);
  int (*close)(int);
  int (*dup)(int);
  int (*dup2)(int, int);
  int (*dup3)(int, int, int);
  int (*fcntl)(int, int, ...);
  int (*fcntl64)(int, int, ...);
};

extern RealFns g_real;
void resolve_real();

// The next definition of `name` after the shim (libc's), looked up on first use
// and kept in `*slot`, for wrappers outside RealFns. Racing first calls store the
// same pointer.
template <typename T>
T next_real(T* slot, const char* name) {
  T fn = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
  if (!fn) {
    fn = reinterpret_cast<T>(dlsym(RTLD_NEXT, name));
    __atomic_store_n(slot, fn, __ATOMIC_RELEASE);
  }
  return fn;
}

// Raw-syscall versions used when g_real is not (yet) resolved, and by the shim for
// its own I/O so it never re-enters its own wrappers.
int sys_openat(int dirfd, const char* path, int flags, mode_t mode);
ssize_t sys_read(int fd, void* buf, size_t n);
ssize_t sys_pread(int fd, void* buf, size_t n, off_t off);
ssize_t sys_readv(int fd, const iovec* iov, int cnt);
ssize_t sys_preadv(int fd, const iovec* iov, int cnt, off_t off);  // any kernel
ssize_t sys_preadv2(int fd, const iovec* iov, int cnt, off_t off, int flags);
off_t sys_lseek(int fd, off_t off, int whence);
int sys_close(int fd);
int sys_dup(int fd);
int sys_dup3(int oldfd, int newfd, int flags);
long sys_fcntl(int fd, int cmd, long arg);

}  // namespace dc::shim
