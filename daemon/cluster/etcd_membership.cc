#include "daemon/cluster/etcd_membership.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "common/log.h"
#include "daemon/cluster/etcd_json.h"

namespace dc {
namespace {

constexpr const char* kPrefix = "/dc/members/";
constexpr int kRequestTimeoutMs = 1000;    // one-shot requests (range, put, lease)
constexpr int kWatchOpenTimeoutMs = 2000;  // connect + the response head
constexpr int kCreatedTimeoutMs = 3000;    // the head came, but no "created" yet
constexpr int kMinBackoffMs = 100;
constexpr int kMaxBackoffMs = 2000;
constexpr uint64_t kStableWatchMs = 5000;  // a watch that lived this long resets the back-off
constexpr uint64_t kKeepAliveRetryMs = 300;

uint64_t now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

bool same_list(const std::vector<PeerConfig>& a, const std::vector<PeerConfig>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](const PeerConfig& x, const PeerConfig& y) {
                      return x.id == y.id && x.address == y.address && x.weight == y.weight;
                    });
}

}  // namespace

EtcdMembership::EtcdMembership(const ClusterConfig& config)
    : config_(config),
      self_key_(kPrefix + config.node_id),
      ttl_s_(std::max<uint64_t>(2, config.member_timeout_ms / 1000)),
      client_(config, &stop_),
      members_(kPrefix) {}

EtcdMembership::~EtcdMembership() {
  stop_ = true;
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    if (write(wake_fd_, &one, sizeof one) < 0) {
      // Only fails if the counter is saturated: the thread is being woken anyway.
    }
  }
  if (thread_.joinable()) thread_.join();
  if (wake_fd_ >= 0) close(wake_fd_);
}

void EtcdMembership::start(int notify_fd) {
  notify_fd_ = notify_fd;
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  thread_ = std::thread([this] { run(); });
}

std::vector<PeerConfig> EtcdMembership::peers() {
  std::lock_guard<std::mutex> lock(mu_);
  return peers_;
}

EtcdMembership::Counters EtcdMembership::counters() const {
  Counters c;
  c.resyncs = resyncs_;
  c.watch_events = watch_events_;
  c.bad_responses = bad_responses_;
  c.bad_members = bad_members_;
  c.lease_grants = lease_grants_;
  c.tls_failures = client_.tls_failures();
  c.auth_failures = client_.auth_failures();
  return c;
}

bool EtcdMembership::post(const std::string& path, const std::string& body, HttpResponse* rsp,
                          std::string* error) {
  const size_t n = client_.endpoints();
  for (size_t attempt = 0; attempt < n && !stop_; ++attempt) {
    const size_t i = (endpoint_ + attempt) % n;
    EtcdFail why = EtcdFail::kNone;
    if (client_.post(i, path, body, kRequestTimeoutMs, rsp, error, &why)) {
      endpoint_ = i;
      return true;
    }
  }
  return false;
}

void EtcdMembership::note_bad(const std::string& what) {
  ++bad_responses_;
  DC_LOG_WARN("cluster: malformed answer from etcd (%s); re-reading the member list", what.c_str());
}

void EtcdMembership::set_healthy(bool ok, const std::string& why) {
  if (ok && !healthy_) DC_LOG_INFO("cluster: etcd reachable");
  if (!ok && healthy_)
    DC_LOG_WARN("cluster: etcd: %s; keeping the last member list, retrying", why.c_str());
  else if (!ok)
    DC_LOG_DEBUG("cluster: etcd: %s", why.c_str());
  healthy_ = ok;
}

bool EtcdMembership::put_own_key() {
  HttpResponse r;
  std::string err;
  if (!post("/v3/kv/put",
            put_request(self_key_, member_value(config_.listen, config_.weight), lease_), &r,
            &err)) {
    set_healthy(false, "put " + self_key_ + ": " + err);
    return false;
  }
  if (r.status == 200) return true;
  if (is_lease_not_found(r.body)) {
    DC_LOG_WARN("cluster: etcd lease %s is gone; registering anew", lease_.c_str());
    lease_.clear();
  } else {
    set_healthy(false, "put " + self_key_ + ": HTTP " + std::to_string(r.status) + " " +
                           r.body.substr(0, 200));
  }
  return false;
}

bool EtcdMembership::register_self() {
  HttpResponse r;
  std::string err, id;
  if (!post("/v3/lease/grant", "{\"TTL\":" + std::to_string(ttl_s_) + "}", &r, &err)) {
    set_healthy(false, "lease grant: " + err);
    return false;
  }
  if (r.status != 200) {
    set_healthy(false,
                "lease grant: HTTP " + std::to_string(r.status) + " " + r.body.substr(0, 200));
    return false;
  }
  if (!parse_lease_grant(r.body, &id, &err)) {
    note_bad("lease grant: " + err);
    return false;
  }
  ++lease_grants_;
  lease_ = id;
  if (!put_own_key()) {
    lease_.clear();  // etcd drops the unused lease when its TTL runs out
    return false;
  }
  next_keepalive_ms_ = now_ms() + ttl_s_ * 1000 / 3;
  DC_LOG_INFO("cluster: registered in etcd as %s (lease %s, ttl %llus)", config_.node_id.c_str(),
              lease_.c_str(), static_cast<unsigned long long>(ttl_s_));
  return true;
}

EtcdMembership::KeepAlive EtcdMembership::keep_alive() {
  HttpResponse r;
  std::string err;
  uint64_t ttl = 0;
  if (!post("/v3/lease/keepalive", "{\"ID\":\"" + lease_ + "\"}", &r, &err)) {
    set_healthy(false, "lease keepalive: " + err);
    return KeepAlive::kUnreachable;
  }
  if (r.status != 200) {
    if (is_lease_not_found(r.body)) return KeepAlive::kExpired;
    set_healthy(false,
                "lease keepalive: HTTP " + std::to_string(r.status) + " " + r.body.substr(0, 200));
    return KeepAlive::kUnreachable;
  }
  if (!parse_lease_keepalive(r.body, &ttl, &err)) {
    ++bad_responses_;
    DC_LOG_WARN("cluster: malformed lease keepalive answer from etcd (%s)", err.c_str());
    return KeepAlive::kUnreachable;
  }
  return ttl == 0 ? KeepAlive::kExpired : KeepAlive::kAlive;
}

void EtcdMembership::keep_alive_if_due() {
  if (!config_.serve || lease_.empty() || now_ms() < next_keepalive_ms_) return;
  switch (keep_alive()) {
    case KeepAlive::kAlive:
      next_keepalive_ms_ = now_ms() + ttl_s_ * 1000 / 3;
      break;
    case KeepAlive::kUnreachable:
      next_keepalive_ms_ = now_ms() + kKeepAliveRetryMs;
      break;
    case KeepAlive::kExpired:
      // etcd forgot the lease (it expired while we could not reach etcd, or was
      // revoked): our key went with it. Register again with a new one.
      DC_LOG_WARN("cluster: etcd lease %s expired; registering anew", lease_.c_str());
      lease_.clear();
      break;
  }
}

void EtcdMembership::publish() {
  if (members_.rejected() > bad_members_) {
    DC_LOG_WARN(
        "cluster: ignored %llu malformed member entr%s under %s in etcd (want \"host:port "
        "weight\")",
        static_cast<unsigned long long>(members_.rejected() - bad_members_),
        members_.rejected() - bad_members_ == 1 ? "y" : "ies", kPrefix);
    bad_members_ = members_.rejected();
  }
  std::vector<PeerConfig> now = members_.peers_except(config_.node_id);
  if (published_once_ && same_list(now, published_)) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    peers_ = now;
  }
  published_ = std::move(now);
  published_once_ = true;
  uint64_t one = 1;
  if (write(notify_fd_, &one, sizeof one) < 0) {
    // EAGAIN only: the counter is saturated, so the loop has a wakeup pending.
  }
}

void EtcdMembership::check_own_key() {
  if (!config_.serve || lease_.empty()) return;
  const PeerConfig* me = members_.find(config_.node_id);
  if (!me) {
    // Deleted while our lease lives (by hand, or the lease is going away: then
    // the put says so and we register anew).
    DC_LOG_INFO("cluster: our key %s is missing from etcd; putting it again", self_key_.c_str());
    put_own_key();
  } else if (me->address != config_.listen && !warned_duplicate_) {
    warned_duplicate_ = true;
    DC_LOG_WARN("cluster: %s in etcd names %s, not our %s: another agent with node id %s?",
                self_key_.c_str(), me->address.c_str(), config_.listen.c_str(),
                config_.node_id.c_str());
  }
}

bool EtcdMembership::resync(uint64_t* revision) {
  HttpResponse r;
  std::string err;
  std::vector<EtcdKv> kvs;
  if (!post("/v3/kv/range", range_request(kPrefix), &r, &err)) {
    set_healthy(false, "range " + std::string(kPrefix) + ": " + err);
    return false;
  }
  if (r.status != 200) {
    set_healthy(false, "range: HTTP " + std::to_string(r.status) + " " + r.body.substr(0, 200));
    return false;
  }
  if (!parse_range_response(r.body, revision, &kvs, &err)) {
    note_bad("range: " + err);
    return false;
  }
  set_healthy(true, "");
  members_.reset(kvs);
  check_own_key();
  publish();
  return true;
}

void EtcdMembership::watch(uint64_t revision) {
  EtcdStream stream(&client_);
  std::string err;
  EtcdFail fail = EtcdFail::kNone;
  if (!stream.open(endpoint_ % client_.endpoints(), "/v3/watch",
                   watch_create_request(kPrefix, revision + 1), kWatchOpenTimeoutMs, wake_fd_, &err,
                   &fail)) {
    set_healthy(false, "opening the watch: " + err);
    return;
  }
  JsonObjectSplitter splitter(4u << 20);  // as large as parse_json takes
  const uint64_t created_by = now_ms() + kCreatedTimeoutMs;
  bool created = false;
  std::string body;
  std::vector<std::string> objects;
  for (;;) {
    body.clear();
    objects.clear();
    const auto rd = stream.read_available(&body, &err);
    if (!splitter.feed(body, &objects)) {
      note_bad("watch stream is not a sequence of JSON objects");
      return;
    }
    bool changed = false;
    for (const std::string& obj : objects) {
      WatchMessage m;
      if (!parse_watch_message(obj, &m, &err)) {
        note_bad("watch: " + err);
        return;
      }
      if (m.created && !created) {
        created = true;
        DC_LOG_INFO("cluster: watching %s in etcd from revision %llu (%zu members)", kPrefix,
                    static_cast<unsigned long long>(revision + 1), members_.size());
      }
      std::string why;
      const WatchStep step = apply_watch_message(m, &members_, &why);
      if (step == WatchStep::kResync) {
        // A watch refused for its token (expired while the stream was being
        // set up): the resync authenticates again.
        if (m.error && is_auth_token_invalid(m.reason)) client_.drop_token();
        set_healthy(false, why);
        return;
      }
      if (step == WatchStep::kChanged) {
        watch_events_ += m.events.size();
        changed = true;
      }
    }
    if (changed) {
      check_own_key();
      publish();
    }
    if (rd == EtcdStream::Read::kEnded) {
      set_healthy(false, "the watch stream ended");
      return;
    }
    if (rd == EtcdStream::Read::kError) {
      set_healthy(false, "watch stream: " + err);
      return;
    }
    if (!created && now_ms() > created_by) {
      set_healthy(false, "etcd did not confirm the watch");
      return;
    }
    keep_alive_if_due();
    if (stop_ || (config_.serve && lease_.empty())) return;  // lease gone: register, then read anew
    int timeout = 1000;
    if (config_.serve)
      timeout = static_cast<int>(
          std::min<uint64_t>(1000, next_keepalive_ms_ - std::min(next_keepalive_ms_, now_ms())));
    stream.wait(timeout, wake_fd_);
    if (stop_) return;
  }
}

void EtcdMembership::wait_backoff(int ms) {
  const uint64_t until = now_ms() + static_cast<uint64_t>(ms);
  while (!stop_) {
    const uint64_t now = now_ms();
    if (now >= until) return;
    uint64_t wait = until - now;
    if (config_.serve && !lease_.empty())
      wait = std::min(wait, next_keepalive_ms_ > now ? next_keepalive_ms_ - now : 0);
    pollfd p{wake_fd_, POLLIN, 0};
    poll(&p, 1, static_cast<int>(wait));
    keep_alive_if_due();
  }
}

void EtcdMembership::run() {
  int backoff = kMinBackoffMs;
  bool first = true;
  while (!stop_) {
    keep_alive_if_due();
    bool ok = !config_.serve || !lease_.empty() || register_self();
    uint64_t revision = 0;
    if (ok) ok = resync(&revision);
    if (ok) {
      if (!first) ++resyncs_;
      first = false;
      const uint64_t began = now_ms();
      watch(revision);
      if (now_ms() - began >= kStableWatchMs) backoff = kMinBackoffMs;
    }
    if (stop_) break;
    wait_backoff(backoff);
    backoff = std::min(backoff * 2, kMaxBackoffMs);
  }
}

}  // namespace dc
