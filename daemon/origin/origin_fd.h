// A counted handle on an open origin file descriptor. Everything that will read
// the descriptor later (a read queued or in flight in OriginReader, a run of fills
// being built) holds one, so closing a file (open-file LRU, invalidation) cannot
// free the descriptor number while a read still names it: the number is closed
// only when the last holder lets go, and the kernel cannot hand it to another file
// (or a client socket) before then.
#pragma once

#include <unistd.h>

#include <memory>

namespace dc {

class OriginFd {
 public:
  explicit OriginFd(int fd) : fd_(fd) {}
  ~OriginFd() {
    if (fd_ >= 0) close(fd_);
  }
  OriginFd(const OriginFd&) = delete;
  OriginFd& operator=(const OriginFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

using OriginFdRef = std::shared_ptr<const OriginFd>;

}  // namespace dc
