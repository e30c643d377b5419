// dcerrnokeep FILE... [--pause]: errno is what the real call leaves. A call that
// succeeds leaves errno as the program set it (glibc's wrappers do not touch it on
// success), whatever the shim did meanwhile (a failed connect to a dead agent, a
// fetch, a seek); a call that fails sets the kernel's errno.
//
// For each FILE: open, fstat, read, pread, readv, preadv, lseek, dup, close, and
// fopen/fread/fseek/fclose, with
// errno set to a sentinel before each, then a few calls that must fail with a
// known errno. With --pause, the first FILE is checked, "ready" is printed, and the
// rest are checked after a line arrives on stdin (the test kills the agent then, so
// the later files' reads are misses the agent cannot answer).
// Prints one line per wrong errno; exits 1 if there was any.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr int kSentinel = 4242;  // no real errno value
int g_wrong = 0;

void expect_kept(const char* call, const char* file, bool ok) {
  const int e = errno;
  if (!ok) {
    printf("%s %s: failed unexpectedly: %s\n", call, file, strerror(e));
    ++g_wrong;
  } else if (e != kSentinel) {
    printf("%s %s: succeeded but errno changed to %d (%s)\n", call, file, e, strerror(e));
    ++g_wrong;
  }
}

void expect_errno(const char* call, const char* file, bool failed, int want) {
  const int e = errno;
  if (!failed || e != want) {
    printf("%s %s: want failure with %s, got %s errno %d\n", call, file, strerror(want),
           failed ? "failure" : "success", e);
    ++g_wrong;
  }
}

void check_file(const char* path) {
  std::vector<char> buf(1 << 16);
  errno = kSentinel;
  const int fd = open(path, O_RDONLY);
  expect_kept("open", path, fd >= 0);
  if (fd < 0) return;
  struct stat st;
  errno = kSentinel;
  expect_kept("fstat", path, fstat(fd, &st) == 0);
  const off_t size = st.st_size;
  errno = kSentinel;
  expect_kept("read", path, read(fd, buf.data(), 4096) >= 0);
  errno = kSentinel;
  expect_kept("pread", path, pread(fd, buf.data(), 4096, size / 2) >= 0);
  iovec iov[2] = {{buf.data(), 1000}, {buf.data() + 1000, 3000}};
  errno = kSentinel;
  expect_kept("readv", path, readv(fd, iov, 2) >= 0);
  errno = kSentinel;
  expect_kept("preadv", path, preadv(fd, iov, 2, size / 3) >= 0);
  errno = kSentinel;
  expect_kept("lseek SEEK_SET", path, lseek(fd, size / 4, SEEK_SET) == size / 4);
  errno = kSentinel;
  expect_kept("lseek SEEK_CUR", path, lseek(fd, 0, SEEK_CUR) == size / 4);
  errno = kSentinel;
  expect_kept("read after seek", path, read(fd, buf.data(), buf.size()) >= 0);
  errno = kSentinel;
  expect_kept("pread at EOF", path, pread(fd, buf.data(), 4096, size) == 0);
  errno = kSentinel;
  const int fd2 = dup(fd);
  expect_kept("dup", path, fd2 >= 0);
  errno = kSentinel;
  expect_kept("read of the dup", path, read(fd2, buf.data(), 4096) >= 0);
  errno = kSentinel;
  expect_kept("close of the dup", path, close(fd2) == 0);
  errno = kSentinel;
  FILE* f = fopen(path, "r");
  expect_kept("fopen", path, f != nullptr);
  if (f) {
    errno = kSentinel;
    expect_kept("fread", path, fread(buf.data(), 1, buf.size(), f) > 0);
    errno = kSentinel;
    expect_kept("fseek", path, fseek(f, size / 5, SEEK_SET) == 0);
    errno = kSentinel;
    expect_kept("fclose", path, fclose(f) == 0);
  }
  // Failures: the kernel's errno, not the sentinel and not the shim's.
  errno = kSentinel;
  expect_errno("pread at a negative offset", path, pread(fd, buf.data(), 16, -1) < 0, EINVAL);
  errno = kSentinel;
  expect_errno("lseek to a negative offset", path, lseek(fd, -1, SEEK_SET) < 0, EINVAL);
  errno = kSentinel;
  expect_kept("close", path, close(fd) == 0);
  errno = kSentinel;
  expect_errno("read of the closed fd", path, read(fd, buf.data(), 16) < 0, EBADF);
  errno = kSentinel;
  expect_errno("pread of the closed fd", path, pread(fd, buf.data(), 16, 0) < 0, EBADF);
  errno = kSentinel;
  expect_errno("close of the closed fd", path, close(fd) < 0, EBADF);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<const char*> files;
  bool pause = false;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--pause") == 0)
      pause = true;
    else
      files.push_back(argv[i]);
  }
  if (files.empty()) {
    fprintf(stderr, "usage: dcerrnokeep FILE... [--pause]\n");
    return 2;
  }
  for (size_t i = 0; i < files.size(); ++i) {
    if (pause && i == 1) {
      printf("ready\n");
      fflush(stdout);
      char line[16];
      if (!fgets(line, sizeof line, stdin)) return 2;
    }
    check_file(files[i]);
  }
  printf("errno checks: %d wrong\n", g_wrong);
  return g_wrong == 0 ? 0 : 1;
}
