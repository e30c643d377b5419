// systemd's notify protocol (Type=notify, WatchdogSec=) without libsystemd: one
// datagram to $NOTIFY_SOCKET per state change.
#pragma once

#include <cstdint>

namespace dc {

void notify_systemd(const char* state);
// Watchdog period from $WATCHDOG_USEC (0 if systemd did not ask for pings).
uint64_t watchdog_interval_usec();

}  // namespace dc
