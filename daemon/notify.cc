#include "daemon/notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace dc {

void notify_systemd(const char* state) {
  const char* path = getenv("NOTIFY_SOCKET");
  if (!path || !*path) return;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  size_t n = strlen(path);
  if (n >= sizeof addr.sun_path) return;
  memcpy(addr.sun_path, path, n);
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';  // abstract namespace
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  sendto(fd, state, strlen(state), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr),
         static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + n));
  close(fd);
}

uint64_t watchdog_interval_usec() {
  const char* v = getenv("WATCHDOG_USEC");
  if (!v) return 0;
  const char* pid = getenv("WATCHDOG_PID");
  if (pid && strtol(pid, nullptr, 10) != getpid()) return 0;
  return strtoull(v, nullptr, 10);
}

}  // namespace dc
