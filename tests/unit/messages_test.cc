// parse_request is the only gate between untrusted clients and the agent: every
// malformed packet must be refused, every well-formed one decoded exactly.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "common/result.h"
#include "daemon/control/messages.h"
#include "dc/control.h"

namespace {

using namespace dc;
using Packet = std::vector<uint8_t>;

constexpr uint32_t kDatasets = 3;

// Serialises a message plus trailing bytes, with a correct length field.
template <typename T>
Packet Encode(T m, const std::string& tail = "") {
  Packet p(sizeof m + tail.size());
  m.h.length = static_cast<uint32_t>(p.size());
  memcpy(p.data(), &m, sizeof m);
  memcpy(p.data() + sizeof m, tail.data(), tail.size());
  return p;
}

ctl::HelloRequest HelloMsg(ctl::Role role, uint32_t flags) {
  ctl::HelloRequest m{};
  m.h = ctl::make_header(ctl::Op::kHello, 0, 7);
  m.role = static_cast<uint32_t>(role);
  m.flags = flags;
  m.pid = 4242;
  return m;
}

ctl::FetchRequest FetchMsg(const std::string& path) {
  ctl::FetchRequest m{};
  m.h = ctl::make_header(ctl::Op::kFetch, 0, 8);
  m.key_hi = 0x1111;
  m.key_lo = 0x2222;
  m.first_block = 12;
  m.block_count = 4;
  m.dataset_id = 2;
  m.path_len = static_cast<uint16_t>(path.size());
  return m;
}

ctl::InvalidateRequest InvalidateMsg(const std::string& path) {
  ctl::InvalidateRequest m{};
  m.h = ctl::make_header(ctl::Op::kInvalidate, 0, 9);
  m.dataset_id = 1;
  m.path_len = static_cast<uint16_t>(path.size());
  return m;
}

ctl::StatsRequest StatsMsg() {
  return ctl::StatsRequest{ctl::make_header(ctl::Op::kStats, 0, 10)};
}

Result<Request> Parse(const Packet& p, uint32_t datasets = kDatasets) {
  return parse_request(p.data(), p.size(), datasets);
}

// The rejection message of a packet that must be refused.
std::string Refused(const Packet& p, uint32_t datasets = kDatasets) {
  auto r = Parse(p, datasets);
  if (r.ok()) {
    ADD_FAILURE() << "accepted a " << p.size() << "-byte packet";
    return "";
  }
  EXPECT_EQ(r.error().code, Errc::kProtocol);
  EXPECT_FALSE(r.error().message.empty());
  return r.error().message;
}

::testing::AssertionResult Has(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" lacks \"" << part << "\"";
}

template <typename T>
void Patch(Packet* p, size_t off, T v) {
  memcpy(p->data() + off, &v, sizeof v);
}

TEST(ParseRequest, Hello) {
  auto r = Parse(Encode(HelloMsg(ctl::Role::kShim, ctl::kHelloWantRing)));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->op, ctl::Op::kHello);
  EXPECT_EQ(r->request_id, 7u);
  EXPECT_EQ(r->role, ctl::Role::kShim);
  EXPECT_EQ(r->hello_flags, ctl::kHelloWantRing);
  EXPECT_EQ(r->pid, 4242u);

  auto c = Parse(Encode(HelloMsg(ctl::Role::kCtl, 0)));
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->role, ctl::Role::kCtl);
  EXPECT_EQ(c->hello_flags, 0u);
}

// control.h: a receiver accepts messages longer than it knows (a newer minor) and
// ignores the tail.
TEST(ParseRequest, HelloFromANewerClient) {
  auto r = Parse(Encode(HelloMsg(ctl::Role::kShim, 0), std::string(64, 'x')));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->pid, 4242u);
}

TEST(ParseRequest, HelloRejectsUnknownRoleAndFlags) {
  auto m = HelloMsg(ctl::Role::kShim, 0);
  m.role = 0;
  EXPECT_TRUE(Has(Refused(Encode(m)), "role"));
  m.role = 3;
  EXPECT_TRUE(Has(Refused(Encode(m)), "role"));
  m = HelloMsg(ctl::Role::kShim, 1u << 1);
  EXPECT_TRUE(Has(Refused(Encode(m)), "flags"));
  Packet p = Encode(HelloMsg(ctl::Role::kShim, 0));
  p.resize(sizeof(ctl::HelloRequest) - 1);
  Patch(&p, offsetof(ctl::MsgHeader, length), static_cast<uint32_t>(p.size()));
  EXPECT_TRUE(Has(Refused(p), "truncated hello"));
}

TEST(ParseRequest, Fetch) {
  const std::string path = "train/n01440764/img_0001.JPEG";
  auto r = Parse(Encode(FetchMsg(path), path));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->op, ctl::Op::kFetch);
  EXPECT_EQ(r->request_id, 8u);
  EXPECT_EQ(r->key, (FileKey{0x1111, 0x2222}));
  EXPECT_EQ(r->first_block, 12u);
  EXPECT_EQ(r->block_count, 4u);
  EXPECT_EQ(r->dataset_id, 2u);
  EXPECT_EQ(r->path, path);
}

TEST(ParseRequest, FetchLimitsAreInclusive) {
  const std::string path(ctl::kMaxPath, 'p');
  auto m = FetchMsg(path);
  m.block_count = ctl::kMaxFetchBlocks;
  m.dataset_id = kDatasets - 1;
  m.first_block = 1ULL << 40;
  auto r = Parse(Encode(m, path));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->path.size(), ctl::kMaxPath);
  EXPECT_EQ(r->block_count, ctl::kMaxFetchBlocks);
}

TEST(ParseRequest, Stats) {
  auto r = Parse(Encode(StatsMsg()));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->op, ctl::Op::kStats);
  EXPECT_EQ(r->request_id, 10u);
}

TEST(ParseRequest, Invalidate) {
  const std::string path = "val/x.bin";
  auto r = Parse(Encode(InvalidateMsg(path), path));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->op, ctl::Op::kInvalidate);
  EXPECT_EQ(r->request_id, 9u);
  EXPECT_EQ(r->dataset_id, 1u);
  EXPECT_EQ(r->path, path);
}

TEST(ParseRequest, TruncatedHeader) {
  const Packet full = Encode(StatsMsg());
  for (size_t n : {size_t{0}, size_t{1}, size_t{8}, sizeof(ctl::MsgHeader) - 1}) {
    Packet p(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_TRUE(Has(Refused(p), "truncated header")) << n;
  }
  EXPECT_FALSE(parse_request(nullptr, 0, kDatasets).ok());
}

TEST(ParseRequest, BadMagic) {
  Packet p = Encode(StatsMsg());
  Patch(&p, offsetof(ctl::MsgHeader, magic), ctl::kMagic ^ 0x01000000u);
  EXPECT_TRUE(Has(Refused(p), "magic"));
  Patch(&p, offsetof(ctl::MsgHeader, magic), uint32_t{0});
  EXPECT_TRUE(Has(Refused(p), "magic"));
}

TEST(ParseRequest, WrongVersion) {
  Packet p = Encode(StatsMsg());
  for (uint16_t v : {uint16_t{0}, uint16_t{2}, uint16_t{0xffff}}) {
    Patch(&p, offsetof(ctl::MsgHeader, version), v);
    EXPECT_TRUE(Has(Refused(p), "version")) << v;
  }
}

TEST(ParseRequest, LengthFieldMismatch) {
  const std::string path = "a/b";
  Packet p = Encode(FetchMsg(path), path);
  const uint32_t len = static_cast<uint32_t>(p.size());
  for (uint32_t bad : {len - 1, len + 1, uint32_t{0}, uint32_t{0xffffffff}}) {
    Patch(&p, offsetof(ctl::MsgHeader, length), bad);
    EXPECT_TRUE(Has(Refused(p), "length field")) << bad;
  }
}

TEST(ParseRequest, Oversized) {
  const std::string path(ctl::kMaxRequest + 1 - sizeof(ctl::FetchRequest), 'x');
  Packet p = Encode(FetchMsg(""), path);
  ASSERT_EQ(p.size(), ctl::kMaxRequest + 1);
  EXPECT_TRUE(Has(Refused(p), "oversized"));
  Packet big = Encode(HelloMsg(ctl::Role::kShim, 0), std::string(ctl::kMaxRequest, 'x'));
  EXPECT_TRUE(Has(Refused(big), "oversized"));
}

TEST(ParseRequest, UnknownOpcode) {
  Packet p = Encode(StatsMsg());
  // Reply opcodes are not requests either.
  for (uint16_t op : {uint16_t{0}, uint16_t{2}, uint16_t{4}, uint16_t{6}, uint16_t{8}, uint16_t{11},
                      uint16_t{12}, uint16_t{0xffff}}) {
    Patch(&p, offsetof(ctl::MsgHeader, op), op);
    EXPECT_TRUE(Has(Refused(p), "unknown opcode")) << op;
  }
}

// dcctl ring / peers: a bare header, nothing more.
TEST(ParseRequest, RingAndPeersTakeNoBody) {
  for (ctl::Op op : {ctl::Op::kRing, ctl::Op::kPeers}) {
    Packet p = Encode(StatsMsg());
    Patch(&p, offsetof(ctl::MsgHeader, op), static_cast<uint16_t>(op));
    auto r = parse_request(p.data(), p.size(), 1);
    ASSERT_TRUE(r.ok()) << static_cast<int>(op);
    EXPECT_EQ(r->op, op);
    p.push_back(0);
    Patch(&p, offsetof(ctl::MsgHeader, length), static_cast<uint32_t>(p.size()));
    EXPECT_FALSE(parse_request(p.data(), p.size(), 1).ok());
  }
}

TEST(ParseRequest, FetchPathLengthMismatch) {
  const std::string path = "dir/file";
  auto m = FetchMsg(path);
  m.path_len = static_cast<uint16_t>(path.size() + 1);
  EXPECT_TRUE(Has(Refused(Encode(m, path)), "path length"));
  m.path_len = static_cast<uint16_t>(path.size() - 1);
  EXPECT_TRUE(Has(Refused(Encode(m, path)), "path length"));
  m.path_len = 0;
  EXPECT_TRUE(Has(Refused(Encode(m, "")), "path length"));
  const std::string too_long(ctl::kMaxPath + 1, 'p');
  EXPECT_TRUE(Has(Refused(Encode(FetchMsg(too_long), too_long)), "path length"));
  // Shorter than the fixed part.
  Packet p = Encode(FetchMsg(path), path);
  p.resize(sizeof(ctl::FetchRequest) - 1);
  Patch(&p, offsetof(ctl::MsgHeader, length), static_cast<uint32_t>(p.size()));
  EXPECT_TRUE(Has(Refused(p), "truncated fetch"));
}

TEST(ParseRequest, FetchDatasetOutOfRange) {
  const std::string path = "f";
  auto m = FetchMsg(path);
  m.dataset_id = kDatasets;
  EXPECT_TRUE(Has(Refused(Encode(m, path)), "unknown dataset"));
  m.dataset_id = 0xffff;
  EXPECT_TRUE(Has(Refused(Encode(m, path)), "unknown dataset"));
  m.dataset_id = 0;
  EXPECT_TRUE(Has(Refused(Encode(m, path), 0), "unknown dataset"));
}

TEST(ParseRequest, FetchBlockCountOutOfRange) {
  const std::string path = "f";
  auto m = FetchMsg(path);
  m.block_count = 0;
  EXPECT_TRUE(Has(Refused(Encode(m, path)), "block count"));
  m.block_count = ctl::kMaxFetchBlocks + 1;
  EXPECT_TRUE(Has(Refused(Encode(m, path)), "block count"));
  m.block_count = UINT32_MAX;
  EXPECT_TRUE(Has(Refused(Encode(m, path)), "block count"));
  m = FetchMsg(path);
  m.first_block = (1ULL << 40) + 1;
  EXPECT_TRUE(Has(Refused(Encode(m, path)), "block index"));
  m.first_block = UINT64_MAX;
  EXPECT_TRUE(Has(Refused(Encode(m, path)), "block index"));
}

TEST(ParseRequest, FetchEmptyKey) {
  const std::string path = "f";
  auto m = FetchMsg(path);
  m.key_hi = 0;
  m.key_lo = 0;
  EXPECT_TRUE(Has(Refused(Encode(m, path)), "empty key"));
  m.key_lo = 1;  // only the all-zero key means "none"
  EXPECT_TRUE(Parse(Encode(m, path)).ok());
}

TEST(ParseRequest, NulInPath) {
  const std::string path("dir/a\0b", 7);
  EXPECT_TRUE(Has(Refused(Encode(FetchMsg(path), path)), "NUL"));
  EXPECT_TRUE(Has(Refused(Encode(InvalidateMsg(path), path)), "NUL"));
  const std::string trailing("f\0", 2);
  EXPECT_TRUE(Has(Refused(Encode(FetchMsg(trailing), trailing)), "NUL"));
}

TEST(ParseRequest, InvalidateIsChecked) {
  const std::string path = "f";
  auto m = InvalidateMsg(path);
  m.dataset_id = kDatasets;
  EXPECT_TRUE(Has(Refused(Encode(m, path)), "unknown dataset"));
  m = InvalidateMsg(path);
  m.path_len = 2;
  EXPECT_TRUE(Has(Refused(Encode(m, path)), "path length"));
  m.path_len = 0;
  EXPECT_TRUE(Has(Refused(Encode(m, "")), "path length"));
  Packet p = Encode(InvalidateMsg(path), path);
  p.resize(sizeof(ctl::InvalidateRequest) - 1);
  Patch(&p, offsetof(ctl::MsgHeader, length), static_cast<uint32_t>(p.size()));
  EXPECT_TRUE(Has(Refused(p), "truncated invalidate"));
}

TEST(ParseRequest, StatsWithBody) {
  EXPECT_TRUE(Has(Refused(Encode(StatsMsg(), "x")), "body"));
  EXPECT_TRUE(Has(Refused(Encode(StatsMsg(), std::string(100, '\0'))), "body"));
}

}  // namespace
