// The caching device allocator behind CudaBackend::allocate / deallocate.
//
// Sizes are rounded up to buckets of four per power of two (2^k * {1, 1.25, 1.5, 1.75}, at least
// 512 bytes), so at most a quarter of a block is wasted and blocks of nearby sizes are shared.
// A free block is reused only for its own bucket. When cudaMalloc runs out of memory the cache
// is returned to the driver and the call retried once.
#include "engine/cuda/allocator.h"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/cuda/check.h"
#include "engine/cuda/device.h"

namespace ss::cuda {

namespace {
constexpr size_t kMinBlock = 512;

size_t bucket_size(size_t bytes) {
  if (bytes <= kMinBlock) return kMinBlock;
  const size_t k = std::bit_floor(bytes);
  const size_t step = k / 4;
  return (bytes + step - 1) / step * step;
}

struct Pool {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free;  // bucket size -> free blocks
  CudaMemoryStats stats;
};

// Never destroyed: tensors that outlive main() still return their blocks here, and freeing
// device memory after the runtime has shut down would fail.
Pool& pool() {
  static Pool* p = new Pool();
  return *p;
}

// Returns every cached block to the driver; the caller holds the lock.
void release_cached(Pool& p) {
  for (auto& [size, blocks] : p.free)
    for (void* b : blocks) CUDA_CHECK(cudaFree(b));
  p.free.clear();
  p.stats.cached_bytes = 0;
}

std::string mib(int64_t bytes) {
  return std::to_string(bytes / (1 << 20)) + " MiB";
}
}  // namespace

void* device_alloc(size_t bytes) {
  const size_t size = bucket_size(bytes);
  Pool& p = pool();
  std::lock_guard<std::mutex> lk(p.mu);
  auto it = p.free.find(size);
  if (it != p.free.end() && !it->second.empty()) {
    void* b = it->second.back();
    it->second.pop_back();
    p.stats.cached_bytes -= int64_t(size);
    p.stats.in_use_bytes += int64_t(size);
    return b;
  }
  void* b = nullptr;
  cudaError_t err = cudaMalloc(&b, size);
  if (err == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();  // clear the sticky-free error before retrying
    release_cached(p);
    err = cudaMalloc(&b, size);
  }
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    throw std::runtime_error("[cuda] cudaMalloc of " + std::to_string(size) + " bytes failed (" +
                             cudaGetErrorString(err) + "); in use " + mib(p.stats.in_use_bytes) +
                             " after emptying the cache");
  }
  p.stats.malloc_calls += 1;
  p.stats.malloc_bytes += int64_t(size);
  p.stats.in_use_bytes += int64_t(size);
  p.stats.peak_bytes = std::max(p.stats.peak_bytes, p.stats.in_use_bytes + p.stats.cached_bytes);
  return b;
}

void device_free(void* ptr, size_t bytes) {
  const size_t size = bucket_size(bytes);
  Pool& p = pool();
  std::lock_guard<std::mutex> lk(p.mu);
  p.free[size].push_back(ptr);
  p.stats.in_use_bytes -= int64_t(size);
  p.stats.cached_bytes += int64_t(size);
}

}  // namespace ss::cuda

namespace ss {

CudaMemoryStats cuda_memory_stats() {
  auto& p = cuda::pool();
  std::lock_guard<std::mutex> lk(p.mu);
  return p.stats;
}

void cuda_synchronize() {
  CUDA_CHECK(cudaDeviceSynchronize());
}

void cuda_empty_cache() {
  CUDA_CHECK(cudaDeviceSynchronize());
  auto& p = cuda::pool();
  std::lock_guard<std::mutex> lk(p.mu);
  cuda::release_cached(p);
}

}  // namespace ss
