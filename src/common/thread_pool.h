#pragma once
// A small fixed pool for data-parallel loops: parallel_for splits [0, count) into contiguous
// chunks, one per worker, and returns when all are done. The calling thread works too.
//
// A decode step is hundreds of short loops a token, a few µs apart, so waking a sleeping worker
// through the condition variable each time (a futex call and a reschedule on both sides) cost ~17%
// of a small model's CPU decode. Workers and the caller therefore spin for up to kSpin on the
// generation / pending counters before they sleep; an idle pool still sleeps after that.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace octet {

class ThreadPool {
 public:
  explicit ThreadPool(int threads = 0);  // 0: hardware concurrency
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  // body(begin, end) over contiguous chunks; chunks are at least min_chunk long.
  void parallel_for(size_t count, const std::function<void(size_t, size_t)>& body, size_t min_chunk = 1);

  static constexpr std::chrono::microseconds kSpin{50};

 private:
  void worker_loop(int index);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::condition_variable work_done_;
  const std::function<void(size_t, size_t)>* body_ = nullptr;
  size_t count_ = 0;
  size_t chunk_ = 0;
  std::atomic<uint64_t> generation_ = 0;  // written under mutex_; read by spinning workers without it
  std::atomic<int> pending_ = 0;          // likewise, read by the spinning caller
  std::atomic<bool> stopping_ = false;
};

}  // namespace octet
