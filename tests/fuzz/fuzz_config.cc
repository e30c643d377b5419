// libFuzzer harness: the agent's TOML configuration (daemon/config). A config
// file is operator input, but a typo must give an error message, never a crash or
// a config that breaks the invariants validation promises.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "daemon/config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto c = dc::parse_config(text, "fuzz.toml");
  if (c) {
    // What validation promises the rest of the agent (it sizes the arena from these).
    const uint32_t ps = c->page_size, bs = c->block_size;
    if (ps == 0 || (ps & (ps - 1)) != 0) __builtin_trap();
    if (bs == 0 || (bs & (bs - 1)) != 0 || bs % ps != 0) __builtin_trap();
    (void)dc::describe_config(*c);
  }
  return 0;
}
