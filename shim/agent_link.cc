#include "shim/agent_link.h"

#include <dlfcn.h>
#include <errno.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "dc/barrier.h"
#include "shim/real.h"

namespace dc::shim {
namespace {

constexpr int kMaxConns = 8;
constexpr uint64_t kRetryNs = 500'000'000;  // after a failed connect
constexpr int kReplyTimeoutSec = 30;

struct Conn {
  int fd = -1;
  uint32_t next_request = 1;
  uint64_t ino = 0;  // of our socket: the number may be closed and reused behind our back
};

char g_socket_path[108] = "/run/dc/agent.sock";
bool g_enabled = true;
Conn g_conns[kMaxConns];
uint32_t g_busy = 0;          // bit i: g_conns[i] in use by some thread
uint64_t g_next_connect_ns = 0;
uint32_t g_install_lock = 0;  // guards installing arena / datasets / region
pid_t g_pid = 0;              // this process, as of the last fork we saw

const ArenaView* g_arena = nullptr;
const DatasetList* g_datasets = nullptr;
abi::ClientRegionHeader* g_region = nullptr;
// The client region belongs to the agent session (connection) that asked for it;
// when that connection is gone the agent has retired the region, so the next
// connection asks for a new one. -1: no live owner.
int g_region_owner = -1;

uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);  // vDSO: no system call
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

// Memory for objects published to other threads. mmap, not malloc: a wrapper may
// run where malloc is unsafe (signal handler, forked child of a threaded parent).
void* alloc_pages(size_t n) {
  void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

int acquire_conn() {
  for (int i = 0; i < kMaxConns; ++i) {
    uint32_t cur = __atomic_load_n(&g_busy, __ATOMIC_RELAXED);
    if (cur & (1u << i)) continue;
    if (__atomic_compare_exchange_n(&g_busy, &cur, cur | (1u << i), false, __ATOMIC_ACQUIRE,
                                    __ATOMIC_RELAXED))
      return i;
  }
  return -1;
}

void release_conn(int i) { __atomic_fetch_and(&g_busy, ~(1u << i), __ATOMIC_RELEASE); }

void drop_conn(Conn& c) {
  if (c.fd >= 0) sys_close(c.fd);
  c.fd = -1;
  if (g_region_owner == static_cast<int>(&c - g_conns)) __atomic_store_n(&g_region_owner, -1, __ATOMIC_RELEASE);
}

// The shim's own socket I/O goes through raw system calls: they are not pthread
// cancellation points, so a cancelled app thread never leaves a connection or an
// fd lock half-used.
bool send_all(int fd, const void* data, size_t len) {
  long n = syscall(SYS_sendto, fd, data, len, MSG_NOSIGNAL, nullptr, 0);
  return n == static_cast<long>(len);
}

// Receives the reply to `request_id`, with attached descriptors if any. On
// success the descriptors are the caller's (*nfds of them); on failure none are
// returned (any that arrived are closed here) and *nfds is 0.
long recv_reply(int fd, void* buf, size_t cap, uint32_t request_id, int* fds, int* nfds) {
  const int capacity = nfds ? *nfds : 0;
  if (nfds) *nfds = 0;
  for (;;) {
    iovec iov{buf, cap};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
    memset(control, 0, sizeof control);
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    long n = syscall(SYS_recvmsg, fd, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    // Only a successful receive fills the control area: after a failure (the
    // agent gone) it holds nothing we may read, let alone close.
    if (n < 0) return -1;
    int got = 0;
    int received[4];
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      int count = static_cast<int>((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
      for (int k = 0; k < count; ++k) {
        int passed;
        memcpy(&passed, CMSG_DATA(c) + k * sizeof(int), sizeof passed);
        if (got < capacity && got < 4) received[got++] = passed;
        else sys_close(passed);
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

bool try_lock(uint32_t* l) {
  uint32_t z = 0;
  return __atomic_compare_exchange_n(l, &z, 1u, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}
void unlock(uint32_t* l) { __atomic_store_n(l, 0u, __ATOMIC_RELEASE); }

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
// The page area is mapped 32 MiB at a time: one MADV_POPULATE_READ fills 16
// huge-page entries. Measured (forked readers, tools/bench/dataloader_bench.sh's
// workload): filling 2 MiB per call spent ~9% of the readers' CPU setting page
// table entries one call at a time; at 32 MiB that fell to ~2%, and each new
// worker process must fill its own (fork does not copy a shared mapping's).
constexpr uint32_t kGranuleShift = 25;

// A view with, right behind it, one bit per 32 MiB granule of its page area.
uint64_t* granule_bits(const ArenaView& v) {
  return reinterpret_cast<uint64_t*>(const_cast<ArenaView*>(&v) + 1);
}

void install_arena(int fd, uint64_t size, uint64_t generation) {
  const ArenaView* cur = __atomic_load_n(&g_arena, __ATOMIC_ACQUIRE);
  if (cur && cur->generation == generation) return;  // same agent: keep our mapping
  void* base = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) return;
  const size_t granules = (size >> kGranuleShift) + 1;
  auto* view = static_cast<ArenaView*>(alloc_pages(sizeof(ArenaView) + (granules + 63) / 64 * 8));
  if (!view || !arena_view_init(base, size, view)) {
    munmap(base, size);
    return;
  }
  // Huge page mappings where the agent's arena has huge pages (one page-table fill
  // per 2 MiB); the header and index are read on every lookup: map them now.
  madvise(base, size, MADV_HUGEPAGE);
  madvise(base, static_cast<size_t>(view->pages - view->base), MADV_POPULATE_READ);
  __atomic_store_n(&g_arena, view, __ATOMIC_RELEASE);
  if (cur) {
    // The old agent is gone. Readers may still be copying from its arena: swap its
    // pages for zeros in place (never unmap) so their seqlock re-check sees 0 and
    // they treat it as a miss. The old view object is left allocated on purpose.
    mmap(const_cast<uint8_t*>(cur->base), cur->size, PROT_READ,
         MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  }
}

void install_datasets(const uint8_t* buf, size_t len, uint32_t count) {
  if (count > ctl::kMaxDatasets) return;
  // One allocation: the list, then the names and roots it points into.
  const size_t bytes = sizeof(DatasetList) + len + 1;
  auto* list = static_cast<DatasetList*>(alloc_pages(bytes));
  if (!list) return;
  char* strings = reinterpret_cast<char*>(list + 1);
  size_t at = sizeof(ctl::HelloReply);
  uint32_t n = 0;
  for (; n < count; ++n) {
    ctl::DatasetRecord rec;
    if (at + sizeof rec > len) break;
    memcpy(&rec, buf + at, sizeof rec);
    at += sizeof rec;
    if (at + rec.name_len + rec.root_len > len) break;
    Dataset& d = list->items[n];
    memcpy(strings, buf + at, rec.name_len);
    d.name = strings;
    d.name_len = rec.name_len;
    strings[rec.name_len] = '\0';
    strings += rec.name_len + 1;
    memcpy(strings, buf + at + rec.name_len, rec.root_len);
    d.root = strings;
    d.root_len = rec.root_len;
    strings[rec.root_len] = '\0';
    strings += rec.root_len + 1;
    at = (at + rec.name_len + rec.root_len + 7) & ~size_t{7};
  }
  list->count = n;
  // Older lists stay allocated: a thread may still be reading one.
  __atomic_store_n(&g_datasets, list, __ATOMIC_RELEASE);
}

// A replaced region is never unmapped: another thread may be writing to it.
bool install_region(int fd) {
  void* p = mmap(nullptr, abi::kClientRegionBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return false;
  auto* r = static_cast<abi::ClientRegionHeader*>(p);
  if (r->magic != abi::kClientRegionMagic || r->ring_capacity != abi::kHitRingCapacity) {
    munmap(p, abi::kClientRegionBytes);
    return false;
  }
  __atomic_store_n(&g_region, r, __ATOMIC_RELEASE);
  return true;
}

// Connects conn `c` and greets the agent. Caller holds the conn.
bool connect_conn(Conn& c) {
  const uint64_t now = now_ns();
  if (now < __atomic_load_n(&g_next_connect_ns, __ATOMIC_RELAXED)) return false;
  int fd = static_cast<int>(syscall(SYS_socket, AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (fd < 0) return false;
  timeval tv{kReplyTimeoutSec, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  timeval stv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &stv, sizeof stv);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, g_socket_path, sizeof g_socket_path);
  auto fail = [&]() {
    sys_close(fd);
    __atomic_store_n(&g_next_connect_ns, now + kRetryNs, __ATOMIC_RELAXED);
    return false;
  };
  if (syscall(SYS_connect, fd, &addr, sizeof addr) != 0) return fail();
  const bool want_ring = __atomic_load_n(&g_region_owner, __ATOMIC_ACQUIRE) < 0;
  ctl::HelloRequest hello{};
  hello.h = ctl::make_header(ctl::Op::kHello, sizeof hello, c.next_request++);
  hello.role = static_cast<uint32_t>(ctl::Role::kShim);
  hello.flags = want_ring ? ctl::kHelloWantRing : 0;
  hello.pid = static_cast<uint32_t>(g_pid);
  if (!send_all(fd, &hello, sizeof hello)) return fail();
  // Connecting is rare; the reply buffer is too big for every thread's stack or TLS.
  auto* buf = static_cast<uint8_t*>(alloc_pages(ctl::kMaxReply));
  if (!buf) return fail();
  struct Unmap {
    uint8_t* p;
    ~Unmap() { munmap(p, ctl::kMaxReply); }
  } unmap_buf{buf};
  int fds[4];
  int nfds = 4;
  long n = recv_reply(fd, buf, ctl::kMaxReply, hello.h.request_id, fds, &nfds);
  ctl::HelloReply rep{};
  if (n >= static_cast<long>(sizeof rep)) memcpy(&rep, buf, sizeof rep);
  if (n < static_cast<long>(sizeof rep) || rep.h.op != static_cast<uint16_t>(ctl::Op::kHelloReply) ||
      rep.status != 0 || nfds < 1) {
    for (int k = 0; k < nfds; ++k) sys_close(fds[k]);
    return fail();
  }
  // Installing is short and never blocks; a thread that finds another installing
  // simply uses what that one installs.
  if (try_lock(&g_install_lock)) {
    install_arena(fds[0], rep.arena_size, rep.arena_generation);
    install_datasets(buf, static_cast<size_t>(n), rep.dataset_count);
    if (nfds > 1 && want_ring && install_region(fds[1]))
      __atomic_store_n(&g_region_owner, static_cast<int>(&c - g_conns), __ATOMIC_RELEASE);
    unlock(&g_install_lock);
  }
  for (int k = 0; k < nfds; ++k) sys_close(fds[k]);
  struct stat st {};
  fstat(fd, &st);
  c.ino = st.st_ino;
  c.fd = fd;
  return true;
}

// Is c.fd still the socket we connected? An app that closed it with a raw system
// call may have a new file on that number now: never write our protocol into it.
bool conn_is_ours(Conn& c) {
  struct stat st {};
  if (c.fd >= 0 && fstat(c.fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == c.ino) return true;
  c.fd = -1;  // not ours any more: forget, never close, the number
  if (g_region_owner == static_cast<int>(&c - g_conns)) __atomic_store_n(&g_region_owner, -1, __ATOMIC_RELEASE);
  return false;
}

// Sends `req` on a pooled connection and waits for its reply. False if the agent
// could not be reached or did not answer; the connection is dropped then.
bool round_trip(void* req, size_t len, void* reply, size_t reply_cap, long* reply_len) {
  const int i = acquire_conn();
  if (i < 0) return false;
  Conn& c = g_conns[i];
  bool ok = false;
  for (int attempt = 0; attempt < 2 && !ok; ++attempt) {
    if ((c.fd < 0 || !conn_is_ours(c)) && !connect_conn(c)) break;
    auto* h = static_cast<ctl::MsgHeader*>(req);
    h->request_id = c.next_request++;
    if (!send_all(c.fd, req, len)) {
      drop_conn(c);  // agent restarted: reconnect once
      continue;
    }
    long n = recv_reply(c.fd, reply, reply_cap, h->request_id, nullptr, nullptr);
    if (n < 0) {
      drop_conn(c);
      break;  // no answer in time: do not wait twice
    }
    *reply_len = n;
    ok = true;
  }
  release_conn(i);
  return ok;
}

}  // namespace

namespace {

ShimEnv g_start_env{};

void copy_env(char* out, size_t cap, const char* value) {
  if (value && strlen(value) < cap) memcpy(out, value, strlen(value) + 1);
}

// The LD_PRELOAD entry naming this library, found by matching the path the
// dynamic loader mapped us from.
void find_shim_entry() {
  Dl_info info{};
  if (!dladdr(reinterpret_cast<void*>(&link_init), &info) || !info.dli_fname) return;
  copy_env(g_start_env.shim_path, sizeof g_start_env.shim_path, info.dli_fname);
}

// DC_SHIM_EXCLUDE="prog1:prog2": programs (by short name) that must never be
// intercepted, whatever LD_PRELOAD says.
bool excluded(const char* list, const char* name) {
  const size_t n = strlen(name);
  for (const char* p = list; p && *p;) {
    const char* end = strchr(p, ':');
    const size_t len = end ? static_cast<size_t>(end - p) : strlen(p);
    if (len == n && strncmp(p, name, n) == 0) return true;
    p = end ? end + 1 : nullptr;
  }
  return false;
}

}  // namespace

void link_init() {
  g_pid = getpid();
  const char* sock = getenv("DC_SOCKET");
  if (sock && *sock && strlen(sock) < sizeof g_socket_path) {
    memset(g_socket_path, 0, sizeof g_socket_path);
    memcpy(g_socket_path, sock, strlen(sock));
  }
  copy_env(g_start_env.preload, sizeof g_start_env.preload, getenv("LD_PRELOAD"));
  copy_env(g_start_env.socket, sizeof g_start_env.socket, sock);
  find_shim_entry();
  const char* off = getenv("DC_SHIM_DISABLE");
  if (off && *off && strcmp(off, "0") != 0) g_enabled = false;
  // The agent reads the origin itself; it must never be served by a shim.
  if (strcmp(program_invocation_short_name, "dcagent") == 0) g_enabled = false;
  if (excluded(getenv("DC_SHIM_EXCLUDE"), program_invocation_short_name)) g_enabled = false;
}

const ShimEnv& link_start_env() { return g_start_env; }

namespace {
uint32_t g_init_state = 0;  // 0: not started, 1: running, 2: done
}

bool shim_enabled() {
  uint32_t state = __atomic_load_n(&g_init_state, __ATOMIC_ACQUIRE);
  if (__builtin_expect(state != 2, 0)) {
    if (state == 1) return false;  // another thread is initialising: pass through
    uint32_t expected = 0;
    if (__atomic_compare_exchange_n(&g_init_state, &expected, 1u, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
      shim_global_init();
      __atomic_store_n(&g_init_state, 2u, __ATOMIC_RELEASE);
    } else if (expected != 2) {
      return false;
    }
  }
  return g_enabled;
}

const DatasetList* link_datasets() {
  const DatasetList* d = __atomic_load_n(&g_datasets, __ATOMIC_ACQUIRE);
  if (d || !g_enabled) return d;
  if (now_ns() < __atomic_load_n(&g_next_connect_ns, __ATOMIC_RELAXED)) return nullptr;
  const int i = acquire_conn();
  if (i < 0) return nullptr;
  if (g_conns[i].fd < 0) connect_conn(g_conns[i]);
  release_conn(i);
  return __atomic_load_n(&g_datasets, __ATOMIC_ACQUIRE);
}

const ArenaView* link_arena() { return __atomic_load_n(&g_arena, __ATOMIC_ACQUIRE); }

void link_map_slot(const ArenaView& v, uint32_t slot) {
  const uint64_t off = static_cast<uint64_t>(v.pages - v.base) + (static_cast<uint64_t>(slot) << v.page_shift);
  const uint64_t g = off >> kGranuleShift;
  uint64_t* word = &granule_bits(v)[g / 64];
  const uint64_t bit = 1ULL << (g % 64);
  if (__atomic_load_n(word, __ATOMIC_RELAXED) & bit) return;
  // Racing threads may both populate: harmless. If the kernel lacks the advice, the
  // bit is set anyway and pages simply fault in as they are touched.
  const uint64_t start = g << kGranuleShift;
  const uint64_t end = start + (1ULL << kGranuleShift) < v.size ? start + (1ULL << kGranuleShift) : v.size;
  const int saved = errno;
  madvise(const_cast<uint8_t*>(v.base) + start, end - start, MADV_POPULATE_READ);
  errno = saved;
  __atomic_fetch_or(word, bit, __ATOMIC_RELAXED);
}

bool link_fetch(const FdInfo& fi, uint64_t first_block, uint32_t count) {
  struct {
    ctl::FetchRequest f;
    char path[kSlotPathMax];
  } req;
  req.f.key_hi = fi.key.hi;
  req.f.key_lo = fi.key.lo;
  req.f.first_block = first_block;
  req.f.block_count = count;
  req.f.dataset_id = static_cast<uint16_t>(fi.dataset_id);
  req.f.path_len = static_cast<uint16_t>(fi.path_len);
  memcpy(req.path, fi.path, fi.path_len);
  const size_t len = sizeof req.f + fi.path_len;
  req.f.h = ctl::make_header(ctl::Op::kFetch, static_cast<uint32_t>(len), 0);
  ctl::FetchReply rep{};
  long n = 0;
  if (!round_trip(&req, len, &rep, sizeof rep, &n)) return false;
  return n == sizeof rep && rep.h.op == static_cast<uint16_t>(ctl::Op::kFetchReply) &&
         rep.status == 0 && rep.blocks_ready == count;
}

void link_invalidate(uint32_t dataset_id, const char* rel, uint32_t len) {
  if (len == 0 || len > ctl::kMaxPath) return;
  struct {
    ctl::InvalidateRequest r;
    char path[ctl::kMaxPath];
  } req;
  req.r.dataset_id = static_cast<uint16_t>(dataset_id);
  req.r.path_len = static_cast<uint16_t>(len);
  req.r.reserved = 0;
  memcpy(req.path, rel, len);
  const size_t total = sizeof req.r + len;
  req.r.h = ctl::make_header(ctl::Op::kInvalidate, static_cast<uint32_t>(total), 0);
  ctl::InvalidateReply rep{};
  long n = 0;
  round_trip(&req, total, &rep, sizeof rep, &n);
}

void link_count(Served how, uint64_t bytes) {
  abi::ClientRegionHeader* r = __atomic_load_n(&g_region, __ATOMIC_ACQUIRE);
  if (!r) return;
  abi::ClientCounters& c = r->counters;
  uint64_t* reads = how == Served::kHit ? &c.hit_reads : how == Served::kMiss ? &c.miss_reads : &c.fallback_reads;
  uint64_t* b = how == Served::kHit ? &c.hit_bytes : how == Served::kMiss ? &c.miss_bytes : &c.fallback_bytes;
  __atomic_fetch_add(reads, 1, __ATOMIC_RELAXED);
  __atomic_fetch_add(b, bytes, __ATOMIC_RELAXED);
}

namespace {
uint64_t g_next_session_try_ns = 0;

// A process whose region belongs to no live session of ours (a forked child still
// writing into its parent's region, or the agent restarted) opens its own session
// the first time it serves a hit, at most every 100 ms, so its hits keep reaching
// the agent under its own name even if it never misses.
void ensure_session() {
  const uint64_t now = now_ns();
  if (now < __atomic_load_n(&g_next_session_try_ns, __ATOMIC_RELAXED)) return;
  __atomic_store_n(&g_next_session_try_ns, now + 100'000'000, __ATOMIC_RELAXED);
  const int i = acquire_conn();
  if (i < 0) return;
  Conn& c = g_conns[i];
  if (c.fd >= 0) {
    if (!conn_is_ours(c)) c.fd = -1;
    else drop_conn(c);  // reconnect this one, asking for a region
  }
  const int saved = errno;
  connect_conn(c);
  errno = saved;
  release_conn(i);
}
}  // namespace

void link_record_hit(uint32_t slot, uint64_t key_lo) {
  if (__builtin_expect(__atomic_load_n(&g_region_owner, __ATOMIC_RELAXED) < 0, 0) && g_enabled) ensure_session();
  abi::ClientRegionHeader* r = __atomic_load_n(&g_region, __ATOMIC_ACQUIRE);
  if (!r) return;
  uint64_t* recs = reinterpret_cast<uint64_t*>(r + 1);
  const uint64_t at = ring_claim(&r->head);
  ring_put(&recs[at & (abi::kHitRingCapacity - 1)], abi::hit_record(slot, key_lo));
}

void link_after_fork_child() {
  g_pid = getpid();
  // The parent's connections and region belong to the parent: a child that used
  // them would read the parent's replies. Close ours (the descriptors were copied)
  // and let the first miss connect afresh. The arena mapping stays valid.
  for (auto& c : g_conns) drop_conn(c);
  g_busy = 0;
  g_install_lock = 0;
  // Keep writing counts and hits into the inherited region (the agent still reads
  // it while the parent lives) until this child has a session of its own.
  g_region_owner = -1;
  g_next_connect_ns = 0;
  g_next_session_try_ns = 0;
  // fork copies no page-table entries of a shared mapping: what the parent had
  // populated must be populated again here, or every first touch faults alone.
  if (const ArenaView* v = __atomic_load_n(&g_arena, __ATOMIC_ACQUIRE)) {
    const size_t words = ((v->size >> kGranuleShift) + 1 + 63) / 64;
    memset(granule_bits(*v), 0, words * 8);
  }
}

void link_forget_fd(int fd) {
  if (fd < 0) return;
  for (auto& c : g_conns) {
    if (c.fd != fd) continue;
    // A vfork child closing its copy of our socket must not make the parent forget
    // (and so leak) its own.
    if (link_in_foreign_process()) return;
    c.fd = -1;
    if (g_region_owner == static_cast<int>(&c - g_conns)) __atomic_store_n(&g_region_owner, -1, __ATOMIC_RELEASE);
  }
}

void link_forget_fd_range(unsigned first, unsigned last) {
  for (auto& c : g_conns)
    if (c.fd >= 0 && static_cast<unsigned>(c.fd) >= first && static_cast<unsigned>(c.fd) <= last) link_forget_fd(c.fd);
}

bool link_in_foreign_process() { return static_cast<pid_t>(syscall(SYS_getpid)) != g_pid; }

}  // namespace dc::shim
