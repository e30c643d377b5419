// The kernel's file offset stays right for everyone who looks at it while the shim
// serves reads: sendfile, a forked child sharing the description, an exec'd child
// reading the inherited fd, dup'ed descriptors, and fd numbers reused for another
// file. Truth is read with raw system calls, which no preload can intercept.
//
// Descriptors opened with O_CLOEXEC may keep their offset in user space (no system
// call per read); the second half checks that every way the offset can leave the
// process sees it right: sendfile, splice, copy_file_range, SEEK_END, SCM_RIGHTS,
// fork, clearing close-on-exec (fcntl and ioctl) before exec, dup, and 8 threads
// reading one descriptor at once (each read a distinct range, as the kernel's).
//
//   dcoffsets FILE_A FILE_B FILE_C    (run under LD_PRELOAD=libdcshim.so; FILE_C is
//                                      made of 8-byte little-endian words, each
//                                      holding its own offset)
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace {

int g_fail = 0;

void check(const char* what, bool ok) {
  printf("%-56s %s\n", what, ok ? "ok" : "FAILED");
  if (!ok) ++g_fail;
}

std::vector<char> truth(int fd, off_t off, size_t n) {
  std::vector<char> b(n);
  long r = syscall(SYS_pread64, fd, b.data(), n, off);
  b.resize(r > 0 ? static_cast<size_t>(r) : 0);
  return b;
}

off_t kernel_offset(int fd) { return static_cast<off_t>(syscall(SYS_lseek, fd, 0, SEEK_CUR)); }

bool read_matches(int fd, size_t n, off_t expect_at) {
  std::vector<char> got(n);
  ssize_t r = read(fd, got.data(), n);
  return r == static_cast<ssize_t>(n) && truth(fd, expect_at, n) == std::vector<char>(got.begin(), got.end());
}

int exec_child(int fd, off_t at) {
  // The exec'd image has a fresh shim that knows nothing of this fd: it must read
  // it at the kernel's offset.
  std::vector<char> got(400);
  ssize_t r = read(fd, got.data(), got.size());
  bool ok = r == 400 && truth(fd, at, 400) == got && kernel_offset(fd) == at + 400;
  return ok ? 0 : 1;
}

// What a pipe or file received, compared with the file at `at`.
bool drained_matches(int rfd, int src, off_t at, size_t n) {
  std::vector<char> got(n);
  size_t done = 0;
  while (done < n) {
    ssize_t r = read(rfd, got.data() + done, n - done);
    if (r <= 0) return false;
    done += static_cast<size_t>(r);
  }
  return got == truth(src, at, n);
}

int cloexec_fd(const char* path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    perror("open");
    exit(1);
  }
  return fd;
}

// Descriptors whose offset the shim may keep in user space.
void own_offset_cases(const char* path, const char* words, const char* dir_many) {
  // A process forked before the fd exists (it inherits nothing); later the fd is
  // sent to it with SCM_RIGHTS.
  int sp[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) exit(1);
  pid_t c = fork();
  if (c == 0) {
    char one;
    iovec iov{&one, 1};
    alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))];
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl;
    m.msg_controllen = sizeof ctl;
    if (recvmsg(sp[1], &m, 0) != 1) _exit(2);
    int got_fd;
    memcpy(&got_fd, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof got_fd);
    const bool ok = read_matches(got_fd, 200, 5300);
    (void)!write(sp[1], ok ? "y" : "n", 1);
    _exit(ok ? 0 : 1);
  }

  int fd = cloexec_fd(path);
  check("[cloexec] a served read leaves the kernel's offset behind (offset in user space)",
        read_matches(fd, 10, 0) && kernel_offset(fd) == 0 && lseek(fd, 0, SEEK_SET) == 0);
  const off_t size = lseek(fd, 0, SEEK_END);
  check("[cloexec] lseek SEEK_END gives the size", size > 20000 && lseek(fd, 0, SEEK_SET) == 0);
  check("[cloexec] read 1000 at 0", read_matches(fd, 1000, 0));
  check("[cloexec] lseek SEEK_CUR says 1000", lseek(fd, 0, SEEK_CUR) == 1000);

  int p[2];
  if (pipe(p) != 0) exit(1);
  check("[cloexec] sendfile continues at 1000",
        sendfile(p[1], fd, nullptr, 500) == 500 && drained_matches(p[0], fd, 1000, 500));
  check("[cloexec] read after sendfile continues at 1500", read_matches(fd, 700, 1500));
  check("[cloexec] splice continues at 2200",
        splice(fd, nullptr, p[1], nullptr, 300, 0) == 300 && drained_matches(p[0], fd, 2200, 300));
  check("[cloexec] read after splice continues at 2500", read_matches(fd, 100, 2500));
  char tmpl[] = "/tmp/dcoffsets.XXXXXX";
  int out = mkstemp(tmpl);
  unlink(tmpl);
  check("[cloexec] copy_file_range continues at 2600",
        out >= 0 && copy_file_range(fd, nullptr, out, nullptr, 400, 0) == 400 && lseek(out, 0, SEEK_SET) == 0 &&
            drained_matches(out, fd, 2600, 400));
  close(out);
  check("[cloexec] read after copy_file_range continues at 3000", read_matches(fd, 100, 3000));
  check("[cloexec] SEEK_END then read the last 100", lseek(fd, -100, SEEK_END) == size - 100 &&
                                                        read_matches(fd, 100, size - 100));
  char b[16];
  check("[cloexec] read at EOF returns 0", read(fd, b, sizeof b) == 0 && lseek(fd, 0, SEEK_CUR) == size);
  check("[cloexec] SEEK_SET 5000, SEEK_CUR +50",
        lseek(fd, 5000, SEEK_SET) == 5000 && lseek(fd, 50, SEEK_CUR) == 5050 && read_matches(fd, 100, 5050));
  check("[cloexec] a negative seek fails with EINVAL, offset kept",
        lseek(fd, -1, SEEK_SET) == -1 && errno == EINVAL && lseek(fd, 0, SEEK_CUR) == 5150);
  check("[cloexec] read 50 at 5150 (the offset back in user space)",
        read_matches(fd, 50, 5150) && kernel_offset(fd) != 5200);
  check("[cloexec] preadv2 with RWF_HIPRI at offset -1 reads at 5200", [&] {
    std::vector<char> got(50);
    iovec v{got.data(), got.size()};
    return preadv2(fd, &v, 1, -1, RWF_HIPRI) == 50 && got == truth(fd, 5200, 50) &&
           lseek(fd, 0, SEEK_CUR) == 5250;
  }());
  check("[cloexec] FIONREAD counts from the offset", [&] {
    int n = -1;
    return read_matches(fd, 50, 5250) && kernel_offset(fd) != 5300 && ioctl(fd, FIONREAD, &n) == 0 &&
           n == size - 5300;
  }());
  {
    char one = 'x';
    iovec iov{&one, 1};
    alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))];
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl;
    m.msg_controllen = sizeof ctl;
    cmsghdr* cm = CMSG_FIRSTHDR(&m);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof fd);
    char answer = 0;
    int st = 0;
    const bool sent = sendmsg(sp[0], &m, 0) == 1;
    const bool replied = read(sp[0], &answer, 1) == 1;
    waitpid(c, &st, 0);
    check("[cloexec] a process sent the fd by SCM_RIGHTS reads at 5300",
          sent && replied && answer == 'y' && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    check("[cloexec] and we see its advance (5500)", lseek(fd, 0, SEEK_CUR) == 5500 && read_matches(fd, 50, 5500));
  }
  close(sp[0]);
  close(sp[1]);
  close(fd);

  fd = cloexec_fd(path);
  check("[cloexec] fresh fd: read 1000 at 0", read_matches(fd, 1000, 0));
  c = fork();
  if (c == 0) _exit(read_matches(fd, 300, 1000) ? 0 : 1);
  int st = 0;
  waitpid(c, &st, 0);
  check("[cloexec] forked child reads at 1000", WIFEXITED(st) && WEXITSTATUS(st) == 0);
  check("[cloexec] parent reads on at 1300", read_matches(fd, 100, 1300));
  close(fd);

  auto exec_inherits = [&](const char* what, bool use_ioctl) {
    int f = cloexec_fd(path);
    bool ok = read_matches(f, 1000, 0);
    if (use_ioctl) ok = ok && ioctl(f, FIONCLEX) == 0;
    else ok = ok && fcntl(f, F_SETFD, 0) == 0;
    // A raw fork runs no atfork handler: only the sync done by F_SETFD/FIONCLEX
    // can have put the offset where the exec'd child reads it.
    std::string sfd = std::to_string(f);
    pid_t k = static_cast<pid_t>(syscall(SYS_fork));
    if (k == 0) {
      const char* args[] = {"dcoffsets", "exec-child", sfd.c_str(), "1000", nullptr};
      syscall(SYS_execve, "/proc/self/exe", args, environ);
      syscall(SYS_exit_group, 127);
    }
    int s2 = 0;
    waitpid(k, &s2, 0);
    check(what, ok && WIFEXITED(s2) && WEXITSTATUS(s2) == 0 && read_matches(f, 100, 1400));
    close(f);
  };
  exec_inherits("[cloexec] F_SETFD 0, exec'd child reads at 1000", false);
  exec_inherits("[cloexec] ioctl FIONCLEX, exec'd child reads at 1000", true);

  fd = cloexec_fd(path);
  check("[cloexec] fresh fd for vfork: read 1000 at 0", read_matches(fd, 1000, 0));
  {
    // The child shares our memory (our fd table) until it exits; its close of its
    // copy of fd must not lose our offset.
    pid_t k = vfork();
    if (k == 0) {
      close(fd);
      _exit(0);
    }
    int s2 = 0;
    waitpid(k, &s2, 0);
    check("[cloexec] after a vfork child closed its copy, we read on at 1000", read_matches(fd, 100, 1000));
  }
  close(fd);

  fd = cloexec_fd(path);
  check("[cloexec] fresh fd: read 1000 at 0 again", read_matches(fd, 1000, 0));
  int d = dup(fd);
  check("[cloexec] dup reads on at 1000", read_matches(d, 100, 1000) && read_matches(fd, 100, 1100));
  close(d);
  close(fd);

  // 8 threads, one descriptor: every read must take its own range of the file.
  // The descriptor is fresh (its key not even known yet): the first reads race to
  // complete it.
  struct stat wst;
  stat(words, &wst);
  const off_t wsize = wst.st_size;
  fd = cloexec_fd(words);
  struct Shared {
    int fd;
    std::vector<std::pair<uint64_t, size_t>> got[8];
    bool bad[8];
  } sh{};
  sh.fd = fd;
  pthread_t th[8];
  struct Arg {
    Shared* s;
    int i;
  } args[8];
  for (int i = 0; i < 8; ++i) {
    args[i] = {&sh, i};
    pthread_create(&th[i], nullptr, [](void* v) -> void* {
      auto* a = static_cast<Arg*>(v);
      std::vector<uint64_t> buf(512 + a->i * 3);  // sizes differ per thread
      for (;;) {
        ssize_t r = read(a->s->fd, buf.data(), buf.size() * 8);
        if (r <= 0) {
          a->s->bad[a->i] |= r < 0;
          break;
        }
        // A word-aligned range whose words say where it came from.
        const uint64_t at = buf[0];
        for (size_t w = 0; w < static_cast<size_t>(r) / 8; ++w) a->s->bad[a->i] |= buf[w] != at + w * 8;
        a->s->got[a->i].emplace_back(at, static_cast<size_t>(r));
      }
      return nullptr;
    }, &args[i]);
  }
  for (auto& t : th) pthread_join(t, nullptr);
  std::vector<std::pair<uint64_t, size_t>> all;
  bool bad = false;
  for (int i = 0; i < 8; ++i) {
    bad |= sh.bad[i];
    all.insert(all.end(), sh.got[i].begin(), sh.got[i].end());
  }
  std::sort(all.begin(), all.end());
  uint64_t next = 0;
  for (const auto& [at, n] : all) {
    bad |= at != next;
    next = at + n;
  }
  check("[cloexec] 8 threads on one fd read disjoint ranges covering the file",
        !bad && next == static_cast<uint64_t>(wsize));
  close(fd);

  // A directory under the root, listed while a fork syncs every tracked offset: the
  // listing must neither rewind nor skip.
  int dfd = open(dir_many, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR* listing = dfd >= 0 ? fdopendir(dfd) : nullptr;
  size_t entries = 0;
  bool forked = false;
  while (listing && readdir(listing)) {
    if (++entries == 300 && !forked) {
      forked = true;
      pid_t k = fork();
      if (k == 0) _exit(0);
      waitpid(k, nullptr, 0);
    }
  }
  if (listing) closedir(listing);
  check("[cloexec] a directory listed across a fork has every entry once", entries == 2002);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && strcmp(argv[1], "exec-child") == 0) return exec_child(atoi(argv[2]), atoll(argv[3]));
  if (argc != 4) {
    fprintf(stderr, "usage: dcoffsets FILE_A FILE_B FILE_C\n");
    return 2;
  }
  int fd = open(argv[1], O_RDONLY);
  if (fd < 0) {
    perror("open");
    return 1;
  }
  check("read 1000 at 0", read_matches(fd, 1000, 0));
  check("kernel offset is 1000 after read", kernel_offset(fd) == 1000);

  int pipefd[2];
  if (pipe(pipefd) != 0) return 1;
  ssize_t sent = sendfile(pipefd[1], fd, nullptr, 500);
  std::vector<char> piped(500);
  ssize_t got = read(pipefd[0], piped.data(), piped.size());
  check("sendfile continues at the kernel offset", sent == 500 && got == 500 && piped == truth(fd, 1000, 500));
  check("read after sendfile continues at 1500", read_matches(fd, 700, 1500));

  pid_t c = fork();
  if (c == 0) _exit(read_matches(fd, 300, 2200) ? 0 : 1);
  int st = 0;
  waitpid(c, &st, 0);
  check("forked child reads the shared description at 2200", WIFEXITED(st) && WEXITSTATUS(st) == 0);
  check("parent sees the child's advance (2500)", kernel_offset(fd) == 2500);
  check("parent reads on at 2500", read_matches(fd, 100, 2500));

  c = fork();
  if (c == 0) {
    std::string sfd = std::to_string(fd);
    execl("/proc/self/exe", "dcoffsets", "exec-child", sfd.c_str(), "2600", static_cast<char*>(nullptr));
    _exit(127);
  }
  waitpid(c, &st, 0);
  check("exec'd child reads the inherited fd at 2600", WIFEXITED(st) && WEXITSTATUS(st) == 0);
  check("parent sees the exec'd child's advance (3000)", kernel_offset(fd) == 3000);

  int fd2 = dup(fd);
  check("dup shares the offset", read_matches(fd2, 100, 3000) && kernel_offset(fd) == 3100);
  int fd3 = fcntl(fd, F_DUPFD_CLOEXEC, 100);
  check("F_DUPFD_CLOEXEC shares the offset", fd3 >= 100 && read_matches(fd3, 100, 3100));
  check("lseek then read", lseek(fd, 12345, SEEK_SET) == 12345 && read_matches(fd, 5000, 12345));
  check("pread leaves the offset alone", [&] {
    char b[64];
    return pread(fd, b, sizeof b, 7) == 64 && kernel_offset(fd) == 17345;
  }());

  // Reuse of numbers: fd2 becomes FILE_B through dup2, then fd3 is closed and the
  // number reused by a fresh open of FILE_B.
  int other = open(argv[2], O_RDONLY);
  check("dup2 onto a tracked fd reads the new file", dup2(other, fd2) == fd2 && read_matches(fd2, 2000, 0));
  close(fd3);
  int again = fcntl(other, F_DUPFD, fd3);
  check("a reused number reads its new file", again == fd3 && read_matches(again, 1000, 2000));
  close(fd);
  int reopened = open(argv[2], O_RDONLY);
  check("open reusing a closed number reads the new file", reopened == fd && read_matches(reopened, 4096, 0));
  std::string many = argv[1];
  many.resize(many.rfind('/'));
  many += "/many";
  own_offset_cases(argv[1], argv[3], many.c_str());

  // Not files the cache serves, though opened read-only under the dataset root:
  // they must read exactly as natively (EISDIR; 0 at once).
  std::string dir = argv[1];
  dir.resize(dir.rfind('/'));
  int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  char tiny[8];
  errno = 0;
  check("a directory under the root reads as EISDIR", dfd >= 0 && read(dfd, tiny, sizeof tiny) == -1 && errno == EISDIR);
  close(dfd);
  int efd = open((dir + "/empty.bin").c_str(), O_RDONLY | O_CLOEXEC);
  check("an empty file under the root reads 0", efd >= 0 && read(efd, tiny, sizeof tiny) == 0 &&
                                                    lseek(efd, 0, SEEK_CUR) == 0);
  close(efd);
  printf("%d failure(s)\n", g_fail);
  return g_fail ? 1 : 0;
}
