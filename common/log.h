// Logging to stderr (the journal under systemd). One line per event, with the
// syslog priority prefix journald understands, so levels survive without a library.
#pragma once

namespace dc {

enum class LogLevel { kError = 3, kWarn = 4, kInfo = 6, kDebug = 7 };

void set_log_level(LogLevel level);
void log(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

#define DC_LOG_ERROR(...) ::dc::log(::dc::LogLevel::kError, __VA_ARGS__)
#define DC_LOG_WARN(...) ::dc::log(::dc::LogLevel::kWarn, __VA_ARGS__)
#define DC_LOG_INFO(...) ::dc::log(::dc::LogLevel::kInfo, __VA_ARGS__)
#define DC_LOG_DEBUG(...) ::dc::log(::dc::LogLevel::kDebug, __VA_ARGS__)

}  // namespace dc
