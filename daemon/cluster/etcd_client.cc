#include "daemon/cluster/etcd_client.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <cstring>
#include <mutex>

#include "common/log.h"
#include "daemon/cluster/etcd_wire.h"
#include "daemon/net/auth.h"

namespace dc {
namespace {

constexpr size_t kMaxBody = 4 << 20;             // one-shot answers (as parse_json takes)
constexpr size_t kMaxPending = 16 << 20;         // watch bytes between two reads
constexpr uint64_t kRefusalRelogMs = 60 * 1000;  // the same refusal is logged again after this
// etcd checks the password with bcrypt, slow on purpose (tens of ms idle,
// far more on a loaded host): more time than other one-shot requests.
constexpr int kAuthTimeoutMs = 3000;

uint64_t now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

bool starts_with(const std::string& s, const char* p) {
  return s.rfind(p, 0) == 0;
}

struct Sink {
  std::string* body;
  bool too_large = false;
};

size_t append_body(char* p, size_t size, size_t n, void* user) {
  auto* s = static_cast<Sink*>(user);
  if (s->body->size() + size * n > kMaxBody) {
    s->too_large = true;
    return 0;  // aborts the transfer (CURLE_WRITE_ERROR)
  }
  s->body->append(p, size * n);
  return size * n;
}

// Called by libcurl while a transfer runs: a non-zero answer aborts it, so
// shutdown never waits for a request's timeout.
int check_stop(void* stop, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<const std::atomic<bool>*>(stop)->load() ? 1 : 0;
}

// A watch that is idle for minutes is normal; a server that vanished without a
// FIN/RST (cable cut, host gone) must still be noticed: the kernel probes the
// idle connection and fails it after about 2 + 3 x 1 s of silence. (libcurl
// sets idle and interval but not the count.)
int keepalive_opts(void*, curl_socket_t fd, curlsocktype purpose) {
  if (purpose != CURLSOCKTYPE_IPCXN) return CURL_SOCKOPT_OK;
  const int on = 1, idle = 2, interval = 1, count = 3;
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
  return CURL_SOCKOPT_OK;
}

bool is_tls_error(CURLcode rc, const char* errbuf) {
  switch (rc) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_SHUTDOWN_FAILED:
      return true;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
      // TLS 1.3: a server that wants a client certificate we did not send
      // says so with an alert after the handshake, seen on the first read.
      return strstr(errbuf, "SSL") != nullptr || strstr(errbuf, "alert") != nullptr;
    default:
      return false;
  }
}

std::string curl_message(CURLcode rc, const char* errbuf) {
  return errbuf[0] ? std::string(errbuf) : std::string(curl_easy_strerror(rc));
}

// etcd's error answers carry {"error": "...", "message": "...", "code": N}.
std::string short_body(const std::string& body) {
  return body.substr(0, 200);
}

std::once_flag g_curl_init;

}  // namespace

EtcdClient::EtcdClient(const ClusterConfig& config, const std::atomic<bool>* stop)
    : config_(config), stop_(stop) {
  // Not thread-safe in every libcurl: done once, before the thread starts.
  std::call_once(g_curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  for (const std::string& e : config_.etcd) {
    names_.push_back(e);
    bases_.push_back(starts_with(e, "http://") || starts_with(e, "https://") ? e : "http://" + e);
  }
  if (!config_.etcd_user.empty()) {
    // Checked when the config was loaded; read again here, as the peer secret is.
    auto pw = load_secret(config_.etcd_password_file);
    if (pw)
      password_ = std::move(*pw);
    else
      DC_LOG_ERROR("cluster: etcd password: %s", pw.error().message.c_str());
  }
  easy_ = curl_easy_init();
}

EtcdClient::~EtcdClient() {
  if (easy_) curl_easy_cleanup(easy_);
  std::fill(password_.begin(), password_.end(), '\0');
}

void EtcdClient::setup(CURL* easy, const std::string& url, const std::string& body,
                       curl_slist* headers, int timeout_ms, char* errbuf) const {
  curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);  // a thread of a daemon: no SIGALRM games
  curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
  // The size first: COPYPOSTFIELDS copies as many bytes as the size says (on a
  // reused handle, the previous request's).
  curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  curl_easy_setopt(easy, CURLOPT_COPYPOSTFIELDS, body.c_str());
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout_ms));
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, check_stop);
  curl_easy_setopt(easy, CURLOPT_XFERINFODATA, stop_);
  // TLS: the server must prove it holds a certificate for the name or address
  // we dialled, signed by etcd_ca when given (and then by that CA only).
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!config_.etcd_ca.empty()) {
    curl_easy_setopt(easy, CURLOPT_CAINFO, config_.etcd_ca.c_str());
    curl_easy_setopt(easy, CURLOPT_CAPATH, static_cast<char*>(nullptr));
  }
  if (!config_.etcd_cert.empty()) {
    curl_easy_setopt(easy, CURLOPT_SSLCERT, config_.etcd_cert.c_str());
    curl_easy_setopt(easy, CURLOPT_SSLKEY, config_.etcd_key.c_str());
  }
}

void EtcdClient::refused(const std::string& what) {
  // Retried every few seconds by the back-off: said once, again when it changes
  // or a minute later, so the log shows it without filling up.
  const uint64_t now = now_ms();
  if (what == last_refusal_ && now - last_refusal_ms_ < kRefusalRelogMs) return;
  last_refusal_ = what;
  last_refusal_ms_ = now;
  DC_LOG_WARN("cluster: etcd refused us: %s", what.c_str());
}

EtcdFail EtcdClient::failed(size_t i, CURLcode rc, const char* errbuf, std::string* error) {
  *error = names_[i] + ": " + curl_message(rc, errbuf);
  if (!is_tls_error(rc, errbuf)) return EtcdFail::kTransport;
  ++tls_failures_;
  refused("TLS with " + *error);
  return EtcdFail::kTls;
}

bool EtcdClient::request(size_t i, const std::string& path, const std::string& body, int timeout_ms,
                         const std::string& auth, HttpResponse* out, std::string* error,
                         EtcdFail* why) {
  if (!easy_) {
    *error = "libcurl could not start";
    *why = EtcdFail::kTransport;
    return false;
  }
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip
  if (!auth.empty()) headers = curl_slist_append(headers, auth.c_str());
  char errbuf[CURL_ERROR_SIZE] = {};
  out->status = 0;
  out->body.clear();
  Sink sink{&out->body};
  setup(easy_, url(i, path), body, headers, timeout_ms, errbuf);
  curl_easy_setopt(easy_, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_ms));
  curl_easy_setopt(easy_, CURLOPT_WRITEFUNCTION, append_body);
  curl_easy_setopt(easy_, CURLOPT_WRITEDATA, &sink);
  const CURLcode rc = curl_easy_perform(easy_);
  // The handle outlives these locals (it keeps the connection for the next
  // request): leave it no pointer to them.
  curl_easy_setopt(easy_, CURLOPT_HTTPHEADER, static_cast<curl_slist*>(nullptr));
  curl_easy_setopt(easy_, CURLOPT_ERRORBUFFER, static_cast<char*>(nullptr));
  curl_easy_setopt(easy_, CURLOPT_WRITEDATA, static_cast<void*>(nullptr));
  curl_slist_free_all(headers);
  if (rc != CURLE_OK) {
    if (sink.too_large) {
      *error = names_[i] + ": response body too large";
      *why = EtcdFail::kTransport;
    } else {
      *why = failed(i, rc, errbuf, error);
    }
    return false;
  }
  long status = 0;
  curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &status);
  out->status = static_cast<int>(status);
  *why = EtcdFail::kNone;
  return true;
}

bool EtcdClient::authenticate(size_t i, std::string* error, EtcdFail* why) {
  HttpResponse r;
  if (!request(i, "/v3/auth/authenticate", authenticate_request(config_.etcd_user, password_),
               kAuthTimeoutMs, "", &r, error, why))
    return false;
  std::string token, err;
  if (r.status == 200 && parse_auth_token(r.body, &token, &err)) {
    token_ = std::move(token);
    DC_LOG_INFO("cluster: authenticated to etcd %s as user %s", names_[i].c_str(),
                config_.etcd_user.c_str());
    return true;
  }
  ++auth_failures_;
  *why = EtcdFail::kAuth;
  *error = names_[i] + ": authenticating as user " + config_.etcd_user + ": " +
           (r.status == 200 ? err : "HTTP " + std::to_string(r.status) + " " + short_body(r.body));
  refused(*error);
  return false;
}

bool EtcdClient::auth_header(size_t i, std::string* header, std::string* error, EtcdFail* why) {
  header->clear();
  if (config_.etcd_user.empty()) return true;
  if (token_.empty() && !authenticate(i, error, why)) return false;
  *header = "Authorization: " + token_;
  return true;
}

bool EtcdClient::post(size_t i, const std::string& path, const std::string& body, int timeout_ms,
                      HttpResponse* out, std::string* error, EtcdFail* why) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::string auth;
    if (!auth_header(i, &auth, error, why)) return false;
    if (!request(i, path, body, timeout_ms, auth, out, error, why)) return false;
    if (config_.etcd_user.empty() || (out->status != 401 && out->status != 403)) return true;
    if (attempt == 0 && is_auth_token_invalid(out->body)) {
      drop_token();  // expired or forgotten (etcd restarted): once more with a new one
      continue;
    }
    break;
  }
  // Authenticated, but not allowed (no role granting our prefix), or a token
  // refused right after it was issued.
  ++auth_failures_;
  *why = EtcdFail::kAuth;
  *error = names_[i] + ": " + path + " as user " + config_.etcd_user + ": HTTP " +
           std::to_string(out->status) + " " + short_body(out->body);
  refused(*error);
  return false;
}

EtcdStream::~EtcdStream() {
  if (multi_ && easy_) curl_multi_remove_handle(multi_, easy_);
  if (easy_) curl_easy_cleanup(easy_);
  if (multi_) curl_multi_cleanup(multi_);
  curl_slist_free_all(headers_);
}

size_t EtcdStream::on_data(char* p, size_t size, size_t n, void* user) {
  auto* self = static_cast<EtcdStream*>(user);
  if (self->pending_.size() + size * n > kMaxPending) {
    self->too_much_ = true;  // a flood: cut the watch, the owner resyncs
    return 0;
  }
  self->pending_.append(p, size * n);
  return size * n;
}

bool EtcdStream::pump(std::string* error, EtcdFail* why) {
  if (done_) return false;
  int running = 0;
  if (curl_multi_perform(multi_, &running) != CURLM_OK) {
    *error = "curl_multi_perform failed";
    *why = EtcdFail::kTransport;
    done_ = true;
    result_ = CURLE_RECV_ERROR;
    return false;
  }
  int left = 0;
  while (CURLMsg* m = curl_multi_info_read(multi_, &left)) {
    if (m->msg != CURLMSG_DONE) continue;
    done_ = true;
    result_ = m->data.result;
  }
  if (!done_) return true;
  *why = EtcdFail::kNone;
  if (result_ != CURLE_OK) {
    if (too_much_)
      *error = client_->endpoint_name(endpoint_) + ": the watch sent over 16 MiB at once";
    else
      *why = client_->failed(endpoint_, result_, errbuf_, error);
    if (*why == EtcdFail::kNone) *why = EtcdFail::kTransport;
  }
  return false;
}

bool EtcdStream::open(size_t i, const std::string& path, const std::string& body, int timeout_ms,
                      int wake_fd, std::string* error, EtcdFail* why) {
  endpoint_ = i;
  std::string auth;
  if (!client_->auth_header(i, &auth, error, why)) return false;
  multi_ = curl_multi_init();
  easy_ = curl_easy_init();
  if (!multi_ || !easy_) {
    *error = "libcurl could not start";
    *why = EtcdFail::kTransport;
    return false;
  }
  headers_ = curl_slist_append(nullptr, "Content-Type: application/json");
  headers_ = curl_slist_append(headers_, "Expect:");
  if (!auth.empty()) headers_ = curl_slist_append(headers_, auth.c_str());
  client_->setup(easy_, client_->url(i, path), body, headers_, timeout_ms, errbuf_);
  curl_easy_setopt(easy_, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(easy_, CURLOPT_WRITEDATA, this);
  curl_easy_setopt(easy_, CURLOPT_SOCKOPTFUNCTION, keepalive_opts);
  curl_multi_add_handle(multi_, easy_);
  const uint64_t deadline = now_ms() + static_cast<uint64_t>(timeout_ms);
  long status = 0;
  for (;;) {
    const bool running = pump(error, why);
    curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &status);
    if (!running && result_ != CURLE_OK) return false;
    // A status line is in; anything but 200 ends with a short error body.
    if (status == 200) return true;
    if (status != 0 && !running) break;
    if (!running) {
      *error = client_->endpoint_name(i) + ": the watch ended before its answer";
      *why = EtcdFail::kTransport;
      return false;
    }
    const uint64_t now = now_ms();
    if (now >= deadline || client_->stopping()) {
      *error = client_->endpoint_name(i) +
               (status ? ": HTTP " + std::to_string(status) + " " + pending_.substr(0, 200)
                       : ": no answer in time");
      *why = EtcdFail::kTransport;
      return false;
    }
    wait(static_cast<int>(std::min<uint64_t>(deadline - now, 100)), wake_fd);
  }
  *error = client_->endpoint_name(i) + ": HTTP " + std::to_string(status) + " " +
           pending_.substr(0, 200);
  *why = EtcdFail::kTransport;
  if ((status == 401 || status == 403) && is_auth_token_invalid(pending_)) client_->drop_token();
  return false;
}

EtcdStream::Read EtcdStream::read_available(std::string* out, std::string* error) {
  EtcdFail why = EtcdFail::kNone;
  const bool running = pump(error, &why);
  out->append(pending_);
  pending_.clear();
  if (running) return Read::kOk;
  return result_ == CURLE_OK ? Read::kEnded : Read::kError;
}

void EtcdStream::wait(int timeout_ms, int wake_fd) {
  curl_waitfd extra{wake_fd, CURL_WAIT_POLLIN, 0};
  curl_multi_poll(multi_, &extra, 1, timeout_ms, nullptr);
}

}  // namespace dc
