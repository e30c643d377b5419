// The shim's link to dcagent, as the rest of the shim sees it. The state behind it
// lives in one place (shim_state.h, with its fork/vfork/exec/restart rules); the
// modules behind these calls are named there. Every failure reads as "no agent",
// which the callers turn into reading the real file, and no call waits on the
// agent longer than kAgentDeadlineNs (agent_conn.h).
#pragma once

#include <cstdint>

#include "dc/arena.h"
#include "dc/arena_reader.h"
#include "dc/control.h"
#include "shim/fd_table.h"
#include "shim/shim_state.h"

namespace dc::shim {

// Reads the environment (DC_SOCKET, DC_SHIM_DISABLE, DC_SHIM_EXCLUDE).
void link_init();
// Whole-shim initialisation (real functions, environment, fork handlers), defined
// in interpose_fd.cc. Runs once, from the constructor or from the first wrapper
// that needs it, whichever comes first: other libraries' constructors may open
// files before ours has run.
void shim_global_init();

const ShimEnv& link_start_env();
// Initialises the shim on first call; false while another thread is initialising it.
bool shim_enabled();

// The dataset roots, or null while unknown. Never waits for an agent that does not
// answer: they come from the agent's roots file when it has one (dataset_roots.h).
const DatasetList* link_datasets();
// The current arena, or null. No system call on the hit path; notices a retired
// or hung-up agent within about a second and then connects anew (arena_map.cc).
const ArenaView* link_arena();
// Makes sure the 32 MiB of arena around `slot` are mapped in this process (one
// MADV_POPULATE_READ instead of a page fault per few pages; faults are costly, and
// very costly in some VMs). Cheap when already done: one bit test.
void link_map_slot(const ArenaView& view, uint32_t slot);

// Asks the agent to make blocks resident. True iff all of them are now in the arena.
bool link_fetch(const FdInfo& fi, uint64_t first_block, uint32_t count);
// Tells the agent a file under a dataset root was opened for writing or closed after.
void link_invalidate(uint32_t dataset_id, const char* rel, uint32_t len);

// Shim-side counters and hit hints into the client region (no-ops without one).
enum class Served { kHit, kMiss, kFallback };
void link_count(Served how, uint64_t bytes);
void link_record_hit(uint32_t slot, uint64_t key_lo);

void link_after_fork_child();
// The application is closing (or replacing) descriptor `fd`: if it is one of the
// shim's agent connections, stop using that number (the app's call closes it).
void link_forget_fd(int fd);
void link_forget_fd_range(unsigned first, unsigned last);
// True in a child made by vfork (or clone sharing our memory) before exec: it must
// not change state it shares with its parent.
bool link_in_foreign_process();

}  // namespace dc::shim
