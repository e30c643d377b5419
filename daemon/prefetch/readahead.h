// Sequential readahead in the agent. It sees every demand fetch of every client and
// (through the hit rings) which prefetched blocks readers have reached, so one
// stream per file is enough, whichever process reads it.
//
// A read that starts at block 0 fetches the file ahead up to the maximum window
// (whole-file reads, streams). Elsewhere, a fetch that continues where the file's
// last one ended doubles the window (up to the maximum); a jump resets it, so random
// record reads never prefetch. A marker block in each window triggers the next one when a reader
// reaches it, so a steady stream is fetched ahead without ever missing.
#pragma once

#include <cstdint>
#include <list>
#include <string>
#include <unordered_map>

#include "dc/file_key.h"

namespace dc {

class Readahead {
 public:
  struct Plan {
    uint64_t first = 0;
    uint32_t count = 0;
  };
  struct Origin {  // how to open the file again when a hit asks for more
    uint32_t dataset_id = 0;
    std::string path;
  };

  Readahead(uint32_t max_window_blocks, size_t max_streams = 4096);

  // A client fetched [first, first + count) of a file of `nblocks` blocks.
  Plan on_fetch(FileKey key, const Origin& origin, uint64_t first, uint32_t count, uint64_t nblocks);
  // A reader reached `block` of `key` in the arena.
  Plan on_hit(FileKey key, uint64_t block);
  const Origin* origin_of(FileKey key) const;

 private:
  struct Stream {
    Origin origin;
    uint64_t expect = 0;     // block after the last one demanded
    uint64_t ahead_end = 0;  // blocks before this are fetched or being fetched
    uint64_t marker = UINT64_MAX;
    uint64_t nblocks = 0;
    uint32_t window = 0;
    std::list<FileKey>::iterator lru;
  };
  struct KeyHash {
    size_t operator()(const FileKey& k) const { return static_cast<size_t>(k.lo ^ (k.hi << 1)); }
  };
  Plan extend(Stream& s, uint64_t from);

  uint32_t max_window_;
  size_t max_streams_;
  std::unordered_map<FileKey, Stream, KeyHash> streams_;
  std::list<FileKey> lru_;  // front: most recent
};

}  // namespace dc
