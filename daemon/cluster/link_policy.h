// How many connections to keep to one peer, and which one a new fetch goes to.
// Pure decisions over a snapshot of the connections' loads, so they can be tested
// without sockets; the cluster (cluster.cc) applies them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace dc {

// One connection to a peer, as the policy sees it. Index 0 of a list is the
// peer's first connection: it is never closed for being idle (it carries the
// liveness pings, and a member with no connection would leave placement).
struct LinkLoad {
  bool up = false;               // authenticated: may carry fetches
  uint64_t in_flight_bytes = 0;  // block bytes asked for and not yet answered
  size_t in_flight = 0;          // requests asked for and not yet answered
  uint64_t last_used_ms = 0;     // last request sent or answer received
};

struct LinkLimits {
  size_t max_links = 4;                  // connections per peer, at least 1
  // Bytes in flight on each connection before another opens: a socket buffer's
  // worth (4 MiB, peer_util.h tune_socket), so a new request would otherwise wait
  // behind a full buffer of replies on every connection.
  uint64_t grow_in_flight = 4ull << 20;
  uint64_t idle_ms = 10000;              // a connection other than the first closes after this
};

// The up connection with the fewest bytes in flight (ties: the lowest index, so
// that light traffic stays on the first connection and the others fall idle).
// -1 if none is up.
int pick_link(const std::vector<LinkLoad>& links);

// True if another connection should be opened: every connection is up and each
// has more than `grow_in_flight` bytes in flight, and there are fewer than
// `max_links`. A connection still being set up counts as spare capacity, so a
// burst opens connections one at a time.
bool should_grow(const std::vector<LinkLoad>& links, const LinkLimits& limits);

// Connections to close now: not the first, up, nothing in flight, and nothing
// sent or received for `idle_ms`. Closing such a one fails no request.
std::vector<size_t> idle_links(const std::vector<LinkLoad>& links, const LinkLimits& limits, uint64_t now_ms);

}  // namespace dc
