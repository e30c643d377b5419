// Client side of the peer protocol: connections to the other members (one or
// more each, grown and shrunk by link_policy.h), fetching blocks from them, and
// their liveness. (Dispatch and placement are in cluster.cc, the server side in
// cluster_server.cc.)
#include <netdb.h>
#include <openssl/crypto.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "daemon/cluster/cluster.h"
#include "daemon/cluster/link_policy.h"
#include "daemon/cluster/peer_util.h"
#include "daemon/net/auth.h"
#include "daemon/net/crc32c.h"

namespace dc {
namespace {

using peer_util::fill_id;
using peer_util::id_of;
using peer_util::split_host_port;
using peer_util::tune_socket;

constexpr uint64_t kReconnectMs = 500;

}  // namespace

bool Cluster::Remote::live() const {
  return std::any_of(links.begin(), links.end(), [](const auto& l) { return l->state == State::kUp; });
}

Cluster::State Cluster::Remote::state() const {
  if (live()) return State::kUp;
  return links.empty() ? State::kDown : links.front()->state;
}

size_t Cluster::Remote::in_flight() const {
  size_t n = 0;
  for (const auto& l : links) n += l->pending.size();
  return n;
}

std::vector<LinkLoad> Cluster::Remote::loads() const {
  std::vector<LinkLoad> out;
  out.reserve(links.size());
  for (const auto& l : links)
    out.push_back(LinkLoad{l->state == State::kUp, l->in_flight_bytes, l->pending.size(), l->last_used_ms});
  return out;
}

Cluster::Link* Cluster::link_of(Remote& r, uint64_t conn_id, size_t* index) {
  for (size_t i = 0; i < r.links.size(); ++i) {
    if (r.links[i]->conn->id() != conn_id) continue;
    if (index) *index = i;
    return r.links[i].get();
  }
  return nullptr;
}

bool Cluster::connect_remote(Remote& r, uint64_t now_ms) {
  std::string host, port;
  split_host_port(r.config.address, &host, &port);
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;  // no DNS on the event loop
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || !res) {
    r.last_error = "cannot parse address " + r.config.address;
    return false;
  }
  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    r.last_error = std::string("socket: ") + strerror(errno);
    freeaddrinfo(res);
    return false;
  }
  tune_socket(fd);
  int rc = connect(fd, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  if (rc != 0 && errno != EINPROGRESS) {
    r.last_error = std::string("connect: ") + strerror(errno);
    close(fd);
    return false;
  }
  const uint64_t id = next_conn_id_++;
  auto l = std::make_unique<Link>();
  l->conn = std::make_unique<PeerConn>(fd, id);
  l->opened_ms = l->last_used_ms = now_ms;
  r.links.push_back(std::move(l));
  ++r.links_opened;
  remote_by_conn_[id] = &r;
  watch(fd, id, true, true);  // writable when the connection completes
  return true;
}

void Cluster::close_link(Remote& r, size_t index, const std::string& why, bool broken) {
  const bool was_live = r.live();
  std::unique_ptr<Link> l = std::move(r.links[index]);
  r.links.erase(r.links.begin() + static_cast<long>(index));
  r.sent_closed += l->conn->bytes_sent();
  remote_by_conn_.erase(l->conn->id());
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, l->conn->fd(), nullptr);
  if (broken) {
    ++r.errors;
    r.last_error = why;
    // A connection that never came up: do not retry growing at once.
    if (l->state != State::kUp) r.next_grow_ms = now_ms_ + kReconnectMs;
  }
  if (was_live && !r.live())
    DC_LOG_WARN("cluster: member %s leaves placement: %s", r.config.id.c_str(), why.c_str());
  else if (broken && l->state == State::kUp)
    DC_LOG_WARN("cluster: a connection to %s broke (%s); %zu connection(s) left, %zu fetch(es) fail over",
                r.config.id.c_str(), why.c_str(), r.links.size(), l->pending.size());
  else if (!broken)
    DC_LOG_INFO("cluster: closed a connection to %s (%s); %zu left", r.config.id.c_str(), why.c_str(),
                r.links.size());
  // Last: the hook may start new fetches on this member's other links.
  for (auto& [id, p] : l->pending) {
    ++counters_.peer_fetch_failures;
    hooks_.fetched(p.cookie, false, false);
  }
}

void Cluster::remote_down(Remote& r, const std::string& why) {
  while (!r.links.empty()) close_link(r, r.links.size() - 1, why, true);
}

void Cluster::maybe_grow(Remote& r) {
  if (now_ms_ < r.next_grow_ms || !should_grow(r.loads(), limits_)) return;
  if (!connect_remote(r, now_ms_)) {
    r.next_grow_ms = now_ms_ + kReconnectMs;
    return;
  }
  DC_LOG_INFO("cluster: opening connection %zu to %s (every connection has over %llu KiB in flight)",
              r.links.size(), r.config.id.c_str(), static_cast<unsigned long long>(limits_.grow_in_flight >> 10));
}

void Cluster::close_idle_links(Remote& r) {
  const auto idle = idle_links(r.loads(), limits_, now_ms_);
  // Highest index first, so the indexes still to close stay valid.
  for (auto it = idle.rbegin(); it != idle.rend(); ++it) {
    if (r.links[*it]->conn->wants_write()) continue;  // not quite idle: bytes still queued
    close_link(r, *it, "idle for " + std::to_string(limits_.idle_ms) + " ms", false);
  }
}

bool Cluster::fetch(int member, FileKey key, uint64_t block, uint32_t length, const std::string& dataset,
                    const std::string& path, const std::vector<iovec>& dest, uint64_t cookie) {
  if (member < 0 || member >= static_cast<int>(remotes_.size())) return false;
  Remote& r = *remotes_[member];
  const int li = pick_link(r.loads());
  if (li < 0) return false;
  Link& l = *r.links[static_cast<size_t>(li)];
  std::vector<uint8_t> body(sizeof(peer::FetchBody) + dataset.size() + path.size());
  peer::FetchBody f{key.hi, key.lo, block, 0, length, static_cast<uint16_t>(dataset.size()),
                    static_cast<uint16_t>(path.size()), 0};
  memcpy(body.data(), &f, sizeof f);
  memcpy(body.data() + sizeof f, dataset.data(), dataset.size());
  memcpy(body.data() + sizeof f + dataset.size(), path.data(), path.size());
  const uint32_t id = r.next_request++;
  l.pending[id] = Pending{cookie, dest, length, 0, now_ms_, false};
  l.in_flight_bytes += length;
  l.last_used_ms = now_ms_;
  l.conn->send(peer::Op::kFetch, id, body.data(), static_cast<uint32_t>(body.size()));
  ++counters_.peer_fetches;
  ++r.fetches;
  maybe_grow(r);
  return true;
}

void Cluster::on_link_up(Remote& r, Link& l) {
  const bool joins = !r.live();
  l.state = State::kUp;
  l.last_used_ms = now_ms_;
  if (!joins) {
    const auto up = std::count_if(r.links.begin(), r.links.end(), [](const auto& k) { return k->state == State::kUp; });
    DC_LOG_INFO("cluster: another connection to %s is up (%zu up)", r.config.id.c_str(), static_cast<size_t>(up));
    return;
  }
  ++r.ups;
  r.last_heard_ms = now_ms_;
  DC_LOG_INFO("cluster: member %s joins placement (%s)", r.config.id.c_str(), r.config.address.c_str());
}

bool Cluster::on_remote_message(Remote& r, Link& l, const peer::Header& h, const uint8_t* body, size_t len,
                                uint32_t data_len, std::vector<iovec>* data_dest) {
  r.last_heard_ms = now_ms_;
  switch (static_cast<peer::Op>(h.op)) {
    case peer::Op::kChallengeV2: {
      if (l.state != State::kHelloSent || len != sizeof(peer::ChallengeV2Body)) return false;
      peer::ChallengeV2Body c;
      memcpy(&c, body, sizeof c);
      const auto mine = integrity_of(config_.integrity);
      const std::string their_id = id_of(c.node_id);
      if (c.integrity != static_cast<uint8_t>(mine)) {
        r.last_error = std::string("integrity mismatch: ") + r.config.id + " uses \"" +
                       integrity_name(static_cast<peer::Integrity>(c.integrity)) +
                       "\", this node \"" + integrity_name(mine) +
                       "\" ([cluster] integrity must be the same on every node)";
        DC_LOG_WARN("cluster: %s", r.last_error.c_str());
        return false;
      }
      AuthProof proof;
      memcpy(proof.data(), c.proof, proof.size());
      if (their_id != r.config.id || !verify(secret_, kAuthRoleServer, c.nonce, l.nonce, their_id,
                                             config_.node_id, c.integrity, proof)) {
        r.last_error = "server failed authentication";
        return false;
      }
      peer::AuthBody a;
      const AuthProof mine_proof =
          prove(secret_, kAuthRoleClient, l.nonce, c.nonce, config_.node_id, their_id, c.integrity);
      memcpy(a.proof, mine_proof.data(), sizeof a.proof);
      l.conn->send(peer::Op::kAuth, h.request_id, &a, sizeof a);
      // Everything after Auth is sealed, both ways (AuthOk is the server's first).
      auto keys =
          derive_session_keys(secret_, l.nonce, c.nonce, config_.node_id, their_id, c.integrity);
      if (!keys) {
        r.last_error = keys.error().message;
        return false;
      }
      auto sealed = l.conn->start_sealing(mine, keys->client_to_server, keys->server_to_client,
                                          &counters_.peer_auth_errors);
      OPENSSL_cleanse(&*keys, sizeof *keys);
      if (!sealed) {
        r.last_error = sealed.error().message;
        return false;
      }
      return true;
    }
    case peer::Op::kAuthOk:
      if (l.state != State::kHelloSent) return false;
      on_link_up(r, l);
      return true;
    case peer::Op::kPong:
      return l.state == State::kUp;
    case peer::Op::kFetchReply: {
      if (l.state != State::kUp || len != sizeof(peer::FetchReplyBody)) return false;
      peer::FetchReplyBody rep;
      memcpy(&rep, body, sizeof rep);
      auto it = l.pending.find(h.request_id);
      if (it == l.pending.end()) return true;  // answered after we gave up: discard its data
      Pending& p = it->second;
      l.last_used_ms = now_ms_;
      if (rep.status != 0 || rep.length != p.length || data_len != rep.length) {
        const uint64_t cookie = p.cookie;
        l.in_flight_bytes -= p.length;
        l.pending.erase(it);
        ++counters_.peer_fetch_failures;
        // Not an error of the member's: its view of placement differs from ours
        // (or answering would have waited on another peer's copy).
        if (rep.status == static_cast<int32_t>(peer::Status::kNotOwner))
          ++counters_.peer_not_owner;
        else
          ++r.errors;
        hooks_.fetched(cookie, false, false);
        return true;  // data, if any, is discarded
      }
      p.crc = rep.data_crc;
      *data_dest = p.dest;
      p.receiving = data_len > 0;
      return true;
    }
    default:
      return false;
  }
}

void Cluster::on_data(PeerConn& c, uint32_t request_id) {
  auto rit = remote_by_conn_.find(c.id());
  if (rit == remote_by_conn_.end()) return;
  Remote& r = *rit->second;
  Link* l = link_of(r, c.id());
  if (!l) return;
  auto it = l->pending.find(request_id);
  if (it == l->pending.end()) return;
  Pending p = std::move(it->second);
  l->pending.erase(it);
  l->in_flight_bytes -= p.length;
  l->last_used_ms = now_ms_;
  // One pass over the bytes, now that they are in place. Sealed, the connection
  // already verified the data's GCM tag before calling us: no second pass.
  const bool ok = c.sealed() || crc32c_iov(p.dest.data(), static_cast<int>(p.dest.size())) == p.crc;
  if (ok) {
    counters_.bytes_peer += p.length;
    r.bytes_in += p.length;
  } else {
    ++counters_.peer_crc_errors;
    ++r.errors;
  }
  hooks_.fetched(p.cookie, ok, !ok);
}

void Cluster::on_link_event(Remote& r, uint64_t id, uint32_t events) {
  size_t index = 0;
  Link* l = link_of(r, id, &index);
  if (!l) return;
  if (l->state == State::kConnecting && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(l->conn->fd(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
      close_link(r, index, std::string("connect: ") + strerror(err), true);
      return;
    }
    random_nonce(l->nonce);
    peer::HelloV2Body hello{};
    fill_id(hello.node_id, config_.node_id);
    memcpy(hello.nonce, l->nonce, sizeof hello.nonce);
    hello.integrity = static_cast<uint8_t>(integrity_of(config_.integrity));
    l->conn->send(peer::Op::kHelloV2, 0, &hello, sizeof hello);
    l->state = State::kHelloSent;
  }
  if ((events & EPOLLIN) && !l->conn->on_readable(*this)) {
    // Handlers run while reading may have opened links (appended): look it up again.
    if ((l = link_of(r, id, &index))) close_link(r, index, l->conn->error(), true);
    return;
  }
  if (!l->conn->flush()) {
    close_link(r, index, l->conn->error(), true);
    return;
  }
  watch(l->conn->fd(), id, l->conn->wants_write(), false);
}

void Cluster::flush_all() {
  for (auto& r : remotes_) {
    for (size_t i = 0; i < r->links.size();) {
      Link& l = *r->links[i];
      if (l.state == State::kConnecting) {
        ++i;
        continue;
      }
      if (!l.conn->flush()) {
        close_link(*r, i, l.conn->error(), true);  // the next link moved to index i
        continue;
      }
      watch(l.conn->fd(), l.conn->id(), l.conn->wants_write(), false);
      ++i;
    }
  }
}

void Cluster::expire_fetches(Remote& r) {
  std::vector<uint64_t> late;
  for (size_t i = 0; i < r.links.size();) {
    Link& l = *r.links[i];
    bool arriving_late = false;
    for (auto it = l.pending.begin(); it != l.pending.end();) {
      const Pending& p = it->second;
      if (now_ms_ - p.sent_ms <= config_.fetch_timeout_ms) {
        ++it;
      } else if (p.receiving) {
        arriving_late = true;  // its bytes are being written into `dest`: only closing stops them
        ++it;
      } else {
        late.push_back(p.cookie);
        l.in_flight_bytes -= p.length;
        it = l.pending.erase(it);  // an answer after this is discarded (no pending entry)
      }
    }
    if (arriving_late) {
      ++counters_.peer_fetch_timeouts;
      close_link(r, i, "a reply took over " + std::to_string(config_.fetch_timeout_ms) + " ms",
                 true);
      continue;  // the next link moved to index i
    }
    ++i;
  }
  if (!late.empty())
    DC_LOG_WARN_LIMITED(
        "cluster: %zu fetch(es) from %s not answered within %u ms: reading the origin", late.size(),
        r.config.id.c_str(), config_.fetch_timeout_ms);
  // Last: the hook may start new fetches on this member's links.
  for (uint64_t cookie : late) {
    ++counters_.peer_fetch_timeouts;
    ++counters_.peer_fetch_failures;
    ++r.errors;
    hooks_.fetched(cookie, false, false);
  }
}

void Cluster::tick(uint64_t now_ms) {
  now_ms_ = now_ms;
  listen_pause_.tick(now_ms);
  expire_handshakes();
  for (auto& rp : remotes_) {
    Remote& r = *rp;
    expire_fetches(r);
    if (r.links.empty()) {
      if (now_ms >= r.next_connect_ms) {
        r.next_connect_ms = now_ms + kReconnectMs;
        connect_remote(r, now_ms);
      }
      continue;
    }
    // A connection must finish its handshake within the member timeout.
    for (size_t i = 0; i < r.links.size();) {
      const Link& l = *r.links[i];
      if (l.state != State::kUp && now_ms - l.opened_ms > config_.member_timeout_ms)
        close_link(r, i, "no handshake within " + std::to_string(config_.member_timeout_ms) + " ms", true);
      else
        ++i;
    }
    if (!r.live()) continue;
    // Silent for too long (dead process, cut link, hung peer): out of placement.
    // One clock for the member: every connection goes the same way to the same process.
    if (now_ms - r.last_heard_ms > config_.member_timeout_ms) {
      remote_down(r, "no answer for " + std::to_string(config_.member_timeout_ms) + " ms");
      r.next_connect_ms = now_ms + kReconnectMs;
      continue;
    }
    if (now_ms - r.last_ping_ms >= config_.member_timeout_ms / 4) {
      for (auto& l : r.links) {
        if (l->state != State::kUp) continue;
        l->conn->send(peer::Op::kPing, 0, nullptr, 0);  // on one connection: it answers for all
        break;
      }
      r.last_ping_ms = now_ms;
    }
    close_idle_links(r);
  }
  flush_all();
  poll_sends();
}

}  // namespace dc
