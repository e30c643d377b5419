#include "daemon/cache/eviction.h"

#include <algorithm>

namespace dc {

EvictionPolicy::EvictionPolicy(uint64_t capacity_pages, uint32_t probation_divisor)
    : capacity_pages_(capacity_pages) {
  probation_target_ = std::max<uint64_t>(capacity_pages / probation_divisor, 1);
  main_target_ = capacity_pages - std::min(probation_target_, capacity_pages);
}

EvictionPolicy::Node& EvictionPolicy::node(Id id) {
  if (id >= nodes_.size()) nodes_.resize(static_cast<size_t>(id) + 1);
  return nodes_[id];
}

bool EvictionPolicy::contains(Id id) const {
  return id < nodes_.size() && nodes_[id].where != Where::kNone;
}

void EvictionPolicy::link_tail(List& l, Id id) {
  Node& n = node(id);
  n.prev = l.tail;
  n.next = kNil;
  if (l.tail != kNil) nodes_[l.tail].next = id;
  else l.head = id;
  l.tail = id;
  l.pages += n.pages;
}

void EvictionPolicy::unlink(List& l, Id id) {
  Node& n = nodes_[id];
  if (n.prev != kNil) nodes_[n.prev].next = n.next;
  else l.head = n.next;
  if (n.next != kNil) nodes_[n.next].prev = n.prev;
  else l.tail = n.prev;
  n.prev = n.next = kNil;
  l.pages -= n.pages;
}

void EvictionPolicy::insert(Id id, uint32_t pages, bool prefetched) {
  if (contains(id)) erase(id);
  Node& n = node(id);
  n.pages = pages;
  n.where = Where::kProbation;
  n.referenced = false;
  n.prefetched = prefetched;
  clock_ += pages;
  n.last_access = clock_;
  link_tail(probation_, id);
}

void EvictionPolicy::requeue(Id id, uint32_t pages) {
  if (contains(id)) erase(id);
  Node& n = node(id);
  n.pages = pages;
  n.where = Where::kProbation;
  n.referenced = true;
  n.prefetched = false;
  link_tail(probation_, id);
}

void EvictionPolicy::note_reuse(uint64_t distance) {
  // Windows of one cache's worth of accesses: the estimate follows a workload that
  // changes, yet never forgets the last window's maximum at once.
  if (clock_ - window_start_ > 4 * capacity_pages_) {
    reuse_prev_ = reuse_cur_;
    reuse_cur_ = 0;
    window_start_ = clock_;
  }
  reuse_cur_ = std::max(reuse_cur_, distance);
}

void EvictionPolicy::touch(Id id) {
  if (!contains(id)) return;
  Node& n = nodes_[id];
  clock_ += n.pages;
  const uint64_t now = clock_;
  if (n.prefetched) {
    n.prefetched = false;
    n.last_access = now;
    return;
  }
  if (n.where == Where::kMain) {
    note_reuse(now - n.last_access);
    unlink(main_, id);
    n.last_access = now;
    link_tail(main_, id);
  } else {
    n.referenced = true;
    n.last_access = now;
  }
}

void EvictionPolicy::erase(Id id) {
  if (!contains(id)) return;
  Node& n = nodes_[id];
  unlink(list_of(n.where), id);
  n.where = Where::kNone;
}

uint64_t EvictionPolicy::dead_threshold() const {
  return std::max<uint64_t>(2 * std::max(reuse_cur_, reuse_prev_), capacity_pages_);
}

void EvictionPolicy::promote(Id id) {
  unlink(probation_, id);
  Node& n = nodes_[id];
  n.where = Where::kMain;
  link_tail(main_, id);
}

std::optional<EvictionPolicy::Id> EvictionPolicy::pick_victim() {
  while (probation_.head != kNil) {
    const Id b = probation_.head;
    Node& nb = nodes_[b];
    if (main_.pages + nb.pages <= main_target_) {
      promote(b);
      continue;
    }
    const Id t = main_.head;
    const bool tail_dead = t != kNil && clock_ - nodes_[t].last_access > dead_threshold();
    if (nb.referenced || tail_dead) {
      // A block reused within probation, or a dead main block: b takes a place in
      // main and the oldest main block goes.
      promote(b);
      if (t == kNil) continue;
      erase(t);
      return t;
    }
    erase(b);
    return b;
  }
  if (main_.head != kNil) {
    const Id t = main_.head;
    erase(t);
    return t;
  }
  return std::nullopt;
}

}  // namespace dc
