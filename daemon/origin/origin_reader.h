// Reads from origin files straight into arena pages with io_uring: one READV per
// block, many blocks in flight, completions signalled on an eventfd that the
// agent's event loop watches.
#pragma once

#include <liburing.h>
#include <sys/uio.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "common/result.h"
#include "daemon/origin/origin_fd.h"

namespace dc {

class OriginReader {
 public:
  // Called once per finished read: `user` as submitted, `ok` iff all `len` bytes came.
  using Done = std::function<void(uint64_t user, bool ok, int err)>;

  static Result<OriginReader*> create(uint32_t depth);
  ~OriginReader();
  OriginReader(const OriginReader&) = delete;
  OriginReader& operator=(const OriginReader&) = delete;

  int event_fd() const { return event_fd_; }
  // Reads at `offset` of `file` into `iov` (copied). The read succeeds once `expect`
  // bytes have arrived: the buffers may be longer (an O_DIRECT read is rounded up
  // to the device's block size and ends short at end of file). The read holds
  // `file` until it finishes (queued, in flight or resubmitted after a short read).
  void submit(OriginFdRef file, const std::vector<iovec>& iov, uint64_t offset, uint64_t expect,
              uint64_t user);
  // Drains completions (call when event_fd() is readable), resubmitting short reads.
  void reap(const Done& done);
  // Submits what an earlier io_uring_submit left in the ring (it failed, e.g.
  // EAGAIN or EINTR) and what waits in the backlog with no completion coming to
  // drain it. Cheap; the agent calls it on every tick so no read is left behind.
  void retry_pending();
  uint64_t bytes_read() const { return bytes_read_; }
  uint32_t in_flight() const { return in_flight_; }

 private:
  struct Op {
    OriginFdRef file;  // kept open until the op is done
    std::vector<iovec> iov;
    size_t first = 0;  // iov[first..] remain
    uint64_t offset = 0;
    uint64_t remaining = 0;  // bytes still expected
    uint64_t user = 0;
  };
  OriginReader() = default;
  bool issue(uint32_t op_index);  // false: the op went (back) to the backlog
  void flush();

  io_uring ring_{};
  bool ring_ok_ = false;
  int event_fd_ = -1;
  std::vector<Op> ops_;
  std::vector<uint32_t> free_ops_;
  std::vector<uint32_t> backlog_;  // ops waiting for a submission slot
  uint32_t in_flight_ = 0;
  uint32_t depth_ = 0;
  uint64_t bytes_read_ = 0;
};

}  // namespace dc
