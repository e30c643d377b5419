// The requests the shim makes of the agent (fetch, invalidate), and the hooks that
// keep the link's state right across fork and the application's own closes.
#include "shim/agent_link.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "shim/agent_conn.h"
#include "shim/arena_map.h"

namespace dc::shim {

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

void link_after_fork_child() {
  shim_state_after_fork_child();
  arena_after_fork_child();
}

void link_forget_fd(int fd) {
  if (fd < 0) return;
  for (auto& c : g_state.conns) {
    if (conn_fd(c) != fd) continue;
    // A vfork child closing its copy of our socket must not make the parent forget
    // (and so leak) its own.
    if (link_in_foreign_process()) return;
    set_conn_fd(c, -1);
    if (g_state.region_owner == static_cast<int>(&c - g_state.conns))
      __atomic_store_n(&g_state.region_owner, -1, __ATOMIC_RELEASE);
  }
}

void link_forget_fd_range(unsigned first, unsigned last) {
  for (auto& c : g_state.conns) {
    const int fd = conn_fd(c);
    if (fd >= 0 && static_cast<unsigned>(fd) >= first && static_cast<unsigned>(fd) <= last)
      link_forget_fd(fd);
  }
}

bool link_in_foreign_process() {
  return static_cast<pid_t>(syscall(SYS_getpid)) != g_state.pid;
}

}  // namespace dc::shim
