// Cluster membership from etcd (v3 API, through its JSON gateway): each serving
// agent holds a lease and a key /dc/members/<node id> = "<address> <weight>"
// under it, kept alive while the agent lives; every agent reads the prefix once
// and then WATCHES it, handing each new member list to its event loop. A member
// whose process dies loses its key when the lease expires; one that is cut off
// also leaves placement by the peer liveness timeout, whichever comes first.
//
// One thread of its own, so etcd being slow or away never stalls the agent's
// loop. It holds the watch stream open and, between its events, sends the lease
// keep-alives as short requests on a connection of their own (EtcdClient): the
// watch's HTTP/1.1 connection is busy with the streaming response, and the
// kernel buffers watch events while a keep-alive is out, so one thread serves
// both without locks. Every failure (etcd down, stream closed, compaction,
// cancel, a malformed answer, a TLS or auth refusal) leads to a back-off, a
// fresh read of the prefix and a new watch from the revision of that read: no
// event is lost.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "daemon/cluster/etcd_client.h"
#include "daemon/cluster/etcd_wire.h"
#include "daemon/config/config.h"

namespace dc {

class EtcdMembership {
 public:
  struct Counters {
    uint64_t resyncs = 0;        // prefix re-reads after the first (each ends a failed/ended watch)
    uint64_t watch_events = 0;   // PUT/DELETE events applied from the watch
    uint64_t bad_responses = 0;  // malformed answers from etcd (each led to a resync)
    uint64_t bad_members = 0;    // member entries ignored as malformed
    uint64_t lease_grants = 0;   // leases granted (1 + one per expiry)
    uint64_t tls_failures = 0;   // TLS handshakes or certificates refused (either side)
    uint64_t auth_failures = 0;  // user/password refused, or the user may not use the prefix
  };

  explicit EtcdMembership(const ClusterConfig& config);
  ~EtcdMembership();
  // Starts the thread; `notify_fd` (an eventfd) is written when the list changes.
  void start(int notify_fd);
  // The latest member list, this node excluded.
  std::vector<PeerConfig> peers();
  Counters counters() const;

 private:
  enum class KeepAlive { kAlive, kExpired, kUnreachable };

  void run();
  bool register_self();
  bool put_own_key();
  KeepAlive keep_alive();
  void keep_alive_if_due();
  bool resync(uint64_t* revision);
  void watch(uint64_t revision);
  void check_own_key();
  void publish();
  void wait_backoff(int ms);
  bool post(const std::string& path, const std::string& body, HttpResponse* rsp,
            std::string* error);
  void note_bad(const std::string& what);
  void set_healthy(bool ok, const std::string& why);

  ClusterConfig config_;
  const std::string self_key_;
  const uint64_t ttl_s_;
  int notify_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: the destructor wakes the thread with it
  std::thread thread_;
  std::atomic<bool> stop_{false};
  EtcdClient client_;  // after stop_, which it watches

  std::mutex mu_;
  std::vector<PeerConfig> peers_;  // guarded by mu_

  // The thread's own state.
  MemberMap members_;
  std::vector<PeerConfig> published_;
  bool published_once_ = false;
  std::string lease_;  // lease ID, "" when none
  uint64_t next_keepalive_ms_ = 0;
  size_t endpoint_ = 0;   // which etcd endpoint answered last
  bool healthy_ = false;  // for logging transitions only
  bool warned_duplicate_ = false;

  std::atomic<uint64_t> resyncs_{0}, watch_events_{0}, bad_responses_{0}, bad_members_{0},
      lease_grants_{0};
};

}  // namespace dc
