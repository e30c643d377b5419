#include "shim/fd_table.h"

#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "dc/barrier.h"

namespace dc::shim {
namespace {

struct Slot {
  uint32_t seq;
  uint32_t kind;
  uint64_t key_hi, key_lo;
  uint64_t size;
  uint32_t dataset_id;
  uint32_t path_len;
  uint32_t reserved0;   // unused
  uint32_t shared;      // FdInfo::shared
  uint64_t pos;         // offset word (fd_table.h); outside the seqlock, CAS-updated
  uint32_t own_offset;  // FdInfo::own_offset; cleared, never set, outside fd_track
  uint32_t gen;         // FdInfo::gen
  uint32_t lexical;     // FdInfo::lexical
  uint32_t desc;        // FdInfo::desc
  uint32_t reserved1;   // unused
  uint32_t writer;      // tid inside write_begin..write_end, 0 if none (a hint for readers)
  char path[kSlotPathMax];
};
static_assert(sizeof(Slot) == 512);

constexpr int kChunkBits = 10;
constexpr int kChunkSlots = 1 << kChunkBits;
constexpr int kChunks = 1024;  // fds up to 1M are tracked; larger ones pass through

Slot* g_chunks[kChunks];
uint32_t g_forking;    // fd_fork_begin .. fd_fork_end
uint32_t g_next_desc;  // description ids handed out by fd_track (0 means "none")

Slot* slot_for(int fd, bool create) {
  if (fd < 0) return nullptr;
  const unsigned c = static_cast<unsigned>(fd) >> kChunkBits;
  if (c >= kChunks) return nullptr;
  Slot* chunk = __atomic_load_n(&g_chunks[c], __ATOMIC_ACQUIRE);
  if (!chunk) {
    if (!create) return nullptr;
    // mmap, not malloc: this may run inside malloc-unsafe contexts (signal handler,
    // after fork in a threaded parent). Zero pages mean "untracked".
    void* p = mmap(nullptr, sizeof(Slot) * kChunkSlots, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return nullptr;
    Slot* expected = nullptr;
    if (__atomic_compare_exchange_n(&g_chunks[c], &expected, static_cast<Slot*>(p), false,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
      chunk = static_cast<Slot*>(p);
    } else {
      munmap(p, sizeof(Slot) * kChunkSlots);
      chunk = expected;
    }
  }
  return &chunk[static_cast<unsigned>(fd) & (kChunkSlots - 1)];
}

// initial-exec: the shim is preloaded, so its TLS is static and needs no lookup.
__attribute__((tls_model("initial-exec"))) thread_local uint32_t t_tid = 0;
uint32_t my_tid() {
  if (!t_tid) t_tid = static_cast<uint32_t>(syscall(SYS_gettid));
  return t_tid;
}

// The per-description locks (fd_lock): a fixed table indexed by description id.
// Two descriptions that share an entry are serialised more than they need be,
// never less. Zero means free, else the holder's tid.
constexpr uint32_t kDescLocks = 4096;
uint32_t g_desc_locks[kDescLocks];

// Writers take the slot's seqlock by moving seq from even to odd. A writer that
// finds it odd waits a bounded time: the holder is another thread inside an
// open/close wrapper for this same fd number, which finishes in microseconds.
void write_begin(Slot* s) {
  for (int spin = 0;; ++spin) {
    uint32_t cur = __atomic_load_n(&s->seq, __ATOMIC_RELAXED);
    if (!(cur & 1u) && __atomic_compare_exchange_n(&s->seq, &cur, cur + 1, false, __ATOMIC_ACQUIRE,
                                                   __ATOMIC_RELAXED))
      break;
    if (spin > 100000) {  // holder died mid-write (signal longjmp): take it over
      __atomic_store_n(&s->seq, (cur | 1u), __ATOMIC_RELAXED);
      break;
    }
    if (spin > 64) sched_yield();
  }
  __atomic_thread_fence(__ATOMIC_RELEASE);
  __atomic_store_n(&s->writer, my_tid(), __ATOMIC_RELAXED);
}

void write_end(Slot* s) {
  __atomic_store_n(&s->writer, 0u, __ATOMIC_RELAXED);
  seq_write_end(&s->seq);
}

// How long a reader waits for a writer of the slot before it stops trusting it.
// Writers hold a slot for a few stores, so this is only reached when the writer is
// not running: preempted for long on a loaded machine, or gone (a signal handler
// that longjmp'd out of a wrapper mid-write).
constexpr int kLookupSpins = 200000;

void sync_slot(int fd, Slot* s, bool forbid, bool mark_shared);

// A reader that cannot read the slot must still never send its caller to a stale
// kernel offset: the offset goes back to the kernel, and the slot is marked shared
// (read() of the fd is the kernel's from now on, whether its slot can be read or
// not). The fd's lock is taken so that no read under it is between its "get
// offset" and "set offset" meanwhile.
void give_up_on_writer(int fd, Slot* s) {
  const FdLock lock = fd_lock(fd);
  sync_slot(fd, s, true, true);
  fd_unlock(lock);
}

}  // namespace

bool fd_lookup(int fd, FdInfo* out, bool with_path) {
  Slot* s = slot_for(fd, false);
  if (!s) return false;
  // A slot being written is waited for (writers hold it for a few stores). An
  // "untracked" answer sends the caller to the kernel's offset, which is stale
  // while the slot keeps it in user space: give_up_on_writer puts it right first.
  for (int attempt = 0;; ++attempt) {
    if (attempt > 64) sched_yield();
    const uint32_t s1 = seq_read_begin(&s->seq);
    if (s1 & 1u) {
      // This thread is the writer (a signal handler interrupted it mid-write):
      // waiting cannot end. Nor, past a bound, is it worth waiting for one that
      // does not run.
      if (__atomic_load_n(&s->writer, __ATOMIC_RELAXED) == my_tid() || attempt >= kLookupSpins) {
        give_up_on_writer(fd, s);
        return false;
      }
      continue;
    }
    const uint32_t kind = field_load(&s->kind);
    if (kind == 0) return false;
    out->kind = static_cast<SlotKind>(kind);
    out->key.hi = field_load(&s->key_hi);
    out->key.lo = field_load(&s->key_lo);
    out->size = field_load(&s->size);
    out->dataset_id = field_load(&s->dataset_id);
    out->shared = field_load(&s->shared) != 0;
    out->own_offset = field_load(&s->own_offset) != 0;
    out->gen = field_load(&s->gen);
    out->lexical = field_load(&s->lexical) != 0;
    out->desc = field_load(&s->desc);
    uint32_t plen = field_load(&s->path_len);
    if (plen >= kSlotPathMax) plen = 0;
    out->path_len = plen;
    if (with_path) {
      memcpy(out->path, s->path, plen);
      out->path[plen] = '\0';
    }
    if (seq_read_valid(&s->seq, s1)) return true;
  }
}

void fd_track(int fd, const FdInfo& info) {
  Slot* s = slot_for(fd, true);
  if (!s || info.path_len >= kSlotPathMax) return;
  write_begin(s);
  field_store(&s->key_hi, info.key.hi);
  field_store(&s->key_lo, info.key.lo);
  field_store(&s->size, info.size);
  field_store(&s->dataset_id, info.dataset_id);
  field_store(&s->shared, info.shared ? 1u : 0u);
  field_store(&s->lexical, info.lexical ? 1u : 0u);
  uint32_t desc = info.desc;
  while (desc == 0) desc = __atomic_add_fetch(&g_next_desc, 1u, __ATOMIC_RELAXED);
  field_store(&s->desc, desc);
  // A new open on this number: a new generation, so an offset update racing in
  // from a read of the old file (an app closing under its own reader) cannot land.
  const uint32_t gen = (field_load(&s->gen) + 1) & 0x7fffu;
  field_store(&s->gen, gen);
  // A fork under way (between its prepare and parent handlers) shares anything
  // opened meanwhile with the child.
  const bool own =
      info.own_offset && !info.shared && __atomic_load_n(&g_forking, __ATOMIC_ACQUIRE) == 0;
  field_store(&s->own_offset, own ? 1u : 0u);
  // Just opened, the kernel's offset is 0, and so is ours; but only a reader's
  // offset ever moves to user space: a pending slot (maybe a directory, read by
  // getdents behind our back) keeps its offset in the kernel until fd_complete.
  __atomic_store_n(&s->pos, own && info.kind == SlotKind::kReader ? pos_word(gen, 0) : 0,
                   __ATOMIC_RELEASE);
  field_store(&s->path_len, info.path_len);
  memcpy(s->path, info.path, info.path_len);
  s->path[info.path_len] = '\0';
  field_store(&s->kind, static_cast<uint32_t>(info.kind));
  write_end(s);
}

bool fd_complete(int fd, uint32_t gen, uint64_t size, FileKey key) {
  Slot* s = slot_for(fd, false);
  if (!s) return false;
  write_begin(s);
  const bool same = field_load(&s->kind) == static_cast<uint32_t>(SlotKind::kPending) &&
                    field_load(&s->gen) == (gen & 0x7fffu);
  if (same) {
    field_store(&s->key_hi, key.hi);
    field_store(&s->key_lo, key.lo);
    field_store(&s->size, size);
    field_store(&s->kind, static_cast<uint32_t>(SlotKind::kReader));
    // Nothing moved the kernel's offset since the open: every call that could have
    // (sendfile, dup, fork, ...) cleared own_offset on a pending slot (fd_pos_sync).
    if (field_load(&s->own_offset) != 0 && field_load(&s->shared) == 0)
      __atomic_store_n(&s->pos, pos_word(gen, 0), __ATOMIC_RELEASE);
  }
  write_end(s);
  return same;
}

bool fd_rekey(int fd, uint32_t gen, const FdInfo& info) {
  Slot* s = slot_for(fd, false);
  if (!s || info.path_len >= kSlotPathMax) return false;
  write_begin(s);
  const uint32_t kind = field_load(&s->kind);
  const bool same = (kind == static_cast<uint32_t>(SlotKind::kReader) ||
                     kind == static_cast<uint32_t>(SlotKind::kPending)) &&
                    field_load(&s->gen) == (gen & 0x7fffu);
  if (same) {
    field_store(&s->key_hi, info.key.hi);
    field_store(&s->key_lo, info.key.lo);
    field_store(&s->size, info.size);
    field_store(&s->dataset_id, info.dataset_id);
    field_store(&s->lexical, info.lexical ? 1u : 0u);
    field_store(&s->path_len, info.path_len);
    memcpy(s->path, info.path, info.path_len);
    s->path[info.path_len] = '\0';
    field_store(&s->kind, static_cast<uint32_t>(info.kind));
  }
  write_end(s);
  return same;
}

void fd_untrack(int fd) {
  fd_pos_sync(fd, true);
  fd_clear(fd);
}

void fd_clear(int fd) {
  Slot* s = slot_for(fd, false);
  if (!s || field_load(&s->kind) == 0) return;
  write_begin(s);
  field_store(&s->kind, 0u);
  __atomic_store_n(&s->pos, uint64_t{0}, __ATOMIC_RELEASE);
  write_end(s);
}

void fd_clear_range(unsigned first, unsigned last) {
  for (unsigned c = first >> kChunkBits; c < kChunks && c <= (last >> kChunkBits); ++c) {
    Slot* chunk = __atomic_load_n(&g_chunks[c], __ATOMIC_ACQUIRE);
    if (!chunk) continue;
    for (unsigned i = 0; i < kChunkSlots; ++i) {
      const unsigned fd = (c << kChunkBits) | i;
      if (fd >= first && fd <= last && field_load(&chunk[i].kind) != 0)
        fd_clear(static_cast<int>(fd));
    }
  }
}

void fd_copy(int from, int to) {
  FdInfo info;
  if (fd_lookup(from, &info, true))
    fd_track(to, info);
  else
    fd_clear(to);
}

FdLock fd_lock(int fd) {
  Slot* s = slot_for(fd, false);
  if (!s) return FdLock{};
  // Read outside the seqlock: a number being re-tracked meanwhile (the app racing
  // its own close or dup2 with a read of the number) locks some description's
  // entry, and the callers re-check the slot under it.
  uint32_t* word = &g_desc_locks[field_load(&s->desc) % kDescLocks];
  const uint32_t me = my_tid();
  for (int spin = 0;; ++spin) {
    uint32_t expected = 0;
    if (__atomic_compare_exchange_n(word, &expected, me, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
      return FdLock{word};
    if (expected == me) return FdLock{};  // re-entered from a signal handler
    // The holder is inside one read (a copy, or a fetch round trip). Past ~2 s
    // give up: the caller then uses the plain system call, which is always correct
    // for the bytes, if not for the order of two racing reads.
    if (spin > 20000) return FdLock{};
    if (spin > 1000)
      usleep(100);
    else if (spin > 64)
      sched_yield();
  }
}

void fd_unlock(FdLock lock) {
  if (lock.word) __atomic_store_n(lock.word, 0u, __ATOMIC_RELEASE);
}

bool fd_pos_load(int fd, uint32_t gen, uint64_t* word) {
  Slot* s = slot_for(fd, false);
  if (!s) return false;
  const uint64_t w = __atomic_load_n(&s->pos, __ATOMIC_ACQUIRE);
  if (!(w & kPosValid) || ((w >> kPosGenShift) & 0x7fffu) != (gen & 0x7fffu)) return false;
  *word = w;
  return true;
}

bool fd_pos_cas(int fd, uint64_t expected, uint64_t desired) {
  Slot* s = slot_for(fd, false);
  return s && __atomic_compare_exchange_n(&s->pos, &expected, desired, false, __ATOMIC_ACQ_REL,
                                          __ATOMIC_ACQUIRE);
}

bool fd_pos_adopt(int fd, uint32_t gen, uint64_t pos) {
  Slot* s = slot_for(fd, false);
  if (!s || pos > kPosMax) return false;
  if (field_load(&s->kind) != static_cast<uint32_t>(SlotKind::kReader) ||
      field_load(&s->own_offset) == 0 || field_load(&s->shared) != 0 ||
      field_load(&s->gen) != (gen & 0x7fffu))
    return false;
  __atomic_store_n(&s->pos, pos_word(gen, pos), __ATOMIC_RELEASE);
  return true;
}

namespace {
// Caller holds the fd's lock if it could get it (best effort: a signal handler
// re-entering, or a holder stuck for seconds). Only words outside the seqlock
// (atomics of their own) are written, so a writer stuck mid-write cannot block it.
void sync_slot(int fd, Slot* s, bool forbid, bool mark_shared) {
  if (mark_shared) __atomic_store_n(&s->shared, 1u, __ATOMIC_RELEASE);
  if (forbid || mark_shared) __atomic_store_n(&s->own_offset, 0u, __ATOMIC_RELEASE);
  const uint64_t w = __atomic_exchange_n(&s->pos, uint64_t{0}, __ATOMIC_ACQ_REL);
  if (w & kPosValid) {
    const int saved = errno;
    syscall(SYS_lseek, fd, static_cast<long>(pos_of(w)), SEEK_SET);
    errno = saved;
  }
}
}  // namespace

void fd_pos_sync(int fd, bool forbid) {
  Slot* s = slot_for(fd, false);
  if (!s || field_load(&s->kind) == 0) return;
  // The kernel's offset of a pending slot is about to move: it must stay there.
  if (field_load(&s->kind) == static_cast<uint32_t>(SlotKind::kPending)) forbid = true;
  if (!forbid && !(__atomic_load_n(&s->pos, __ATOMIC_ACQUIRE) & kPosValid)) return;
  const FdLock lock = fd_lock(fd);
  sync_slot(fd, s, forbid, false);
  fd_unlock(lock);
}

void fd_pos_sync_shared(int fd) {
  Slot* s = slot_for(fd, false);
  if (!s || field_load(&s->kind) == 0) return;
  const FdLock lock = fd_lock(fd);
  sync_slot(fd, s, true, true);
  fd_unlock(lock);
}

void fd_fork_begin() {
  __atomic_fetch_add(&g_forking, 1u, __ATOMIC_ACQ_REL);
  fd_pos_sync_all_shared();
}

void fd_fork_end() {
  // Anything tracked while the fork was under way is shared too.
  fd_pos_sync_all_shared();
  __atomic_fetch_sub(&g_forking, 1u, __ATOMIC_ACQ_REL);
}

void fd_fork_end_in_child() {
  g_forking = 0;
  fd_pos_sync_all_shared();
}

void fd_pos_sync_all_shared() {
  for (int c = 0; c < kChunks; ++c) {
    Slot* chunk = __atomic_load_n(&g_chunks[c], __ATOMIC_ACQUIRE);
    if (!chunk) continue;
    for (int i = 0; i < kChunkSlots; ++i) {
      if (field_load(&chunk[i].kind) == 0) continue;
      const int fd = (c << kChunkBits) | i;
      const FdLock lock = fd_lock(fd);
      sync_slot(fd, &chunk[i], true, true);
      fd_unlock(lock);
    }
  }
}

void fd_fault_abandon_write(int fd) {
  Slot* s = slot_for(fd, true);
  if (s) write_begin(s);
}

void fd_reset_locks_after_fork() {
  t_tid = 0;  // the child's thread has a new tid
  for (uint32_t& word : g_desc_locks) word = 0;
}

}  // namespace dc::shim
