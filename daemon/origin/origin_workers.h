// Origin metadata calls (openat2, fstat) off the agent's event loop. A call on a
// slow or hung origin (a stuck NFS server, a held fanotify permission event) would
// otherwise stop every client of the agent, hits and reads of files already open
// included. Here a job runs on one of a few worker threads; its completion runs
// later on the loop thread, when the loop sees event_fd() readable and calls
// run_completions(). A hung job holds only its own worker: the others keep
// serving jobs for other files.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/result.h"

namespace dc {

class OriginWorkers {
 public:
  using Job = std::function<void()>;         // runs on a worker thread; must not touch loop state
  using Completion = std::function<void()>;  // runs on the loop thread

  static Result<std::unique_ptr<OriginWorkers>> create(uint32_t threads);
  // Workers still inside a job (hung on the origin) are left to finish on their
  // own: nothing they hold belongs to the caller, and the loop does not wait.
  ~OriginWorkers();
  OriginWorkers(const OriginWorkers&) = delete;
  OriginWorkers& operator=(const OriginWorkers&) = delete;

  int event_fd() const;
  // Queues `job`; once it returned, `done` runs inside a later run_completions().
  void submit(Job job, Completion done);
  // Runs the completions of finished jobs (loop thread). Returns how many ran.
  size_t run_completions();
  size_t queued() const;  // jobs not yet finished

 private:
  struct Shared;  // what workers share with the loop; outlives this object
  explicit OriginWorkers(std::shared_ptr<Shared> s) : shared_(std::move(s)) {}
  std::shared_ptr<Shared> shared_;
  std::vector<std::thread> threads_;
};

}  // namespace dc
