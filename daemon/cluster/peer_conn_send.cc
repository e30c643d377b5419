// PeerConn's output side: the queue and the three send paths (see peer_conn.h).
//
// What keeps borrowed arena pages valid while the kernel holds them:
//  - copy: nothing needs to. sendmsg copies into socket buffers; whatever it did
//    not take is copied into the queue before flush() returns.
//  - zerocopy: the kernel references the pages until the call's completion
//    arrives on the error queue (after the peer acknowledged the bytes, or after
//    a local delivery copied them: SO_EE_CODE_ZEROCOPY_COPIED). The pin is
//    released only then. An owned buffer (message headers) that went out in such a
//    call is kept alive the same way.
//  - sendfile: the socket's queue holds references to the memfd's pages until the
//    bytes are acknowledged (the retransmit queue). The pin is released once
//    SIOCOUTQ (unacknowledged + unsent bytes) shows the stream acknowledged past
//    the reply. On a veth or loopback path the receiving socket holds the same
//    pages until its reader copies them out, after the ACK: the receiver reads at
//    once and checks the CRC, but this window is why sendfile is not the default
//    there (docs/architecture.md).
// A connection that closes with pins outstanding is reset (SO_LINGER 0), so the
// kernel drops what it still queued instead of sending it later, then every pin is
// released.
#include <time.h>  // before linux/errqueue.h, which uses struct timespec

#include <linux/errqueue.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iterator>

#include "daemon/cluster/peer_conn.h"
#include "daemon/net/crc32c.h"

namespace dc {
namespace {

// Pinned bytes queued on one connection beyond which replies are copied: a peer
// that asks and never reads must not pin the arena.
constexpr uint64_t kMaxPinnedBytes = 64ull << 20;
constexpr int kMaxIov = 64;

}  // namespace

SendPath send_path_of(const std::string& name) {
  if (name == "zerocopy") return SendPath::kZeroCopy;
  if (name == "sendfile") return SendPath::kSendfile;
  return SendPath::kCopy;
}

const char* send_path_name(SendPath p) {
  switch (p) {
    case SendPath::kZeroCopy: return "zerocopy";
    case SendPath::kSendfile: return "sendfile";
    default: return "copy";
  }
}

void PeerConn::set_send_source(const SendSource* source, SendCounters* counters) {
  source_ = source;
  counters_ = counters;
  path_ = source ? source->path : SendPath::kCopy;
  if (path_ == SendPath::kZeroCopy) {
    int one = 1;
    if (setsockopt(fd_, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof one) != 0) path_ = SendPath::kCopy;
  }
  if (path_ == SendPath::kSendfile && (source->file_fd < 0 || !source->file_base)) path_ = SendPath::kCopy;
}

void PeerConn::send(peer::Op op, uint32_t request_id, const void* body, uint32_t body_len,
                    const std::vector<iovec>& data, uint64_t pin) {
  size_t data_len = 0;
  for (const auto& v : data) data_len += v.iov_len;
  // Sealed, the tag covers the body: no CRC of it (which, encrypted, would leak).
  const bool sealed = seal_out_ != nullptr;
  peer::Header h{peer::kMagic,
                 peer::kVersion,
                 static_cast<uint16_t>(op),
                 request_id,
                 static_cast<uint32_t>(body_len + data_len),
                 body_len && !sealed ? crc32c(body, body_len) : 0,
                 0};
  h.header_crc = crc32c(&h, sizeof h);
  // Header and control body (and its tag) go in one owned chunk: small messages
  // queued in one loop iteration are then written together (coalesced) by flush().
  // (A chunk nothing has been sent from is referenced by no MSG_ZEROCOPY call yet.)
  Chunk c;
  const size_t tag = sealed ? peer::kTagBytes : 0;
  c.owned.resize(sizeof h + body_len + tag);
  memcpy(c.owned.data(), &h, sizeof h);
  if (body_len) memcpy(c.owned.data() + sizeof h, body, body_len);
  if (sealed) {
    uint8_t* b = c.owned.data() + sizeof h;
    // A failure here (OpenSSL) leaves a wrong tag: the peer drops the connection.
    if (!seal_out_->begin(&h, sizeof h) || (body_len && !seal_out_->update(b, b, body_len)) ||
        !seal_out_->finish_seal(b + body_len))
      memset(b + body_len, 0, tag);
  }
  if (!out_.empty() && !out_.back().owned.empty() && out_.back().done == 0 && out_.back().owned.size() < 4096) {
    auto& prev = out_.back().owned;
    prev.insert(prev.end(), c.owned.begin(), c.owned.end());
  } else {
    out_.push_back(std::move(c));
  }
  if (data.empty()) {
    if (pin && source_ && source_->release) source_->release(pin);
    return;
  }
  if (sealed) {
    bool copied = false;
    seal_data(h, data, &copied);
    if (copied) {
      // Encrypted into a private buffer: the arena pages are no longer needed.
      if (pin && source_ && source_->release) source_->release(pin);
      return;
    }
  }
  bool in_place = pin != 0 && path_ != SendPath::kCopy;
  if (in_place && pinned_bytes_ + data_len > kMaxPinnedBytes) {
    in_place = false;
    if (counters_) ++counters_->over_pin_cap;
  }
  // Sealed (mac), the data's tag was queued already: insert the data before it.
  auto at = sealed ? std::prev(out_.end()) : out_.end();
  for (const auto& v : data) {
    Chunk d;
    d.borrowed = v;
    d.pinned = in_place;
    if (in_place) pinned_bytes_ += v.iov_len;
    at = std::next(out_.insert(at, std::move(d)));  // (insert invalidates other iterators)
  }
  if (in_place) {
    std::prev(at)->pin = pin;
    if (counters_) ++counters_->pinned_replies;
  } else if (pin) {
    // Sent as on the copy path: the pin goes back once flush() has copied what the
    // kernel did not take.
    release_after_flush_.push_back(pin);
  }
  if (pin) ++pins_held_;
}

// The data part of a sealed message. mac: its tag, computed over the data where it
// is, is queued (the caller puts the data chunks before it). encrypt: the
// ciphertext and its tag are queued as one owned chunk (*copied = true).
void PeerConn::seal_data(const peer::Header& hdr, const std::vector<iovec>& data, bool* copied) {
  size_t data_len = 0;
  for (const auto& v : data) data_len += v.iov_len;
  const bool encrypt = seal_out_->encrypts();
  Chunk t;
  t.owned.resize((encrypt ? data_len : 0) + peer::kTagBytes);
  uint8_t* out = t.owned.data();
  bool ok = seal_out_->begin(&hdr, sizeof hdr);
  for (const auto& v : data) {
    ok = ok && seal_out_->update(static_cast<const uint8_t*>(v.iov_base), out, v.iov_len);
    if (encrypt) out += v.iov_len;
  }
  ok = ok && seal_out_->finish_seal(out);
  if (!ok) memset(out, 0, peer::kTagBytes);  // OpenSSL failed: the peer drops the connection
  out_.push_back(std::move(t));
  *copied = encrypt;
}

bool PeerConn::from_file(const Chunk& c) const {
  if (path_ != SendPath::kSendfile || !c.pinned) return false;
  const auto* p = static_cast<const uint8_t*>(c.borrowed.iov_base);
  return p >= source_->file_base && p + c.borrowed.iov_len <= source_->file_base + source_->file_size;
}

// A chunk left the queue: whatever the kernel may still read of it is held.
void PeerConn::chunk_left(Chunk& c) {
  if (c.pinned) pinned_bytes_ -= c.borrowed.iov_len;
  const bool keep_owned = c.in_zc && !c.owned.empty();
  if (!c.pin && !keep_owned) return;
  Held h;
  h.pin = c.pin;
  if (keep_owned) h.keep = std::move(c.owned);
  h.stream_end = bytes_sent_;
  h.zc_end = zc_next_;
  held_.push_back(std::move(h));
}

// `sent` bytes of the queue's head went to the kernel (`zc`: in a MSG_ZEROCOPY call).
void PeerConn::advance(size_t sent, bool zc) {
  bytes_sent_ += sent;
  while (sent > 0 && !out_.empty()) {
    Chunk& c = out_.front();
    const size_t left = c.size() - c.done;
    if (zc) c.in_zc = true;
    if (sent >= left) {
      sent -= left;
      c.done = c.size();
      chunk_left(c);
      out_.pop_front();
    } else {
      c.done += sent;
      sent = 0;
    }
  }
}

// One sendmsg over the owned and borrowed chunks at the head of the queue, up to
// the first chunk that goes by sendfile.
bool PeerConn::send_batch(bool* blocked) {
  iovec iov[kMaxIov];
  int cnt = 0;
  size_t offered = 0;
  bool any_pinned = false, any_unpinned_borrowed = false, file_next = false;
  for (auto it = out_.begin(); it != out_.end() && cnt < kMaxIov; ++it) {
    if (from_file(*it)) {
      file_next = true;
      break;
    }
    iov[cnt++] = iovec{const_cast<uint8_t*>(it->ptr()) + it->done, it->size() - it->done};
    offered += it->size() - it->done;
    any_pinned |= it->pinned;
    any_unpinned_borrowed |= it->owned.empty() && !it->pinned;
  }
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = static_cast<size_t>(cnt);
  // MSG_ZEROCOPY only where every borrowed byte is pinned: the kernel may read the
  // pages after this call returns. MSG_MORE before a sendfile: the header waits
  // for the data instead of leaving in a packet of its own.
  bool zc = path_ == SendPath::kZeroCopy && any_pinned && !any_unpinned_borrowed;
  const int base = MSG_DONTWAIT | MSG_NOSIGNAL | (file_next ? MSG_MORE : 0);
  ssize_t n;
  for (;;) {
    n = sendmsg(fd_, &msg, base | (zc ? MSG_ZEROCOPY : 0));
    if (n >= 0 || errno != ENOBUFS || !zc) break;
    // Out of option memory for notifications: this send is copied instead.
    zc = false;
    if (counters_) ++counters_->zc_enobufs;
  }
  if (counters_) ++counters_->syscalls;
  if (n < 0) {
    if (errno == EINTR) return true;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return fail(std::string("send: ") + strerror(errno));
    *blocked = true;
    return true;
  }
  if (zc && n > 0) {
    ++zc_next_;  // the kernel numbers every MSG_ZEROCOPY call that queued bytes
    if (counters_) ++counters_->zc_calls;
  }
  advance(static_cast<size_t>(n), zc && n > 0);
  if (static_cast<size_t>(n) < offered) *blocked = true;
  return true;
}

bool PeerConn::send_file_chunk(Chunk& c, bool* blocked) {
  off_t off = static_cast<const uint8_t*>(c.borrowed.iov_base) + c.done - source_->file_base;
  const size_t want = c.size() - c.done;
  ssize_t n = sendfile(fd_, source_->file_fd, &off, want);
  if (counters_) {
    ++counters_->syscalls;
    ++counters_->sendfile_calls;
  }
  if (n < 0) {
    if (errno == EINTR) return true;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return fail(std::string("sendfile: ") + strerror(errno));
    *blocked = true;
    return true;
  }
  advance(static_cast<size_t>(n), false);
  if (static_cast<size_t>(n) < want) *blocked = true;
  return true;
}

// Only on the copy path: borrowed arena bytes may change once we return to the
// event loop, so keep a private copy of what is left of them.
void PeerConn::copy_unpinned() {
  for (Chunk& c : out_) {
    if (!c.owned.empty() || c.pinned) continue;
    const uint8_t* p = static_cast<const uint8_t*>(c.borrowed.iov_base) + c.done;
    c.owned.assign(p, p + (c.borrowed.iov_len - c.done));
    c.borrowed = iovec{nullptr, 0};
    c.done = 0;
  }
}

bool PeerConn::flush() {
  bool blocked = false;
  while (!out_.empty() && !blocked) {
    const bool ok = from_file(out_.front()) ? send_file_chunk(out_.front(), &blocked) : send_batch(&blocked);
    if (!ok) return false;
  }
  if (blocked) copy_unpinned();
  for (uint64_t pin : release_after_flush_) {
    --pins_held_;
    if (source_ && source_->release) source_->release(pin);
  }
  release_after_flush_.clear();
  if (!held_.empty()) poll_done();
  return true;
}

void PeerConn::read_zc_completions() {
  for (;;) {
    alignas(cmsghdr) char control[256];
    msghdr msg{};
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    if (recvmsg(fd_, &msg, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) return;  // empty (EAGAIN)
    for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
      const bool recverr = (cm->cmsg_level == SOL_IP && cm->cmsg_type == IP_RECVERR) ||
                           (cm->cmsg_level == SOL_IPV6 && cm->cmsg_type == IPV6_RECVERR);
      if (!recverr) continue;
      sock_extended_err ee;
      memcpy(&ee, CMSG_DATA(cm), sizeof ee);
      if (ee.ee_errno != 0 || ee.ee_origin != SO_EE_ORIGIN_ZEROCOPY) continue;
      // Calls [ee_info, ee_data], numbered mod 2^32: place them next to our count.
      const uint64_t first = zc_done_below_ + static_cast<uint32_t>(ee.ee_info - static_cast<uint32_t>(zc_done_below_));
      const uint64_t last = first + static_cast<uint32_t>(ee.ee_data - ee.ee_info);
      if (last >= zc_next_) continue;  // not a call of ours: ignore rather than release early
      if (counters_) {
        counters_->zc_completed += last - first + 1;
        if (ee.ee_code & SO_EE_CODE_ZEROCOPY_COPIED) counters_->zc_copied += last - first + 1;
      }
      auto& end = zc_done_ranges_[first];
      end = std::max(end, last);
    }
    while (!zc_done_ranges_.empty() && zc_done_ranges_.begin()->first <= zc_done_below_) {
      zc_done_below_ = std::max(zc_done_below_, zc_done_ranges_.begin()->second + 1);
      zc_done_ranges_.erase(zc_done_ranges_.begin());
    }
  }
}

void PeerConn::release_done() {
  uint64_t acked = 0;
  if (path_ == SendPath::kSendfile && !held_.empty()) {
    int outq = 0;
    if (ioctl(fd_, SIOCOUTQ, &outq) != 0) return;
    acked = bytes_sent_ - static_cast<uint64_t>(outq);
  }
  while (!held_.empty()) {
    const Held& h = held_.front();
    const bool done = path_ == SendPath::kSendfile ? acked >= h.stream_end : zc_done_below_ >= h.zc_end;
    if (!done) break;
    if (h.pin) {
      --pins_held_;
      if (source_ && source_->release) source_->release(h.pin);
    }
    held_.pop_front();
  }
}

void PeerConn::poll_done() {
  if (path_ == SendPath::kZeroCopy && zc_done_below_ < zc_next_) read_zc_completions();
  if (!held_.empty()) release_done();
}

void PeerConn::close_and_release() {
  if (fd_ >= 0 && (pins_held_ > 0 || !held_.empty())) {
    // Drop, do not send, what the kernel still has queued: the pages go back now.
    linger l{1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  for (Chunk& c : out_)
    if (c.pin) held_.push_back(Held{c.pin, {}, 0, 0});
  for (uint64_t pin : release_after_flush_) held_.push_back(Held{pin, {}, 0, 0});
  release_after_flush_.clear();
  out_.clear();
  for (Held& h : held_) {
    if (!h.pin) continue;
    if (counters_) ++counters_->pins_dropped_on_close;
    if (source_ && source_->release) source_->release(h.pin);
  }
  held_.clear();
  pins_held_ = 0;
  pinned_bytes_ = 0;
}

}  // namespace dc
