#include "daemon/cache/arena.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "dc/barrier.h"

namespace dc {
namespace {
uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

constexpr uint64_t kHugePage = 2ULL << 20;
constexpr const char* kShmemThp = "/sys/kernel/mm/transparent_hugepage/shmem_enabled";

// Whether shared memory may use transparent huge pages for mappings that ask.
// Every reader maps the arena anew, and a first touch costs a page-table fill per
// 4 KiB page (about 1 us in some VM guests, ten times the copy itself); with 2 MiB
// pages it is one per 2 MiB. "never" (a common default) refuses even mappings that
// ask; as root the agent then sets "advise", which changes nothing for any mapping
// that does not ask.
bool enable_shmem_thp() {
  char buf[128] = {};
  int fd = open(kShmemThp, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return false;
  if (!strstr(buf, "[never]") && !strstr(buf, "[deny]")) return true;
  if (strstr(buf, "[deny]") || geteuid() != 0) return false;
  fd = open(kShmemThp, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = write(fd, "advise", 6) == 6;
  close(fd);
  return ok;
}

// Allocate every page of the arena now, not on the read path: on some machines
// (VM guests) the first write to fresh memory costs microseconds per 4 KiB, which
// would otherwise land on the first fill of each page, in front of a reader.
void prefault(uint8_t* p, uint64_t len) {
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
  if (madvise(p, len, MADV_POPULATE_WRITE) == 0) return;
  for (uint64_t off = 0; off < len; off += 4096) p[off] = 0;  // kernels before 5.14
}
}  // namespace

Result<Arena*> Arena::create(uint32_t page_size, uint32_t block_size, uint32_t page_count, bool huge_pages) {
  uint32_t capacity = 1024;
  // Load factor <= 1/2 keeps linear-probe runs far below kMaxProbe.
  while (capacity < 2ULL * page_count) capacity <<= 1;
  const uint64_t index_offset = sizeof(abi::ArenaHeader);
  const uint64_t pages_offset =
      round_up(index_offset + uint64_t{capacity} * sizeof(abi::IndexEntry), page_size < 4096 ? 4096 : page_size);
  // Whole huge pages, so the last one can be huge too.
  const uint64_t total = round_up(pages_offset + uint64_t{page_count} * page_size, kHugePage);
  const bool huge = huge_pages && enable_shmem_thp();

  int fd = memfd_create("dc-arena", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return make_error(Errc::kIo, std::string("memfd_create: ") + strerror(errno));
  if (ftruncate(fd, static_cast<off_t>(total)) != 0) {
    int e = errno;
    close(fd);
    return make_error(Errc::kNoSpace, std::string("ftruncate arena: ") + strerror(e));
  }
  void* p = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    int e = errno;
    close(fd);
    return make_error(Errc::kNoSpace, std::string("mmap arena: ") + strerror(e));
  }
  // Seal: no one may resize it (a shrink would SIGBUS every reader) and no new
  // writable mapping may be made; our own mapping above stays writable.
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) != 0) {
    int e = errno;
    munmap(p, total);
    close(fd);
    return make_error(Errc::kIo, std::string("sealing arena: ") + strerror(e));
  }
  if (huge) madvise(p, total, MADV_HUGEPAGE);
  prefault(static_cast<uint8_t*>(p), total);
  auto* a = new Arena();
  a->huge_ = huge;
  a->fd_ = fd;
  a->size_ = total;
  a->base_ = static_cast<uint8_t*>(p);
  a->header_ = reinterpret_cast<abi::ArenaHeader*>(a->base_);
  a->index_ = reinterpret_cast<abi::IndexEntry*>(a->base_ + index_offset);
  a->pages_ = a->base_ + pages_offset;
  a->mask_ = capacity - 1;

  abi::ArenaHeader* h = a->header_;
  h->abi_major = abi::kArenaAbiMajor;
  h->abi_minor = abi::kArenaAbiMinor;
  h->header_size = abi::kArenaHeaderSize;
  uint64_t gen = 0;
  if (getrandom(&gen, sizeof gen, 0) != sizeof gen) gen = static_cast<uint64_t>(getpid()) << 32;
  h->generation = gen | 1;
  h->page_size = page_size;
  h->block_size = block_size;
  h->page_count = page_count;
  h->index_capacity = capacity;
  h->index_entry_size = sizeof(abi::IndexEntry);
  h->max_probe = abi::kMaxProbe;
  h->index_offset = index_offset;
  h->pages_offset = pages_offset;
  h->total_size = total;
  // The magic goes last, with release: a reader that sees it sees the fields above.
  __atomic_store_n(&h->magic, abi::kArenaMagic, __ATOMIC_RELEASE);
  return a;
}

Arena::~Arena() {
  // Tell every shim still mapping this arena that no one serves it any more: they
  // drop it and connect to whichever agent comes next (which is how its
  // invalidations reach them), without a system call on their hit path to learn it.
  if (header_) __atomic_store_n(&header_->retired, uint64_t{1}, __ATOMIC_RELEASE);
  if (base_) munmap(base_, size_);
  if (fd_ >= 0) close(fd_);
}

Result<int> Arena::open_readonly() const {
  // A fresh open of the memfd through /proc gives a file description that is
  // read-only, so a client can never map it writable, whatever it tries.
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd_);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error(Errc::kIo, std::string("reopen arena read-only: ") + strerror(errno));
  return fd;
}

uint64_t Arena::home(const abi::IndexEntry& e) const {
  return abi::arena_index_home(e.key_hi, e.key_lo, e.page_no, mask_ + 1);
}

int64_t Arena::find(FileKey key, uint64_t page_no) const {
  uint64_t pos = abi::arena_index_home(key.hi, key.lo, page_no, mask_ + 1);
  for (uint32_t i = 0; i < abi::kMaxProbe; ++i, pos = (pos + 1) & mask_) {
    const abi::IndexEntry& e = index_[pos];
    if (!(e.flags & abi::kEntryUsed)) return -1;
    if (e.key_hi == key.hi && e.key_lo == key.lo && e.page_no == page_no) return static_cast<int64_t>(pos);
  }
  return -1;
}

bool Arena::publish(FileKey key, uint64_t page_no, uint32_t slot, uint32_t len) {
  if (find(key, page_no) >= 0) unpublish(key, page_no);
  uint64_t pos = abi::arena_index_home(key.hi, key.lo, page_no, mask_ + 1);
  for (uint32_t i = 0; i < abi::kMaxProbe; ++i, pos = (pos + 1) & mask_) {
    abi::IndexEntry& e = index_[pos];
    if (e.flags & abi::kEntryUsed) continue;
    seq_write_begin(&e.seq);
    field_store(&e.key_hi, key.hi);
    field_store(&e.key_lo, key.lo);
    field_store(&e.page_no, page_no);
    field_store(&e.slot, slot);
    field_store(&e.page_len, len);
    field_store(&e.flags, abi::kEntryUsed);
    seq_write_end(&e.seq);
    ++used_entries_;
    return true;
  }
  return false;
}

void Arena::clear_entry(uint64_t pos) {
  abi::IndexEntry& e = index_[pos];
  seq_write_begin(&e.seq);
  field_store(&e.flags, 0u);
  field_store(&e.key_hi, uint64_t{0});
  field_store(&e.key_lo, uint64_t{0});
  field_store(&e.page_no, uint64_t{0});
  field_store(&e.slot, 0u);
  field_store(&e.page_len, 0u);
  seq_write_end(&e.seq);
}

bool Arena::unpublish(FileKey key, uint64_t page_no) {
  int64_t found = find(key, page_no);
  if (found < 0) return false;
  // Backward-shift deletion keeps every probe run free of holes, so readers need no
  // tombstones. An entry that moves is written under the seqlock of its new place;
  // a reader racing the shift may miss it once, which only costs a round trip.
  uint64_t hole = static_cast<uint64_t>(found);
  uint64_t j = hole;
  for (uint32_t step = 0; step <= mask_; ++step) {
    j = (j + 1) & mask_;
    const abi::IndexEntry& cand = index_[j];
    if (!(cand.flags & abi::kEntryUsed)) break;
    uint64_t h = home(cand);
    // cand may fill the hole only if its home is not cyclically inside (hole, j].
    bool home_in_range = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j);
    if (home_in_range) continue;
    abi::IndexEntry& dst = index_[hole];
    seq_write_begin(&dst.seq);
    field_store(&dst.key_hi, cand.key_hi);
    field_store(&dst.key_lo, cand.key_lo);
    field_store(&dst.page_no, cand.page_no);
    field_store(&dst.slot, cand.slot);
    field_store(&dst.page_len, cand.page_len);
    field_store(&dst.flags, abi::kEntryUsed);
    seq_write_end(&dst.seq);
    hole = j;
  }
  clear_entry(hole);
  --used_entries_;
  return true;
}

}  // namespace dc
