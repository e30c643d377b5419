// All of the shim's per-process state, in one place, with the rule for what fork,
// vfork, exec and an agent restart do to each field. The modules that act on it:
//   agent_conn.cc     the connection pool, deadlines and back-off;
//   arena_map.cc      the mapped arena, its liveness check and retirement;
//   client_region.cc  the per-session client region (hit ring, counters);
//   dataset_roots.cc  the dataset roots (from the agent's roots file or its hello);
//   shim_init.cc      settings read from the environment at start;
//   agent_link.cc     the requests (fetch, invalidate) and the fork hook.
// (The fd table, fd_table.cc, keeps its own rules; it is per descriptor, not per link.)
//
// Rules that hold for every field:
//  - exec: the new image starts from the zero state below (every socket and memfd
//    the shim holds is close-on-exec, every mapping is dropped by the kernel);
//  - vfork: the child shares this memory until it execs or exits, so it must write
//    none of it (link_in_foreign_process() tells); what it may do is named per field;
//  - fork: shim_state_after_fork_child() applies the per-field rule in the child,
//    which has exactly one thread (the one that forked).
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "dc/arena.h"
#include "dc/arena_reader.h"
#include "dc/control.h"

namespace dc::shim {

struct Dataset {
  const char* name;
  uint32_t name_len;
  const char* root;  // canonical absolute path, no trailing slash
  uint32_t root_len;
};

struct DatasetList {
  uint32_t count;
  Dataset items[ctl::kMaxDatasets];
};

// What this process started with, for exec'd children (copied at start: the
// program may change its environment later).
struct ShimEnv {
  char preload[4096];    // LD_PRELOAD as started ("" if none)
  char shim_path[1024];  // the entry of LD_PRELOAD that is this shim
  char socket[108];      // DC_SOCKET as started ("" if none)
};

// One control connection (one agent session).
struct Conn {
  int fd = -1;
  uint32_t next_request = 1;
  uint64_t ino = 0;  // of our socket: the number may be closed and reused behind our back
};

inline constexpr int kMaxConns = 8;

// A connection's number is read by other threads than its holder (an app thread
// closing that number makes the shim forget it; the liveness poll looks at idle
// ones), so every access is atomic. Relaxed: the number is the only datum shared.
inline int conn_fd(const Conn& c) { return __atomic_load_n(&c.fd, __ATOMIC_RELAXED); }
inline void set_conn_fd(Conn& c, int fd) { __atomic_store_n(&c.fd, fd, __ATOMIC_RELAXED); }

struct ShimState {
  // --- Settings (shim_init.cc). Written once, by link_init, before any other use.
  // fork: kept. vfork: read only. agent restart: kept.
  char socket_path[108] = "/run/dc/agent.sock";
  bool enabled = true;
  ShimEnv start_env{};
  uint32_t init_state = 0;  // 0: not started, 1: running, 2: done. fork: kept (2).

  // --- The process we are, to tell a vfork child (which shares this memory).
  // fork: the child's own pid. agent restart: kept.
  pid_t pid = 0;

  // --- Connection pool (agent_conn.cc).
  // conns: fork: the child closes its copies (they are the parent's sessions: using
  //   one would read the parent's replies) and connects afresh when it needs to.
  //   vfork: untouched (a child closing its copy of a socket does not forget it).
  //   agent restart: each conn is dropped at its first failed request, or all at
  //   once when the arena is found retired (arena_map.cc).
  Conn conns[kMaxConns];
  // busy: bit i set while a thread uses conns[i]. fork: 0 (those threads are gone).
  uint32_t busy = 0;
  // next_connect_ns: no connect before this (after a refused connect: an absent
  //   agent costs one failed connect per half second). fork: 0. restart: 0 on detection.
  uint64_t next_connect_ns = 0;
  // sick_until_ns / backoff_ns: an agent that did not answer within the deadline is
  //   not asked again before sick_until_ns; each further silence doubles backoff_ns
  //   (capped), an answer resets it. fork: kept (a hung agent is hung for the child
  //   too). restart: reset on detection (the new agent is not the hung one).
  uint64_t sick_until_ns = 0;
  uint64_t backoff_ns = 0;

  // --- Installing what a hello brings (arena, roots, region) is serialised by this
  // try-lock; a thread that finds it taken uses what the holder installs.
  // fork: 0 (the holder is gone).
  uint32_t install_lock = 0;

  // --- The arena (arena_map.cc): the view of the mapped memfd, or null.
  // fork: kept (a shared mapping stays valid in the child; its granule bits are
  //   cleared, fork copies no page tables of a shared mapping). vfork: read only.
  // agent restart: the old view's pages are replaced by zeros in place (never
  //   unmapped: a reader may be copying) and the view is never freed; the next
  //   dataset read connects and installs the new agent's arena.
  const ArenaView* arena = nullptr;
  // next_liveness_ns: when the hit path next polls a session socket for a dead
  //   agent (coarse clock, no system call in between). fork: 0. restart: 0.
  uint64_t next_liveness_ns = 0;
  // next_arena_try_ns: with no arena, a dataset read connects at most this often.
  //   fork: 0. restart: 0 on detection.
  uint64_t next_arena_try_ns = 0;
  // arena_connector: tid of the thread asking the agent for an arena (0: none);
  //   other threads wait for its answer (within the agent deadline) instead of
  //   reading the file themselves. fork: 0 (that thread is not in the child).
  //   restart: untouched (the asking thread clears it).
  int arena_connector = 0;

  // --- Dataset roots (dataset_roots.cc), or null while unknown. Lists are never
  // freed (a thread may be reading one). fork: kept. vfork: read only.
  // agent restart: kept until the new agent's hello replaces them.
  const DatasetList* datasets = nullptr;

  // --- Client region (client_region.cc): counters and hit ring shared with the
  // agent session conns[region_owner], or -1 with no live owner.
  // fork: the child keeps writing the parent's region (the agent reads it while
  //   the parent's session lives) with region_owner -1, so its first hit opens a
  //   session of its own. vfork: a child may add to counters (harmless).
  // agent restart: region_owner -1 on detection; the old region stays mapped (a
  //   thread may be writing to it) until a new session brings a new one.
  abi::ClientRegionHeader* region = nullptr;
  int region_owner = -1;
  uint64_t next_session_try_ns = 0;  // fork: 0.
};

extern ShimState g_state;

// CLOCK_MONOTONIC from the vDSO: no system call.
uint64_t now_ns();
// CLOCK_MONOTONIC_COARSE (a few ms of resolution, cheaper still): for checks that
// run on every hit.
uint64_t coarse_now_ns();
// Memory for objects published to other threads. mmap, not malloc: a wrapper may
// run where malloc is unsafe (signal handler, forked child of a threaded parent).
void* alloc_pages(size_t n);
bool try_lock(uint32_t* l);
void unlock(uint32_t* l);

// Applies the fork rules above in a freshly forked child.
void shim_state_after_fork_child();

}  // namespace dc::shim
