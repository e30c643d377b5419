#include "daemon/cluster/etcd_wire.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "daemon/cluster/etcd_json.h"

namespace dc {
namespace {

constexpr const char* kB64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int b64_index(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

std::optional<JsonValue> parse_object(std::string_view body, std::string* error) {
  auto v = parse_json(body, error);
  if (v && !v->is_object()) {
    *error = "not a JSON object";
    return std::nullopt;
  }
  return v;
}

bool string_field(const JsonValue& obj, const char* name, std::string* out) {
  const JsonValue* v = obj.get(name);
  if (!v) {
    out->clear();
    return true;
  }
  if (v->kind != JsonValue::Kind::kString) return false;
  *out = v->text;
  return true;
}

// A kv object: key (required), value (optional), mod_revision; base64 decoded.
bool parse_kv(const JsonValue& kv, EtcdKv* out, std::string* error) {
  std::string key, value;
  if (!kv.is_object() || !string_field(kv, "key", &key) || !string_field(kv, "value", &value) ||
      key.empty()) {
    *error = "kv without a key";
    return false;
  }
  auto k = base64_decode(key);
  auto v = base64_decode(value);
  if (!k || !v) {
    *error = "kv with bad base64";
    return false;
  }
  if (!json_u64(kv.get("mod_revision"), &out->mod_revision)) {
    *error = "kv with a bad mod_revision";
    return false;
  }
  out->key = std::move(*k);
  out->value = std::move(*v);
  return true;
}

bool header_revision(const JsonValue& obj, uint64_t* revision, std::string* error) {
  const JsonValue* h = obj.get("header");
  if (!h || !h->is_object() || !json_u64(h->get("revision"), revision)) {
    *error = "no valid header";
    return false;
  }
  return true;
}

bool valid_id(std::string_view id) {
  if (id.empty() || id.size() >= 64) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

bool valid_address(std::string_view a) {
  const auto colon = a.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 >= a.size() || a.size() > 255)
    return false;
  for (char c : a.substr(0, colon))
    if (c <= ' ' || c > '~') return false;
  long port = 0;
  for (char c : a.substr(colon + 1)) {
    if (c < '0' || c > '9') return false;
    port = port * 10 + (c - '0');
    if (port > 65535) return false;
  }
  return port > 0;
}

}  // namespace

std::string base64_encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (static_cast<uint8_t>(in[i]) << 16) |
                       (static_cast<uint8_t>(in[i + 1]) << 8) | static_cast<uint8_t>(in[i + 2]);
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += kB64[v & 63];
  }
  if (i + 1 == in.size()) {
    const uint32_t v = static_cast<uint8_t>(in[i]) << 16;
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    const uint32_t v = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8);
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view in) {
  if (in.size() % 4 != 0) return std::nullopt;
  size_t pad = 0;
  while (pad < 2 && pad < in.size() && in[in.size() - 1 - pad] == '=') ++pad;
  std::string out;
  out.reserve(in.size() / 4 * 3);
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < in.size() - pad; ++i) {
    const int d = b64_index(in[i]);
    if (d < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(d);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  // Canonical form only: the bits padding leaves over must be zero.
  if ((acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

std::string prefix_range_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty() && static_cast<uint8_t>(end.back()) == 0xff) end.pop_back();
  if (end.empty()) return std::string(1, '\0');  // etcd: "\0" means every key
  end.back() = static_cast<char>(end.back() + 1);
  return end;
}

std::string range_request(std::string_view prefix) {
  return "{\"key\":\"" + base64_encode(prefix) + "\",\"range_end\":\"" +
         base64_encode(prefix_range_end(prefix)) + "\"}";
}

std::string watch_create_request(std::string_view prefix, uint64_t start_revision) {
  return "{\"create_request\":{\"key\":\"" + base64_encode(prefix) + "\",\"range_end\":\"" +
         base64_encode(prefix_range_end(prefix)) + "\",\"start_revision\":\"" +
         std::to_string(start_revision) + "\"}}";
}

std::string put_request(std::string_view key, std::string_view value, std::string_view lease) {
  return "{\"key\":\"" + base64_encode(key) + "\",\"value\":\"" + base64_encode(value) +
         "\",\"lease\":\"" + std::string(lease) + "\"}";
}

bool parse_range_response(std::string_view body, uint64_t* revision, std::vector<EtcdKv>* kvs,
                          std::string* error) {
  auto v = parse_object(body, error);
  if (!v || !header_revision(*v, revision, error)) return false;
  kvs->clear();
  const JsonValue* list = v->get("kvs");
  if (!list) return true;  // no keys: the field is omitted
  if (list->kind != JsonValue::Kind::kArray) {
    *error = "kvs is not an array";
    return false;
  }
  for (const JsonValue& kv : list->items) {
    EtcdKv e;
    if (!parse_kv(kv, &e, error)) return false;
    kvs->push_back(std::move(e));
  }
  return true;
}

bool parse_lease_grant(std::string_view body, std::string* id, std::string* error) {
  auto v = parse_object(body, error);
  if (!v) return false;
  uint64_t n = 0, ttl = 0;
  if (!json_u64(v->get("ID"), &n) || n == 0 || !json_u64(v->get("TTL"), &ttl) || ttl == 0) {
    *error = "lease grant without an ID and TTL";
    return false;
  }
  *id = std::to_string(n);
  return true;
}

bool parse_lease_keepalive(std::string_view body, uint64_t* ttl, std::string* error) {
  auto v = parse_object(body, error);
  if (!v) return false;
  const JsonValue* r = v->get("result");
  if (!r || !r->is_object() || !json_u64(r->get("TTL"), ttl)) {
    *error = "keepalive answer without a result";
    return false;
  }
  return true;
}

bool is_lease_not_found(std::string_view body) {
  return body.find("requested lease not found") != std::string_view::npos;
}

std::string json_quote(std::string_view s) {
  std::string out = "\"";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += ch;  // UTF-8 passes through: JSON strings may hold it raw
    }
  }
  return out + "\"";
}

std::string authenticate_request(std::string_view user, std::string_view password) {
  return "{\"name\":" + json_quote(user) + ",\"password\":" + json_quote(password) + "}";
}

bool parse_auth_token(std::string_view body, std::string* token, std::string* error) {
  auto v = parse_object(body, error);
  if (!v) return false;
  // The token goes into an HTTP header: refuse bytes that would end or split it.
  if (!string_field(*v, "token", token) || token->empty() || token->size() > 4096 ||
      std::any_of(token->begin(), token->end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x21 || c == 0x7f; })) {
    *error = "authenticate answer without a usable token";
    return false;
  }
  return true;
}

bool is_auth_token_invalid(std::string_view body) {
  // etcd 3.4: ErrInvalidAuthToken "etcdserver: invalid auth token" (simple
  // tokens expire after --auth-token-ttl idle, and all die with a restart);
  // ErrAuthOldRevision when auth changed since the token was issued.
  return body.find("invalid auth token") != std::string_view::npos ||
         body.find("revision of auth store is old") != std::string_view::npos ||
         body.find("user name is empty") != std::string_view::npos;
}

bool parse_watch_message(std::string_view json, WatchMessage* out, std::string* error) {
  *out = WatchMessage{};
  auto v = parse_object(json, error);
  if (!v) return false;
  if (const JsonValue* e = v->get("error")) {
    out->error = true;
    const JsonValue* msg = e->is_object() ? e->get("message") : e;
    out->reason = msg && msg->kind == JsonValue::Kind::kString ? msg->text : "unspecified";
    return true;
  }
  const JsonValue* r = v->get("result");
  if (!r || !r->is_object()) {
    *error = "neither result nor error";
    return false;
  }
  if (!header_revision(*r, &out->revision, error)) return false;
  if (!json_bool(r->get("created"), &out->created) ||
      !json_bool(r->get("canceled"), &out->canceled) ||
      !json_u64(r->get("compact_revision"), &out->compact_revision) ||
      !string_field(*r, "cancel_reason", &out->reason)) {
    *error = "bad created/canceled/compact_revision field";
    return false;
  }
  const JsonValue* events = r->get("events");
  if (!events) return true;
  if (events->kind != JsonValue::Kind::kArray) {
    *error = "events is not an array";
    return false;
  }
  for (const JsonValue& ev : events->items) {
    WatchEvent e;
    std::string type;
    if (!ev.is_object() || !string_field(ev, "type", &type)) {
      *error = "bad event";
      return false;
    }
    if (type.empty() || type == "PUT")
      e.type = WatchEvent::Type::kPut;
    else if (type == "DELETE")
      e.type = WatchEvent::Type::kDelete;
    else {
      *error = "unknown event type '" + type.substr(0, 32) + "'";
      return false;
    }
    const JsonValue* kv = ev.get("kv");
    if (!kv || !parse_kv(*kv, &e.kv, error)) return false;
    out->events.push_back(std::move(e));
  }
  return true;
}

std::optional<PeerConfig> parse_member(std::string_view prefix, const EtcdKv& kv) {
  if (kv.key.size() <= prefix.size() || kv.key.compare(0, prefix.size(), prefix) != 0)
    return std::nullopt;
  PeerConfig p;
  p.id = kv.key.substr(prefix.size());
  if (!valid_id(p.id)) return std::nullopt;
  const auto sp = kv.value.find(' ');
  p.address = kv.value.substr(0, sp);
  if (!valid_address(p.address)) return std::nullopt;
  if (sp != std::string::npos) {
    const std::string w = kv.value.substr(sp + 1);
    char* end = nullptr;
    p.weight = strtod(w.c_str(), &end);
    if (w.empty() || *end != '\0' || !std::isfinite(p.weight) || !(p.weight > 0) || p.weight > 1000)
      return std::nullopt;
  }
  return p;
}

std::string member_value(const std::string& address, double weight) {
  char w[32];
  snprintf(w, sizeof w, "%.17g", weight);
  return address + " " + w;
}

void MemberMap::reset(const std::vector<EtcdKv>& kvs) {
  members_.clear();
  for (const EtcdKv& kv : kvs) {
    auto p = parse_member(prefix_, kv);
    if (!p) {
      ++rejected_;
      continue;
    }
    members_[p->id] = *p;
  }
}

void MemberMap::apply(const WatchEvent& e) {
  if (e.kv.key.size() <= prefix_.size() || e.kv.key.compare(0, prefix_.size(), prefix_) != 0) {
    ++rejected_;  // outside the watched range: etcd would not send it
    return;
  }
  const std::string id = e.kv.key.substr(prefix_.size());
  if (e.type == WatchEvent::Type::kDelete) {
    members_.erase(id);
    return;
  }
  auto p = parse_member(prefix_, e.kv);
  if (!p) {
    // A member rewritten with a bad value is no longer usable: drop it.
    ++rejected_;
    members_.erase(id);
    return;
  }
  members_[id] = *p;
}

std::vector<PeerConfig> MemberMap::peers_except(const std::string& self) const {
  std::vector<PeerConfig> out;
  out.reserve(members_.size());
  for (const auto& [id, p] : members_)
    if (id != self) out.push_back(p);  // std::map: already sorted by id
  return out;
}

const PeerConfig* MemberMap::find(const std::string& id) const {
  auto it = members_.find(id);
  return it == members_.end() ? nullptr : &it->second;
}

WatchStep apply_watch_message(const WatchMessage& m, MemberMap* members,
                              std::string* resync_reason) {
  if (m.error) {
    *resync_reason = "watch stream error: " + m.reason;
    return WatchStep::kResync;
  }
  if (m.compact_revision > 0) {
    *resync_reason = "watch start revision compacted (compact_revision " +
                     std::to_string(m.compact_revision) + ")";
    return WatchStep::kResync;
  }
  if (m.canceled) {
    *resync_reason =
        "watch canceled by etcd" + (m.reason.empty() ? std::string() : ": " + m.reason);
    return WatchStep::kResync;
  }
  for (const WatchEvent& e : m.events) members->apply(e);
  return m.events.empty() ? WatchStep::kContinue : WatchStep::kChanged;
}

}  // namespace dc
