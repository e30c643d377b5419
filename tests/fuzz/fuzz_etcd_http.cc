// libFuzzer harness: the HTTP response head and chunked body decoder used for
// etcd (daemon/cluster/etcd_http.h). The first byte picks the chunk size the
// decoder is fed in, since TCP delivers the same bytes in any split.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "daemon/cluster/etcd_http.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t step = 1 + data[0];
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);

  dc::HttpHead head;
  const int r = dc::parse_http_head(in, &head);
  if (r > 0 && head.size > in.size()) __builtin_trap();  // a head longer than what was read

  dc::ChunkedDecoder whole, chunked;
  std::string a, b;
  const auto sa = whole.feed(in, &a);
  auto sb = dc::ChunkedDecoder::State::kMore;
  for (size_t at = 0; at < in.size() && sb == dc::ChunkedDecoder::State::kMore; at += step)
    sb = chunked.feed(in.substr(at, step), &b);
  if (sa != sb || (sa != dc::ChunkedDecoder::State::kError && a != b)) __builtin_trap();
  return 0;
}
