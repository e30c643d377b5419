// Holds many dataset descriptors open and keeps reading them (missing, since the
// dataset is larger than the cache) for SECONDS while the test kills and restarts
// the agent. Afterwards every descriptor must still be the file it was opened on
// (same device and inode) and no read may have failed: the shim must never close
// or reuse a descriptor it does not own, whatever happens to the agent.
//   dcfdkeep SECONDS FILE...
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  const double seconds = atof(argv[1]);
  struct Held {
    int fd;
    dev_t dev;
    ino_t ino;
    off_t size;
  };
  std::vector<Held> held;
  for (int round = 0; round < 4; ++round) {
    for (int i = 2; i < argc; ++i) {
      int fd = open(argv[i], O_RDONLY);
      struct stat st {};
      if (fd < 0 || fstat(fd, &st) != 0) {
        perror(argv[i]);
        return 1;
      }
      held.push_back({fd, st.st_dev, st.st_ino, st.st_size});
    }
  }
  int failures = 0;
  std::vector<std::thread> pool;
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  for (int t = 0; t < 3; ++t) {
    pool.emplace_back([&, t] {
      std::vector<char> buf(1 << 20);
      uint64_t x = 88172645463325252ULL + static_cast<uint64_t>(t);
      while (std::chrono::steady_clock::now() < end) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        const Held& h = held[x % held.size()];
        const off_t off = static_cast<off_t>(x % static_cast<uint64_t>(h.size));
        if (pread(h.fd, buf.data(), buf.size(), off) < 0) {
          fprintf(stderr, "pread fd %d: %s\n", h.fd, strerror(errno));
          __atomic_fetch_add(&failures, 1, __ATOMIC_RELAXED);
        }
      }
    });
  }
  for (auto& th : pool) th.join();
  for (const Held& h : held) {
    struct stat st {};
    if (fstat(h.fd, &st) != 0 || st.st_dev != h.dev || st.st_ino != h.ino) {
      fprintf(stderr, "descriptor %d is no longer its file\n", h.fd);
      ++failures;
    }
  }
  printf("%zu descriptors held, %d failure(s)\n", held.size(), failures);
  return failures ? 1 : 0;
}
