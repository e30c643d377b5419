#include "shim/agent_conn.h"

#include <errno.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

#include "shim/arena_map.h"
#include "shim/client_region.h"
#include "shim/dataset_roots.h"
#include "shim/real.h"

namespace dc::shim {
namespace {

constexpr uint64_t kRetryNs = 500'000'000;           // after a refused connect
constexpr uint64_t kFirstBackoffNs = 1'000'000'000;  // after a first silence
constexpr uint64_t kMaxBackoffNs = 16'000'000'000;   // at most 1/17 of the time waiting

// The agent did not answer in time: leave it alone for a while, longer each time.
void note_silence(uint64_t now) {
  uint64_t b = __atomic_load_n(&g_state.backoff_ns, __ATOMIC_RELAXED);
  b = b == 0 ? kFirstBackoffNs : (b * 2 > kMaxBackoffNs ? kMaxBackoffNs : b * 2);
  __atomic_store_n(&g_state.backoff_ns, b, __ATOMIC_RELAXED);
  __atomic_store_n(&g_state.sick_until_ns, now + b, __ATOMIC_RELAXED);
}

void note_answer() {
  if (__atomic_load_n(&g_state.backoff_ns, __ATOMIC_RELAXED) != 0)
    __atomic_store_n(&g_state.backoff_ns, uint64_t{0}, __ATOMIC_RELAXED);
}

// Waits until `fd` is ready for `events` or the deadline passes. A signal only
// makes it wait again for what is left: the deadline is absolute, so a periodic
// timer cannot stretch it (a receive timeout restarted after EINTR could, forever).
bool wait_ready(int fd, short events, uint64_t deadline) {
  for (;;) {
    const uint64_t now = now_ns();
    if (now >= deadline) return false;
    const uint64_t left = deadline - now;
    pollfd p{fd, events, 0};
    timespec ts{static_cast<time_t>(left / 1000000000ULL), static_cast<long>(left % 1000000000ULL)};
    // Raw ppoll: not a cancellation point, and present on every architecture.
    const long r = syscall(SYS_ppoll, &p, 1, &ts, nullptr, 0);
    if (r > 0) return true;  // ready, or an error/hang-up the next call reports
    if (r < 0 && errno != EINTR) return false;
  }
}

// The shim's own socket I/O goes through raw system calls: they are not pthread
// cancellation points, so a cancelled app thread never leaves a connection or an
// fd lock half-used. The sockets are non-blocking; waiting is wait_ready's.
bool send_all(int fd, const void* data, size_t len, uint64_t deadline) {
  for (;;) {
    const long n = syscall(SYS_sendto, fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT, nullptr, 0);
    if (n == static_cast<long>(len)) return true;
    if (n >= 0 || (errno != EAGAIN && errno != EINTR)) return false;
    if (!wait_ready(fd, POLLOUT, deadline)) return false;
  }
}

// Receives the reply to `request_id` before `deadline`, with attached descriptors
// if any. On success the descriptors are the caller's (*nfds of them); on failure
// none are returned (any that arrived are closed here) and *nfds is 0. Replies to
// other ids (a request that timed out earlier) are discarded.
long recv_reply(int fd, void* buf, size_t cap, uint32_t request_id, int* fds, int* nfds,
                uint64_t deadline) {
  const int capacity = nfds ? *nfds : 0;
  if (nfds) *nfds = 0;
  for (;;) {
    if (!wait_ready(fd, POLLIN, deadline)) return -1;
    iovec iov{buf, cap};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
    memset(control, 0, sizeof control);
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    long n = syscall(SYS_recvmsg, fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    // Only a successful receive fills the control area: after a failure (the
    // agent gone) it holds nothing we may read, let alone close.
    if (n <= 0) return -1;
    int got = 0;
    int received[4];
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      int count = static_cast<int>((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
      for (int k = 0; k < count; ++k) {
        int passed;
        memcpy(&passed, CMSG_DATA(c) + k * sizeof(int), sizeof passed);
        if (got < capacity && got < 4)
          received[got++] = passed;
        else
          sys_close(passed);
      }
    }
    auto drop = [&]() {
      for (int k = 0; k < got; ++k) sys_close(received[k]);
    };
    if (n < static_cast<long>(sizeof(ctl::MsgHeader)) || (msg.msg_flags & MSG_TRUNC)) {
      drop();
      return -1;
    }
    ctl::MsgHeader h;
    memcpy(&h, buf, sizeof h);
    if (h.magic != ctl::kMagic || h.length != static_cast<uint32_t>(n)) {
      drop();
      return -1;
    }
    if (h.request_id != request_id) {  // a late reply to a timed-out request
      drop();
      continue;
    }
    for (int k = 0; k < got; ++k) fds[k] = received[k];
    if (nfds) *nfds = got;
    return n;
  }
}

void forget_region_owner(const Conn& c) {
  if (g_state.region_owner == static_cast<int>(&c - g_state.conns))
    __atomic_store_n(&g_state.region_owner, -1, __ATOMIC_RELEASE);
}

// Connects and greets, all before `deadline`. Caller holds the conn.
bool connect_by(Conn& c, uint64_t deadline) {
  const uint64_t now = now_ns();
  if (now < __atomic_load_n(&g_state.next_connect_ns, __ATOMIC_RELAXED) || agent_backed_off(now))
    return false;
  // Non-blocking: a full listen backlog (an agent that stopped accepting) fails at
  // once rather than blocking connect().
  int fd = static_cast<int>(
      syscall(SYS_socket, AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, g_state.socket_path, sizeof g_state.socket_path);
  auto refused = [&]() {
    sys_close(fd);
    __atomic_store_n(&g_state.next_connect_ns, now + kRetryNs, __ATOMIC_RELAXED);
    return false;
  };
  // Only a missed deadline is silence (back off); a quick failure (the agent
  // closed on us: it is exiting or restarting) is retried as a refused connect.
  auto failed = [&]() {
    const uint64_t t = now_ns();
    if (t < deadline) return refused();
    sys_close(fd);
    note_silence(t);
    return false;
  };
  // A full listen backlog (many processes connecting at once to a busy agent)
  // fails a non-blocking connect with EAGAIN; a unix socket offers nothing to
  // wait on for it, so it is retried every millisecond until the deadline.
  while (syscall(SYS_connect, fd, &addr, sizeof addr) != 0) {
    if (errno != EAGAIN || now_ns() >= deadline) return errno == EAGAIN ? failed() : refused();
    timespec pause{0, 1000000};
    syscall(SYS_ppoll, nullptr, 0, &pause, nullptr, 0);
  }
  const bool want_ring = __atomic_load_n(&g_state.region_owner, __ATOMIC_ACQUIRE) < 0;
  ctl::HelloRequest hello{};
  hello.h = ctl::make_header(ctl::Op::kHello, sizeof hello, c.next_request++);
  hello.role = static_cast<uint32_t>(ctl::Role::kShim);
  hello.flags = want_ring ? ctl::kHelloWantRing : 0;
  hello.pid = static_cast<uint32_t>(g_state.pid);
  if (!send_all(fd, &hello, sizeof hello, deadline)) return failed();
  // Connecting is rare; the reply buffer is too big for every thread's stack or TLS.
  auto* buf = static_cast<uint8_t*>(alloc_pages(ctl::kMaxReply));
  if (!buf) return refused();
  struct Unmap {
    uint8_t* p;
    ~Unmap() { munmap(p, ctl::kMaxReply); }
  } unmap_buf{buf};
  int fds[4];
  int nfds = 4;
  long n = recv_reply(fd, buf, ctl::kMaxReply, hello.h.request_id, fds, &nfds, deadline);
  if (n < 0) return failed();
  ctl::HelloReply rep{};
  if (n >= static_cast<long>(sizeof rep)) memcpy(&rep, buf, sizeof rep);
  if (n < static_cast<long>(sizeof rep) ||
      rep.h.op != static_cast<uint16_t>(ctl::Op::kHelloReply) || rep.status != 0 || nfds < 1) {
    for (int k = 0; k < nfds; ++k) sys_close(fds[k]);
    return refused();
  }
  note_answer();
  // Installing is short and never blocks; a thread that finds another installing
  // simply uses what that one installs.
  if (try_lock(&g_state.install_lock)) {
    install_arena(fds[0], rep.arena_size, rep.arena_generation);
    install_datasets(buf, static_cast<size_t>(n), rep.dataset_count);
    if (nfds > 1 && want_ring && install_region(fds[1]))
      __atomic_store_n(&g_state.region_owner, static_cast<int>(&c - g_state.conns),
                       __ATOMIC_RELEASE);
    unlock(&g_state.install_lock);
  }
  for (int k = 0; k < nfds; ++k) sys_close(fds[k]);
  struct stat st {};
  fstat(fd, &st);
  c.ino = st.st_ino;
  set_conn_fd(c, fd);
  return true;
}

}  // namespace

int acquire_conn() {
  for (int i = 0; i < kMaxConns; ++i) {
    uint32_t cur = __atomic_load_n(&g_state.busy, __ATOMIC_RELAXED);
    if (cur & (1u << i)) continue;
    if (__atomic_compare_exchange_n(&g_state.busy, &cur, cur | (1u << i), false, __ATOMIC_ACQUIRE,
                                    __ATOMIC_RELAXED))
      return i;
  }
  return -1;
}

bool acquire_open_conn(int i) {
  uint32_t cur = __atomic_load_n(&g_state.busy, __ATOMIC_RELAXED);
  if ((cur & (1u << i)) || conn_fd(g_state.conns[i]) < 0) return false;
  if (!__atomic_compare_exchange_n(&g_state.busy, &cur, cur | (1u << i), false, __ATOMIC_ACQUIRE,
                                   __ATOMIC_RELAXED))
    return false;
  if (conn_fd(g_state.conns[i]) >= 0) return true;
  release_conn(i);
  return false;
}

void release_conn(int i) {
  __atomic_fetch_and(&g_state.busy, ~(1u << i), __ATOMIC_RELEASE);
}

void drop_conn(Conn& c) {
  if (const int fd = conn_fd(c); fd >= 0) sys_close(fd);
  set_conn_fd(c, -1);
  forget_region_owner(c);
}

// An app that closed our socket with a raw system call may have a new file on that
// number now: never write our protocol into it.
bool conn_is_ours(Conn& c) {
  struct stat st {};
  const int fd = conn_fd(c);
  if (fd >= 0 && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == c.ino) return true;
  set_conn_fd(c, -1);  // not ours any more: forget, never close, the number
  forget_region_owner(c);
  return false;
}

bool agent_backed_off(uint64_t now) {
  return now < __atomic_load_n(&g_state.sick_until_ns, __ATOMIC_RELAXED);
}

void reset_agent_backoff() {
  __atomic_store_n(&g_state.sick_until_ns, uint64_t{0}, __ATOMIC_RELAXED);
  __atomic_store_n(&g_state.backoff_ns, uint64_t{0}, __ATOMIC_RELAXED);
  __atomic_store_n(&g_state.next_connect_ns, uint64_t{0}, __ATOMIC_RELAXED);
}

bool connect_conn(Conn& c) {
  const int saved = errno;
  const bool ok = connect_by(c, now_ns() + kAgentDeadlineNs);
  errno = saved;
  return ok;
}

bool round_trip(void* req, size_t len, void* reply, size_t reply_cap, long* reply_len) {
  const uint64_t start = now_ns();
  if (agent_backed_off(start)) return false;
  const uint64_t deadline = start + kAgentDeadlineNs;
  const int i = acquire_conn();
  if (i < 0) return false;
  const int saved = errno;
  Conn& c = g_state.conns[i];
  bool ok = false;
  for (int attempt = 0; attempt < 2 && !ok; ++attempt) {
    if ((conn_fd(c) < 0 || !conn_is_ours(c)) && !connect_by(c, deadline)) break;
    auto* h = static_cast<ctl::MsgHeader*>(req);
    h->request_id = c.next_request++;
    if (!send_all(conn_fd(c), req, len, deadline)) {
      drop_conn(c);  // agent restarted: reconnect once, within the same deadline
      continue;
    }
    long n = recv_reply(conn_fd(c), reply, reply_cap, h->request_id, nullptr, nullptr, deadline);
    if (n < 0) {
      // Dropping the connection is what discards a reply that comes too late.
      drop_conn(c);
      if (now_ns() >= deadline) note_silence(now_ns());
      break;  // no answer: do not wait twice
    }
    note_answer();
    *reply_len = n;
    ok = true;
  }
  release_conn(i);
  errno = saved;
  return ok;
}

}  // namespace dc::shim
