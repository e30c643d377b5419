#include "common/log.h"

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

}  // namespace dc
