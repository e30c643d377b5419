#include "daemon/cluster/etcd_http.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace dc {
namespace {

constexpr size_t kMaxHead = 16 << 10;
constexpr size_t kMaxBody = 4 << 20;
constexpr uint64_t kMaxChunk = 16 << 20;

int64_t now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

bool ieq(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (tolower(static_cast<unsigned char>(a[i])) != tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Waits for `events` on fd until the deadline: 1 ready, 0 timed out, -1 error.
int wait_fd(int fd, short events, int64_t deadline) {
  for (;;) {
    const int64_t left = deadline - now_ms();
    if (left <= 0) return 0;
    pollfd p{fd, events, 0};
    const int n = poll(&p, 1, static_cast<int>(left));
    if (n > 0) return 1;
    if (n == 0) return 0;
    if (errno != EINTR) return -1;
  }
}

// A non-blocking TCP connection to "host:port", established by the deadline.
int tcp_connect(const std::string& endpoint, int64_t deadline, std::string* error) {
  const auto colon = endpoint.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    *error = "bad endpoint '" + endpoint + "'";
    return -1;
  }
  addrinfo hints{}, *res = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  const int gai = getaddrinfo(endpoint.substr(0, colon).c_str(), endpoint.substr(colon + 1).c_str(),
                              &hints, &res);
  if (gai != 0 || !res) {
    *error = std::string("resolving ") + endpoint + ": " + gai_strerror(gai);
    return -1;
  }
  const int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    *error = std::string("socket: ") + strerror(errno);
    freeaddrinfo(res);
    return -1;
  }
  int rc = connect(fd, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  if (rc != 0 && errno == EINPROGRESS) {
    const int w = wait_fd(fd, POLLOUT, deadline);
    int err = 0;
    socklen_t len = sizeof err;
    if (w == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0)
      rc = 0;
    else
      errno = w == 1 ? err : ETIMEDOUT;
  }
  if (rc != 0) {
    *error = "connecting to " + endpoint + ": " + strerror(errno);
    close(fd);
    return -1;
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

bool send_all(int fd, std::string_view data, int64_t deadline, std::string* error) {
  while (!data.empty()) {
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && wait_fd(fd, POLLOUT, deadline) == 1)
      continue;
    *error = n < 0 && errno != EAGAIN ? std::string("send: ") + strerror(errno) : "send timed out";
    return false;
  }
  return true;
}

std::string request(const std::string& endpoint, const std::string& path, const std::string& body,
                    bool close) {
  return "POST " + path + " HTTP/1.1\r\nHost: " + endpoint +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         (close ? "\r\nConnection: close" : "") + "\r\n\r\n" + body;
}

// Reads until the response head is complete; leftover body bytes stay in *in.
bool read_head(int fd, int64_t deadline, std::string* in, HttpHead* head, std::string* error) {
  for (;;) {
    const int r = parse_http_head(*in, head);
    if (r == 1) {
      in->erase(0, head->size);
      return true;
    }
    if (r < 0) {
      *error = "malformed HTTP response head";
      return false;
    }
    if (wait_fd(fd, POLLIN, deadline) != 1) {
      *error = "no answer in time";
      return false;
    }
    char buf[4096];
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n == 0) {
      *error = "connection closed before the response";
      return false;
    }
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      *error = std::string("recv: ") + strerror(errno);
      return false;
    }
    in->append(buf, static_cast<size_t>(n));
  }
}

}  // namespace

int parse_http_head(std::string_view in, HttpHead* head) {
  const size_t end = in.find("\r\n\r\n");
  if (end == std::string_view::npos) return in.size() > kMaxHead ? -1 : 0;
  if (end + 4 > kMaxHead) return -1;
  std::string_view text = in.substr(0, end + 2);
  *head = HttpHead{};
  head->size = end + 4;
  size_t eol = text.find("\r\n");
  const std::string_view status_line = text.substr(0, eol);
  // "HTTP/1.1 200 OK": the version, one space, three digits.
  if (status_line.size() < 12 || status_line.substr(0, 7) != "HTTP/1." || status_line[8] != ' ')
    return -1;
  int status = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (status_line[i] < '0' || status_line[i] > '9') return -1;
    status = status * 10 + (status_line[i] - '0');
  }
  if (status_line.size() > 12 && status_line[12] != ' ') return -1;
  head->status = status;
  text.remove_prefix(eol + 2);
  while (!text.empty()) {
    eol = text.find("\r\n");
    const std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol + 2);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return -1;
    const std::string_view name = line.substr(0, colon);
    const std::string_view value = trim(line.substr(colon + 1));
    if (ieq(name, "Transfer-Encoding")) {
      if (!ieq(value, "chunked")) return -1;  // nothing else is spoken here
      head->chunked = true;
    } else if (ieq(name, "Content-Length")) {
      if (value.empty() || value.size() > 15) return -1;
      int64_t n = 0;
      for (char c : value) {
        if (c < '0' || c > '9') return -1;
        n = n * 10 + (c - '0');
      }
      head->content_length = n;
    }
  }
  return 1;
}

ChunkedDecoder::State ChunkedDecoder::feed(std::string_view in, std::string* out) {
  size_t i = 0;
  while (i < in.size() && state_ == State::kMore) {
    const char c = in[i];
    switch (phase_) {
      case Phase::kSize: {
        int d = -1;
        if (c >= '0' && c <= '9')
          d = c - '0';
        else if (c >= 'a' && c <= 'f')
          d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
          d = c - 'A' + 10;
        if (d >= 0) {
          size_ = size_ * 16 + static_cast<uint64_t>(d);
          if (++size_digits_ > 8 || size_ > kMaxChunk) state_ = State::kError;
        } else if (size_digits_ > 0 && (c == ';' || c == ' ' || c == '\t')) {
          phase_ = Phase::kExtension;
        } else if (size_digits_ > 0 && c == '\r') {
          phase_ = Phase::kSizeLf;
        } else {
          state_ = State::kError;
        }
        ++i;
        break;
      }
      case Phase::kExtension:
        if (c == '\r')
          phase_ = Phase::kSizeLf;
        else if (c == '\n')
          state_ = State::kError;
        ++i;
        break;
      case Phase::kSizeLf:
        if (c != '\n')
          state_ = State::kError;
        else
          phase_ = size_ == 0 ? Phase::kTrailerStart : Phase::kData;
        ++i;
        break;
      case Phase::kData: {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(size_, in.size() - i));
        out->append(in.data() + i, n);
        i += n;
        size_ -= n;
        if (size_ == 0) phase_ = Phase::kDataCr;
        break;
      }
      case Phase::kDataCr:
        if (c != '\r') state_ = State::kError;
        phase_ = Phase::kDataLf;
        ++i;
        break;
      case Phase::kDataLf:
        if (c != '\n') state_ = State::kError;
        phase_ = Phase::kSize;
        size_digits_ = 0;
        ++i;
        break;
      case Phase::kTrailerStart:
        if (c == '\r')
          phase_ = Phase::kEndLf;
        else if (c == '\n')
          state_ = State::kError;
        else
          phase_ = Phase::kTrailer;
        ++i;
        break;
      case Phase::kTrailer:
        if (c == '\r')
          phase_ = Phase::kTrailerLf;
        else if (c == '\n')
          state_ = State::kError;
        ++i;
        break;
      case Phase::kTrailerLf:
        if (c != '\n') state_ = State::kError;
        phase_ = Phase::kTrailerStart;
        ++i;
        break;
      case Phase::kEndLf:
        state_ = c == '\n' ? State::kDone : State::kError;
        ++i;
        break;
    }
  }
  return state_;
}

bool http_post(const std::string& endpoint, const std::string& path, const std::string& body,
               int timeout_ms, HttpResponse* out, std::string* error) {
  const int64_t deadline = now_ms() + timeout_ms;
  const int fd = tcp_connect(endpoint, deadline, error);
  if (fd < 0) return false;
  std::string in;
  HttpHead head;
  bool ok = send_all(fd, request(endpoint, path, body, true), deadline, error) &&
            read_head(fd, deadline, &in, &head, error);
  ChunkedDecoder chunks;
  out->status = head.status;
  out->body.clear();
  bool done = false;
  auto take = [&](std::string_view bytes) {
    if (head.chunked) {
      const auto st = chunks.feed(bytes, &out->body);
      if (st == ChunkedDecoder::State::kError) {
        *error = "malformed chunked body";
        ok = false;
      }
      done = st == ChunkedDecoder::State::kDone;
    } else {
      out->body.append(bytes);
      done =
          head.content_length >= 0 && out->body.size() >= static_cast<size_t>(head.content_length);
      if (done) out->body.resize(static_cast<size_t>(head.content_length));
    }
    if (out->body.size() > kMaxBody) {
      *error = "response body too large";
      ok = false;
    }
  };
  if (ok) take(in);
  while (ok && !done) {
    if (wait_fd(fd, POLLIN, deadline) != 1) {
      *error = "response body not complete in time";
      ok = false;
      break;
    }
    char buf[8192];
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) {
      *error = std::string("recv: ") + strerror(errno);
      ok = false;
    } else if (n == 0) {
      // Only a body without other framing may end with the connection.
      if (head.chunked || head.content_length >= 0) {
        *error = "connection closed mid-body";
        ok = false;
      }
      break;
    } else {
      take(std::string_view(buf, static_cast<size_t>(n)));
    }
  }
  close(fd);
  return ok;
}

HttpStream::~HttpStream() {
  if (fd_ >= 0) close(fd_);
}

bool HttpStream::open(const std::string& endpoint, const std::string& path, const std::string& body,
                      int timeout_ms, std::string* error) {
  const int64_t deadline = now_ms() + timeout_ms;
  fd_ = tcp_connect(endpoint, deadline, error);
  if (fd_ < 0) return false;
  // A stream that is idle for minutes is normal; a peer that vanished without a
  // FIN/RST (cable cut, host gone) must still be noticed: the kernel probes the
  // idle connection and fails it after about 2 + 3 x 1 s of silence.
  const int on = 1, idle = 2, interval = 1, count = 3;
  setsockopt(fd_, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  setsockopt(fd_, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  setsockopt(fd_, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  setsockopt(fd_, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
  std::string in;
  HttpHead head;
  if (!send_all(fd_, request(endpoint, path, body, false), deadline, error) ||
      !read_head(fd_, deadline, &in, &head, error))
    return false;
  if (head.status != 200 || !head.chunked) {
    *error = "HTTP " + std::to_string(head.status) + (head.chunked ? "" : " (not chunked)") + ": " +
             in.substr(0, 200);
    return false;
  }
  if (chunks_.feed(in, &pending_) == ChunkedDecoder::State::kError) {
    *error = "malformed chunked body";
    return false;
  }
  return true;
}

HttpStream::Read HttpStream::read_available(std::string* out, std::string* error) {
  out->append(pending_);
  pending_.clear();
  if (chunks_.state() == ChunkedDecoder::State::kDone) return Read::kEnded;
  char buf[16384];
  // Bounded per call, so a flood cannot grow *out without limit; the socket
  // stays readable and the owner's poll brings it back.
  for (size_t taken = 0; taken < (1u << 20);) {
    const ssize_t n = recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      taken += static_cast<size_t>(n);
      const auto st = chunks_.feed(std::string_view(buf, static_cast<size_t>(n)), out);
      if (st == ChunkedDecoder::State::kError) {
        *error = "malformed chunked body";
        return Read::kError;
      }
      if (st == ChunkedDecoder::State::kDone) return Read::kEnded;
      continue;
    }
    if (n == 0) return Read::kEnded;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Read::kOk;
    *error = std::string("recv: ") + strerror(errno);
    return Read::kError;
  }
  return Read::kOk;
}

}  // namespace dc
