#include "daemon/control/messages.h"

#include <cstring>

namespace dc {
namespace {

Error bad(const std::string& what) { return make_error(Errc::kProtocol, what); }

template <typename T>
bool fits(size_t len) {
  return len >= sizeof(T);
}

}  // namespace

Result<Request> parse_request(const uint8_t* data, size_t len, uint32_t dataset_count) {
  using namespace ctl;
  if (len < sizeof(MsgHeader)) return bad("truncated header (" + std::to_string(len) + " bytes)");
  if (len > kMaxRequest) return bad("oversized message (" + std::to_string(len) + " bytes)");
  MsgHeader h;
  memcpy(&h, data, sizeof h);
  if (h.magic != kMagic) return bad("bad magic");
  if (h.version != kVersion) return bad("unsupported version " + std::to_string(h.version));
  if (h.length != len) return bad("length field " + std::to_string(h.length) + " != packet size " + std::to_string(len));
  Request r;
  r.op = static_cast<Op>(h.op);
  r.request_id = h.request_id;
  switch (r.op) {
    case Op::kHello: {
      if (!fits<HelloRequest>(len)) return bad("truncated hello");
      HelloRequest m;
      memcpy(&m, data, sizeof m);
      if (m.role != static_cast<uint32_t>(Role::kShim) && m.role != static_cast<uint32_t>(Role::kCtl))
        return bad("unknown role");
      if (m.flags & ~kHelloWantRing) return bad("unknown hello flags");
      r.role = static_cast<Role>(m.role);
      r.hello_flags = m.flags;
      r.pid = m.pid;
      return r;
    }
    case Op::kFetch: {
      if (!fits<FetchRequest>(len)) return bad("truncated fetch");
      FetchRequest m;
      memcpy(&m, data, sizeof m);
      if (m.path_len == 0 || m.path_len > kMaxPath || sizeof m + m.path_len != len)
        return bad("fetch path length does not match packet");
      if (m.dataset_id >= dataset_count) return bad("fetch names an unknown dataset");
      if (m.block_count == 0 || m.block_count > kMaxFetchBlocks) return bad("fetch block count out of range");
      if (m.first_block > (1ULL << 40)) return bad("fetch block index out of range");
      r.key = FileKey{m.key_hi, m.key_lo};
      if (r.key.empty()) return bad("fetch with empty key");
      r.first_block = m.first_block;
      r.block_count = m.block_count;
      r.dataset_id = m.dataset_id;
      r.path.assign(reinterpret_cast<const char*>(data) + sizeof m, m.path_len);
      if (r.path.find('\0') != std::string::npos) return bad("NUL in path");
      return r;
    }
    case Op::kInvalidate: {
      if (!fits<InvalidateRequest>(len)) return bad("truncated invalidate");
      InvalidateRequest m;
      memcpy(&m, data, sizeof m);
      if (m.path_len == 0 || m.path_len > kMaxPath || sizeof m + m.path_len != len)
        return bad("invalidate path length does not match packet");
      if (m.dataset_id >= dataset_count) return bad("invalidate names an unknown dataset");
      r.dataset_id = m.dataset_id;
      r.path.assign(reinterpret_cast<const char*>(data) + sizeof m, m.path_len);
      if (r.path.find('\0') != std::string::npos) return bad("NUL in path");
      return r;
    }
    case Op::kStats:
    case Op::kRing:
    case Op::kPeers:
      if (len != sizeof(MsgHeader)) return bad("request takes no body");
      return r;
    default:
      return bad("unknown opcode " + std::to_string(h.op));
  }
}

}  // namespace dc
