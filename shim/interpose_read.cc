// Exported wrappers of the read family and lseek. A tracked descriptor's reads are
// served from the arena; anything else, and anything the arena cannot serve, goes
// to the real function, so its result and errno are exactly the kernel's.
//
// File offsets: pread needs no system call on a hit. A descriptor that is ours
// alone keeps its offset in user space (fd_table.h), so read and lseek need none
// either; every call that could expose the kernel's offset to anyone else syncs it
// first (interpose_offset.cc, fork, exec, dup). Any other descriptor's offset is
// the kernel's: read is "get offset, serve like pread, set offset" under a lock
// per open file description (fd_lock: shared by a number and its dups) that lseek
// also takes, so the offset anyone else sees (a dup in another process, a child
// after exec) is always right.
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "shim/agent_link.h"
#include "shim/fd_table.h"
#include "shim/kept_errno.h"
#include "shim/real.h"
#include "shim/serve.h"
#include "shim/track.h"

#define DC_EXPORT extern "C" __attribute__((visibility("default")))

extern "C" void __chk_fail(void) __attribute__((noreturn));

using namespace dc::shim;

namespace {

bool tracked_reader(int fd, FdInfo* fi) { return lookup_reader(fd, fi); }

// Serves a read at the current offset and advances it. kNotServed: the caller
// makes the real call (the kernel's offset is then right: see fd_table.h).
//
// `serve_at(pos)` serves from the arena (or kNotServed); `kernel_at(pos)` reads the
// file itself at pos without moving any offset (pread/preadv).
template <typename ServeAt, typename KernelAt>
ssize_t serve_at_offset(int fd, const FdInfo& fi, ServeAt serve_at, KernelAt kernel_at) {
  // Another process may move a shared offset between our "get" and "set": only the
  // kernel's read is atomic there.
  if (fi.shared) return kNotServed;
  const int saved = errno;
  // The offset kept in user space: no system call on a hit. A racing read or seek
  // on the same fd makes the swap fail; then read again at the new offset.
  uint64_t word;
  while (fi.own_offset && fd_pos_load(fd, fi.gen, &word)) {
    const uint64_t pos = pos_of(word);
    ssize_t r = serve_at(pos);
    if (r == kNotServed) {
      r = kernel_at(pos);  // EOF, a grown file, no agent: the file itself, at our offset
      if (r < 0) return r;  // errno is the kernel's
      if (r > 0) link_count(Served::kFallback, static_cast<uint64_t>(r));
    }
    if (pos + static_cast<uint64_t>(r) > kPosMax) {
      // Past what the word can hold (256 TiB): the kernel keeps this offset.
      fd_pos_sync(fd, true);
      const FdLock lock = fd_lock(fd);
      sys_lseek(fd, static_cast<off_t>(pos + static_cast<uint64_t>(r)), SEEK_SET);
      fd_unlock(lock);
      errno = saved;
      return r;
    }
    if (r == 0 || fd_pos_cas(fd, word, pos_word(fi.gen, pos + static_cast<uint64_t>(r)))) {
      errno = saved;
      return r;
    }
  }
  // The offset is the kernel's: "get offset, serve like pread, set offset" under
  // the description's lock that lseek also takes. Whatever the arena cannot serve
  // is read here too, under the lock, so no other thread's read moves the offset
  // between.
  const FdLock lock = fd_lock(fd);
  if (!lock) return kNotServed;
  ssize_t r = kNotServed;
  FdInfo again;
  // Re-check under the lock: another thread may have closed and reused the number.
  if (tracked_reader(fd, &again) && again.key == fi.key && !again.shared) {
    // While we waited, the thread before us may have put the offset in user space.
    if (again.own_offset && fd_pos_load(fd, again.gen, &word)) {
      fd_unlock(lock);
      return serve_at_offset(fd, again, serve_at, kernel_at);
    }
    const off_t pos = sys_lseek(fd, 0, SEEK_CUR);
    if (pos >= 0) {
      r = serve_at(static_cast<uint64_t>(pos));
      int err = saved;
      if (r == kNotServed) {
        r = kernel_at(static_cast<uint64_t>(pos));
        err = errno;
        if (r > 0) link_count(Served::kFallback, static_cast<uint64_t>(r));
      }
      if (r > 0) {
        const uint64_t next = static_cast<uint64_t>(pos) + static_cast<uint64_t>(r);
        // A private descriptor whose offset went back to the kernel (sendfile,
        // SEEK_END, ...) keeps it in user space again from here.
        if (!again.own_offset || !fd_pos_adopt(fd, again.gen, next)) sys_lseek(fd, static_cast<off_t>(next), SEEK_SET);
      }
      fd_unlock(lock);
      errno = err;
      return r;
    }
  }
  fd_unlock(lock);
  errno = saved;
  return r;
}

ssize_t count_fallback(ssize_t r) {
  if (r > 0) keeping_errno([&] { link_count(Served::kFallback, static_cast<uint64_t>(r)); });
  return r;
}

}  // namespace

DC_EXPORT ssize_t read(int fd, void* buf, size_t n) {
  const KeptErrno e;
  FdInfo fi;
  if (tracked_reader(fd, &fi)) {
    ssize_t r = serve_at_offset(
        fd, fi, [&](uint64_t pos) { return serve_pread(fd, fi, buf, n, pos); },
        [&](uint64_t pos) { return sys_pread(fd, buf, n, static_cast<off_t>(pos)); });
    if (r != kNotServed) return e.result(r);
    e.restore();
    return count_fallback(g_real.read ? g_real.read(fd, buf, n) : sys_read(fd, buf, n));
  }
  e.restore();
  return g_real.read ? g_real.read(fd, buf, n) : sys_read(fd, buf, n);
}

DC_EXPORT ssize_t __read_chk(int fd, void* buf, size_t n, size_t buflen) {
  if (n > buflen) __chk_fail();
  return read(fd, buf, n);
}

namespace {
ssize_t pread_common(ssize_t (*real)(int, void*, size_t, off_t), int fd, void* buf, size_t n, off_t off) {
  const KeptErrno e;
  FdInfo fi;
  if (off >= 0 && tracked_reader(fd, &fi)) {
    ssize_t r = serve_pread(fd, fi, buf, n, static_cast<uint64_t>(off));
    if (r != kNotServed) return e.result(r);
    e.restore();
    return count_fallback(real ? real(fd, buf, n, off) : sys_pread(fd, buf, n, off));
  }
  e.restore();
  return real ? real(fd, buf, n, off) : sys_pread(fd, buf, n, off);
}
}  // namespace

DC_EXPORT ssize_t pread(int fd, void* buf, size_t n, off_t off) { return pread_common(g_real.pread, fd, buf, n, off); }

DC_EXPORT ssize_t pread64(int fd, void* buf, size_t n, off64_t off) {
  return pread_common(g_real.pread64, fd, buf, n, off);
}

DC_EXPORT ssize_t __pread_chk(int fd, void* buf, size_t n, off_t off, size_t buflen) {
  if (n > buflen) __chk_fail();
  return pread_common(g_real.pread, fd, buf, n, off);
}

DC_EXPORT ssize_t __pread64_chk(int fd, void* buf, size_t n, off64_t off, size_t buflen) {
  if (n > buflen) __chk_fail();
  return pread_common(g_real.pread64, fd, buf, n, off);
}

DC_EXPORT ssize_t readv(int fd, const iovec* iov, int cnt) {
  const KeptErrno e;
  FdInfo fi;
  if (tracked_reader(fd, &fi)) {
    ssize_t r = serve_at_offset(
        fd, fi, [&](uint64_t pos) { return serve_preadv(fd, fi, iov, cnt, pos); },
        [&](uint64_t pos) { return sys_preadv(fd, iov, cnt, static_cast<off_t>(pos)); });
    if (r != kNotServed) return e.result(r);
    e.restore();
    return count_fallback(g_real.readv ? g_real.readv(fd, iov, cnt) : sys_readv(fd, iov, cnt));
  }
  e.restore();
  return g_real.readv ? g_real.readv(fd, iov, cnt) : sys_readv(fd, iov, cnt);
}

namespace {
ssize_t preadv_common(ssize_t (*real)(int, const iovec*, int, off_t), int fd, const iovec* iov, int cnt, off_t off) {
  const KeptErrno e;
  FdInfo fi;
  if (off >= 0 && tracked_reader(fd, &fi)) {
    ssize_t r = serve_preadv(fd, fi, iov, cnt, static_cast<uint64_t>(off));
    if (r != kNotServed) return e.result(r);
    e.restore();
    return count_fallback(real ? real(fd, iov, cnt, off) : sys_preadv(fd, iov, cnt, off));
  }
  e.restore();
  return real ? real(fd, iov, cnt, off) : sys_preadv(fd, iov, cnt, off);
}

ssize_t preadv2_common(ssize_t (*real)(int, const iovec*, int, off_t, int), int fd, const iovec* iov,
                       int cnt, off_t off, int flags) {
  const KeptErrno e;
  FdInfo fi;
  // Flags (RWF_NOWAIT, RWF_HIPRI, ...) ask the kernel for specific behaviour: honour
  // them by letting the kernel do the read.
  const bool tracked = tracked_reader(fd, &fi);
  if (tracked && flags != 0 && off == -1) {
    // The kernel reads at its own offset: put it right, and hold reads off meanwhile.
    const FdLock lock = fd_lock(fd);
    fd_pos_sync(fd, false);
    e.restore();
    ssize_t r = real ? real(fd, iov, cnt, off, flags) : sys_preadv2(fd, iov, cnt, off, flags);
    fd_unlock(lock);  // errno is untouched
    return r;
  }
  if (flags == 0 && tracked) {
    ssize_t r = kNotServed;
    if (off == -1)
      r = serve_at_offset(
          fd, fi, [&](uint64_t pos) { return serve_preadv(fd, fi, iov, cnt, pos); },
          [&](uint64_t pos) { return sys_preadv(fd, iov, cnt, static_cast<off_t>(pos)); });
    else if (off >= 0) r = serve_preadv(fd, fi, iov, cnt, static_cast<uint64_t>(off));
    if (r != kNotServed) return e.result(r);
    e.restore();
    return count_fallback(real ? real(fd, iov, cnt, off, flags) : sys_preadv2(fd, iov, cnt, off, flags));
  }
  e.restore();
  return real ? real(fd, iov, cnt, off, flags) : sys_preadv2(fd, iov, cnt, off, flags);
}
}  // namespace

DC_EXPORT ssize_t preadv(int fd, const iovec* iov, int cnt, off_t off) {
  return preadv_common(g_real.preadv, fd, iov, cnt, off);
}

DC_EXPORT ssize_t preadv64(int fd, const iovec* iov, int cnt, off64_t off) {
  return preadv_common(g_real.preadv64, fd, iov, cnt, off);
}

DC_EXPORT ssize_t preadv2(int fd, const iovec* iov, int cnt, off_t off, int flags) {
  return preadv2_common(g_real.preadv2, fd, iov, cnt, off, flags);
}

DC_EXPORT ssize_t preadv64v2(int fd, const iovec* iov, int cnt, off64_t off, int flags) {
  return preadv2_common(g_real.preadv64v2, fd, iov, cnt, off, flags);
}

namespace {
// lseek on a tracked fd. SEEK_SET and SEEK_CUR within the file, on a descriptor
// whose offset lives in user space, are answered here (no system call: readers
// such as Python ask for the offset several times per file). Anything else first
// puts the offset back in the kernel, then asks the kernel, waiting for a read in
// progress on the fd as the kernel's own per-file offset lock would: otherwise that
// read's "set offset" could undo the seek.
off_t lseek_common(off_t (*real)(int, off_t, int), int fd, off_t off, int whence) {
  const KeptErrno e;
  FdInfo fi;
  const bool tracked = tracked_reader(fd, &fi);
  if (tracked && fi.own_offset && !fi.shared && (whence == SEEK_SET || whence == SEEK_CUR)) {
    uint64_t word;
    while (fd_pos_load(fd, fi.gen, &word)) {
      const int64_t base = whence == SEEK_SET ? 0 : static_cast<int64_t>(pos_of(word));
      // Beyond the end (or negative): the kernel decides (EINVAL, or a position
      // past EOF its filesystem allows).
      if (off < -base || off > static_cast<int64_t>(fi.size) - base) break;
      const uint64_t next = static_cast<uint64_t>(base + off);
      if (fd_pos_cas(fd, word, pos_word(fi.gen, next))) return e.result(static_cast<off_t>(next));
    }
  }
  const FdLock lock = tracked ? fd_lock(fd) : FdLock{};
  // Under the lock, so no read can move the offset back to user space meanwhile.
  if (tracked) fd_pos_sync(fd, false);
  e.restore();
  off_t r = real ? real(fd, off, whence) : sys_lseek(fd, off, whence);
  fd_unlock(lock);  // errno is untouched
  return r;
}
}  // namespace

DC_EXPORT off_t lseek(int fd, off_t off, int whence) { return lseek_common(g_real.lseek, fd, off, whence); }

DC_EXPORT off64_t lseek64(int fd, off64_t off, int whence) {
  return lseek_common(g_real.lseek64, fd, off, whence);
}
