#include "daemon/net/accept_pause.h"

#include <sys/epoll.h>

#include <cerrno>

namespace dc {

void AcceptPause::attach(int epoll_fd, int listen_fd, uint64_t tag) {
  epoll_fd_ = epoll_fd;
  listen_fd_ = listen_fd;
  tag_ = tag;
}

bool AcceptPause::on_accept_error(int err, uint64_t now_ms) {
  if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) return false;
  if (!paused_ && listen_fd_ >= 0) {
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
    paused_ = true;
    ++pauses_;
  }
  resume_ms_ = now_ms + kPauseMs;
  return true;
}

void AcceptPause::tick(uint64_t now_ms) {
  if (!paused_ || now_ms < resume_ms_) return;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = tag_;
  // Level-triggered: connections still in the backlog are reported at once.
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev) == 0) {
    paused_ = false;
  } else {
    resume_ms_ = now_ms + kPauseMs;  // the epoll set itself is short of memory: try later
  }
}

}  // namespace dc
