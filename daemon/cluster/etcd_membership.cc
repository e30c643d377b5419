#include "daemon/cluster/etcd_membership.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "common/log.h"

namespace dc {
namespace {

constexpr const char* kPrefix = "/dc/members/";
constexpr const char* kB64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

uint64_t now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

// The string value of the first "name":"..." after `from` in a JSON text; etcd's
// gateway quotes its 64-bit numbers, so IDs and TTLs come out this way too.
bool json_string(const std::string& json, const std::string& name, size_t from, std::string* out, size_t* end) {
  const std::string pat = "\"" + name + "\":\"";
  size_t at = json.find(pat, from);
  if (at == std::string::npos) return false;
  at += pat.size();
  size_t close = json.find('"', at);
  if (close == std::string::npos) return false;
  *out = json.substr(at, close - at);
  if (end) *end = close;
  return true;
}

}  // namespace

std::string base64_encode(const std::string& in) {
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8) |
                       static_cast<uint8_t>(in[i + 2]);
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += kB64[v & 63];
  }
  if (i + 1 == in.size()) {
    const uint32_t v = static_cast<uint8_t>(in[i]) << 16;
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    const uint32_t v = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8);
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string base64_decode(const std::string& in) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const char* p = strchr(kB64, c);
    if (c == '=' || !p || !c) break;
    acc = (acc << 6) | static_cast<uint32_t>(p - kB64);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

EtcdMembership::EtcdMembership(const ClusterConfig& config) : config_(config) {}

EtcdMembership::~EtcdMembership() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void EtcdMembership::start(int notify_fd) {
  notify_fd_ = notify_fd;
  thread_ = std::thread([this] { run(); });
}

std::vector<PeerConfig> EtcdMembership::peers() {
  std::lock_guard<std::mutex> lock(mu_);
  return peers_;
}

bool EtcdMembership::post(const std::string& path, const std::string& body, std::string* response) {
  for (size_t attempt = 0; attempt < config_.etcd.size(); ++attempt) {
    const std::string& ep = config_.etcd[(endpoint_ + attempt) % config_.etcd.size()];
    const auto colon = ep.rfind(':');
    addrinfo hints{}, *res = nullptr;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    if (getaddrinfo(ep.substr(0, colon).c_str(), ep.substr(colon + 1).c_str(), &hints, &res) != 0 || !res) continue;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    const bool ok = fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) == 0;
    freeaddrinfo(res);
    if (!ok) {
      if (fd >= 0) close(fd);
      continue;
    }
    const std::string req = "POST " + path + " HTTP/1.1\r\nHost: " + ep +
                            "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                            "\r\nConnection: close\r\n\r\n" + body;
    if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
      close(fd);
      continue;
    }
    std::string in;
    char buf[8192];
    for (;;) {
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      in.append(buf, static_cast<size_t>(n));
      if (in.size() > (1u << 20)) break;
    }
    close(fd);
    if (in.rfind("HTTP/1.1 200", 0) != 0) continue;
    const auto hdr_end = in.find("\r\n\r\n");
    *response = hdr_end == std::string::npos ? "" : in.substr(hdr_end + 4);
    endpoint_ = (endpoint_ + attempt) % config_.etcd.size();
    return true;
  }
  return false;
}

bool EtcdMembership::refresh_lease() {
  const uint64_t ttl_s = std::max<uint64_t>(2, config_.member_timeout_ms / 1000);
  std::string rsp, value;
  if (!lease_.empty() && now_ms() - last_keepalive_ms_ < ttl_s * 1000 / 3) return true;
  if (!lease_.empty()) {
    // A lease etcd no longer knows answers without a TTL: grant a new one.
    if (post("/v3/lease/keepalive", "{\"ID\": \"" + lease_ + "\"}", &rsp) && json_string(rsp, "TTL", 0, &value, nullptr) &&
        value != "0") {
      last_keepalive_ms_ = now_ms();
      return true;
    }
    lease_.clear();
  }
  if (!post("/v3/lease/grant", "{\"TTL\": " + std::to_string(ttl_s) + "}", &rsp) ||
      !json_string(rsp, "ID", 0, &lease_, nullptr))
    return false;
  char weight[32];
  snprintf(weight, sizeof weight, "%g", config_.weight);
  const std::string key = base64_encode(kPrefix + config_.node_id);
  const std::string val = base64_encode(config_.listen + " " + weight);
  if (!post("/v3/kv/put", "{\"key\": \"" + key + "\", \"value\": \"" + val + "\", \"lease\": \"" + lease_ + "\"}", &rsp)) {
    lease_.clear();
    return false;
  }
  last_keepalive_ms_ = now_ms();
  DC_LOG_INFO("cluster: registered in etcd as %s (lease %s, ttl %llus)", config_.node_id.c_str(), lease_.c_str(),
              static_cast<unsigned long long>(ttl_s));
  return true;
}

bool EtcdMembership::read_members(std::vector<PeerConfig>* out) {
  std::string prefix = kPrefix;
  std::string end = prefix;
  end.back() = static_cast<char>(end.back() + 1);
  std::string rsp;
  if (!post("/v3/kv/range", "{\"key\": \"" + base64_encode(prefix) + "\", \"range_end\": \"" + base64_encode(end) + "\"}",
            &rsp))
    return false;
  size_t at = 0;
  std::string k, v;
  while (json_string(rsp, "key", at, &k, &at) && json_string(rsp, "value", at, &v, &at)) {
    const std::string id = base64_decode(k).substr(prefix.size());
    const std::string val = base64_decode(v);
    const auto sp = val.find(' ');
    PeerConfig p;
    p.id = id;
    p.address = val.substr(0, sp);
    p.weight = sp == std::string::npos ? 1.0 : atof(val.c_str() + sp + 1);
    // Untrusted input: keep only well-formed entries.
    if (id.empty() || id.size() >= 64 || id == config_.node_id || p.address.find(':') == std::string::npos ||
        !(p.weight > 0) || p.weight > 1000)
      continue;
    out->push_back(p);
  }
  std::sort(out->begin(), out->end(), [](const PeerConfig& a, const PeerConfig& b) { return a.id < b.id; });
  return true;
}

void EtcdMembership::run() {
  std::vector<PeerConfig> last;
  bool first = true;
  bool connected = false;  // for logging transitions only
  while (!stop_) {
    bool ok = !config_.serve || refresh_lease();
    std::vector<PeerConfig> now;
    ok = read_members(&now) && ok;
    if (ok != connected) {
      if (ok) DC_LOG_INFO("cluster: etcd reachable");
      else DC_LOG_WARN("cluster: etcd unreachable; keeping the last member list");
    }
    connected = ok;
    if (ok) {
      const bool changed = first || now.size() != last.size() ||
                           !std::equal(now.begin(), now.end(), last.begin(), [](const PeerConfig& a, const PeerConfig& b) {
                             return a.id == b.id && a.address == b.address && a.weight == b.weight;
                           });
      if (changed) {
        {
          std::lock_guard<std::mutex> lock(mu_);
          peers_ = now;
        }
        last = now;
        first = false;
        uint64_t one = 1;
        if (write(notify_fd_, &one, sizeof one) < 0) {
        }
      }
    }
    for (int i = 0; i < 3 && !stop_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace dc
