// CRC-32C (Castagnoli: reflected, poly 0x82F63B78, init and final xor 0xFFFFFFFF),
// the integrity check of blocks on disk and on the wire. crc32c("123456789") is
// 0xE3069283. Computed by isa-l (SSE4.2 / PCLMUL / AVX-512 as the CPU allows).
//
// A block's CRCs are taken once, per 32 KiB segment, when it enters the node. A
// sender then states the CRC of any segment-aligned range by combining segment CRCs
// (range_crc) instead of reading the data again; for a range that is not aligned the
// caller computes crc32c over the bytes directly.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace dc {

inline constexpr size_t kCrcSegment = 32 * 1024;

// Standard CRC-32C of data[0, len). Continuable: crc32c(b, nb, crc32c(a, na)) is the
// CRC of a followed by b (prev = 0 is the CRC of nothing).
uint32_t crc32c(const void* data, size_t len, uint32_t prev = 0);
// The same over the concatenation of n buffers (a block's non-contiguous arena pages).
uint32_t crc32c_iov(const struct iovec* iov, int n, uint32_t prev = 0);

// CRC of A||B from crc(A), crc(B) and len(B), in O(popcount(len_b)) 32x32 GF(2)
// matrix-vector products; no data is touched.
uint32_t crc32c_combine(uint32_t crc_a, uint32_t crc_b, size_t len_b);

// Replaces *out with one CRC per kCrcSegment bytes; the last segment may be short,
// and len 0 gives no segments.
void segment_crcs(const void* data, size_t len, std::vector<uint32_t>* out);
// The same over the concatenation of n buffers; segments may span buffer boundaries.
void segment_crcs_iov(const struct iovec* iov, int n, std::vector<uint32_t>* out);

// CRC of bytes [offset, offset + len) of a block of total_len bytes whose segment
// CRCs are `segs`, from the segment CRCs alone (len is clipped to the block's end).
// nullopt when the range does not start on a segment boundary or does not end on one
// or at total_len, or when segs does not have one entry per segment of total_len:
// the caller then runs crc32c over the bytes.
std::optional<uint32_t> range_crc(const std::vector<uint32_t>& segs, size_t total_len,
                                  size_t offset = 0, size_t len = SIZE_MAX);

}  // namespace dc
