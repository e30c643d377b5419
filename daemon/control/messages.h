// Validation of control requests (include/dc/control.h). Everything a client sends
// passes through parse_request() before any other code sees it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/result.h"
#include "dc/control.h"
#include "dc/file_key.h"

namespace dc {

struct Request {
  ctl::Op op{};
  uint32_t request_id = 0;
  // kHello
  ctl::Role role{};
  uint32_t hello_flags = 0;
  uint32_t pid = 0;
  // kFetch / kInvalidate
  FileKey key;
  uint64_t first_block = 0;
  uint32_t block_count = 0;
  uint32_t dataset_id = 0;
  std::string path;
};

// `dataset_count` bounds dataset ids. Any violation is an error naming it.
Result<Request> parse_request(const uint8_t* data, size_t len, uint32_t dataset_count);

}  // namespace dc
