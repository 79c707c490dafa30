#include "common/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace octet {
namespace {

TEST(ThreadPool, EveryIndexVisitedExactlyOnce) {
  ThreadPool pool(3);
  for (size_t count : {1u, 2u, 3u, 7u, 1000u}) {
    std::vector<std::atomic<int>> visits(count);
    pool.parallel_for(count, [&](size_t begin, size_t end) {
      for (size_t i = begin; i < end; ++i) visits[i]++;
    });
    for (size_t i = 0; i < count; ++i) EXPECT_EQ(visits[i].load(), 1) << "count " << count << " index " << i;
  }
}

TEST(ThreadPool, ManyRoundsInARow) {
  ThreadPool pool(2);
  std::atomic<long> sum{0};
  for (int round = 0; round < 2000; ++round)
    pool.parallel_for(10, [&](size_t b, size_t e) { for (size_t i = b; i < e; ++i) sum += static_cast<long>(i); });
  EXPECT_EQ(sum.load(), 2000L * 45);
}

// Both ways of meeting: rounds far apart (the workers have stopped spinning and sleep on the
// condition variable) and chunks that outlast the caller's spin (it sleeps until the last one ends).
TEST(ThreadPool, SleepingWorkersAndASleepingCallerStillMeet) {
  ThreadPool pool(3);
  std::atomic<long> sum{0};
  for (int round = 0; round < 20; ++round) {
    std::this_thread::sleep_for(ThreadPool::kSpin * 4);
    pool.parallel_for(3, [&](size_t b, size_t e) {
      if (b > 0) std::this_thread::sleep_for(ThreadPool::kSpin * (round % 2 == 0 ? 4 : 0));
      for (size_t i = b; i < e; ++i) sum += static_cast<long>(i) + 1;
    });
  }
  EXPECT_EQ(sum.load(), 20L * 6);
}

}  // namespace
}  // namespace octet
