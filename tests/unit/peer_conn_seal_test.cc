// PeerConn with sealing on, over real sockets with the bytes passing through the
// test in between (a relay): a FetchReply's data lands in the destination and
// on_data() is called only if every bit arrived as sent; an altered, replayed or
// reflected message fails the connection as an authentication error.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "daemon/cluster/peer_conn.h"

namespace {

using namespace dc;

struct Recorder : PeerConnHandler {
  std::vector<uint8_t> dest;
  int messages = 0, data_done = 0;
  bool on_message(PeerConn&, const peer::Header&, const uint8_t*, size_t, uint32_t data_len,
                  std::vector<iovec>* data_dest) override {
    ++messages;
    dest.assign(data_len, 0);
    if (data_len) data_dest->push_back(iovec{dest.data(), dest.size()});
    return true;
  }
  void on_data(PeerConn&, uint32_t) override { ++data_done; }
};

SessionKey key(uint8_t seed) {
  SessionKey k;
  for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<uint8_t>(seed + i);
  return k;
}

// sender -> wire (read by the test) ... test writes -> receiver.
struct Pipe {
  int a[2], b[2];
  std::unique_ptr<PeerConn> sender, receiver;
  uint64_t auth_errors = 0;
  Pipe(peer::Integrity mode, SessionKey send_key, SessionKey recv_key) {
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, a), 0);
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, b), 0);
    sender = std::make_unique<PeerConn>(a[0], 1);
    receiver = std::make_unique<PeerConn>(b[1], 2);
    EXPECT_TRUE(sender->start_sealing(mode, send_key, key(99), nullptr));
    EXPECT_TRUE(receiver->start_sealing(mode, key(98), recv_key, &auth_errors));
  }
  ~Pipe() {
    close(a[1]);
    close(b[0]);
  }
  std::vector<uint8_t> sent() {
    EXPECT_TRUE(sender->flush());
    std::vector<uint8_t> out(8 << 20);
    size_t got = 0;
    for (;;) {
      const ssize_t n = recv(a[1], out.data() + got, out.size() - got, 0);
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    out.resize(got);
    return out;
  }
  bool deliver(const std::vector<uint8_t>& bytes, Recorder& r) {
    EXPECT_EQ(send(b[0], bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
    return receiver->on_readable(r);
  }
};

std::vector<uint8_t> reply_bytes(Pipe& p, const std::vector<uint8_t>& data, uint32_t id = 7) {
  peer::FetchReplyBody rep{0, static_cast<uint32_t>(data.size()), 0, 0};
  std::vector<iovec> iov{iovec{const_cast<uint8_t*>(data.data()), data.size()}};
  p.sender->send(peer::Op::kFetchReply, id, &rep, sizeof rep, iov);
  return p.sent();
}

std::vector<uint8_t> payload() {
  std::vector<uint8_t> d(100000);
  for (size_t i = 0; i < d.size(); ++i) d[i] = static_cast<uint8_t>(i * 13 + 1);
  return d;
}

class PeerConnSeal : public ::testing::TestWithParam<peer::Integrity> {};

TEST_P(PeerConnSeal, ReplyArrivesIntact) {
  Pipe p(GetParam(), key(1), key(1));
  const auto data = payload();
  const auto wire = reply_bytes(p, data);
  ASSERT_EQ(wire.size(), sizeof(peer::Header) + sizeof(peer::FetchReplyBody) + data.size() +
                             2 * peer::kTagBytes);
  if (GetParam() == peer::Integrity::kEncrypt) {
    EXPECT_EQ(std::search(wire.begin(), wire.end(), data.begin(), data.begin() + 64), wire.end())
        << "encrypt mode sent the data in the clear";
  }
  Recorder r;
  ASSERT_TRUE(p.deliver(wire, r)) << p.receiver->error();
  EXPECT_EQ(r.data_done, 1);
  EXPECT_EQ(r.dest, data);
  EXPECT_EQ(p.auth_errors, 0u);
}

// One flipped bit anywhere after the header CRC's reach (body, control tag, data,
// data tag): no on_data, an authentication error, the connection fails.
TEST_P(PeerConnSeal, AlteredReplyRejected) {
  const auto data = payload();
  const size_t hdr = sizeof(peer::Header);
  const size_t ctl = sizeof(peer::FetchReplyBody);
  for (const size_t at :
       {hdr + 9, hdr + ctl + 3, hdr + ctl + peer::kTagBytes, hdr + ctl + peer::kTagBytes + 54321,
        hdr + ctl + peer::kTagBytes + data.size() + 15}) {
    Pipe p(GetParam(), key(1), key(1));
    auto wire = reply_bytes(p, data);
    wire[at] ^= 0x20;
    Recorder r;
    EXPECT_FALSE(p.deliver(wire, r)) << "flip at byte " << at;
    EXPECT_TRUE(p.receiver->auth_failed()) << "flip at byte " << at << ": " << p.receiver->error();
    EXPECT_EQ(r.data_done, 0) << "flip at byte " << at;
    EXPECT_EQ(p.auth_errors, 1u);
  }
}

TEST_P(PeerConnSeal, ReplayedReplyRejected) {
  Pipe p(GetParam(), key(1), key(1));
  const auto wire = reply_bytes(p, payload());
  Recorder r;
  ASSERT_TRUE(p.deliver(wire, r));
  EXPECT_FALSE(p.deliver(wire, r));
  EXPECT_TRUE(p.receiver->auth_failed());
  EXPECT_EQ(r.data_done, 1);
}

// Sealed with the other direction's key (a frame reflected back to its sender).
TEST_P(PeerConnSeal, ReflectedReplyRejected) {
  Pipe p(GetParam(), key(1), key(2));
  const auto wire = reply_bytes(p, payload());
  Recorder r;
  EXPECT_FALSE(p.deliver(wire, r));
  EXPECT_TRUE(p.receiver->auth_failed());
  EXPECT_EQ(r.messages, 0) << "a control body was acted on before its tag verified";
}

INSTANTIATE_TEST_SUITE_P(Modes, PeerConnSeal,
                         ::testing::Values(peer::Integrity::kMac, peer::Integrity::kEncrypt),
                         [](const auto& info) { return std::string(integrity_name(info.param)); });

}  // namespace
