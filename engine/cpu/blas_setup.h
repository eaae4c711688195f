// Choosing OpenBLAS's kernels for this CPU.
//
// Debian's OpenBLAS picks its kernels at load time from the CPU model. On processors newer than
// the library it falls back to the generic "Prescott" (SSE3) kernels, several times slower than
// the AVX2 or AVX-512 ones the CPU runs. The library reads OPENBLAS_CORETYPE only when it is
// loaded, so a program that wants other kernels sets the variable and restarts itself.
#pragma once
#include <string>

namespace ss::cpu {

// When OPENBLAS_CORETYPE is unset and OpenBLAS chose the generic kernels although the CPU has
// AVX-512 (SkylakeX kernels) or AVX2 + FMA (Haswell kernels), sets OPENBLAS_CORETYPE and
// re-executes the program with the same arguments (at most once). Returns normally otherwise.
// The start-up GEMM self-check (case B30) then verifies the chosen kernels.
void select_blas_kernels(char** argv);

// "OpenBLAS 0.3.21 ... core SkylakeX (OPENBLAS_CORETYPE=SkylakeX set by selfsup)", for logs.
std::string blas_description();

}  // namespace ss::cpu
