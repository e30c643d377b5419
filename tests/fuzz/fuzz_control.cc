// libFuzzer harness: control requests from a shim or dcctl (daemon/control/messages.h).
// Every byte a client sends passes parse_request() first; it must reject anything
// malformed with an error, never read past `len` or crash.
#include <cstddef>
#include <cstdint>

#include "daemon/control/messages.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The agent bounds dataset ids by its configured count; try none, one and many.
  for (uint32_t datasets : {0u, 1u, 4096u}) {
    auto r = dc::parse_request(data, size, datasets);
    if (r && (r->op == dc::ctl::Op::kFetch || r->op == dc::ctl::Op::kInvalidate)) {
      // An accepted path is exactly what the packet said: no NUL, within bounds.
      if (r->path.empty() || r->path.size() > dc::ctl::kMaxPath) __builtin_trap();
      if (r->dataset_id >= datasets) __builtin_trap();
    }
  }
  return 0;
}
