// Calls that read a descriptor's file offset without going through read()/lseek(),
// or hand its description to someone else. A tracked descriptor may keep its
// offset in user space (fd_table.h): before any of these reaches the kernel, the
// offset goes back there. Nothing else changes: each wrapper then makes the real
// call, so results and errno are the kernel's.
//
// Not covered (documented in docs/compatibility.md): raw syscall(2) reads, io_uring
// reads at offset -1, pidfd_getfd(2) from another process, and
// /proc/<pid>/fdinfo's "pos" all see the kernel's stale offset of such a descriptor.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>

#include "shim/fd_table.h"
#include "shim/kept_errno.h"
#include "shim/real.h"

#define DC_EXPORT extern "C" __attribute__((visibility("default")))

using namespace dc::shim;

namespace {

// Every descriptor passed in SCM_RIGHTS messages: the receiver shares its
// description from now on.
void share_passed_fds(const msghdr* msg) {
  if (!msg || !msg->msg_control || msg->msg_controllen < sizeof(cmsghdr)) return;
  for (const cmsghdr* c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(const_cast<msghdr*>(msg), const_cast<cmsghdr*>(c))) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0)) continue;
    const size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const auto* fds = reinterpret_cast<const int*>(CMSG_DATA(c));
    for (size_t i = 0; i < n; ++i) {
      int fd;
      __builtin_memcpy(&fd, fds + i, sizeof fd);
      fd_pos_sync_shared(fd);
    }
  }
}

// For the length of one call that uses the kernel's offset of `fd`: the offset is
// back in the kernel, and reads of the fd wait (a read could otherwise move the
// offset back to user space mid-call, and the two would overlap).
class KernelOffset {
 public:
  explicit KernelOffset(int fd) {
    keeping_errno([&] {
      lock_ = fd_lock(fd);
      fd_pos_sync(fd, false);
    });
  }
  ~KernelOffset() { fd_unlock(lock_); }  // errno is untouched
  KernelOffset(const KernelOffset&) = delete;
  KernelOffset& operator=(const KernelOffset&) = delete;

 private:
  FdLock lock_;
};

}  // namespace

DC_EXPORT ssize_t sendfile(int out_fd, int in_fd, off_t* offset, size_t count) {
  static decltype(&::sendfile) real;
  if (offset) return next_real(&real, "sendfile")(out_fd, in_fd, offset, count);
  KernelOffset k(in_fd);
  return next_real(&real, "sendfile")(out_fd, in_fd, offset, count);
}

DC_EXPORT ssize_t sendfile64(int out_fd, int in_fd, off64_t* offset, size_t count) {
  static decltype(&::sendfile64) real;
  if (offset) return next_real(&real, "sendfile64")(out_fd, in_fd, offset, count);
  KernelOffset k(in_fd);
  return next_real(&real, "sendfile64")(out_fd, in_fd, offset, count);
}

DC_EXPORT ssize_t splice(int fd_in, off64_t* off_in, int fd_out, off64_t* off_out, size_t len,
                         unsigned int flags) {
  static decltype(&::splice) real;
  if (off_in) return next_real(&real, "splice")(fd_in, off_in, fd_out, off_out, len, flags);
  KernelOffset k(fd_in);
  return next_real(&real, "splice")(fd_in, off_in, fd_out, off_out, len, flags);
}

DC_EXPORT ssize_t copy_file_range(int fd_in, off64_t* off_in, int fd_out, off64_t* off_out, size_t len,
                                  unsigned int flags) {
  static decltype(&::copy_file_range) real;
  if (off_in) return next_real(&real, "copy_file_range")(fd_in, off_in, fd_out, off_out, len, flags);
  KernelOffset k(fd_in);
  return next_real(&real, "copy_file_range")(fd_in, off_in, fd_out, off_out, len, flags);
}

DC_EXPORT ssize_t sendmsg(int fd, const msghdr* msg, int flags) {
  static decltype(&::sendmsg) real;
  keeping_errno([&] { share_passed_fds(msg); });
  return next_real(&real, "sendmsg")(fd, msg, flags);
}

DC_EXPORT int sendmmsg(int fd, mmsghdr* vec, unsigned int vlen, int flags) {
  static decltype(&::sendmmsg) real;
  keeping_errno([&] {
    for (unsigned int i = 0; vec && i < vlen; ++i) share_passed_fds(&vec[i].msg_hdr);
  });
  return next_real(&real, "sendmmsg")(fd, vec, vlen, flags);
}

// lockf locks relative to the kernel's offset.
DC_EXPORT int lockf(int fd, int cmd, off_t len) {
  static decltype(&::lockf) real;
  KernelOffset k(fd);
  return next_real(&real, "lockf")(fd, cmd, len);
}

DC_EXPORT int lockf64(int fd, int cmd, off64_t len) {
  static decltype(&::lockf64) real;
  KernelOffset k(fd);
  return next_real(&real, "lockf64")(fd, cmd, len);
}

// ioctl's third argument, when there is one, is pointer-sized on every Linux ABI.
DC_EXPORT int ioctl(int fd, unsigned long request, ...) {
  static int (*real)(int, unsigned long, ...);
  va_list ap;
  va_start(ap, request);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  // Clearing close-on-exec lets an exec'd program inherit the description.
  if (request == FIONCLEX) keeping_errno([&] { fd_pos_sync(fd, true); });
  // On a regular file FIONREAD answers size minus the kernel's offset.
  if (request == FIONREAD) {
    KernelOffset k(fd);
    return next_real(&real, "ioctl")(fd, request, arg);
  }
  return next_real(&real, "ioctl")(fd, request, arg);
}
