#include "shim/client_region.h"

#include <errno.h>
#include <sys/mman.h>

#include "dc/barrier.h"
#include "shim/agent_conn.h"
#include "shim/agent_link.h"
#include "shim/shim_state.h"

namespace dc::shim {

bool install_region(int fd) {
  void* p = mmap(nullptr, abi::kClientRegionBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return false;
  auto* r = static_cast<abi::ClientRegionHeader*>(p);
  if (r->magic != abi::kClientRegionMagic || r->ring_capacity != abi::kHitRingCapacity) {
    munmap(p, abi::kClientRegionBytes);
    return false;
  }
  __atomic_store_n(&g_state.region, r, __ATOMIC_RELEASE);
  return true;
}

void link_count(Served how, uint64_t bytes) {
  abi::ClientRegionHeader* r = __atomic_load_n(&g_state.region, __ATOMIC_ACQUIRE);
  if (!r) return;
  abi::ClientCounters& c = r->counters;
  uint64_t* reads = how == Served::kHit    ? &c.hit_reads
                    : how == Served::kMiss ? &c.miss_reads
                                           : &c.fallback_reads;
  uint64_t* b = how == Served::kHit    ? &c.hit_bytes
                : how == Served::kMiss ? &c.miss_bytes
                                       : &c.fallback_bytes;
  __atomic_fetch_add(reads, 1, __ATOMIC_RELAXED);
  __atomic_fetch_add(b, bytes, __ATOMIC_RELAXED);
}

namespace {

// A process whose region belongs to no live session of ours (a forked child still
// writing into its parent's region, or the agent restarted) opens its own session
// the first time it serves a hit, at most every 100 ms (never while the agent is
// backed off), so its hits keep reaching the agent under its own name even if it
// never misses.
void ensure_session() {
  const uint64_t now = now_ns();
  if (now < __atomic_load_n(&g_state.next_session_try_ns, __ATOMIC_RELAXED) ||
      agent_backed_off(now))
    return;
  __atomic_store_n(&g_state.next_session_try_ns, now + 100'000'000, __ATOMIC_RELAXED);
  const int i = acquire_conn();
  if (i < 0) return;
  Conn& c = g_state.conns[i];
  if (conn_fd(c) >= 0) {
    if (!conn_is_ours(c))
      set_conn_fd(c, -1);
    else
      drop_conn(c);  // reconnect this one, asking for a region
  }
  connect_conn(c);
  release_conn(i);
}

}  // namespace

void link_record_hit(uint32_t slot, uint64_t key_lo) {
  if (__builtin_expect(__atomic_load_n(&g_state.region_owner, __ATOMIC_RELAXED) < 0, 0) &&
      g_state.enabled)
    ensure_session();
  abi::ClientRegionHeader* r = __atomic_load_n(&g_state.region, __ATOMIC_ACQUIRE);
  if (!r) return;
  uint64_t* recs = reinterpret_cast<uint64_t*>(r + 1);
  const uint64_t at = ring_claim(&r->head);
  ring_put(&recs[at & (abi::kHitRingCapacity - 1)], abi::hit_record(slot, key_lo));
}

}  // namespace dc::shim
