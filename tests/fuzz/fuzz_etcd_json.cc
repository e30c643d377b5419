// libFuzzer harness: the JSON reader for etcd's gateway (daemon/cluster/etcd_json.h).
// The first byte picks where the stream is cut, so the object splitter sees the
// same bytes arrive in chunks, as the watch stream's chunk boundaries fall anywhere.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/cluster/etcd_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t step = 1 + data[0];
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);

  std::string error;
  if (auto v = dc::parse_json(in, &error)) {
    uint64_t u = 0;
    bool b = false;
    (void)dc::json_u64(v->get("revision"), &u);
    (void)dc::json_bool(v->get("created"), &b);
  }

  // Whole vs. chunked: the splitter must cut the same objects either way.
  dc::JsonObjectSplitter whole(4096), chunked(4096);
  std::vector<std::string> a, b;
  const bool ok_whole = whole.feed(in, &a);
  bool ok_chunked = true;
  for (size_t at = 0; at < in.size() && ok_chunked; at += step)
    ok_chunked = chunked.feed(in.substr(at, step), &b);
  if (ok_whole && ok_chunked && a != b) __builtin_trap();
  for (const auto& piece : b) (void)dc::parse_json(piece, &error);
  return 0;
}
