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

inline constexpr uint32_t kSlotPathMax = 432;  // longer relative paths are not cached

// kPending: a read-only open of a dataset file whose size and mtime (part of its
// key) are not known yet. They come from the application's own fstat when it makes
// one (most do, right after open), else from one made at the first read or seek.
enum class SlotKind : uint32_t { kNone = 0, kReader = 1, kWriter = 2, kPending = 3 };

struct FdInfo {
  SlotKind kind = SlotKind::kNone;
  // The file description may be shared with another process (inherited across
  // fork, or by a spawned child, or sent over SCM_RIGHTS): its offset can move
  // under us at any moment, so read() must leave it to the kernel. pread is
  // unaffected.
  bool shared = false;
  // Which open this description came from: a new id from fd_track for a fresh
  // open, copied by a dup (dup, dup2, dup3, F_DUPFD*). Every number of this
  // process that names the description has it, so they share one fd_lock.
  uint32_t desc = 0;
  // This descriptor may keep its file offset in user space (see "User-space file
  // offsets" below): opened here with O_CLOEXEC, never duplicated or handed on.
  bool own_offset = false;
  uint32_t gen = 0;  // changes whenever the slot is (re)tracked: ties offsets to one open
  // `path` is the application's own absolute path, taken as canonical because it
  // looks so (no ".", "..", "//") rather than asked of the kernel. The agent opens
  // no symbolic links, so a fetch under a path that has one fails: the slot is then
  // re-keyed by the kernel's canonical path (track.h: rekey_canonical).
  bool lexical = false;
  FileKey key;
  uint64_t size = 0;
  uint32_t dataset_id = 0;
  uint32_t path_len = 0;
  char path[kSlotPathMax];  // relative to the dataset root; valid if asked for
};

// Copies the slot of `fd`. False if fd is not tracked. `with_path` also copies the
// relative path (only the miss path needs it).
// Also false, for a tracked fd, when a writer of its slot does not finish (it is
// this very thread, interrupted by a signal handler; or it has not run for long):
// the slot's offset is put back in the kernel and the slot marked shared first, so
// the caller's plain system call reads at the right offset, and so does every
// later read of the fd. Never "untracked" with a stale kernel offset.
bool fd_lookup(int fd, FdInfo* out, bool with_path);
void fd_track(int fd, const FdInfo& info);
void fd_clear(int fd);
// Clears every tracked slot with first <= fd <= last.
void fd_clear_range(unsigned first, unsigned last);
// A kPending slot of the open `gen` names becomes kReader with this size and key
// (nothing else changes: offset word, flags). False if it is no longer that slot.
bool fd_complete(int fd, uint32_t gen, uint64_t size, FileKey key);
// Slot `fd` of open `gen` now names `info`'s dataset, path, size and key (and
// kind), keeping its offset word and flags. False if it is no longer that slot.
bool fd_rekey(int fd, uint32_t gen, const FdInfo& info);
// Stops tracking `fd` while it stays open: its offset goes back to the kernel first.
void fd_untrack(int fd);
// Copies what `from` tracks to `to` (dup); clears `to` if `from` is not tracked.
void fd_copy(int from, int to);

// Lock of the open file description `fd` names (by FdInfo::desc, so fd and its
// dups share it), held by read()/lseek() across "get offset, serve, set offset",
// so no other thread's read or seek through any number of the description lands
// in between: the kernel gives the same guarantee for its own read (f_pos lock).
// Not taken (word null) if the calling thread already holds it (a signal handler
// re-entering) or its holder has not let go for ~2 s: the caller must then use
// the plain system call.
struct FdLock {
  uint32_t* word = nullptr;
  explicit operator bool() const { return word != nullptr; }
};
FdLock fd_lock(int fd);
void fd_unlock(FdLock lock);  // no-op if not taken

// User-space file offsets. A read() served from the arena needs no system call if
// the offset lives here rather than in the kernel. That is allowed only while the
// open file description is ours alone: opened in this process with O_CLOEXEC (so no
// exec'd program inherits it), never dup'ed, never sent to another process, not
// inherited across fork. While a slot's offset word is valid, the kernel's offset
// is stale, and every call that would let anyone else see it syncs first
// (fd_pos_sync: one lseek). Word layout: valid bit, 15-bit slot generation, 48-bit
// offset; updated by compare-and-swap, so concurrent reads of one fd each take a
// distinct range, as the kernel's own read guarantees.
inline constexpr uint64_t kPosValid = 1ull << 63;
inline constexpr int kPosGenShift = 48;
inline constexpr uint64_t kPosMax = (1ull << kPosGenShift) - 1;
inline uint64_t pos_word(uint32_t gen, uint64_t pos) {
  return kPosValid | (uint64_t{gen & 0x7fffu} << kPosGenShift) | pos;
}
inline uint64_t pos_of(uint64_t word) { return word & kPosMax; }
// The valid offset word of `fd` for the open `gen` names, or false (use the kernel).
bool fd_pos_load(int fd, uint32_t gen, uint64_t* word);
bool fd_pos_cas(int fd, uint64_t expected, uint64_t desired);
// After a read the kernel did at `pos` under fd_lock (kernel offset left there):
// keep `pos` in user space from now on if the descriptor may.
// False if it may not (shared, forbidden, reused): the caller must then move the
// kernel's offset itself.
bool fd_pos_adopt(int fd, uint32_t gen, uint64_t pos);
// Makes the kernel's offset right again (and the user-space one invalid). With
// `forbid` the descriptor never keeps its offset in user space again (dup'ed,
// inheritable, sent elsewhere). Takes the fd's lock unless the caller holds it.
// Preserves errno.
void fd_pos_sync(int fd, bool forbid);
// The description is being handed to another process (SCM_RIGHTS): synced,
// forbidden, and shared from now on.
void fd_pos_sync_shared(int fd);
// Before fork, exec or spawn: every tracked descriptor's offset synced, and each
// marked shared (the description is about to be shared with another process).
void fd_pos_sync_all_shared();
// fork (atfork prepare / parent / child) and vfork: everything synced and shared
// before; whatever another thread tracked meanwhile shared after.
void fd_fork_begin();
void fd_fork_end();
void fd_fork_end_in_child();

// After fork: the child's threads are gone, so are their locks.
void fd_reset_locks_after_fork();

// Fault-injection point for tests: begins a write of `fd`'s slot and never ends
// it, as a wrapper does that a signal handler longjmp'd out of mid-write.
void fd_fault_abandon_write(int fd);

}  // namespace dc::shim
