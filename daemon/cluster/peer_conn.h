// One TCP connection between two agents, non-blocking, framed by the peer protocol
// (include/dc/peer_wire.h). Input: header (CRC-checked), then the control body
// (checked against body_crc), then for FetchReply the data, received straight into
// whatever iovecs the handler names (arena pages). Output: a queue; data borrowed
// from the arena is handed to the kernel in place, and only a remainder the kernel
// did not take at once is copied, so the arena pages may change after a send call.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "dc/peer_wire.h"

namespace dc {

class PeerConn;

struct PeerConnHandler {
  virtual ~PeerConnHandler() = default;
  // A header and its control body arrived (already checked). For a FetchReply
  // carrying data, fill `data_dest` with where its `data_len` bytes go (leave it
  // empty to discard them). Return false to drop the connection.
  virtual bool on_message(PeerConn& c, const peer::Header& h, const uint8_t* body, size_t len,
                          uint32_t data_len, std::vector<iovec>* data_dest) = 0;
  // All data of FetchReply `request_id` has arrived in the iovecs named above.
  virtual void on_data(PeerConn& c, uint32_t request_id) = 0;
};

class PeerConn {
 public:
  PeerConn(int fd, uint64_t id);
  ~PeerConn();
  PeerConn(const PeerConn&) = delete;
  PeerConn& operator=(const PeerConn&) = delete;

  int fd() const { return fd_; }
  uint64_t id() const { return id_; }
  const std::string& error() const { return error_; }

  // Reads what is available and dispatches messages. False: the connection is
  // broken or the peer misbehaved (see error()); the caller drops it.
  bool on_readable(PeerConnHandler& h);

  // Queues a message: header filled in here (CRCs included). `data` is borrowed
  // until the next flush() returns; its CRC is the caller's (in the body).
  void send(peer::Op op, uint32_t request_id, const void* body, uint32_t body_len,
            const std::vector<iovec>& data = {});
  // Writes what the kernel takes. False on error. wants_write(): data still queued.
  bool flush();
  bool wants_write() const { return !out_.empty(); }
  uint64_t bytes_sent() const { return bytes_sent_; }
  uint64_t bytes_received() const { return bytes_received_; }

 private:
  enum class In { kHeader, kBody, kData };
  struct Chunk {
    std::vector<uint8_t> owned;  // if empty, `borrowed` points at caller memory
    iovec borrowed{nullptr, 0};
    size_t done = 0;
    const uint8_t* ptr() const { return owned.empty() ? static_cast<const uint8_t*>(borrowed.iov_base) : owned.data(); }
    size_t size() const { return owned.empty() ? borrowed.iov_len : owned.size(); }
  };
  bool fail(const std::string& why);
  bool header_ready(PeerConnHandler& h);
  bool body_ready(PeerConnHandler& h);

  int fd_;
  uint64_t id_;
  std::string error_;
  In in_ = In::kHeader;
  peer::Header hdr_{};
  size_t got_ = 0;             // bytes of the current header/body/data received
  std::vector<uint8_t> body_;
  uint32_t data_len_ = 0;
  std::vector<iovec> data_dest_;
  size_t data_iov_ = 0;        // data_dest_[data_iov_] is being filled
  std::vector<uint8_t> discard_;
  void set_lowat(size_t bytes);
  std::deque<Chunk> out_;
  size_t lowat_ = 1;
  uint64_t bytes_sent_ = 0;
  uint64_t bytes_received_ = 0;
};

}  // namespace dc
