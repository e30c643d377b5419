// Counters the agent reports through `dcctl stats`. Names are part of the CLI's
// JSON output: add new ones, never rename or reuse one.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "dc/arena.h"

namespace dc {

struct AgentCounters {
  uint64_t fetch_requests = 0;   // fetch messages from shims
  uint64_t blocks_filled = 0;    // blocks read from the origin into the arena
  uint64_t bytes_origin = 0;     // bytes read from the origin
  uint64_t fetch_errors = 0;     // fetches answered with an error
  uint64_t stale_fetches = 0;    // fetches refused because the file changed
  uint64_t bad_messages = 0;     // malformed packets (session closed)
  uint64_t sessions_opened = 0;
  uint64_t sessions_rejected = 0;  // peer credentials not allowed
  uint64_t invalidations = 0;
  uint64_t readahead_blocks = 0;   // fills started by readahead, not by a reader
};

// Sums of shim-side counters (from each client's region), live plus departed.
inline void add_counters(abi::ClientCounters* into, const abi::ClientCounters& c) {
  into->hit_reads += c.hit_reads;
  into->hit_bytes += c.hit_bytes;
  into->miss_reads += c.miss_reads;
  into->miss_bytes += c.miss_bytes;
  into->fallback_reads += c.fallback_reads;
  into->fallback_bytes += c.fallback_bytes;
}

// A snapshot of a client region's counters, read with relaxed atomics because the
// shim keeps adding to them.
abi::ClientCounters snapshot_counters(const abi::ClientRegionHeader* region);

using StatList = std::vector<std::pair<std::string, uint64_t>>;

}  // namespace dc
