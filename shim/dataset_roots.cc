#include "shim/dataset_roots.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "shim/agent_conn.h"
#include "shim/agent_link.h"
#include "shim/real.h"
#include "shim/shim_state.h"

namespace dc::shim {

void install_datasets(const uint8_t* buf, size_t len, uint32_t count) {
  if (count > ctl::kMaxDatasets) return;
  // One allocation: the list, then the names and roots it points into.
  const size_t bytes = sizeof(DatasetList) + len + 1;
  auto* list = static_cast<DatasetList*>(alloc_pages(bytes));
  if (!list) return;
  char* strings = reinterpret_cast<char*>(list + 1);
  size_t at = sizeof(ctl::HelloReply);
  uint32_t n = 0;
  for (; n < count; ++n) {
    ctl::DatasetRecord rec;
    if (at + sizeof rec > len) break;
    memcpy(&rec, buf + at, sizeof rec);
    at += sizeof rec;
    if (at + rec.name_len + rec.root_len > len) break;
    Dataset& d = list->items[n];
    memcpy(strings, buf + at, rec.name_len);
    d.name = strings;
    d.name_len = rec.name_len;
    strings[rec.name_len] = '\0';
    strings += rec.name_len + 1;
    memcpy(strings, buf + at + rec.name_len, rec.root_len);
    d.root = strings;
    d.root_len = rec.root_len;
    strings[rec.root_len] = '\0';
    strings += rec.root_len + 1;
    at = (at + rec.name_len + rec.root_len + 7) & ~size_t{7};
  }
  list->count = n;
  // Older lists stay allocated: a thread may still be reading one.
  __atomic_store_n(&g_state.datasets, static_cast<const DatasetList*>(list), __ATOMIC_RELEASE);
}

namespace {

// Reads <socket>.roots: a file on the agent's own (local) directory, so reading it
// cannot hang on the agent. False if it is absent or not a roots file we know.
bool load_roots_file() {
  char path[sizeof g_state.socket_path + 8];
  const size_t n = strnlen(g_state.socket_path, sizeof g_state.socket_path);
  memcpy(path, g_state.socket_path, n);
  memcpy(path + n, ".roots", 7);
  const int fd = sys_openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0);
  if (fd < 0) return false;
  auto* buf = static_cast<uint8_t*>(alloc_pages(ctl::kMaxReply));
  bool ok = false;
  if (buf) {
    size_t len = 0;
    for (;;) {  // a regular file: reads return what is there, EOF at the end
      const ssize_t r = sys_read(fd, buf + len, ctl::kMaxReply - len);
      if (r <= 0) break;
      len += static_cast<size_t>(r);
      if (len == ctl::kMaxReply) break;
    }
    ctl::HelloReply rep{};
    if (len >= sizeof rep) memcpy(&rep, buf, sizeof rep);
    ok = len >= sizeof rep && len < ctl::kMaxReply && rep.h.magic == ctl::kMagic &&
         rep.h.op == static_cast<uint16_t>(ctl::Op::kHelloReply) && rep.h.length == len &&
         rep.status == 0 && rep.dataset_count <= ctl::kMaxDatasets;
    if (ok && try_lock(&g_state.install_lock)) {
      if (!__atomic_load_n(&g_state.datasets, __ATOMIC_ACQUIRE))
        install_datasets(buf, len, rep.dataset_count);
      unlock(&g_state.install_lock);
    }
    munmap(buf, ctl::kMaxReply);
  }
  sys_close(fd);
  return ok;
}

}  // namespace

const DatasetList* link_datasets() {
  const DatasetList* d = __atomic_load_n(&g_state.datasets, __ATOMIC_ACQUIRE);
  if (d || !g_state.enabled) return d;
  const uint64_t now = now_ns();
  if (now < __atomic_load_n(&g_state.next_connect_ns, __ATOMIC_RELAXED)) return nullptr;
  const int saved = errno;
  if (!load_roots_file() && !agent_backed_off(now)) {
    const int i = acquire_conn();
    if (i >= 0) {
      if (conn_fd(g_state.conns[i]) < 0) connect_conn(g_state.conns[i]);
      release_conn(i);
    }
  }
  errno = saved;
  return __atomic_load_n(&g_state.datasets, __ATOMIC_ACQUIRE);
}

}  // namespace dc::shim
