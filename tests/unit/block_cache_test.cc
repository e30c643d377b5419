// BlockCache over a real Arena, observed the way a shim observes it: through
// arena_copy on a read-only mapping.
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "daemon/cache/arena.h"
#include "daemon/cache/block_cache.h"
#include "dc/arena_reader.h"
#include "dc/file_key.h"

namespace {

using namespace dc;
using Begin = BlockCache::Begin;

constexpr uint32_t kPage = 4096;
constexpr uint32_t kBlock = 16384;
constexpr uint32_t kPagesPerBlock = kBlock / kPage;
constexpr uint32_t kPageCount = 256;
constexpr uint32_t kBlockCount = kPageCount / kPagesPerBlock;

FileKey key_of(const std::string& name) {
  return make_file_key("ds", 2, name.data(), name.size(), FileVersion{1 << 20, 7, 1, 7});
}

// The byte at `off` of block `block` of the file whose key is `k`.
uint8_t pattern(FileKey k, uint64_t block, uint32_t off) {
  return static_cast<uint8_t>(k.lo + block * 31 + off / 7);
}

class BlockCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r = Arena::create(kPage, kBlock, kPageCount);
    ASSERT_TRUE(r.ok()) << r.error().message;
    arena_.reset(*r);
    auto fd = arena_->open_readonly();
    ASSERT_TRUE(fd.ok()) << fd.error().message;
    fd_ = *fd;
    map_ = mmap(nullptr, arena_->size(), PROT_READ, MAP_SHARED, fd_, 0);
    ASSERT_NE(map_, MAP_FAILED) << strerror(errno);
    ASSERT_TRUE(arena_view_init(map_, arena_->size(), &view_));
    cache_ = std::make_unique<BlockCache>(*arena_);
  }
  void TearDown() override {
    cache_.reset();
    if (map_ != MAP_FAILED) munmap(map_, arena_->size());
    if (fd_ >= 0) close(fd_);
  }

  // Writes the block's bytes where the cache asks, as the origin reader would.
  void Fill(BlockCache::Handle h, FileKey k, uint64_t block) {
    std::vector<iovec> iov;
    cache_->iovecs(h, &iov);
    uint32_t off = 0;
    for (const iovec& v : iov) {
      auto* p = static_cast<uint8_t*>(v.iov_base);
      for (size_t i = 0; i < v.iov_len; ++i)
        p[i] = pattern(k, block, off + static_cast<uint32_t>(i));
      off += static_cast<uint32_t>(v.iov_len);
    }
  }

  // Begin + fill + finish in one go; returns the Begin result.
  Begin Load(FileKey k, uint64_t block, uint32_t len = kBlock) {
    BlockCache::Handle h = 0;
    const Begin b = cache_->begin(k, block, len, 1, &h);
    if (b == Begin::kStarted) {
      Fill(h, k, block);
      cache_->finish(h, true);
    }
    return b;
  }

  // Pages of the block a reader sees, checking their bytes; -1 on a wrong byte.
  int VisiblePages(FileKey k, uint64_t block, uint32_t len = kBlock) {
    int visible = 0;
    std::vector<uint8_t> buf(kPage);
    for (uint32_t i = 0; i < kPagesPerBlock; ++i) {
      const uint64_t page_no = block * kPagesPerBlock + i;
      const int64_t n = arena_copy(view_, k, page_no, 0, kPage, buf.data(), nullptr);
      if (n == kArenaMiss) continue;
      const uint32_t expect_len = std::min(kPage, len - std::min(len, i * kPage));
      if (n != expect_len) return -1;
      for (uint32_t j = 0; j < n; ++j)
        if (buf[j] != pattern(k, block, i * kPage + j)) return -1;
      ++visible;
    }
    return visible;
  }

  std::unique_ptr<Arena> arena_;
  std::unique_ptr<BlockCache> cache_;
  int fd_ = -1;
  void* map_ = MAP_FAILED;
  ArenaView view_;
};

TEST_F(BlockCacheTest, ConcurrentMissesJoinOneFill) {
  const FileKey k = key_of("a");
  BlockCache::Handle h1 = 0, h2 = 0;
  ASSERT_EQ(cache_->begin(k, 3, kBlock, 101, &h1), Begin::kStarted);
  EXPECT_EQ(cache_->filling_pages(), kPagesPerBlock);
  ASSERT_EQ(cache_->begin(k, 3, kBlock, 102, &h2), Begin::kJoined);
  EXPECT_EQ(h1, h2);
  EXPECT_EQ(cache_->filling_pages(), kPagesPerBlock) << "a join must not reserve pages";
  EXPECT_EQ(VisiblePages(k, 3), 0) << "nothing is visible before finish";

  std::vector<iovec> iov;
  cache_->iovecs(h1, &iov);
  ASSERT_EQ(iov.size(), kPagesPerBlock);
  for (const iovec& v : iov) EXPECT_EQ(v.iov_len, kPage);
  Fill(h1, k, 3);

  std::vector<BlockCache::Token> tokens = cache_->finish(h1, true);
  std::sort(tokens.begin(), tokens.end());
  EXPECT_EQ(tokens, (std::vector<BlockCache::Token>{101, 102}));
  EXPECT_EQ(cache_->filling_pages(), 0u);
  EXPECT_EQ(cache_->resident_pages(), kPagesPerBlock);
  EXPECT_EQ(VisiblePages(k, 3), static_cast<int>(kPagesPerBlock));
  EXPECT_EQ(VisiblePages(k, 2), 0);
  EXPECT_EQ(VisiblePages(key_of("b"), 3), 0);

  BlockCache::Handle h3 = 0;
  EXPECT_EQ(cache_->begin(k, 3, kBlock, 103, &h3), Begin::kResident);
  EXPECT_EQ(h3, h1);
}

TEST_F(BlockCacheTest, ShortLastBlock) {
  const FileKey k = key_of("short");
  const uint32_t len = 2 * kPage + 1000;
  BlockCache::Handle h = 0;
  ASSERT_EQ(cache_->begin(k, 0, len, 1, &h), Begin::kStarted);
  EXPECT_EQ(cache_->filling_pages(), 3u);
  std::vector<iovec> iov;
  cache_->iovecs(h, &iov);
  ASSERT_EQ(iov.size(), 3u);
  EXPECT_EQ(iov[2].iov_len, 1000u);
  Fill(h, k, 0);
  cache_->finish(h, true);
  EXPECT_EQ(VisiblePages(k, 0, len), 3);
  uint8_t small[64];
  EXPECT_EQ(arena_copy(view_, k, 2, 990, 64, small, nullptr), 10);
  EXPECT_EQ(arena_copy(view_, k, 3, 0, 64, small, nullptr), kArenaMiss);
}

TEST_F(BlockCacheTest, FailedFillPublishesNothing) {
  const FileKey k = key_of("a");
  BlockCache::Handle h1 = 0, h2 = 0;
  ASSERT_EQ(cache_->begin(k, 0, kBlock, 1, &h1), Begin::kStarted);
  ASSERT_EQ(cache_->begin(k, 0, kBlock, 2, &h2), Begin::kJoined);
  Fill(h1, k, 0);
  std::vector<BlockCache::Token> tokens = cache_->finish(h1, false);
  std::sort(tokens.begin(), tokens.end());
  EXPECT_EQ(tokens, (std::vector<BlockCache::Token>{1, 2})) << "waiters must hear of the failure";
  EXPECT_EQ(cache_->filling_pages(), 0u);
  EXPECT_EQ(cache_->resident_pages(), 0u);
  EXPECT_EQ(cache_->evictions(), 0u) << "a failed fill is not an eviction";
  EXPECT_EQ(arena_->index_used(), 0u);
  EXPECT_EQ(VisiblePages(k, 0), 0);

  // Its pages went back: the whole arena can still be filled.
  for (uint64_t b = 0; b < kBlockCount; ++b) ASSERT_EQ(Load(k, b), Begin::kStarted) << b;
  EXPECT_EQ(cache_->resident_pages(), kPageCount);
  EXPECT_EQ(cache_->evictions(), 0u);
}

TEST_F(BlockCacheTest, InvalidateDropsResidentPages) {
  const FileKey a = key_of("a"), b = key_of("b");
  for (uint64_t blk = 0; blk < 3; ++blk) {
    ASSERT_EQ(Load(a, blk), Begin::kStarted);
    ASSERT_EQ(Load(b, blk), Begin::kStarted);
  }
  EXPECT_EQ(cache_->invalidate(a), 3 * kPagesPerBlock);
  EXPECT_EQ(cache_->resident_pages(), 3 * kPagesPerBlock);
  EXPECT_EQ(cache_->evictions(), 0u);
  EXPECT_EQ(arena_->index_used(), 3 * kPagesPerBlock);
  for (uint64_t blk = 0; blk < 3; ++blk) {
    EXPECT_EQ(VisiblePages(a, blk), 0) << blk;
    EXPECT_EQ(VisiblePages(b, blk), static_cast<int>(kPagesPerBlock)) << blk;
  }
  EXPECT_EQ(cache_->invalidate(a), 0u);
  // Gone, so the next read refetches.
  BlockCache::Handle h = 0;
  EXPECT_EQ(cache_->begin(a, 0, kBlock, 9, &h), Begin::kStarted);
}

TEST_F(BlockCacheTest, InvalidateWhileFillingDiscardsTheFill) {
  const FileKey k = key_of("a");
  BlockCache::Handle h = 0;
  ASSERT_EQ(cache_->begin(k, 0, kBlock, 5, &h), Begin::kStarted);
  EXPECT_EQ(cache_->invalidate(k), 0u);
  Fill(h, k, 0);
  EXPECT_EQ(cache_->finish(h, true), (std::vector<BlockCache::Token>{5}));
  EXPECT_EQ(VisiblePages(k, 0), 0) << "bytes of the old file version were published";
  EXPECT_EQ(cache_->resident_pages(), 0u);
  EXPECT_EQ(cache_->filling_pages(), 0u);
  EXPECT_EQ(cache_->begin(k, 0, kBlock, 6, &h), Begin::kStarted);
}

// A writer's open and close invalidate its file: that must cost the file's blocks,
// not a walk over every block in the cache (it was O(all blocks) per key).
TEST_F(BlockCacheTest, InvalidateVisitsOnlyTheFilesBlocks) {
  const FileKey big = key_of("big"), small = key_of("small");
  for (uint64_t blk = 0; blk < kBlockCount - 2; ++blk) ASSERT_EQ(Load(big, blk), Begin::kStarted);
  ASSERT_EQ(Load(small, 0), Begin::kStarted);
  ASSERT_EQ(Load(small, 1), Begin::kStarted);
  EXPECT_EQ(cache_->invalidate(small), 2 * kPagesPerBlock);
  EXPECT_EQ(cache_->invalidate_visits(), 2u) << "invalidation looked at other files' blocks";
  EXPECT_EQ(cache_->invalidate(key_of("never cached")), 0u);
  EXPECT_EQ(cache_->invalidate_visits(), 2u);
  EXPECT_EQ(cache_->invalidate(small), 0u);
  EXPECT_EQ(cache_->invalidate_visits(), 2u);
  EXPECT_EQ(VisiblePages(big, 0), static_cast<int>(kPagesPerBlock));
}

// The per-file index follows the blocks through eviction, failed fills and reuse
// of handles: every file's invalidation then finds exactly its resident blocks.
TEST_F(BlockCacheTest, InvalidateFindsEveryResidentBlockAfterChurn) {
  std::vector<FileKey> files;
  for (int f = 0; f < 5; ++f) files.push_back(key_of("f" + std::to_string(f)));
  for (uint64_t i = 0; i < 4 * kBlockCount; ++i) {
    const FileKey k = files[i % files.size()];
    BlockCache::Handle h = 0;
    if (cache_->begin(k, i, kBlock, 1, &h) != Begin::kStarted) continue;
    Fill(h, k, i);
    cache_->finish(h, i % 7 != 0);  // some fills fail
  }
  ASSERT_GT(cache_->evictions(), 0u);
  const uint64_t resident = cache_->resident_pages();
  uint64_t dropped = 0;
  for (const FileKey& k : files) dropped += cache_->invalidate(k);
  EXPECT_EQ(dropped, resident);
  EXPECT_EQ(cache_->resident_pages(), 0u);
  EXPECT_EQ(cache_->invalidate_visits() * kPagesPerBlock, resident);
  EXPECT_EQ(arena_->index_used(), 0u);
}

TEST_F(BlockCacheTest, NoSpaceWhenEveryPageIsFilling) {
  const FileKey k = key_of("a");
  std::vector<BlockCache::Handle> handles(kBlockCount);
  for (uint64_t b = 0; b < kBlockCount; ++b)
    ASSERT_EQ(cache_->begin(k, b, kBlock, b, &handles[b]), Begin::kStarted) << b;
  EXPECT_EQ(cache_->filling_pages(), kPageCount);
  BlockCache::Handle h = 0;
  EXPECT_EQ(cache_->begin(k, kBlockCount, kBlock, 99, &h), Begin::kNoSpace);
  EXPECT_EQ(cache_->begin(key_of("b"), 0, kPage, 99, &h), Begin::kNoSpace);
  // A block already being filled can still be joined.
  EXPECT_EQ(cache_->begin(k, 0, kBlock, 100, &h), Begin::kJoined);

  // Once one fill completes its pages can be reclaimed.
  Fill(handles[0], k, 0);
  cache_->finish(handles[0], true);
  EXPECT_EQ(cache_->begin(k, kBlockCount, kBlock, 99, &h), Begin::kStarted);
  EXPECT_EQ(cache_->evictions(), 1u);
  EXPECT_EQ(VisiblePages(k, 0), 0);
}

TEST_F(BlockCacheTest, EvictionUnpublishesBeforeReuse) {
  const FileKey k = key_of("a");
  for (uint64_t b = 0; b < kBlockCount; ++b) ASSERT_EQ(Load(k, b), Begin::kStarted);
  EXPECT_EQ(cache_->resident_pages(), kPageCount);
  for (uint64_t b = kBlockCount; b < kBlockCount + 10; ++b) ASSERT_EQ(Load(k, b), Begin::kStarted);
  EXPECT_EQ(cache_->evictions(), 10u);
  EXPECT_EQ(cache_->resident_pages(), kPageCount);
  EXPECT_EQ(arena_->index_used(), kPageCount);

  // Every published page reads back its own bytes, none appear twice, and exactly
  // as many blocks are visible as fit.
  int whole = 0;
  std::set<uint32_t> slots;
  for (uint64_t b = 0; b < kBlockCount + 10; ++b) {
    const int pages = VisiblePages(k, b);
    ASSERT_GE(pages, 0) << "block " << b << " shows another block's bytes";
    EXPECT_TRUE(pages == 0 || pages == static_cast<int>(kPagesPerBlock)) << b;
    if (pages) ++whole;
    for (uint32_t i = 0; pages && i < kPagesPerBlock; ++i) {
      uint32_t slot = 0;
      uint8_t byte;
      ASSERT_GE(arena_copy(view_, k, b * kPagesPerBlock + i, 0, 1, &byte, &slot), 0);
      EXPECT_TRUE(slots.insert(slot).second) << "slot " << slot << " published twice";
    }
  }
  EXPECT_EQ(whole, static_cast<int>(kBlockCount));
}

TEST_F(BlockCacheTest, RecordHitTouchesOnlyTheMatchingBlock) {
  const FileKey k = key_of("a");
  ASSERT_EQ(Load(k, 0), Begin::kStarted);
  uint32_t slot = 0;
  uint8_t byte;
  ASSERT_GE(arena_copy(view_, k, 0, 0, 1, &byte, &slot), 0);
  const uint64_t t0 = cache_->policy().now();
  FileKey hit_key;
  uint64_t hit_block = 99;
  EXPECT_TRUE(cache_->record_hit(slot, static_cast<uint32_t>(k.lo), &hit_key, &hit_block));
  EXPECT_TRUE(hit_key == k);
  EXPECT_EQ(hit_block, 0u);
  const uint64_t t1 = cache_->policy().now();
  EXPECT_GT(t1, t0);
  // Stale records (slot reused by another file), free slots and garbage are ignored.
  EXPECT_FALSE(cache_->record_hit(slot, static_cast<uint32_t>(k.lo) + 1, &hit_key, &hit_block));
  EXPECT_FALSE(cache_->record_hit(slot + kPagesPerBlock, static_cast<uint32_t>(k.lo), &hit_key, &hit_block));
  EXPECT_FALSE(cache_->record_hit(kPageCount + 5, static_cast<uint32_t>(k.lo), &hit_key, &hit_block));
  EXPECT_FALSE(cache_->record_hit(UINT32_MAX, 0, &hit_key, &hit_block));
  EXPECT_EQ(cache_->policy().now(), t1);
}

// ---- pins: pages the kernel is still sending to a peer ----

// True if the block's pages still hold its bytes (read through the agent's own
// pointers: an invalidated, pinned block is no longer visible to readers).
bool PagesIntact(const std::vector<iovec>& pages, FileKey k, uint64_t block) {
  uint32_t off = 0;
  for (const iovec& v : pages) {
    const auto* p = static_cast<const uint8_t*>(v.iov_base);
    for (size_t i = 0; i < v.iov_len; ++i)
      if (p[i] != pattern(k, block, off + static_cast<uint32_t>(i))) return false;
    off += static_cast<uint32_t>(v.iov_len);
  }
  return true;
}

class PinTest : public BlockCacheTest {
 protected:
  // Pins resident block (k, block); returns its handle and pages.
  BlockCache::Handle Pin(FileKey k, uint64_t block, std::vector<iovec>* pages) {
    uint32_t len = 0;
    const std::vector<uint32_t>* segs = nullptr;
    BlockCache::Handle h = 0;
    EXPECT_TRUE(cache_->resident_pages(k, block, pages, &len, &segs, &h));
    cache_->pin(h);
    return h;
  }
  bool Resident(FileKey k, uint64_t block) {
    std::vector<iovec> pages;
    uint32_t len = 0;
    const std::vector<uint32_t>* segs = nullptr;
    return cache_->resident_pages(k, block, &pages, &len, &segs);
  }
};

TEST_F(PinTest, PinnedBlockIsSkippedByEviction) {
  const FileKey a = key_of("a"), b = key_of("b");
  ASSERT_EQ(Load(a, 0), Begin::kStarted);
  std::vector<iovec> pages;
  const BlockCache::Handle h = Pin(a, 0, &pages);
  EXPECT_EQ(cache_->pinned_blocks(), 1u);
  // Three arenas' worth of other blocks: without the pin, a's block would go.
  for (uint64_t blk = 0; blk < 3 * kBlockCount; ++blk) ASSERT_EQ(Load(b, blk), Begin::kStarted) << blk;
  EXPECT_TRUE(Resident(a, 0));
  EXPECT_EQ(VisiblePages(a, 0), static_cast<int>(kPagesPerBlock));
  EXPECT_TRUE(PagesIntact(pages, a, 0));
  cache_->unpin(h);
  EXPECT_EQ(cache_->pinned_blocks(), 0u);
  for (uint64_t blk = 3 * kBlockCount; blk < 6 * kBlockCount; ++blk) ASSERT_EQ(Load(b, blk), Begin::kStarted) << blk;
  EXPECT_FALSE(Resident(a, 0)) << "once unpinned, the block is evicted as any other";
}

TEST_F(PinTest, PinnedCopyIsSkippedByCopyEviction) {
  cache_->set_copies_cap(2 * kPagesPerBlock);
  const FileKey a = key_of("a");
  auto load_copy = [&](uint64_t blk) {
    BlockCache::Handle h = 0;
    const Begin r = cache_->begin(a, blk, kBlock, 1, &h, false, true);
    if (r == Begin::kStarted) {
      Fill(h, a, blk);
      cache_->finish(h, true);
    }
    return r;
  };
  ASSERT_EQ(load_copy(0), Begin::kStarted);
  std::vector<iovec> pages;
  const BlockCache::Handle h = Pin(a, 0, &pages);
  for (uint64_t blk = 1; blk < 10; ++blk) ASSERT_EQ(load_copy(blk), Begin::kStarted) << blk;
  EXPECT_TRUE(Resident(a, 0)) << "the oldest copy, but pinned";
  EXPECT_TRUE(PagesIntact(pages, a, 0));
  EXPECT_FALSE(Resident(a, 1)) << "the next oldest copy went instead";
  cache_->unpin(h);
  ASSERT_EQ(load_copy(10), Begin::kStarted);
  EXPECT_FALSE(Resident(a, 0));
}

TEST_F(PinTest, InvalidatedPinnedBlockKeepsItsSlotsUntilUnpinned) {
  const FileKey a = key_of("a"), b = key_of("b");
  ASSERT_EQ(Load(a, 0), Begin::kStarted);
  std::vector<iovec> pages;
  const BlockCache::Handle h = Pin(a, 0, &pages);
  EXPECT_EQ(cache_->invalidate(a), kPagesPerBlock);
  EXPECT_EQ(VisiblePages(a, 0), 0) << "readers miss at once";
  EXPECT_FALSE(Resident(a, 0));
  EXPECT_EQ(cache_->invalidate(a), 0u) << "a retired block is not dropped twice";
  // Two arenas' worth of other blocks: the retired block's slots are not handed out.
  for (uint64_t blk = 0; blk < 2 * kBlockCount; ++blk) ASSERT_EQ(Load(b, blk), Begin::kStarted) << blk;
  EXPECT_TRUE(PagesIntact(pages, a, 0)) << "the kernel may still be sending these bytes";
  EXPECT_EQ(cache_->resident_pages(), uint64_t{kPageCount}) << "retired pages count until released";
  // A new fetch of the invalidated block fills a new copy elsewhere.
  EXPECT_EQ(Load(a, 0), Begin::kStarted);
  EXPECT_EQ(VisiblePages(a, 0), static_cast<int>(kPagesPerBlock));
  cache_->unpin(h);
  EXPECT_EQ(cache_->pinned_blocks(), 0u);
  // The slots came back: the next block takes them without evicting anything.
  EXPECT_EQ(cache_->resident_pages(), uint64_t{kPageCount - kPagesPerBlock});
  const uint64_t ev = cache_->evictions();
  ASSERT_EQ(Load(key_of("c"), 0), Begin::kStarted);
  EXPECT_EQ(cache_->evictions(), ev);
}

TEST_F(PinTest, EverythingPinnedMeansNoSpaceUntilAnUnpin) {
  const FileKey a = key_of("a");
  std::vector<BlockCache::Handle> hs;
  for (uint64_t blk = 0; blk < kBlockCount; ++blk) {
    ASSERT_EQ(Load(a, blk), Begin::kStarted);
    std::vector<iovec> pages;
    hs.push_back(Pin(a, blk, &pages));
  }
  BlockCache::Handle h = 0;
  EXPECT_EQ(cache_->begin(key_of("b"), 0, kBlock, 1, &h), Begin::kNoSpace);
  for (uint64_t blk = 0; blk < kBlockCount; ++blk) EXPECT_TRUE(Resident(a, blk)) << blk;
  cache_->pin(hs[3]);  // pins nest
  cache_->unpin(hs[3]);
  EXPECT_EQ(cache_->begin(key_of("b"), 0, kBlock, 1, &h), Begin::kNoSpace) << "still pinned once";
  cache_->unpin(hs[3]);
  EXPECT_EQ(Load(key_of("b"), 0), Begin::kStarted);
  EXPECT_FALSE(Resident(a, 3));
  EXPECT_EQ(cache_->bad_unpins(), 0u);
  cache_->unpin(hs[3]);
  EXPECT_EQ(cache_->bad_unpins(), 1u) << "an unpin with no pin is ignored and counted";
}

}  // namespace
