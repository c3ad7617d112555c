#include "threadpool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace sqap {

namespace {

// How long a thread that ran out of work keeps polling for the next parallel_for before it sleeps on a condition
// variable (SQAP_SPIN_US, microseconds; 0 sleeps at once). A model step is a chain of short parallel regions (a
// decode step of a 7B runs ~500 of 0.1-0.5 ms each); waking a sleeping thread costs a futex call and, in a VM, an
// inter-processor interrupt, tens of microseconds each time, which the spin avoids while regions follow each other.
// Past the spin the threads sleep, so an idle process burns no CPU.
int configured_spin_us() {
  const char* env = std::getenv("SQAP_SPIN_US");
  if (env != nullptr && *env != '\0') {
    int us = std::atoi(env);
    if (us >= 0) return std::min(us, 100000);
  }
  return 200;
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Polls `ready` for up to `us` microseconds; true when it became true.
template <class Ready>
bool spin_until(int us, Ready ready) {
  if (us <= 0) return ready();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(us);
  for (;;) {
    for (int i = 0; i < 64; i++) {
      if (ready()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() >= deadline) return ready();
  }
}

class ThreadPool {
 public:
  ThreadPool(int size, int spin_us) : size_(size), spin_us_(spin_us) {
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
    fn_ = &fn;
    n_tasks_ = n_tasks;
    next_task_.store(0, std::memory_order_relaxed);
    busy_workers_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
    {
      // under the mutex, so a worker deciding to sleep either sees the new generation or is already waiting
      std::lock_guard<std::mutex> lock(mutex_);
      generation_.fetch_add(1, std::memory_order_release);
      if (sleeping_workers_ > 0) wake_.notify_all();
    }
    work();
    if (!spin_until(spin_us_, [this] { return busy_workers_.load(std::memory_order_acquire) == 0; })) {
      std::unique_lock<std::mutex> lock(mutex_);
      caller_sleeping_ = true;
      done_.wait(lock, [this] { return busy_workers_.load(std::memory_order_acquire) == 0; });
      caller_sleeping_ = false;
    }
    fn_ = nullptr;
  }

 private:
  void work() {
    for (;;) {
      int task = next_task_.fetch_add(1, std::memory_order_relaxed);
      if (task >= n_tasks_) return;
      (*fn_)(task);
    }
  }

  void worker_loop() {
    unsigned long seen = 0;
    for (;;) {
      auto fresh = [&] { return generation_.load(std::memory_order_acquire) != seen; };
      if (!spin_until(spin_us_, fresh)) {
        std::unique_lock<std::mutex> lock(mutex_);
        sleeping_workers_++;
        wake_.wait(lock, fresh);
        sleeping_workers_--;
      }
      seen = generation_.load(std::memory_order_acquire);
      work();
      if (busy_workers_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (caller_sleeping_) done_.notify_one();
      }
    }
  }

  const int size_;
  const int spin_us_;
  std::vector<std::thread> workers_;
  std::mutex run_mutex_;  // one parallel_for at a time
  std::mutex mutex_;      // guards the sleeping flags and the condition variables' predicates' transitions
  std::condition_variable wake_;
  std::condition_variable done_;
  const std::function<void(int)>* fn_ = nullptr;
  int n_tasks_ = 0;
  std::atomic<int> next_task_{0};
  std::atomic<int> busy_workers_{0};
  std::atomic<unsigned long> generation_{0};
  int sleeping_workers_ = 0;
  bool caller_sleeping_ = false;
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
  static ThreadPool* instance = new ThreadPool(configured_size(), configured_spin_us());  // leaked on purpose: workers never join
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
