// libFuzzer harness: what the agent reads from a client's writable region
// (include/dc/arena.h ClientRegionHeader + hit ring). The client owns those bytes
// and may write anything: head, counters and records are all untrusted. The
// agent's use of them is the ring walk in Agent::drain_hit_rings (repeated here
// with the same bounds: it is a member of Agent, which needs a whole agent),
// BlockCache::record_hit on every record, and snapshot_counters for stats.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "daemon/cache/arena.h"
#include "daemon/cache/block_cache.h"
#include "daemon/metrics/stats.h"
#include "dc/arena.h"

namespace {

constexpr uint32_t kPage = 4096, kBlock = 16384, kPages = 64;

struct World {
  dc::Arena* arena;
  dc::BlockCache* cache;
};

// A small arena with a few resident blocks, so records name real slots.
World& world() {
  static World w = [] {
    auto a = dc::Arena::create(kPage, kBlock, kPages, false);
    if (!a) __builtin_trap();
    auto* c = new dc::BlockCache(**a);
    for (uint64_t k = 1; k <= 6; ++k) {
      dc::BlockCache::Handle h;
      if (c->begin(dc::FileKey{k, k * 0x1000 + 7}, 0, kBlock - 100, 1, &h) ==
          dc::BlockCache::Begin::kStarted)
        c->finish(h, true);
    }
    return World{*a, c};
  }();
  return w;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  World& w = world();
  // The region as the agent maps it, filled with the client's bytes (rest zero).
  std::vector<uint64_t> mem(dc::abi::kClientRegionBytes / sizeof(uint64_t), 0);
  memcpy(mem.data(), data, std::min(size, dc::abi::kClientRegionBytes));
  auto* region = reinterpret_cast<dc::abi::ClientRegionHeader*>(mem.data());

  (void)dc::snapshot_counters(region);

  // Tail: the agent's own, kept from the previous drain; take it from the input too.
  uint64_t tail = 0;
  if (size >= dc::abi::kClientRegionBytes + 8) memcpy(&tail, data + dc::abi::kClientRegionBytes, 8);
  const uint64_t head = __atomic_load_n(&region->head, __ATOMIC_ACQUIRE);
  const uint64_t* recs = reinterpret_cast<const uint64_t*>(region + 1);
  if (head - tail > dc::abi::kHitRingCapacity) tail = head - dc::abi::kHitRingCapacity;
  for (; tail != head; ++tail) {
    const uint64_t rec =
        __atomic_load_n(&recs[tail & (dc::abi::kHitRingCapacity - 1)], __ATOMIC_RELAXED);
    dc::FileKey key;
    uint64_t block;
    if (w.cache->record_hit(static_cast<uint32_t>(rec >> 32), static_cast<uint32_t>(rec), &key,
                            &block)) {
      if (block != 0 || key.hi < 1 || key.hi > 6) __builtin_trap();  // only what was filled
    }
  }
  return 0;
}
