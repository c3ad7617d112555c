// Memory-bandwidth probe for the benchmarks: every thread of the pool streams its share of a buffer larger than the
// caches (64-bit XOR, which the compiler vectorises); bench/gemm.ts divides bytes by time.
#include <cstdint>
#include <cstring>

#include "../kernels.h"
#include "../threadpool.h"

namespace sqap {

uint64_t stream_read(const uint8_t* data, size_t bytes) {
  const size_t words = bytes / 8;
  const int chunks = 64;
  uint64_t partial[64] = {};
  parallel_for(chunks, [&](int c) {
    const size_t w0 = words * c / chunks, w1 = words * (c + 1) / chunks;
    uint64_t acc[8] = {};
    size_t w = w0;
    for (; w + 8 <= w1; w += 8) {  // 8 independent streams of 64-bit loads: the loop is load-bound, not ALU-bound
      uint64_t v[8];
      std::memcpy(v, data + w * 8, sizeof v);
      for (int i = 0; i < 8; i++) acc[i] ^= v[i];
    }
    for (; w < w1; w++) {
      uint64_t v;
      std::memcpy(&v, data + w * 8, 8);
      acc[0] ^= v;
    }
    uint64_t total = 0;
    for (uint64_t a : acc) total ^= a;
    partial[c] = total;
  });
  uint64_t result = 0;
  for (uint64_t p : partial) result ^= p;
  return result;
}

}  // namespace sqap
