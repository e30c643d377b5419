// Serving reads of tracked descriptors from the arena.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <cstdint>

#include "shim/fd_table.h"

namespace dc::shim {

inline constexpr ssize_t kNotServed = -2;

// Reads [off, off+len) of the file behind `fd` (described by `fi`) from the arena,
// fetching missing blocks through the agent and reading any remainder it cannot
// serve from the real fd. Returns bytes read, or kNotServed when nothing was
// served (the caller then makes the plain system call, whose result and errno
// are the truth). Never changes the fd's file offset.
ssize_t serve_pread(int fd, const FdInfo& fi, void* buf, size_t len, uint64_t off);
ssize_t serve_preadv(int fd, const FdInfo& fi, const iovec* iov, int cnt, uint64_t off);

}  // namespace dc::shim
