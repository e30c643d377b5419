// Sealed peer frames (daemon/net/frame_seal.h): a part opens only with the right
// key, in the order it was sealed, with every bit of its header, payload and tag as
// sent; in mac mode the payload travels as it is, in encrypt mode it does not.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "daemon/net/frame_seal.h"

namespace {

using namespace dc;

SessionKey key_of(uint8_t seed) {
  SessionKey k;
  for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<uint8_t>(seed * 31 + i);
  return k;
}

// One sealed part as it goes on the wire: header (AAD), payload, tag.
struct Part {
  std::vector<uint8_t> header, payload;
  uint8_t tag[peer::kTagBytes];
};

Part seal_part(FrameSeal& s, std::vector<uint8_t> header, const std::vector<uint8_t>& plain) {
  Part p;
  p.header = std::move(header);
  p.payload = plain;
  EXPECT_TRUE(s.begin(p.header.data(), p.header.size()));
  // In two pieces, as a send of several iovecs does.
  const size_t half = plain.size() / 2;
  EXPECT_TRUE(s.update(plain.data(), p.payload.data(), half));
  EXPECT_TRUE(s.update(plain.data() + half, p.payload.data() + half, plain.size() - half));
  EXPECT_TRUE(s.finish_seal(p.tag));
  return p;
}

// Opens in place in three pieces (as receives land); true if the tag verified.
bool open_part(FrameSeal& o, Part& p) {
  if (!o.begin(p.header.data(), p.header.size())) return false;
  const size_t a = p.payload.size() / 3, b = 2 * p.payload.size() / 3;
  uint8_t* d = p.payload.data();
  return o.update(d, d, a) && o.update(d + a, d + a, b - a) &&
         o.update(d + b, d + b, p.payload.size() - b) && o.finish_open(p.tag);
}

std::vector<uint8_t> bytes(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7);
  return v;
}

class FrameSealTest : public ::testing::TestWithParam<bool> {  // param: encrypt
 protected:
  std::unique_ptr<FrameSeal> sealer(uint8_t k = 1) {
    return std::move(*FrameSeal::create(key_of(k), GetParam(), true));
  }
  std::unique_ptr<FrameSeal> opener(uint8_t k = 1) {
    return std::move(*FrameSeal::create(key_of(k), GetParam(), false));
  }
};

TEST_P(FrameSealTest, RoundTrip) {
  auto s = sealer();
  auto o = opener();
  for (size_t n : {0, 1, 15, 16, 17, 4096, 1 << 20}) {
    const auto plain = bytes(n, static_cast<uint8_t>(n));
    Part p = seal_part(*s, bytes(24, 3), plain);
    if (GetParam() && n >= 16) {
      EXPECT_NE(p.payload, plain) << "encrypt mode sent the payload in the clear";
    } else if (!GetParam()) {
      EXPECT_EQ(p.payload, plain) << "mac mode changed the payload";
    }
    ASSERT_TRUE(open_part(*o, p)) << n << " bytes";
    EXPECT_EQ(p.payload, plain);
  }
  EXPECT_EQ(s->parts(), o->parts());
}

// Every single-bit flip anywhere in a part, header, payload or tag, is rejected.
TEST_P(FrameSealTest, EveryBitFlipRejected) {
  auto s = sealer();
  const Part sent = seal_part(*s, bytes(24, 9), bytes(200, 1));
  const size_t bits = 8 * (sent.header.size() + sent.payload.size() + peer::kTagBytes);
  size_t accepted = 0;
  for (size_t bit = 0; bit < bits; ++bit) {
    Part p = sent;
    size_t byte = bit / 8;
    const uint8_t mask = static_cast<uint8_t>(1u << (bit % 8));
    if (byte < p.header.size()) {
      p.header[byte] ^= mask;
    } else if ((byte -= p.header.size()) < p.payload.size()) {
      p.payload[byte] ^= mask;
    } else {
      p.tag[byte - p.payload.size()] ^= mask;
    }
    auto o = opener();
    if (open_part(*o, p)) ++accepted;
  }
  EXPECT_EQ(accepted, 0u) << "of " << bits << " flipped bits";
  Part intact = sent;
  auto o = opener();
  EXPECT_TRUE(open_part(*o, intact));
}

// The receiver expects parts in the order they were sealed: a replay, a part taken
// out of order, or one after a dropped part fails.
TEST_P(FrameSealTest, ReplayedReorderedAndDroppedPartsRejected) {
  auto s = sealer();
  const Part p0 = seal_part(*s, bytes(24, 1), bytes(64, 1));
  const Part p1 = seal_part(*s, bytes(24, 1), bytes(64, 1));  // same bytes, next number
  const Part p2 = seal_part(*s, bytes(24, 2), bytes(64, 2));
  {
    auto o = opener();
    Part a = p0, b = p0;
    EXPECT_TRUE(open_part(*o, a));
    EXPECT_FALSE(open_part(*o, b)) << "replayed part accepted";
  }
  {
    auto o = opener();
    Part a = p1;
    EXPECT_FALSE(open_part(*o, a)) << "part 1 accepted in place of part 0";
  }
  {
    auto o = opener();
    Part a = p0, c = p2;
    EXPECT_TRUE(open_part(*o, a));
    EXPECT_FALSE(open_part(*o, c)) << "part 2 accepted after part 1 was dropped";
  }
  {
    auto o = opener();
    Part a = p0, b = p1, c = p2;
    EXPECT_TRUE(open_part(*o, a));
    EXPECT_TRUE(open_part(*o, b));
    EXPECT_TRUE(open_part(*o, c));
  }
}

// A part sealed under another key (the other direction's: a reflected frame, or
// another connection's) does not open.
TEST_P(FrameSealTest, OtherKeyRejected) {
  auto s = sealer(1);
  Part p = seal_part(*s, bytes(24, 5), bytes(100, 5));
  auto o = opener(2);
  EXPECT_FALSE(open_part(*o, p));
}

// The two modes are not interchangeable: a part sealed in one fails in the other.
TEST(FrameSeal, ModesDoNotCrossOpen) {
  for (const bool enc : {false, true}) {
    auto s = std::move(*FrameSeal::create(key_of(1), enc, true));
    Part p = seal_part(*s, bytes(24, 5), bytes(100, 5));
    auto o = std::move(*FrameSeal::create(key_of(1), !enc, false));
    EXPECT_FALSE(open_part(*o, p)) << (enc ? "encrypt" : "mac") << " part opened in the other mode";
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, FrameSealTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "encrypt" : "mac"; });

}  // namespace
