// Server side of the peer protocol: peers authenticating and fetching the blocks
// this node owns. (The client side is in cluster_client.cc, dispatch in cluster.cc.)
#include <openssl/crypto.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "daemon/cluster/cluster.h"
#include "daemon/cluster/peer_util.h"
#include "daemon/net/auth.h"

namespace dc {

using peer_util::fill_id;
using peer_util::id_of;
using peer_util::tune_socket;

namespace {

// What one inbound connection may hold in replies it has not read, plus the
// replies of requests still being served: past it, its requests are not served
// (those already read wait, small, in `deferred`) nor read (TCP then stops the
// sender) until the queue drains. Generous for a member (a few socket buffers'
// worth of blocks), and the bound on what a peer that never reads can make the
// owner hold: this plus one reply.
constexpr uint64_t kReplyQueueBound = uint64_t{64} << 20;

std::string address_of(const sockaddr_storage& a) {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (a.ss_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(a).sin_addr, buf, sizeof buf);
  else if (a.ss_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(a).sin6_addr, buf, sizeof buf);
  return buf;
}

}  // namespace

bool Cluster::admit_inbound(const std::string& address) {
  const auto it = inbound_by_address_.find(address);
  const uint32_t from_address = it == inbound_by_address_.end() ? 0 : it->second;
  if (inbound_.size() < max_inbound_ && from_address < config_.max_connections_per_address)
    return true;
  ++counters_.peers_over_cap;
  DC_LOG_WARN_LIMITED(
      "cluster: refused a peer connection from %s: %zu open (cap %zu), %u from that address (cap "
      "%u)",
      address.c_str(), inbound_.size(), max_inbound_, from_address,
      config_.max_connections_per_address);
  return false;
}

void Cluster::accept_peers() {
  for (;;) {
    sockaddr_storage addr{};
    socklen_t addr_len = sizeof addr;
    int fd = accept4(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &addr_len,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      const int e = errno;
      if (e == ECONNABORTED || e == EPERM)
        continue;  // that one connection is gone; others may wait
      if (listen_pause_.on_accept_error(e, now_ms_))
        DC_LOG_WARN_LIMITED("cluster: accept: %s; not accepting peers for %llu ms", strerror(e),
                            static_cast<unsigned long long>(AcceptPause::kPauseMs));
      else if (e != EAGAIN && e != EWOULDBLOCK && e != EINTR)
        DC_LOG_WARN_LIMITED("cluster: accept: %s", strerror(e));
      return;
    }
    std::string address = address_of(addr);
    if (!admit_inbound(address)) {
      close(fd);
      continue;
    }
    tune_socket(fd);
    const uint64_t id = next_conn_id_++;
    Inbound in;
    in.conn = std::make_unique<PeerConn>(fd, id);
    in.opened_ms = now_ms_;
    ++inbound_by_address_[address];
    in.address = std::move(address);
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
    DC_LOG_WARN_LIMITED("cluster: dropped unauthenticated peer connection from %s: %s",
                        it->second.address.c_str(), why.c_str());
  } else if (!why.empty() && why != "closed by peer") {
    DC_LOG_WARN_LIMITED("cluster: dropped peer %s: %s", it->second.peer_id.c_str(), why.c_str());
  }
  if (auto a = inbound_by_address_.find(it->second.address);
      a != inbound_by_address_.end() && --a->second == 0)
    inbound_by_address_.erase(a);
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, it->second.conn->fd(), nullptr);
  inbound_.erase(it);
}

void Cluster::expire_handshakes() {
  // As long as a connecting member waits for our side of the handshake (tick() in
  // cluster_client.cc): a peer still silent by then is no member.
  std::vector<uint64_t> late;
  for (const auto& [id, in] : inbound_)
    if (!in.authed && now_ms_ - in.opened_ms > config_.member_timeout_ms) late.push_back(id);
  for (uint64_t id : late) {
    ++counters_.peer_handshake_timeouts;
    drop_inbound(id, "no handshake within " + std::to_string(config_.member_timeout_ms) + " ms");
  }
}

bool Cluster::over_reply_bound(const Inbound& in) const {
  return in.conn->queued_bytes() + in.in_service_bytes > kReplyQueueBound;
}

void Cluster::serve_inbound(Inbound& in, PeerServeRequest req) {
  // Counted before serve(): it may answer at once (a refusal).
  // (A length of 0 means to the block's end: counted as the largest block.)
  const uint32_t bytes = req.length ? req.length : peer::kMaxDataBody;
  in.in_service.emplace(req.request_id, bytes);
  in.in_service_bytes += bytes;
  ++counters_.peer_requests_served;
  hooks_.serve(req);
}

void Cluster::watch_inbound(Inbound& in) {
  PeerConn& c = *in.conn;
  if (!in.draining) {
    in.draining = true;
    while (!in.deferred.empty() && !over_reply_bound(in)) {
      PeerServeRequest req = std::move(in.deferred.front());
      in.deferred.pop_front();
      serve_inbound(in, std::move(req));
    }
    in.draining = false;
  }
  const bool over = over_reply_bound(in) || !in.deferred.empty();
  if (over && !in.read_paused) ++counters_.peer_reads_paused;
  in.read_paused = over;
  epoll_event ev{};
  ev.events = (over ? 0u : EPOLLIN) | (c.wants_write() ? EPOLLOUT : 0u);
  ev.data.u64 = tag_(c.id());
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd(), &ev);
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
      // Over the bound, later: the owner holds at most the bound plus one reply.
      if (over_reply_bound(in) || !in.deferred.empty())
        in.deferred.push_back(std::move(req));
      else
        serve_inbound(in, std::move(req));
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
  // Request ids are the asker's: they may repeat, any one of them answers.
  if (auto s = it->second.in_service.find(request_id); s != it->second.in_service.end()) {
    it->second.in_service_bytes -= s->second;
    it->second.in_service.erase(s);
  }
  if (status == peer::Status::kNotOwner) ++counters_.peer_requests_not_owner;
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
  // A failed flush is not dropped here: this may run inside that connection's
  // on_readable (a refusal answered at once). Polled for writing, the broken
  // socket reports at once, and on_event drops it.
  if (!c.flush())
    watch(c.fd(), conn_id, true, false);
  else
    watch_inbound(it->second);
}

void Cluster::poll_sends() {
  for (auto& [id, in] : inbound_) {
    if (in.conn->pins_held() == 0) continue;
    in.conn->poll_done();
  }
}

}  // namespace dc
