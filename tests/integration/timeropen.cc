// A program with a periodic SA_RESTART timer (setitimer, every millisecond), as
// profilers and some runtimes have: it opens and reads each FILE, copying its bytes
// to stdout, and reports on stderr how long each open and each whole file took.
// Under the shim no open may wait on an agent that does not answer: a signal every
// millisecond must not stretch (or restart) the shim's deadline.
//   dctimeropen FILE...
#include <fcntl.h>
#include <signal.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>

namespace {
volatile sig_atomic_t g_ticks = 0;
void on_tick(int) {
  g_ticks = g_ticks + 1;
}

double now_s() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}
}  // namespace

int main(int argc, char** argv) {
  struct sigaction sa {};
  sa.sa_handler = on_tick;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, nullptr);
  itimerval it{{0, 1000}, {0, 1000}};
  setitimer(ITIMER_REAL, &it, nullptr);
  static char buf[1 << 16];
  for (int i = 1; i < argc; ++i) {
    const double t0 = now_s();
    const int fd = open(argv[i], O_RDONLY | O_CLOEXEC);
    const double t1 = now_s();
    if (fd < 0) {
      perror(argv[i]);
      return 1;
    }
    for (;;) {
      const ssize_t n = read(fd, buf, sizeof buf);
      if (n < 0) {
        perror("read");
        return 1;
      }
      if (n == 0) break;
      for (ssize_t off = 0; off < n;) {
        const ssize_t w = write(1, buf + off, static_cast<size_t>(n - off));
        if (w <= 0) return 1;
        off += w;
      }
    }
    close(fd);
    fprintf(stderr, "open %.3f s, whole file %.3f s: %s\n", t1 - t0, now_s() - t0, argv[i]);
  }
  fprintf(stderr, "timer ticks: %d\n", static_cast<int>(g_ticks));
  return 0;
}
