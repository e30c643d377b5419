// stdio on dataset files. glibc's streams read through an internal read that no
// preload can see, so a stream opened read-only on a cached dataset file is made
// a cookie stream (fopencookie) whose read and seek go through the shim's own
// read/lseek. Everything else about the stream (buffering, ungetc, feof/ferror,
// fgets/getline/fread mixed with fseek, setvbuf, locking) is glibc's own code, so
// it behaves exactly as glibc's. The stream's _fileno is set to the real fd, so
// fileno() and everything that fstat()s it keep working.
//
// Streams that are not read-only dataset streams are glibc's, untouched, except
// that the shim learns of their descriptors (to drop stale fd-table slots and to
// invalidate cached pages of dataset files opened for writing).
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cerrno>

#include "shim/agent_link.h"
#include "shim/fd_table.h"
#include "shim/kept_errno.h"
#include "shim/real.h"
#include "shim/track.h"

#define DC_EXPORT extern "C" __attribute__((visibility("default")))

using namespace dc::shim;

namespace {

struct StdioReal {
  FILE* (*fopen)(const char*, const char*);
  FILE* (*fopen64)(const char*, const char*);
  FILE* (*fdopen)(int, const char*);
  FILE* (*freopen)(const char*, const char*, FILE*);
  FILE* (*freopen64)(const char*, const char*, FILE*);
  int (*fclose)(FILE*);
};
StdioReal g_stdio{};

// "r", "rb", "re", "rbe", "rm", "rc": read-only modes this shim can serve; any '+',
// 'w', 'a', 'x' or ",ccs=" leaves the stream to glibc. *cloexec is set for 'e'.
bool plain_read_mode(const char* mode, bool* cloexec) {
  if (!mode || mode[0] != 'r') return false;
  *cloexec = false;
  for (const char* p = mode + 1; *p; ++p) {
    if (*p == 'e') *cloexec = true;
    else if (*p != 'b' && *p != 'm' && *p != 'c') return false;
  }
  return true;
}

int mode_flags(const char* mode) {
  int acc = O_RDONLY;
  if (mode && (mode[0] == 'w' || mode[0] == 'a')) acc = O_WRONLY;
  if (mode && strchr(mode, '+')) acc = O_RDWR;
  return acc;
}

bool is_tracked_reader(int fd) {
  FdInfo fi;
  return lookup_reader(fd, &fi);
}

// The cookies of shim streams live in one fixed table, each naming its stream, so
// freopen can tell a shim stream from glibc's own (glibc's freopen cannot reopen a
// cookie stream: it crashes) and reach its descriptor. A fixed table, not malloc:
// a lookup racing an fclose in another thread then never reads freed memory.
struct Cookie {
  FILE* stream;  // null: free; kClaimed: being set up
  int fd;
};

constexpr size_t kMaxStreams = 8192;  // open shim streams; beyond, streams stay glibc's
FILE* const kClaimed = reinterpret_cast<FILE*>(1);
Cookie g_cookies[kMaxStreams];

Cookie* claim_cookie(int fd) {
  const size_t home = static_cast<size_t>(fd) % kMaxStreams;
  for (size_t i = 0; i < kMaxStreams; ++i) {
    Cookie& c = g_cookies[(home + i) % kMaxStreams];
    FILE* expected = nullptr;
    if (__atomic_compare_exchange_n(&c.stream, &expected, kClaimed, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
      c.fd = fd;
      return &c;
    }
  }
  return nullptr;
}

void release_cookie(Cookie* c) { __atomic_store_n(&c->stream, static_cast<FILE*>(nullptr), __ATOMIC_RELEASE); }

Cookie* find_cookie(FILE* f) {
  if (!f) return nullptr;
  const int fd = f->_fileno;
  const size_t home = fd >= 0 ? static_cast<size_t>(fd) % kMaxStreams : 0;
  for (size_t i = 0; i < kMaxStreams; ++i) {
    Cookie& c = g_cookies[(home + i) % kMaxStreams];
    if (__atomic_load_n(&c.stream, __ATOMIC_ACQUIRE) == f) return &c;
  }
  return nullptr;
}

ssize_t cookie_read(void* c, char* buf, size_t n) { return read(static_cast<Cookie*>(c)->fd, buf, n); }

int cookie_seek(void* c, off64_t* pos, int whence) {
  off64_t r = lseek64(static_cast<Cookie*>(c)->fd, *pos, whence);
  if (r < 0) return -1;
  *pos = r;
  return 0;
}

int cookie_close(void* c) {
  auto* cookie = static_cast<Cookie*>(c);
  const int fd = cookie->fd;
  release_cookie(cookie);
  return fd >= 0 ? close(fd) : 0;
}

// A stream over tracked fd `fd`. On failure the fd is left open for the caller.
FILE* cookie_stream(int fd) {
  Cookie* c = claim_cookie(fd);
  if (!c) return nullptr;
  cookie_io_functions_t io{cookie_read, nullptr, cookie_seek, cookie_close};
  FILE* f = fopencookie(c, "r", io);
  if (!f) {
    release_cookie(c);
    return nullptr;
  }
  f->_fileno = fd;
  __atomic_store_n(&c->stream, f, __ATOMIC_RELEASE);
  return f;
}

// Descriptors that stdio opened behind our back: whatever the table held for that
// number is stale; a dataset file opened for writing has its cache dropped.
FILE* learn_stream(FILE* f, const char* mode) {
  if (f) {
    const int fd = f->_fileno;
    if (fd >= 0) keeping_errno([&] { track_opened(fd, mode_flags(mode), nullptr); });
  }
  return f;
}

FILE* open_stream(FILE* (*real)(const char*, const char*), const char* path, const char* mode) {
  bool cloexec = false;
  if (!real) {
    errno = ENOSYS;
    return nullptr;
  }
  if (!shim_enabled() || !plain_read_mode(mode, &cloexec) || link_in_foreign_process())
    return learn_stream(real(path, mode), mode);
  // Open it ourselves (the kernel checks permissions and sets errno exactly as
  // fopen's own open would), then decide what kind of stream to build on it.
  int fd = open(path, O_RDONLY | (cloexec ? O_CLOEXEC : 0));
  if (fd < 0) return nullptr;
  FILE* f = is_tracked_reader(fd) ? cookie_stream(fd) : nullptr;
  if (!f) {
    fd_pos_sync(fd, true);  // glibc's stream reads at the kernel's offset
    f = next_real(&g_stdio.fdopen, "fdopen")(fd, mode);
  }
  if (!f) {
    const int e = errno;
    close(fd);
    errno = e;
  }
  return f;
}

}  // namespace

// A stream opened: errno as the caller left it (the shim's own open, lookups and
// syncs on the way leave no trace). A failure: the errno of the call that failed.
DC_EXPORT FILE* fopen(const char* path, const char* mode) {
  const KeptErrno e;
  FILE* f = open_stream(next_real(&g_stdio.fopen, "fopen"), path, mode);
  if (f) e.restore();
  return f;
}

DC_EXPORT FILE* fopen64(const char* path, const char* mode) {
  const KeptErrno e;
  FILE* f = open_stream(next_real(&g_stdio.fopen64, "fopen64"), path, mode);
  if (f) e.restore();
  return f;
}

DC_EXPORT FILE* fdopen(int fd, const char* mode) {
  const KeptErrno e;
  bool cloexec = false;
  if (shim_enabled() && plain_read_mode(mode, &cloexec) && is_tracked_reader(fd)) {
    if (FILE* f = cookie_stream(fd)) {
      e.restore();
      return f;
    }
  }
  fd_pos_sync(fd, true);  // glibc's stream reads at the kernel's offset
  e.restore();
  return next_real(&g_stdio.fdopen, "fdopen")(fd, mode);
}

// freopen keeps the caller's FILE object. glibc's own streams stay glibc's
// (correct, not served from the cache); their old descriptor is closed inside
// glibc, unseen, so its slot is cleared here. A shim stream is reopened here: for
// a read mode its descriptor is swapped for the new file's and its buffer dropped;
// any other mode fails, which the standard allows (the stream is closed).
namespace {
FILE* reopen_shim_stream(Cookie* c, const char* path, const char* mode, FILE* stream) {
  bool cloexec = false;
  if (!plain_read_mode(mode, &cloexec)) {
    fclose(stream);
    errno = EINVAL;
    return nullptr;
  }
  if (!path) {  // same file, new mode: a read mode changes nothing for us
    clearerr(stream);
    return stream;
  }
  const int fd = open(path, O_RDONLY | (cloexec ? O_CLOEXEC : 0));
  if (fd < 0) {
    const int e = errno;
    fclose(stream);
    errno = e;
    return nullptr;
  }
  const int old_fd = c->fd;
  c->fd = fd;
  stream->_fileno = fd;
  close(old_fd);
  // Drop what was buffered from the old file and start at the new one's beginning.
  fseeko64(stream, 0, SEEK_SET);
  clearerr(stream);
  return stream;
}

FILE* reopen_stream(FILE* (*real)(const char*, const char*, FILE*), const char* path, const char* mode,
                    FILE* stream) {
  if (!real) {
    errno = ENOSYS;
    return nullptr;
  }
  if (Cookie* c = find_cookie(stream)) return reopen_shim_stream(c, path, mode, stream);
  CloseTicket ticket;
  const int old_fd = stream ? stream->_fileno : -1;
  if (old_fd >= 0) begin_close(old_fd, &ticket);
  FILE* f = real(path, mode, stream);
  if (old_fd >= 0) keeping_errno([&] { finish_close(ticket); });
  return learn_stream(f, mode);
}
}  // namespace

DC_EXPORT FILE* freopen(const char* path, const char* mode, FILE* stream) {
  return reopen_stream(next_real(&g_stdio.freopen, "freopen"), path, mode, stream);
}

DC_EXPORT FILE* freopen64(const char* path, const char* mode, FILE* stream) {
  return reopen_stream(next_real(&g_stdio.freopen64, "freopen64"), path, mode, stream);
}

// fclose of any stream: glibc closes its descriptor internally, so the table slot
// is cleared here first (a cookie stream closes through the shim's close anyway).
DC_EXPORT int fclose(FILE* stream) {
  auto real = next_real(&g_stdio.fclose, "fclose");
  if (!real) {
    errno = ENOSYS;
    return EOF;
  }
  const int fd = stream ? stream->_fileno : -1;
  CloseTicket ticket;
  if (fd >= 0) begin_close(fd, &ticket);
  const int rc = real(stream);
  if (fd >= 0) keeping_errno([&] { finish_close(ticket); });
  return rc;
}
