#include "daemon/cache/block_range.h"

#include "daemon/net/crc32c.h"

namespace dc {

void slice_block(const std::vector<iovec>& pages, size_t offset, size_t len, std::vector<iovec>* out) {
  out->clear();
  size_t pos = 0;  // block offset of the current page
  for (const iovec& v : pages) {
    if (len == 0) break;
    const size_t end = pos + v.iov_len;
    if (end > offset) {
      const size_t skip = offset > pos ? offset - pos : 0;
      const size_t n = std::min(v.iov_len - skip, len);
      auto* p = static_cast<uint8_t*>(v.iov_base) + skip;
      if (!out->empty() && static_cast<uint8_t*>(out->back().iov_base) + out->back().iov_len == p)
        out->back().iov_len += n;
      else
        out->push_back(iovec{p, n});
      len -= n;
      offset += n;
    }
    pos = end;
  }
}

namespace {

uint32_t crc_of(const std::vector<iovec>& pages, size_t offset, size_t len, uint32_t prev) {
  std::vector<iovec> part;
  slice_block(pages, offset, len, &part);
  return crc32c_iov(part.data(), static_cast<int>(part.size()), prev);
}

}  // namespace

uint32_t block_range_crc(const std::vector<iovec>& pages, const std::vector<uint32_t>& segs, size_t total_len,
                         size_t offset, size_t len) {
  const size_t end = offset + len;
  // Whole segments: from the first boundary at or after `offset` to the last one at
  // or before `end` (the block's end counts as one: its last segment may be short).
  const size_t first = (offset + kCrcSegment - 1) / kCrcSegment * kCrcSegment;
  const size_t last = end == total_len ? end : end / kCrcSegment * kCrcSegment;
  if (segs.empty() || first >= last) return crc_of(pages, offset, len, 0);
  auto middle = range_crc(segs, total_len, first, last - first);
  if (!middle) return crc_of(pages, offset, len, 0);  // segs do not match the block: sum the bytes
  uint32_t crc = crc_of(pages, offset, first - offset, 0);
  crc = crc32c_combine(crc, *middle, last - first);
  return crc_of(pages, last, end - last, crc);
}

}  // namespace dc
