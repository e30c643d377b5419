// Logging to stderr (the journal under systemd). One line per event, with the
// syslog priority prefix journald understands, so levels survive without a library.
#pragma once

#include <atomic>
#include <cstdint>

namespace dc {

enum class LogLevel { kError = 3, kWarn = 4, kInfo = 6, kDebug = 7 };

void set_log_level(LogLevel level);
void log(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

// One per call site of a line that an outside party can make repeat (a flood of
// connections, accept out of descriptors): at most one line per interval, and the
// next line printed says how many were left out, so a flood costs neither the
// disk nor the loop's time. Thread-safe (the etcd thread logs too).
class LogLimiter {
 public:
  explicit LogLimiter(uint64_t interval_ms = 1000) : interval_ms_(interval_ms) {}
  // True if this line may be printed now; then *suppressed is how many were
  // dropped since the last one printed.
  bool allow(uint64_t now_ms, uint64_t* suppressed);
  bool allow(uint64_t* suppressed);  // on CLOCK_MONOTONIC

 private:
  const uint64_t interval_ms_;
  std::atomic<uint64_t> next_ms_{0};
  std::atomic<uint64_t> suppressed_{0};
};

#define DC_LOG_ERROR(...) ::dc::log(::dc::LogLevel::kError, __VA_ARGS__)
#define DC_LOG_WARN(...) ::dc::log(::dc::LogLevel::kWarn, __VA_ARGS__)
#define DC_LOG_INFO(...) ::dc::log(::dc::LogLevel::kInfo, __VA_ARGS__)
#define DC_LOG_DEBUG(...) ::dc::log(::dc::LogLevel::kDebug, __VA_ARGS__)

// At most once per second per call site; `fmt` must be a string literal.
#define DC_LOG_LIMITED(level, fmt, ...)                                                        \
  do {                                                                                         \
    static ::dc::LogLimiter dc_log_limiter_;                                                   \
    uint64_t dc_log_suppressed_ = 0;                                                           \
    if (dc_log_limiter_.allow(&dc_log_suppressed_)) {                                          \
      if (dc_log_suppressed_)                                                                  \
        ::dc::log(level,                                                                       \
                  fmt " (%llu more like this in the last second(s) not logged)" __VA_OPT__(, ) \
                      __VA_ARGS__,                                                             \
                  static_cast<unsigned long long>(dc_log_suppressed_));                        \
      else                                                                                     \
        ::dc::log(level, fmt __VA_OPT__(, ) __VA_ARGS__);                                      \
    }                                                                                          \
  } while (0)
#define DC_LOG_WARN_LIMITED(...) DC_LOG_LIMITED(::dc::LogLevel::kWarn, __VA_ARGS__)
#define DC_LOG_INFO_LIMITED(...) DC_LOG_LIMITED(::dc::LogLevel::kInfo, __VA_ARGS__)

}  // namespace dc
