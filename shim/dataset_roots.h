// The dataset roots: which opens the shim tracks. Learnt without waiting on the
// agent: first from the roots file the agent writes beside its socket
// (<socket>.roots, the dataset part of its hello reply), so an open never waits for
// an agent that is alive but not answering; only if there is no such file (an
// older agent) from a hello, within the agent deadline. A hello replaces them.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dc::shim {

// Installs the dataset records of a hello reply (`buf`, `len` bytes, HelloReply
// first). Caller holds g_state.install_lock.
void install_datasets(const uint8_t* buf, size_t len, uint32_t count);

}  // namespace dc::shim
