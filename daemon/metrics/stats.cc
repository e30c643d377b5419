#include "daemon/metrics/stats.h"

namespace dc {

abi::ClientCounters snapshot_counters(const abi::ClientRegionHeader* region) {
  abi::ClientCounters c{};
  const abi::ClientCounters& s = region->counters;
  c.hit_reads = __atomic_load_n(&s.hit_reads, __ATOMIC_RELAXED);
  c.hit_bytes = __atomic_load_n(&s.hit_bytes, __ATOMIC_RELAXED);
  c.miss_reads = __atomic_load_n(&s.miss_reads, __ATOMIC_RELAXED);
  c.miss_bytes = __atomic_load_n(&s.miss_bytes, __ATOMIC_RELAXED);
  c.fallback_reads = __atomic_load_n(&s.fallback_reads, __ATOMIC_RELAXED);
  c.fallback_bytes = __atomic_load_n(&s.fallback_bytes, __ATOMIC_RELAXED);
  return c;
}

}  // namespace dc
