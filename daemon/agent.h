// dcagent: one event loop (epoll) over the control socket, client sessions, io_uring
// completions, a timer and signals. Single-threaded by design: the arena has one
// writer, and the origin's slowness is absorbed by io_uring (reads) and a few
// worker threads (opens and stats, OriginWorkers), never by the loop.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "daemon/cache/arena.h"
#include "daemon/cache/block_cache.h"
#include "daemon/cluster/cluster.h"
#include "daemon/cluster/etcd_membership.h"
#include "daemon/config/config.h"
#include "daemon/control/messages.h"
#include "daemon/control/socket_io.h"
#include "daemon/metrics/stats.h"
#include "daemon/net/accept_pause.h"
#include "daemon/origin/origin_files.h"
#include "daemon/origin/origin_reader.h"
#include "daemon/origin/origin_workers.h"
#include "daemon/prefetch/readahead.h"

namespace dc {

class Agent {
 public:
  explicit Agent(Config config);
  ~Agent();

  Status start();  // arena, io_uring, socket; after this, clients may connect
  int run();       // until SIGTERM/SIGINT; returns the exit code

 private:
  struct Session {
    uint64_t id = 0;
    int fd = -1;
    PeerCred peer;
    ctl::Role role{};
    bool greeted = false;
    int region_fd = -1;
    abi::ClientRegionHeader* region = nullptr;
    uint64_t ring_tail = 0;
  };
  static constexpr uint64_t kPeerTokenBit = 1ULL << 63;  // fill tokens of peer requests
  struct PendingFetch {
    uint64_t session_id = 0;
    uint32_t request_id = 0;
    uint32_t remaining = 0;
    std::vector<uint8_t> ok;  // per block of the request
    ctl::Status failure = ctl::Status::kOk;
  };

  void accept_clients();
  void on_session_readable(uint64_t session_id);
  void close_session(uint64_t session_id, const char* why);
  void handle(Session& s, const Request& r);
  void handle_hello(Session& s, const Request& r);
  void handle_fetch(Session& s, const Request& r);
  void fetch_from(uint64_t session_id, const Request& r, const OriginFile& file);
  void handle_invalidate(Session& s, const Request& r);
  void reply_fetch_now(uint64_t session_id, uint32_t request_id, ctl::Status st);
  // agent_origin.cc: the origin file of version `key`, opened off the loop if it
  // is not open. `then` runs once, now or from a later loop iteration, with the
  // file or why there is none (kStale: the path now holds another version).
  using FileWaiter = std::function<void(const Result<OriginFile>&)>;
  void with_origin_file(uint32_t dataset_id, const std::string& rel, FileKey key, FileWaiter then);
  void on_origin_opened(uint32_t dataset_id, const std::string& rel,
                        const Result<OriginFile>& opened);
  void handle_stats(Session& s, const Request& r);
  void on_fill_done(uint64_t handle, bool ok, int err);
  void block_done(uint64_t token, bool ok);
  void reply_fetch(uint64_t pending_id);
  void drain_hit_rings();
  void prefetch(const OriginFile& file, FileKey key, uint32_t dataset_id, const std::string& path,
                Readahead::Plan plan);
  void submit_fill(const OriginFile& file, BlockCache::Handle h, uint64_t block, uint32_t len);
  void flush_fills();
  // Starts making `block` resident: from its owner if another live member owns it,
  // else from the origin. Returns what BlockCache::begin said.
  BlockCache::Begin begin_block(const OriginFile& file, FileKey key, uint32_t dataset_id, const std::string& path,
                                uint64_t block, uint64_t token, bool prefetch, BlockCache::Handle* h);
  // agent_cluster.cc
  Status start_cluster();
  void on_peer_fetched(uint64_t handle, bool ok, bool crc_error);
  void on_membership_changed();
  void serve_peer(const PeerServeRequest& req);
  void serve_peer_from(const PeerServeRequest& req, const OriginFile& file);
  void peer_request_done(uint64_t id, bool ok);
  void handle_text(Session& s, const Request& r);
  void on_tick();
  StatList collect_stats();
  void send_or_close(Session& s, const void* data, size_t len, const std::vector<int>& fds = {});

  Config config_;
  std::unique_ptr<Arena> arena_;
  std::unique_ptr<BlockCache> cache_;
  std::unique_ptr<OriginReader> reader_;
  // Shared with the workers' jobs: a job hung on the origin past shutdown still
  // has the dataset list it reads.
  std::shared_ptr<OriginFiles> origin_;
  std::unique_ptr<OriginWorkers> origin_workers_;
  // Opens in progress, by "dataset/path": every caller waiting for one, with the
  // version it wants. One open per path however many wait.
  std::unordered_map<std::string, std::vector<std::pair<FileKey, FileWaiter>>> opening_;
  std::unique_ptr<Readahead> readahead_;
  std::unique_ptr<Cluster> cluster_;
  std::unique_ptr<EtcdMembership> etcd_;
  int membership_fd_ = -1;  // eventfd: the etcd member list changed
  struct PeerFill {  // a block being fetched from its owner
    FileKey key;
    uint32_t dataset_id = 0;
    std::string path;
    uint64_t block = 0;
    uint32_t len = 0;
    int attempts = 0;
  };
  std::unordered_map<uint64_t, PeerFill> peer_fills_;  // by block handle
  std::unordered_map<uint64_t, PeerServeRequest> peer_requests_;
  // Consecutive blocks of one file, filled from the origin by one read: large
  // device requests, as the kernel's own readahead would issue. Flushed before the
  // handler that built it returns; it holds the file open until then.
  struct FillRun {
    OriginFdRef fd;
    uint32_t direct_align = 0;
    uint64_t first_block = 0;
    uint64_t bytes = 0;
    bool ends_short = false;
    std::vector<BlockCache::Handle> handles;
  };
  static constexpr size_t kMaxRunBlocks = 4;
  static constexpr uint64_t kFillGroupBit = 1ULL << 62;
  FillRun run_;
  std::unordered_map<uint64_t, std::vector<BlockCache::Handle>> fill_groups_;
  uint64_t next_fill_group_ = 1;
  uint64_t next_peer_request_ = 1;
  ListenSocket listen_;
  AcceptPause listen_pause_;  // the control socket out of descriptors: not polled for a while
  int epoll_fd_ = -1;
  int timer_fd_ = -1;
  int signal_fd_ = -1;
  uint64_t next_session_id_ = 1;
  uint64_t next_pending_id_ = 1;
  std::unordered_map<uint64_t, Session> sessions_;
  std::unordered_map<uint64_t, PendingFetch> pending_;
  AgentCounters counters_;
  abi::ClientCounters departed_{};  // shim counters of sessions that have ended
  uint64_t watchdog_usec_ = 0;
  uint64_t last_watchdog_ms_ = 0;
  bool stopping_ = false;
};

}  // namespace dc
