// dcfdshare: descriptor sharing between threads and processes, exec/spawn, stale
// descriptor numbers and mmap, as an application would do them. Each mode prints
// a deterministic report on stdout and exits non-zero on a wrong result, so the
// compat scripts can run it natively and under the shim and compare the reports.
//
// The file offset checks use a "counting" file (gen_counting): every 8-byte word
// holds its own offset, so any chunk returned by read() reveals where in the file
// it came from, whoever moved the shared offset in between.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

[[noreturn]] void die(const char* what) {
  fprintf(stderr, "dcfdshare: %s: %s\n", what, strerror(errno));
  exit(2);
}

uint64_t fnv(const uint8_t* p, size_t n, uint64_t h = 1469598103934665603ULL) {
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ULL;
  return h;
}
uint64_t fnv(const std::vector<uint8_t>& v) { return fnv(v.data(), v.size()); }

int open_ro(const char* path) {
  // No O_CLOEXEC: the exec cases hand this descriptor to a child.
  int fd = open(path, O_RDONLY);
  if (fd < 0) die(path);
  return fd;
}

uint64_t file_size(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) die("fstat");
  return static_cast<uint64_t>(st.st_size);
}

// pread until `len` bytes or EOF; the reference copy of a file for the checks below.
size_t pread_full(int fd, uint8_t* buf, size_t len, off_t off) {
  size_t done = 0;
  while (done < len) {
    ssize_t r = pread(fd, buf + done, len - done, off + static_cast<off_t>(done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) die("pread");
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  return done;
}

size_t read_full(int fd, uint8_t* buf, size_t len) {
  size_t done = 0;
  while (done < len) {
    ssize_t r = read(fd, buf + done, len - done);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) die("read");
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  return done;
}

std::vector<uint8_t> whole_file(const char* path) {
  int fd = open_ro(path);
  std::vector<uint8_t> v(file_size(fd));
  v.resize(pread_full(fd, v.data(), v.size(), 0));
  close(fd);
  return v;
}

// ---------------------------------------------------------------- counting files

int gen_counting(const char* path, uint64_t bytes) {
  bytes &= ~uint64_t{7};
  std::vector<uint64_t> words(bytes / 8);
  for (uint64_t i = 0; i < words.size(); ++i) words[i] = i * 8;
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) die(path);
  if (write(fd, words.data(), bytes) != static_cast<ssize_t>(bytes)) die("write");
  close(fd);
  return 0;
}

struct Chunk {
  uint64_t start;
  uint64_t len;
};

// One chunk returned by read() of a counting file: where it came from, or a note
// of what is wrong with its content.
bool decode_chunk(const uint8_t* p, uint64_t len, Chunk* out, std::string* why) {
  if (len % 8 != 0) {
    *why = "chunk of " + std::to_string(len) + " bytes (not a multiple of 8)";
    return false;
  }
  uint64_t first;
  memcpy(&first, p, 8);
  for (uint64_t i = 0; i < len; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    if (w != first + i) {
      *why = "chunk starting at " + std::to_string(first) + " is not contiguous at +" + std::to_string(i);
      return false;
    }
  }
  *out = Chunk{first, len};
  return true;
}

// Did the chunks read by everyone cover [0, size) exactly once?
int report_tiling(std::vector<Chunk> chunks, uint64_t size, int bad_chunks) {
  std::sort(chunks.begin(), chunks.end(), [](const Chunk& a, const Chunk& b) { return a.start < b.start; });
  uint64_t at = 0, dup_bytes = 0, gap_bytes = 0, first_problem = UINT64_MAX;
  for (const Chunk& c : chunks) {
    if (c.start > at) {
      gap_bytes += c.start - at;
      first_problem = std::min(first_problem, at);
    } else if (c.start < at) {
      dup_bytes += std::min(at, c.start + c.len) - c.start;
      first_problem = std::min(first_problem, c.start);
    }
    at = std::max(at, c.start + c.len);
  }
  if (at < size) {
    gap_bytes += size - at;
    first_problem = std::min(first_problem, at);
  }
  if (dup_bytes == 0 && gap_bytes == 0 && bad_chunks == 0) {
    printf("read() chunks tile the %" PRIu64 "-byte file exactly once\n", size);
    return 0;
  }
  printf("WRONG: %" PRIu64 " bytes read twice, %" PRIu64 " bytes never read, %d corrupt chunks; "
         "first problem at offset %" PRIu64 " (%zu chunks)\n",
         dup_bytes, gap_bytes, bad_chunks, first_problem == UINT64_MAX ? 0 : first_problem, chunks.size());
  return 1;
}

// Reads `fd` with read() until EOF, `sizes` cycling, appending decoded chunks.
// Returns the number of corrupt chunks (details on stderr).
int read_chunks(int fd, const std::vector<size_t>& sizes, std::vector<Chunk>* out) {
  std::vector<uint8_t> buf(*std::max_element(sizes.begin(), sizes.end()));
  int bad = 0;
  for (size_t i = 0;; ++i) {
    const size_t want = sizes[i % sizes.size()];
    ssize_t r = read(fd, buf.data(), want);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) die("read");
    if (r == 0) break;
    Chunk c;
    std::string why;
    if (decode_chunk(buf.data(), static_cast<uint64_t>(r), &c, &why)) {
      out->push_back(c);
    } else {
      if (bad++ < 3) fprintf(stderr, "corrupt: %s\n", why.c_str());
    }
  }
  return bad;
}

// ---------------------------------------------------------------- threads

// Fixed, uneven chunking of a file, the same in every run.
std::vector<Chunk> plan_chunks(uint64_t size) {
  static const uint64_t sizes[] = {4096, 65536, 1000, 131079, 512, 300000, 1 << 20, 77777};
  std::vector<Chunk> plan;
  for (uint64_t off = 0, i = 0; off < size; ++i) {
    const uint64_t len = std::min(sizes[i % 8], size - off);
    plan.push_back({off, len});
    off += len;
  }
  return plan;
}

// 8 threads pread disjoint chunks of one shared descriptor, three rounds with a
// different assignment each; every round must rebuild the same file.
int threads_pread(const char* path) {
  int fd = open_ro(path);
  const uint64_t size = file_size(fd);
  const std::vector<Chunk> plan = plan_chunks(size);
  std::vector<uint64_t> hashes;
  for (int round = 0; round < 3; ++round) {
    std::vector<uint8_t> buf(size);
    std::atomic<int> errors{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 8; ++t) {
      ts.emplace_back([&, t] {
        for (size_t i = 0; i < plan.size(); ++i) {
          if (static_cast<int>((i + round) % 8) != t) continue;
          if (pread_full(fd, buf.data() + plan[i].start, plan[i].len, static_cast<off_t>(plan[i].start)) !=
              plan[i].len)
            errors++;
        }
      });
    }
    for (auto& th : ts) th.join();
    if (errors) printf("round %d: %d short preads\n", round, errors.load());
    hashes.push_back(fnv(buf));
  }
  const bool same = hashes[0] == hashes[1] && hashes[1] == hashes[2];
  printf("size %" PRIu64 " hash %016" PRIx64 " rounds %s\n", size, hashes[0], same ? "agree" : "DIFFER");
  // pread never moves the offset: a read() now starts at 0.
  uint8_t head[64];
  const ssize_t r = read(fd, head, sizeof head);
  const size_t want = std::min<uint64_t>(sizeof head, size);
  const bool offset_ok = r == static_cast<ssize_t>(want) && memcmp(head, whole_file(path).data(), want) == 0;
  printf("offset after preads: %s\n", offset_ok ? "still 0" : "MOVED");
  close(fd);
  return same && offset_ok ? 0 : 1;
}

// 8 threads, each with its own descriptor and read() size, and a seek back in the
// middle; all must see the whole file.
int threads_fds(const char* path) {
  static const size_t sizes[8] = {511, 4096, 8191, 65536, 65537, 1 << 20, 3 << 20, 100000};
  uint64_t hashes[8] = {};
  std::vector<std::thread> ts;
  for (int t = 0; t < 8; ++t) {
    ts.emplace_back([&, t] {
      int fd = open_ro(path);
      const uint64_t size = file_size(fd);
      std::vector<uint8_t> all(size), buf(sizes[t]);
      size_t at = 0;
      bool seeked = false;
      for (;;) {
        ssize_t r = read(fd, buf.data(), buf.size());
        if (r < 0) die("read");
        if (r == 0) break;
        if (at + static_cast<size_t>(r) > all.size()) break;  // file grew: cannot happen here
        memcpy(all.data() + at, buf.data(), static_cast<size_t>(r));
        at += static_cast<size_t>(r);
        if (!seeked && at > size / 2) {
          // Go back 12345 bytes and read them again: they must match.
          seeked = true;
          const size_t back = std::min<size_t>(12345, at);
          if (lseek(fd, -static_cast<off_t>(back), SEEK_CUR) != static_cast<off_t>(at - back)) die("lseek");
          std::vector<uint8_t> again(back);
          if (read_full(fd, again.data(), back) != back ||
              memcmp(again.data(), all.data() + at - back, back) != 0)
            hashes[t] = 1;  // marks a mismatch
        }
      }
      if (hashes[t] != 1) hashes[t] = fnv(all.data(), at);
      close(fd);
    });
  }
  for (auto& th : ts) th.join();
  int rc = 0;
  for (int t = 1; t < 8; ++t)
    if (hashes[t] != hashes[0]) rc = 1;
  if (rc) {
    for (int t = 0; t < 8; ++t) printf("thread %d (read size %zu): %016" PRIx64 "\n", t, sizes[t], hashes[t]);
  } else {
    printf("8 threads agree: %016" PRIx64 "\n", hashes[0]);
  }
  return rc;
}

// 8 threads read() one shared descriptor (one shared offset) of a counting file.
int threads_read(const char* path) {
  static const std::vector<size_t> sizes[8] = {{4096}, {8192, 24}, {65536}, {24, 800},
                                               {1 << 20}, {40000}, {131072, 8}, {800}};
  int fd = open_ro(path);
  const uint64_t size = file_size(fd);
  std::vector<Chunk> per[8];
  int bad[8] = {};
  std::vector<std::thread> ts;
  for (int t = 0; t < 8; ++t) ts.emplace_back([&, t] { bad[t] = read_chunks(fd, sizes[t], &per[t]); });
  for (auto& th : ts) th.join();
  std::vector<Chunk> all;
  int bad_total = 0;
  for (int t = 0; t < 8; ++t) {
    all.insert(all.end(), per[t].begin(), per[t].end());
    bad_total += bad[t];
  }
  close(fd);
  return report_tiling(all, size, bad_total);
}

// ---------------------------------------------------------------- processes

int wait_child(pid_t pid) {
  int st = 0;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) die("waitpid");
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// Opens, reads a little, forks; parent and child both read() the shared
// descriptor (the kernel shares the offset between them) until EOF.
int fork_read(const char* path) {
  int fd = open_ro(path);
  const uint64_t size = file_size(fd);
  std::vector<Chunk> mine;
  int bad = 0;
  {
    std::vector<uint8_t> first(4096);
    ssize_t r = read(fd, first.data(), first.size());
    Chunk c;
    std::string why;
    if (r > 0 && decode_chunk(first.data(), static_cast<uint64_t>(r), &c, &why)) mine.push_back(c);
    else bad++;
  }
  // The child's chunk list goes back through shared memory.
  const size_t cap = size / 8 + 16;
  auto* shared = static_cast<uint64_t*>(
      mmap(nullptr, (cap * 2 + 2) * 8, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  if (shared == MAP_FAILED) die("mmap");
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    std::vector<Chunk> theirs;
    const int b = read_chunks(fd, {8192, 4096, 65536, 800}, &theirs);
    const size_t n = std::min(theirs.size(), cap);
    for (size_t i = 0; i < n; ++i) {
      shared[2 + 2 * i] = theirs[i].start;
      shared[3 + 2 * i] = theirs[i].len;
    }
    shared[0] = n;
    shared[1] = static_cast<uint64_t>(b);
    _exit(0);
  }
  bad += read_chunks(fd, {4096, 65536, 16384, 1000 * 8}, &mine);
  if (wait_child(pid) != 0) {
    printf("child failed\n");
    return 1;
  }
  for (uint64_t i = 0; i < shared[0]; ++i) mine.push_back({shared[2 + 2 * i], shared[3 + 2 * i]});
  bad += static_cast<int>(shared[1]);
  close(fd);
  return report_tiling(mine, size, bad);
}

// Parent and child pread interleaved chunks of the inherited descriptor into shared
// memory; then the parent read()s the file from offset 0 (pread moved nothing).
int fork_pread(const char* path) {
  int fd = open_ro(path);
  const uint64_t size = file_size(fd);
  const std::vector<Chunk> plan = plan_chunks(size);
  auto* buf = static_cast<uint8_t*>(mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  if (buf == MAP_FAILED) die("mmap");
  auto work = [&](size_t parity) {
    int errors = 0;
    for (size_t i = parity; i < plan.size(); i += 2)
      if (pread_full(fd, buf + plan[i].start, plan[i].len, static_cast<off_t>(plan[i].start)) != plan[i].len)
        errors++;
    return errors;
  };
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) _exit(work(1) ? 1 : 0);
  const int errors = work(0);
  const int child = wait_child(pid);
  std::vector<uint8_t> seq(size);
  const size_t got = read_full(fd, seq.data(), size);
  const bool same = got == size && memcmp(seq.data(), buf, size) == 0;
  printf("size %" PRIu64 " hash %016" PRIx64 "; parent errors %d, child exit %d; read() from offset 0 %s\n", size,
         fnv(buf, size), errors, child, same ? "matches" : "DIFFERS");
  close(fd);
  return same && errors == 0 && child == 0 ? 0 : 1;
}

// Parent reads K1 bytes, a child reads the next K2 from the shared offset and
// exits, the parent must then be at K1+K2 and read the rest.
int fork_offset(const char* path) {
  const std::vector<uint8_t> ref = whole_file(path);
  const size_t k1 = 100000, k2 = 1500000;
  if (ref.size() < k1 + k2 + 1) {
    printf("file too small\n");
    return 2;
  }
  int fd = open_ro(path);
  std::vector<uint8_t> got(ref.size());
  size_t at = read_full(fd, got.data(), k1);
  auto* mid = static_cast<uint8_t*>(mmap(nullptr, k2, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  if (mid == MAP_FAILED) die("mmap");
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) _exit(read_full(fd, mid, k2) == k2 ? 0 : 1);
  const int child = wait_child(pid);
  const off_t pos = lseek(fd, 0, SEEK_CUR);
  memcpy(got.data() + at, mid, k2);
  at += k2;
  at += read_full(fd, got.data() + at, got.size() - at);
  const bool same = at == ref.size() && got == ref;
  printf("child exit %d; parent offset after child: %lld (expect %zu); reassembled file %s\n", child,
         static_cast<long long>(pos), k1 + k2, same ? "matches" : "DIFFERS");
  close(fd);
  return child == 0 && pos == static_cast<off_t>(k1 + k2) && same ? 0 : 1;
}

// Parent reads K1 bytes, then a child program exec'd with the descriptor reads K2
// (its stdout comes back through a pipe); the parent checks the offset and reads on.
int exec_offset(const char* self, const char* path, const char* how) {
  const std::vector<uint8_t> ref = whole_file(path);
  const size_t k1 = 70000, k2 = 1 << 20;  // k2 a multiple of dd's bs=4096
  int fd = open_ro(path);
  std::vector<uint8_t> got(ref.size());
  size_t at = read_full(fd, got.data(), k1);
  int p[2];
  if (pipe(p) != 0) die("pipe");
  const std::string fds = std::to_string(fd), k2s = std::to_string(k2);
  const std::string head = "head -c " + k2s + " <&" + fds;
  const std::string count = "count=" + std::to_string(k2 / 4096);
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    dup2(p[1], 1);
    close(p[0]);
    close(p[1]);
    if (strcmp(how, "helper") == 0) {
      execl(self, self, "exec_reader", fds.c_str(), k2s.c_str(), static_cast<char*>(nullptr));
    } else if (strcmp(how, "bash_head") == 0) {
      execl("/bin/bash", "bash", "-c", head.c_str(), static_cast<char*>(nullptr));
    } else if (strcmp(how, "dd") == 0) {
      dup2(fd, 0);
      execl("/bin/dd", "dd", "bs=4096", count.c_str(), "status=none", static_cast<char*>(nullptr));
    }
    _exit(127);
  }
  close(p[1]);
  std::vector<uint8_t> mid(k2 + 1);
  const size_t from_child = read_full(p[0], mid.data(), mid.size());
  close(p[0]);
  const int child = wait_child(pid);
  const off_t pos = lseek(fd, 0, SEEK_CUR);
  memcpy(got.data() + at, mid.data(), std::min(from_child, got.size() - at));
  at += std::min(from_child, got.size() - at);
  at += read_full(fd, got.data() + at, got.size() - at);
  const bool same = at == ref.size() && got == ref;
  printf("%s: child exit %d, child read %zu bytes; parent offset after child: %lld (expect %zu); reassembled file %s\n",
         how, child, from_child, static_cast<long long>(pos), k1 + k2, same ? "matches" : "DIFFERS");
  close(fd);
  return child == 0 && from_child == k2 && pos == static_cast<off_t>(k1 + k2) && same ? 0 : 1;
}

int exec_reader(const char* fdstr, const char* nstr) {
  const int fd = atoi(fdstr);
  std::vector<uint8_t> buf(strtoull(nstr, nullptr, 10));
  const size_t got = read_full(fd, buf.data(), buf.size());
  if (write(1, buf.data(), got) != static_cast<ssize_t>(got)) return 1;
  return got == buf.size() ? 0 : 1;
}

// ---------------------------------------------------------------- exec/spawn environments

// posix_spawn(p) of md5sum with an empty environment: the output is compared with
// the native run; the compat script checks the child read through the cache.
int spawn_md5(const char* path) {
  char* const argv[] = {const_cast<char*>("md5sum"), const_cast<char*>(path), nullptr};
  char* const empty[] = {nullptr};
  int rc = 0;
  for (int variant = 0; variant < 2; ++variant) {
    pid_t pid;
    const int e = variant == 0 ? posix_spawn(&pid, "/usr/bin/md5sum", nullptr, nullptr, argv, empty)
                               : posix_spawnp(&pid, "md5sum", nullptr, nullptr, argv, empty);
    if (e != 0) {
      printf("%s failed: %s\n", variant ? "posix_spawnp" : "posix_spawn", strerror(e));
      rc = 1;
      continue;
    }
    fflush(stdout);
    if (wait_child(pid) != 0) rc = 1;
  }
  return rc;
}

// Runs /usr/bin/env with a custom environment by each exec/spawn path and prints
// what the child saw, one line per path: "path: VAR=... | VAR=...".
int env_probe() {
  char* const empty[] = {nullptr};
  char* const custom[] = {const_cast<char*>("FOO=bar"), const_cast<char*>("LD_PRELOAD="), nullptr};
  char* const argv[] = {const_cast<char*>("env"), nullptr};
  static const char* const kinds[] = {"posix_spawn", "posix_spawnp", "execve", "execvpe", "fexecve"};
  for (int with_custom = 0; with_custom < 2; ++with_custom) {
    char* const* envp = with_custom ? custom : empty;
    for (const char* kind : kinds) {
      int p[2];
      if (pipe(p) != 0) die("pipe");
      pid_t pid = -1;
      if (strncmp(kind, "posix_spawn", 11) == 0) {
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, p[1], 1);
        posix_spawn_file_actions_addclose(&fa, p[0]);
        const int e = strcmp(kind, "posix_spawn") == 0 ? posix_spawn(&pid, "/usr/bin/env", &fa, nullptr, argv, envp)
                                                        : posix_spawnp(&pid, "env", &fa, nullptr, argv, envp);
        posix_spawn_file_actions_destroy(&fa);
        if (e != 0) pid = -1;
      } else {
        const int exe = strcmp(kind, "fexecve") == 0 ? open("/usr/bin/env", O_RDONLY | O_CLOEXEC) : -1;
        pid = fork();
        if (pid == 0) {
          dup2(p[1], 1);
          close(p[0]);
          close(p[1]);
          if (strcmp(kind, "execve") == 0) execve("/usr/bin/env", argv, envp);
          else if (strcmp(kind, "execvpe") == 0) execvpe("env", argv, envp);
          else fexecve(exe, argv, envp);
          _exit(127);
        }
        if (exe >= 0) close(exe);
      }
      close(p[1]);
      std::string out;
      char buf[4096];
      for (ssize_t r; (r = read(p[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(r));
      close(p[0]);
      const int rc = pid > 0 ? wait_child(pid) : -1;
      std::vector<std::string> lines;
      for (size_t s = 0, e; s < out.size(); s = e + 1) {
        e = out.find('\n', s);
        if (e == std::string::npos) e = out.size();
        if (e > s) lines.push_back(out.substr(s, e - s));
      }
      std::sort(lines.begin(), lines.end());
      printf("%s%s (exit %d):", kind, with_custom ? "+custom" : "+empty", rc);
      for (size_t i = 0; i < lines.size(); ++i) printf("%s%s", i ? " | " : " ", lines[i].c_str());
      printf("\n");
    }
  }
  return 0;
}

// ---------------------------------------------------------------- stale descriptor numbers

const char kMsg[] = "bytes written into the new descriptor, not the dataset file";

struct Stale {
  const char* path;
  std::vector<uint8_t> ref;
  int failures = 0;

  // Opens the dataset file and reads from it, so (under the shim) the number is
  // tracked and the file's first block is cached.
  int open_tracked() {
    int fd = open_ro(path);
    uint8_t buf[8192];
    if (read(fd, buf, sizeof buf) != static_cast<ssize_t>(sizeof buf) || memcmp(buf, ref.data(), sizeof buf) != 0) {
      printf("setup: first read of the dataset file is wrong\n");
      failures++;
    }
    return fd;
  }

  void result(const char* name, bool ok, const std::string& detail) {
    printf("%s: %s%s%s\n", name, ok ? "ok" : "WRONG", detail.empty() ? "" : ": ", detail.c_str());
    if (!ok) failures++;
  }

  // Checks `newfd`, which reused number `oldfd`, reads what was written into it.
  // `pos_read`: the new descriptor supports pread (a file) or must fail ESPIPE.
  void check_reused(const char* name, int oldfd, int newfd, int write_end, bool pos_read) {
    if (newfd != oldfd) {
      printf("%s: setup: the number was not reused (%d, %d)\n", name, oldfd, newfd);
      return;
    }
    std::string detail;
    bool ok = true;
    if (write_end >= 0) {
      if (write(write_end, kMsg, sizeof kMsg) != static_cast<ssize_t>(sizeof kMsg)) die("write");
    } else {
      if (write(newfd, kMsg, sizeof kMsg) != static_cast<ssize_t>(sizeof kMsg)) die("write");
    }
    if (pos_read) {
      char pb[sizeof kMsg] = {};
      ssize_t r = pread(newfd, pb, sizeof pb, 0);
      if (r != static_cast<ssize_t>(sizeof kMsg) || memcmp(pb, kMsg, sizeof kMsg) != 0) {
        ok = false;
        detail += "pread returned " + std::to_string(r) + (r > 0 && memcmp(pb, ref.data(), 8) == 0 ? " dataset bytes" : "") + "; ";
      }
      lseek(newfd, 0, SEEK_SET);
    } else {
      char pb[16];
      errno = 0;
      ssize_t r = pread(newfd, pb, sizeof pb, 0);
      if (!(r == -1 && errno == ESPIPE)) {
        ok = false;
        detail += "pread returned " + std::to_string(r) + " (expected ESPIPE); ";
      }
    }
    char buf[256] = {};
    ssize_t r = read(newfd, buf, sizeof buf);
    if (r != static_cast<ssize_t>(sizeof kMsg) || memcmp(buf, kMsg, sizeof kMsg) != 0) {
      ok = false;
      detail += "read returned " + std::to_string(r) + (r > 0 && memcmp(buf, ref.data(), 8) == 0 ? " dataset bytes" : " other bytes");
    }
    result(name, ok, detail);
  }

  static int raw_memfd() { return static_cast<int>(syscall(SYS_memfd_create, "dc-compat", 0)); }
  static int raw_pipe(int p[2]) { return static_cast<int>(syscall(SYS_pipe2, p, 0)); }

  void run() {
    int p[2];
    // Closed unseen (raw system call); the new descriptor comes from an interposed call.
    {
      int fd = open_tracked();
      syscall(SYS_close, fd);
      if (pipe(p) != 0) die("pipe");
      check_reused("raw close, then pipe()", fd, p[0], p[1], false);
      close(p[0]);
      close(p[1]);
    }
    {
      int fd = open_tracked();
      syscall(SYS_close, fd);
      if (socketpair(AF_UNIX, SOCK_STREAM, 0, p) != 0) die("socketpair");
      check_reused("raw close, then socketpair()", fd, p[0], p[1], false);
      close(p[0]);
      close(p[1]);
    }
    {
      int fd = open_tracked();
      syscall(SYS_close, fd);
      int efd = eventfd(5, 0);
      uint64_t v = 0;
      const bool ok = efd == fd && read(efd, &v, 8) == 8 && v == 5;
      if (efd != fd) printf("raw close, then eventfd(): setup: the number was not reused\n");
      else result("raw close, then eventfd()", ok, ok ? "" : "counter read " + std::to_string(v));
      close(efd);
    }
    {
      int fd = open_tracked();
      syscall(SYS_close, fd);
      int mfd = memfd_create("dc-compat", 0);
      check_reused("raw close, then memfd_create()", fd, mfd, -1, true);
      close(mfd);
    }
    {
      // The new number arrives in an SCM_RIGHTS message (a file: pread would be served).
      int fd = open_tracked();
      int sv[2];
      if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) die("socketpair");
      const int mfd = static_cast<int>(syscall(SYS_memfd_create, "dc-compat", 0));
      if (mfd < 0) die("memfd");
      syscall(SYS_close, fd);  // the received descriptor takes this number
      char byte = 'x';
      iovec iov{&byte, 1};
      alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))] = {};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = ctl;
      msg.msg_controllen = sizeof ctl;
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      memcpy(CMSG_DATA(c), &mfd, sizeof mfd);
      if (sendmsg(sv[0], &msg, 0) != 1) die("sendmsg");
      syscall(SYS_close, mfd);
      alignas(cmsghdr) char ctl_in[CMSG_SPACE(sizeof(int))] = {};
      msghdr in{};
      in.msg_iov = &iov;
      in.msg_iovlen = 1;
      in.msg_control = ctl_in;
      in.msg_controllen = sizeof ctl_in;
      if (recvmsg(sv[1], &in, 0) != 1 || !CMSG_FIRSTHDR(&in)) die("recvmsg");
      int got;
      memcpy(&got, CMSG_DATA(CMSG_FIRSTHDR(&in)), sizeof got);
      check_reused("raw close, then recvmsg(SCM_RIGHTS)", fd, got, -1, true);
      close(got);
      close(sv[0]);
      close(sv[1]);
    }
    // Both unseen, a non-seekable new descriptor: documented as safe for read().
    {
      int fd = open_tracked();
      syscall(SYS_close, fd);
      if (raw_pipe(p) != 0) die("pipe2");
      if (p[0] != fd) {
        printf("raw close, then raw pipe2, read(): setup: the number was not reused\n");
      } else {
        if (write(p[1], kMsg, sizeof kMsg) != static_cast<ssize_t>(sizeof kMsg)) die("write");
        char buf[256] = {};
        ssize_t r = read(p[0], buf, sizeof buf);
        result("raw close, then raw pipe2, read()", r == sizeof kMsg && memcmp(buf, kMsg, sizeof kMsg) == 0,
               "read returned " + std::to_string(r));
      }
      syscall(SYS_close, p[0]);
      syscall(SYS_close, p[1]);
    }
    // Closed by an interposed call; the new descriptor is created unseen, so only
    // the closing wrapper can have cleared the number.
    {
      int fd = open_tracked();
      if (close_range(static_cast<unsigned>(fd), static_cast<unsigned>(fd), 0) != 0) die("close_range");
      if (pipe(p) != 0) die("pipe");
      check_reused("close_range, then pipe()", fd, p[0], p[1], false);
      close(p[0]);
      close(p[1]);
    }
    {
      int fd = open_tracked();
      if (close_range(static_cast<unsigned>(fd), static_cast<unsigned>(fd), 0) != 0) die("close_range");
      check_reused("close_range, then raw memfd", fd, raw_memfd(), -1, true);
      syscall(SYS_close, fd);
    }
    {
      int fd = open_tracked();
      closefrom(fd);
      check_reused("closefrom, then raw memfd", fd, raw_memfd(), -1, true);
      syscall(SYS_close, fd);
    }
    {
      int fd = open_tracked();
      FILE* f = fdopen(fd, "r");
      if (!f) die("fdopen");
      char buf[100];
      if (fread(buf, 1, sizeof buf, f) != sizeof buf || memcmp(buf, ref.data() + 8192, sizeof buf) != 0)
        result("fdopen stream read", false, "fread after read() is not at offset 8192");
      fclose(f);
      if (pipe(p) != 0) die("pipe");
      check_reused("fclose(fdopen()), then pipe()", fd, p[0], p[1], false);
      close(p[0]);
      close(p[1]);
    }
    {
      int fd = open_tracked();
      FILE* f = fdopen(fd, "r");
      if (!f) die("fdopen");
      fclose(f);
      check_reused("fclose(fdopen()), then raw memfd", fd, raw_memfd(), -1, true);
      syscall(SYS_close, fd);
    }
    {
      FILE* f = fopen(path, "r");
      if (!f) die("fopen");
      const int fd = fileno(f);
      char buf[100];
      if (fread(buf, 1, sizeof buf, f) != sizeof buf || memcmp(buf, ref.data(), sizeof buf) != 0)
        result("fopen stream read", false, "first 100 bytes differ");
      fclose(f);
      check_reused("fclose(fopen()), then raw memfd", fd, raw_memfd(), -1, true);
      syscall(SYS_close, fd);
    }
    {
      int fd = open_tracked();
      if (raw_pipe(p) != 0) die("pipe2");
      if (dup2(p[0], fd) != fd) die("dup2");
      syscall(SYS_close, p[0]);
      p[0] = fd;
      if (write(p[1], kMsg, sizeof kMsg) != static_cast<ssize_t>(sizeof kMsg)) die("write");
      char buf[256] = {};
      ssize_t r = read(fd, buf, sizeof buf);
      result("dup2 of a raw pipe over it", r == sizeof kMsg && memcmp(buf, kMsg, sizeof kMsg) == 0,
             "read returned " + std::to_string(r));
      close(fd);
      syscall(SYS_close, p[1]);
    }
  }
};

int stale(const char* path) {
  Stale s;
  s.path = path;
  s.ref = whole_file(path);
  if (s.ref.size() < 65536) {
    printf("file too small\n");
    return 2;
  }
  s.run();
  return s.failures ? 1 : 0;
}

// ---------------------------------------------------------------- closing every descriptor

// A daemon-style program: reads a dataset file, closes every descriptor from 3 up
// (closefrom), opens its own files on the freed numbers, then writes and reads a
// dataset file (which needs the agent). Its own descriptors must be untouched.
int closefrom_conn(const char* cached, const char* dir) {
  {
    std::vector<uint8_t> warm = whole_file(cached);
    printf("first read %zu bytes\n", warm.size());
  }
  closefrom(3);
  std::vector<int> mine;
  for (int i = 0; i < 16; ++i) {
    int m = memfd_create("app", 0);
    if (m < 0) die("memfd_create");
    const std::string text = "application file " + std::to_string(i);
    if (write(m, text.data(), text.size()) != static_cast<ssize_t>(text.size())) die("write");
    mine.push_back(m);
  }
  // A new dataset file: its writer invalidates and its reader fetches, both through
  // the agent connection.
  const std::string path = std::string(dir) + "/closefrom-" + std::to_string(getpid()) + ".bin";
  std::vector<uint8_t> content(3 << 20);
  for (size_t i = 0; i < content.size(); ++i) content[i] = static_cast<uint8_t>((i * 2654435761u) >> 13);
  int w = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (w < 0) die("create");
  if (write(w, content.data(), content.size()) != static_cast<ssize_t>(content.size())) die("write");
  close(w);
  const bool same = whole_file(path.c_str()) == content;
  unlink(path.c_str());
  printf("new dataset file read back %s\n", same ? "correctly" : "WRONG");
  int intact = 0;
  for (size_t i = 0; i < mine.size(); ++i) {
    const std::string text = "application file " + std::to_string(i);
    char buf[64] = {};
    const bool open_ok = fcntl(mine[i], F_GETFD) >= 0;
    const ssize_t r = open_ok ? pread(mine[i], buf, sizeof buf, 0) : -1;
    if (open_ok && r == static_cast<ssize_t>(text.size()) && memcmp(buf, text.data(), text.size()) == 0) {
      intact++;
    } else {
      struct stat st {};
      std::string what = "was closed behind its back";
      if (open_ok && fstat(mine[i], &st) == 0)
        what = S_ISSOCK(st.st_mode) ? "is now a socket (not the memfd it opened)"
                                    : "holds other bytes (pread returned " + std::to_string(r) + ")";
      printf("WRONG: application descriptor %d %s\n", mine[i], what.c_str());
    }
  }
  printf("application descriptors intact: %d of %zu\n", intact, mine.size());
  return same && intact == static_cast<int>(mine.size()) ? 0 : 1;
}

// ---------------------------------------------------------------- stdio

// The stdio calls programs mix on a read-only stream of a dataset file.
int stdio_mode(const char* bin, const char* text) {
  const std::vector<uint8_t> ref = whole_file(bin);
  int rc = 0;
  auto check = [&](const char* what, bool ok) {
    printf("%s: %s\n", what, ok ? "ok" : "WRONG");
    if (!ok) rc = 1;
  };
  for (const char* mode : {"r", "rb", "re", "rbm"}) {
    FILE* f = fopen(bin, mode);
    if (!f) die("fopen");
    std::vector<uint8_t> got(ref.size() + 10);
    const size_t n = fread(got.data(), 1, got.size(), f);
    got.resize(n);
    printf("fopen \"%s\": fread %zu bytes %016" PRIx64 ", feof %d ferror %d\n", mode, n, fnv(got), feof(f) != 0,
           ferror(f) != 0);
    if (got != ref) rc = 1;
    fclose(f);
  }
  FILE* f = fopen(bin, "r");
  if (!f) die("fopen");
  char buf[70000];
  check("fread 1000", fread(buf, 1, 1000, f) == 1000 && memcmp(buf, ref.data(), 1000) == 0);
  check("fseek 12345 + fgetc", fseek(f, 12345, SEEK_SET) == 0 && fgetc(f) == ref[12345]);
  check("ungetc + fread", ungetc('Z', f) == 'Z' && fread(buf, 1, 5000, f) == 5000 && buf[0] == 'Z' &&
                              memcmp(buf + 1, ref.data() + 12346, 4999) == 0);
  check("ftell", ftell(f) == 12346 + 4999);
  check("fseek SEEK_CUR back + fgetc", fseek(f, -5000, SEEK_CUR) == 0 && ftell(f) == 12345 && fgetc(f) == ref[12345]);
  check("fseek SEEK_END + fread to EOF", fseek(f, -100, SEEK_END) == 0 && fread(buf, 1, sizeof buf, f) == 100 &&
                                             memcmp(buf, ref.data() + ref.size() - 100, 100) == 0 && feof(f));
  rewind(f);
  check("rewind + fread", fread(buf, 1, 64, f) == 64 && memcmp(buf, ref.data(), 64) == 0 && !feof(f));
  struct stat st;
  check("fileno + fstat", fstat(fileno(f), &st) == 0 && static_cast<size_t>(st.st_size) == ref.size());
  fpos_t pos;
  check("fgetpos/fsetpos", fgetpos(f, &pos) == 0 && fread(buf, 1, 10, f) == 10 && fsetpos(f, &pos) == 0 &&
                                fread(buf + 10, 1, 10, f) == 10 && memcmp(buf, buf + 10, 10) == 0);
  fclose(f);
  // Unbuffered, and a user buffer.
  for (int mode : {_IONBF, _IOFBF}) {
    FILE* g = fopen(bin, "r");
    static char user[3000];
    setvbuf(g, mode == _IOFBF ? user : nullptr, mode, sizeof user);
    std::vector<uint8_t> got;
    for (int c; (c = getc(g)) != EOF && got.size() < 200000;) got.push_back(static_cast<uint8_t>(c));
    check(mode == _IONBF ? "setvbuf _IONBF + getc" : "setvbuf user buffer + getc",
          memcmp(got.data(), ref.data(), got.size()) == 0 && got.size() == 200000);
    fclose(g);
  }
  // getline over a text file, and fdopen of a descriptor read() has moved.
  {
    FILE* t = fopen(text, "r");
    char* line = nullptr;
    size_t cap = 0;
    uint64_t h = 1469598103934665603ULL;
    long lines = 0;
    for (ssize_t n; (n = getline(&line, &cap, t)) > 0; ++lines) h = fnv(reinterpret_cast<uint8_t*>(line), static_cast<size_t>(n), h);
    free(line);
    printf("getline: %ld lines, %016" PRIx64 "\n", lines, h);
    fclose(t);
  }
  {
    int fd = open(bin, O_RDONLY);
    if (read(fd, buf, 777) != 777) die("read");
    FILE* d = fdopen(dup(fd), "r");
    check("fdopen(dup) continues at the shared offset", fread(buf, 1, 100, d) == 100 && memcmp(buf, ref.data() + 777, 100) == 0);
    fclose(d);
    check("fd still open after fclose of the dup's stream", fcntl(fd, F_GETFD) >= 0 && read(fd, buf, 1) >= 0);
    close(fd);
  }
  return rc;
}

// fopen of a dataset file, then freopen of that stream onto another dataset file.
int freopen_mode(const char* path, const char* other) {
  const std::vector<uint8_t> ref2 = whole_file(other);
  FILE* f = fopen(path, "r");
  if (!f) die("fopen");
  char buf[100];
  if (fread(buf, 1, sizeof buf, f) != sizeof buf) die("fread");
  FILE* g = freopen(other, "r", f);
  if (!g) die("freopen");
  std::vector<uint8_t> got(ref2.size() + 1);
  const size_t n = fread(got.data(), 1, got.size(), g);
  got.resize(n);
  printf("freopen onto the other file: read %zu bytes, %s\n", n, got == ref2 ? "matches" : "WRONG");
  fclose(g);
  return got == ref2 ? 0 : 1;
}

// ---------------------------------------------------------------- mmap

// read() part of the file, mmap it (whole, and a window at an offset), check the
// mapping, then read() on: the offset must be where the first reads left it.
int mmap_mode(const char* path) {
  const std::vector<uint8_t> ref = whole_file(path);
  const size_t size = ref.size();
  int fd = open_ro(path);
  std::vector<uint8_t> got(size);
  size_t at = read_full(fd, got.data(), 100003);
  auto* m = static_cast<const uint8_t*>(mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0));
  if (m == MAP_FAILED) die("mmap");
  const bool whole_ok = memcmp(m, ref.data(), size) == 0;
  const size_t woff = 1 << 20, wlen = std::min<size_t>(size - woff, 300000);
  auto* w = static_cast<const uint8_t*>(mmap(nullptr, wlen, PROT_READ, MAP_PRIVATE, fd, static_cast<off_t>(woff)));
  if (w == MAP_FAILED) die("mmap window");
  const bool window_ok = memcmp(w, ref.data() + woff, wlen) == 0;
  const off_t pos = lseek(fd, 0, SEEK_CUR);
  at += read_full(fd, got.data() + at, size - at);
  const bool reads_ok = at == size && got == ref;
  printf("mmap whole file %s (hash %016" PRIx64 "); window at %zu %s; offset after mmap %lld (expect 100003); "
         "read() continued %s\n",
         whole_ok ? "matches" : "DIFFERS", fnv(m, size), woff, window_ok ? "matches" : "DIFFERS",
         static_cast<long long>(pos), reads_ok ? "correctly" : "WRONG");
  munmap(const_cast<uint8_t*>(m), size);
  munmap(const_cast<uint8_t*>(w), wlen);
  close(fd);
  return whole_ok && window_ok && pos == 100003 && reads_ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, nullptr, _IOLBF, 0);
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "gen_counting" && argc == 4) return gen_counting(argv[2], strtoull(argv[3], nullptr, 10));
  if (mode == "threads_pread" && argc == 3) return threads_pread(argv[2]);
  if (mode == "threads_fds" && argc == 3) return threads_fds(argv[2]);
  if (mode == "threads_read" && argc == 3) return threads_read(argv[2]);
  if (mode == "fork_read" && argc == 3) return fork_read(argv[2]);
  if (mode == "fork_pread" && argc == 3) return fork_pread(argv[2]);
  if (mode == "fork_offset" && argc == 3) return fork_offset(argv[2]);
  if (mode == "exec_offset" && argc == 4) return exec_offset("/proc/self/exe", argv[2], argv[3]);
  if (mode == "exec_reader" && argc == 4) return exec_reader(argv[2], argv[3]);
  if (mode == "spawn_md5" && argc == 3) return spawn_md5(argv[2]);
  if (mode == "env_probe" && argc == 2) return env_probe();
  if (mode == "stale" && argc == 3) return stale(argv[2]);
  if (mode == "closefrom_conn" && argc == 4) return closefrom_conn(argv[2], argv[3]);
  if (mode == "stdio" && argc == 4) return stdio_mode(argv[2], argv[3]);
  if (mode == "freopen" && argc == 4) return freopen_mode(argv[2], argv[3]);
  if (mode == "mmap" && argc == 3) return mmap_mode(argv[2]);
  fprintf(stderr, "usage: dcfdshare MODE ARGS (see the source)\n");
  return 2;
}
