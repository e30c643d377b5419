// The cluster's members and placement, the listening socket, dispatch of peer
// connection events, and the JSON for dcctl. The client side (connections to
// members, fetching) is in cluster_client.cc, the server side in cluster_server.cc.
#include "daemon/cluster/cluster.h"

#include <netdb.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>

#include "common/log.h"
#include "daemon/cluster/link_policy.h"
#include "daemon/cluster/peer_util.h"

namespace dc {
namespace {

using peer_util::split_host_port;

constexpr uint64_t kListenId = 0;

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
      limits_{config.max_connections_per_peer, LinkLimits{}.grow_in_flight, config.connection_idle_ms} {
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
  listen_pause_.attach(epoll_fd_, fd, tag_(kListenId));
  // Peers never take more than half the descriptors: the rest stays for the
  // control socket's clients, origin files and connections out.
  max_inbound_ = config_.max_inbound_connections;
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY)
    max_inbound_ = std::min<size_t>(max_inbound_, std::max<rlim_t>(nofile.rlim_cur / 2, 1));
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
  if (it->second.read_paused) {
    // Not reading its requests: a hang-up still ends it, and zero-copy completions
    // (EPOLLERR) are still collected.
    if (events & EPOLLHUP) {
      drop_inbound(id, "closed by peer");
      return;
    }
    if (events & EPOLLERR) c.poll_done();
  } else if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !c.on_readable(*this)) {
    drop_inbound(id, c.error());
    return;
  }
  it = inbound_.find(id);
  if (it == inbound_.end()) return;
  if (!it->second.conn->flush()) {
    drop_inbound(id, it->second.conn->error());
    return;
  }
  watch_inbound(it->second);
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
    // Block bytes this node served to that member (on its connections to us).
    const auto served_it = served_to_.find(r->config.id);
    const uint64_t served = served_it == served_to_.end() ? 0 : served_it->second;
    out << (first ? "" : ", ") << "{\"id\": \"" << json_escape(r->config.id) << "\", \"address\": \""
        << json_escape(r->config.address) << "\", \"state\": \"" << state_name(static_cast<int>(r->state()))
        << "\", \"connections\": " << up << ", \"connections_opening\": " << r->links.size() - up
        << ", \"connections_opened\": " << r->links_opened << ", \"in_flight\": " << r->in_flight()
        << ", \"in_flight_bytes\": " << in_flight_bytes << ", \"fetches\": " << r->fetches
        << ", \"bytes_in\": " << r->bytes_in << ", \"bytes_out\": " << sent << ", \"bytes_served\": " << served
        << ", \"errors\": " << r->errors
        << ", \"joins\": " << r->ups << ", \"last_error\": \"" << json_escape(r->last_error) << "\"}";
    first = false;
  }
  size_t authed = 0;
  for (const auto& [id, in] : inbound_) authed += in.authed ? 1 : 0;
  // Every asker, members and client-only nodes alike.
  out << "], \"bytes_served_to\": {";
  first = true;
  for (const auto& [id, n] : served_to_) {
    out << (first ? "" : ", ") << "\"" << json_escape(id) << "\": " << n;
    first = false;
  }
  out << "}, \"inbound_connections\": " << authed << ", \"max_connections_per_peer\": " << limits_.max_links
      << "}";
  return out.str();
}

}  // namespace dc
