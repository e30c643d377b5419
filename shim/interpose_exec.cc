// Exec'd programs keep the shim. A program that passes its own environment to
// execve/posix_spawn (a sanitised env, a job launcher) would otherwise drop
// LD_PRELOAD and DC_SOCKET; here they are put back when missing. Only the stack is
// used: this runs in vfork children, where malloc is off limits.
#include <spawn.h>
#include <string.h>
#include <unistd.h>

#include <cerrno>

#include "shim/agent_link.h"
#include "shim/fd_table.h"
#include "shim/real.h"

#define DC_EXPORT extern "C" __attribute__((visibility("default")))

using namespace dc::shim;

namespace {

constexpr size_t kMaxEnv = 4096;
constexpr size_t kMaxValue = 4096;

const char* find(char* const* envp, const char* key, size_t key_len) {
  for (char* const* e = envp; e && *e; ++e)
    if (strncmp(*e, key, key_len) == 0) return *e;
  return nullptr;
}

// Builds in `out` an environment equal to `envp` plus whatever of LD_PRELOAD and
// DC_SOCKET this process started with and `envp` lacks. Returns envp itself when
// nothing is missing (or it does not fit).
char* const* with_shim_env(char* const* envp, char** out, char* preload_buf, char* socket_buf) {
  const ShimEnv& mine = link_start_env();
  if (!mine.preload[0] || envp == nullptr) return envp;
  const char* pre = find(envp, "LD_PRELOAD=", 11);
  const bool preload_ok = pre && strstr(pre, mine.shim_path);
  const bool socket_ok = !mine.socket[0] || find(envp, "DC_SOCKET=", 10);
  if (preload_ok && socket_ok) return envp;
  size_t n = 0;
  for (char* const* e = envp; *e; ++e) {
    if (n + 3 >= kMaxEnv) return envp;
    if (!preload_ok && *e == pre) continue;  // replaced below
    out[n++] = *e;
  }
  if (!preload_ok) {
    // Keep what the program asked to preload, and add the shim after it.
    const char* theirs = pre ? pre + 11 : "";
    if (strlen(theirs) + strlen(mine.shim_path) + 13 >= kMaxValue) return envp;
    strcpy(preload_buf, "LD_PRELOAD=");
    strcat(preload_buf, theirs);
    if (*theirs) strcat(preload_buf, ":");
    strcat(preload_buf, mine.shim_path);
    out[n++] = preload_buf;
  }
  if (!socket_ok) {
    strcpy(socket_buf, "DC_SOCKET=");
    strcat(socket_buf, mine.socket);
    out[n++] = socket_buf;
  }
  out[n] = nullptr;
  return out;
}

#define DC_ENV_BUFFERS                \
  char* env_out[kMaxEnv];             \
  char preload_buf[kMaxValue];        \
  char socket_buf[kMaxValue];

}  // namespace

// A spawned child inherits our open descriptions (those without close-on-exec) and
// may read them while we do: from now on read() on them is left to the kernel. In a
// vfork child (which shares our memory) marking here marks the parent's table.
DC_EXPORT int execve(const char* path, char* const argv[], char* const envp[]) {
  static decltype(&::execve) real;
  fd_pos_sync_all_shared();
  DC_ENV_BUFFERS
  return next_real(&real, "execve")(path, argv, with_shim_env(envp, env_out, preload_buf, socket_buf));
}

DC_EXPORT int execvpe(const char* file, char* const argv[], char* const envp[]) {
  static decltype(&::execvpe) real;
  fd_pos_sync_all_shared();
  DC_ENV_BUFFERS
  return next_real(&real, "execvpe")(file, argv, with_shim_env(envp, env_out, preload_buf, socket_buf));
}

DC_EXPORT int fexecve(int fd, char* const argv[], char* const envp[]) {
  static decltype(&::fexecve) real;
  fd_pos_sync_all_shared();
  DC_ENV_BUFFERS
  return next_real(&real, "fexecve")(fd, argv, with_shim_env(envp, env_out, preload_buf, socket_buf));
}

DC_EXPORT int posix_spawn(pid_t* pid, const char* path, const posix_spawn_file_actions_t* actions,
                          const posix_spawnattr_t* attr, char* const argv[], char* const envp[]) {
  static decltype(&::posix_spawn) real;
  fd_pos_sync_all_shared();
  DC_ENV_BUFFERS
  return next_real(&real, "posix_spawn")(pid, path, actions, attr, argv,
                                    with_shim_env(envp, env_out, preload_buf, socket_buf));
}

DC_EXPORT int posix_spawnp(pid_t* pid, const char* file, const posix_spawn_file_actions_t* actions,
                           const posix_spawnattr_t* attr, char* const argv[], char* const envp[]) {
  static decltype(&::posix_spawnp) real;
  fd_pos_sync_all_shared();
  DC_ENV_BUFFERS
  return next_real(&real, "posix_spawnp")(pid, file, actions, attr, argv,
                                     with_shim_env(envp, env_out, preload_buf, socket_buf));
}

// vfork runs no atfork handlers, and its child shares our memory (so our fd
// table) and our open file descriptions until it execs or exits: whatever it does
// with them (close, dup2, read) must find every offset in the kernel. So before
// the real vfork, sync and share everything, as fork's prepare handler does. The
// wrapper cannot be C: a function that returns twice (child, then parent) from one
// stack frame the child may clobber is undefined; this one makes a normal call,
// then jumps to the real vfork with the caller's own return address in place.
extern "C" __attribute__((visibility("hidden"))) void* dc_vfork_prepare() {
  fd_pos_sync_all_shared();
  static void* real;
  void* fn = next_real(&real, "vfork");
  return fn ? fn : reinterpret_cast<void*>(&fork);  // POSIX allows vfork to be fork
}

#if defined(__x86_64__)
asm(R"(
    .text
    .globl vfork
    .type vfork, @function
vfork:
    .cfi_startproc
    endbr64
    sub $8, %rsp
    .cfi_adjust_cfa_offset 8
    call dc_vfork_prepare
    add $8, %rsp
    .cfi_adjust_cfa_offset -8
    jmp *%rax
    .cfi_endproc
    .size vfork, .-vfork
)");
#endif
