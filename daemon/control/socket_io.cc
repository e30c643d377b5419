#include "daemon/control/socket_io.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace dc {
namespace {

Status make_parent_dir(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0) return ok_status();
  std::string dir = path.substr(0, slash);
  struct stat st {};
  if (stat(dir.c_str(), &st) == 0) return ok_status();
  if (auto s = make_parent_dir(dir); !s) return s;
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
    return make_error(Errc::kIo, "mkdir " + dir + ": " + strerror(errno));
  return ok_status();
}

bool fill_addr(const std::string& path, sockaddr_un* addr) {
  memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  if (path.size() >= sizeof addr->sun_path) return false;
  memcpy(addr->sun_path, path.c_str(), path.size() + 1);
  return true;
}

bool in_supplementary_groups(pid_t pid, gid_t gid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Groups:", 0) != 0) continue;
    std::istringstream ss(line.substr(7));
    unsigned long g;
    while (ss >> g)
      if (static_cast<gid_t>(g) == gid) return true;
  }
  return false;
}

}  // namespace

Result<ListenSocket> listen_control_socket(const std::string& path, uint32_t mode,
                                           const std::string& group) {
  sockaddr_un addr;
  if (!fill_addr(path, &addr)) return make_error(Errc::kInvalidArgument, "socket path too long: " + path);
  if (auto s = make_parent_dir(path); !s) return s.error();

  gid_t gid = getegid();
  if (!group.empty()) {
    struct group* gr = getgrnam(group.c_str());
    if (!gr) return make_error(Errc::kInvalidArgument, "unknown socket group '" + group + "'");
    gid = gr->gr_gid;
  }

  // A socket file left by a dead agent is removed; a live agent is never displaced.
  int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (probe >= 0) {
    int rc = connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    close(probe);
    if (rc == 0) return make_error(Errc::kBusy, "another agent is already listening on " + path);
  }
  unlink(path.c_str());

  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return make_error(Errc::kIo, std::string("socket: ") + strerror(errno));
  // Bind under a restrictive umask so no one can connect before chmod/chown apply.
  mode_t old = umask(0177);
  int rc = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  umask(old);
  if (rc != 0) {
    int e = errno;
    close(fd);
    return make_error(Errc::kIo, "bind " + path + ": " + strerror(e));
  }
  if (chown(path.c_str(), static_cast<uid_t>(-1), gid) != 0 && !group.empty()) {
    int e = errno;
    close(fd);
    return make_error(Errc::kPermission, "chown " + path + ": " + strerror(e));
  }
  if (chmod(path.c_str(), mode) != 0 || listen(fd, 128) != 0) {
    int e = errno;
    close(fd);
    return make_error(Errc::kIo, "listen " + path + ": " + strerror(e));
  }
  ListenSocket ls;
  ls.fd = fd;
  ls.path = path;
  ls.owner_uid = geteuid();
  ls.owner_gid = gid;
  ls.mode = mode;
  return ls;
}

Result<PeerCred> peer_credentials(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
    return make_error(Errc::kIo, std::string("SO_PEERCRED: ") + strerror(errno));
  return PeerCred{cred.pid, cred.uid, cred.gid};
}

bool peer_allowed(const ListenSocket& ls, const PeerCred& peer) {
  if (peer.uid == 0 || peer.uid == ls.owner_uid) return true;
  if (ls.mode & 0006) return true;
  if ((ls.mode & 0060) && (peer.gid == ls.owner_gid || in_supplementary_groups(peer.pid, ls.owner_gid)))
    return true;
  return false;
}

Status send_packet(int fd, const void* data, size_t len, const std::vector<int>& fds) {
  iovec iov{const_cast<void*>(data), len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
  if (!fds.empty()) {
    if (fds.size() > 4) return make_error(Errc::kInvalidArgument, "too many fds");
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n != static_cast<ssize_t>(len))
    return make_error(Errc::kIo, std::string("send: ") + (n < 0 ? strerror(errno) : "short"));
  return ok_status();
}

RecvResult recv_packet(int fd, uint8_t* buf, size_t cap, size_t* len) {
  iovec iov{buf, cap};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)];
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return RecvResult::kAgain;
    return RecvResult::kError;
  }
  bool had_fds = false;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int passed;
        memcpy(&passed, CMSG_DATA(c) + i * sizeof(int), sizeof passed);
        close(passed);
      }
      had_fds = true;
    }
  }
  if (had_fds || (msg.msg_flags & MSG_CTRUNC)) return RecvResult::kUnexpectedFds;
  if (n == 0) return RecvResult::kClosed;
  if (msg.msg_flags & MSG_TRUNC) return RecvResult::kTooLarge;
  *len = static_cast<size_t>(n);
  return RecvResult::kPacket;
}

}  // namespace dc
