// Cluster membership from etcd (v3 API, through its JSON gateway): each serving
// agent holds a lease and a key /dc/members/<node id> = "<address> <weight>" under
// it, kept alive while the agent lives; every agent reads the prefix and hands
// the member list to its event loop. A member whose process dies loses its key
// when the lease expires; one that is cut off also leaves placement by the
// peer liveness timeout, whichever comes first.
//
// Runs in its own thread with blocking HTTP/1.1 requests (Connection: close) and
// short timeouts, so etcd being slow or away never stalls the agent's loop.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "daemon/config/config.h"

namespace dc {

class EtcdMembership {
 public:
  EtcdMembership(const ClusterConfig& config);
  ~EtcdMembership();
  // Starts the thread; `notify_fd` (an eventfd) is written when the list changes.
  void start(int notify_fd);
  // The latest member list, this node excluded.
  std::vector<PeerConfig> peers();

 private:
  void run();
  bool refresh_lease();
  bool read_members(std::vector<PeerConfig>* out);
  bool post(const std::string& path, const std::string& body, std::string* response);

  ClusterConfig config_;
  int notify_fd_ = -1;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<PeerConfig> peers_;  // guarded by mu_
  std::string lease_;              // lease ID, "" when none (thread only)
  uint64_t last_keepalive_ms_ = 0;
  size_t endpoint_ = 0;            // which etcd endpoint answered last
};

// Helpers, exposed for tests.
std::string base64_encode(const std::string& in);
std::string base64_decode(const std::string& in);

}  // namespace dc
