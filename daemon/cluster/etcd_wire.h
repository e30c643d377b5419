// What dc says to and reads from etcd's v3 JSON gateway (etcd 3.4), as pure
// functions: request bodies, response parsing, and the member map a range read
// fills and watch events update. Everything read is untrusted: a malformed
// response is an error for the caller to count and resync on, never a crash.
//
// Shapes, as etcd 3.4.23 sends them (keys and values base64, int64s quoted,
// fields equal to their default omitted):
//   range:  {"header":{"revision":"7",...},"kvs":[{"key":"..","value":"..",
//            "mod_revision":"5","lease":"..."}],"count":"1"}
//   watch:  a chunked stream of {"result":{...}} objects, one per response:
//           {"header":{..},"created":true}
//           {"header":{..},"events":[{"kv":{..}},{"type":"DELETE","kv":{"key":..}}]}
//           {"header":{..},"canceled":true,"compact_revision":"4"}
//           or {"error":{...}} if the gateway's stream fails.
//   lease:  grant {"ID":"..","TTL":"5"}; keepalive {"result":{"ID":"..","TTL":"5"}},
//           TTL absent (0) once the lease is gone.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/config/config.h"

namespace dc {

std::string base64_encode(std::string_view in);
// Strict: nullopt on a byte outside the alphabet or bad padding.
std::optional<std::string> base64_decode(std::string_view in);

// The end of the key range holding every key that starts with `prefix`
// (etcd's range_end: the prefix with its last byte incremented).
std::string prefix_range_end(std::string_view prefix);

// Request bodies.
std::string range_request(std::string_view prefix);
std::string watch_create_request(std::string_view prefix, uint64_t start_revision);
std::string put_request(std::string_view key, std::string_view value, std::string_view lease);

struct EtcdKv {
  std::string key;    // decoded
  std::string value;  // decoded
  uint64_t mod_revision = 0;
};

// The revision and key-values of a range response.
bool parse_range_response(std::string_view body, uint64_t* revision, std::vector<EtcdKv>* kvs,
                          std::string* error);

// A lease grant's ID (a decimal string, as the gateway spells it).
bool parse_lease_grant(std::string_view body, std::string* id, std::string* error);
// A keepalive answer: *ttl is 0 when etcd no longer knows the lease.
bool parse_lease_keepalive(std::string_view body, uint64_t* ttl, std::string* error);
// Whether an error answer says the lease is unknown (a put or keepalive naming
// an expired lease: HTTP 404, "etcdserver: requested lease not found").
bool is_lease_not_found(std::string_view body);

// etcd v3 auth (user/password): the body of /v3/auth/authenticate (a JSON
// string for each, escaped), the token its answer carries, and whether an error
// answer says the token we sent is no longer good (expired, or etcd restarted
// and forgot it), so the caller authenticates again instead of giving up.
std::string authenticate_request(std::string_view user, std::string_view password);
bool parse_auth_token(std::string_view body, std::string* token, std::string* error);
bool is_auth_token_invalid(std::string_view body);
// A JSON string literal (quotes included) holding `s`.
std::string json_quote(std::string_view s);

struct WatchEvent {
  enum class Type { kPut, kDelete };
  Type type = Type::kPut;
  EtcdKv kv;
};

struct WatchMessage {
  uint64_t revision = 0;          // header.revision
  bool created = false;           // the watch now exists
  bool canceled = false;          // etcd ended the watch (see compact_revision, reason)
  uint64_t compact_revision = 0;  // > 0: the start revision was compacted away
  std::string reason;             // cancel_reason, or the gateway's error message
  bool error = false;             // {"error": ...} instead of {"result": ...}
  std::vector<WatchEvent> events;
};

// One object of the watch stream.
bool parse_watch_message(std::string_view json, WatchMessage* out, std::string* error);

// A member entry: key <prefix><id>, value "<host:port> <weight>" (weight
// optional, default 1). nullopt if anything is off: an id that is empty, over
// 63 bytes or not [A-Za-z0-9._-]; an address that is not host:port; a weight
// not in (0, 1000].
std::optional<PeerConfig> parse_member(std::string_view prefix, const EtcdKv& kv);
std::string member_value(const std::string& address, double weight);

// The members under a prefix, as the range read found them and the watch then
// changed them.
class MemberMap {
 public:
  explicit MemberMap(std::string prefix) : prefix_(std::move(prefix)) {}
  // Replaces the content with a range read's; counts rejected entries.
  void reset(const std::vector<EtcdKv>& kvs);
  void apply(const WatchEvent& e);
  // All members but `self`, sorted by id (every node must list them alike).
  std::vector<PeerConfig> peers_except(const std::string& self) const;
  const PeerConfig* find(const std::string& id) const;
  size_t size() const { return members_.size(); }
  uint64_t rejected() const { return rejected_; }

 private:
  std::string prefix_;
  std::map<std::string, PeerConfig> members_;
  uint64_t rejected_ = 0;  // malformed entries seen (ignored)
};

// What the watch loop does with one stream object.
enum class WatchStep {
  kContinue,  // nothing changed (created, progress notification)
  kChanged,   // events applied; publish the new list
  kResync,    // compaction, cancel, error: re-read the prefix, watch anew
};
// Applies `m` to *members. `resync_reason` says why on kResync.
WatchStep apply_watch_message(const WatchMessage& m, MemberMap* members,
                              std::string* resync_reason);

}  // namespace dc
