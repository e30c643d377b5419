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
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cerrno>

#include "shim/agent_link.h"
#include "shim/fd_table.h"
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

template <typename T>
T next(T* slot, const char* name) {
  if (!*slot) *slot = reinterpret_cast<T>(dlsym(RTLD_NEXT, name));
  return *slot;
}

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
  return fd_lookup(fd, &fi, false) && fi.kind == SlotKind::kReader;
}

ssize_t cookie_read(void* c, char* buf, size_t n) { return read(static_cast<int>(reinterpret_cast<intptr_t>(c)), buf, n); }

int cookie_seek(void* c, off64_t* pos, int whence) {
  off64_t r = lseek64(static_cast<int>(reinterpret_cast<intptr_t>(c)), *pos, whence);
  if (r < 0) return -1;
  *pos = r;
  return 0;
}

int cookie_close(void* c) { return close(static_cast<int>(reinterpret_cast<intptr_t>(c))); }

// A stream over tracked fd `fd`. On failure the fd is left open for the caller.
FILE* cookie_stream(int fd) {
  cookie_io_functions_t io{cookie_read, nullptr, cookie_seek, cookie_close};
  FILE* f = fopencookie(reinterpret_cast<void*>(static_cast<intptr_t>(fd)), "r", io);
  if (f) f->_fileno = fd;
  return f;
}

// Descriptors that stdio opened behind our back: whatever the table held for that
// number is stale; a dataset file opened for writing has its cache dropped.
FILE* learn_stream(FILE* f, const char* mode) {
  if (f) {
    const int fd = f->_fileno;
    if (fd >= 0) track_opened(fd, mode_flags(mode));
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
  if (!f) f = next(&g_stdio.fdopen, "fdopen")(fd, mode);
  if (!f) {
    const int e = errno;
    close(fd);
    errno = e;
  }
  return f;
}

}  // namespace

DC_EXPORT FILE* fopen(const char* path, const char* mode) {
  return open_stream(next(&g_stdio.fopen, "fopen"), path, mode);
}

DC_EXPORT FILE* fopen64(const char* path, const char* mode) {
  return open_stream(next(&g_stdio.fopen64, "fopen64"), path, mode);
}

DC_EXPORT FILE* fdopen(int fd, const char* mode) {
  bool cloexec = false;
  if (shim_enabled() && plain_read_mode(mode, &cloexec) && is_tracked_reader(fd)) {
    if (FILE* f = cookie_stream(fd)) return f;
  }
  return next(&g_stdio.fdopen, "fdopen")(fd, mode);
}

// freopen keeps the caller's FILE object, so it stays glibc's stream: correct, and
// not served from the cache. Its old descriptor is closed inside glibc, unseen.
namespace {
FILE* reopen_stream(FILE* (*real)(const char*, const char*, FILE*), const char* path, const char* mode,
                    FILE* stream) {
  if (!real) {
    errno = ENOSYS;
    return nullptr;
  }
  CloseTicket ticket;
  const int old_fd = stream ? stream->_fileno : -1;
  if (old_fd >= 0) begin_close(old_fd, &ticket);
  FILE* f = real(path, mode, stream);
  if (old_fd >= 0) finish_close(ticket);
  return learn_stream(f, mode);
}
}  // namespace

DC_EXPORT FILE* freopen(const char* path, const char* mode, FILE* stream) {
  return reopen_stream(next(&g_stdio.freopen, "freopen"), path, mode, stream);
}

DC_EXPORT FILE* freopen64(const char* path, const char* mode, FILE* stream) {
  return reopen_stream(next(&g_stdio.freopen64, "freopen64"), path, mode, stream);
}

// fclose of any stream: glibc closes its descriptor internally, so the table slot
// is cleared here first (a cookie stream closes through the shim's close anyway).
DC_EXPORT int fclose(FILE* stream) {
  auto real = next(&g_stdio.fclose, "fclose");
  if (!real) {
    errno = ENOSYS;
    return EOF;
  }
  const int fd = stream ? stream->_fileno : -1;
  CloseTicket ticket;
  if (fd >= 0) begin_close(fd, &ticket);
  const int rc = real(stream);
  if (fd >= 0) finish_close(ticket);
  return rc;
}
