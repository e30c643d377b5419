// The little HTTP/1.1 client the etcd membership needs: one-shot POSTs
// (Connection: close) with a deadline, and one long POST whose response body
// streams in (the watch). etcd's gateway answers streaming calls with chunked
// transfer encoding, so both go through ChunkedDecoder. The framing pieces are
// pure and tested on their own (tests/unit/etcd_http_test.cc).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace dc {

struct HttpHead {
  int status = 0;
  bool chunked = false;
  int64_t content_length = -1;  // -1: not given
  size_t size = 0;              // bytes of the head, blank line included
};

// Parses a response head at the start of `in`: 1 when complete (*head filled),
// 0 when more bytes are needed, -1 when malformed or over 16 KiB.
int parse_http_head(std::string_view in, HttpHead* head);

// Decodes a chunked body fed in pieces of any size (RFC 9112 section 7.1:
// hex size, optional extensions, CRLF, data, CRLF; a zero size, then trailer
// lines and a blank line end it).
class ChunkedDecoder {
 public:
  enum class State { kMore, kDone, kError };
  // Appends the decoded bytes of `in` to *out. Bytes after the end are ignored.
  State feed(std::string_view in, std::string* out);
  State state() const { return state_; }

 private:
  enum class Phase {
    kSize,
    kExtension,
    kSizeLf,
    kData,
    kDataCr,
    kDataLf,
    kTrailerStart,
    kTrailer,
    kTrailerLf,
    kEndLf
  };
  Phase phase_ = Phase::kSize;
  State state_ = State::kMore;
  uint64_t size_ = 0;
  int size_digits_ = 0;
};

struct HttpResponse {
  int status = 0;
  std::string body;  // decoded
};

// POST `body` (JSON) to http://endpoint/path and read the whole answer within
// timeout_ms. False, with *error, on a transport or framing failure; any HTTP
// status is a success here (the caller reads etcd's error body).
bool http_post(const std::string& endpoint, const std::string& path, const std::string& body,
               int timeout_ms, HttpResponse* out, std::string* error);

// A POST whose 200 response body keeps arriving. open() sends the request and
// waits (timeout_ms) for the head; then the owner polls fd() and calls
// read_available() when it is readable.
class HttpStream {
 public:
  HttpStream() = default;
  HttpStream(const HttpStream&) = delete;
  HttpStream& operator=(const HttpStream&) = delete;
  ~HttpStream();

  bool open(const std::string& endpoint, const std::string& path, const std::string& body,
            int timeout_ms, std::string* error);
  int fd() const { return fd_; }
  enum class Read { kOk, kEnded, kError };
  // Appends the body bytes decoded so far. kEnded: the server closed or ended
  // the body; kError: framing or socket error (*error says which).
  Read read_available(std::string* out, std::string* error);

 private:
  int fd_ = -1;
  std::string pending_;  // body bytes that arrived with the head
  ChunkedDecoder chunks_;
};

}  // namespace dc
