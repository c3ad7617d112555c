// The one dispatch point: which KernelTable the op drivers call. Chosen once, at first use, from the CPU's
// features (__builtin_cpu_supports also checks that the OS saves the wide registers), unless SQAP_NATIVE_ISA forces
// a path. A forced path the CPU lacks falls back to the best supported one (native.ts warns about it).
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "kernel_table.h"
#include "threadpool.h"

namespace sqap {

namespace {

const KernelTable* table_for(Isa isa) {
  switch (isa) {
    case Isa::avx512vnni:
      return &kAvx512VnniKernels;
    case Isa::avx512:
      return &kAvx512Kernels;
    case Isa::avxvnni:
      return &kAvxVnniKernels;
    case Isa::avx2:
      return &kAvx2Kernels;
    case Isa::generic:
    default:
      return &kGenericKernels;
  }
}

int requested_from_env() {
  const char* env = std::getenv("SQAP_NATIVE_ISA");
  Isa isa;
  if (env == nullptr || !isa_from_name(env, &isa)) return -1;
  return static_cast<int>(isa);
}

const KernelTable* initial_table() {
  int requested = requested_from_env();
  if (requested >= 0 && isa_supported(static_cast<Isa>(requested))) return table_for(static_cast<Isa>(requested));
  return table_for(best_isa());
}

std::atomic<const KernelTable*>& current() {
  static std::atomic<const KernelTable*> table{initial_table()};
  return table;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512vnni:
      return "avx512vnni";
    case Isa::avx512:
      return "avx512";
    case Isa::avxvnni:
      return "avxvnni";
    case Isa::avx2:
      return "avx2";
    case Isa::generic:
    default:
      return "generic";
  }
}

bool isa_from_name(const char* name, Isa* isa) {
  for (Isa candidate : {Isa::generic, Isa::avx2, Isa::avxvnni, Isa::avx512, Isa::avx512vnni}) {
    if (std::strcmp(name, isa_name(candidate)) == 0) {
      *isa = candidate;
      return true;
    }
  }
  return false;
}

bool isa_supported(Isa isa) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  switch (isa) {
    case Isa::generic:
      return true;
    case Isa::avx2:
      return kAvx2Kernels.isa == Isa::avx2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("f16c");
    case Isa::avx512:
      // the AVX-512 file also uses AVX2/FMA/F16C instructions (every AVX-512 CPU has them; checked anyway)
      return kAvx512Kernels.isa == Isa::avx512 && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") && isa_supported(Isa::avx2);
    case Isa::avxvnni:
      // VNNI is detected on its own: AVX-VNNI exists without AVX-512 (Alder Lake), and AVX-512 without VNNI (Skylake-X)
      return kAvxVnniKernels.isa == Isa::avxvnni && __builtin_cpu_supports("avxvnni") && isa_supported(Isa::avx2);
    case Isa::avx512vnni:
      return kAvx512VnniKernels.isa == Isa::avx512vnni && __builtin_cpu_supports("avx512vnni") &&
             isa_supported(Isa::avx512);
  }
  return false;
#else
  return isa == Isa::generic;
#endif
}

Isa best_isa() {
  for (Isa isa : {Isa::avx512vnni, Isa::avx512, Isa::avxvnni, Isa::avx2})
    if (isa_supported(isa)) return isa;
  return Isa::generic;
}

const KernelTable& kernels() { return *current().load(std::memory_order_acquire); }

Isa current_isa() { return kernels().isa; }

bool set_isa(Isa isa) {
  if (!isa_supported(isa)) return false;
  current().store(table_for(isa), std::memory_order_release);
  return true;
}

// The bf16-dot kernel runs under an AVX-512 table only (a forced AVX2 or generic path keeps the portable one), on a
// CPU with AVX512-BF16 (Cooper Lake, Sapphire Rapids, Zen 4 and later; not Ice Lake or Skylake-X).
const PrepackedDotKernels* prepacked_dot_kernels() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  static const bool cpu_has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") != 0;
  }();
  const Isa isa = current_isa();
  if (kAvx512Bf16DotKernels != nullptr && cpu_has && (isa == Isa::avx512 || isa == Isa::avx512vnni)) {
    return kAvx512Bf16DotKernels;
  }
#endif
  return nullptr;
}

int requested_isa() { return requested_from_env(); }

int thread_count() { return pool_size(); }

}  // namespace sqap
