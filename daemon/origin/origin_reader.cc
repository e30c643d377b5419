#include "daemon/origin/origin_reader.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace dc {

Result<OriginReader*> OriginReader::create(uint32_t depth) {
  auto* r = new OriginReader();
  int rc = io_uring_queue_init(depth, &r->ring_, 0);
  if (rc < 0) {
    delete r;
    return make_error(Errc::kUnsupported, std::string("io_uring_queue_init: ") + strerror(-rc));
  }
  r->ring_ok_ = true;
  r->depth_ = depth;
  r->event_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (r->event_fd_ < 0 || io_uring_register_eventfd(&r->ring_, r->event_fd_) < 0) {
    delete r;
    return make_error(Errc::kIo, "io_uring eventfd registration failed");
  }
  return r;
}

OriginReader::~OriginReader() {
  if (ring_ok_) io_uring_queue_exit(&ring_);
  if (event_fd_ >= 0) close(event_fd_);
}

void OriginReader::submit(OriginFdRef file, const std::vector<iovec>& iov, uint64_t offset,
                          uint64_t expect, uint64_t user) {
  uint32_t idx;
  if (!free_ops_.empty()) {
    idx = free_ops_.back();
    free_ops_.pop_back();
  } else {
    idx = static_cast<uint32_t>(ops_.size());
    ops_.emplace_back();
  }
  Op& op = ops_[idx];
  op.file = std::move(file);
  op.iov = iov;
  op.first = 0;
  op.offset = offset;
  op.remaining = expect;
  op.user = user;
  issue(idx);
  flush();
}

bool OriginReader::issue(uint32_t idx) {
  if (in_flight_ >= depth_) {
    backlog_.push_back(idx);
    return false;
  }
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (!sqe) {
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
    if (!sqe) {
      backlog_.push_back(idx);
      return false;
    }
  }
  Op& op = ops_[idx];
  io_uring_prep_readv(sqe, op.file->get(), op.iov.data() + op.first,
                      static_cast<unsigned>(op.iov.size() - op.first), op.offset);
  io_uring_sqe_set_data64(sqe, idx);
  ++in_flight_;
  return true;
}

void OriginReader::flush() { io_uring_submit(&ring_); }

void OriginReader::retry_pending() {
  while (!backlog_.empty() && in_flight_ < depth_) {
    const uint32_t idx = backlog_.front();
    backlog_.erase(backlog_.begin());
    if (!issue(idx)) break;  // the ring is full of unsubmitted entries: next tick
  }
  flush();
}

void OriginReader::reap(const Done& done) {
  uint64_t ignored;
  while (read(event_fd_, &ignored, sizeof ignored) > 0) {
  }
  io_uring_cqe* cqe;
  while (io_uring_peek_cqe(&ring_, &cqe) == 0) {
    const uint32_t idx = static_cast<uint32_t>(io_uring_cqe_get_data64(cqe));
    const int res = cqe->res;
    io_uring_cqe_seen(&ring_, cqe);
    --in_flight_;
    Op& op = ops_[idx];
    bool finished = false, ok = false;
    int err = 0;
    if (res < 0) {
      err = -res;
      finished = !(err == EAGAIN || err == EINTR);  // else: try again as is
    } else if (static_cast<uint64_t>(res) >= op.remaining) {
      bytes_read_ += op.remaining;
      finished = ok = true;
    } else if (res == 0) {
      finished = true;  // the file shrank under us
      err = ENODATA;
    } else {
      // Short read: continue after the bytes that arrived.
      bytes_read_ += static_cast<uint64_t>(res);
      op.remaining -= static_cast<uint64_t>(res);
      size_t got = static_cast<size_t>(res);
      op.offset += got;
      while (got > 0 && op.first < op.iov.size()) {
        iovec& v = op.iov[op.first];
        if (got >= v.iov_len) {
          got -= v.iov_len;
          ++op.first;
        } else {
          v.iov_base = static_cast<char*>(v.iov_base) + got;
          v.iov_len -= got;
          got = 0;
        }
      }
      if (op.first >= op.iov.size()) {
        finished = true;  // buffers full yet bytes missing: cannot happen; fail safe
        err = EIO;
      }
    }
    if (!finished) {
      issue(idx);
      continue;
    }
    const uint64_t user = op.user;
    op.file.reset();
    free_ops_.push_back(idx);
    done(user, ok, err);
  }
  retry_pending();
}

}  // namespace dc
