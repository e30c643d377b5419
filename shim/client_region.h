// The per-session client region: counters of what the shim served and a ring of
// hit records the agent drains for recency. Losing entries is harmless.
#pragma once

#include <cstdint>

namespace dc::shim {

// Maps the region memfd `fd` from a hello. False if it is not a region we know.
// A replaced region is never unmapped: another thread may be writing to it.
bool install_region(int fd);

}  // namespace dc::shim
