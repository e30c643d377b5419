// Makes one file's open hang for one process, the way a sick origin (a stuck NFS
// server) hangs it: a fanotify permission event that is never answered. Opens of
// FILE by PID wait in the kernel until this program exits (the kernel then allows
// them); opens by anyone else are allowed at once. Each held open appends a line
// "held" to LOG, so a test knows the open is under way.
//
//   dcholdopen FILE PID LOG      (needs CAP_SYS_ADMIN; exits 77 without it)
#include <fcntl.h>
#include <sys/fanotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: dcholdopen FILE PID LOG\n");
    return 2;
  }
  const pid_t target = static_cast<pid_t>(atoi(argv[2]));
  const int fan = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC, O_RDONLY | O_LARGEFILE);
  if (fan < 0) {
    fprintf(stderr, "fanotify_init: %s\n", strerror(errno));
    return errno == EPERM || errno == ENOSYS ? 77 : 1;
  }
  if (fanotify_mark(fan, FAN_MARK_ADD, FAN_OPEN_PERM, AT_FDCWD, argv[1]) != 0) {
    fprintf(stderr, "fanotify_mark %s: %s\n", argv[1], strerror(errno));
    return errno == EPERM || errno == EINVAL ? 77 : 1;
  }
  FILE* log = fopen(argv[3], "a");
  if (!log) return 1;
  fprintf(log, "ready\n");
  fflush(log);
  std::vector<int> held;  // event fds of opens left waiting
  alignas(fanotify_event_metadata) char buf[4096];
  for (;;) {
    const ssize_t n = read(fan, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    auto* m = reinterpret_cast<fanotify_event_metadata*>(buf);
    for (ssize_t len = n; FAN_EVENT_OK(m, len); m = FAN_EVENT_NEXT(m, len)) {
      if (!(m->mask & FAN_OPEN_PERM)) continue;
      if (m->pid == target) {
        held.push_back(m->fd);
        fprintf(log, "held\n");
        fflush(log);
        continue;
      }
      fanotify_response r{m->fd, FAN_ALLOW};
      if (write(fan, &r, sizeof r) != sizeof r) return 1;
      close(m->fd);
    }
  }
}
