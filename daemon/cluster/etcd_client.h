// The transport under etcd membership: HTTP/1.1 POSTs to etcd's v3 JSON
// gateway through libcurl, over plain HTTP ("host:port", "http://host:port") or
// TLS ("https://host:port": the server checked against [cluster] etcd_ca, our
// client certificate etcd_cert/etcd_key sent when given), with etcd v3 auth when
// [cluster] etcd_user is set (a token from /v3/auth/authenticate in every
// request's Authorization header, fetched again when etcd says it is no longer
// valid). libcurl replaced a hand-written client so TLS, chunked decoding and
// connection reuse are not ours to get wrong.
//
// Used by one thread only (EtcdMembership's). Every call is bounded: one-shot
// requests by their timeout, the watch by the caller's waits, and all of them
// end early once *stop is set.
#pragma once

#include <curl/curl.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "daemon/config/config.h"

namespace dc {

struct HttpResponse {
  int status = 0;
  std::string body;
};

// Why a request failed. TLS and auth refusals do not heal by retrying: they are
// logged as such and counted apart from etcd being away.
enum class EtcdFail { kNone, kTransport, kTls, kAuth };

class EtcdClient {
 public:
  EtcdClient(const ClusterConfig& config, const std::atomic<bool>* stop);
  ~EtcdClient();
  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;

  size_t endpoints() const { return bases_.size(); }
  const std::string& endpoint_name(size_t i) const { return names_[i]; }

  // POST `body` (JSON) to endpoint i's `path` within timeout_ms. True with any
  // HTTP status but an auth refusal (the caller reads etcd's error body); false
  // with *error and *why on a transport, TLS or auth failure.
  bool post(size_t i, const std::string& path, const std::string& body, int timeout_ms,
            HttpResponse* out, std::string* error, EtcdFail* why);

  // The Authorization header for a request to endpoint i ("" without auth),
  // authenticating first if there is no token. False as post().
  bool auth_header(size_t i, std::string* header, std::string* error, EtcdFail* why);
  // etcd said the token is not (or no longer) valid: the next request fetches one.
  void drop_token() { token_.clear(); }

  // Sets what every transfer shares: URL, body, TLS, timeouts, stop check.
  void setup(CURL* easy, const std::string& url, const std::string& body, curl_slist* headers,
             int timeout_ms, char* errbuf) const;
  std::string url(size_t i, const std::string& path) const { return bases_[i] + path; }
  // Classifies a failed transfer (and counts and logs a TLS refusal).
  EtcdFail failed(size_t i, CURLcode rc, const char* errbuf, std::string* error);

  bool stopping() const { return stop_ && stop_->load(); }
  uint64_t tls_failures() const { return tls_failures_; }
  uint64_t auth_failures() const { return auth_failures_; }

 private:
  bool request(size_t i, const std::string& path, const std::string& body, int timeout_ms,
               const std::string& auth, HttpResponse* out, std::string* error, EtcdFail* why);
  bool authenticate(size_t i, std::string* error, EtcdFail* why);
  void refused(const std::string& what);

  const ClusterConfig config_;
  const std::atomic<bool>* stop_;
  std::vector<std::string> bases_;  // "http(s)://host:port"
  std::vector<std::string> names_;  // as configured, for messages
  std::string password_;            // from etcd_password_file, read at construction
  std::string token_;               // "" until authenticated
  CURL* easy_ = nullptr;            // one-shot requests; keeps its connection for the next
  std::string last_refusal_;        // logged once until it changes
  uint64_t last_refusal_ms_ = 0;
  std::atomic<uint64_t> tls_failures_{0}, auth_failures_{0};
};

// The watch: a POST whose 200 response body keeps arriving, run by a curl multi
// handle so the owner waits on it and on its own wake-up fd at once.
class EtcdStream {
 public:
  explicit EtcdStream(EtcdClient* client) : client_(client) {}
  ~EtcdStream();
  EtcdStream(const EtcdStream&) = delete;
  EtcdStream& operator=(const EtcdStream&) = delete;

  // Sends the request and waits (timeout_ms) for a 200 status line. False with
  // *error, *why otherwise.
  bool open(size_t i, const std::string& path, const std::string& body, int timeout_ms, int wake_fd,
            std::string* error, EtcdFail* why);
  enum class Read { kOk, kEnded, kError };
  // Moves the body bytes received so far to *out. kEnded: the server ended the
  // body; kError: the transfer failed (*error says how).
  Read read_available(std::string* out, std::string* error);
  // Waits up to timeout_ms for more bytes or wake_fd to become readable.
  void wait(int timeout_ms, int wake_fd);

 private:
  static size_t on_data(char* p, size_t size, size_t n, void* self);
  bool pump(std::string* error, EtcdFail* why);  // false once the transfer is over

  EtcdClient* client_;
  size_t endpoint_ = 0;
  CURLM* multi_ = nullptr;
  CURL* easy_ = nullptr;
  curl_slist* headers_ = nullptr;
  char errbuf_[CURL_ERROR_SIZE] = {};
  std::string pending_;  // body bytes not yet handed out
  bool too_much_ = false;
  bool done_ = false;
  CURLcode result_ = CURLE_OK;
};

}  // namespace dc
