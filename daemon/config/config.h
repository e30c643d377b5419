// dcagent configuration: TOML, validated whole before anything starts.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace dc {

struct DatasetConfig {
  std::string name;
  std::string path;  // absolute, canonical when the root exists at load time
};

struct PeerConfig {
  std::string id;
  std::string address;  // host:port
  double weight = 1.0;
};

// [cluster]: absent means a single node.
struct ClusterConfig {
  bool enabled = false;
  std::string node_id;
  std::string listen;             // host:port for peers; required when serve
  bool serve = true;              // false: a client-only node, owns nothing
  double weight = 1.0;
  std::string secret_file;        // shared cluster secret (HMAC key), mode 0600
  uint32_t member_timeout_ms = 5000;  // silence after which a member leaves placement
  double copies_share = 0.25;     // arena share for copies of blocks owned elsewhere
  uint32_t max_connections_per_peer = 4;  // connections to one member, opened as traffic grows
  uint32_t connection_idle_ms = 10000;    // an extra connection idle this long is closed
  // bounds: a fetch a member has not answered in this long reads the origin instead.
  uint32_t fetch_timeout_ms = 5000;
  // bounds: inbound peer connections, in all (also at most half the descriptor
  // limit) and from one address; over either, a new one is closed at once.
  uint32_t max_inbound_connections = 1024;
  uint32_t max_connections_per_address = 16;
  std::string membership = "static";  // "static" ([[peer]]) or "etcd"
  std::vector<std::string> etcd;      // "host:port" (http) or "https://host:port" endpoints
  // etcd over TLS and with auth (see daemon/cluster/etcd_client.h); empty: unused.
  std::string etcd_ca;             // PEM CA that signed etcd's server certificate
  std::string etcd_cert;           // PEM client certificate (with etcd_key)
  std::string etcd_key;            // its private key
  std::string etcd_user;           // etcd v3 auth user
  std::string etcd_password_file;  // its password, mode 0600 like secret_file
  std::vector<PeerConfig> peers;
  // How block replies leave: "copy" (sendmsg, the kernel copies), "zerocopy"
  // (MSG_ZEROCOPY from pinned arena pages), "sendfile" (from the arena memfd,
  // pinned until acknowledged). Default chosen by tools/bench/cluster_bench.sh.
  std::string send = "copy";
  // What protects peer frames after the handshake (include/dc/peer_wire.h):
  // "mac" (AES-GCM tag over clear bodies), "encrypt" (AES-GCM, encrypted) or "crc"
  // (CRC32C only: a trusted fabric). Every node must use the same.
  std::string integrity = "mac";
};

struct Config {
  std::string source = "<embedded default>";  // file the config came from
  // [agent]
  std::string socket = "/run/dc/agent.sock";
  uint32_t socket_mode = 0660;  // who may connect: owner and group of the socket
  std::string socket_group;     // empty: the agent's own group
  std::string log_level = "info";
  // [cache]
  uint64_t memory = 0;                 // arena page bytes
  uint32_t page_size = 64 * 1024;
  uint32_t block_size = 1024 * 1024;
  uint32_t max_open_files = 4096;      // origin descriptors kept open
  bool huge_pages = true;              // "auto": back the arena with huge pages if possible
  // [origin]
  uint32_t io_depth = 64;              // io_uring queue entries
  std::vector<DatasetConfig> datasets;
  ClusterConfig cluster;
};

// The embedded default: a single-node memory cache of min(1 GiB, RAM/4), socket
// /run/dc/agent.sock, one dataset "datasets" rooted at /srv/datasets.
Config default_config();

// Parses TOML text. `source` names the file in error messages, which read
// "FILE:LINE: key 'cache.memory': ...".
Result<Config> parse_config(std::string_view text, const std::string& source);
Result<Config> load_config_file(const std::string& path);

// Human-readable summary for --check-config and the start-up log.
std::string describe_config(const Config& c);

}  // namespace dc
