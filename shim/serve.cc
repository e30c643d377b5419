#include "shim/serve.h"

#include <cerrno>
#include <climits>

#include "dc/arena_reader.h"
#include "shim/agent_link.h"
#include "shim/real.h"
#include "shim/track.h"

namespace dc::shim {
namespace {

// Last block this thread reported a hit for: one hint per block, not per page or
// per small read, keeps the hit ring cheap for streams of small reads.
__attribute__((tls_model("initial-exec"))) thread_local uint64_t t_last_hit_key = 0;
__attribute__((tls_model("initial-exec"))) thread_local uint64_t t_last_hit_block = UINT64_MAX;

void note_hit(uint32_t slot, uint64_t key_lo, uint64_t block) {
  if (t_last_hit_key == key_lo && t_last_hit_block == block) return;
  t_last_hit_key = key_lo;
  t_last_hit_block = block;
  link_record_hit(slot, key_lo);
}

// The read that made a block resident is that block's first use, not a reuse: if
// it were reported, every block would look re-referenced to the eviction policy,
// which would then keep nothing (LRU-like thrashing under epochs).
void note_fetched(uint64_t key_lo, uint64_t block) {
  t_last_hit_key = key_lo;
  t_last_hit_block = block;
}

}  // namespace

ssize_t serve_pread(int fd, const FdInfo& fi, void* buf, size_t len, uint64_t off) {
  if (len == 0 || off >= fi.size) return kNotServed;  // EOF, growth, errors: the kernel knows
  const ArenaView* view = link_arena();
  if (!view) return kNotServed;
  if (len > SSIZE_MAX) len = SSIZE_MAX;
  const uint64_t end = off + len < fi.size ? off + len : fi.size;
  auto* out = static_cast<uint8_t*>(buf);
  uint64_t done = 0;
  uint64_t last_fetched = UINT64_MAX;
  uint64_t fetched_end = 0;  // blocks [last_fetched, fetched_end) came in for this call
  bool fetched = false;
  FdInfo with_path;
  bool have_path = false;
  while (off + done < end) {
    const uint64_t pos = off + done;
    const uint64_t page_no = pos >> view->page_shift;
    const uint32_t in_page = static_cast<uint32_t>(pos & (view->page_size - 1));
    uint64_t n = view->page_size - in_page;
    if (n > end - pos) n = end - pos;
    uint32_t slot = 0;
    const int64_t r =
        arena_copy(*view, fi.key, page_no, in_page, static_cast<uint32_t>(n), out + done, &slot, link_map_slot);
    const uint64_t block = pos >> view->block_shift;
    if (r == kArenaMiss) {
      if (block == last_fetched) break;  // fetched, yet gone again: read the rest directly
      if (!have_path) {
        if (!fd_lookup(fd, &with_path, true) || !(with_path.key == fi.key)) break;
        have_path = true;
      }
      uint64_t last_block = (end - 1) >> view->block_shift;
      uint64_t count = last_block - block + 1;
      if (count > ctl::kMaxFetchBlocks) count = ctl::kMaxFetchBlocks;
      if (!link_fetch(with_path, block, static_cast<uint32_t>(count))) {
        // Named by the application's spelling, which may hold a symbolic link the
        // agent will not follow: from the next read on, by the canonical path.
        if (with_path.lexical) rekey_canonical(fd);
        break;
      }
      last_fetched = block;
      fetched_end = block + count;
      fetched = true;
      view = link_arena();  // the agent may have restarted with a new arena
      if (!view) break;
      continue;
    }
    if (r <= 0) break;
    if (fetched && block >= last_fetched && block < fetched_end) note_fetched(fi.key.lo, block);
    else note_hit(slot, fi.key.lo, block);
    done += static_cast<uint64_t>(r);
    if (static_cast<uint64_t>(r) < n) break;
  }
  const uint64_t want = end - off;
  if (done == 0) return kNotServed;
  if (done < want) {
    // Part came from the arena; the rest from the file itself. A short or failed
    // read here just makes this a short read, which callers must handle anyway.
    const int saved = errno;
    ssize_t more = sys_pread(fd, out + done, want - done, static_cast<off_t>(off + done));
    errno = saved;
    if (more > 0) done += static_cast<uint64_t>(more);
    link_count(Served::kFallback, done);
    return static_cast<ssize_t>(done);
  }
  link_count(fetched ? Served::kMiss : Served::kHit, done);
  return static_cast<ssize_t>(done);
}

ssize_t serve_preadv(int fd, const FdInfo& fi, const iovec* iov, int cnt, uint64_t off) {
  if (cnt < 0 || cnt > IOV_MAX) return kNotServed;
  uint64_t total = 0;
  for (int i = 0; i < cnt; ++i) {
    if (iov[i].iov_len == 0) continue;
    ssize_t r = serve_pread(fd, fi, iov[i].iov_base, iov[i].iov_len, off + total);
    if (r == kNotServed) {
      if (total == 0) return kNotServed;
      // Finish from the file itself rather than return a short read mid-file:
      // plenty of programs take a short read of a regular file for its end.
      const int saved = errno;
      ssize_t more = sys_preadv(fd, iov + i, cnt - i, static_cast<off_t>(off + total));
      errno = saved;
      if (more > 0) total += static_cast<uint64_t>(more);
      break;
    }
    total += static_cast<uint64_t>(r);
    if (static_cast<size_t>(r) < iov[i].iov_len) break;
  }
  if (total == 0) return kNotServed;
  return static_cast<ssize_t>(total);
}

}  // namespace dc::shim
