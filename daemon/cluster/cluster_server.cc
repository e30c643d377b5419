// Server side of the peer protocol: peers authenticating and fetching the blocks
// this node owns. (The client side is in cluster_client.cc, dispatch in cluster.cc.)
#include <openssl/crypto.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "common/log.h"
#include "daemon/cluster/cluster.h"
#include "daemon/cluster/peer_util.h"
#include "daemon/net/auth.h"

namespace dc {

using peer_util::fill_id;
using peer_util::id_of;
using peer_util::tune_socket;

void Cluster::accept_peers() {
  for (;;) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    tune_socket(fd);
    const uint64_t id = next_conn_id_++;
    Inbound in;
    in.conn = std::make_unique<PeerConn>(fd, id);
    in.conn->set_send_source(&send_source_, &send_counters_);
    if (in.conn->send_path() != send_source_.path)
      DC_LOG_WARN("cluster: send = \"%s\" unavailable on a peer connection; it copies", send_path_name(send_source_.path));
    random_nonce(in.nonce);
    inbound_.emplace(id, std::move(in));
    watch(fd, id, false, true);
  }
}

void Cluster::drop_inbound(uint64_t id, const std::string& why) {
  auto it = inbound_.find(id);
  if (it == inbound_.end()) return;
  if (!it->second.authed) {
    ++counters_.peers_rejected;
    DC_LOG_WARN("cluster: dropped unauthenticated peer connection: %s", why.c_str());
  } else if (!why.empty() && why != "closed by peer") {
    DC_LOG_WARN("cluster: dropped peer %s: %s", it->second.peer_id.c_str(), why.c_str());
  }
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, it->second.conn->fd(), nullptr);
  inbound_.erase(it);
}

bool Cluster::on_inbound_message(Inbound& in, const peer::Header& h, const uint8_t* body, size_t len) {
  const auto op = static_cast<peer::Op>(h.op);
  if (!in.authed) {
    if (op == peer::Op::kHelloV2 && !in.challenged && len == sizeof(peer::HelloV2Body)) {
      peer::HelloV2Body hello;
      memcpy(&hello, body, sizeof hello);
      in.peer_id = id_of(hello.node_id);
      memcpy(in.peer_nonce, hello.nonce, sizeof in.peer_nonce);
      const auto mine = static_cast<uint8_t>(integrity_of(config_.integrity));
      // Answered with our own mode either way, so the client can say what differs.
      if (hello.integrity != mine) {
        in.integrity_mismatch = true;
        DC_LOG_WARN(
            "cluster: peer %s uses integrity \"%s\", this node \"%s\": refused "
            "([cluster] integrity must be the same on every node)",
            in.peer_id.c_str(), integrity_name(static_cast<peer::Integrity>(hello.integrity)),
            integrity_name(static_cast<peer::Integrity>(mine)));
      }
      peer::ChallengeV2Body c{};
      fill_id(c.node_id, config_.node_id);
      memcpy(c.nonce, in.nonce, sizeof c.nonce);
      c.integrity = mine;
      const AuthProof proof = prove(secret_, kAuthRoleServer, in.nonce, in.peer_nonce,
                                    config_.node_id, in.peer_id, mine);
      memcpy(c.proof, proof.data(), sizeof c.proof);
      in.conn->send(peer::Op::kChallengeV2, h.request_id, &c, sizeof c);
      in.challenged = true;
      return true;
    }
    if (op == peer::Op::kAuth && in.challenged && !in.integrity_mismatch &&
        len == sizeof(peer::AuthBody)) {
      const auto mode = integrity_of(config_.integrity);
      const auto mine = static_cast<uint8_t>(mode);
      AuthProof proof;
      memcpy(proof.data(), body, proof.size());
      if (!verify(secret_, kAuthRoleClient, in.peer_nonce, in.nonce, in.peer_id, config_.node_id,
                  mine, proof))
        return false;
      auto keys =
          derive_session_keys(secret_, in.peer_nonce, in.nonce, in.peer_id, config_.node_id, mine);
      if (!keys) return false;
      // AuthOk is the first sealed message this side sends.
      auto sealed = in.conn->start_sealing(mode, keys->server_to_client, keys->client_to_server,
                                           &counters_.peer_auth_errors);
      OPENSSL_cleanse(&*keys, sizeof *keys);
      if (!sealed) return false;
      in.authed = true;
      in.conn->send(peer::Op::kAuthOk, h.request_id, nullptr, 0);
      return true;
    }
    return false;  // anything else before authentication: drop
  }
  switch (op) {
    case peer::Op::kPing:
      in.conn->send(peer::Op::kPong, h.request_id, nullptr, 0);
      return true;
    case peer::Op::kFetch: {
      peer::FetchBody f;
      if (len < sizeof f) return false;
      memcpy(&f, body, sizeof f);
      if (sizeof f + f.dataset_len + f.path_len != len || f.dataset_len == 0 || f.path_len == 0) return false;
      PeerServeRequest req;
      req.conn_id = in.conn->id();
      req.request_id = h.request_id;
      req.key = FileKey{f.key_hi, f.key_lo};
      req.block = f.block;
      req.offset = f.offset;
      req.length = f.length;
      req.dataset.assign(reinterpret_cast<const char*>(body) + sizeof f, f.dataset_len);
      req.path.assign(reinterpret_cast<const char*>(body) + sizeof f + f.dataset_len, f.path_len);
      ++counters_.peer_requests_served;
      hooks_.serve(req);
      return true;
    }
    default:
      return false;
  }
}

void Cluster::reply(uint64_t conn_id, uint32_t request_id, peer::Status status, const std::vector<iovec>& data,
                    uint32_t data_crc, uint64_t pin) {
  auto it = inbound_.find(conn_id);
  if (it == inbound_.end()) {  // the asker left
    if (pin && send_source_.release) send_source_.release(pin);
    return;
  }
  size_t n = 0;
  for (const auto& v : data) n += v.iov_len;
  const bool ok = status == peer::Status::kOk;
  peer::FetchReplyBody rep{static_cast<int32_t>(status), static_cast<uint32_t>(ok ? n : 0), data_crc, 0};
  PeerConn& c = *it->second.conn;
  // The connection owns the pin from here (it releases it even with no data).
  c.send(peer::Op::kFetchReply, request_id, &rep, sizeof rep, ok ? data : std::vector<iovec>{}, pin);
  if (ok) {
    counters_.bytes_served_to_peers += n;
    served_to_[it->second.peer_id] += n;
  }
  // Now, while unpinned `data` (arena pages) is still what it was: flush copies
  // any remainder.
  if (!c.flush()) drop_inbound(conn_id, c.error());
  else watch(c.fd(), conn_id, c.wants_write(), false);
}

void Cluster::poll_sends() {
  for (auto& [id, in] : inbound_) {
    if (in.conn->pins_held() == 0) continue;
    in.conn->poll_done();
  }
}

}  // namespace dc
