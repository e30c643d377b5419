// dcctl: inspect a running dcagent over its control socket.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "common/units.h"
#include "dc/control.h"

namespace {

void usage(FILE* out) {
  fprintf(out,
          "usage: dcctl [--socket PATH] stats|ring|peers [--json]\n"
          "  stats   counters of the agent and of the shims it serves, and per peer\n"
          "  ring    cluster members, weights, liveness and each one's share of blocks\n"
          "  peers   other members: state, connections, requests in flight, bytes, errors\n"
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

// A flat reading of the agent's JSON (objects of scalars, arrays of such objects)
// into rows for a table: enough for ring and peers, no general parser needed.
using Row = std::vector<std::pair<std::string, std::string>>;

void parse_rows(const std::string& j, Row* top, std::vector<Row>* rows) {
  size_t i = 0;
  int depth = 0;
  Row cur;
  std::string key;
  auto read_string = [&](size_t& k) {
    std::string out;
    for (++k; k < j.size() && j[k] != '"'; ++k) {
      if (j[k] == '\\' && k + 1 < j.size()) ++k;
      out += j[k];
    }
    ++k;
    return out;
  };
  while (i < j.size()) {
    const char c = j[i];
    if (c == '{') {
      ++depth;
      if (depth == 2) cur.clear();
      ++i;
    } else if (c == '}') {
      if (depth == 2) rows->push_back(cur);
      --depth;
      ++i;
    } else if (c == '"') {
      std::string str = read_string(i);
      while (i < j.size() && j[i] == ' ') ++i;
      if (i < j.size() && j[i] == ':') {
        key = str;
        ++i;
      } else {
        (depth == 2 ? cur : *top).emplace_back(key, str);
      }
    } else if (c == '[' || c == ']' || c == ',' || c == ' ') {
      ++i;
    } else {
      size_t e = i;
      while (e < j.size() && j[e] != ',' && j[e] != '}' && j[e] != ']') ++e;
      (depth == 2 ? cur : *top).emplace_back(key, j.substr(i, e - i));
      i = e;
    }
  }
}

bool request_text(int fd, dc::ctl::Op op, std::string* text) {
  dc::ctl::MsgHeader req = dc::ctl::make_header(op, sizeof(dc::ctl::MsgHeader), 3);
  std::vector<uint8_t> rep;
  if (!request(fd, &req, sizeof req, &rep) || rep.size() < sizeof(dc::ctl::TextReply)) return false;
  dc::ctl::TextReply h;
  memcpy(&h, rep.data(), sizeof h);
  text->assign(reinterpret_cast<const char*>(rep.data()) + sizeof h, std::min<size_t>(h.length, rep.size() - sizeof h));
  return true;
}

// The JSON array that follows "KEY": in the agent's text, brackets matched
// outside strings; empty if there is none or it is cut short.
std::string json_array(const std::string& j, const std::string& key) {
  size_t at = j.find("\"" + key + "\": [");
  if (at == std::string::npos) return "";
  at = j.find('[', at);
  int depth = 0;
  bool in_string = false;
  for (size_t i = at; i < j.size(); ++i) {
    const char c = j[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      ++depth;
    } else if ((c == ']' || c == '}') && --depth == 0) {
      return j.substr(at, i - at + 1);
    }
  }
  return "";
}

// Columns of `dcctl peers` (the JSON has more); byte counts made readable.
bool peer_column(const std::string& k) {
  for (const char* c : {"id", "address", "state", "connections", "in_flight", "fetches", "bytes_in", "bytes_out",
                        "bytes_served", "errors", "last_error"})
    if (k == c) return true;
  return false;
}

void print_rows(std::vector<Row>& rows, bool peers) {
  if (rows.empty()) return;
  for (auto& [k, v] : rows[0])
    if (!peers || peer_column(k)) printf("%-16s", k.c_str());
  printf("\n");
  for (auto& row : rows) {
    for (auto& [k, v] : row) {
      if (peers && !peer_column(k)) continue;
      if (peers && k.rfind("bytes_", 0) == 0) v = dc::format_size(strtoull(v.c_str(), nullptr, 10));
      if (v.size() > 15) v = v.substr(0, 15);
      printf("%-16s", v.c_str());
    }
    printf("\n");
  }
}

int cmd_text(int fd, dc::ctl::Op op, bool json) {
  std::string text;
  if (!request_text(fd, op, &text)) {
    fprintf(stderr, "dcctl: no reply from the agent\n");
    return 1;
  }
  if (json) {
    printf("%s\n", text.c_str());
    return 0;
  }
  Row top;
  std::vector<Row> rows;
  parse_rows(text, &top, &rows);
  for (auto& [k, v] : top) printf("%s: %s\n", k.c_str(), v.c_str());
  print_rows(rows, op == dc::ctl::Op::kPeers);
  return 0;
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
  // Per-peer figures come from the agent's peers JSON (empty if not in a cluster).
  std::string peers_text, peers;
  const bool have_peers = request_text(fd, dc::ctl::Op::kPeers, &peers_text);
  if (have_peers) peers = json_array(peers_text, "peers");
  if (json) {
    if (have_peers && peers.empty() && peers_text.find("not in a cluster") == std::string::npos)
      fprintf(stderr, "dcctl: the agent's peer list was cut short; \"peers\" is left empty\n");
    printf("{");
    for (size_t i = 0; i < stats.size(); ++i)
      printf("%s\"%s\": %llu", i ? ", " : "", stats[i].first.c_str(),
             static_cast<unsigned long long>(stats[i].second));
    printf("%s\"peers\": %s}\n", stats.empty() ? "" : ", ", peers.empty() ? "[]" : peers.c_str());
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
  Row top;
  std::vector<Row> rows;
  parse_rows("{\"peers\": " + peers + "}", &top, &rows);
  if (!rows.empty()) printf("\n");
  print_rows(rows, true);
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
  if (args.size() != 1 || (args[0] != "stats" && args[0] != "ring" && args[0] != "peers")) {
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
  int rc = args[0] == "stats" ? cmd_stats(fd, json)
           : cmd_text(fd, args[0] == "ring" ? dc::ctl::Op::kRing : dc::ctl::Op::kPeers, json);
  close(fd);
  return rc;
}
