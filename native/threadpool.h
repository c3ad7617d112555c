// A small persistent pool of std::threads. Size = std::thread::hardware_concurrency(), or SQAP_THREADS.
// The calling thread works too, so a pool of size 1 has no extra threads and runs everything inline.
#pragma once

#include <functional>

namespace sqap {

int pool_size();

// Runs fn(task) for every task in [0, n_tasks) across the pool and blocks until all are done. Tasks are handed out
// one at a time from a shared counter, so uneven tasks balance. Calls from several threads are serialised.
void parallel_for(int n_tasks, const std::function<void(int)>& fn);

// Splits [0, n) into at most pool_size() contiguous chunks whose boundaries are multiples of `align` (except n) and
// runs fn(begin, end) on each; runs inline when n < min_parallel.
void parallel_range(int n, int align, int min_parallel, const std::function<void(int, int)>& fn);

}  // namespace sqap
