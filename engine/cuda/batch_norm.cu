// Batch norm on the device over x viewed as [N, C, S]: one block per channel for the
// statistics and the backward sums, one thread per element for the normalisation itself.
//
//   xhat = (x - mean_c) * invstd_c,   y = weight_c * xhat + bias_c
// Backward with batch statistics (M = N * S values per channel):
//   dbias_c = sum dout,  dweight_c = sum dout * xhat,
//   dx = weight_c * invstd_c / M * (M * dout - dbias_c - xhat * dweight_c)
// With a residual and a ReLU fused on (out = max(y + r, 0)) the backward reads dout as 0 where
// out <= 0, as the CPU does.
#include <cmath>

#include "engine/cuda/allocator.h"
#include "engine/cuda/common.cuh"

namespace ss::cuda {

namespace {
// Element t of channel c's M = N * S values.
__device__ inline int64_t channel_index(int64_t t, int64_t c, int64_t C, int64_t S) {
  return ((t / S) * C + c) * S + t % S;
}

// Two passes in double, as on the CPU: the mean, then the centred second moment.
__global__ void bn_stats_kernel(const float* x, int64_t N, int64_t C, int64_t S, double eps,
                                float* mean, float* var, float* invstd) {
  const int64_t c = blockIdx.x, M = N * S;
  double s = 0;
  for (int64_t t = threadIdx.x; t < M; t += blockDim.x) s += x[channel_index(t, c, C, S)];
  const double m = block_sum(s) / double(M);
  double q = 0;
  for (int64_t t = threadIdx.x; t < M; t += blockDim.x) {
    const double d = x[channel_index(t, c, C, S)] - m;
    q += d * d;
  }
  const double v = block_sum(q) / double(M);
  if (threadIdx.x == 0) {
    mean[c] = float(m);
    var[c] = float(v);
    invstd[c] = float(1.0 / sqrt(v + eps));
  }
}

__global__ void bn_forward_kernel(const float* x, int64_t n, int64_t C, int64_t S, const float* w,
                                  const float* b, const float* mean, const float* invstd,
                                  const float* residual, bool relu, float* out) {
  SS_GRID_STRIDE(i, n) {
    const int64_t c = (i / S) % C;
    const float scale = invstd[c] * (w ? w[c] : 1.f);
    const float shift = (b ? b[c] : 0.f) - mean[c] * scale;
    float v = x[i] * scale + shift;
    if (residual) v += residual[i];
    out[i] = relu ? (v > 0.f ? v : 0.f) : v;
  }
}

// dout, or 0 where a fused ReLU's output (relu_out, may be null) is not positive.
__device__ inline float masked_grad(const float* g, const float* relu_out, int64_t k) {
  return relu_out && !(relu_out[k] > 0.f) ? 0.f : g[k];
}

// sums[c] = sum dout, sums[C + c] = sum dout * xhat; also dbias / dweight when wanted.
__global__ void bn_backward_sums_kernel(const float* x, const float* g, const float* relu_out,
                                        int64_t N, int64_t C, int64_t S, const float* mean,
                                        const float* invstd, double* sums, float* dweight,
                                        float* dbias) {
  const int64_t c = blockIdx.x, M = N * S;
  const double m = mean[c], is = invstd[c];
  double sg = 0, sgx = 0;
  for (int64_t t = threadIdx.x; t < M; t += blockDim.x) {
    const int64_t k = channel_index(t, c, C, S);
    const float gk = masked_grad(g, relu_out, k);
    sg += gk;
    sgx += gk * (x[k] - m) * is;
  }
  sg = block_sum(sg);
  sgx = block_sum(sgx);
  if (threadIdx.x == 0) {
    sums[c] = sg;
    sums[C + c] = sgx;
    if (dbias) dbias[c] = float(sg);
    if (dweight) dweight[c] = float(sgx);
  }
}

__global__ void bn_backward_dx_kernel(const float* x, const float* g, const float* relu_out,
                                      int64_t n, int64_t C, int64_t S, const float* w,
                                      const float* mean, const float* invstd, const double* sums,
                                      bool train, float* d) {
  const double M = double(n / C);
  SS_GRID_STRIDE(i, n) {
    const int64_t c = (i / S) % C;
    const float m = mean[c], is = invstd[c];
    const float a = float((w ? double(w[c]) : 1.0) * double(is));
    const float b = float(train ? sums[c] / M : 0.0), q = float(train ? sums[C + c] / M : 0.0);
    d[i] = a * (masked_grad(g, relu_out, i) - b - (x[i] - m) * is * q);
  }
}
}  // namespace

void CudaBackend::batch_norm_stats(const Tensor& x, int64_t N, int64_t C, int64_t S, double eps,
                                   Tensor& mean, Tensor& var_biased, Tensor& invstd) {
  if (!C) return;
  bn_stats_kernel<<<unsigned(C), kThreads, 0, stream()>>>(fptr(x), N, C, S, eps, fptr(mean),
                                                          fptr(var_biased), fptr(invstd));
  CUDA_CHECK_LAUNCH();
}

void CudaBackend::batch_norm_forward(const Tensor& x, int64_t N, int64_t C, int64_t S,
                                     const Tensor& weight, const Tensor& bias, const Tensor& mean,
                                     const Tensor& invstd, const Tensor& residual, bool relu,
                                     Tensor& out) {
  const int64_t n = N * C * S;
  if (!n) return;
  bn_forward_kernel<<<grid_for(n), kThreads, 0, stream()>>>(fptr(x), n, C, S, fptr(weight),
                                                            fptr(bias), fptr(mean), fptr(invstd),
                                                            fptr(residual), relu, fptr(out));
  CUDA_CHECK_LAUNCH();
}

void CudaBackend::batch_norm_backward(const Tensor& x, const Tensor& dout, const Tensor& relu_out,
                                      int64_t N, int64_t C, int64_t S, const Tensor& weight,
                                      const Tensor& mean, const Tensor& invstd, bool train,
                                      Tensor* dinp, Tensor* dweight, Tensor* dbias) {
  if (!C) return;
  DeviceBuffer sums(size_t(2 * C) * sizeof(double));
  bn_backward_sums_kernel<<<unsigned(C), kThreads, 0, stream()>>>(
      fptr(x), fptr(dout), fptr(relu_out), N, C, S, fptr(mean), fptr(invstd), sums.as<double>(),
      dweight ? fptr(*dweight) : nullptr, dbias ? fptr(*dbias) : nullptr);
  CUDA_CHECK_LAUNCH();
  const int64_t n = N * C * S;
  if (!dinp || !n) return;
  bn_backward_dx_kernel<<<grid_for(n), kThreads, 0, stream()>>>(
      fptr(x), fptr(dout), fptr(relu_out), n, C, S, fptr(weight), fptr(mean), fptr(invstd),
      sums.as<double>(), train, fptr(*dinp));
  CUDA_CHECK_LAUNCH();
}

}  // namespace ss::cuda
