// The engine's own fork-join pool for elementwise, reduction and packing work.
//
// Thread policy (case B29): the pool and OpenBLAS use the same number of threads, and never
// run at the same time: parallel_for blocks the caller until its work is done, and GEMMs are
// only issued from outside parallel regions. Inside a parallel region a GEMM runs on one
// thread (see cpu::gemm_in_parallel_region).
#pragma once
#include <cstdint>
#include <functional>

namespace ss::cpu {

// Number of threads used by the pool and by OpenBLAS (set once, at first use, from
// SELFSUP_THREADS or the hardware; see set_num_threads).
int num_threads();
void set_num_threads(int n);
// True on a pool worker or on the caller while it takes part in a parallel_for.
bool in_parallel_region();

// Calls fn(begin, end) on disjoint chunks covering [0, n), each at least `grain` long.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

// One line that states the thread policy, for logs.
const char* thread_policy();

}  // namespace ss::cpu
