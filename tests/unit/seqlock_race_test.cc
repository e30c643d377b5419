// Readers racing the agent: a copy that arena_copy reports as successful must
// never mix bytes of two page versions.
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "daemon/cache/arena.h"
#include "dc/arena_reader.h"
#include "dc/file_key.h"

namespace {

using namespace dc;
using Clock = std::chrono::steady_clock;

constexpr uint32_t kPage = 4096;

// A page of generation g: g in the first and last 8 bytes, g's low byte in between.
void fill_page(uint8_t* p, uint64_t g) {
  memset(p + 8, static_cast<int>(g & 0xff), kPage - 16);
  memcpy(p, &g, 8);
  memcpy(p + kPage - 8, &g, 8);
}

// Returns the generation of a consistent page, or nothing if it is torn.
bool page_generation(const uint8_t* p, uint64_t* g_out) {
  uint64_t head, tail;
  memcpy(&head, p, 8);
  memcpy(&tail, p + kPage - 8, 8);
  if (head != tail) return false;
  const uint8_t b = static_cast<uint8_t>(head & 0xff);
  for (uint32_t i = 8; i < kPage - 8; ++i)
    if (p[i] != b) return false;
  *g_out = head;
  return true;
}

struct ReaderStats {
  uint64_t ok = 0, miss = 0, torn = 0, backwards = 0, short_reads = 0;
};

struct RaceResult {
  std::vector<ReaderStats> readers;
  uint64_t generations = 0;
  bool publish_failed = false;
  // Copies of slot 0 taken without the seqlock that came out torn: shows the race
  // the checked readers are protected from really happens in this run.
  uint64_t unchecked_torn = 0;
};

class SeqlockRace : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r = Arena::create(kPage, 16384, 256);
    ASSERT_TRUE(r.ok()) << r.error().message;
    arena_.reset(*r);
    auto fd = arena_->open_readonly();
    ASSERT_TRUE(fd.ok()) << fd.error().message;
    fd_ = *fd;
    map_ = mmap(nullptr, arena_->size(), PROT_READ, MAP_SHARED, fd_, 0);
    ASSERT_NE(map_, MAP_FAILED);
    ASSERT_TRUE(arena_view_init(map_, arena_->size(), &view_));
  }
  void TearDown() override {
    if (map_ != MAP_FAILED) munmap(map_, arena_->size());
    if (fd_ >= 0) close(fd_);
  }

  // One writer (the agent's protocol), `readers` readers, for `duration`.
  // `slots` page slots are cycled, so a slot is rewritten while readers may still
  // be copying an older version out of it.
  RaceResult Race(int readers, uint32_t slots, std::chrono::milliseconds duration) {
    RaceResult res;
    std::vector<ReaderStats>* stats = &res.readers;
    const FileKey key = make_file_key("race", 4, "f", 1, FileVersion{kPage, 1, 1, 1});
    const uint64_t page_no = 5;
    std::atomic<bool> stop{false};
    std::atomic<int> started{0};
    stats->assign(static_cast<size_t>(readers), ReaderStats{});

    std::vector<std::thread> threads;
    for (int t = 0; t < readers; ++t) {
      threads.emplace_back([&, t] {
        ReaderStats& s = (*stats)[static_cast<size_t>(t)];
        std::vector<uint8_t> buf(kPage);
        uint64_t last = 0;
        started.fetch_add(1);
        while (!stop.load(std::memory_order_relaxed)) {
          const int64_t n = arena_copy(view_, key, page_no, 0, kPage, buf.data(), nullptr);
          if (n == kArenaMiss) {
            ++s.miss;
            continue;
          }
          if (n != kPage) {
            ++s.short_reads;
            continue;
          }
          uint64_t g = 0;
          if (!page_generation(buf.data(), &g)) {
            ++s.torn;
            continue;
          }
          // Reads of one thread must not go back in time.
          if (g < last) ++s.backwards;
          last = g;
          ++s.ok;
        }
      });
    }
    threads.emplace_back([&] {
      std::vector<uint8_t> buf(kPage);
      const uint8_t* slot0 = view_.pages;
      started.fetch_add(1);
      while (!stop.load(std::memory_order_relaxed)) {
        memcpy(buf.data(), slot0, kPage);
        uint64_t g;
        if (!page_generation(buf.data(), &g)) ++res.unchecked_torn;
      }
    });
    while (started.load() < readers + 1) std::this_thread::yield();

    uint64_t g = 0;
    const auto end = Clock::now() + duration;
    while (Clock::now() < end) {
      ++g;
      const uint32_t slot = static_cast<uint32_t>(g % slots);
      // The agent's order: readers must see the seq bump before the bytes change.
      arena_->unpublish(key, page_no);
      fill_page(arena_->page(slot), g);
      if (!arena_->publish(key, page_no, slot, kPage)) {
        res.publish_failed = true;
        break;
      }
      // Leave the page published for a moment so readers also get clean hits.
      for (int spin = 0; spin < 2000; ++spin) __asm__ __volatile__("" ::: "memory");
    }
    stop.store(true);
    for (auto& th : threads) th.join();
    res.generations = g;
    return res;
  }

  std::unique_ptr<Arena> arena_;
  int fd_ = -1;
  void* map_ = MAP_FAILED;
  ArenaView view_;
};

void ExpectClean(const RaceResult& r) {
  EXPECT_FALSE(r.publish_failed);
  ReaderStats sum;
  for (const auto& s : r.readers) {
    sum.ok += s.ok;
    sum.miss += s.miss;
    sum.torn += s.torn;
    sum.backwards += s.backwards;
    sum.short_reads += s.short_reads;
  }
  EXPECT_GT(r.generations, 1000u) << "writer barely ran";
  EXPECT_GT(sum.ok, 0u) << "no reader ever got a clean copy";
  EXPECT_EQ(sum.torn, 0u) << "torn pages passed the seqlock check (" << sum.ok << " ok)";
  EXPECT_EQ(sum.backwards, 0u);
  EXPECT_EQ(sum.short_reads, 0u);
  ::testing::Test::RecordProperty("ok", static_cast<int>(sum.ok));
  ::testing::Test::RecordProperty("miss", static_cast<int>(sum.miss));
  ::testing::Test::RecordProperty("unchecked_torn", static_cast<int>(r.unchecked_torn));
  printf("generations %llu, checked reads ok %llu miss %llu, unchecked torn copies %llu\n",
         static_cast<unsigned long long>(r.generations), static_cast<unsigned long long>(sum.ok),
         static_cast<unsigned long long>(sum.miss),
         static_cast<unsigned long long>(r.unchecked_torn));
}

// Two slots: a slot is refilled two generations after it was published, while a
// slow reader may still be copying out of it.
TEST_F(SeqlockRace, TwoSlotsNoTornPages) {
  ExpectClean(Race(2, 2, std::chrono::milliseconds(700)));
}

// Every generation into a fresh slot, across the whole arena.
TEST_F(SeqlockRace, ManySlotsNoTornPages) {
  ExpectClean(Race(2, 256, std::chrono::milliseconds(500)));
}

// Same slot every time: the bytes change in place under the reader.
TEST_F(SeqlockRace, SameSlotNoTornPages) {
  ExpectClean(Race(1, 1, std::chrono::milliseconds(400)));
}

}  // namespace
