#include "engine/cpu/blas_setup.h"

#include <cblas.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace ss::cpu {

namespace {
constexpr const char* kMarker = "SELFSUP_BLAS_REEXEC";

bool is_generic(const char* core) {
  return core && (!std::strcmp(core, "Prescott") || !std::strcmp(core, "prescott") ||
                  !std::strcmp(core, "Core2") || !std::strcmp(core, "Nehalem"));
}
}  // namespace

void select_blas_kernels(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") || std::getenv(kMarker)) return;
  if (!is_generic(openblas_get_corename())) return;
  const char* pick = nullptr;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"))
    pick = "SkylakeX";
  else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    pick = "Haswell";
  if (!pick) return;
  setenv("OPENBLAS_CORETYPE", pick, 1);
  setenv(kMarker, pick, 1);
  execv("/proc/self/exe", argv);
  // exec failed: carry on with the generic kernels.
  std::fprintf(stderr, "[blas] could not restart with OPENBLAS_CORETYPE=%s; using %s kernels\n",
               pick, openblas_get_corename());
}

std::string blas_description() {
  std::string s = std::string("OpenBLAS core ") + openblas_get_corename();
  if (const char* m = std::getenv(kMarker))
    s += std::string(" (OPENBLAS_CORETYPE=") + m +
         " chosen by selfsup: the library did not recognise this CPU)";
  else if (const char* c = std::getenv("OPENBLAS_CORETYPE"))
    s += std::string(" (OPENBLAS_CORETYPE=") + c + " from the environment)";
  return s;
}

}  // namespace ss::cpu
