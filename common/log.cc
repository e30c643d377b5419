#include "common/log.h"

#include <time.h>

#include <cstdarg>
#include <cstdio>

namespace dc {
namespace {
LogLevel g_level = LogLevel::kInfo;
}

void set_log_level(LogLevel level) { g_level = level; }

void log(LogLevel level, const char* fmt, ...) {
  if (static_cast<int>(level) > static_cast<int>(g_level)) return;
  char line[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  // One fprintf per line keeps lines whole when several threads log.
  fprintf(stderr, "<%d>dcagent: %s\n", static_cast<int>(level), line);
}

bool LogLimiter::allow(uint64_t now_ms, uint64_t* suppressed) {
  uint64_t next = next_ms_.load(std::memory_order_relaxed);
  // Only the thread that moves next_ms_ on prints; the others count themselves out.
  if (now_ms < next ||
      !next_ms_.compare_exchange_strong(next, now_ms + interval_ms_, std::memory_order_relaxed)) {
    suppressed_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  *suppressed = suppressed_.exchange(0, std::memory_order_relaxed);
  return true;
}

bool LogLimiter::allow(uint64_t* suppressed) {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return allow(
      static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000,
      suppressed);
}

}  // namespace dc
