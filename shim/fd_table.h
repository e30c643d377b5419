// Which descriptors of this process are cached dataset files. One fixed-size slot
// per fd number, in chunks allocated on first use and never freed, so a reader
// racing a close never touches freed memory. Each slot has its own seqlock: readers
// (any thread, even a signal handler) copy it and re-check; writers are the open,
// close and dup wrappers.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "dc/file_key.h"

namespace dc::shim {

inline constexpr uint32_t kSlotPathMax = 440;  // longer relative paths are not cached

enum class SlotKind : uint32_t { kNone = 0, kReader = 1, kWriter = 2 };

struct FdInfo {
  SlotKind kind = SlotKind::kNone;
  // The file description may be shared with another process (inherited across
  // fork, or by a spawned child): its offset can move under us at any moment, so
  // read() must leave it to the kernel. pread is unaffected.
  bool shared = false;
  FileKey key;
  uint64_t size = 0;
  uint32_t dataset_id = 0;
  uint32_t path_len = 0;
  char path[kSlotPathMax];  // relative to the dataset root; valid if asked for
};

// Copies the slot of `fd`. False if fd is not tracked. `with_path` also copies the
// relative path (only the miss path needs it).
bool fd_lookup(int fd, FdInfo* out, bool with_path);
void fd_track(int fd, const FdInfo& info);
void fd_clear(int fd);
// Clears every tracked slot with first <= fd <= last.
void fd_clear_range(unsigned first, unsigned last);
// Copies what `from` tracks to `to` (dup); clears `to` if `from` is not tracked.
void fd_copy(int from, int to);

// Per-fd lock held by read()/lseek() across "get offset, serve, set offset", so no
// other thread's read or seek on the fd lands in between (the kernel gives the same
// guarantee for its own read). Returns false if the calling thread already holds it
// (a signal handler re-entering): the caller must then use the plain system call.
bool fd_lock(int fd);
void fd_unlock(int fd);

// After fork: the child's threads are gone, so are their locks.
void fd_reset_locks_after_fork();
// Marks every tracked descriptor as shared with another process (see FdInfo).
void fd_mark_all_shared();

}  // namespace dc::shim
