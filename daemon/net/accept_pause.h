// A listening socket that runs out of descriptors stops being polled for a while.
// accept4 failing with EMFILE/ENFILE leaves the connection in the backlog, so a
// level-triggered epoll reports the socket readable again at once: without a pause
// the loop spins at 100% of a core and logs a line per spin. Paused, the listener
// is out of the epoll set; tick() puts it back when the pause is over, by which
// time closed sessions or dropped handshakes may have freed descriptors.
#pragma once

#include <cstdint>

namespace dc {

class AcceptPause {
 public:
  static constexpr uint64_t kPauseMs = 250;  // a few retries a second: cheap, and quick to recover

  AcceptPause() = default;
  // `tag`: the epoll data the listener is registered with.
  void attach(int epoll_fd, int listen_fd, uint64_t tag);
  // accept4 failed with `err`. True if that was running out of descriptors or
  // memory (EMFILE, ENFILE, ENOBUFS, ENOMEM): the listener is now paused.
  bool on_accept_error(int err, uint64_t now_ms);
  // Resumes a paused listener whose pause is over.
  void tick(uint64_t now_ms);
  bool paused() const { return paused_; }
  uint64_t pauses() const { return pauses_; }

 private:
  int epoll_fd_ = -1;
  int listen_fd_ = -1;
  uint64_t tag_ = 0;
  bool paused_ = false;
  uint64_t resume_ms_ = 0;
  uint64_t pauses_ = 0;
};

}  // namespace dc
