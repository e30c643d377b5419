// The control socket at the OS level: listening, who may connect, and packets with
// descriptors attached. No protocol knowledge here.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace dc {

struct PeerCred {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

struct ListenSocket {
  int fd = -1;
  std::string path;
  uid_t owner_uid = 0;
  gid_t owner_gid = 0;
  uint32_t mode = 0;
};

// Creates the parent directory if needed, refuses if another agent answers on
// `path`, binds, applies mode and group, listens. SOCK_SEQPACKET, non-blocking.
Result<ListenSocket> listen_control_socket(const std::string& path, uint32_t mode,
                                           const std::string& group);
// Whether a peer may use the agent: the socket's owner and group are the boundary
// (root and the agent's own user always may).
bool peer_allowed(const ListenSocket& ls, const PeerCred& peer);
Result<PeerCred> peer_credentials(int fd);

// Sends one packet, attaching `fds` (SCM_RIGHTS). Never blocks, never raises SIGPIPE.
Status send_packet(int fd, const void* data, size_t len, const std::vector<int>& fds = {});

enum class RecvResult { kPacket, kAgain, kClosed, kTooLarge, kError, kUnexpectedFds };
// Receives one packet into `buf` (capacity `cap`). Descriptors a client attaches are
// closed and reported as kUnexpectedFds.
RecvResult recv_packet(int fd, uint8_t* buf, size_t cap, size_t* len);

}  // namespace dc
