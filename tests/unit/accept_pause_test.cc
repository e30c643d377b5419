// A listener out of descriptors leaves the epoll set for a pause, then comes back
// (instead of being reported readable, and failing, on every loop turn).
#include "daemon/net/accept_pause.h"

#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace dc {
namespace {

// True if `fd` is in the epoll set (MOD fails with ENOENT otherwise).
bool registered(int ep, int fd) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  return epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) == 0;
}

TEST(AcceptPause, OutOfDescriptorsPausesThenResumes) {
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(ep, 0);
  ASSERT_GE(fd, 0);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 42;
  ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
  AcceptPause p;
  p.attach(ep, fd, 42);

  EXPECT_FALSE(p.on_accept_error(EAGAIN, 1000));  // nothing to accept: not a pause
  EXPECT_FALSE(p.on_accept_error(ECONNABORTED, 1000));
  EXPECT_TRUE(registered(ep, fd));

  EXPECT_TRUE(p.on_accept_error(EMFILE, 1000));
  EXPECT_TRUE(p.paused());
  EXPECT_FALSE(registered(ep, fd));
  EXPECT_TRUE(p.on_accept_error(ENFILE, 1010));  // while paused: one pause, extended
  EXPECT_EQ(p.pauses(), 1u);
  p.tick(1010 + AcceptPause::kPauseMs - 1);
  EXPECT_FALSE(registered(ep, fd));
  p.tick(1010 + AcceptPause::kPauseMs);
  EXPECT_FALSE(p.paused());
  EXPECT_TRUE(registered(ep, fd));
  close(fd);
  close(ep);
}

}  // namespace
}  // namespace dc
