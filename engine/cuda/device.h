// What the apps and tests may ask of the CUDA device, in every build: memory counters of the
// caching allocator, a device-wide synchronize (for timing) and emptying the cache. Builds
// without CUDA get inline stand-ins (zero counters, no-ops), so callers need no #ifdef.
#pragma once
#include <cstdint>

namespace ss {

struct CudaMemoryStats {
  int64_t malloc_calls = 0;  // cudaMalloc calls the caching allocator has made so far
  int64_t malloc_bytes = 0;  // bytes those calls obtained
  int64_t in_use_bytes = 0;  // held by live tensors and scratch buffers
  int64_t cached_bytes = 0;  // freed blocks kept in the free lists for reuse
  int64_t peak_bytes = 0;    // the largest in_use + cached seen
};

#ifdef SELFSUP_WITH_CUDA
CudaMemoryStats cuda_memory_stats();
void cuda_synchronize();  // waits for all queued device work; throws on a device error
void cuda_empty_cache();  // returns every cached block to the driver (cudaFree)
#else
inline CudaMemoryStats cuda_memory_stats() {
  return {};
}
inline void cuda_synchronize() {}
inline void cuda_empty_cache() {}
#endif

}  // namespace ss
