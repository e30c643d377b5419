#include "daemon/cluster/peer_conn.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "daemon/net/crc32c.h"

namespace dc {
namespace {

uint32_t header_crc(peer::Header h) {
  h.header_crc = 0;
  return crc32c(&h, sizeof h);
}

// How many bytes of a body are control (checked by body_crc) before any data.
uint32_t control_len(const peer::Header& h) {
  return static_cast<peer::Op>(h.op) == peer::Op::kFetchReply ? sizeof(peer::FetchReplyBody) : h.body_len;
}

}  // namespace

peer::Integrity integrity_of(const std::string& name) {
  if (name == "encrypt") return peer::Integrity::kEncrypt;
  if (name == "crc") return peer::Integrity::kCrc;
  return peer::Integrity::kMac;
}

const char* integrity_name(peer::Integrity m) {
  switch (m) {
    case peer::Integrity::kCrc:
      return "crc";
    case peer::Integrity::kMac:
      return "mac";
    case peer::Integrity::kEncrypt:
      return "encrypt";
  }
  return "unknown";
}

PeerConn::PeerConn(int fd, uint64_t id) : fd_(fd), id_(id) {}

// While a large body is coming, wake only when a good part of it is there (or all
// that is left): fewer wakeups and fewer, larger receives. Back to 1 for headers.
void PeerConn::set_lowat(size_t bytes) {
  bytes = std::max<size_t>(1, std::min<size_t>(bytes, 256 * 1024));
  if (bytes == lowat_) return;
  int v = static_cast<int>(bytes);
  if (setsockopt(fd_, SOL_SOCKET, SO_RCVLOWAT, &v, sizeof v) == 0) lowat_ = bytes;
}

PeerConn::~PeerConn() { close_and_release(); }

bool PeerConn::fail(const std::string& why) {
  if (error_.empty()) error_ = why;
  return false;
}

bool PeerConn::auth_fail(const std::string& what) {
  if (!auth_failed_ && auth_errors_) ++*auth_errors_;
  auth_failed_ = true;
  return fail("authentication failed on " + what + " (altered, replayed or reordered)");
}

Status PeerConn::start_sealing(peer::Integrity mode, const SessionKey& send_key,
                               const SessionKey& recv_key, uint64_t* auth_errors) {
  if (mode == peer::Integrity::kCrc) return ok_status();
  const bool encrypt = mode == peer::Integrity::kEncrypt;
  auto out = FrameSeal::create(send_key, encrypt, true);
  if (!out) return out.error();
  auto in = FrameSeal::create(recv_key, encrypt, false);
  if (!in) return in.error();
  seal_out_ = std::move(*out);
  seal_in_ = std::move(*in);
  auth_errors_ = auth_errors;
  return ok_status();
}

bool PeerConn::header_ready(PeerConnHandler& h) {
  if (hdr_.magic != peer::kMagic) return fail("bad magic");
  if (hdr_.version != peer::kVersion) return fail("unsupported version " + std::to_string(hdr_.version));
  if (header_crc(hdr_) != hdr_.header_crc) return fail("header CRC mismatch");
  const auto op = static_cast<peer::Op>(hdr_.op);
  if (op < peer::Op::kHello || op > peer::Op::kChallengeV2)
    return fail("unknown opcode " + std::to_string(hdr_.op));
  const uint32_t ctl = control_len(hdr_);
  if (op == peer::Op::kFetchReply) {
    if (hdr_.body_len < ctl || hdr_.body_len - ctl > peer::kMaxDataBody) return fail("bad reply length");
  } else if (hdr_.body_len > peer::kMaxControlBody) {
    return fail("oversized body (" + std::to_string(hdr_.body_len) + " bytes)");
  }
  body_.resize(ctl);
  got_ = 0;
  in_ = In::kBody;
  if (ctl == 0) return body_complete(h);
  return true;
}

// The control body is in: sealed, its tag comes next; else it is checked now.
bool PeerConn::body_complete(PeerConnHandler& h) {
  if (!seal_in_) return body_ready(h);
  in_ = In::kBodyTag;
  got_ = 0;
  return true;
}

bool PeerConn::body_tag_ready(PeerConnHandler& h) {
  // Opened (decrypted in place) before anything looks at it.
  if (!seal_in_->begin(&hdr_, sizeof hdr_) ||
      (!body_.empty() && !seal_in_->update(body_.data(), body_.data(), body_.size())) ||
      !seal_in_->finish_open(tag_))
    return auth_fail("a message");
  return body_ready(h);
}

bool PeerConn::body_ready(PeerConnHandler& h) {
  if (!seal_in_) {
    const uint32_t crc = body_.empty() ? 0 : crc32c(body_.data(), body_.size());
    if (crc != hdr_.body_crc) return fail("body CRC mismatch");
  }
  data_len_ = hdr_.body_len - static_cast<uint32_t>(body_.size());
  data_dest_.clear();
  if (!h.on_message(*this, hdr_, body_.data(), body_.size(), data_len_, &data_dest_)) return fail("rejected by handler");
  if (data_len_ == 0) {
    in_ = In::kHeader;
    got_ = 0;
    return true;
  }
  size_t room = 0;
  for (const auto& v : data_dest_) room += v.iov_len;
  if (!data_dest_.empty() && room < data_len_) return fail("reply larger than the block it answers");
  if (data_dest_.empty()) {
    discard_.resize(std::min<size_t>(data_len_, 1 << 20));
    for (uint32_t left = data_len_; left > 0;) {
      const uint32_t n = std::min<uint32_t>(left, static_cast<uint32_t>(discard_.size()));
      data_dest_.push_back(iovec{discard_.data(), n});
      left -= n;
    }
  }
  data_iov_ = 0;
  got_ = 0;
  in_ = In::kData;
  // The data part is opened as it arrives (update() after each receive).
  if (seal_in_ && !seal_in_->begin(&hdr_, sizeof hdr_)) return auth_fail("block data");
  set_lowat(data_len_ + (seal_in_ ? peer::kTagBytes : 0));
  return true;
}

// Every data byte is in: sealed, its tag comes next; else the handler checks the CRC.
bool PeerConn::data_complete(PeerConnHandler& h) {
  if (seal_in_) {
    in_ = In::kDataTag;
    got_ = 0;
    // Or epoll waits for bytes the peer may not send until we answer.
    set_lowat(1);
    return true;
  }
  return data_tag_ready(h);
}

bool PeerConn::data_tag_ready(PeerConnHandler& h) {
  in_ = In::kHeader;
  got_ = 0;
  set_lowat(1);
  const bool discarded = !discard_.empty() && !data_dest_.empty() &&
                         data_dest_.front().iov_base >= discard_.data() &&
                         data_dest_.front().iov_base < discard_.data() + discard_.size();
  data_dest_.clear();
  discard_.clear();
  // Even discarded data is checked: its tag moves the sequence on, and a connection
  // that carried altered bytes is not trusted with the next reply.
  if (seal_in_ && !seal_in_->finish_open(tag_)) return auth_fail("block data");
  if (!discarded) h.on_data(*this, hdr_.request_id);
  return true;
}

bool PeerConn::on_readable(PeerConnHandler& h) {
  // Also called on EPOLLERR, which zero-copy completions raise: read them first.
  poll_done();
  for (int rounds = 0; rounds < 64; ++rounds) {
    ssize_t n;
    iovec iov[64];
    int cnt = 0;
    if (in_ == In::kHeader) {
      n = recv(fd_, reinterpret_cast<uint8_t*>(&hdr_) + got_, sizeof hdr_ - got_, MSG_DONTWAIT);
    } else if (in_ == In::kBody) {
      n = recv(fd_, body_.data() + got_, body_.size() - got_, MSG_DONTWAIT);
    } else if (in_ == In::kBodyTag || in_ == In::kDataTag) {
      n = recv(fd_, tag_ + got_, sizeof tag_ - got_, MSG_DONTWAIT);
    } else {
      // Straight into the destination pages, as many iovecs as fit in one call.
      size_t left = data_len_ - got_;
      for (size_t i = data_iov_; i < data_dest_.size() && cnt < 64 && left > 0; ++i) {
        iov[cnt] = data_dest_[i];
        if (iov[cnt].iov_len > left) iov[cnt].iov_len = left;
        left -= iov[cnt].iov_len;
        ++cnt;
      }
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = static_cast<size_t>(cnt);
      n = recvmsg(fd_, &msg, MSG_DONTWAIT);
    }
    if (n == 0) return fail("closed by peer");
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return true;
      return fail(std::string("recv: ") + strerror(errno));
    }
    bytes_received_ += static_cast<uint64_t>(n);
    got_ += static_cast<size_t>(n);
    if (in_ == In::kData && got_ < data_len_)
      set_lowat(data_len_ - got_ + (seal_in_ ? peer::kTagBytes : 0));
    if (in_ == In::kHeader) {
      if (got_ == sizeof hdr_ && !header_ready(h)) return false;
    } else if (in_ == In::kBody) {
      if (got_ == body_.size() && !body_complete(h)) return false;
    } else if (in_ == In::kBodyTag) {
      if (got_ == sizeof tag_ && !body_tag_ready(h)) return false;
    } else if (in_ == In::kDataTag) {
      if (got_ == sizeof tag_ && !data_tag_ready(h)) return false;
    } else {
      // Sealed: the bytes just received join the data part's GCM state while they
      // are still in cache (in encrypt mode they are decrypted in place).
      if (seal_in_) {
        size_t fed = static_cast<size_t>(n);
        for (int i = 0; i < cnt && fed > 0; ++i) {
          const size_t k = std::min(fed, iov[i].iov_len);
          auto* p = static_cast<uint8_t*>(iov[i].iov_base);
          if (!seal_in_->update(p, p, k)) return auth_fail("block data");
          fed -= k;
        }
      }
      // Advance the iovec cursor past what was filled.
      size_t consumed = static_cast<size_t>(n);
      while (consumed > 0 && data_iov_ < data_dest_.size()) {
        iovec& v = data_dest_[data_iov_];
        if (consumed >= v.iov_len) {
          consumed -= v.iov_len;
          ++data_iov_;
        } else {
          v.iov_base = static_cast<uint8_t*>(v.iov_base) + consumed;
          v.iov_len -= consumed;
          consumed = 0;
        }
      }
      if (got_ == data_len_ && !data_complete(h)) return false;
    }
  }
  return true;
}

}  // namespace dc
