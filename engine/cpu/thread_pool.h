// The engine's own fork-join pool for elementwise, reduction and packing work.
//
// Thread policy (case B29): the pool and OpenBLAS use the same number of threads, and never
// run at the same time: parallel_for blocks the caller until its work is done, and GEMMs are
// only issued from outside parallel regions, with one exception: parallel_for_gemm, whose parts
// each run their own GEMMs while OpenBLAS is held at one thread.
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

// parallel_for whose parts may call GEMMs: OpenBLAS is set to one thread for its duration, so
// each part's GEMMs run on that part's own core (still one thread per core). Used where many
// independent mid-sized GEMMs scale better than one GEMM split by OpenBLAS (conv2d per image
// group).
void parallel_for_gemm(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);
// True inside a parallel_for_gemm part: a GEMM here is allowed and runs single-threaded.
bool gemm_allowed_in_region();

// One line that states the thread policy, for logs.
const char* thread_policy();

}  // namespace ss::cpu
