#include "daemon/ring/placement.h"

#include <cassert>
#include <cmath>
#include <numeric>
#include <unordered_set>
#include <utility>

namespace dc {
namespace {

// SplitMix64's finalizer: a bijection on 64 bits with full avalanche. Kept here
// rather than shared with file_key.h because each hash is its own protocol and
// must not change when the other does.
uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// Top 52 bits of h mapped to the open interval (0, 1): the +0.5 keeps u away from
// 0 and the 52-bit width keeps the largest value (1 - 2^-53) exactly representable,
// so ln(u) is always finite and negative.
double unit_open(uint64_t h) {
  return (static_cast<double>(h >> 12) + 0.5) * 0x1p-52;
}

}  // namespace

uint64_t Placement::id_hash(std::string_view id) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a: ids are hashed once, speed is moot
  for (unsigned char c : id) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return mix64(h ^ (id.size() * 0x9e3779b97f4a7c15ULL));
}

uint64_t Placement::key_block_hash(FileKey key, uint64_t block) {
  // Chained bijections: a file's consecutive blocks land on unrelated values.
  uint64_t h = mix64(key.hi + 0x243f6a8885a308d3ULL);
  h = mix64(h ^ key.lo);
  return mix64(h ^ (block + 0x13198a2e03707344ULL));
}

Result<Placement> Placement::create(std::vector<Member> members) {
  std::unordered_set<std::string_view> seen;
  for (const Member& m : members) {
    if (m.id.empty()) return make_error(Errc::kInvalidArgument, "ring member with empty id");
    if (!std::isfinite(m.weight) || m.weight <= 0) {
      return make_error(Errc::kInvalidArgument,
                        "ring member '" + m.id + "' needs a finite weight > 0");
    }
    if (!seen.insert(m.id).second) {
      return make_error(Errc::kInvalidArgument, "ring member '" + m.id + "' listed twice");
    }
  }
  return Placement(std::move(members));
}

Placement::Placement(std::vector<Member> members) : members_(std::move(members)) {
  id_hash_.reserve(members_.size());
  weight_.reserve(members_.size());
  for (const Member& m : members_) {
    assert(!m.id.empty() && std::isfinite(m.weight) && m.weight > 0);
    id_hash_.push_back(id_hash(m.id));
    weight_.push_back(m.weight);
  }
}

template <typename IsLive>
size_t Placement::pick(FileKey key, uint64_t block, IsLive is_live) const {
  const uint64_t kb = key_block_hash(key, block);
  size_t best = kNoOwner;
  double best_score = 0;
  for (size_t i = 0; i < id_hash_.size(); ++i) {
    if (!is_live(i)) continue;
    const double score = -weight_[i] / std::log(unit_open(mix64(kb ^ id_hash_[i])));
    // Ties (practically never) go to the larger id hash, not the list position, so
    // the answer does not depend on the order members are listed in.
    if (best == kNoOwner || score > best_score ||
        (score == best_score && id_hash_[i] > id_hash_[best])) {
      best = i;
      best_score = score;
    }
  }
  return best;
}

size_t Placement::owner(FileKey key, uint64_t block) const {
  return pick(key, block, [](size_t) { return true; });
}

size_t Placement::owner(FileKey key, uint64_t block, const std::vector<bool>& live) const {
  assert(live.size() == members_.size());
  return pick(key, block, [&live](size_t i) { return i < live.size() && live[i]; });
}

std::optional<size_t> Placement::index_of(std::string_view id) const {
  for (size_t i = 0; i < members_.size(); ++i) {
    if (members_[i].id == id) return i;
  }
  return std::nullopt;
}

std::vector<double> Placement::expected_share() const {
  const double total = std::accumulate(weight_.begin(), weight_.end(), 0.0);
  std::vector<double> share;
  share.reserve(weight_.size());
  for (double w : weight_) share.push_back(w / total);
  return share;
}

}  // namespace dc
