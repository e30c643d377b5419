// Differential soak worker: random reads through every path the shim intercepts,
// each byte compared with what the kernel would return without dc.
//
// The expected bytes need no second read of the origin: every file version holds
// content_byte(inode, size, offset), written by `soak_worker gen|replace`. A
// descriptor keeps the inode it opened (fstat says which) even after the path is
// replaced, so it is compared against that version, as the kernel would serve it.
// The model tracks one offset per open file description (dup'd, inherited and
// exec'd descriptors share it, as in the kernel).
//
//   soak_worker gen DIR COUNT MAX_SIZE SEED        create DIR/fNNN
//   soak_worker replace DIR COUNT SEED N SAME      replace N random files by rename
//                                                  (SAME=1: keep size and mtime)
//   soak_worker run DIR COUNT OPS SEED             run OPS random ops, print a summary
//
// Only libc: it runs under the shim like any program. Exit 0 only with 0
// mismatches and 0 errors.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
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

uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// The bytes of version (ino, size) at [off, off + n).
void content(uint64_t ino, uint64_t size, uint64_t off, size_t n, uint8_t* out) {
  const uint64_t seed = mix(ino * 0x100000001b3ULL ^ size);
  uint64_t word_no = UINT64_MAX, word = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint64_t o = off + i;
    if (o / 8 != word_no) {
      word_no = o / 8;
      word = mix(seed ^ word_no);
    }
    out[i] = static_cast<uint8_t>(word >> (8 * (o % 8)));
  }
}

struct Rng {
  uint64_t s;
  uint64_t next() { return s = mix(s); }
  uint64_t below(uint64_t n) { return n ? next() % n : 0; }
  bool one_in(uint64_t n) { return below(n) == 0; }
};

std::string file_path(const std::string& dir, uint64_t i) {
  char name[32];
  snprintf(name, sizeof name, "/f%03" PRIu64, i);
  return dir + name;
}

// Writes a new version at `path` (via a temp file + rename unless creating).
int write_version(const std::string& dir, const std::string& path, uint64_t size,
                  const timespec* mtime) {
  const std::string tmp = dir + "/.soak-tmp-" + std::to_string(getpid());
  int fd = open(tmp.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  struct stat st;
  if (fstat(fd, &st) != 0) return -1;
  std::vector<uint8_t> buf(1 << 20);
  for (uint64_t off = 0; off < size;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - off));
    content(st.st_ino, size, off, n, buf.data());
    if (pwrite(fd, buf.data(), n, static_cast<off_t>(off)) != static_cast<ssize_t>(n)) return -1;
    off += n;
  }
  if (mtime) {
    const timespec times[2] = {*mtime, *mtime};
    if (futimens(fd, times) != 0) return -1;
  }
  close(fd);
  return rename(tmp.c_str(), path.c_str());
}

struct Desc {
  uint64_t ino = 0, size = 0, off = 0;
  int refs = 0;
};

struct Stats {
  uint64_t ops = 0, bytes = 0, mismatches = 0, errors = 0;
};

class Worker {
 public:
  Worker(std::string dir, uint64_t count, uint64_t seed)
      : dir_(std::move(dir)), count_(count), rng_{seed} {}

  void run(uint64_t ops, bool allow_children);
  // Descriptors inherited over exec arrive as "fd:desc:ino:size:off" arguments;
  // fds with the same desc number share one description.
  void adopt(int fd, uint64_t ino, uint64_t size, uint64_t off);
  void adopt_shared(int fd, uint64_t desc, uint64_t ino, uint64_t size, uint64_t off);
  Stats stats;

 private:
  struct Fd {
    int fd;
    size_t desc;
  };
  void mismatch(const char* op, const Fd& f, uint64_t off, size_t want, ssize_t got,
                const uint8_t* buf);
  void error(const char* op, int err);
  bool check(const char* op, const Fd& f, uint64_t off, size_t len, ssize_t got,
             const uint8_t* buf);
  void do_open();
  void do_close(size_t i);
  void do_dup(size_t i);
  void do_pread(const Fd& f);
  void do_read(const Fd& f);
  void do_readv(const Fd& f);
  void do_lseek(const Fd& f);
  void do_fork(uint64_t ops);
  void do_exec(uint64_t ops);
  size_t read_len();

  std::string dir_;
  uint64_t count_;
  Rng rng_;
  std::vector<Desc> descs_;
  std::vector<Fd> fds_;
  std::vector<uint8_t> buf_, want_;
  std::vector<uint64_t> inherited_;  // exec child: the parent's desc number of descs_[i]
};

void Worker::error(const char* op, int err) {
  if (stats.errors++ < 10)
    fprintf(stderr, "soak[%d]: %s failed: %s\n", getpid(), op, strerror(err));
}

void Worker::mismatch(const char* op, const Fd& f, uint64_t off, size_t want, ssize_t got,
                      const uint8_t* buf) {
  const Desc& d = descs_[f.desc];
  size_t at = 0;
  if (got > 0) {
    content(d.ino, d.size, off, static_cast<size_t>(got), want_.data());
    while (at < static_cast<size_t>(got) && buf[at] == want_[at]) ++at;
  }
  if (stats.mismatches++ < 10)
    fprintf(stderr,
            "soak[%d]: MISMATCH %s fd %d ino %" PRIu64 " size %" PRIu64 " off %" PRIu64
            ": want %zu bytes, got %zd, first wrong byte at +%zu\n",
            getpid(), op, f.fd, d.ino, d.size, off, want, got, at);
}

// A read of `len` at `off` returned `got` bytes in buf: the kernel would have
// returned min(len, size - off) bytes of the version this description holds.
bool Worker::check(const char* op, const Fd& f, uint64_t off, size_t len, ssize_t got,
                   const uint8_t* buf) {
  if (got < 0) {
    error(op, errno);
    return false;
  }
  const Desc& d = descs_[f.desc];
  const size_t want =
      off >= d.size ? 0 : static_cast<size_t>(std::min<uint64_t>(len, d.size - off));
  stats.bytes += static_cast<uint64_t>(got);
  if (static_cast<size_t>(got) != want) {
    mismatch(op, f, off, want, got, buf);
    return false;
  }
  content(d.ino, d.size, off, want, want_.data());
  if (memcmp(buf, want_.data(), want) != 0) {
    mismatch(op, f, off, want, got, buf);
    return false;
  }
  return true;
}

size_t Worker::read_len() {
  // Mostly small, sometimes whole blocks and more (a read spanning many blocks).
  switch (rng_.below(8)) {
    case 0:
      return 1 + rng_.below(16);
    case 1:
      return 1 + rng_.below(600 * 1024);
    default:
      return 1 + rng_.below(24 * 1024);
  }
}

void Worker::adopt(int fd, uint64_t ino, uint64_t size, uint64_t off) {
  descs_.push_back(Desc{ino, size, off, 1});
  fds_.push_back(Fd{fd, descs_.size() - 1});
}

void Worker::adopt_shared(int fd, uint64_t desc, uint64_t ino, uint64_t size, uint64_t off) {
  for (size_t i = 0; i < inherited_.size(); ++i) {
    if (inherited_[i] != desc) continue;
    descs_[i].refs++;
    fds_.push_back(Fd{fd, i});
    return;
  }
  adopt(fd, ino, size, off);
  inherited_.resize(descs_.size(), UINT64_MAX);
  inherited_.back() = desc;
}

void Worker::do_open() {
  const std::string p = file_path(dir_, rng_.below(count_));
  // O_CLOEXEC descriptors keep their offset in the shim; others in the kernel.
  const int flags = O_RDONLY | (rng_.one_in(2) ? O_CLOEXEC : 0);
  const int fd = open(p.c_str(), flags);
  if (fd < 0) return error("open", errno);
  struct stat st;
  if (fstat(fd, &st) != 0) return error("fstat", errno);
  adopt(fd, st.st_ino, static_cast<uint64_t>(st.st_size), 0);
}

void Worker::do_close(size_t i) {
  if (close(fds_[i].fd) != 0) error("close", errno);
  descs_[fds_[i].desc].refs--;
  fds_.erase(fds_.begin() + static_cast<long>(i));
}

void Worker::do_dup(size_t i) {
  const int fd = rng_.one_in(2) ? dup(fds_[i].fd) : fcntl(fds_[i].fd, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return error("dup", errno);
  descs_[fds_[i].desc].refs++;
  fds_.push_back(Fd{fd, fds_[i].desc});
}

void Worker::do_pread(const Fd& f) {
  const Desc& d = descs_[f.desc];
  const uint64_t off = rng_.below(d.size + d.size / 8 + 2);
  const size_t len = read_len();
  const ssize_t n = pread(f.fd, buf_.data(), len, static_cast<off_t>(off));
  check("pread", f, off, len, n, buf_.data());
}

void Worker::do_read(const Fd& f) {
  Desc& d = descs_[f.desc];
  const size_t len = read_len();
  const ssize_t n = read(f.fd, buf_.data(), len);
  const uint64_t off = d.off;
  if (n > 0) d.off += static_cast<uint64_t>(n);
  check("read", f, off, len, n, buf_.data());
}

void Worker::do_readv(const Fd& f) {
  Desc& d = descs_[f.desc];
  iovec iov[4];
  const int cnt = 1 + static_cast<int>(rng_.below(4));
  size_t total = 0;
  for (int i = 0; i < cnt; ++i) {
    const size_t l = read_len() / 4 + (rng_.one_in(5) ? 0 : 1);  // an empty iovec now and then
    iov[i] = iovec{buf_.data() + total, l};
    total += l;
  }
  const bool positional = rng_.one_in(2);
  const uint64_t off = positional ? rng_.below(d.size + 2) : d.off;
  const ssize_t n =
      positional ? preadv(f.fd, iov, cnt, static_cast<off_t>(off)) : readv(f.fd, iov, cnt);
  if (!positional && n > 0) d.off += static_cast<uint64_t>(n);
  check(positional ? "preadv" : "readv", f, off, total, n, buf_.data());
}

void Worker::do_lseek(const Fd& f) {
  Desc& d = descs_[f.desc];
  int whence;
  int64_t arg;
  uint64_t want;
  switch (rng_.below(3)) {
    case 0:
      whence = SEEK_SET;
      want = rng_.below(d.size + 2);
      arg = static_cast<int64_t>(want);
      break;
    case 1:
      whence = SEEK_CUR;
      arg = static_cast<int64_t>(rng_.below(2 * 65536 + 1)) - 65536;
      if (static_cast<int64_t>(d.off) + arg < 0) arg = -static_cast<int64_t>(d.off);
      want = static_cast<uint64_t>(static_cast<int64_t>(d.off) + arg);
      break;
    default:
      whence = SEEK_END;
      arg = -static_cast<int64_t>(rng_.below(d.size + 1));
      want = static_cast<uint64_t>(static_cast<int64_t>(d.size) + arg);
      break;
  }
  const off_t got = lseek(f.fd, arg, whence);
  if (got < 0) return error("lseek", errno);
  if (static_cast<uint64_t>(got) != want) {
    if (stats.mismatches++ < 10)
      fprintf(stderr,
              "soak[%d]: MISMATCH lseek fd %d whence %d arg %" PRId64 ": want %" PRIu64
              ", got %jd\n",
              getpid(), f.fd, whence, arg, want, static_cast<intmax_t>(got));
  }
  d.off = want;
}

// A child runs some ops on the inherited descriptors (offsets shared with us),
// then tells us where it left each description's offset.
void Worker::do_fork(uint64_t ops) {
  std::vector<size_t> live;  // descriptions open now: the ones we share with the child
  for (size_t i = 0; i < descs_.size(); ++i)
    if (descs_[i].refs > 0) live.push_back(i);
  int p[2];
  if (pipe(p) != 0) return error("pipe", errno);
  const pid_t pid = fork();
  if (pid < 0) return error("fork", errno);
  if (pid == 0) {
    close(p[0]);
    stats = Stats{};
    rng_.next();
    run(ops, false);
    std::vector<uint64_t> out;
    for (size_t i : live) out.push_back(descs_[i].off);
    out.push_back(stats.mismatches);
    out.push_back(stats.errors);
    (void)!write(p[1], out.data(), out.size() * sizeof(uint64_t));
    _exit(0);
  }
  close(p[1]);
  std::vector<uint64_t> offs(live.size() + 2);
  size_t got = 0;
  const size_t want = offs.size() * sizeof(uint64_t);
  while (got < want) {
    const ssize_t n = read(p[0], reinterpret_cast<uint8_t*>(offs.data()) + got, want - got);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  close(p[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (got != want || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return error("fork child", EPIPE);
  for (size_t k = 0; k < live.size(); ++k) descs_[live[k]].off = offs[k];
  stats.mismatches += offs[live.size()];
  stats.errors += offs[live.size() + 1];
  stats.ops += ops;
}

// exec of this program: it gets the non-CLOEXEC descriptors, runs ops on them
// and on its own opens, and exits with its mismatch and error counts. It does
// not report offsets, so inherited descriptions are closed here afterwards.
void Worker::do_exec(uint64_t ops) {
  std::vector<std::string> args = {
      "/proc/self/exe",           "child", dir_, std::to_string(count_), std::to_string(ops),
      std::to_string(rng_.next())};
  std::vector<size_t> shared;
  for (size_t i = 0; i < fds_.size(); ++i) {
    if (fcntl(fds_[i].fd, F_GETFD) & FD_CLOEXEC) continue;
    const Desc& d = descs_[fds_[i].desc];
    args.push_back(std::to_string(fds_[i].fd) + ":" + std::to_string(fds_[i].desc) + ":" +
                   std::to_string(d.ino) + ":" + std::to_string(d.size) + ":" +
                   std::to_string(d.off));
    shared.push_back(i);
  }
  const pid_t pid = fork();
  if (pid < 0) return error("fork", errno);
  if (pid == 0) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) == 127) return error("exec child", ECHILD);
  // Exit code: mismatches * 16 + errors, both capped.
  stats.mismatches += static_cast<uint64_t>(WEXITSTATUS(status) >> 4);
  stats.errors += static_cast<uint64_t>(WEXITSTATUS(status) & 15);
  stats.ops += ops;
  // The child moved those offsets; forget the descriptions rather than guess.
  std::vector<size_t> moved;
  for (size_t i : shared) moved.push_back(fds_[i].desc);
  for (size_t i = fds_.size(); i-- > 0;)
    for (size_t d : moved)
      if (fds_[i].desc == d) {
        do_close(i);
        break;
      }
}

void Worker::run(uint64_t ops, bool allow_children) {
  buf_.resize(4 << 20);
  want_.resize(4 << 20);
  for (uint64_t done = 0; done < ops; ++done) {
    ++stats.ops;
    const uint64_t r = rng_.below(1000);
    if (fds_.empty() || (r < 60 && fds_.size() < 24)) {
      do_open();
      continue;
    }
    const size_t i = rng_.below(fds_.size());
    const Fd f = fds_[i];
    if (r < 100)
      do_close(i);
    else if (r < 130 && fds_.size() < 24)
      do_dup(i);
    else if (r < 130)
      do_pread(f);
    else if (r < 135 && allow_children)
      do_fork(20 + rng_.below(80));
    else if (r < 140 && allow_children)
      do_exec(20 + rng_.below(80));
    else if (r < 400)
      do_pread(f);
    else if (r < 700)
      do_read(f);
    else if (r < 850)
      do_readv(f);
    else
      do_lseek(f);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "gen" && argc == 6) {
    const std::string dir = argv[2];
    const uint64_t count = strtoull(argv[3], nullptr, 10), max = strtoull(argv[4], nullptr, 10);
    Rng rng{strtoull(argv[5], nullptr, 10)};
    for (uint64_t i = 0; i < count; ++i) {
      // Some empty, some under a page, most spanning several blocks.
      const uint64_t size = rng.one_in(16)  ? 0
                            : rng.one_in(8) ? rng.below(5000)
                                            : rng.below(max + 1);
      if (write_version(dir, file_path(dir, i), size, nullptr) != 0) return perror("gen"), 1;
    }
    return 0;
  }
  if (mode == "replace" && argc == 7) {
    const std::string dir = argv[2];
    const uint64_t count = strtoull(argv[3], nullptr, 10);
    Rng rng{strtoull(argv[4], nullptr, 10)};
    const uint64_t n = strtoull(argv[5], nullptr, 10);
    const bool same = argv[6][0] == '1';
    for (uint64_t k = 0; k < n; ++k) {
      const std::string p = file_path(dir, rng.below(count));
      struct stat st;
      if (stat(p.c_str(), &st) != 0) return perror("replace stat"), 1;
      // SAME: as cp -p / rsync -a / touch -r + rename do; else a new size.
      const uint64_t size = same ? static_cast<uint64_t>(st.st_size)
                                 : rng.below(static_cast<uint64_t>(st.st_size) + 300000);
      if (write_version(dir, p, size, same ? &st.st_mtim : nullptr) != 0)
        return perror("replace"), 1;
    }
    return 0;
  }
  if ((mode == "run" && argc == 6) || (mode == "child" && argc >= 6)) {
    Worker w(argv[2], strtoull(argv[3], nullptr, 10), strtoull(argv[5], nullptr, 10));
    for (int i = 6; i < argc; ++i) {
      int fd;
      uint64_t desc, ino, size, off;
      if (sscanf(argv[i], "%d:%" SCNu64 ":%" SCNu64 ":%" SCNu64 ":%" SCNu64, &fd, &desc, &ino,
                 &size, &off) == 5)
        w.adopt_shared(fd, desc, ino, size, off);
    }
    w.run(strtoull(argv[4], nullptr, 10), mode == "run");
    if (mode == "child")
      return static_cast<int>(std::min<uint64_t>(w.stats.mismatches, 15) << 4 |
                              std::min<uint64_t>(w.stats.errors, 15));
    printf("soak: pid %d ops %" PRIu64 " bytes %" PRIu64 " mismatches %" PRIu64 " errors %" PRIu64
           "\n",
           getpid(), w.stats.ops, w.stats.bytes, w.stats.mismatches, w.stats.errors);
    return w.stats.mismatches == 0 && w.stats.errors == 0 ? 0 : 1;
  }
  fprintf(stderr, "usage: soak_worker gen|replace|run ... (see the top of soak_worker.cc)\n");
  return 2;
}
