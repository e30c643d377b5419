#include "daemon/cluster/link_policy.h"

namespace dc {

int pick_link(const std::vector<LinkLoad>& links) {
  int best = -1;
  for (size_t i = 0; i < links.size(); ++i) {
    if (!links[i].up) continue;
    if (best < 0 || links[i].in_flight_bytes < links[static_cast<size_t>(best)].in_flight_bytes)
      best = static_cast<int>(i);
  }
  return best;
}

bool should_grow(const std::vector<LinkLoad>& links, const LinkLimits& limits) {
  if (links.empty() || links.size() >= limits.max_links) return false;
  for (const auto& l : links)
    if (!l.up || l.in_flight_bytes <= limits.grow_in_flight) return false;
  return true;
}

std::vector<size_t> idle_links(const std::vector<LinkLoad>& links, const LinkLimits& limits, uint64_t now_ms) {
  std::vector<size_t> out;
  for (size_t i = 1; i < links.size(); ++i) {
    const LinkLoad& l = links[i];
    if (l.up && l.in_flight == 0 && now_ms >= l.last_used_ms && now_ms - l.last_used_ms >= limits.idle_ms)
      out.push_back(i);
  }
  return out;
}

}  // namespace dc
