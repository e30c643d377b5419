// Which ring member owns a block: weighted rendezvous hashing (HRW).
//
// Every member scores each (file key, block) pair with -weight / ln(u), u a hash of
// (member id, key, block) mapped into (0, 1); the highest score owns the block. That
// score is the inverse of an exponential race, so a member wins with probability
// weight / sum(weights), and removing a member moves exactly the blocks it won (every
// other member's score is unchanged). Scores depend only on the member's id and
// weight, never on its position in the list, so nodes that list members in
// different orders still agree.
//
// The hash is part of the cluster protocol: every node must compute the same owner.
// It is written out here (no std::hash) and pinned by golden values in
// tests/unit/placement_test.cc. Residual: std::log may differ in the last ulp between
// libm builds, which can flip only a near-tie (~2^-50 per lookup); a disagreement
// costs one extra origin fetch, never wrong data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "dc/file_key.h"

namespace dc {

struct Member {
  std::string id;  // unique, stable name of the node (not its address)
  double weight = 1.0;
};

class Placement {
 public:
  static constexpr size_t kNoOwner = SIZE_MAX;

  // Validates untrusted input (config, etcd): ids non-empty and unique, weights
  // finite and > 0.
  static Result<Placement> create(std::vector<Member> members);
  // Precondition: `members` passes create()'s checks.
  explicit Placement(std::vector<Member> members);

  // Index into members() of the owner, or kNoOwner when there are no members.
  size_t owner(FileKey key, uint64_t block) const;
  // Owner among members with live[i] true (indices past live.size() count as dead);
  // kNoOwner when none is live. Equals the owner in a Placement built from the live
  // members alone.
  size_t owner(FileKey key, uint64_t block, const std::vector<bool>& live) const;

  const std::vector<Member>& members() const { return members_; }
  std::optional<size_t> index_of(std::string_view id) const;
  // Long-run fraction of blocks each member owns: weight / sum(weights).
  std::vector<double> expected_share() const;

  // Exposed for tests and tools; values are protocol.
  static uint64_t id_hash(std::string_view id);
  static uint64_t key_block_hash(FileKey key, uint64_t block);

 private:
  template <typename IsLive>
  size_t pick(FileKey key, uint64_t block, IsLive is_live) const;

  std::vector<Member> members_;
  // Parallel to members_, packed so the scoring loop touches two dense arrays.
  std::vector<uint64_t> id_hash_;
  std::vector<double> weight_;
};

}  // namespace dc
