#include "daemon/net/crc32c.h"

#include <isa-l/crc.h>

#include <algorithm>
#include <array>

namespace dc {
namespace {

// isa-l's crc32_iscsi(buf, len, init) neither inverts the register on entry nor on
// exit: it maps raw register state to raw register state (crc32_iscsi("123456789",
// 9, 0xFFFFFFFF) is 0x1CF96D7C == ~0xE3069283). So the standard CRC continuing from a
// standard `prev` is ~crc32_iscsi(buf, len, ~prev); the unit test pins this.
// Its len is an int, so larger buffers go in chunks.
constexpr size_t kIsalChunk = size_t{1} << 30;

uint32_t raw_update(uint32_t reg, const unsigned char* p, size_t len) {
  while (len > 0) {
    const size_t n = std::min(len, kIsalChunk);
    // isa-l takes a non-const pointer but only reads the buffer.
    reg = crc32_iscsi(const_cast<unsigned char*>(p), static_cast<int>(n), reg);
    p += n;
    len -= n;
  }
  return reg;
}

// GF(2) 32x32 matrices as 32 columns: column i is the image of register bit i.
using Gf2Matrix = std::array<uint32_t, 32>;

constexpr uint32_t gf2_times(const Gf2Matrix& m, uint32_t v) {
  uint32_t r = 0;
  for (int i = 0; v != 0; ++i, v >>= 1) {
    if (v & 1) r ^= m[i];
  }
  return r;
}

constexpr Gf2Matrix gf2_square(const Gf2Matrix& m) {
  Gf2Matrix sq{};
  for (int i = 0; i < 32; ++i) sq[i] = gf2_times(m, m[i]);
  return sq;
}

// zero_ops[k] advances a raw CRC register over 2^k zero bytes. Feeding zeros to the
// raw register is what crc(A) must undergo to sit in front of B:
// crc(A||B) = zeros(len B)(crc(A)) ^ crc(B); the init/final inversions cancel.
// Built by repeated squaring at compile time, so combine does no squaring at run time.
constexpr std::array<Gf2Matrix, 64> make_zero_ops() {
  Gf2Matrix bit{};  // one zero bit: shift right, fold in the polynomial if bit 0 was set
  bit[0] = 0x82F63B78u;
  for (int i = 1; i < 32; ++i) bit[i] = uint32_t{1} << (i - 1);
  std::array<Gf2Matrix, 64> ops{};
  ops[0] = gf2_square(gf2_square(gf2_square(bit)));  // 8 bits
  for (size_t k = 1; k < ops.size(); ++k) ops[k] = gf2_square(ops[k - 1]);
  return ops;
}

constexpr std::array<Gf2Matrix, 64> kZeroOps = make_zero_ops();

}  // namespace

uint32_t crc32c(const void* data, size_t len, uint32_t prev) {
  return ~raw_update(~prev, static_cast<const unsigned char*>(data), len);
}

uint32_t crc32c_iov(const struct iovec* iov, int n, uint32_t prev) {
  uint32_t reg = ~prev;
  for (int i = 0; i < n; ++i) {
    reg = raw_update(reg, static_cast<const unsigned char*>(iov[i].iov_base), iov[i].iov_len);
  }
  return ~reg;
}

uint32_t crc32c_combine(uint32_t crc_a, uint32_t crc_b, size_t len_b) {
  uint32_t shifted = crc_a;
  for (size_t k = 0; len_b != 0; ++k, len_b >>= 1) {
    if (len_b & 1) shifted = gf2_times(kZeroOps[k], shifted);
  }
  return shifted ^ crc_b;
}

void segment_crcs(const void* data, size_t len, std::vector<uint32_t>* out) {
  out->clear();
  out->reserve((len + kCrcSegment - 1) / kCrcSegment);
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t off = 0; off < len; off += kCrcSegment) {
    out->push_back(crc32c(p + off, std::min(kCrcSegment, len - off)));
  }
}

void segment_crcs_iov(const struct iovec* iov, int n, std::vector<uint32_t>* out) {
  out->clear();
  uint32_t crc = 0;
  size_t filled = 0;  // bytes of the current segment seen so far
  for (int i = 0; i < n; ++i) {
    const auto* p = static_cast<const unsigned char*>(iov[i].iov_base);
    size_t left = iov[i].iov_len;
    while (left > 0) {
      const size_t take = std::min(left, kCrcSegment - filled);
      crc = crc32c(p, take, crc);
      p += take;
      left -= take;
      filled += take;
      if (filled == kCrcSegment) {
        out->push_back(crc);
        crc = 0;
        filled = 0;
      }
    }
  }
  if (filled > 0) out->push_back(crc);
}

std::optional<uint32_t> range_crc(const std::vector<uint32_t>& segs, size_t total_len,
                                  size_t offset, size_t len) {
  if (segs.size() != (total_len + kCrcSegment - 1) / kCrcSegment || offset > total_len) {
    return std::nullopt;
  }
  len = std::min(len, total_len - offset);
  if (len == 0) return 0u;  // the CRC of nothing, wherever it is
  const size_t end = offset + len;
  if (offset % kCrcSegment != 0 || (end % kCrcSegment != 0 && end != total_len)) {
    return std::nullopt;
  }
  uint32_t crc = 0;
  for (size_t s = offset / kCrcSegment; s * kCrcSegment < end; ++s) {
    crc = crc32c_combine(crc, segs[s], std::min(kCrcSegment, total_len - s * kCrcSegment));
  }
  return crc;
}

}  // namespace dc
