// The agent's index (daemon/cache/arena) against the shim's reader
// (include/dc/arena_reader.h), the reader always going through a second,
// read-only mapping of the memfd as a shim in another process would.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "daemon/cache/arena.h"
#include "dc/arena.h"
#include "dc/arena_reader.h"
#include "dc/file_key.h"

namespace {

using namespace dc;
// <cxxabi.h> (via gtest) declares a global ::abi; this alias wins over it.
namespace abi = dc::abi;

FileKey key_of(int i) {
  const std::string path = "dir/file_" + std::to_string(i);
  return make_file_key("ds", 2, path.data(), path.size(),
                       FileVersion{1000 + static_cast<uint64_t>(i), 42, 1, 42});
}

uint64_t home_of(FileKey k, uint64_t page_no, uint32_t capacity) {
  return abi::arena_index_home(k.hi, k.lo, page_no, capacity);
}

class ArenaIndexTest : public ::testing::Test {
 protected:
  void SetUp() override { Make(4096, 16384, 256); }

  void TearDown() override {
    if (ro_map_ != MAP_FAILED) munmap(ro_map_, arena_->size());
    if (ro_fd_ >= 0) close(ro_fd_);
  }

  void Make(uint32_t page_size, uint32_t block_size, uint32_t pages) {
    auto r = Arena::create(page_size, block_size, pages);
    ASSERT_TRUE(r.ok()) << r.error().message;
    arena_.reset(*r);
    auto fd = arena_->open_readonly();
    ASSERT_TRUE(fd.ok()) << fd.error().message;
    ro_fd_ = *fd;
    ro_map_ = mmap(nullptr, arena_->size(), PROT_READ, MAP_SHARED, ro_fd_, 0);
    ASSERT_NE(ro_map_, MAP_FAILED) << strerror(errno);
    ASSERT_TRUE(arena_view_init(ro_map_, arena_->size(), &view_));
  }

  const abi::ArenaHeader& Header() const { return *static_cast<const abi::ArenaHeader*>(ro_map_); }
  uint32_t Capacity() const { return view_.index_mask + 1; }

  // Copies a whole page through the read-only view.
  int64_t Copy(FileKey k, uint64_t page_no, std::vector<uint8_t>* out, uint32_t* slot = nullptr) {
    out->assign(view_.page_size, 0);
    return arena_copy(view_, k, page_no, 0, view_.page_size, out->data(), slot);
  }

  // (key, page) pairs of `k` whose home lies in [lo, hi] (no wrap), first pages first.
  std::vector<uint64_t> PagesWithHome(FileKey k, uint64_t lo, uint64_t hi, size_t n) {
    std::vector<uint64_t> pages;
    for (uint64_t p = 0; pages.size() < n; ++p) {
      const uint64_t h = home_of(k, p, Capacity());
      if (h >= lo && h <= hi) pages.push_back(p);
    }
    return pages;
  }

  std::unique_ptr<Arena> arena_;
  int ro_fd_ = -1;
  void* ro_map_ = MAP_FAILED;
  ArenaView view_;
};

TEST_F(ArenaIndexTest, HeaderDescribesTheArena) {
  const abi::ArenaHeader& h = Header();
  EXPECT_EQ(h.magic, abi::kArenaMagic);
  EXPECT_EQ(h.abi_major, abi::kArenaAbiMajor);
  EXPECT_EQ(h.abi_minor, abi::kArenaAbiMinor);
  EXPECT_EQ(h.header_size, abi::kArenaHeaderSize);
  EXPECT_EQ(h.page_size, 4096u);
  EXPECT_EQ(h.block_size, 16384u);
  EXPECT_EQ(h.page_count, 256u);
  EXPECT_EQ(h.index_entry_size, sizeof(abi::IndexEntry));
  EXPECT_EQ(h.max_probe, abi::kMaxProbe);
  // Load factor <= 1/2 even when every page is published.
  EXPECT_GE(h.index_capacity, 2u * h.page_count);
  EXPECT_EQ(h.index_capacity & (h.index_capacity - 1), 0u);
  EXPECT_EQ(h.index_offset, sizeof(abi::ArenaHeader));
  EXPECT_EQ(h.pages_offset % h.page_size, 0u);
  EXPECT_GE(h.pages_offset, h.index_offset + uint64_t{h.index_capacity} * sizeof(abi::IndexEntry));
  // Whole 2 MiB pages (so the arena can be backed by huge pages), with the page
  // area inside and less than one huge page of slack after it.
  EXPECT_EQ(h.total_size % (2u << 20), 0u);
  EXPECT_GE(h.total_size, h.pages_offset + uint64_t{h.page_count} * h.page_size);
  EXPECT_LT(h.total_size - (h.pages_offset + uint64_t{h.page_count} * h.page_size), 2u << 20);
  EXPECT_EQ(h.total_size, arena_->size());
  EXPECT_EQ(h.generation, arena_->generation());
  EXPECT_EQ(h.generation & 1, 1u);  // never 0, so 0 can mean "no arena"

  struct stat st {};
  ASSERT_EQ(fstat(ro_fd_, &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), arena_->size());

  EXPECT_EQ(view_.page_size, 4096u);
  EXPECT_EQ(view_.page_shift, 12u);
  EXPECT_EQ(view_.block_shift, 14u);
  EXPECT_EQ(view_.page_count, 256u);
  EXPECT_EQ(view_.generation, arena_->generation());
  EXPECT_EQ(view_.max_probe, abi::kMaxProbe);
}

TEST_F(ArenaIndexTest, LargePagesAreAligned) {
  TearDown();
  ro_map_ = MAP_FAILED;
  ro_fd_ = -1;
  Make(65536, 1 << 20, 16);
  EXPECT_EQ(Header().pages_offset % 65536, 0u);
  EXPECT_EQ(view_.page_shift, 16u);
  EXPECT_EQ(view_.block_shift, 20u);
}

TEST_F(ArenaIndexTest, PublishFindUnpublish) {
  const FileKey k = key_of(1);
  uint8_t* page = arena_->page(7);
  for (uint32_t i = 0; i < 4096; ++i) page[i] = static_cast<uint8_t>(i * 13 + 1);

  EXPECT_EQ(arena_->find(k, 3), -1);
  ASSERT_TRUE(arena_->publish(k, 3, 7, 4096));
  EXPECT_EQ(arena_->index_used(), 1u);
  const int64_t pos = arena_->find(k, 3);
  ASSERT_GE(pos, 0);
  EXPECT_EQ(view_.index[pos].slot, 7u);
  EXPECT_EQ(view_.index[pos].flags, abi::kEntryUsed);
  EXPECT_EQ(view_.index[pos].seq % 2, 0u);
  EXPECT_EQ(arena_->find(k, 4), -1);
  EXPECT_EQ(arena_->find(key_of(2), 3), -1);

  std::vector<uint8_t> buf;
  uint32_t slot = UINT32_MAX;
  ASSERT_EQ(Copy(k, 3, &buf, &slot), 4096);
  EXPECT_EQ(slot, 7u);
  EXPECT_EQ(memcmp(buf.data(), page, 4096), 0);

  // A sub-range of the page.
  uint8_t small[50];
  ASSERT_EQ(arena_copy(view_, k, 3, 100, 50, small, nullptr), 50);
  EXPECT_EQ(memcmp(small, page + 100, 50), 0);

  EXPECT_EQ(Copy(k, 4, &buf), kArenaMiss);
  EXPECT_EQ(Copy(key_of(2), 3, &buf), kArenaMiss);

  const uint32_t seq_before = view_.index[pos].seq;
  EXPECT_TRUE(arena_->unpublish(k, 3));
  EXPECT_GT(view_.index[pos].seq, seq_before);  // readers mid-copy must notice
  EXPECT_EQ(view_.index[pos].seq % 2, 0u);
  EXPECT_EQ(view_.index[pos].flags, 0u);
  EXPECT_EQ(arena_->index_used(), 0u);
  EXPECT_EQ(arena_->find(k, 3), -1);
  EXPECT_EQ(Copy(k, 3, &buf), kArenaMiss);
  EXPECT_FALSE(arena_->unpublish(k, 3));
}

TEST_F(ArenaIndexTest, RepublishReplacesTheEntry) {
  const FileKey k = key_of(1);
  ASSERT_TRUE(arena_->publish(k, 0, 1, 4096));
  ASSERT_TRUE(arena_->publish(k, 0, 2, 100));
  EXPECT_EQ(arena_->index_used(), 1u);
  std::vector<uint8_t> buf;
  uint32_t slot = 0;
  EXPECT_EQ(Copy(k, 0, &buf, &slot), 100);
  EXPECT_EQ(slot, 2u);
}

// The view was set up before anything was published: everything the agent writes
// afterwards through its own mapping must show up in the read-only one.
TEST_F(ArenaIndexTest, ReadOnlyMappingSeesAgentWrites) {
  ASSERT_NE(static_cast<const void*>(view_.base), static_cast<const void*>(arena_->page(0)));
  const FileKey k = key_of(5);
  std::vector<uint8_t> buf;
  for (uint8_t round = 1; round <= 3; ++round) {
    const uint32_t slot = round * 10u;
    arena_->unpublish(k, 9);
    memset(arena_->page(slot), round, 4096);
    ASSERT_TRUE(arena_->publish(k, 9, slot, 4096));
    uint32_t got_slot = 0;
    ASSERT_EQ(Copy(k, 9, &buf, &got_slot), 4096);
    EXPECT_EQ(got_slot, slot);
    EXPECT_TRUE(std::all_of(buf.begin(), buf.end(), [&](uint8_t b) { return b == round; }))
        << "round " << int{round};
  }
}

TEST_F(ArenaIndexTest, ShortLastPage) {
  const FileKey k = key_of(3);
  memset(arena_->page(4), 0xab, 4096);
  ASSERT_TRUE(arena_->publish(k, 12, 4, 1000));
  std::vector<uint8_t> buf;
  EXPECT_EQ(Copy(k, 12, &buf), 1000);
  uint8_t small[200];
  EXPECT_EQ(arena_copy(view_, k, 12, 900, 200, small, nullptr), 100);
  EXPECT_EQ(small[0], 0xab);
  EXPECT_EQ(small[99], 0xab);
  EXPECT_EQ(arena_copy(view_, k, 12, 1000, 10, small, nullptr), 0);
  EXPECT_EQ(arena_copy(view_, k, 12, 2000, 10, small, nullptr), 0);
  // A zero-length page (empty file) is a hit of 0 bytes, not a miss.
  ASSERT_TRUE(arena_->publish(k, 13, 5, 0));
  EXPECT_EQ(arena_copy(view_, k, 13, 0, 10, small, nullptr), 0);
}

TEST_F(ArenaIndexTest, ReadOnlyFdCannotBeMappedWritable) {
  errno = 0;
  void* p = mmap(nullptr, arena_->size(), PROT_READ | PROT_WRITE, MAP_SHARED, ro_fd_, 0);
  EXPECT_EQ(p, MAP_FAILED);
  EXPECT_EQ(errno, EACCES);
  if (p != MAP_FAILED) munmap(p, arena_->size());

  errno = 0;
  EXPECT_NE(mprotect(ro_map_, 4096, PROT_READ | PROT_WRITE), 0);
  EXPECT_EQ(errno, EACCES);

  const char byte = 1;
  EXPECT_EQ(write(ro_fd_, &byte, 1), -1);
  EXPECT_EQ(pwrite(ro_fd_, &byte, 1, 0), -1);
}

// A client could reopen its descriptor through /proc with O_RDWR; the seals must
// still keep it from writing or resizing the arena.
TEST_F(ArenaIndexTest, SealsBlockWritableReopen) {
  const int seals = fcntl(ro_fd_, F_GET_SEALS);
  ASSERT_GE(seals, 0) << strerror(errno);
  EXPECT_TRUE(seals & F_SEAL_FUTURE_WRITE);
  EXPECT_TRUE(seals & F_SEAL_SHRINK);
  EXPECT_TRUE(seals & F_SEAL_GROW);
  EXPECT_TRUE(seals & F_SEAL_SEAL);

  const std::string path = "/proc/self/fd/" + std::to_string(ro_fd_);
  const int rw = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (rw < 0) GTEST_SKIP() << "reopen refused (" << strerror(errno) << "): nothing more to check";
  errno = 0;
  void* p = mmap(nullptr, arena_->size(), PROT_READ | PROT_WRITE, MAP_SHARED, rw, 0);
  EXPECT_EQ(p, MAP_FAILED);
  EXPECT_EQ(errno, EPERM);
  if (p != MAP_FAILED) munmap(p, arena_->size());
  const char byte = 1;
  errno = 0;
  EXPECT_EQ(pwrite(rw, &byte, 1, 0), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_NE(ftruncate(rw, 4096), 0);
  EXPECT_NE(ftruncate(rw, static_cast<off_t>(arena_->size() * 2)), 0);
  close(rw);
}

// 33 entries with one home: the 33rd has nowhere to go within kMaxProbe.
TEST_F(ArenaIndexTest, PublishFailsWhenProbeWindowIsFull) {
  const FileKey k = key_of(9);
  const uint64_t target = 100;
  const std::vector<uint64_t> pages = PagesWithHome(k, target, target, abi::kMaxProbe + 1);
  for (uint32_t i = 0; i < abi::kMaxProbe; ++i) ASSERT_TRUE(arena_->publish(k, pages[i], i, 4096));
  EXPECT_FALSE(arena_->publish(k, pages[abi::kMaxProbe], 99, 4096));
  EXPECT_EQ(arena_->index_used(), abi::kMaxProbe);
  std::vector<uint8_t> buf;
  for (uint32_t i = 0; i < abi::kMaxProbe; ++i) {
    uint32_t slot = UINT32_MAX;
    EXPECT_EQ(Copy(k, pages[i], &buf, &slot), 4096) << i;
    EXPECT_EQ(slot, i);
  }
  EXPECT_EQ(Copy(k, pages[abi::kMaxProbe], &buf), kArenaMiss);

  // Removing the one at home shifts the run back; the 33rd then fits.
  ASSERT_TRUE(arena_->unpublish(k, pages[0]));
  ASSERT_TRUE(arena_->publish(k, pages[abi::kMaxProbe], 99, 4096));
  for (uint32_t i = 1; i <= abi::kMaxProbe; ++i) EXPECT_GE(arena_->find(k, pages[i]), 0) << i;
}

// Reference model of what should be published, checked against the index.
class IndexModel {
 public:
  struct Value {
    uint32_t slot;
    uint32_t len;
  };
  using Pair = std::pair<FileKey, uint64_t>;
  struct Less {
    bool operator()(const Pair& a, const Pair& b) const {
      if (a.first.hi != b.first.hi) return a.first.hi < b.first.hi;
      if (a.first.lo != b.first.lo) return a.first.lo < b.first.lo;
      return a.second < b.second;
    }
  };
  std::map<Pair, Value, Less> live;
  std::map<Pair, Value, Less> gone;
};

void ExpectIndexMatches(Arena& arena, const ArenaView& view, const IndexModel& m) {
  ASSERT_EQ(arena.index_used(), m.live.size());
  uint8_t buf[4096];
  for (const auto& [pair, val] : m.live) {
    const auto& [k, page] = pair;
    const int64_t pos = arena.find(k, page);
    ASSERT_GE(pos, 0) << "lost page " << page;
    const uint64_t home = abi::arena_index_home(k.hi, k.lo, page, view.index_mask + 1);
    EXPECT_LT((static_cast<uint64_t>(pos) - home) & view.index_mask, abi::kMaxProbe);
    uint32_t slot = UINT32_MAX;
    ASSERT_EQ(arena_copy(view, k, page, 0, view.page_size, buf, &slot), int64_t{val.len})
        << "reader lost page " << page;
    EXPECT_EQ(slot, val.slot);
  }
  for (const auto& [pair, val] : m.gone) {
    EXPECT_EQ(arena.find(pair.first, pair.second), -1);
    EXPECT_EQ(arena_copy(view, pair.first, pair.second, 0, view.page_size, buf, nullptr),
              kArenaMiss);
  }
  // No entry may be stranded behind a hole or left used without a model entry.
  uint32_t used = 0;
  for (uint32_t pos = 0; pos <= view.index_mask; ++pos) {
    const abi::IndexEntry& e = view.index[pos];
    EXPECT_EQ(e.seq % 2, 0u);
    if (!(e.flags & abi::kEntryUsed)) continue;
    ++used;
    EXPECT_EQ(arena.find(FileKey{e.key_hi, e.key_lo}, e.page_no), int64_t{pos});
  }
  EXPECT_EQ(used, m.live.size());
}

// The seqlock contract, checked around one change of the index: every entry whose
// contents changed carries a larger, even sequence number, so a reader that was
// mid-copy of it fails its re-check.
class SeqWatch {
 public:
  explicit SeqWatch(const ArenaView& v) : v_(v) {}
  void Snapshot() { before_.assign(v_.index, v_.index + v_.index_mask + 1); }
  void ExpectBumped(const char* what) const {
    for (uint32_t pos = 0; pos <= v_.index_mask; ++pos) {
      const abi::IndexEntry& a = before_[pos];
      const abi::IndexEntry& b = v_.index[pos];
      ASSERT_EQ(b.seq % 2, 0u) << what << ": entry " << pos << " left odd";
      const bool changed = a.flags != b.flags || a.key_hi != b.key_hi || a.key_lo != b.key_lo ||
                           a.page_no != b.page_no || a.slot != b.slot || a.page_len != b.page_len;
      if (changed) {
        ASSERT_GT(b.seq, a.seq) << what << ": entry " << pos << " changed silently";
      }
    }
  }

 private:
  const ArenaView& v_;
  std::vector<abi::IndexEntry> before_;
};

// Load far above what the agent uses (up to ~85% of the index) so probe runs are
// long and merge, and backward-shift deletion moves entries around a lot.
TEST_F(ArenaIndexTest, CollisionHeavyStress) {
  std::mt19937_64 rng(20240601);
  IndexModel m;
  const uint32_t cap = Capacity();
  const size_t high = cap * 85 / 100;
  size_t publishes = 0, unpublishes = 0, refused = 0;
  SeqWatch watch(view_);
  for (int round = 0; round < 12; ++round) {
    while (m.live.size() < high) {
      const FileKey k = key_of(static_cast<int>(rng() % 64));
      const uint64_t page = rng() % 4096;
      const IndexModel::Value v{static_cast<uint32_t>(rng() % 256),
                                static_cast<uint32_t>(1 + rng() % 4096)};
      const IndexModel::Pair pair{k, page};
      watch.Snapshot();
      const bool published = arena_->publish(k, page, v.slot, v.len);
      ASSERT_NO_FATAL_FAILURE(watch.ExpectBumped("publish"));
      if (published) {
        m.live[pair] = v;
        m.gone.erase(pair);
        ++publishes;
      } else {
        // Refusal is only allowed when the whole probe window is taken.
        ++refused;
        const uint64_t home = home_of(k, page, cap);
        for (uint32_t i = 0; i < abi::kMaxProbe; ++i)
          ASSERT_TRUE(view_.index[(home + i) & (cap - 1)].flags & abi::kEntryUsed);
        if (m.live.erase(pair)) m.gone[pair] = v;  // publish dropped the old entry
      }
    }
    ASSERT_NO_FATAL_FAILURE(ExpectIndexMatches(*arena_, view_, m)) << "round " << round;
    std::vector<IndexModel::Pair> all;
    for (const auto& [pair, v] : m.live) all.push_back(pair);
    std::shuffle(all.begin(), all.end(), rng);
    all.resize(all.size() / 2);
    for (const auto& pair : all) {
      watch.Snapshot();
      ASSERT_TRUE(arena_->unpublish(pair.first, pair.second));
      ASSERT_NO_FATAL_FAILURE(watch.ExpectBumped("unpublish"));
      m.gone[pair] = m.live[pair];
      m.live.erase(pair);
      ++unpublishes;
    }
    ASSERT_NO_FATAL_FAILURE(ExpectIndexMatches(*arena_, view_, m)) << "round " << round;
  }
  EXPECT_GT(publishes, 5000u);
  EXPECT_GT(unpublishes, 2500u);
  RecordProperty("refused", static_cast<int>(refused));
}

// A run that starts near the end of the index and wraps to its start: the
// cyclic case of backward-shift deletion.
TEST_F(ArenaIndexTest, ClusterWrappingAroundTheEnd) {
  const uint32_t cap = Capacity();
  const FileKey k = key_of(11);
  std::vector<uint64_t> pages = PagesWithHome(k, cap - 3, cap - 1, 20);
  for (uint64_t p : PagesWithHome(k, 0, 1, 6)) pages.push_back(p);
  std::mt19937 rng(7);
  std::shuffle(pages.begin(), pages.end(), rng);

  IndexModel m;
  for (size_t i = 0; i < pages.size(); ++i) {
    const IndexModel::Value v{static_cast<uint32_t>(i), static_cast<uint32_t>(100 + i)};
    ASSERT_TRUE(arena_->publish(k, pages[i], v.slot, v.len));
    m.live[{k, pages[i]}] = v;
  }
  bool wrapped = false;
  for (uint64_t p : pages) wrapped |= arena_->find(k, p) < static_cast<int64_t>(home_of(k, p, cap));
  ASSERT_TRUE(wrapped) << "test setup: the run should wrap past the last entry";
  ASSERT_NO_FATAL_FAILURE(ExpectIndexMatches(*arena_, view_, m));

  std::shuffle(pages.begin(), pages.end(), rng);
  SeqWatch watch(view_);
  for (uint64_t p : pages) {
    watch.Snapshot();
    ASSERT_TRUE(arena_->unpublish(k, p));
    ASSERT_NO_FATAL_FAILURE(watch.ExpectBumped("unpublish"));
    m.gone[{k, p}] = m.live[{k, p}];
    m.live.erase({k, p});
    ASSERT_NO_FATAL_FAILURE(ExpectIndexMatches(*arena_, view_, m)) << "after removing page " << p;
  }
}

// arena_view_init must refuse anything it does not fully understand.
class ViewInitTest : public ArenaIndexTest {
 protected:
  void SetUp() override {
    ArenaIndexTest::SetUp();
    // uint64_t storage keeps the copy as aligned as the real mapping.
    pristine_.resize(arena_->size() / 8);
    memcpy(pristine_.data(), ro_map_, arena_->size());
  }
  template <typename F>
  bool InitWith(F corrupt, uint64_t mapped_size = 0) {
    copy_ = pristine_;
    corrupt(*reinterpret_cast<abi::ArenaHeader*>(copy_.data()));
    out_ = ArenaView{};
    return arena_view_init(copy_.data(), mapped_size ? mapped_size : arena_->size(), &out_);
  }
  std::vector<uint64_t> pristine_, copy_;
  ArenaView out_;
};

TEST_F(ViewInitTest, AcceptsTheRealHeader) {
  EXPECT_TRUE(InitWith([](abi::ArenaHeader&) {}));
  EXPECT_EQ(out_.page_size, 4096u);
  // A newer minor only adds fields in reserved space: still readable.
  EXPECT_TRUE(InitWith([](abi::ArenaHeader& h) { h.abi_minor += 1; }));
  EXPECT_TRUE(InitWith([](abi::ArenaHeader& h) { h.reserved[0] = 0xff; }));
  // A mapping larger than the arena is fine.
  std::vector<uint64_t> bigger(pristine_.size() + 512, 0);
  memcpy(bigger.data(), pristine_.data(), arena_->size());
  EXPECT_TRUE(arena_view_init(bigger.data(), arena_->size() + 4096, &out_));
}

TEST_F(ViewInitTest, ClampsMaxProbe) {
  ASSERT_TRUE(InitWith([](abi::ArenaHeader& h) { h.max_probe = 1000; }));
  EXPECT_EQ(out_.max_probe, abi::kMaxProbe);
  ASSERT_TRUE(InitWith([](abi::ArenaHeader& h) { h.max_probe = 4; }));
  EXPECT_EQ(out_.max_probe, 4u);
}

TEST_F(ViewInitTest, RejectsBadMagic) {
  EXPECT_FALSE(InitWith([](abi::ArenaHeader& h) { h.magic = 0; }));
  EXPECT_FALSE(InitWith([](abi::ArenaHeader& h) { h.magic ^= 1; }));
}

TEST_F(ViewInitTest, RejectsOtherAbiMajor) {
  EXPECT_FALSE(InitWith([](abi::ArenaHeader& h) { h.abi_major += 1; }));
  EXPECT_FALSE(InitWith([](abi::ArenaHeader& h) { h.abi_major = 0; }));
}

TEST_F(ViewInitTest, RejectsWrongRecordSizes) {
  EXPECT_FALSE(InitWith([](abi::ArenaHeader& h) { h.header_size = 8192; }));
  EXPECT_FALSE(InitWith([](abi::ArenaHeader& h) { h.index_entry_size = 128; }));
  EXPECT_FALSE(InitWith([](abi::ArenaHeader& h) { h.index_entry_size = 32; }));
}

TEST_F(ViewInitTest, RejectsBadGeometry) {
  EXPECT_FALSE(InitWith([](abi::ArenaHeader& h) { h.page_size = 0; }));
  EXPECT_FALSE(InitWith([](abi::ArenaHeader& h) { h.page_size = 3000; }));
  EXPECT_FALSE(InitWith([](abi::ArenaHeader& h) { h.block_size = 2048; }));  // < page
  EXPECT_FALSE(InitWith([](abi::ArenaHeader& h) { h.block_size = 12288; }));
  EXPECT_FALSE(InitWith([](abi::ArenaHeader& h) { h.index_capacity = 0; }));
  EXPECT_FALSE(InitWith([](abi::ArenaHeader& h) { h.index_capacity = 1000; }));
  // Index running into the pages.
  EXPECT_FALSE(InitWith([](abi::ArenaHeader& h) { h.index_capacity *= 2; }));
  EXPECT_FALSE(InitWith([](abi::ArenaHeader& h) { h.index_offset = 0; }));
  EXPECT_FALSE(InitWith([](abi::ArenaHeader& h) { h.pages_offset = h.index_offset; }));
  // Pages running past the end (beyond the slack up to the next huge page).
  EXPECT_FALSE(InitWith([](abi::ArenaHeader& h) {
    h.page_count += static_cast<uint32_t>((h.total_size - h.pages_offset) / h.page_size - h.page_count + 1);
  }));
}

// Offsets near 2^64 make the bounds sums wrap around: the view would then point
// far outside the mapping and the first arena_copy would fault in the client.
TEST_F(ViewInitTest, RejectsOffsetsThatWrapAround) {
  EXPECT_FALSE(InitWith([](abi::ArenaHeader& h) {
    h.index_offset = 0 - uint64_t{h.index_capacity} * sizeof(abi::IndexEntry);
  })) << "index_offset + index bytes wraps to 0";
  EXPECT_FALSE(InitWith([](abi::ArenaHeader& h) {
    h.pages_offset = 0 - uint64_t{h.page_count} * h.page_size;
  })) << "pages_offset + page bytes wraps to 0";
}

TEST_F(ViewInitTest, RejectsTruncatedMappings) {
  const uint64_t size = arena_->size();
  EXPECT_FALSE(InitWith([](abi::ArenaHeader&) {}, size - 1));
  EXPECT_FALSE(InitWith([](abi::ArenaHeader&) {}, size - 4096));
  EXPECT_FALSE(InitWith([](abi::ArenaHeader&) {}, sizeof(abi::ArenaHeader)));
  EXPECT_FALSE(InitWith([](abi::ArenaHeader&) {}, sizeof(abi::ArenaHeader) - 1));
  EXPECT_FALSE(InitWith([](abi::ArenaHeader& h) { h.total_size += 1; }));
}

}  // namespace
