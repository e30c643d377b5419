// What an epoll event of the agent's loop is about: a kind in the top byte of
// epoll_data.u64, an id (session, fill, peer connection) below it. One list, so the
// agent's files that register descriptors cannot disagree on the numbers.
#pragma once

#include <cstdint>

namespace dc::epoll_tag {

enum Kind : uint64_t {
  kListen = 1,
  kTimer = 2,
  kSignal = 3,
  kIo = 4,
  kSession = 5,
  kPeer = 6,
  kMembership = 7,
  kOriginWorkers = 8
};
constexpr uint64_t make(Kind k, uint64_t id = 0) { return (uint64_t{k} << 56) | id; }
constexpr Kind kind_of(uint64_t tag) { return static_cast<Kind>(tag >> 56); }
constexpr uint64_t kIdMask = (uint64_t{1} << 56) - 1;

}  // namespace dc::epoll_tag
