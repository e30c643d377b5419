// The agent's arena as mapped in this process: installing it from a hello,
// noticing that its agent is gone (retired mark, or a hung-up session socket),
// and retiring it without ever unmapping it under a reader.
#pragma once

#include <cstdint>

#include "dc/arena_reader.h"

namespace dc::shim {

// Maps the arena memfd `fd` (from a hello) unless this generation is mapped already.
// Caller holds g_state.install_lock.
void install_arena(int fd, uint64_t size, uint64_t generation);
// (link_arena() and link_map_slot(), declared in agent_link.h, live here too.)
// fork copies no page-table entries of a shared mapping: forget what was populated.
void arena_after_fork_child();

}  // namespace dc::shim
