// Reads FILE whole with pread, over and over (every ~2 ms), for SECONDS; each time
// its bytes differ from the previous read it appends their FNV-1a hash (hex) to
// OUT. Once the file is cached every read is a hit: this is the reader that must
// still notice its agent being replaced.
//   dchitloop SECONDS FILE OUT
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 4) return 2;
  const double seconds = atof(argv[1]);
  const int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    perror(argv[2]);
    return 1;
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) return 1;
  std::vector<unsigned char> buf(static_cast<size_t>(st.st_size));
  uint64_t last = 0;
  timespec start{}, now{};
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (static_cast<double>(now.tv_sec - start.tv_sec) > seconds) break;
    const ssize_t n = pread(fd, buf.data(), buf.size(), 0);
    if (n != static_cast<ssize_t>(buf.size())) {
      fprintf(stderr, "short or failed read: %zd\n", n);
      return 1;
    }
    uint64_t h = 1469598103934665603ULL;
    for (unsigned char c : buf) h = (h ^ c) * 1099511628211ULL;
    if (h != last) {
      FILE* out = fopen(argv[3], "a");
      if (!out) return 1;
      fprintf(out, "%016llx\n", static_cast<unsigned long long>(h));
      fclose(out);
      last = h;
    }
    usleep(2000);
  }
  return 0;
}
