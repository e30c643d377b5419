// An on-path attacker for relay_test.sh: listens, connects each accepted
// connection to the real owner, forwards the handshake untouched both ways (so both
// ends authenticate each other), then rewrites the start of the data of every
// FetchReply that carries data with "POISONED BY RELAY" and recomputes every CRC a
// receiver could check: data_crc in the reply body (when the body is in the clear),
// body_crc (when the frame carries one) and header_crc. It understands the v1
// protocol (no tags) as well as v2 (tags after the handshake unless the negotiated
// integrity is crc), so the same relay poisons an agent that only checks CRCs.
//
//   dcrelay LISTEN_IP LISTEN_PORT UPSTREAM_IP UPSTREAM_PORT
// Prints "relay: rewrote N replies" to stdout after each rewrite (the test waits
// for N > 0, so it cannot pass without having tried).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "daemon/net/crc32c.h"
#include "dc/peer_wire.h"

using namespace dc;

namespace {

std::atomic<int> g_rewrites{0};

bool read_full(int fd, void* buf, size_t n) {
  auto* p = static_cast<uint8_t*>(buf);
  while (n > 0) {
    const ssize_t r = recv(fd, p, n, 0);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

bool write_full(int fd, const void* buf, size_t n) {
  const auto* p = static_cast<const uint8_t*>(buf);
  while (n > 0) {
    const ssize_t r = send(fd, p, n, MSG_NOSIGNAL);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

// Client to server: bytes as they come.
void pump(int from, int to) {
  std::vector<uint8_t> buf(1 << 16);
  for (;;) {
    const ssize_t n = recv(from, buf.data(), buf.size(), 0);
    if (n <= 0 || !write_full(to, buf.data(), static_cast<size_t>(n))) break;
  }
  shutdown(to, SHUT_WR);
  shutdown(from, SHUT_RD);
}

// Server to client, message by message.
void rewrite_replies(int from, int to) {
  bool tagged = false;  // v2 with integrity mac/encrypt, from AuthOk on
  bool clear_bodies = true;
  for (;;) {
    peer::Header h;
    if (!read_full(from, &h, sizeof h)) break;
    const auto op = static_cast<peer::Op>(h.op);
    const uint32_t ctl = op == peer::Op::kFetchReply
                             ? std::min<uint32_t>(h.body_len, sizeof(peer::FetchReplyBody))
                             : h.body_len;
    const uint32_t data_len = h.body_len - ctl;
    const uint32_t tag = tagged ? peer::kTagBytes : 0;
    std::vector<uint8_t> body(ctl + tag);
    if (!read_full(from, body.data(), body.size())) break;
    std::vector<uint8_t> data(data_len ? data_len + tag : 0);
    if (!data.empty() && !read_full(from, data.data(), data.size())) break;
    if (op == peer::Op::kChallengeV2 && ctl == sizeof(peer::ChallengeV2Body)) {
      peer::ChallengeV2Body c;
      memcpy(&c, body.data(), sizeof c);
      // Everything after the Challenge is sealed unless both chose crc.
      tagged = c.integrity != static_cast<uint8_t>(peer::Integrity::kCrc);
      clear_bodies = c.integrity != static_cast<uint8_t>(peer::Integrity::kEncrypt);
    }
    if (op == peer::Op::kFetchReply && data_len >= 17) {
      memcpy(data.data(), "POISONED BY RELAY", 17);
      if (clear_bodies) {
        peer::FetchReplyBody r;
        memcpy(&r, body.data(), sizeof r);
        r.data_crc = crc32c(data.data(), data_len);
        memcpy(body.data(), &r, sizeof r);
      }
      if (h.body_crc != 0 || !tagged) h.body_crc = crc32c(body.data(), ctl);
      h.header_crc = 0;
      h.header_crc = crc32c(&h, sizeof h);
      printf("relay: rewrote %d replies\n", ++g_rewrites);
      fflush(stdout);
    }
    if (!write_full(to, &h, sizeof h) || !write_full(to, body.data(), body.size()) ||
        (!data.empty() && !write_full(to, data.data(), data.size())))
      break;
  }
  shutdown(to, SHUT_WR);
  shutdown(from, SHUT_RD);
}

sockaddr_in addr_of(const char* ip, const char* port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(atoi(port)));
  if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
    fprintf(stderr, "relay: bad address %s\n", ip);
    exit(2);
  }
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: dcrelay LISTEN_IP LISTEN_PORT UPSTREAM_IP UPSTREAM_PORT\n");
    return 2;
  }
  const sockaddr_in listen_at = addr_of(argv[1], argv[2]);
  const sockaddr_in upstream = addr_of(argv[3], argv[4]);
  const int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(l, reinterpret_cast<const sockaddr*>(&listen_at), sizeof listen_at) != 0 ||
      listen(l, 64) != 0) {
    perror("relay: bind/listen");
    return 2;
  }
  printf("relay: listening\n");
  fflush(stdout);
  for (;;) {
    const int c = accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    const int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(s, reinterpret_cast<const sockaddr*>(&upstream), sizeof upstream) != 0) {
      close(c);
      close(s);
      continue;
    }
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // The pair's fds leak when it ends: the relay lives for one test.
    std::thread(pump, c, s).detach();
    std::thread(rewrite_replies, s, c).detach();
  }
}
