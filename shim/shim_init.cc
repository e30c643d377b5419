// Settings read from the environment once, at start, and the one-time init gate.
#include <dlfcn.h>
#include <errno.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "shim/agent_link.h"
#include "shim/shim_state.h"

namespace dc::shim {
namespace {

void copy_env(char* out, size_t cap, const char* value) {
  if (value && strlen(value) < cap) memcpy(out, value, strlen(value) + 1);
}

// The LD_PRELOAD entry naming this library, found by matching the path the
// dynamic loader mapped us from.
void find_shim_entry() {
  Dl_info info{};
  if (!dladdr(reinterpret_cast<void*>(&link_init), &info) || !info.dli_fname) return;
  copy_env(g_state.start_env.shim_path, sizeof g_state.start_env.shim_path, info.dli_fname);
}

// DC_SHIM_EXCLUDE="prog1:prog2": programs (by short name) that must never be
// intercepted, whatever LD_PRELOAD says.
bool excluded(const char* list, const char* name) {
  const size_t n = strlen(name);
  for (const char* p = list; p && *p;) {
    const char* end = strchr(p, ':');
    const size_t len = end ? static_cast<size_t>(end - p) : strlen(p);
    if (len == n && strncmp(p, name, n) == 0) return true;
    p = end ? end + 1 : nullptr;
  }
  return false;
}

}  // namespace

void link_init() {
  ShimState& s = g_state;
  s.pid = getpid();
  const char* sock = getenv("DC_SOCKET");
  if (sock && *sock && strlen(sock) < sizeof s.socket_path) {
    memset(s.socket_path, 0, sizeof s.socket_path);
    memcpy(s.socket_path, sock, strlen(sock));
  }
  copy_env(s.start_env.preload, sizeof s.start_env.preload, getenv("LD_PRELOAD"));
  copy_env(s.start_env.socket, sizeof s.start_env.socket, sock);
  find_shim_entry();
  const char* off = getenv("DC_SHIM_DISABLE");
  if (off && *off && strcmp(off, "0") != 0) s.enabled = false;
  // The agent reads the origin itself; it must never be served by a shim.
  if (strcmp(program_invocation_short_name, "dcagent") == 0) s.enabled = false;
  if (excluded(getenv("DC_SHIM_EXCLUDE"), program_invocation_short_name)) s.enabled = false;
}

const ShimEnv& link_start_env() {
  return g_state.start_env;
}

bool shim_enabled() {
  uint32_t state = __atomic_load_n(&g_state.init_state, __ATOMIC_ACQUIRE);
  if (__builtin_expect(state != 2, 0)) {
    if (state == 1) return false;  // another thread is initialising: pass through
    uint32_t expected = 0;
    if (__atomic_compare_exchange_n(&g_state.init_state, &expected, 1u, false, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE)) {
      shim_global_init();
      __atomic_store_n(&g_state.init_state, 2u, __ATOMIC_RELEASE);
    } else if (expected != 2) {
      return false;
    }
  }
  return g_state.enabled;
}

}  // namespace dc::shim
