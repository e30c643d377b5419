// The kernel's file offset stays right for everyone who looks at it while the shim
// serves reads: sendfile, a forked child sharing the description, an exec'd child
// reading the inherited fd, dup'ed descriptors, and fd numbers reused for another
// file. Truth is read with raw system calls, which no preload can intercept.
//
//   dcoffsets FILE_A FILE_B     (run under LD_PRELOAD=libdcshim.so)
#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
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

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && strcmp(argv[1], "exec-child") == 0) return exec_child(atoi(argv[2]), atoll(argv[3]));
  if (argc != 3) {
    fprintf(stderr, "usage: dcoffsets FILE_A FILE_B\n");
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
  printf("%d failure(s)\n", g_fail);
  return g_fail ? 1 : 0;
}
