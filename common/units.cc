#include "common/units.h"

#include <cctype>
#include <cstdio>

namespace dc {

Result<uint64_t> parse_size(std::string_view text) {
  size_t i = 0;
  while (i < text.size() && text[i] == ' ') ++i;
  uint64_t value = 0;
  size_t digits = 0;
  for (; i < text.size() && isdigit(static_cast<unsigned char>(text[i])); ++i, ++digits) {
    if (__builtin_mul_overflow(value, 10, &value) ||
        __builtin_add_overflow(value, static_cast<uint64_t>(text[i] - '0'), &value))
      return make_error(Errc::kInvalidArgument, "number too large");
  }
  if (digits == 0) return make_error(Errc::kInvalidArgument, "expected a number such as \"4GiB\"");
  while (i < text.size() && text[i] == ' ') ++i;
  std::string unit(text.substr(i));
  for (auto& c : unit) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  uint64_t mult = 0;
  if (unit.empty() || unit == "b") mult = 1;
  else if (unit == "k" || unit == "kib" || unit == "kb") mult = 1ULL << 10;
  else if (unit == "m" || unit == "mib" || unit == "mb") mult = 1ULL << 20;
  else if (unit == "g" || unit == "gib" || unit == "gb") mult = 1ULL << 30;
  else if (unit == "t" || unit == "tib" || unit == "tb") mult = 1ULL << 40;
  else return make_error(Errc::kInvalidArgument, "unknown unit \"" + unit + "\" (use B, KiB, MiB, GiB, TiB)");
  if (value > UINT64_MAX / mult) return make_error(Errc::kInvalidArgument, "size too large");
  return value * mult;
}

std::string format_size(uint64_t bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  char buf[32];
  if (u == 0) snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  else snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

}  // namespace dc
