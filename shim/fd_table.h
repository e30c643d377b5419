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
  // The file description may be shared with another descriptor number (dup,
  // dup2, dup3, F_DUPFD, sent over SCM_RIGHTS) or another process (inherited
  // across fork, or by a spawned child): its offset can move under us at any
  // moment, through a number whose per-fd lock we do not hold, so read() must
  // leave it to the kernel, whose read is atomic on the description. pread is
  // unaffected. Never cleared while the number names this description.
  bool shared = false;
  // Another descriptor number of this process may name the same description
  // (dup, dup2, dup3, F_DUPFD): read() leaves it to the kernel, as for `shared`.
  // Unlike `shared` it is cleared again when a close leaves one number of the
  // description in the table (fd_unalias_last): `open; dup2(fd, 0); close(fd)`, as
  // dd and shells do, gets its reads served again.
  bool aliased = false;
  // Which open this description came from: set by fd_track for a fresh open,
  // copied by a dup. Identifies the numbers that name one description.
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

  // The description's offset may move through a number or a process whose per-fd
  // lock we do not hold: read() must be the kernel's.
  bool offset_shared() const { return shared || aliased; }
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

// Numbers that name one open file description (dup, dup2, dup3, F_DUPFD). The
// per-fd lock of read() is per number, so while two numbers name a description
// both are aliased and read() of either is the kernel's (atomic on the
// description); pread is still served.
// `to` (unless !track_to: a vfork child must not write our table for its own
// numbers) now names the description of `from`, whose slot `from_info` is.
// `from` is marked after any read of it in progress is done.
void fd_alias(int from, int to, const FdInfo& from_info, bool track_to);
// The description id of `fd` if it is aliased, else 0.
uint32_t fd_aliased_desc(int fd);
// After the close of a number of description `desc` (what fd_aliased_desc said
// before): if one tracked number of it is left, it is alone again and no longer
// aliased. Numbers closed or duplicated by raw system calls are not seen; an
// unseen close only keeps a description aliased (read() left to the kernel).
void fd_unalias_last(uint32_t desc);

// Per-fd lock held by read()/lseek() across "get offset, serve, set offset", so no
// other thread's read or seek on the fd lands in between (the kernel gives the same
// guarantee for its own read). It is a lock per number, which is a lock per open
// file description only because read() serves no description that another number
// may name (FdInfo::shared). Returns false if the calling thread already holds it
// (a signal handler re-entering): the caller must then use the plain system call.
bool fd_lock(int fd);
void fd_unlock(int fd);

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
inline uint64_t pos_of(uint64_t word) {
  return word & kPosMax;
}
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
