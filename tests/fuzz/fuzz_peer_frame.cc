// libFuzzer harness: the peer protocol's input side (daemon/cluster/peer_conn.h):
// header checks, control body CRC, and FetchReply data received into the
// destination the handler names. The bytes arrive through a real socket, as from
// a peer, and the connection must end in an error or a clean close, never a
// crash or a write outside the destination.
//
// CRCs would stop the fuzzer at the first check, so the harness fixes them up:
// the input is a list of frames, each header's CRCs recomputed unless the frame's
// first byte says to keep them as given (so mismatches are exercised too).
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "daemon/cluster/peer_conn.h"
#include "daemon/net/crc32c.h"
#include "dc/peer_wire.h"

namespace {

struct Handler : dc::PeerConnHandler {
  std::vector<uint8_t> block;  // where accepted FetchReply data lands
  bool on_message(dc::PeerConn&, const dc::peer::Header&, const uint8_t*, size_t, uint32_t data_len,
                  std::vector<iovec>* dest) override {
    // Small replies go to a destination of exactly their size, split in two
    // iovecs like arena pages; large ones are left to the discard path.
    if (data_len > 0 && data_len <= 64 * 1024) {
      block.assign(data_len, 0);
      const size_t half = data_len / 2;
      if (half > 0) dest->push_back(iovec{block.data(), half});
      dest->push_back(iovec{block.data() + half, data_len - half});
    }
    return true;
  }
  void on_data(dc::PeerConn&, uint32_t) override {}
};

// Rewrites the stream so each frame's CRCs are right unless its flag byte says no.
// Layout per frame: flag(1) header(24) then body_len bytes (or what is left).
std::vector<uint8_t> fix_crcs(const uint8_t* data, size_t size) {
  std::vector<uint8_t> out;
  size_t at = 0;
  while (at < size) {
    const bool keep = data[at] & 1;
    ++at;
    if (size - at < sizeof(dc::peer::Header)) {
      out.insert(out.end(), data + at, data + size);
      break;
    }
    dc::peer::Header h;
    memcpy(&h, data + at, sizeof h);
    at += sizeof h;
    const size_t body = std::min<size_t>(h.body_len, size - at);
    if (!keep) {
      h.magic = dc::peer::kMagic;
      h.version = dc::peer::kVersion;
      const bool reply = h.op == static_cast<uint16_t>(dc::peer::Op::kFetchReply);
      const size_t ctl = reply ? std::min(body, sizeof(dc::peer::FetchReplyBody)) : body;
      h.body_crc = ctl ? dc::crc32c(data + at, ctl) : 0;
      h.header_crc = 0;
      h.header_crc = dc::crc32c(&h, sizeof h);
    }
    const auto* hp = reinterpret_cast<const uint8_t*>(&h);
    out.insert(out.end(), hp, hp + sizeof h);
    out.insert(out.end(), data + at, data + at + body);
    at += body;
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 128 * 1024) return 0;  // stays within one socket buffer
  const std::vector<uint8_t> stream = fix_crcs(data, size);
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0) return 0;
  int buf = 1 << 20;
  setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  Handler h;
  dc::PeerConn conn(sv[1], 1);  // owns sv[1]
  size_t sent = 0;
  bool open = true;
  // Feed and read in turns so a stream larger than the socket buffer still flows.
  for (int turns = 0; open && turns < 10000; ++turns) {
    if (sent < stream.size()) {
      const ssize_t n = send(sv[0], stream.data() + sent, stream.size() - sent, MSG_DONTWAIT);
      if (n > 0) sent += static_cast<size_t>(n);
    } else if (sv[0] >= 0) {
      close(sv[0]);  // the peer hangs up: the connection must end, not wait
      sv[0] = -1;
    }
    open = conn.on_readable(h);
  }
  if (sv[0] >= 0) close(sv[0]);
  if (open) __builtin_trap();  // a closed peer must end the connection
  return 0;
}
