// dcdupshare FILE MODE: two readers of one open file description, each through its
// own descriptor number, reading FILE with 4 KiB read()s until EOF at the same
// time. The kernel serialises reads of one description on its offset, so between
// them they read every byte exactly once. A shim that serialises per descriptor
// number instead gives some blocks to both readers and others to none.
//
// FILE is a "counting" file: every 8-byte word holds its own offset, so a chunk
// returned by read() says where it came from. Every word read bumps a counter in
// memory shared by both readers (threads, or parent and child for "fork").
//
// MODE: dup, dup2, dup3, dupfd, dupfd_cloexec, scm_rights (the second number
// received over a socketpair), fork (one number, parent and child), four (four
// numbers, four threads). A "_cloexec"
// suffix opens FILE with O_CLOEXEC, the kind of descriptor whose offset the shim
// may keep in user space. dup2_close: one reader, through a dup2 whose original
// was closed. dup2_over: one reader, through a number whose dup was replaced by
// dup2 of another open onto it. Prints a one-line report; exits 1 on a wrong result.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace {

[[noreturn]] void die(const char* what) {
  fprintf(stderr, "dcdupshare: %s: %s\n", what, strerror(errno));
  exit(2);
}

constexpr size_t kRead = 4096;

struct Shared {
  uint8_t* counts;  // one per 8-byte word, in a MAP_SHARED mapping (fork mode)
  uint64_t words;
  std::atomic<uint64_t>* bad;  // words that did not hold their own offset
};

// Reads `fd` to EOF in 4 KiB read()s, counting every word it got.
void read_all(int fd, const Shared& sh) {
  alignas(8) uint8_t buf[kRead];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("read");
    if (n == 0) return;
    // The kernel hands out whole words here: the file and every read are multiples
    // of 8, so every offset is too. A partial word would itself be a wrong result.
    if (n % 8 != 0) {
      sh.bad->fetch_add(1);
      return;
    }
    for (ssize_t i = 0; i < n; i += 8) {
      uint64_t w;
      memcpy(&w, buf + i, 8);
      const uint64_t word = w / 8;
      if (w % 8 != 0 || word >= sh.words) {
        sh.bad->fetch_add(1);
        continue;
      }
      __atomic_fetch_add(&sh.counts[word], 1, __ATOMIC_RELAXED);
    }
  }
}

int second_number(int fd, const std::string& how) {
  if (how == "dup") return dup(fd);
  if (how == "dup2") return dup2(fd, 100);
  if (how == "dup3") return dup3(fd, 101, O_CLOEXEC);
  if (how == "dupfd") return fcntl(fd, F_DUPFD, 50);
  if (how == "dupfd_cloexec") return fcntl(fd, F_DUPFD_CLOEXEC, 60);
  if (how == "scm_rights") {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) die("socketpair");
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
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    if (sendmsg(sv[0], &msg, 0) != 1) die("sendmsg");
    msghdr in{};
    alignas(cmsghdr) char ctl_in[CMSG_SPACE(sizeof(int))] = {};
    iovec iov_in{&byte, 1};
    in.msg_iov = &iov_in;
    in.msg_iovlen = 1;
    in.msg_control = ctl_in;
    in.msg_controllen = sizeof ctl_in;
    if (recvmsg(sv[1], &in, 0) != 1) die("recvmsg");
    cmsghdr* r = CMSG_FIRSTHDR(&in);
    if (!r || r->cmsg_type != SCM_RIGHTS) die("no fd received");
    int got;
    memcpy(&got, CMSG_DATA(r), sizeof got);
    close(sv[0]);
    close(sv[1]);
    return got;
  }
  fprintf(stderr, "dcdupshare: unknown mode %s\n", how.c_str());
  exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: dcdupshare FILE MODE\n");
    return 2;
  }
  std::string mode = argv[2];
  int flags = O_RDONLY;
  const std::string suffix = "_cloexec";
  if (mode.size() > suffix.size() &&
      mode.compare(mode.size() - suffix.size(), suffix.size(), suffix) == 0 &&
      mode != "dupfd_cloexec") {
    flags |= O_CLOEXEC;
    mode.resize(mode.size() - suffix.size());
  }
  const int fd = open(argv[1], flags);
  if (fd < 0) die(argv[1]);
  struct stat st;
  if (fstat(fd, &st) != 0) die("fstat");
  if (st.st_size % 8 != 0) die("file size is not a multiple of 8");
  Shared sh;
  sh.words = static_cast<uint64_t>(st.st_size) / 8;
  void* mem = mmap(nullptr, sh.words + sizeof(std::atomic<uint64_t>), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) die("mmap");
  sh.bad = new (mem) std::atomic<uint64_t>(0);
  sh.counts = static_cast<uint8_t*>(mem) + sizeof(std::atomic<uint64_t>);

  if (mode == "fork") {
    const pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
      read_all(fd, sh);
      _exit(0);
    }
    read_all(fd, sh);
    int status = 0;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
      die("child");
  } else if (mode == "four") {
    // Four numbers of one description (dup, dup2, F_DUPFD), four readers.
    const int fds[4] = {fd, dup(fd), dup2(fd, 110), fcntl(fd, F_DUPFD, 120)};
    for (int f : fds)
      if (f < 0) die("dup");
    std::thread others[3];
    for (int i = 0; i < 3; ++i) others[i] = std::thread([&, i] { read_all(fds[i + 1], sh); });
    read_all(fd, sh);
    for (auto& t : others) t.join();
  } else if (mode == "dup2_over") {
    // The dup's number is taken over by another open (dup2 onto it): the first
    // number is alone with its description again, and read alone.
    const int fd2 = dup(fd);
    const int other = open(argv[1], O_RDONLY);
    if (fd2 < 0 || other < 0 || dup2(other, fd2) != fd2 || close(other) != 0) die("dup/dup2");
    read_all(fd, sh);
    close(fd2);
  } else if (mode == "dup2_close") {
    // What dd and shells do: the description ends up with one number, read alone.
    const int fd2 = dup2(fd, 100);
    if (fd2 < 0 || close(fd) != 0) die("dup2/close");
    read_all(fd2, sh);
  } else {
    const int fd2 = second_number(fd, mode);
    if (fd2 < 0) die("second descriptor");
    std::thread other([&] { read_all(fd2, sh); });
    read_all(fd, sh);
    other.join();
  }

  uint64_t twice = 0, missed = 0;
  for (uint64_t i = 0; i < sh.words; ++i) {
    if (sh.counts[i] == 0)
      ++missed;
    else if (sh.counts[i] > 1)
      ++twice;
  }
  const uint64_t bad = sh.bad->load();
  printf("%s: words %" PRIu64 " read-twice %" PRIu64 " never-read %" PRIu64 " wrong %" PRIu64 "\n",
         argv[2], sh.words, twice, missed, bad);
  return twice == 0 && missed == 0 && bad == 0 ? 0 : 1;
}
