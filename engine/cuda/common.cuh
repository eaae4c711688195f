// Launch helpers and block reductions shared by the backend's kernels.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "engine/cuda/check.h"
#include "engine/cuda/cuda_backend.h"

namespace ss::cuda {

constexpr int kThreads = 256;  // threads per block of every kernel (a multiple of 32)

// Blocks for a grid-stride loop over n items (capped: each thread then takes several).
inline unsigned grid_for(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return unsigned(std::clamp<int64_t>(blocks, 1, int64_t(1) << 20));
}

#define SS_GRID_STRIDE(i, n)                                                \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += int64_t(blockDim.x) * gridDim.x)

// The sum of v over the block, returned to every thread. Every thread of the block must call it.
__device__ inline double block_sum(double v) {
  __shared__ double part[32];
  __shared__ double total;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) part[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < int(blockDim.x >> 5) ? part[lane] : 0.0;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    if (lane == 0) total = v;
  }
  __syncthreads();
  const double r = total;
  __syncthreads();
  return r;
}

// The largest v over the block and the smallest index holding it (the first maximum wins, as
// on the CPU), returned to every thread. Threads with nothing pass idx = INT64_MAX.
__device__ inline void block_argmax(float& v, int64_t& idx) {
  __shared__ float pv[32];
  __shared__ int64_t pi[32];
  auto combine = [](float& a, int64_t& ia, float b, int64_t ib) {
    if (ib == INT64_MAX) return;
    if (ia == INT64_MAX || b > a || (b == a && ib < ia)) {
      a = b;
      ia = ib;
    }
  };
  for (int o = 16; o > 0; o >>= 1) {
    const float b = __shfl_down_sync(0xffffffffu, v, o);
    const int64_t ib = __shfl_down_sync(0xffffffffu, idx, o);
    combine(v, idx, b, ib);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) {
    pv[warp] = v;
    pi[warp] = idx;
  }
  __syncthreads();
  if (warp == 0) {
    const bool has = lane < int(blockDim.x >> 5);
    v = has ? pv[lane] : 0.f;
    idx = has ? pi[lane] : INT64_MAX;
    for (int o = 16; o > 0; o >>= 1) {
      const float b = __shfl_down_sync(0xffffffffu, v, o);
      const int64_t ib = __shfl_down_sync(0xffffffffu, idx, o);
      combine(v, idx, b, ib);
    }
    if (lane == 0) {
      pv[0] = v;
      pi[0] = idx;
    }
  }
  __syncthreads();
  v = pv[0];
  idx = pi[0];
  __syncthreads();
}

}  // namespace ss::cuda
