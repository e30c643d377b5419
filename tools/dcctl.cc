// dcctl: inspect a running dcagent over its control socket.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/units.h"
#include "dc/control.h"

namespace {

void usage(FILE* out) {
  fprintf(out,
          "usage: dcctl [--socket PATH] stats [--json]\n"
          "The agent's socket is --socket, else $DC_SOCKET, else /run/dc/agent.sock.\n");
}

int connect_agent(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (fd < 0 || path.size() >= sizeof addr.sun_path) return -1;
  memcpy(addr.sun_path, path.c_str(), path.size());
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool request(int fd, const void* req, size_t len, std::vector<uint8_t>* reply) {
  if (send(fd, req, len, MSG_NOSIGNAL) != static_cast<ssize_t>(len)) return false;
  reply->resize(dc::ctl::kMaxReply);
  ssize_t n = recv(fd, reply->data(), reply->size(), 0);
  if (n < static_cast<ssize_t>(sizeof(dc::ctl::MsgHeader))) return false;
  reply->resize(static_cast<size_t>(n));
  return true;
}

bool is_bytes(const std::string& name) {
  return name.rfind("bytes_", 0) == 0 || name.rfind("cache_bytes", 0) == 0 || name == "page_size" ||
         name == "block_size";
}

int cmd_stats(int fd, bool json) {
  dc::ctl::StatsRequest req{dc::ctl::make_header(dc::ctl::Op::kStats, sizeof req, 2)};
  std::vector<uint8_t> rep;
  if (!request(fd, &req, sizeof req, &rep) || rep.size() < sizeof(dc::ctl::StatsReply)) {
    fprintf(stderr, "dcctl: no stats reply from the agent\n");
    return 1;
  }
  dc::ctl::StatsReply h;
  memcpy(&h, rep.data(), sizeof h);
  if (h.count > (rep.size() - sizeof h) / sizeof(dc::ctl::StatEntry)) {
    fprintf(stderr, "dcctl: malformed stats reply\n");
    return 1;
  }
  std::vector<std::pair<std::string, uint64_t>> stats;
  for (uint32_t i = 0; i < h.count; ++i) {
    dc::ctl::StatEntry e;
    memcpy(&e, rep.data() + sizeof h + i * sizeof e, sizeof e);
    e.name[sizeof e.name - 1] = '\0';
    stats.emplace_back(e.name, e.value);
  }
  if (json) {
    printf("{");
    for (size_t i = 0; i < stats.size(); ++i)
      printf("%s\"%s\": %llu", i ? ", " : "", stats[i].first.c_str(),
             static_cast<unsigned long long>(stats[i].second));
    printf("}\n");
    return 0;
  }
  uint64_t hits = 0, misses = 0, fallbacks = 0;
  for (auto& [k, v] : stats) {
    if (k == "hit_reads") hits = v;
    if (k == "miss_reads") misses = v;
    if (k == "fallback_reads") fallbacks = v;
  }
  printf("%-26s %s\n", "STAT", "VALUE");
  for (auto& [k, v] : stats) {
    if (is_bytes(k)) printf("%-26s %s\n", k.c_str(), dc::format_size(v).c_str());
    else printf("%-26s %llu\n", k.c_str(), static_cast<unsigned long long>(v));
  }
  const uint64_t reads = hits + misses + fallbacks;
  if (reads) printf("%-26s %.1f%%\n", "hit_ratio", 100.0 * static_cast<double>(hits) / static_cast<double>(reads));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string socket_path = getenv("DC_SOCKET") && *getenv("DC_SOCKET") ? getenv("DC_SOCKET") : "/run/dc/agent.sock";
  std::vector<std::string> args;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--socket" && i + 1 < argc) socket_path = argv[++i];
    else if (a == "--json") json = true;
    else if (a == "-h" || a == "--help") {
      usage(stdout);
      return 0;
    } else args.push_back(a);
  }
  if (args.size() != 1 || args[0] != "stats") {
    usage(stderr);
    return 2;
  }
  int fd = connect_agent(socket_path);
  if (fd < 0) {
    fprintf(stderr, "dcctl: cannot reach the agent at %s: %s\n", socket_path.c_str(), strerror(errno));
    return 1;
  }
  dc::ctl::HelloRequest hello{};
  hello.h = dc::ctl::make_header(dc::ctl::Op::kHello, sizeof hello, 1);
  hello.role = static_cast<uint32_t>(dc::ctl::Role::kCtl);
  hello.pid = static_cast<uint32_t>(getpid());
  std::vector<uint8_t> rep;
  if (!request(fd, &hello, sizeof hello, &rep)) {
    fprintf(stderr, "dcctl: the agent did not answer hello\n");
    return 1;
  }
  int rc = cmd_stats(fd, json);
  close(fd);
  return rc;
}
