// errno across an exported wrapper. A program may look at errno after a call that
// succeeded (some check it instead of the return value, many print it later), so
// the wrapper must leave exactly what the real call leaves: unchanged on success,
// the kernel's value on failure. The shim's own work inside a wrapper (a refused
// connect to a dead agent, a fetch, an lseek, an fstat) must leave no trace.
#pragma once

#include <cerrno>

namespace dc::shim {

class KeptErrno {
 public:
  KeptErrno() : saved_(errno) {}
  KeptErrno(const KeptErrno&) = delete;
  KeptErrno& operator=(const KeptErrno&) = delete;

  // Before the real call: it then sets errno only if it fails, as without the shim.
  void restore() const { errno = saved_; }
  // A result computed by the shim (served from the arena): a success (r >= 0)
  // restores errno; a failure keeps the errno of the real call that failed.
  template <typename T>
  T result(T r) const {
    if (r >= 0) errno = saved_;
    return r;
  }

 private:
  int saved_;
};

// Runs the shim's bookkeeping after a real call without disturbing the errno that
// call left.
template <typename F>
void keeping_errno(F&& work) {
  const int e = errno;
  work();
  errno = e;
}

}  // namespace dc::shim
