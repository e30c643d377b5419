// libFuzzer harness: etcd responses as dc reads them (daemon/cluster/etcd_wire.h):
// range, lease and watch answers, base64, member entries and the member map the
// watch updates. Everything comes off the network; malformed means an error.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/cluster/etcd_wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string error;

  uint64_t revision = 0;
  std::vector<dc::EtcdKv> kvs;
  dc::MemberMap members("/dc/members/");
  if (dc::parse_range_response(in, &revision, &kvs, &error)) members.reset(kvs);

  dc::WatchMessage m;
  if (dc::parse_watch_message(in, &m, &error)) {
    std::string why;
    (void)dc::apply_watch_message(m, &members, &why);
  }
  (void)members.peers_except("self");

  std::string id;
  uint64_t ttl = 0;
  (void)dc::parse_lease_grant(in, &id, &error);
  (void)dc::parse_lease_keepalive(in, &ttl, &error);
  (void)dc::is_lease_not_found(in);

  // base64 must round-trip whatever it accepts.
  if (auto decoded = dc::base64_decode(in)) {
    if (dc::base64_decode(dc::base64_encode(*decoded)) != decoded) __builtin_trap();
  }
  (void)dc::parse_member("/dc/members/",
                         dc::EtcdKv{std::string("/dc/members/n1"), std::string(in), 1});
  return 0;
}
