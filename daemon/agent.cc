#include "daemon/agent.h"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "common/units.h"
#include "daemon/control/roots_file.h"
#include "daemon/epoll_tag.h"
#include "daemon/notify.h"

namespace dc {
namespace {

using namespace epoll_tag;
constexpr uint64_t tag(Kind k, uint64_t id = 0) { return epoll_tag::make(k, id); }
constexpr int kTickMs = 20;
// Opens and stats of origin files in parallel: as many files as this can hang on
// a sick origin before opens of other files wait too (reads of files already
// open, and hits, never wait for them).
constexpr uint32_t kOriginWorkerThreads = 4;

uint64_t now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}


}  // namespace

Agent::Agent(Config config) : config_(std::move(config)) {}

Agent::~Agent() {
  etcd_.reset();  // stop its thread before anything it signals goes away
  if (membership_fd_ >= 0) close(membership_fd_);
  for (auto& [id, s] : sessions_) {
    if (s.region) munmap(s.region, abi::kClientRegionBytes);
    if (s.region_fd >= 0) close(s.region_fd);
    close(s.fd);
  }
  if (listen_.fd >= 0) {
    close(listen_.fd);
    unlink(listen_.path.c_str());
    remove_roots_file(listen_.path);
  }
  for (int fd : {epoll_fd_, timer_fd_, signal_fd_})
    if (fd >= 0) close(fd);
}

Status Agent::start() {
  const uint64_t pages = config_.memory / config_.page_size;
  if (pages > UINT32_MAX / 2) return make_error(Errc::kInvalidArgument, "cache.memory: too many pages");
  auto arena = Arena::create(config_.page_size, config_.block_size, static_cast<uint32_t>(pages), config_.huge_pages);
  if (!arena) return arena.error();
  arena_.reset(*arena);
  cache_ = std::make_unique<BlockCache>(*arena_);
  auto reader = OriginReader::create(config_.io_depth);
  if (!reader) return reader.error();
  reader_.reset(*reader);
  origin_ = std::make_shared<OriginFiles>(config_.datasets, config_.max_open_files);
  auto workers = OriginWorkers::create(kOriginWorkerThreads);
  if (!workers) return workers.error();
  origin_workers_ = std::move(*workers);
  // Readahead stays within half of the probation region, so prefetched blocks are
  // read before the FIFO could push them out when the main region is full.
  const uint64_t pages_per_block = config_.block_size / config_.page_size;
  const uint64_t window = std::min<uint64_t>(32, arena_->page_count() / 32 / (2 * pages_per_block));
  readahead_ = std::make_unique<Readahead>(static_cast<uint32_t>(window));

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  signal(SIGPIPE, SIG_IGN);
  signal_fd_ = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  timer_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (signal_fd_ < 0 || timer_fd_ < 0 || epoll_fd_ < 0)
    return make_error(Errc::kIo, std::string("event setup: ") + strerror(errno));
  itimerspec its{};
  its.it_interval.tv_nsec = kTickMs * 1000000L;
  its.it_value.tv_nsec = kTickMs * 1000000L;
  timerfd_settime(timer_fd_, 0, &its, nullptr);

  auto ls = listen_control_socket(config_.socket, config_.socket_mode, config_.socket_group);
  if (!ls) return ls.error();
  listen_ = *ls;
  // Shims learn the roots from this file without waiting on us (roots_file.h).
  if (auto st = write_roots_file(listen_.path, config_.datasets, listen_.mode, listen_.owner_gid);
      !st)
    DC_LOG_WARN("%s (shims will ask for the dataset roots at their first open)",
                st.error().message.c_str());
  auto add = [&](int fd, uint64_t data) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = data;
    return epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) == 0;
  };
  if (!add(listen_.fd, tag(kListen)) || !add(timer_fd_, tag(kTimer)) ||
      !add(signal_fd_, tag(kSignal)) || !add(reader_->event_fd(), tag(kIo)) ||
      !add(origin_workers_->event_fd(), tag(kOriginWorkers)))
    return make_error(Errc::kIo, std::string("epoll_ctl: ") + strerror(errno));
  listen_pause_.attach(epoll_fd_, listen_.fd, tag(kListen));
  if (config_.cluster.enabled) {
    if (auto st = start_cluster(); !st) return st;
  }
  watchdog_usec_ = watchdog_interval_usec();
  DC_LOG_INFO("listening on %s; arena %s in %u pages of %s (%s total mapped, %s); readahead up to %llu blocks",
              listen_.path.c_str(),
              format_size(uint64_t{arena_->page_count()} * arena_->page_size()).c_str(),
              arena_->page_count(), format_size(arena_->page_size()).c_str(),
              format_size(arena_->size()).c_str(),
              arena_->huge_pages() ? "huge pages" : "4 KiB pages (huge pages off or unavailable)",
              static_cast<unsigned long long>(window));
  for (const auto& d : config_.datasets) DC_LOG_INFO("dataset %s at %s", d.name.c_str(), d.path.c_str());
  return ok_status();
}

int Agent::run() {
  notify_systemd("READY=1\nSTATUS=serving");
  epoll_event events[64];
  while (!stopping_) {
    int n = epoll_wait(epoll_fd_, events, 64, 1000);
    if (n < 0) {
      if (errno == EINTR) continue;
      DC_LOG_ERROR("epoll_wait: %s", strerror(errno));
      return 1;
    }
    drain_hit_rings();
    for (int i = 0; i < n; ++i) {
      const uint64_t data = events[i].data.u64;
      switch (kind_of(data)) {
        case kListen: accept_clients(); break;
        case kTimer: on_tick(); break;
        case kIo:
          reader_->reap([this](uint64_t user, bool ok, int err) { on_fill_done(user, ok, err); });
          break;
        case kSignal: {
          signalfd_siginfo si{};
          while (read(signal_fd_, &si, sizeof si) == sizeof si) {
            DC_LOG_INFO("signal %u: shutting down", si.ssi_signo);
            stopping_ = true;
          }
          break;
        }
        case kSession: on_session_readable(data & kIdMask); break;
        case kPeer: cluster_->on_event(data & kIdMask, events[i].events); break;
        case kMembership: on_membership_changed(); break;
        case kOriginWorkers:
          origin_workers_->run_completions();
          break;
      }
    }
    flush_fills();  // a run waits no longer than this iteration
    // Requests queued while handling this batch leave together (coalesced).
    if (cluster_) cluster_->flush_all();
  }
  notify_systemd("STOPPING=1");
  return 0;
}

void Agent::on_tick() {
  uint64_t expirations;
  while (read(timer_fd_, &expirations, sizeof expirations) > 0) {
  }
  reader_->retry_pending();
  listen_pause_.tick(now_ms());
  if (cluster_) cluster_->tick(now_ms());
  if (watchdog_usec_) {
    uint64_t now = now_ms();
    if ((now - last_watchdog_ms_) * 1000 >= watchdog_usec_ / 2) {
      notify_systemd("WATCHDOG=1");
      last_watchdog_ms_ = now;
    }
  }
}

void Agent::accept_clients() {
  for (;;) {
    int fd = accept4(listen_.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      const int e = errno;
      if (listen_pause_.on_accept_error(e, now_ms()))
        DC_LOG_WARN_LIMITED("accept on the control socket: %s; not accepting for %llu ms",
                            strerror(e), static_cast<unsigned long long>(AcceptPause::kPauseMs));
      else if (e != EAGAIN && e != EWOULDBLOCK && e != EINTR)
        DC_LOG_WARN_LIMITED("accept on the control socket: %s", strerror(e));
      return;
    }
    auto cred = peer_credentials(fd);
    if (!cred || !peer_allowed(listen_, *cred)) {
      ++counters_.sessions_rejected;
      DC_LOG_WARN("rejected client pid %d uid %u: not allowed by socket owner/group/mode",
                  cred ? cred->pid : -1, cred ? cred->uid : 0);
      close(fd);
      continue;
    }
    Session s;
    s.id = next_session_id_++;
    s.fd = fd;
    s.peer = *cred;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = tag(kSession, s.id);
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      close(fd);
      continue;
    }
    ++counters_.sessions_opened;
    sessions_.emplace(s.id, s);
  }
}

void Agent::close_session(uint64_t id, const char* why) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  Session& s = it->second;
  if (why) DC_LOG_WARN("closing session %llu (pid %d): %s", static_cast<unsigned long long>(id), s.peer.pid, why);
  if (s.region) {
    add_counters(&departed_, snapshot_counters(s.region));
    munmap(s.region, abi::kClientRegionBytes);
  }
  if (s.region_fd >= 0) close(s.region_fd);
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, s.fd, nullptr);
  close(s.fd);
  sessions_.erase(it);
}

void Agent::on_session_readable(uint64_t id) {
  // A few packets per wakeup keeps one busy client from starving the others.
  for (int i = 0; i < 16; ++i) {
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return;
    uint8_t buf[ctl::kMaxRequest];
    size_t len = 0;
    switch (recv_packet(it->second.fd, buf, sizeof buf, &len)) {
      case RecvResult::kAgain: return;
      case RecvResult::kClosed: close_session(id, nullptr); return;
      case RecvResult::kError: close_session(id, "receive error"); return;
      case RecvResult::kTooLarge:
        ++counters_.bad_messages;
        close_session(id, "oversized message");
        return;
      case RecvResult::kUnexpectedFds:
        ++counters_.bad_messages;
        close_session(id, "client sent file descriptors");
        return;
      case RecvResult::kPacket: break;
    }
    auto req = parse_request(buf, len, static_cast<uint32_t>(config_.datasets.size()));
    if (!req) {
      ++counters_.bad_messages;
      close_session(id, req.error().message.c_str());
      return;
    }
    Session& s = it->second;
    if (!s.greeted && req->op != ctl::Op::kHello) {
      ++counters_.bad_messages;
      close_session(id, "request before hello");
      return;
    }
    if (s.greeted && req->op == ctl::Op::kHello) {
      ++counters_.bad_messages;
      close_session(id, "second hello");
      return;
    }
    handle(s, *req);
  }
}

void Agent::send_or_close(Session& s, const void* data, size_t len, const std::vector<int>& fds) {
  if (auto st = send_packet(s.fd, data, len, fds); !st) close_session(s.id, st.error().message.c_str());
}

void Agent::handle(Session& s, const Request& r) {
  switch (r.op) {
    case ctl::Op::kHello: handle_hello(s, r); break;
    case ctl::Op::kFetch: handle_fetch(s, r); break;
    case ctl::Op::kInvalidate: handle_invalidate(s, r); break;
    case ctl::Op::kStats: handle_stats(s, r); break;
    case ctl::Op::kRing:
    case ctl::Op::kPeers: handle_text(s, r); break;
    default: close_session(s.id, "unexpected opcode"); break;
  }
}

}  // namespace dc
