// The agent's view of its cluster: members and their liveness, block placement,
// and the peer protocol on both sides (fetching blocks from their owners; serving
// the blocks this node owns). Single-threaded: driven by the agent's event loop.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "daemon/cluster/link_policy.h"
#include "daemon/cluster/peer_conn.h"
#include "daemon/config/config.h"
#include "daemon/net/accept_pause.h"
#include "daemon/ring/placement.h"
#include "dc/file_key.h"

namespace dc {

struct PeerServeRequest {
  uint64_t conn_id = 0;
  uint32_t request_id = 0;
  FileKey key;
  uint64_t block = 0;
  uint32_t offset = 0;
  uint32_t length = 0;
  std::string dataset;
  std::string path;
};

struct ClusterCounters {
  uint64_t bytes_peer = 0;             // block bytes received from peers
  uint64_t bytes_served_to_peers = 0;  // block bytes sent to peers
  uint64_t peer_fetches = 0;
  uint64_t peer_fetch_failures = 0;
  uint64_t peer_crc_errors = 0;
  uint64_t peer_auth_errors = 0;        // sealed parts whose GCM tag failed (connection dropped)
  uint64_t peers_rejected = 0;          // unauthenticated or malformed peers dropped
  uint64_t peer_requests_served = 0;
  // bounds: what the limits on peers did. Fetches not answered within
  // fetch_timeout, or answered kNotOwner (both read from the origin); requests
  // this node answered kNotOwner; inbound connections dropped for not
  // authenticating in time, or closed at accept for being too many (in all or
  // from one address); times an inbound peer stopped being read (replies it did
  // not read).
  uint64_t peer_fetch_timeouts = 0;
  uint64_t peer_not_owner = 0;
  uint64_t peer_requests_not_owner = 0;
  uint64_t peer_handshake_timeouts = 0;
  uint64_t peers_over_cap = 0;
  uint64_t peer_reads_paused = 0;
};

class Cluster : public PeerConnHandler {
 public:
  struct Hooks {
    // A peer asks for a block; answer later with reply().
    std::function<void(const PeerServeRequest&)> serve;
    // A fetch started with fetch() ended: ok, or failed (crc_error: bytes arrived
    // but did not match their CRC).
    std::function<void(uint64_t cookie, bool ok, bool crc_error)> fetched;
  };
  static constexpr int kSelf = -1;     // owner(): this node
  static constexpr int kNoOwner = -2;  // owner(): no live member owns it; use the origin

  Cluster(const ClusterConfig& config, std::string secret, Hooks hooks);
  ~Cluster() override;

  // Listens (if serving) and registers with `epoll_fd`; events carry tag(id).
  Status start(int epoll_fd, uint64_t (*tag)(uint64_t id));
  void on_event(uint64_t id, uint32_t events);
  void tick(uint64_t now_ms);
  void flush_all();

  // Replaces the member list (etcd membership): members that left are dropped
  // (their pending fetches fail over to the origin), new ones are connected.
  void set_peers(const std::vector<PeerConfig>& peers);

  // Owner of (key, block) among live members.
  int owner(FileKey key, uint64_t block) const;
  bool fetch(int member, FileKey key, uint64_t block, uint32_t length, const std::string& dataset,
             const std::string& path, const std::vector<iovec>& dest, uint64_t cookie);
  void reply(uint64_t conn_id, uint32_t request_id, peer::Status status, const std::vector<iovec>& data,
             uint32_t data_crc, uint64_t pin = 0);

  // Server side send path (cluster_server.cc): how replies leave and how their
  // pins go back (set before start()); what the paths did.
  void set_send_source(SendSource s) { send_source_ = std::move(s); }
  // Replies go out in place (zerocopy, sendfile): the caller pins what it replies with.
  bool sends_in_place() const { return send_source_.path != SendPath::kCopy; }
  const SendCounters& send_counters() const { return send_counters_; }
  void poll_sends();  // releases pins the kernel is done with (also run by tick)

  const ClusterCounters& counters() const { return counters_; }
  uint64_t accept_pauses() const { return listen_pause_.pauses(); }
  std::string ring_json() const;
  std::string peers_json() const;

  // PeerConnHandler
  bool on_message(PeerConn& c, const peer::Header& h, const uint8_t* body, size_t len, uint32_t data_len,
                  std::vector<iovec>* data_dest) override;
  void on_data(PeerConn& c, uint32_t request_id) override;

 private:
  struct Pending {
    uint64_t cookie = 0;
    std::vector<iovec> dest;
    uint32_t length = 0;
    uint32_t crc = 0;
    uint64_t sent_ms = 0;    // the fetch must be answered by sent_ms + fetch_timeout
    bool receiving = false;  // its data is arriving into `dest`: it cannot be abandoned alone
  };
  enum class State { kDown, kConnecting, kHelloSent, kUp };
  // One authenticated connection to a member. Requests in flight belong to the
  // connection they were sent on: if it breaks, only they fail over.
  struct Link {
    std::unique_ptr<PeerConn> conn;
    State state = State::kConnecting;
    uint8_t nonce[peer::kNonceBytes];
    uint64_t opened_ms = 0;     // connect() called: the handshake must end within member_timeout
    uint64_t last_used_ms = 0;  // last request sent or answer received (idle close)
    uint64_t in_flight_bytes = 0;
    std::unordered_map<uint32_t, Pending> pending;
  };
  // A member and its connections: links[0] is the first (carries the pings, never
  // closed for being idle); more open while every one is busy, up to
  // max_connections_per_peer, and close again after connection_idle.
  struct Remote {
    PeerConfig config;
    int member = 0;  // index in placement
    std::vector<std::unique_ptr<Link>> links;
    uint64_t last_heard_ms = 0, next_connect_ms = 0, last_ping_ms = 0;
    uint64_t next_grow_ms = 0;  // after a connection failed to open, wait before another
    uint32_t next_request = 1;  // request ids are unique across the member's links
    // Figures for dcctl: block bytes received right; requests sent; errors (broken
    // connections, failed fetches, CRC mismatches); times it joined placement;
    // connections opened. bytes_out counts every byte sent on our connections to
    // it (requests, pings, handshakes): sent_closed keeps those of closed ones.
    uint64_t bytes_in = 0, fetches = 0, errors = 0, ups = 0, links_opened = 0;
    uint64_t sent_closed = 0;
    std::string last_error;
    bool live() const;
    State state() const;  // kUp if any link is, else the first link's state
    size_t in_flight() const;
    std::vector<LinkLoad> loads() const;  // links[i] -> loads()[i]
  };
  struct Inbound {
    std::unique_ptr<PeerConn> conn;
    std::string address;     // the peer's IP address (caps per address)
    uint64_t opened_ms = 0;  // accepted: it must authenticate within member_timeout
    // Requests handed to the agent and not answered yet, and the bytes their
    // replies will hold: with the replies queued, what reading more would add to.
    std::unordered_multimap<uint32_t, uint32_t> in_service;  // request id -> reply bytes counted
    uint64_t in_service_bytes = 0;
    // Requests read while over the bound (a read pass takes up to 64 messages):
    // served, in order, as the replies drain. Small (no reply bytes yet).
    std::deque<PeerServeRequest> deferred;
    bool draining = false;     // serving `deferred` (serve() may answer, and re-enter)
    bool read_paused = false;  // not read until its queued replies drain
    bool authed = false;
    bool challenged = false;
    bool integrity_mismatch = false;  // HelloV2 asked for another integrity: refuse its Auth
    std::string peer_id;
    uint8_t nonce[peer::kNonceBytes];
    uint8_t peer_nonce[peer::kNonceBytes];
  };

  bool connect_remote(Remote& r, uint64_t now_ms);  // opens one more link
  void remote_down(Remote& r, const std::string& why);
  // Closes one link; its pending fetches fail over (to the origin, by the agent).
  // `broken`: an error to count and log, not an idle close.
  void close_link(Remote& r, size_t index, const std::string& why, bool broken);
  void on_link_up(Remote& r, Link& l);
  void on_link_event(Remote& r, uint64_t conn_id, uint32_t events);
  Link* link_of(Remote& r, uint64_t conn_id, size_t* index = nullptr);
  void maybe_grow(Remote& r);
  void close_idle_links(Remote& r);
  void accept_peers();
  bool admit_inbound(const std::string& address);  // under the caps on inbound connections
  void drop_inbound(uint64_t id, const std::string& why);
  void expire_handshakes();
  // Stops or resumes reading an inbound peer by what it has queued, and sets the
  // events its connection is polled for.
  void watch_inbound(Inbound& in);
  bool over_reply_bound(const Inbound& in) const;
  void serve_inbound(Inbound& in, PeerServeRequest req);
  void expire_fetches(Remote& r);
  bool on_remote_message(Remote& r, Link& l, const peer::Header& h, const uint8_t* body, size_t len, uint32_t data_len,
                         std::vector<iovec>* data_dest);
  bool on_inbound_message(Inbound& in, const peer::Header& h, const uint8_t* body, size_t len);
  void watch(int fd, uint64_t id, bool want_write, bool add);
  std::vector<bool> live_mask() const;
  void rebuild_placement();

  ClusterConfig config_;
  std::string secret_;
  Hooks hooks_;
  LinkLimits limits_;
  std::unique_ptr<Placement> placement_;
  std::vector<std::string> member_ids_;  // placement order
  int self_member_ = -1;                  // -1 if client-only
  std::vector<std::unique_ptr<Remote>> remotes_;
  std::unordered_map<uint64_t, Remote*> remote_by_conn_;  // conn id of any link -> its member
  std::map<uint64_t, Inbound> inbound_;
  int epoll_fd_ = -1;
  uint64_t (*tag_)(uint64_t) = nullptr;
  int listen_fd_ = -1;
  AcceptPause listen_pause_;  // the listener out of descriptors: not polled for a while
  size_t max_inbound_ = 0;    // max_inbound_connections, at most half the descriptor limit
  std::unordered_map<std::string, uint32_t> inbound_by_address_;
  uint64_t next_conn_id_ = 1;
  uint64_t now_ms_ = 0;
  ClusterCounters counters_;
  std::unordered_map<std::string, uint64_t> served_to_;  // block bytes sent, by asking peer's node id
  SendSource send_source_;
  SendCounters send_counters_;
};

}  // namespace dc
