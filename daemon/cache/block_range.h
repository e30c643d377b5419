// A byte range of a resident block, as a peer asks for it: the pieces of the
// block's arena pages that hold it, and its CRC32C. The CRC is combined from the
// block's per-32 KiB segment CRCs for every whole segment inside the range; only
// the partial segments at its two edges are read (at most 2 x 32 KiB).
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace dc {

// Replaces *out with the parts of `pages` (a block's pages, in order) that cover
// [offset, offset + len), pieces adjacent in memory merged into one iovec (fewer
// iovecs for sendmsg, longer runs for sendfile). The range must lie in the block.
void slice_block(const std::vector<iovec>& pages, size_t offset, size_t len, std::vector<iovec>* out);

// CRC32C of bytes [offset, offset + len) of a block of `total_len` bytes whose
// pages are `pages` and whose segment CRCs are `segs`. With `segs` empty (not
// computed, e.g. a copy of another node's block) the whole range is summed.
uint32_t block_range_crc(const std::vector<iovec>& pages, const std::vector<uint32_t>& segs, size_t total_len,
                         size_t offset, size_t len);

}  // namespace dc
