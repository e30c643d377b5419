// Deciding whether a freshly opened descriptor is a dataset file the cache serves.
#pragma once

#include <sys/stat.h>

#include "shim/fd_table.h"

namespace dc::shim {

// After a successful open of `fd` with `flags`: track it as a cached reader, as a
// writer of a dataset file (whose cached pages are dropped now and at close), or
// not at all. Preserves errno.
// `path`: what the application opened, if known (absolute paths under a root that
// look canonical spare a kernel lookup: FdInfo::lexical).
void track_opened(int fd, int flags, const char* path);
// A fetch under the application's own spelling of the path failed: name the file
// by its canonical path from now on (or stop tracking it if that is outside every
// dataset root). False if nothing changed.
bool rekey_canonical(int fd);
// True if `fd` is a cached reader, copying its slot to `fi`. A pending slot is
// completed first (one fstat). Preserves errno.
bool lookup_reader(int fd, FdInfo* fi);
// The application's own fstat of `fd` succeeded with `st`: a pending slot takes
// its size and key (file_key_of) from it, sparing the shim a system call.
void note_fstat(int fd, const struct stat& st);
// Before the real close of `fd`; returns after the slot is cleared. Writers of
// dataset files get their pages invalidated by finish_close().
struct CloseTicket {
  bool invalidate = false;
  unsigned dataset_id = 0;
  unsigned path_len = 0;
  char path[440];
};
void begin_close(int fd, CloseTicket* ticket);
void finish_close(const CloseTicket& ticket);

}  // namespace dc::shim
