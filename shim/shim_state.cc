#include "shim/shim_state.h"

#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

#include "shim/real.h"

namespace dc::shim {

// Constant-initialised: wrappers may run before any constructor.
constinit ShimState g_state{};

uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t coarse_now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

void* alloc_pages(size_t n) {
  void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

bool try_lock(uint32_t* l) {
  uint32_t z = 0;
  return __atomic_compare_exchange_n(l, &z, 1u, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}
void unlock(uint32_t* l) {
  __atomic_store_n(l, 0u, __ATOMIC_RELEASE);
}

void shim_state_after_fork_child() {
  ShimState& s = g_state;
  s.pid = getpid();
  for (auto& c : s.conns) {
    if (const int fd = conn_fd(c); fd >= 0) sys_close(fd);  // our copy of the parent's session
    set_conn_fd(c, -1);
  }
  s.busy = 0;
  s.install_lock = 0;
  s.next_connect_ns = 0;
  s.next_liveness_ns = 0;
  s.next_arena_try_ns = 0;
  s.arena_connector = 0;
  s.region_owner = -1;
  s.next_session_try_ns = 0;
}

}  // namespace dc::shim
