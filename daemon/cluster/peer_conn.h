// One TCP connection between two agents, non-blocking, framed by the peer protocol
// (include/dc/peer_wire.h). Input: header (CRC-checked), then the control body
// (checked against body_crc), then for FetchReply the data, received straight into
// whatever iovecs the handler names (arena pages). Output: a queue, written by one
// of three send paths (SendPath): block data borrowed from the arena is either
// handed to sendmsg, with a private copy of any remainder the kernel did not take
// at once (copy), or sent in place from pages the caller has pinned until the
// kernel is done with them (zerocopy: MSG_ZEROCOPY, done = its completion on the
// error queue; sendfile: from the arena memfd, done = the bytes are acknowledged).
// The output side is in peer_conn_send.cc.
//
// Sealing (start_sealing(), after the handshake, unless integrity = crc): every
// message then carries GCM tags (peer_wire.h, "Integrity"). Input: the control body
// is opened when its tag arrives, before the handler sees it; block data is fed to
// the GCM state as each receive lands (decrypted in place in encrypt mode), and
// on_data() is called only once the data's tag verified. A bad tag counts as an
// authentication error and fails the connection, so the block being filled is
// never published from those bytes. Output: send() seals each part as it queues it;
// in mac mode the data stays where it is (pins, zerocopy and sendfile unchanged)
// and only its tag is queued after it; in encrypt mode the ciphertext is a private
// buffer, so replies are never sent in place.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "daemon/net/auth.h"
#include "daemon/net/frame_seal.h"
#include "dc/peer_wire.h"

namespace dc {

class PeerConn;

enum class SendPath : uint8_t { kCopy, kZeroCopy, kSendfile };
SendPath send_path_of(const std::string& name);  // config value ("copy", ...); unknown: copy
const char* send_path_name(SendPath p);
peer::Integrity integrity_of(const std::string& name);  // config value ("mac", ...); unknown: mac
const char* integrity_name(peer::Integrity m);          // a wire value not in the enum: "unknown"

// Where a connection's block data comes from and how a pin is handed back. Pins
// are opaque (non-zero) numbers of the caller's; release(pin) is called exactly
// once per pin given to send(), at the latest when the connection is destroyed.
struct SendSource {
  SendPath path = SendPath::kCopy;
  int file_fd = -1;                    // sendfile: the arena memfd ...
  const uint8_t* file_base = nullptr;  // ... mapped here from offset 0
  uint64_t file_size = 0;
  std::function<void(uint64_t pin)> release;
};

// What the send paths did, summed over the connections that share it.
struct SendCounters {
  uint64_t syscalls = 0;          // sendmsg + sendfile calls that moved bytes or hit a full socket
  uint64_t zc_calls = 0;          // sendmsg calls with MSG_ZEROCOPY that the kernel took
  uint64_t zc_completed = 0;      // of those, reported done on the error queue
  uint64_t zc_copied = 0;         // ... with SO_EE_CODE_ZEROCOPY_COPIED (the kernel copied after all)
  uint64_t zc_enobufs = 0;        // MSG_ZEROCOPY refused (optmem limit): that send was copied
  uint64_t sendfile_calls = 0;
  uint64_t pinned_replies = 0;    // replies sent in place under a pin
  uint64_t over_pin_cap = 0;      // replies copied because the connection held too much pinned
  uint64_t pins_dropped_on_close = 0;  // pins released when a connection closed mid-send
};

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

  // Seals every message sent and opens every message received from now on
  // (integrity mac or encrypt; crc: nothing changes). Call it between the last
  // unsealed message of the handshake and the first sealed one. `auth_errors`
  // (outliving the connection, may be null) counts parts whose tag failed.
  Status start_sealing(peer::Integrity mode, const SessionKey& send_key, const SessionKey& recv_key,
                       uint64_t* auth_errors);
  bool sealed() const { return seal_in_ != nullptr; }
  // The connection failed because a tag did not verify (see error()).
  bool auth_failed() const { return auth_failed_; }

  // Reads what is available and dispatches messages. False: the connection is
  // broken or the peer misbehaved (see error()); the caller drops it.
  bool on_readable(PeerConnHandler& h);

  // Sets the send path (a zerocopy socket gets SO_ZEROCOPY; if the kernel refuses,
  // the connection copies). `counters` outlives the connection.
  void set_send_source(const SendSource* source, SendCounters* counters);
  SendPath send_path() const { return path_; }

  // Queues a message: header filled in here (CRCs included); the data's CRC is the
  // caller's (in the body). Without a pin, `data` is borrowed until the next
  // flush() returns. With a pin (non-zero; the caller keeps the pages unchanged
  // until release(pin)), the data may be sent in place, now or later.
  void send(peer::Op op, uint32_t request_id, const void* body, uint32_t body_len,
            const std::vector<iovec>& data = {}, uint64_t pin = 0);
  // Writes what the kernel takes. False on error. wants_write(): data still queued.
  bool flush();
  bool wants_write() const { return !out_.empty(); }
  // Bytes queued that the kernel has not taken yet: replies the peer has not read.
  uint64_t queued_bytes() const {
    uint64_t n = 0;
    for (const Chunk& c : out_) n += c.size() - c.done;
    return n;
  }
  // Releases pins the kernel is done with: reads zero-copy completions from the
  // error queue, or (sendfile) compares the bytes acknowledged with SIOCOUTQ.
  void poll_done();
  size_t pins_held() const { return pins_held_; }
  uint64_t bytes_sent() const { return bytes_sent_; }
  uint64_t bytes_received() const { return bytes_received_; }

 private:
  enum class In { kHeader, kBody, kBodyTag, kData, kDataTag };
  struct Chunk {
    std::vector<uint8_t> owned;  // if empty, `borrowed` points at caller memory
    iovec borrowed{nullptr, 0};
    size_t done = 0;
    bool pinned = false;   // borrowed pages under a pin: never copied, sent in place
    bool in_zc = false;    // some of its bytes went out in a MSG_ZEROCOPY call
    uint64_t pin = 0;      // on a reply's last chunk: its pin
    const uint8_t* ptr() const { return owned.empty() ? static_cast<const uint8_t*>(borrowed.iov_base) : owned.data(); }
    size_t size() const { return owned.empty() ? borrowed.iov_len : owned.size(); }
  };
  // What the kernel may still read after a chunk left the queue: a pin, or an owned
  // buffer a MSG_ZEROCOPY call referenced. Done once the stream is acknowledged
  // up to stream_end (sendfile), or every MSG_ZEROCOPY call numbered below zc_end
  // has completed (zerocopy).
  struct Held {
    uint64_t pin = 0;
    std::vector<uint8_t> keep;
    uint64_t stream_end = 0;
    uint64_t zc_end = 0;
  };
  bool fail(const std::string& why);
  bool auth_fail(const std::string& what);
  bool header_ready(PeerConnHandler& h);
  bool body_complete(PeerConnHandler& h);
  bool body_tag_ready(PeerConnHandler& h);
  bool body_ready(PeerConnHandler& h);
  bool data_complete(PeerConnHandler& h);
  bool data_tag_ready(PeerConnHandler& h);
  void seal_data(const peer::Header& hdr, const std::vector<iovec>& data, bool* copied);
  bool from_file(const Chunk& c) const;
  bool send_file_chunk(Chunk& c, bool* blocked);
  bool send_batch(bool* blocked);
  void advance(size_t sent, bool zc);
  void chunk_left(Chunk& c);
  void copy_unpinned();
  void read_zc_completions();
  void release_done();
  void close_and_release();

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
  // Sealing (null: integrity = crc, or still in the handshake).
  std::unique_ptr<FrameSeal> seal_out_;
  std::unique_ptr<FrameSeal> seal_in_;
  uint8_t tag_[peer::kTagBytes] = {};  // the tag being received
  uint64_t* auth_errors_ = nullptr;
  bool auth_failed_ = false;
  void set_lowat(size_t bytes);
  std::deque<Chunk> out_;
  size_t lowat_ = 1;
  uint64_t bytes_sent_ = 0;
  uint64_t bytes_received_ = 0;
  // Send path state (peer_conn_send.cc).
  SendPath path_ = SendPath::kCopy;
  const SendSource* source_ = nullptr;
  SendCounters* counters_ = nullptr;
  std::deque<Held> held_;
  std::vector<uint64_t> release_after_flush_;  // pins of replies sent as on the copy path
  size_t pins_held_ = 0;        // pins queued or held
  uint64_t pinned_bytes_ = 0;   // bytes of queued pinned chunks
  uint64_t zc_next_ = 0;        // number of the next MSG_ZEROCOPY call (the kernel counts from 0)
  uint64_t zc_done_below_ = 0;  // every call below this has completed
  std::map<uint64_t, uint64_t> zc_done_ranges_;  // completions above a gap: first -> last
};

}  // namespace dc
