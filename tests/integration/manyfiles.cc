// Many small files read whole, at once, by many processes and threads: the load
// that makes the agent's origin opens churn (more misses in flight than open
// files allowed) while reads wait in its io_uring backlog. Contents are a pure
// function of (file, offset), so every byte read is checked without a second read.
//
//   dcmanyfiles gen DIR NFILES                 write the dataset (run natively)
//   dcmanyfiles check DIR NFILES PROCS THREADS SLOW
//                                              read every file in every process
//
// check prints one summary line and exits non-zero on any mismatch, error, short
// read, or file whose open and read took SLOW seconds or more (a fetch left for
// the shim's timeout).
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
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
  const uint64_t w = mix((uint64_t{file} << 40) ^ (off >> 3) ^ 0x2545f491ULL);
  return static_cast<uint8_t>(w >> (8 * (off & 7)));
}

// 1 byte to 24 KiB: sizes differ, so another file's bytes show as a wrong length
// as well as wrong contents.
uint64_t file_size(uint32_t file) {
  return 1 + mix(file * 7919ULL + 3) % (24 << 10);
}

std::string file_path(const std::string& dir, uint32_t file) {
  char name[32];
  snprintf(name, sizeof name, "/m%05u.bin", file);
  return dir + name;
}

int gen(const std::string& dir, uint32_t n) {
  std::vector<uint8_t> buf;
  for (uint32_t f = 0; f < n; ++f) {
    const uint64_t size = file_size(f);
    buf.resize(size);
    for (uint64_t i = 0; i < size; ++i) buf[i] = expected_byte(f, i);
    FILE* out = fopen(file_path(dir, f).c_str(), "wb");
    if (!out || fwrite(buf.data(), 1, size, out) != size || fclose(out) != 0) {
      perror("write");
      return 1;
    }
  }
  return 0;
}

struct Tally {
  std::atomic<uint64_t> files{0}, mismatches{0}, errors{0}, shorts{0}, slow{0};
  std::atomic<uint64_t> slowest_ms{0};
};

// Reads `file` whole with read() until EOF and checks it.
void check_file(const std::string& dir, uint32_t file, std::vector<uint8_t>& buf, Tally& tally,
                double slow_seconds) {
  const auto start = std::chrono::steady_clock::now();
  int fd = open(file_path(dir, file).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    tally.errors++;
    fprintf(stderr, "open %u: %s\n", file, strerror(errno));
    return;
  }
  uint64_t got = 0;
  for (;;) {
    ssize_t r = read(fd, buf.data() + got, buf.size() - got);
    if (r < 0) {
      tally.errors++;
      fprintf(stderr, "read %u: %s\n", file, strerror(errno));
      close(fd);
      return;
    }
    if (r == 0 || got + static_cast<uint64_t>(r) >= buf.size()) {
      got += static_cast<uint64_t>(r);
      break;
    }
    got += static_cast<uint64_t>(r);
  }
  close(fd);
  tally.files++;
  const auto ms = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                            std::chrono::steady_clock::now() - start)
                                            .count());
  for (uint64_t seen = tally.slowest_ms.load(); ms > seen;)
    if (tally.slowest_ms.compare_exchange_weak(seen, ms)) break;
  if (static_cast<double>(ms) >= slow_seconds * 1000) {
    tally.slow++;
    fprintf(stderr, "SLOW: file %u took %llu ms\n", file, static_cast<unsigned long long>(ms));
  }
  const uint64_t size = file_size(file);
  if (got != size) {
    tally.shorts++;
    fprintf(stderr, "LENGTH: file %u read %llu bytes, holds %llu\n", file,
            static_cast<unsigned long long>(got), static_cast<unsigned long long>(size));
  }
  for (uint64_t i = 0; i < got && i < size; ++i) {
    if (buf[i] != expected_byte(file, i)) {
      tally.mismatches++;
      fprintf(stderr, "MISMATCH: file %u off %llu\n", file, static_cast<unsigned long long>(i));
      return;
    }
  }
}

int check(const std::string& dir, uint32_t n, int procs, int threads, double slow_seconds) {
  std::vector<pid_t> children;
  int proc = 0;
  for (int p = 1; p < procs; ++p) {
    pid_t c = fork();
    if (c < 0) {
      perror("fork");
      return 1;
    }
    if (c == 0) {
      proc = p;
      children.clear();
      break;
    }
    children.push_back(c);
  }
  Tally tally;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      // Each process starts at its own place in the file list and its threads
      // interleave: every file is read by every process, and at any moment the
      // processes x threads readers miss different files.
      std::vector<uint8_t> buf((24 << 10) + 4096);
      const uint32_t start = static_cast<uint32_t>(proc) * (n / static_cast<uint32_t>(procs));
      for (uint32_t i = static_cast<uint32_t>(t); i < n; i += static_cast<uint32_t>(threads))
        check_file(dir, (start + i) % n, buf, tally, slow_seconds);
    });
  }
  for (auto& th : pool) th.join();
  const bool bad = tally.mismatches || tally.errors || tally.shorts || tally.slow;
  if (proc != 0) _exit(bad ? 1 : 0);
  int failed_children = 0;
  for (pid_t c : children) {
    int st = 0;
    if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0) ++failed_children;
  }
  printf(
      "process 0: files=%llu mismatches=%llu errors=%llu shorts=%llu slow=%llu slowest=%llums; "
      "failed processes=%d of %d\n",
      static_cast<unsigned long long>(tally.files.load()),
      static_cast<unsigned long long>(tally.mismatches.load()),
      static_cast<unsigned long long>(tally.errors.load()),
      static_cast<unsigned long long>(tally.shorts.load()),
      static_cast<unsigned long long>(tally.slow.load()),
      static_cast<unsigned long long>(tally.slowest_ms.load()), failed_children + (bad ? 1 : 0),
      procs);
  return bad || failed_children ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && strcmp(argv[1], "gen") == 0)
    return gen(argv[2], static_cast<uint32_t>(strtoul(argv[3], nullptr, 10)));
  if (argc == 7 && strcmp(argv[1], "check") == 0)
    return check(argv[2], static_cast<uint32_t>(strtoul(argv[3], nullptr, 10)), atoi(argv[4]),
                 atoi(argv[5]), atof(argv[6]));
  fprintf(stderr, "usage: dcmanyfiles gen DIR NFILES | check DIR NFILES PROCS THREADS SLOW\n");
  return 2;
}
