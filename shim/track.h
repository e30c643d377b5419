// Deciding whether a freshly opened descriptor is a dataset file the cache serves.
#pragma once

namespace dc::shim {

// After a successful open of `fd` with `flags`: track it as a cached reader, as a
// writer of a dataset file (whose cached pages are dropped now and at close), or
// not at all. Preserves errno.
void track_opened(int fd, int flags);
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
