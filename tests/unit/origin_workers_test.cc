// OriginWorkers: blocking origin calls leave the caller's thread; a hung one holds
// only its own worker, and completions run only on the thread that asks for them.
#include <poll.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "daemon/origin/origin_workers.h"

namespace {

using namespace dc;

// Waits (seconds, not milliseconds: the machine may be loaded) until `n`
// completions have run on this thread.
size_t RunUntil(OriginWorkers& w, const std::atomic<int>& done, int n) {
  size_t ran = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (done.load() < n && std::chrono::steady_clock::now() < deadline) {
    pollfd p{w.event_fd(), POLLIN, 0};
    poll(&p, 1, 100);
    ran += w.run_completions();
  }
  return ran;
}

TEST(OriginWorkers, HungJobDoesNotDelayOthers) {
  auto w = OriginWorkers::create(2);
  ASSERT_TRUE(w.ok());
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> done{0};
  std::atomic<bool> hung_done{false};
  std::atomic<int> finished{0};  // the hung job and the one after its release
  (*w)->submit([released] { released.wait(); }, [&] {
    hung_done = true;
    ++finished;
  });
  const auto loop = std::this_thread::get_id();
  bool on_loop = true;
  for (int i = 0; i < 20; ++i)
    (*w)->submit([] {},
                 [&] {
                   on_loop = on_loop && std::this_thread::get_id() == loop;
                   ++done;
                 });
  EXPECT_EQ(RunUntil(**w, done, 20), 20u);
  EXPECT_EQ(done.load(), 20) << "jobs waited behind a hung one";
  EXPECT_TRUE(on_loop) << "a completion ran on a worker thread";
  EXPECT_FALSE(hung_done);
  EXPECT_EQ((*w)->queued(), 1u);
  release.set_value();
  // The released job and a new one finish on two workers in either order: wait
  // for both.
  (*w)->submit([] {}, [&] { ++finished; });
  RunUntil(**w, finished, 2);
  EXPECT_TRUE(hung_done);
  EXPECT_EQ((*w)->queued(), 0u);
}

TEST(OriginWorkers, CompletionRunsOnlyWhenAsked) {
  auto w = OriginWorkers::create(1);
  ASSERT_TRUE(w.ok());
  std::atomic<bool> job_ran{false};
  bool completed = false;
  (*w)->submit([&] { job_ran = true; }, [&] { completed = true; });
  pollfd p{(*w)->event_fd(), POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 20000), 1) << "no wakeup on the event fd";
  EXPECT_TRUE(job_ran.load());
  EXPECT_FALSE(completed);
  EXPECT_EQ((*w)->run_completions(), 1u);
  EXPECT_TRUE(completed);
}

// The agent's shutdown does not wait for a worker hung on the origin.
TEST(OriginWorkers, DestroyedWhileAJobHangs) {
  auto release = std::make_shared<std::promise<void>>();
  std::shared_future<void> released = release->get_future().share();
  std::atomic<bool> started{false};
  {
    auto w = OriginWorkers::create(1);
    ASSERT_TRUE(w.ok());
    (*w)->submit(
        [released, &started] {
          started = true;
          released.wait();
        },
        [] { FAIL() << "completion of a destroyed pool ran"; });
    while (!started.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  release->set_value();  // the detached worker finishes and exits on its own
}

}  // namespace
