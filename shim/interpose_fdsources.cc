// Stale descriptors. The fd table is keyed by number, and the kernel reuses numbers.
// A number must never keep describing a cached file after that file's descriptor
// is gone, or a new descriptor with the same number (a socket, a pipe, another
// file) would be served the old file's bytes. So every libc path that ends a
// descriptor clears its slot before the real call, and every libc path that
// creates one clears the slot of the number it got (whatever closed the old one,
// unseen: a raw close system call, a library's internal close).
//
// Received descriptors (recvmsg, recvmmsg with SCM_RIGHTS) are new numbers too.
// What remains unseen is a descriptor both closed and re-created through raw
// system calls; read() is still safe then (its lseek fails on non-files), and
// pread/readv on such a number would be an application bug on a non-file anyway.
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>

#include "shim/agent_link.h"
#include "shim/fd_table.h"
#include "shim/kept_errno.h"
#include "shim/real.h"

#define DC_EXPORT extern "C" __attribute__((visibility("default")))

using namespace dc::shim;

namespace {

// Clearing a slot is always safe (it only costs the cache for that number), so
// unlike tracking it needs no check for a vfork child sharing our memory.
int fresh(int fd) {
  if (fd >= 0) fd_clear(fd);
  return fd;
}

int fresh_pair(int rc, int fds[2]) {
  if (rc == 0) {
    fresh(fds[0]);
    fresh(fds[1]);
  }
  return rc;
}

// Every descriptor received in the SCM_RIGHTS messages of `msg`: numbers the kernel
// just assigned, which may have been closed unseen before.
void fresh_received(const msghdr* msg) {
  if (!msg || !msg->msg_control || msg->msg_controllen < sizeof(cmsghdr)) return;
  for (const cmsghdr* c = CMSG_FIRSTHDR(msg); c;
       c = CMSG_NXTHDR(const_cast<msghdr*>(msg), const_cast<cmsghdr*>(c))) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0))
      continue;
    const size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const auto* fds = reinterpret_cast<const int*>(CMSG_DATA(c));
    for (size_t i = 0; i < n; ++i) {
      int fd;
      __builtin_memcpy(&fd, fds + i, sizeof fd);
      fresh(fd);
    }
  }
}

#define DC_REAL(name) static decltype(&::name) real_##name; next_real(&real_##name, #name)

}  // namespace

DC_EXPORT int close_range(unsigned int first, unsigned int last, int flags) {
  // A vfork child (e.g. Python's subprocess closing inherited fds) closes its own
  // copies: the parent's table and sockets, which it shares memory with, stay.
  keeping_errno([&] {
    if (!(flags & CLOSE_RANGE_CLOEXEC) && !link_in_foreign_process()) {
      fd_clear_range(first, last);
      link_forget_fd_range(first, last);
    }
  });
  DC_REAL(close_range);
  if (!real_close_range) {
    errno = ENOSYS;
    return -1;
  }
  return real_close_range(first, last, flags);
}

DC_EXPORT void closefrom(int lowfd) {
  keeping_errno([&] {
    if (lowfd >= 0 && !link_in_foreign_process()) {
      fd_clear_range(static_cast<unsigned>(lowfd), ~0u);
      link_forget_fd_range(static_cast<unsigned>(lowfd), ~0u);
    }
  });
  DC_REAL(closefrom);
  if (real_closefrom) real_closefrom(lowfd);
}

DC_EXPORT int socket(int domain, int type, int protocol) {
  DC_REAL(socket);
  return fresh(real_socket(domain, type, protocol));
}

DC_EXPORT int socketpair(int domain, int type, int protocol, int fds[2]) {
  DC_REAL(socketpair);
  return fresh_pair(real_socketpair(domain, type, protocol, fds), fds);
}

DC_EXPORT int accept(int fd, sockaddr* addr, socklen_t* len) {
  DC_REAL(accept);
  return fresh(real_accept(fd, addr, len));
}

DC_EXPORT int accept4(int fd, sockaddr* addr, socklen_t* len, int flags) {
  DC_REAL(accept4);
  return fresh(real_accept4(fd, addr, len, flags));
}

DC_EXPORT ssize_t recvmsg(int fd, msghdr* msg, int flags) {
  DC_REAL(recvmsg);
  const ssize_t r = real_recvmsg(fd, msg, flags);
  if (r >= 0) fresh_received(msg);
  return r;
}

DC_EXPORT int recvmmsg(int fd, mmsghdr* vec, unsigned int vlen, int flags, timespec* timeout) {
  DC_REAL(recvmmsg);
  const int r = real_recvmmsg(fd, vec, vlen, flags, timeout);
  for (int i = 0; vec && i < r; ++i) fresh_received(&vec[i].msg_hdr);
  return r;
}

DC_EXPORT int pipe(int fds[2]) {
  DC_REAL(pipe);
  return fresh_pair(real_pipe(fds), fds);
}

DC_EXPORT int pipe2(int fds[2], int flags) {
  DC_REAL(pipe2);
  return fresh_pair(real_pipe2(fds, flags), fds);
}

DC_EXPORT int eventfd(unsigned int initval, int flags) {
  DC_REAL(eventfd);
  return fresh(real_eventfd(initval, flags));
}

DC_EXPORT int epoll_create(int size) {
  DC_REAL(epoll_create);
  return fresh(real_epoll_create(size));
}

DC_EXPORT int epoll_create1(int flags) {
  DC_REAL(epoll_create1);
  return fresh(real_epoll_create1(flags));
}

DC_EXPORT int memfd_create(const char* name, unsigned int flags) {
  DC_REAL(memfd_create);
  return fresh(real_memfd_create(name, flags));
}

DC_EXPORT int timerfd_create(int clockid, int flags) {
  DC_REAL(timerfd_create);
  return fresh(real_timerfd_create(clockid, flags));
}

DC_EXPORT int signalfd(int fd, const sigset_t* mask, int flags) {
  DC_REAL(signalfd);
  return fresh(real_signalfd(fd, mask, flags));
}

DC_EXPORT int inotify_init() {
  DC_REAL(inotify_init);
  return fresh(real_inotify_init());
}

DC_EXPORT int inotify_init1(int flags) {
  DC_REAL(inotify_init1);
  return fresh(real_inotify_init1(flags));
}
