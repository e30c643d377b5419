// Human sizes in config and CLI: "4GiB", "512MiB", "64KiB", "1G", "1048576".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace dc {

Result<uint64_t> parse_size(std::string_view text);
std::string format_size(uint64_t bytes);

}  // namespace dc
