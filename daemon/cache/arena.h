// Agent side of the arena (include/dc/arena.h): owns the memfd, the only writer of
// the index. Readers may run concurrently in other processes at any moment, so
// every change to an index entry goes through that entry's seqlock.
#pragma once

#include <cstdint>

#include "common/result.h"
#include "dc/arena.h"
#include "dc/file_key.h"

namespace dc {

class Arena {
 public:
  // Creates a sealed memfd holding header, index and `page_count` pages, backed by
  // transparent huge pages when `huge_pages` and the kernel allow it.
  static Result<Arena*> create(uint32_t page_size, uint32_t block_size, uint32_t page_count,
                               bool huge_pages = false);
  bool huge_pages() const { return huge_; }
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  // A new read-only descriptor of the memfd for a client (caller closes it).
  Result<int> open_readonly() const;

  uint64_t size() const { return size_; }
  uint64_t generation() const { return header_->generation; }
  uint32_t page_size() const { return header_->page_size; }
  uint32_t block_size() const { return header_->block_size; }
  uint32_t page_count() const { return header_->page_count; }
  uint8_t* page(uint32_t slot) { return pages_ + (static_cast<uint64_t>(slot) * header_->page_size); }
  // The memfd itself and where a slot's bytes sit in it: a peer server may
  // sendfile() a block from there instead of copying it through user space.
  // The mapping covers the memfd from offset 0, so a page's file offset is its
  // address minus base().
  int fd() const { return fd_; }
  const uint8_t* base() const { return base_; }

  // Publishes page `page_no` of `key` as living in `slot`. False if no index entry
  // within max_probe of its home is free (the caller then keeps the page private).
  bool publish(FileKey key, uint64_t page_no, uint32_t slot, uint32_t len);
  // Removes the entry of (key, page_no) if present; bumps the sequence of every
  // entry it touches so concurrent readers of that page see the change.
  bool unpublish(FileKey key, uint64_t page_no);
  // Index position of (key, page_no), or -1.
  int64_t find(FileKey key, uint64_t page_no) const;
  uint32_t index_used() const { return used_entries_; }

 private:
  Arena() = default;
  uint64_t home(const abi::IndexEntry& e) const;
  void clear_entry(uint64_t pos);

  int fd_ = -1;
  uint64_t size_ = 0;
  uint8_t* base_ = nullptr;
  abi::ArenaHeader* header_ = nullptr;
  abi::IndexEntry* index_ = nullptr;
  uint8_t* pages_ = nullptr;
  uint32_t mask_ = 0;
  uint32_t used_entries_ = 0;
  bool huge_ = false;
};

}  // namespace dc
