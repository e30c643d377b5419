#include "daemon/prefetch/readahead.h"

#include <algorithm>

namespace dc {

Readahead::Readahead(uint32_t max_window_blocks, size_t max_streams)
    : max_window_(max_window_blocks), max_streams_(max_streams) {}

Readahead::Plan Readahead::extend(Stream& s, uint64_t from) {
  const uint64_t start = std::max(s.ahead_end, from);
  const uint64_t end = std::min(from + s.window, s.nblocks);
  if (end <= start) return {};
  s.ahead_end = end;
  s.marker = start;  // reaching the first block of this window asks for the next
  return Plan{start, static_cast<uint32_t>(end - start)};
}

Readahead::Plan Readahead::on_fetch(FileKey key, const Origin& origin, uint64_t first, uint32_t count,
                                    uint64_t nblocks) {
  if (max_window_ == 0) return {};
  auto it = streams_.find(key);
  if (it == streams_.end()) {
    while (streams_.size() >= max_streams_ && !lru_.empty()) {
      streams_.erase(lru_.back());
      lru_.pop_back();
    }
    lru_.push_front(key);
    Stream s;
    s.origin = origin;
    s.lru = lru_.begin();
    it = streams_.emplace(key, std::move(s)).first;
    // A read from the start is most likely a whole-file read: fetch the whole file
    // (up to the maximum window) at once rather than ramping up.
    it->second.window = first == 0 ? max_window_ : 0;
  } else {
    Stream& s = it->second;
    lru_.splice(lru_.begin(), lru_, s.lru);
    const bool sequential = first >= s.expect && first <= s.ahead_end;
    if (sequential) s.window = std::max<uint32_t>(s.window * 2, 2);
    else {
      s.window = 0;
      s.ahead_end = 0;
      s.marker = UINT64_MAX;
    }
  }
  Stream& s = it->second;
  s.window = std::min(s.window, max_window_);
  s.nblocks = nblocks;
  s.expect = first + count;
  // What this fetch brought in counts as fetched ahead: the next block continues it.
  s.ahead_end = std::max(s.ahead_end, first + count);
  return extend(s, first + count);
}

Readahead::Plan Readahead::on_hit(FileKey key, uint64_t block) {
  auto it = streams_.find(key);
  if (it == streams_.end() || block != it->second.marker) return {};
  Stream& s = it->second;
  s.window = std::min(std::max<uint32_t>(s.window * 2, 2), max_window_);
  s.expect = block + 1;
  return extend(s, s.ahead_end);
}

const Readahead::Origin* Readahead::origin_of(FileKey key) const {
  auto it = streams_.find(key);
  return it == streams_.end() ? nullptr : &it->second.origin;
}

}  // namespace dc
