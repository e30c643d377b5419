// Sends the agent every kind of malformed or disallowed control message, each on a
// fresh connection, and checks after each one that the offending session was
// closed (or the request refused) and that a new, well-behaved client is still
// served. Usage: dcbadclient SOCKET DATASET_DIR
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "dc/control.h"

using namespace dc::ctl;

namespace {

std::string g_socket;
int g_failures = 0;

int dial() {
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, g_socket.c_str(), g_socket.size());
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    perror("connect");
    return -1;
  }
  return fd;
}

// Receives one reply; closes any descriptors attached. Returns bytes, 0 on EOF.
ssize_t recv_reply(int fd, std::vector<uint8_t>* buf) {
  buf->resize(kMaxReply);
  iovec iov{buf->data(), buf->size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = recvmsg(fd, &msg, 0);
  if (n < 0) return n;  // the control area is only meaningful after a receive
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    int count = static_cast<int>((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    for (int i = 0; i < count; ++i) {
      int passed;
      memcpy(&passed, CMSG_DATA(c) + i * sizeof(int), sizeof passed);
      close(passed);
    }
  }
  return n;
}

bool hello(int fd, Role role = Role::kCtl) {
  HelloRequest h{};
  h.h = make_header(Op::kHello, sizeof h, 1);
  h.role = static_cast<uint32_t>(role);
  h.pid = static_cast<uint32_t>(getpid());
  if (send(fd, &h, sizeof h, MSG_NOSIGNAL) != sizeof h) return false;
  std::vector<uint8_t> buf;
  return recv_reply(fd, &buf) >= static_cast<ssize_t>(sizeof(HelloReply));
}

// A well-behaved client: hello + stats must work.
bool agent_serves() {
  int fd = dial();
  if (fd < 0) return false;
  bool ok = hello(fd);
  StatsRequest s{make_header(Op::kStats, sizeof s, 2)};
  ok = ok && send(fd, &s, sizeof s, MSG_NOSIGNAL) == sizeof s;
  std::vector<uint8_t> buf;
  ok = ok && recv_reply(fd, &buf) >= static_cast<ssize_t>(sizeof(StatsReply));
  close(fd);
  return ok;
}

void check(const char* name, bool cond) {
  printf("%-48s %s\n", name, cond ? "ok" : "FAILED");
  if (!cond) ++g_failures;
}

// Sends `bytes` (after an optional hello) and expects the agent to hang up.
void expect_dropped(const char* name, const std::vector<uint8_t>& bytes, bool greet,
                    const std::function<void(int)>& send_fn = nullptr) {
  int fd = dial();
  if (fd < 0 || (greet && !hello(fd))) {
    check(name, false);
    return;
  }
  if (send_fn) send_fn(fd);
  else send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  std::vector<uint8_t> buf;
  ssize_t n = recv_reply(fd, &buf);
  close(fd);
  check(name, n == 0 && agent_serves());
}

template <typename T>
std::vector<uint8_t> as_bytes(const T& v) {
  std::vector<uint8_t> b(sizeof v);
  memcpy(b.data(), &v, sizeof v);
  return b;
}

std::vector<uint8_t> fetch_msg(const std::string& path, uint16_t dataset, uint32_t count, uint64_t key_lo = 1) {
  FetchRequest f{};
  f.key_hi = 1;
  f.key_lo = key_lo;
  f.first_block = 0;
  f.block_count = count;
  f.dataset_id = dataset;
  f.path_len = static_cast<uint16_t>(path.size());
  f.h = make_header(Op::kFetch, static_cast<uint32_t>(sizeof f + path.size()), 7);
  std::vector<uint8_t> b(sizeof f + path.size());
  memcpy(b.data(), &f, sizeof f);
  if (!path.empty()) memcpy(b.data() + sizeof f, path.data(), path.size());
  return b;
}

// Sends a well-formed fetch that the agent must refuse with `want` and keep the session.
void expect_refused(const char* name, const std::vector<uint8_t>& msg, Status want) {
  int fd = dial();
  bool ok = fd >= 0 && hello(fd, Role::kShim);
  ok = ok && send(fd, msg.data(), msg.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(msg.size());
  std::vector<uint8_t> buf;
  ssize_t n = ok ? recv_reply(fd, &buf) : -1;
  FetchReply rep{};
  if (n == sizeof rep) memcpy(&rep, buf.data(), sizeof rep);
  ok = ok && n == sizeof rep && rep.status == static_cast<int32_t>(want);
  if (!ok) fprintf(stderr, "%s: got n=%zd status=%d want %d\n", name, n, rep.status, static_cast<int>(want));
  // The session must survive a refused request.
  StatsRequest s{make_header(Op::kStats, sizeof s, 9)};
  ok = ok && send(fd, &s, sizeof s, MSG_NOSIGNAL) == sizeof s && recv_reply(fd, &buf) > 0;
  if (fd >= 0) close(fd);
  check(name, ok && agent_serves());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: dcbadclient SOCKET\n");
    return 2;
  }
  g_socket = argv[1];
  check("baseline: agent serves a good client", agent_serves());

  HelloRequest good{};
  good.h = make_header(Op::kHello, sizeof good, 1);
  good.role = static_cast<uint32_t>(Role::kCtl);

  expect_dropped("empty packet", {}, false);
  expect_dropped("truncated header (5 bytes)", {1, 2, 3, 4, 5}, false);
  {
    HelloRequest m = good;
    m.h.magic = 0xdeadbeef;
    expect_dropped("wrong magic", as_bytes(m), false);
  }
  {
    HelloRequest m = good;
    m.h.version = 99;
    expect_dropped("wrong version", as_bytes(m), false);
  }
  {
    HelloRequest m = good;
    m.h.length = 1000;
    expect_dropped("length field disagrees with packet", as_bytes(m), false);
  }
  {
    std::vector<uint8_t> big(kMaxRequest + 100, 0);
    MsgHeader h = make_header(Op::kHello, static_cast<uint32_t>(big.size()), 1);
    memcpy(big.data(), &h, sizeof h);
    expect_dropped("oversized packet", big, false);
  }
  {
    MsgHeader h = make_header(static_cast<Op>(200), sizeof(MsgHeader), 1);
    expect_dropped("unknown opcode", as_bytes(h), false);
  }
  {
    HelloRequest m = good;
    m.role = 77;
    expect_dropped("hello with unknown role", as_bytes(m), false);
  }
  {
    MsgHeader h = make_header(Op::kHello, 20, 1);
    std::vector<uint8_t> b = as_bytes(h);
    b.resize(20, 0);
    expect_dropped("truncated hello body", b, false);
  }
  expect_dropped("fetch before hello", fetch_msg("a.bin", 0, 1), false);
  expect_dropped("second hello", as_bytes(good), true);
  {
    std::vector<uint8_t> m = fetch_msg("a.bin", 0, 1);
    m.resize(m.size() - 2);  // path shorter than path_len says
    MsgHeader h;
    memcpy(&h, m.data(), sizeof h);
    h.length = static_cast<uint32_t>(m.size());
    memcpy(m.data(), &h, sizeof h);
    expect_dropped("fetch with truncated path", m, true);
  }
  expect_dropped("fetch of unknown dataset", fetch_msg("a.bin", 9, 1), true);
  expect_dropped("fetch of 0 blocks", fetch_msg("a.bin", 0, 0), true);
  expect_dropped("fetch of too many blocks", fetch_msg("a.bin", 0, kMaxFetchBlocks + 1), true);
  expect_dropped("fetch with empty key", fetch_msg("a.bin", 0, 1, 0), true, [](int fd) {
    std::vector<uint8_t> m = fetch_msg("a.bin", 0, 1);
    FetchRequest f;
    memcpy(&f, m.data(), sizeof f);
    f.key_hi = f.key_lo = 0;
    memcpy(m.data(), &f, sizeof f);
    send(fd, m.data(), m.size(), MSG_NOSIGNAL);
  });
  expect_dropped("fetch with NUL in path", fetch_msg(std::string("a\0b", 3), 0, 1), true);
  expect_dropped("descriptors attached by a client", {}, true, [](int fd) {
    HelloRequest m{};
    StatsRequest s{make_header(Op::kStats, sizeof s, 3)};
    (void)m;
    int passed = open("/dev/null", O_RDONLY);
    iovec iov{&s, sizeof s};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &passed, sizeof passed);
    sendmsg(fd, &msg, MSG_NOSIGNAL);
    close(passed);
  });

  // Well-formed requests the agent must refuse without dropping the session.
  expect_refused("fetch with '..' in path", fetch_msg("../../etc/passwd", 0, 1), Status::kBadRequest);
  expect_refused("fetch with absolute path", fetch_msg("/etc/passwd", 0, 1), Status::kBadRequest);
  expect_refused("fetch through a symlink out of the root", fetch_msg("escape", 0, 1), Status::kOutsideDataset);
  expect_refused("fetch of a missing file", fetch_msg("no-such-file", 0, 1), Status::kNotFound);
  expect_refused("fetch with a key that is not the file's", fetch_msg("a.bin", 0, 1), Status::kStale);

  printf("%d failure(s)\n", g_failures);
  return g_failures ? 1 : 0;
}
