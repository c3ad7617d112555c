#include "threadpool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace sqap {

namespace {

class ThreadPool {
 public:
  explicit ThreadPool(int size) : size_(size) {
    for (int i = 1; i < size_; i++) workers_.emplace_back([this] { worker_loop(); });
    // The pool lives as long as the process (it is never destroyed, see pool()): detach so exit() does not wait.
    for (auto& t : workers_) t.detach();
  }

  int size() const { return size_; }

  void run(int n_tasks, const std::function<void(int)>& fn) {
    if (n_tasks <= 0) return;
    std::lock_guard<std::mutex> serial(run_mutex_);
    if (size_ == 1 || n_tasks == 1) {
      for (int i = 0; i < n_tasks; i++) fn(i);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      fn_ = &fn;
      n_tasks_ = n_tasks;
      next_task_.store(0);
      busy_workers_ = static_cast<int>(workers_.size());
      generation_++;
    }
    wake_.notify_all();
    work();
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return busy_workers_ == 0; });
    fn_ = nullptr;
  }

 private:
  void work() {
    for (;;) {
      int task = next_task_.fetch_add(1);
      if (task >= n_tasks_) return;
      (*fn_)(task);
    }
  }

  void worker_loop() {
    unsigned long seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
      }
      work();
      {
        std::lock_guard<std::mutex> lock(mutex_);
        busy_workers_--;
      }
      done_.notify_one();
    }
  }

  const int size_;
  std::vector<std::thread> workers_;
  std::mutex run_mutex_;  // one parallel_for at a time
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const std::function<void(int)>* fn_ = nullptr;
  int n_tasks_ = 0;
  std::atomic<int> next_task_{0};
  int busy_workers_ = 0;
  unsigned long generation_ = 0;
};

int configured_size() {
  const char* env = std::getenv("SQAP_THREADS");
  if (env != nullptr && *env != '\0') {
    int n = std::atoi(env);
    if (n >= 1) return std::min(n, 256);
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

ThreadPool& pool() {
  static ThreadPool* instance = new ThreadPool(configured_size());  // leaked on purpose: workers never join
  return *instance;
}

}  // namespace

int pool_size() { return pool().size(); }

void parallel_for(int n_tasks, const std::function<void(int)>& fn) { pool().run(n_tasks, fn); }

void parallel_range(int n, int align, int min_parallel, const std::function<void(int, int)>& fn) {
  if (n <= 0) return;
  int threads = pool_size();
  if (n < min_parallel || threads == 1) {
    fn(0, n);
    return;
  }
  int per = (n + threads - 1) / threads;
  per = (per + align - 1) / align * align;
  int chunks = (n + per - 1) / per;
  parallel_for(chunks, [&](int c) {
    int begin = c * per;
    int end = std::min(n, begin + per);
    fn(begin, end);
  });
}

}  // namespace sqap
