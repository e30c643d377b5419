// The shim's fd table (shim/fd_table.cc), linked from its source: numbers that
// name one description share its lock, and what a reader does with a slot it
// cannot read.
#include "shim/fd_table.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace dc::shim {
namespace {

class FdTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dc-fd-table.XXXXXX";
    const int fd = mkstemp(tmpl);
    ASSERT_GE(fd, 0);
    path_ = tmpl;
    std::string data(kSize, 'x');
    ASSERT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
    close(fd);
  }
  void TearDown() override { unlink(path_.c_str()); }

  // A cached reader opened with O_CLOEXEC: its offset may live in user space.
  int open_tracked(FdInfo* info) {
    const int fd = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_GE(fd, 0);
    FdInfo in;
    in.kind = SlotKind::kReader;
    in.own_offset = true;
    in.size = kSize;
    in.key = FileKey{1, 2};
    std::strcpy(in.path, "f.bin");
    in.path_len = 5;
    fd_track(fd, in);
    EXPECT_TRUE(fd_lookup(fd, info, true));
    return fd;
  }

  static constexpr uint64_t kSize = 16384;
  std::string path_;
};

// What a served read() does: advances the user-space offset, not the kernel's.
void served_read(int fd, const FdInfo& fi, uint64_t n) {
  uint64_t word;
  ASSERT_TRUE(fd_pos_load(fd, fi.gen, &word));
  ASSERT_TRUE(fd_pos_cas(fd, word, pos_word(fi.gen, pos_of(word) + n)));
}

TEST_F(FdTableTest, GivingUpOnAStuckWriterLeavesTheKernelOffsetRight) {
  FdInfo fi;
  const int fd = open_tracked(&fi);
  served_read(fd, fi, 4096);
  ASSERT_EQ(lseek(fd, 0, SEEK_CUR), 0);  // the kernel's offset is stale meanwhile
  fd_fault_abandon_write(fd);            // a writer that never finishes
  bool found = true;
  std::thread other([&] {
    FdInfo out;
    found = fd_lookup(fd, &out, false);
  });
  other.join();
  EXPECT_FALSE(found);
  // The caller now makes the plain read(): it must read at 4096, not at 0.
  EXPECT_EQ(lseek(fd, 0, SEEK_CUR), 4096);
  fd_clear(fd);  // takes the stuck slot over
  close(fd);
}

TEST_F(FdTableTest, ASignalHandlerInterruptingThisThreadsWriteLeavesTheKernelOffsetRight) {
  FdInfo fi;
  const int fd = open_tracked(&fi);
  served_read(fd, fi, 8192);
  fd_fault_abandon_write(fd);  // this thread is the writer
  FdInfo out;
  EXPECT_FALSE(fd_lookup(fd, &out, false));
  EXPECT_EQ(lseek(fd, 0, SEEK_CUR), 8192);
  fd_clear(fd);
  // Whatever is tracked on this number next starts clean.
  FdInfo again;
  close(fd);
  const int fd2 = open_tracked(&again);
  EXPECT_FALSE(again.shared);
  fd_clear(fd2);
  close(fd2);
}

// A dup takes its source's description id: both numbers take one lock, so no
// read through one lands between another's "get offset" and "set offset".
TEST_F(FdTableTest, ADupSharesItsSourcesLock) {
  FdInfo fi;
  const int a = open_tracked(&fi);
  const int b = dup(a);
  fd_track(b, fi);  // what after_dup does (with own_offset cleared)
  const FdLock held = fd_lock(a);
  ASSERT_TRUE(held);
  // The same lock: this thread, holding it, is told it re-entered.
  EXPECT_FALSE(fd_lock(b));
  fd_unlock(held);
  const FdLock again = fd_lock(b);
  EXPECT_TRUE(again);
  fd_unlock(again);
  fd_clear(a);
  fd_clear(b);
  close(a);
  close(b);
}

TEST_F(FdTableTest, TwoOpensOfOneFileHaveTwoLocks) {
  FdInfo f1, f2;
  const int a = open_tracked(&f1);
  const int b = open_tracked(&f2);
  const FdLock la = fd_lock(a);
  ASSERT_TRUE(la);
  const FdLock lb = fd_lock(b);  // another description: not this thread's lock
  EXPECT_TRUE(lb);
  fd_unlock(lb);
  fd_unlock(la);
  fd_clear(a);
  fd_clear(b);
  close(a);
  close(b);
}

TEST_F(FdTableTest, FreshOpensGetDistinctDescriptions) {
  FdInfo f1, f2;
  const int a = open_tracked(&f1);
  const int b = open_tracked(&f2);
  EXPECT_NE(f1.desc, 0u);
  EXPECT_NE(f1.desc, f2.desc);
  fd_clear(a);
  fd_clear(b);
  close(a);
  close(b);
}

}  // namespace
}  // namespace dc::shim
