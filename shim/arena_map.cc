#include "shim/arena_map.h"

#include <errno.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

#include "shim/agent_conn.h"
#include "shim/shim_state.h"

namespace dc::shim {
namespace {

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
// The page area is mapped 32 MiB at a time: one MADV_POPULATE_READ fills 16
// huge-page entries. Measured (forked readers, tools/bench/dataloader_bench.sh's
// workload): filling 2 MiB per call spent ~9% of the readers' CPU setting page
// table entries one call at a time; at 32 MiB that fell to ~2%, and each new
// worker process must fill its own (fork does not copy a shared mapping's).
constexpr uint32_t kGranuleShift = 25;
constexpr uint64_t kLivenessPeriodNs = 1'000'000'000;
constexpr uint64_t kArenaRetryNs = 100'000'000;

// A view with, right behind it, one bit per 32 MiB granule of its page area.
uint64_t* granule_bits(const ArenaView& v) {
  return reinterpret_cast<uint64_t*>(const_cast<ArenaView*>(&v) + 1);
}

// Readers may still be copying from `v`: swap its pages for zeros in place (never
// unmap) so their seqlock re-check sees 0 and they treat it as a miss. The view
// object stays allocated on purpose. This also lets go of the old memfd, so a dead
// agent's memory is freed once no one else maps it.
void zero_out(const ArenaView* v) {
  mmap(const_cast<uint8_t*>(v->base), v->size, PROT_READ, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS,
       -1, 0);
}

bool marked_retired(const ArenaView& v) {
  const auto* h = reinterpret_cast<const abi::ArenaHeader*>(v.base);
  return __atomic_load_n(&h->retired, __ATOMIC_RELAXED) != 0;
}

// Did the agent hang up? A session socket whose peer is gone polls as HUP. One
// system call, on the first open connection no thread is using; none: no news.
bool session_hung_up() {
  for (int i = 0; i < kMaxConns; ++i) {
    if (!acquire_open_conn(i)) continue;
    Conn& c = g_state.conns[i];
    bool gone = false;
    if (conn_is_ours(c)) {
      pollfd p{conn_fd(c), POLLIN, 0};
      timespec zero{0, 0};
      gone = syscall(SYS_ppoll, &p, 1, &zero, nullptr, 0) == 1 && (p.revents & (POLLHUP | POLLERR));
    }
    release_conn(i);
    return gone;
  }
  return false;
}

// The agent of `v` is gone: drop its arena and sessions so the next read connects
// to whichever agent serves the socket now (and its invalidations reach us).
void retire(const ArenaView* v) {
  if (!try_lock(&g_state.install_lock)) return;  // another thread is installing
  if (__atomic_load_n(&g_state.arena, __ATOMIC_ACQUIRE) == v) {
    __atomic_store_n(&g_state.arena, static_cast<const ArenaView*>(nullptr), __ATOMIC_RELEASE);
    zero_out(v);
    // Connections in use by other threads fail on their own at their next request.
    for (int k = 0; k < kMaxConns; ++k) {
      const int i = acquire_conn();
      if (i < 0) break;
      drop_conn(g_state.conns[i]);
      release_conn(i);
    }
    __atomic_store_n(&g_state.region_owner, -1, __ATOMIC_RELEASE);
    reset_agent_backoff();
    __atomic_store_n(&g_state.next_arena_try_ns, uint64_t{0}, __ATOMIC_RELAXED);
    __atomic_store_n(&g_state.next_session_try_ns, uint64_t{0}, __ATOMIC_RELAXED);
  }
  unlock(&g_state.install_lock);
}

const ArenaView* ask_for_arena();

// No arena: ask the agent for one (a dataset read is the only caller).
const ArenaView* connect_for_arena() {
  if (!g_state.enabled) return nullptr;
  // One thread asks; the others wait for its answer, so the threads of a process
  // that start reading together are all served (not read from the file) once the
  // agent answers. Bounded by the agent deadline; a signal handler that interrupts
  // the asking thread itself does not wait for it.
  const int me = static_cast<int>(syscall(SYS_gettid));
  int none = 0;
  if (!__atomic_compare_exchange_n(&g_state.arena_connector, &none, me, false, __ATOMIC_ACQ_REL,
                                   __ATOMIC_ACQUIRE)) {
    if (none == me) return nullptr;
    const uint64_t until = now_ns() + kAgentDeadlineNs;
    while (__atomic_load_n(&g_state.arena_connector, __ATOMIC_ACQUIRE) != 0 && now_ns() < until) {
      timespec pause{0, 1000000};
      syscall(SYS_ppoll, nullptr, 0, &pause, nullptr, 0);
    }
    return __atomic_load_n(&g_state.arena, __ATOMIC_ACQUIRE);
  }
  const ArenaView* got = ask_for_arena();
  __atomic_store_n(&g_state.arena_connector, 0, __ATOMIC_RELEASE);
  return got;
}

const ArenaView* ask_for_arena() {
  const uint64_t now = now_ns();
  if (now < __atomic_load_n(&g_state.next_arena_try_ns, __ATOMIC_RELAXED) || agent_backed_off(now))
    return nullptr;
  __atomic_store_n(&g_state.next_arena_try_ns, now + kArenaRetryNs, __ATOMIC_RELAXED);
  const int i = acquire_conn();
  if (i < 0) return nullptr;
  Conn& c = g_state.conns[i];
  if (conn_fd(c) >= 0 && conn_is_ours(c)) drop_conn(c);  // its hello brought no arena we kept
  connect_conn(c);
  release_conn(i);
  return __atomic_load_n(&g_state.arena, __ATOMIC_ACQUIRE);
}

}  // namespace

void install_arena(int fd, uint64_t size, uint64_t generation) {
  const ArenaView* cur = __atomic_load_n(&g_state.arena, __ATOMIC_ACQUIRE);
  if (cur && cur->generation == generation) return;  // same agent: keep our mapping
  void* base = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) return;
  const size_t granules = (size >> kGranuleShift) + 1;
  auto* view = static_cast<ArenaView*>(alloc_pages(sizeof(ArenaView) + (granules + 63) / 64 * 8));
  if (!view || !arena_view_init(base, size, view) || marked_retired(*view)) {
    munmap(base, size);
    return;
  }
  // Huge page mappings where the agent's arena has huge pages (one page-table fill
  // per 2 MiB); the header and index are read on every lookup: map them now.
  madvise(base, size, MADV_HUGEPAGE);
  madvise(base, static_cast<size_t>(view->pages - view->base), MADV_POPULATE_READ);
  __atomic_store_n(&g_state.next_liveness_ns, coarse_now_ns() + kLivenessPeriodNs,
                   __ATOMIC_RELAXED);
  __atomic_store_n(&g_state.arena, static_cast<const ArenaView*>(view), __ATOMIC_RELEASE);
  if (cur) zero_out(cur);  // the old agent is gone
}

// Served reads between two looks at the clock, per thread: the clock read costs
// more than the rest of the check (measured ~15 ns of a ~90 ns 64-byte hit).
constexpr uint32_t kReadsPerClockLook = 32;
__attribute__((tls_model("initial-exec"))) thread_local uint32_t t_reads_to_clock_look = 0;

const ArenaView* link_arena() {
  const ArenaView* v = __atomic_load_n(&g_state.arena, __ATOMIC_ACQUIRE);
  if (__builtin_expect(v == nullptr, 0)) return connect_for_arena();
  // One load of a header word no one writes while the agent lives (the line stays
  // shared in every reader's cache); every 32nd read of a thread, a coarse vDSO
  // clock read. No system call but the once-a-second poll.
  bool gone = marked_retired(*v);
  if (__builtin_expect(!gone, 1)) {
    if (__builtin_expect(t_reads_to_clock_look-- != 0, 1)) return v;
    t_reads_to_clock_look = kReadsPerClockLook - 1;
    const uint64_t now = coarse_now_ns();
    if (now < __atomic_load_n(&g_state.next_liveness_ns, __ATOMIC_RELAXED)) return v;
    __atomic_store_n(&g_state.next_liveness_ns, now + kLivenessPeriodNs, __ATOMIC_RELAXED);
    const int saved = errno;
    gone = session_hung_up();
    errno = saved;
    if (!gone) return v;
  }
  const int saved = errno;
  retire(v);
  const ArenaView* fresh = connect_for_arena();
  errno = saved;
  return fresh;
}

void link_map_slot(const ArenaView& v, uint32_t slot) {
  const uint64_t off =
      static_cast<uint64_t>(v.pages - v.base) + (static_cast<uint64_t>(slot) << v.page_shift);
  const uint64_t g = off >> kGranuleShift;
  uint64_t* word = &granule_bits(v)[g / 64];
  const uint64_t bit = 1ULL << (g % 64);
  if (__atomic_load_n(word, __ATOMIC_RELAXED) & bit) return;
  // Racing threads may both populate: harmless. If the kernel lacks the advice, the
  // bit is set anyway and pages simply fault in as they are touched.
  const uint64_t start = g << kGranuleShift;
  const uint64_t end =
      start + (1ULL << kGranuleShift) < v.size ? start + (1ULL << kGranuleShift) : v.size;
  const int saved = errno;
  madvise(const_cast<uint8_t*>(v.base) + start, end - start, MADV_POPULATE_READ);
  errno = saved;
  __atomic_fetch_or(word, bit, __ATOMIC_RELAXED);
}

void arena_after_fork_child() {
  if (const ArenaView* v = __atomic_load_n(&g_state.arena, __ATOMIC_ACQUIRE)) {
    const size_t words = ((v->size >> kGranuleShift) + 1 + 63) / 64;
    memset(granule_bits(*v), 0, words * 8);
  }
}

}  // namespace dc::shim
