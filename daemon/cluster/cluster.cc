#include "daemon/cluster/cluster.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>

#include "common/log.h"
#include "daemon/cluster/link_policy.h"
#include "daemon/cluster/peer_util.h"
#include "daemon/net/auth.h"
#include "daemon/net/crc32c.h"

namespace dc {
namespace {

using peer_util::fill_id;
using peer_util::id_of;
using peer_util::tune_socket;

constexpr uint64_t kListenId = 0;
constexpr uint64_t kReconnectMs = 500;
// Another connection opens when every one has more than this in flight: a socket
// buffer's worth (tune_socket), so a new request would wait behind a full buffer
// of replies on each of them.
constexpr uint64_t kGrowInFlightBytes = 4ull << 20;

bool split_host_port(const std::string& a, std::string* host, std::string* port) {
  auto colon = a.rfind(':');
  if (colon == std::string::npos) return false;
  *host = a.substr(0, colon);
  *port = a.substr(colon + 1);
  return true;
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    out += c;
  }
  return out;
}

const char* state_name(int s) {
  static const char* names[] = {"down", "connecting", "authenticating", "up"};
  return names[s];
}

}  // namespace

Cluster::Cluster(const ClusterConfig& config, std::string secret, Hooks hooks)
    : config_(config),
      secret_(std::move(secret)),
      hooks_(std::move(hooks)),
      limits_{config.max_connections_per_peer, kGrowInFlightBytes, config.connection_idle_ms} {
  for (const auto& p : config_.peers) {
    auto r = std::make_unique<Remote>();
    r->config = p;
    remotes_.push_back(std::move(r));
  }
  rebuild_placement();
}

void Cluster::rebuild_placement() {
  std::vector<Member> members;
  if (config_.serve) members.push_back({config_.node_id, config_.weight});
  for (const auto& r : remotes_) members.push_back({r->config.id, r->config.weight});
  // Every node builds the same member list; placement depends only on ids.
  std::sort(members.begin(), members.end(), [](const Member& a, const Member& b) { return a.id < b.id; });
  member_ids_.clear();
  for (const auto& m : members) member_ids_.push_back(m.id);
  placement_ = std::make_unique<Placement>(members);
  self_member_ = config_.serve ? static_cast<int>(*placement_->index_of(config_.node_id)) : -1;
  for (auto& r : remotes_) r->member = static_cast<int>(*placement_->index_of(r->config.id));
}

void Cluster::set_peers(const std::vector<PeerConfig>& peers) {
  std::vector<Member> check;
  if (config_.serve) check.push_back({config_.node_id, config_.weight});
  for (const auto& p : peers) check.push_back({p.id, p.weight});
  if (auto ok = Placement::create(check); !ok) {
    DC_LOG_WARN("cluster: ignoring a member list: %s", ok.error().message.c_str());
    return;
  }
  // Members that left, or moved to another address: drop their connection.
  for (size_t i = 0; i < remotes_.size();) {
    Remote& r = *remotes_[i];
    auto it = std::find_if(peers.begin(), peers.end(), [&](const PeerConfig& p) { return p.id == r.config.id; });
    if (it == peers.end()) {
      DC_LOG_INFO("cluster: member %s left the member list", r.config.id.c_str());
      remote_down(r, "left the member list");
      remotes_.erase(remotes_.begin() + static_cast<long>(i));
      continue;
    }
    if (it->address != r.config.address) remote_down(r, "address changed");
    r.config = *it;
    ++i;
  }
  for (const auto& p : peers) {
    if (std::any_of(remotes_.begin(), remotes_.end(), [&](const auto& r) { return r->config.id == p.id; })) continue;
    DC_LOG_INFO("cluster: member %s (%s) joined the member list", p.id.c_str(), p.address.c_str());
    auto r = std::make_unique<Remote>();
    r->config = p;
    remotes_.push_back(std::move(r));
  }
  config_.peers = peers;
  rebuild_placement();
}

Cluster::~Cluster() {
  if (listen_fd_ >= 0) close(listen_fd_);
}

void Cluster::watch(int fd, uint64_t id, bool want_write, bool add) {
  epoll_event ev{};
  ev.events = EPOLLIN | (want_write ? EPOLLOUT : 0u);
  ev.data.u64 = tag_(id);
  epoll_ctl(epoll_fd_, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev);
}

Status Cluster::start(int epoll_fd, uint64_t (*tag)(uint64_t)) {
  epoll_fd_ = epoll_fd;
  tag_ = tag;
  if (!config_.serve) return ok_status();
  std::string host, port;
  split_host_port(config_.listen, &host, &port);
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || !res)
    return make_error(Errc::kInvalidArgument, "cluster.listen " + config_.listen + ": cannot resolve");
  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  const bool ok = fd >= 0 && bind(fd, res->ai_addr, res->ai_addrlen) == 0 && listen(fd, 128) == 0;
  const int e = errno;
  freeaddrinfo(res);
  if (!ok) {
    if (fd >= 0) close(fd);
    return make_error(Errc::kIo, "cluster.listen " + config_.listen + ": " + strerror(e));
  }
  listen_fd_ = fd;
  watch(fd, kListenId, false, true);
  DC_LOG_INFO("cluster: node %s serving peers on %s; %zu member(s)", config_.node_id.c_str(),
              config_.listen.c_str(), member_ids_.size());
  return ok_status();
}

std::vector<bool> Cluster::live_mask() const {
  std::vector<bool> live(member_ids_.size(), false);
  if (self_member_ >= 0) live[self_member_] = true;
  for (const auto& r : remotes_) live[r->member] = r->live();
  return live;
}

int Cluster::owner(FileKey key, uint64_t block) const {
  const size_t o = placement_->owner(key, block, live_mask());
  if (o == Placement::kNoOwner) return kNoOwner;
  if (static_cast<int>(o) == self_member_) return kSelf;
  for (size_t i = 0; i < remotes_.size(); ++i)
    if (remotes_[i]->member == static_cast<int>(o)) return static_cast<int>(i);
  return kNoOwner;
}

// ---- client side: connections to members, fetching from them ----

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
  l.pending[id] = Pending{cookie, dest, length, 0};
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
    DC_LOG_INFO("cluster: connection %zu to %s is up", r.links.size(), r.config.id.c_str());
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
    case peer::Op::kChallenge: {
      if (l.state != State::kHelloSent || len != sizeof(peer::ChallengeBody)) return false;
      peer::ChallengeBody c;
      memcpy(&c, body, sizeof c);
      AuthProof proof;
      memcpy(proof.data(), c.proof, proof.size());
      const std::string their_id = id_of(c.node_id);
      if (their_id != r.config.id || !verify(secret_, kAuthRoleServer, c.nonce, l.nonce, their_id, proof)) {
        r.last_error = "server failed authentication";
        return false;
      }
      peer::AuthBody a;
      const AuthProof mine = prove(secret_, kAuthRoleClient, l.nonce, c.nonce, config_.node_id);
      memcpy(a.proof, mine.data(), sizeof a.proof);
      l.conn->send(peer::Op::kAuth, h.request_id, &a, sizeof a);
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
        ++r.errors;
        hooks_.fetched(cookie, false, false);
        return true;  // data, if any, is discarded
      }
      p.crc = rep.data_crc;
      *data_dest = p.dest;
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
  // One pass over the bytes, now that they are in place.
  const bool ok = crc32c_iov(p.dest.data(), static_cast<int>(p.dest.size())) == p.crc;
  if (ok) {
    counters_.bytes_peer += p.length;
    r.bytes_in += p.length;
  } else {
    ++counters_.peer_crc_errors;
    ++r.errors;
  }
  hooks_.fetched(p.cookie, ok, !ok);
}

// ---- dispatch ----

bool Cluster::on_message(PeerConn& c, const peer::Header& h, const uint8_t* body, size_t len, uint32_t data_len,
                         std::vector<iovec>* data_dest) {
  if (auto r = remote_by_conn_.find(c.id()); r != remote_by_conn_.end()) {
    Link* l = link_of(*r->second, c.id());
    return l && on_remote_message(*r->second, *l, h, body, len, data_len, data_dest);
  }
  if (auto in = inbound_.find(c.id()); in != inbound_.end()) {
    if (data_len) return false;  // peers send us no data bodies
    return on_inbound_message(in->second, h, body, len);
  }
  return false;
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
    peer::HelloBody hello;
    fill_id(hello.node_id, config_.node_id);
    memcpy(hello.nonce, l->nonce, sizeof hello.nonce);
    l->conn->send(peer::Op::kHello, 0, &hello, sizeof hello);
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

void Cluster::on_event(uint64_t id, uint32_t events) {
  if (id == kListenId) {
    accept_peers();
    return;
  }
  if (auto rit = remote_by_conn_.find(id); rit != remote_by_conn_.end()) {
    on_link_event(*rit->second, id, events);
    return;
  }
  auto it = inbound_.find(id);
  if (it == inbound_.end()) return;
  PeerConn& c = *it->second.conn;
  if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !c.on_readable(*this)) {
    drop_inbound(id, c.error());
    return;
  }
  it = inbound_.find(id);
  if (it == inbound_.end()) return;
  if (!it->second.conn->flush()) {
    drop_inbound(id, it->second.conn->error());
    return;
  }
  watch(it->second.conn->fd(), id, it->second.conn->wants_write(), false);
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

void Cluster::tick(uint64_t now_ms) {
  now_ms_ = now_ms;
  for (auto& rp : remotes_) {
    Remote& r = *rp;
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
}

// ---- introspection for dcctl ----

std::string Cluster::ring_json() const {
  const auto live = live_mask();
  const auto share = placement_->expected_share();
  double live_weight = 0;
  for (size_t i = 0; i < member_ids_.size(); ++i)
    if (live[i]) live_weight += placement_->members()[i].weight;
  std::ostringstream out;
  out << "{\"node\": \"" << json_escape(config_.node_id) << "\", \"serving\": " << (config_.serve ? "true" : "false")
      << ", \"members\": [";
  for (size_t i = 0; i < member_ids_.size(); ++i) {
    const double w = placement_->members()[i].weight;
    out << (i ? ", " : "") << "{\"id\": \"" << json_escape(member_ids_[i]) << "\", \"weight\": " << w
        << ", \"live\": " << (live[i] ? "true" : "false") << ", \"share\": " << share[i]
        << ", \"live_share\": " << (live[i] && live_weight > 0 ? w / live_weight : 0.0)
        << ", \"self\": " << (static_cast<int>(i) == self_member_ ? "true" : "false") << "}";
  }
  out << "]}";
  return out.str();
}

std::string Cluster::peers_json() const {
  std::ostringstream out;
  out << "{\"peers\": [";
  bool first = true;
  for (const auto& r : remotes_) {
    size_t up = 0;
    uint64_t sent = r->sent_closed, in_flight_bytes = 0;
    for (const auto& l : r->links) {
      up += l->state == State::kUp ? 1 : 0;
      sent += l->conn->bytes_sent();
      in_flight_bytes += l->in_flight_bytes;
    }
    out << (first ? "" : ", ") << "{\"id\": \"" << json_escape(r->config.id) << "\", \"address\": \""
        << json_escape(r->config.address) << "\", \"state\": \"" << state_name(static_cast<int>(r->state()))
        << "\", \"connections\": " << up << ", \"connections_opening\": " << r->links.size() - up
        << ", \"connections_opened\": " << r->links_opened << ", \"in_flight\": " << r->in_flight()
        << ", \"in_flight_bytes\": " << in_flight_bytes << ", \"fetches\": " << r->fetches
        << ", \"bytes_in\": " << r->bytes_in << ", \"bytes_out\": " << sent << ", \"errors\": " << r->errors
        << ", \"joins\": " << r->ups << ", \"last_error\": \"" << json_escape(r->last_error) << "\"}";
    first = false;
  }
  size_t authed = 0;
  for (const auto& [id, in] : inbound_) authed += in.authed ? 1 : 0;
  out << "], \"inbound_connections\": " << authed << ", \"max_connections_per_peer\": " << limits_.max_links
      << "}";
  return out.str();
}

}  // namespace dc
