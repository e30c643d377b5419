#include "daemon/config/config.h"

#include <sys/stat.h>
#include <unistd.h>

#include <toml++/toml.h>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include "common/units.h"
#include "daemon/net/auth.h"

namespace dc {
namespace {

bool is_pow2(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

std::string where(const std::string& source, const toml::node* node) {
  std::ostringstream out;
  out << source;
  if (node && node->source().begin.line > 0) out << ":" << node->source().begin.line;
  return out.str();
}

Error key_error(const std::string& source, const toml::node* node, const std::string& key,
                const std::string& what) {
  return make_error(Errc::kInvalidArgument,
                    where(source, node) + ": key '" + key + "': " + what);
}

// Each table may hold only the keys we know: a typo must fail loudly, not be ignored.
Status check_keys(const toml::table& t, const std::string& prefix,
                  const std::set<std::string>& allowed, const std::string& source) {
  for (auto&& [k, v] : t) {
    std::string name(k.str());
    if (!allowed.count(name)) {
      return key_error(source, &v, prefix + name, "unknown key");
    }
  }
  return ok_status();
}

Result<uint64_t> size_value(const toml::node& node, const std::string& key,
                            const std::string& source) {
  if (auto i = node.value<int64_t>()) {
    if (*i < 0) return key_error(source, &node, key, "must not be negative");
    return static_cast<uint64_t>(*i);
  }
  if (auto s = node.value<std::string>()) {
    auto r = parse_size(*s);
    if (!r) return key_error(source, &node, key, r.error().message);
    return *r;
  }
  return key_error(source, &node, key, "expected a size such as \"4GiB\" or a number of bytes");
}

Result<std::string> string_value(const toml::node& node, const std::string& key,
                                 const std::string& source) {
  if (auto s = node.value<std::string>()) return *s;
  return key_error(source, &node, key, "expected a string");
}

uint64_t physical_memory() {
  long pages = sysconf(_SC_PHYS_PAGES);
  long page = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return 0;
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page);
}

std::string canonical_root(const std::string& path) {
  char buf[PATH_MAX];
  if (realpath(path.c_str(), buf)) return buf;
  return path;  // may be mounted later; the agent re-resolves on use
}

Status parse_agent(const toml::table& t, Config& c, const std::string& src) {
  if (auto s = check_keys(t, "agent.", {"socket", "socket_mode", "socket_group", "log_level"}, src); !s)
    return s;
  if (auto* n = t.get("socket")) {
    auto v = string_value(*n, "agent.socket", src);
    if (!v) return v.error();
    if (v->empty() || v->size() >= 108) return key_error(src, n, "agent.socket", "must be 1..107 bytes");
    c.socket = *v;
  }
  if (auto* n = t.get("socket_mode")) {
    auto v = string_value(*n, "agent.socket_mode", src);
    if (!v) return v.error();
    char* end = nullptr;
    long mode = strtol(v->c_str(), &end, 8);
    if (v->empty() || *end || mode < 0 || mode > 0777)
      return key_error(src, n, "agent.socket_mode", "expected an octal mode such as \"0660\"");
    c.socket_mode = static_cast<uint32_t>(mode);
  }
  if (auto* n = t.get("socket_group")) {
    auto v = string_value(*n, "agent.socket_group", src);
    if (!v) return v.error();
    c.socket_group = *v;
  }
  if (auto* n = t.get("log_level")) {
    auto v = string_value(*n, "agent.log_level", src);
    if (!v) return v.error();
    if (*v != "error" && *v != "warn" && *v != "info" && *v != "debug")
      return key_error(src, n, "agent.log_level", "expected error, warn, info or debug");
    c.log_level = *v;
  }
  return ok_status();
}

Status parse_cache(const toml::table& t, Config& c, const std::string& src) {
  if (auto s = check_keys(t, "cache.", {"memory", "page_size", "block_size", "max_open_files", "huge_pages"}, src);
      !s)
    return s;
  if (auto* n = t.get("huge_pages")) {
    auto v = string_value(*n, "cache.huge_pages", src);
    if (!v) return v.error();
    if (*v != "auto" && *v != "off") return key_error(src, n, "cache.huge_pages", "expected \"auto\" or \"off\"");
    c.huge_pages = *v == "auto";
  }
  if (auto* n = t.get("memory")) {
    auto v = size_value(*n, "cache.memory", src);
    if (!v) return v.error();
    c.memory = *v;
  }
  if (auto* n = t.get("page_size")) {
    auto v = size_value(*n, "cache.page_size", src);
    if (!v) return v.error();
    if (!is_pow2(*v) || *v < 4096 || *v > (16u << 20))
      return key_error(src, n, "cache.page_size", "must be a power of two from 4KiB to 16MiB");
    c.page_size = static_cast<uint32_t>(*v);
  }
  if (auto* n = t.get("block_size")) {
    auto v = size_value(*n, "cache.block_size", src);
    if (!v) return v.error();
    if (!is_pow2(*v) || *v < 4096 || *v > (64u << 20))
      return key_error(src, n, "cache.block_size", "must be a power of two from 4KiB to 64MiB");
    c.block_size = static_cast<uint32_t>(*v);
  }
  if (auto* n = t.get("max_open_files")) {
    auto v = n->value<int64_t>();
    if (!v || *v < 16 || *v > 1000000)
      return key_error(src, n, "cache.max_open_files", "expected a number from 16 to 1000000");
    c.max_open_files = static_cast<uint32_t>(*v);
  }
  return ok_status();
}

Status parse_origin(const toml::table& t, Config& c, const std::string& src) {
  if (auto s = check_keys(t, "origin.", {"io_depth"}, src); !s) return s;
  if (auto* n = t.get("io_depth")) {
    auto v = n->value<int64_t>();
    if (!v || *v < 1 || *v > 4096)
      return key_error(src, n, "origin.io_depth", "expected a number from 1 to 4096");
    c.io_depth = static_cast<uint32_t>(*v);
  }
  return ok_status();
}

Result<uint32_t> duration_ms(const toml::node& node, const std::string& key, const std::string& src) {
  auto v = string_value(node, key, src);
  if (!v) return v.error();
  char* end = nullptr;
  const double n = strtod(v->c_str(), &end);
  std::string unit = end ? end : "";
  double ms = -1;
  if (unit == "ms") ms = n;
  else if (unit == "s") ms = n * 1000;
  else if (unit == "m") ms = n * 60000;
  if (end == v->c_str() || ms < 100 || ms > 3600000)
    return key_error(src, &node, key, "expected a duration from 100ms to 1h such as \"5s\" or \"500ms\"");
  return static_cast<uint32_t>(ms);
}

bool valid_host_port(const std::string& a) {
  auto colon = a.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 >= a.size()) return false;
  char* end = nullptr;
  long port = strtol(a.c_str() + colon + 1, &end, 10);
  return *end == '\0' && port > 0 && port < 65536;
}

Result<double> weight_value(const toml::node& node, const std::string& key, const std::string& src) {
  std::optional<double> w = node.value<double>();
  if (!w) return key_error(src, &node, key, "expected a number");
  if (!(*w > 0) || *w > 1000) return key_error(src, &node, key, "must be > 0 and <= 1000");
  return *w;
}

// An etcd endpoint: host:port (plain HTTP), or the same after http:// or https://.
bool valid_etcd_endpoint(const std::string& e) {
  for (const char* scheme : {"http://", "https://"})
    if (e.rfind(scheme, 0) == 0) return valid_host_port(e.substr(strlen(scheme)));
  return e.find('/') == std::string::npos && valid_host_port(e);
}

// A file the agent will read later (a certificate, a key): said now, with the
// key's line, rather than as a TLS error in the log minutes after start.
Status readable_file(const toml::node* n, const std::string& key, const std::string& path,
                     const std::string& src) {
  struct stat st {};
  if (path.empty() || path[0] != '/') return key_error(src, n, key, "expected an absolute path");
  if (stat(path.c_str(), &st) != 0) return key_error(src, n, key, path + ": " + strerror(errno));
  if (!S_ISREG(st.st_mode)) return key_error(src, n, key, path + ": not a regular file");
  if (access(path.c_str(), R_OK) != 0) return key_error(src, n, key, path + ": " + strerror(errno));
  return ok_status();
}

// [cluster] etcd_ca / etcd_cert / etcd_key (TLS) and etcd_user /
// etcd_password_file (etcd v3 auth).
Status parse_etcd_security(const toml::table& t, ClusterConfig& k, const std::string& src) {
  struct Item {
    const char* name;
    std::string* out;
  };
  const Item items[] = {{"etcd_ca", &k.etcd_ca},
                        {"etcd_cert", &k.etcd_cert},
                        {"etcd_key", &k.etcd_key},
                        {"etcd_user", &k.etcd_user},
                        {"etcd_password_file", &k.etcd_password_file}};
  for (const Item& it : items) {
    const toml::node* n = t.get(it.name);
    if (!n) continue;
    const std::string key = std::string("cluster.") + it.name;
    auto v = string_value(*n, key, src);
    if (!v) return v.error();
    if (v->empty()) return key_error(src, n, key, "must not be empty");
    *it.out = *v;
    if (it.out == &k.etcd_user) {
      if (v->size() > 255) return key_error(src, n, key, "must be 1..255 bytes");
    } else if (it.out == &k.etcd_password_file) {
      auto pw = load_secret(*v);  // mode 0600, not empty, as for secret_file
      if (!pw) return key_error(src, n, key, pw.error().message);
    } else if (auto s = readable_file(n, key, *v, src); !s) {
      return s;
    }
  }
  bool https = false;
  for (const std::string& e : k.etcd) https = https || e.rfind("https://", 0) == 0;
  const toml::node* ca = t.get("etcd_ca");
  const toml::node* cert = t.get("etcd_cert");
  const toml::node* key = t.get("etcd_key");
  if ((ca || cert || key) && !https)
    return key_error(src,
                     ca     ? ca
                     : cert ? cert
                            : key,
                     ca     ? "cluster.etcd_ca"
                     : cert ? "cluster.etcd_cert"
                            : "cluster.etcd_key",
                     "TLS settings given, but no etcd endpoint is https://");
  if (static_cast<bool>(cert) != static_cast<bool>(key))
    return key_error(src, cert ? cert : key, cert ? "cluster.etcd_cert" : "cluster.etcd_key",
                     "etcd_cert and etcd_key go together (a client certificate and its key)");
  const toml::node* user = t.get("etcd_user");
  const toml::node* pwf = t.get("etcd_password_file");
  if (static_cast<bool>(user) != static_cast<bool>(pwf))
    return key_error(src, user ? user : pwf,
                     user ? "cluster.etcd_user" : "cluster.etcd_password_file",
                     "etcd_user and etcd_password_file go together");
  return ok_status();
}

Status parse_cluster(const toml::table& t, Config& c, const std::string& src) {
  if (auto s = check_keys(
          t, "cluster.",
          {"node_id", "listen", "serve", "weight", "secret_file", "member_timeout", "copies_share",
           "membership", "etcd", "send", "integrity", "etcd_ca", "etcd_cert", "etcd_key", "etcd_user",
           "etcd_password_file", "max_connections_per_peer", "connection_idle",
           // bounds: peer fetch deadline, inbound connection caps
           "fetch_timeout", "max_inbound_connections", "max_connections_per_address"},
          src);
      !s)
    return s;
  ClusterConfig& k = c.cluster;
  k.enabled = true;
  const toml::node* id = t.get("node_id");
  if (!id) return make_error(Errc::kInvalidArgument, src + ": key 'cluster.node_id': missing");
  auto idv = string_value(*id, "cluster.node_id", src);
  if (!idv) return idv.error();
  if (idv->empty() || idv->size() >= 64) return key_error(src, id, "cluster.node_id", "must be 1..63 bytes");
  k.node_id = *idv;
  if (auto* n = t.get("serve")) {
    auto v = n->value<bool>();
    if (!v) return key_error(src, n, "cluster.serve", "expected true or false");
    k.serve = *v;
  }
  if (auto* n = t.get("listen")) {
    auto v = string_value(*n, "cluster.listen", src);
    if (!v) return v.error();
    if (!valid_host_port(*v)) return key_error(src, n, "cluster.listen", "expected host:port");
    k.listen = *v;
  }
  if (k.serve && k.listen.empty())
    return make_error(Errc::kInvalidArgument, src + ": key 'cluster.listen': required when serve = true");
  if (auto* n = t.get("weight")) {
    auto v = weight_value(*n, "cluster.weight", src);
    if (!v) return v.error();
    k.weight = *v;
  }
  const toml::node* sf = t.get("secret_file");
  if (!sf) return make_error(Errc::kInvalidArgument, src + ": key 'cluster.secret_file': missing (peers must authenticate)");
  auto sfv = string_value(*sf, "cluster.secret_file", src);
  if (!sfv) return sfv.error();
  k.secret_file = *sfv;
  if (auto* n = t.get("member_timeout")) {
    auto v = duration_ms(*n, "cluster.member_timeout", src);
    if (!v) return v.error();
    k.member_timeout_ms = *v;
  }
  if (auto* n = t.get("copies_share")) {
    auto v = n->value<double>();
    if (!v || *v < 0.05 || *v > 0.9) return key_error(src, n, "cluster.copies_share", "expected a number from 0.05 to 0.9");
    k.copies_share = *v;
  }
  if (auto* n = t.get("max_connections_per_peer")) {
    auto v = n->value<int64_t>();
    if (!v || *v < 1 || *v > 64)
      return key_error(src, n, "cluster.max_connections_per_peer", "expected a number from 1 to 64");
    k.max_connections_per_peer = static_cast<uint32_t>(*v);
  }
  if (auto* n = t.get("connection_idle")) {
    auto v = duration_ms(*n, "cluster.connection_idle", src);
    if (!v) return v.error();
    k.connection_idle_ms = *v;
  }
  // bounds: how long a peer fetch may wait, how many peers may connect.
  if (auto* n = t.get("fetch_timeout")) {
    auto v = duration_ms(*n, "cluster.fetch_timeout", src);
    if (!v) return v.error();
    if (*v < 100) return key_error(src, n, "cluster.fetch_timeout", "must be at least 100ms");
    k.fetch_timeout_ms = *v;
  }
  if (auto* n = t.get("max_inbound_connections")) {
    auto v = n->value<int64_t>();
    if (!v || *v < 1 || *v > 65536)
      return key_error(src, n, "cluster.max_inbound_connections",
                       "expected a number from 1 to 65536");
    k.max_inbound_connections = static_cast<uint32_t>(*v);
  }
  if (auto* n = t.get("max_connections_per_address")) {
    auto v = n->value<int64_t>();
    if (!v || *v < 1 || *v > 65536)
      return key_error(src, n, "cluster.max_connections_per_address",
                       "expected a number from 1 to 65536");
    k.max_connections_per_address = static_cast<uint32_t>(*v);
  }
  if (auto* n = t.get("membership")) {
    auto v = string_value(*n, "cluster.membership", src);
    if (!v) return v.error();
    if (*v != "static" && *v != "etcd") return key_error(src, n, "cluster.membership", "expected \"static\" or \"etcd\"");
    k.membership = *v;
  }
  if (auto* n = t.get("send")) {
    auto v = string_value(*n, "cluster.send", src);
    if (!v) return v.error();
    if (*v != "copy" && *v != "zerocopy" && *v != "sendfile")
      return key_error(src, n, "cluster.send", "expected \"copy\", \"zerocopy\" or \"sendfile\"");
    k.send = *v;
  }
  if (auto* n = t.get("integrity")) {
    auto v = string_value(*n, "cluster.integrity", src);
    if (!v) return v.error();
    if (*v != "mac" && *v != "encrypt" && *v != "crc")
      return key_error(src, n, "cluster.integrity", "expected \"mac\", \"encrypt\" or \"crc\"");
    k.integrity = *v;
  }
  if (auto* n = t.get("etcd")) {
    const auto* arr = n->as_array();
    if (!arr) return key_error(src, n, "cluster.etcd", "expected a list of host:port");
    for (const auto& e : *arr) {
      auto v = e.value<std::string>();
      if (!v || !valid_etcd_endpoint(*v))
        return key_error(src, &e, "cluster.etcd",
                         "expected host:port, http://host:port or https://host:port");
      k.etcd.push_back(*v);
    }
  }
  if (k.membership == "etcd" && k.etcd.empty())
    return make_error(Errc::kInvalidArgument, src + ": key 'cluster.etcd': required when membership = \"etcd\"");
  if (auto s = parse_etcd_security(t, k, src); !s) return s;
  return ok_status();
}

Status parse_peers(const toml::node& node, Config& c, const std::string& src) {
  const auto* arr = node.as_array();
  if (!arr) return key_error(src, &node, "peer", "expected [[peer]] tables");
  std::set<std::string> ids{c.cluster.node_id};
  for (const auto& el : *arr) {
    const auto* t = el.as_table();
    if (!t) return key_error(src, &el, "peer", "expected a table");
    if (auto s = check_keys(*t, "peer.", {"id", "address", "weight"}, src); !s) return s;
    PeerConfig p;
    const auto* idn = t->get("id");
    const auto* an = t->get("address");
    if (!idn) return key_error(src, &el, "peer.id", "missing");
    if (!an) return key_error(src, &el, "peer.address", "missing");
    auto id = string_value(*idn, "peer.id", src);
    if (!id) return id.error();
    if (id->empty() || id->size() >= 64) return key_error(src, idn, "peer.id", "must be 1..63 bytes");
    if (!ids.insert(*id).second) return key_error(src, idn, "peer.id", "duplicate member id '" + *id + "'");
    auto addr = string_value(*an, "peer.address", src);
    if (!addr) return addr.error();
    if (!valid_host_port(*addr)) return key_error(src, an, "peer.address", "expected host:port");
    p.id = *id;
    p.address = *addr;
    if (auto* wn = t->get("weight")) {
      auto w = weight_value(*wn, "peer.weight", src);
      if (!w) return w.error();
      p.weight = *w;
    }
    c.cluster.peers.push_back(p);
  }
  return ok_status();
}

Status parse_datasets(const toml::node& node, Config& c, const std::string& src) {
  const auto* arr = node.as_array();
  if (!arr) return key_error(src, &node, "dataset", "expected [[dataset]] tables");
  std::set<std::string> names;
  for (const auto& el : *arr) {
    const auto* t = el.as_table();
    if (!t) return key_error(src, &el, "dataset", "expected a table");
    if (auto s = check_keys(*t, "dataset.", {"name", "path"}, src); !s) return s;
    const auto* nn = t->get("name");
    const auto* pn = t->get("path");
    if (!nn) return key_error(src, &el, "dataset.name", "missing");
    if (!pn) return key_error(src, &el, "dataset.path", "missing");
    auto name = string_value(*nn, "dataset.name", src);
    if (!name) return name.error();
    auto path = string_value(*pn, "dataset.path", src);
    if (!path) return path.error();
    if (name->empty() || name->size() > 255 || name->find('/') != std::string::npos)
      return key_error(src, nn, "dataset.name", "must be 1..255 bytes without '/'");
    if (!names.insert(*name).second)
      return key_error(src, nn, "dataset.name", "duplicate dataset name '" + *name + "'");
    if (path->empty() || (*path)[0] != '/' || path->size() > 1024)
      return key_error(src, pn, "dataset.path", "must be an absolute path");
    std::string root = canonical_root(*path);
    if (root != "/" && root.back() == '/') root.pop_back();
    if (root == "/") return key_error(src, pn, "dataset.path", "must not be the root directory");
    c.datasets.push_back({*name, root});
  }
  if (c.datasets.size() > 64) return key_error(src, &node, "dataset", "at most 64 datasets");
  return ok_status();
}

}  // namespace

Config default_config() {
  Config c;
  uint64_t ram = physical_memory();
  uint64_t mem = 1ULL << 30;
  if (ram && ram / 4 < mem) mem = ram / 4;
  if (mem < (64ULL << 20)) mem = 64ULL << 20;
  c.memory = mem;
  c.datasets.push_back({"datasets", canonical_root("/srv/datasets")});
  return c;
}

Result<Config> parse_config(std::string_view text, const std::string& source) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    std::ostringstream out;
    out << source << ":" << e.source().begin.line << ": " << e.description();
    return make_error(Errc::kInvalidArgument, out.str());
  }
  Config c = default_config();
  c.source = source;
  c.datasets.clear();
  if (auto s = check_keys(root, "", {"agent", "cache", "origin", "dataset", "cluster", "peer"}, source); !s)
    return s.error();
  struct Section {
    const char* name;
    Status (*parse)(const toml::table&, Config&, const std::string&);
  };
  for (const Section& sec : {Section{"agent", parse_agent}, Section{"cache", parse_cache},
                             Section{"origin", parse_origin}}) {
    if (auto* n = root.get(sec.name)) {
      const auto* t = n->as_table();
      if (!t) return key_error(source, n, sec.name, "expected a table [" + std::string(sec.name) + "]");
      if (auto s = sec.parse(*t, c, source); !s) return s.error();
    }
  }
  if (auto* n = root.get("dataset")) {
    if (auto s = parse_datasets(*n, c, source); !s) return s.error();
  }
  if (auto* n = root.get("cluster")) {
    const auto* t = n->as_table();
    if (!t) return key_error(source, n, "cluster", "expected a table [cluster]");
    if (auto s = parse_cluster(*t, c, source); !s) return s.error();
  }
  if (auto* n = root.get("peer")) {
    if (!c.cluster.enabled) return key_error(source, n, "peer", "[[peer]] needs a [cluster] section");
    if (auto s = parse_peers(*n, c, source); !s) return s.error();
  }
  if (c.block_size < c.page_size)
    return make_error(Errc::kInvalidArgument,
                      source + ": key 'cache.block_size': must be at least cache.page_size");
  if (c.block_size / c.page_size > 64)
    return make_error(Errc::kInvalidArgument,
                      source + ": key 'cache.block_size': at most 64 pages per block");
  if (c.memory < 16ULL * c.block_size)
    return make_error(Errc::kInvalidArgument,
                      source + ": key 'cache.memory': must hold at least 16 blocks (" +
                          format_size(16ULL * c.block_size) + ")");
  if (c.memory > (1ULL << 40))
    return make_error(Errc::kInvalidArgument, source + ": key 'cache.memory': at most 1TiB");
  return c;
}

Result<Config> load_config_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(Errc::kNotFound, path + ": cannot open config file");
  std::ostringstream buf;
  buf << in.rdbuf();
  if (buf.str().size() > (1u << 20)) return make_error(Errc::kInvalidArgument, path + ": config larger than 1MiB");
  return parse_config(buf.str(), path);
}

std::string describe_config(const Config& c) {
  std::ostringstream out;
  out << "config " << c.source << ": socket " << c.socket << ", memory " << format_size(c.memory)
      << ", page " << format_size(c.page_size) << ", block " << format_size(c.block_size)
      << ", " << c.datasets.size() << " dataset(s)";
  for (const auto& d : c.datasets) out << "\n  dataset " << d.name << " = " << d.path;
  if (c.cluster.enabled) {
    out << "\n  cluster node " << c.cluster.node_id << (c.cluster.serve ? " serving on " + c.cluster.listen : " (client only)")
        << ", membership " << c.cluster.membership << ", " << c.cluster.peers.size() << " static peer(s)"
        << ", send " << c.cluster.send << ", integrity " << c.cluster.integrity
        << ", up to " << c.cluster.max_connections_per_peer << " connection(s) per peer";
    if (c.cluster.membership == "etcd") {
      out << "\n  etcd";
      for (const auto& e : c.cluster.etcd) out << " " << e;
      if (!c.cluster.etcd_cert.empty()) out << ", client certificate " << c.cluster.etcd_cert;
      if (!c.cluster.etcd_user.empty()) out << ", user " << c.cluster.etcd_user;
    }
  }
  return out.str();
}

}  // namespace dc
