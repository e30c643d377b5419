// Small helpers shared by the two sides of the peer protocol (cluster.cc,
// cluster_server.cc). Internal to daemon/cluster.
#pragma once

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "dc/peer_wire.h"

namespace dc::peer_util {

inline void tune_socket(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  // Large buffers: a 1 MiB reply then usually leaves in one send, straight from
  // the arena, with no private copy of a remainder.
  int buf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
}

inline bool split_host_port(const std::string& a, std::string* host, std::string* port) {
  auto colon = a.rfind(':');
  if (colon == std::string::npos) return false;
  *host = a.substr(0, colon);
  *port = a.substr(colon + 1);
  return true;
}

inline void fill_id(char (&out)[peer::kMaxNodeId], const std::string& id) {
  memset(out, 0, sizeof out);
  memcpy(out, id.data(), std::min(id.size(), sizeof out - 1));
}

inline std::string id_of(const char (&in)[peer::kMaxNodeId]) { return std::string(in, strnlen(in, sizeof in)); }

}  // namespace dc::peer_util
