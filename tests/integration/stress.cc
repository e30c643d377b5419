// Differential stress for the shim: several processes x threads doing random
// pread / read / lseek / readv over a dataset, each result compared with the bytes
// the file must hold. File contents are a pure function of (file, offset), so the
// checker never needs an unshimmed read to know the truth.
//
//   dcstress gen DIR NFILES MIN MAX            write the dataset (run natively)
//   dcstress check DIR NFILES MIN MAX SECONDS PROCS THREADS
//
// check prints one summary line per process and exits non-zero on any mismatch,
// error or short read before end of file.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

uint8_t expected_byte(uint32_t file, uint64_t off) {
  const uint64_t w = mix((uint64_t{file} << 40) ^ (off >> 3) ^ 0x5bd1e995ULL);
  return static_cast<uint8_t>(w >> (8 * (off & 7)));
}

uint64_t file_size(uint32_t file, uint64_t lo, uint64_t hi) { return lo + mix(file * 7919ULL + 1) % (hi - lo + 1); }

std::string file_path(const std::string& dir, uint32_t file) {
  char name[32];
  snprintf(name, sizeof name, "/s%05u.bin", file);
  return dir + name;
}

int gen(const std::string& dir, uint32_t n, uint64_t lo, uint64_t hi) {
  std::vector<uint8_t> buf(1 << 20);
  for (uint32_t f = 0; f < n; ++f) {
    const uint64_t size = file_size(f, lo, hi);
    FILE* out = fopen(file_path(dir, f).c_str(), "wb");
    if (!out) {
      perror("fopen");
      return 1;
    }
    for (uint64_t at = 0; at < size;) {
      const uint64_t chunk = std::min<uint64_t>(buf.size(), size - at);
      for (uint64_t i = 0; i < chunk; ++i) buf[i] = expected_byte(f, at + i);
      fwrite(buf.data(), 1, chunk, out);
      at += chunk;
    }
    fclose(out);
  }
  return 0;
}

struct Tally {
  std::atomic<uint64_t> reads{0}, bytes{0}, mismatches{0}, errors{0}, shorts{0};
};

struct Worker {
  const std::string& dir;
  uint32_t nfiles;
  uint64_t lo, hi;
  std::vector<int>& shared_fds;  // one fd per file, shared by this process's threads
  Tally& tally;
  uint64_t rng;

  uint64_t next() {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
  }

  void verify(uint32_t file, uint64_t off, const uint8_t* p, ssize_t got, size_t want, uint64_t size) {
    tally.reads++;
    if (got < 0) {
      tally.errors++;
      fprintf(stderr, "error: file %u off %llu: %s\n", file, static_cast<unsigned long long>(off), strerror(errno));
      return;
    }
    const uint64_t expect_len = off >= size ? 0 : std::min<uint64_t>(want, size - off);
    if (static_cast<uint64_t>(got) != expect_len) {
      tally.shorts++;
      fprintf(stderr, "short: file %u off %llu got %zd want %llu\n", file, static_cast<unsigned long long>(off),
              got, static_cast<unsigned long long>(expect_len));
    }
    tally.bytes += static_cast<uint64_t>(got);
    for (ssize_t i = 0; i < got; ++i) {
      if (p[i] != expected_byte(file, off + static_cast<uint64_t>(i))) {
        tally.mismatches++;
        fprintf(stderr, "MISMATCH: file %u off %llu\n", file, static_cast<unsigned long long>(off + static_cast<uint64_t>(i)));
        return;
      }
    }
  }

  void one_op(std::vector<uint8_t>& buf) {
    const uint32_t file = static_cast<uint32_t>(next() % nfiles);
    const uint64_t size = file_size(file, lo, hi);
    const uint64_t off = next() % (size + 4096);  // sometimes past EOF
    const size_t len = 1 + next() % (next() % 4 == 0 ? buf.size() - 1 : 65536);
    switch (next() % 4) {
      case 0: {  // pread on the process-wide fd, shared across threads
        ssize_t r = pread(shared_fds[file], buf.data(), len, static_cast<off_t>(off));
        verify(file, off, buf.data(), r, len, size);
        break;
      }
      case 1: {  // private fd: lseek + read, twice in a row (sequential continuation)
        int fd = open(file_path(dir, file).c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
          tally.errors++;
          return;
        }
        if (lseek(fd, static_cast<off_t>(off), SEEK_SET) != static_cast<off_t>(off)) tally.errors++;
        ssize_t r = read(fd, buf.data(), len);
        verify(file, off, buf.data(), r, len, size);
        const uint64_t off2 = off + static_cast<uint64_t>(r > 0 ? r : 0);
        if (lseek(fd, 0, SEEK_CUR) != static_cast<off_t>(off2)) {
          tally.errors++;
          fprintf(stderr, "offset: file %u expected %llu\n", file, static_cast<unsigned long long>(off2));
        }
        ssize_t r2 = read(fd, buf.data(), len);
        verify(file, off2, buf.data(), r2, len, size);
        close(fd);
        break;
      }
      case 2: {  // readv with three pieces
        int fd = open(file_path(dir, file).c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
          tally.errors++;
          return;
        }
        lseek(fd, static_cast<off_t>(off), SEEK_SET);
        const size_t a = len / 3, b = len / 3, c = len - a - b;
        iovec iov[3] = {{buf.data(), a}, {buf.data() + a, b}, {buf.data() + a + b, c}};
        ssize_t r = readv(fd, iov, 3);
        verify(file, off, buf.data(), r, len, size);
        close(fd);
        break;
      }
      case 3: {  // preadv on the shared fd
        const size_t a = len / 2;
        iovec iov[2] = {{buf.data(), a}, {buf.data() + a, len - a}};
        ssize_t r = preadv(shared_fds[file], iov, 2, static_cast<off_t>(off));
        verify(file, off, buf.data(), r, len, size);
        break;
      }
    }
  }
};

int check(const std::string& dir, uint32_t n, uint64_t lo, uint64_t hi, double seconds, int procs, int threads) {
  // Open the shared fds before forking: children inherit them (and the shim's
  // view of them), which exercises the fork path.
  std::vector<int> fds(n);
  for (uint32_t f = 0; f < n; ++f) {
    fds[f] = open(file_path(dir, f).c_str(), O_RDONLY);
    if (fds[f] < 0) {
      perror("open");
      return 1;
    }
  }
  std::vector<pid_t> children;
  int proc = 0;
  for (int p = 1; p < procs; ++p) {
    pid_t c = fork();
    if (c == 0) {
      proc = p;
      children.clear();
      break;
    }
    children.push_back(c);
  }
  Tally tally;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      Worker w{dir, n, lo, hi, fds, tally, mix(static_cast<uint64_t>(proc * 131 + t + 1)) | 1};
      std::vector<uint8_t> buf(3 << 20);
      while (std::chrono::steady_clock::now() < deadline) w.one_op(buf);
    });
  }
  for (auto& th : pool) th.join();
  printf("proc %d: reads=%llu bytes=%llu mismatches=%llu errors=%llu short=%llu\n", proc,
         static_cast<unsigned long long>(tally.reads.load()), static_cast<unsigned long long>(tally.bytes.load()),
         static_cast<unsigned long long>(tally.mismatches.load()), static_cast<unsigned long long>(tally.errors.load()),
         static_cast<unsigned long long>(tally.shorts.load()));
  fflush(stdout);
  int rc = (tally.mismatches || tally.errors || tally.shorts || tally.reads == 0) ? 1 : 0;
  for (pid_t c : children) {
    int st = 0;
    waitpid(c, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) rc = 1;
  }
  if (proc != 0) _exit(rc);
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 6 && strcmp(argv[1], "gen") == 0)
    return gen(argv[2], static_cast<uint32_t>(atoi(argv[3])), strtoull(argv[4], nullptr, 10), strtoull(argv[5], nullptr, 10));
  if (argc >= 9 && strcmp(argv[1], "check") == 0)
    return check(argv[2], static_cast<uint32_t>(atoi(argv[3])), strtoull(argv[4], nullptr, 10),
                 strtoull(argv[5], nullptr, 10), atof(argv[6]), atoi(argv[7]), atoi(argv[8]));
  fprintf(stderr, "usage: dcstress gen DIR NFILES MIN MAX | check DIR NFILES MIN MAX SECONDS PROCS THREADS\n");
  return 2;
}
