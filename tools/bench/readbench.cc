// readbench: the read patterns dc is meant to speed up, as a plain program. It is
// never linked with the shim: run_bench.sh runs it once natively and once under
// LD_PRELOAD=libdcshim.so, so both runs execute the exact same machine code.
//
//   readbench pread4k FILE SECONDS     random 4 KiB-aligned pread, fixed seed
//   readbench seq1m FILE... SECONDS    sequential 1 MiB read(), rewinding at EOF
//   readbench cold FILE...             each file read once, 1 MiB read()
//
// Output is one line of key=value pairs on stdout. Every mode prints a checksum that
// depends only on the file contents (never on timing or on how reads were split), so
// a native and a shim run of the same mode must print the same value.
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr size_t kBig = 1 << 20;     // buffer of the sequential modes
constexpr size_t kSmall = 4096;      // pread4k unit, also the checksum sampling stride
constexpr uint64_t kSeed = 0x9e3779b97f4a7c15ULL;
constexpr uint64_t kFirstOps = 1 << 16;  // pread4k ops covered by its checksum

[[noreturn]] void die(const char* what, const char* arg) {
  fprintf(stderr, "readbench: %s %s: %s\n", what, arg ? arg : "", strerror(errno));
  exit(1);
}

[[noreturn]] void usage() {
  fprintf(stderr,
          "usage: readbench pread4k FILE SECONDS\n"
          "       readbench seq1m FILE... SECONDS\n"
          "       readbench cold FILE...\n");
  exit(2);
}

double now_s() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

uint64_t mix(uint64_t x) {  // splitmix64 finaliser: order-free sums still catch swaps
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t xorshift(uint64_t* s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

// Samples one word per 4 KiB of file offset that the chunk [pos, pos+len) covers.
// Keyed by file offset, so a shim that splits or shortens reads differently from
// the kernel still yields the same sum; one load per page keeps it far cheaper than
// the copy being measured, yet it consumes every read's result.
uint64_t sample_chunk(const uint8_t* buf, uint64_t pos, size_t len) {
  uint64_t sum = 0;
  uint64_t first = (pos + kSmall - 1) / kSmall * kSmall;
  for (uint64_t off = first; off + sizeof(uint64_t) <= pos + len; off += kSmall) {
    uint64_t w;
    memcpy(&w, buf + (off - pos), sizeof w);
    sum += mix(w ^ off);
  }
  return sum;
}

uint8_t* alloc_buffer(size_t n) {
  void* p = aligned_alloc(4096, n);
  if (!p) die("aligned_alloc", nullptr);
  // Fault the buffer in now: first-touch faults would otherwise land in the timed loop.
  memset(p, 0, n);
  return static_cast<uint8_t*>(p);
}

int open_file(const char* path, uint64_t* size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("open", path);
  struct stat st {};
  if (fstat(fd, &st) != 0) die("fstat", path);
  *size = static_cast<uint64_t>(st.st_size);
  return fd;
}

double parse_seconds(const char* s) {
  char* end = nullptr;
  double v = strtod(s, &end);
  if (!end || *end || !(v > 0)) usage();
  return v;
}

int mode_pread4k(const char* path, double seconds) {
  uint64_t size = 0;
  int fd = open_file(path, &size);
  const uint64_t units = size / kSmall;
  if (units == 0) {
    fprintf(stderr, "readbench: %s is smaller than 4 KiB\n", path);
    return 1;
  }
  uint8_t* big = alloc_buffer(kBig);
  uint8_t* buf = alloc_buffer(kSmall);

  // Untimed pass over the whole file: "hot" means steady state. Natively that is
  // a warm page cache; under the shim it also maps the arena pages into this
  // process, so the random phase does not pay one minor fault per first touch.
  // Its full-content sum is the strongest cross-check between native and shim.
  const double w0 = now_s();
  uint64_t content = 0;
  for (uint64_t pos = 0; pos < size;) {
    ssize_t r = pread(fd, big, kBig, static_cast<off_t>(pos));
    if (r < 0) die("pread", path);
    if (r == 0) break;
    for (ssize_t i = 0; i + 8 <= r; i += 8) {
      uint64_t w;
      memcpy(&w, big + i, sizeof w);
      content += mix(w ^ (pos + static_cast<uint64_t>(i)));
    }
    pos += static_cast<uint64_t>(r);
  }
  const double warm_s = now_s() - w0;

  uint64_t rng = kSeed, ops = 0, bytes = 0, first_sum = 0, sink = 0;
  const double t0 = now_s();
  double t = t0;
  const double stop = t0 + seconds;
  while (t < stop) {
    // Check the clock every 256 ops: a vDSO call per 4 KiB op would be a visible
    // fraction of a ~100 ns shim hit.
    for (int k = 0; k < 256; ++k) {
      const uint64_t off = (xorshift(&rng) % units) * kSmall;
      ssize_t r = pread(fd, buf, kSmall, static_cast<off_t>(off));
      if (r != static_cast<ssize_t>(kSmall)) {
        if (r < 0) die("pread", path);
        fprintf(stderr, "readbench: short pread %zd at %" PRIu64 "\n", r, off);
        return 1;
      }
      uint64_t w0v, w1v;
      memcpy(&w0v, buf, sizeof w0v);
      memcpy(&w1v, buf + kSmall - sizeof w1v, sizeof w1v);
      const uint64_t h = mix(w0v ^ off) + w1v;
      if (ops < kFirstOps) first_sum += h;
      sink += h;
      ++ops;
      bytes += kSmall;
    }
    t = now_s();
  }
  const double el = t - t0;
  printf("mode=pread4k seconds=%.3f ops=%" PRIu64 " ops_per_s=%.0f mb_per_s=%.1f ns_per_op=%.1f "
         "warm_s=%.3f content_sum=%016" PRIx64 " checksum=%016" PRIx64 " first_ops=%" PRIu64
         " sink=%" PRIx64 "\n",
         el, ops, static_cast<double>(ops) / el, static_cast<double>(bytes) / el / 1e6,
         el * 1e9 / static_cast<double>(ops), warm_s, content, first_sum,
         ops < kFirstOps ? ops : kFirstOps, sink & 0xff);
  close(fd);
  return 0;
}

struct Stream {
  const char* path;
  int fd;
  uint64_t size;
  uint64_t pos = 0;
};

// Reads `s` from its current offset to EOF, 1 MiB per read(). Returns bytes read
// and adds the sampled checksum to *sum.
uint64_t read_to_eof(Stream& s, uint8_t* buf, uint64_t* sum) {
  uint64_t total = 0;
  for (;;) {
    ssize_t r = read(s.fd, buf, kBig);
    if (r < 0) {
      if (errno == EINTR) continue;
      die("read", s.path);
    }
    if (r == 0) break;
    *sum += sample_chunk(buf, s.pos, static_cast<size_t>(r));
    s.pos += static_cast<uint64_t>(r);
    total += static_cast<uint64_t>(r);
  }
  if (s.pos != s.size) {
    fprintf(stderr, "readbench: %s: read %" PRIu64 " bytes, size is %" PRIu64 "\n", s.path, s.pos, s.size);
    exit(1);
  }
  return total;
}

int mode_seq1m(std::vector<Stream>& files, double seconds) {
  uint8_t* buf = alloc_buffer(kBig);
  uint64_t bytes = 0, passes = 0, pass_sum = 0, first_pass_sum = 0, sink = 0;
  const double t0 = now_s();
  double t = t0;
  // Whole passes only: the checksum of pass 1 is comparable across runs, and every
  // run reads each file from the start (no partial-file tail skewing the rate).
  while (t < t0 + seconds || passes == 0) {
    pass_sum = 0;
    for (auto& s : files) {
      if (lseek(s.fd, 0, SEEK_SET) != 0) die("lseek", s.path);
      s.pos = 0;
      bytes += read_to_eof(s, buf, &pass_sum);
    }
    if (passes == 0) first_pass_sum = pass_sum;
    sink += pass_sum;
    ++passes;
    t = now_s();
  }
  const double el = t - t0;
  printf("mode=seq1m seconds=%.3f passes=%" PRIu64 " bytes=%" PRIu64 " mb_per_s=%.1f checksum=%016" PRIx64
         " sink=%" PRIx64 "\n",
         el, passes, bytes, static_cast<double>(bytes) / el / 1e6, first_pass_sum, sink & 0xff);
  return 0;
}

int mode_cold(std::vector<Stream>& files) {
  uint8_t* buf = alloc_buffer(kBig);
  uint64_t bytes = 0, sum = 0;
  const double t0 = now_s();
  for (auto& s : files) bytes += read_to_eof(s, buf, &sum);
  const double el = now_s() - t0;
  printf("mode=cold files=%zu seconds=%.4f bytes=%" PRIu64 " mb_per_s=%.1f checksum=%016" PRIx64 "\n",
         files.size(), el, bytes, static_cast<double>(bytes) / el / 1e6, sum);
  return 0;
}

std::vector<Stream> open_all(char** paths, int n) {
  std::vector<Stream> v;
  for (int i = 0; i < n; ++i) {
    Stream s{paths[i], -1, 0};
    s.fd = open_file(paths[i], &s.size);
    v.push_back(s);
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) usage();
  const std::string mode = argv[1];
  int rc;
  if (mode == "pread4k") {
    if (argc != 4) usage();
    rc = mode_pread4k(argv[2], parse_seconds(argv[3]));
  } else if (mode == "seq1m") {
    if (argc < 4) usage();
    auto files = open_all(argv + 2, argc - 3);
    rc = mode_seq1m(files, parse_seconds(argv[argc - 1]));
  } else if (mode == "cold") {
    auto files = open_all(argv + 2, argc - 2);
    rc = mode_cold(files);
  } else {
    usage();
  }
  fflush(stdout);
  return rc;
}
