#include "daemon/origin/origin_workers.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace dc {

// Guarded by mu: everything but efd (set once before any thread starts).
struct OriginWorkers::Shared {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::pair<Job, Completion>> jobs;
  std::vector<Completion> done;
  size_t unfinished = 0;  // queued or running
  bool stopping = false;
  int efd = -1;
  ~Shared() {
    if (efd >= 0) close(efd);
  }
};

Result<std::unique_ptr<OriginWorkers>> OriginWorkers::create(uint32_t threads) {
  auto shared = std::make_shared<Shared>();
  shared->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (shared->efd < 0)
    return make_error(Errc::kIo, std::string("origin workers eventfd: ") + strerror(errno));
  std::unique_ptr<OriginWorkers> w(new OriginWorkers(shared));
  for (uint32_t i = 0; i < threads; ++i) {
    // Each thread holds the shared state, so a worker hung past the agent's
    // shutdown still has its queue, lock and eventfd when it wakes.
    w->threads_.emplace_back([s = shared] {
      std::unique_lock lock(s->mu);
      for (;;) {
        s->cv.wait(lock, [&] { return s->stopping || !s->jobs.empty(); });
        if (s->stopping) return;
        auto [job, done] = std::move(s->jobs.front());
        s->jobs.pop_front();
        lock.unlock();
        job();
        job = nullptr;  // whatever the job captured goes before the loop hears of it
        lock.lock();
        s->done.push_back(std::move(done));
        const uint64_t one = 1;
        if (write(s->efd, &one, sizeof one) < 0) {
          // Only EAGAIN (counter saturated) is possible: the loop is woken anyway.
        }
      }
    });
  }
  return w;
}

OriginWorkers::~OriginWorkers() {
  {
    std::lock_guard lock(shared_->mu);
    shared_->stopping = true;
    shared_->jobs.clear();
    shared_->done.clear();
  }
  shared_->cv.notify_all();
  for (auto& t : threads_) t.detach();
}

int OriginWorkers::event_fd() const {
  return shared_->efd;
}

void OriginWorkers::submit(Job job, Completion done) {
  {
    std::lock_guard lock(shared_->mu);
    shared_->jobs.emplace_back(std::move(job), std::move(done));
    ++shared_->unfinished;
  }
  shared_->cv.notify_one();
}

size_t OriginWorkers::run_completions() {
  uint64_t ignored;
  while (read(shared_->efd, &ignored, sizeof ignored) > 0) {
  }
  std::vector<Completion> done;
  {
    std::lock_guard lock(shared_->mu);
    done.swap(shared_->done);
    shared_->unfinished -= done.size();
  }
  for (auto& d : done) d();
  return done.size();
}

size_t OriginWorkers::queued() const {
  std::lock_guard lock(shared_->mu);
  return shared_->unfinished;
}

}  // namespace dc
