// Max and average pooling on the device, one thread per output (forward) or per input element
// (backward). The backward kernels gather over the windows that cover an input element, in the
// order the CPU backend accumulates them, so both devices give bit-identical gradients (B26) and
// no atomics are needed.
#include <cmath>

#include "engine/cuda/allocator.h"
#include "engine/cuda/common.cuh"

namespace ss::cuda {

namespace {
// The outputs along one axis whose window covers input position i: [lo, hi].
__device__ inline void covering(int64_t i, int64_t k, int64_t s, int64_t p, int64_t n_out,
                                int64_t& lo, int64_t& hi) {
  const int64_t first = i + p - k + 1;
  lo = first <= 0 ? 0 : (first + s - 1) / s;
  hi = min((i + p) / s, n_out - 1);
}

// The first maximum in row-major window order wins ties (case B26); argmax is flat in x.
__global__ void max_pool_forward_kernel(Pool2dArgs a, const float* x, float* out, int64_t* argmax) {
  const int64_t HoWo = a.Ho * a.Wo;
  SS_GRID_STRIDE(o, a.N * a.C * HoWo) {
    const int64_t p = o / HoWo, oh = (o % HoWo) / a.Wo, ow = o % a.Wo;
    const float* in = x + p * a.H * a.W;
    float m = -INFINITY;
    int64_t am = -1;
    for (int64_t i = 0; i < a.kh; ++i) {
      const int64_t ih = oh * a.sh - a.ph + i;
      if (ih < 0 || ih >= a.H) continue;
      for (int64_t j = 0; j < a.kw; ++j) {
        const int64_t iw = ow * a.sw - a.pw + j;
        if (iw < 0 || iw >= a.W) continue;
        const float v = in[ih * a.W + iw];
        if (am < 0 || v > m) {
          m = v;
          am = ih * a.W + iw;
        }
      }
    }
    out[o] = m;
    argmax[o] = p * a.H * a.W + am;
  }
}

// dx[e] = sum of dout[o] over the outputs o (in increasing order) whose argmax is e.
__global__ void max_pool_backward_kernel(Pool2dArgs a, const float* dout, const int64_t* argmax,
                                         float* dx) {
  const int64_t HW = a.H * a.W;
  SS_GRID_STRIDE(e, a.N * a.C * HW) {
    const int64_t p = e / HW, ih = (e % HW) / a.W, iw = e % a.W;
    int64_t oh0, oh1, ow0, ow1;
    covering(ih, a.kh, a.sh, a.ph, a.Ho, oh0, oh1);
    covering(iw, a.kw, a.sw, a.pw, a.Wo, ow0, ow1);
    float s = 0.f;
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow) {
        const int64_t o = (p * a.Ho + oh) * a.Wo + ow;
        if (argmax[o] == e) s += dout[o];
      }
    dx[e] = s;
  }
}

// Padded cells count in the divisor (count_include_pad); inv = 1 / (kh * kw).
__global__ void avg_pool_forward_kernel(Pool2dArgs a, const float* x, float inv, float* out) {
  const int64_t HoWo = a.Ho * a.Wo;
  SS_GRID_STRIDE(o, a.N * a.C * HoWo) {
    const int64_t p = o / HoWo, oh = (o % HoWo) / a.Wo, ow = o % a.Wo;
    const float* in = x + p * a.H * a.W;
    float s = 0.f;
    for (int64_t i = 0; i < a.kh; ++i) {
      const int64_t ih = oh * a.sh - a.ph + i;
      if (ih < 0 || ih >= a.H) continue;
      for (int64_t j = 0; j < a.kw; ++j) {
        const int64_t iw = ow * a.sw - a.pw + j;
        if (iw >= 0 && iw < a.W) s += in[ih * a.W + iw];
      }
    }
    out[o] = s * inv;
  }
}

__global__ void avg_pool_backward_kernel(Pool2dArgs a, const float* dout, float inv, float* dx) {
  const int64_t HW = a.H * a.W;
  SS_GRID_STRIDE(e, a.N * a.C * HW) {
    const int64_t p = e / HW, ih = (e % HW) / a.W, iw = e % a.W;
    int64_t oh0, oh1, ow0, ow1;
    covering(ih, a.kh, a.sh, a.ph, a.Ho, oh0, oh1);
    covering(iw, a.kw, a.sw, a.pw, a.Wo, ow0, ow1);
    float s = 0.f;
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow)
        s += __fmul_rn(dout[(p * a.Ho + oh) * a.Wo + ow], inv);  // no FMA: as the CPU rounds
    dx[e] = s;
  }
}
}  // namespace

void CudaBackend::max_pool2d_forward(const Pool2dArgs& a, const Tensor& x, Tensor& out,
                                     std::vector<int64_t>& argmax) {
  const int64_t n = out.numel();
  argmax.assign(size_t(n), 0);
  if (!n) return;
  DeviceBuffer dargmax(size_t(n) * sizeof(int64_t));
  max_pool_forward_kernel<<<grid_for(n), kThreads, 0, stream()>>>(a, fptr(x), fptr(out),
                                                                  dargmax.as<int64_t>());
  CUDA_CHECK_LAUNCH();
  CUDA_CHECK(cudaMemcpy(argmax.data(), dargmax.as<int64_t>(), size_t(n) * sizeof(int64_t),
                        cudaMemcpyDeviceToHost));
}

void CudaBackend::max_pool2d_backward(const Pool2dArgs& a, const Tensor& dout,
                                      const std::vector<int64_t>& argmax, Tensor& dinp) {
  const int64_t n = dinp.numel();
  if (!n) return;
  DeviceBuffer dargmax(argmax.size() * sizeof(int64_t));
  if (!argmax.empty())
    CUDA_CHECK(cudaMemcpy(dargmax.as<int64_t>(), argmax.data(), argmax.size() * sizeof(int64_t),
                          cudaMemcpyHostToDevice));
  max_pool_backward_kernel<<<grid_for(n), kThreads, 0, stream()>>>(
      a, fptr(dout), dargmax.as<int64_t>(), fptr(dinp));
  CUDA_CHECK_LAUNCH();
}

void CudaBackend::avg_pool2d_forward(const Pool2dArgs& a, const Tensor& x, Tensor& out) {
  const int64_t n = out.numel();
  if (!n) return;
  const float inv = 1.f / float(a.kh * a.kw);
  avg_pool_forward_kernel<<<grid_for(n), kThreads, 0, stream()>>>(a, fptr(x), inv, fptr(out));
  CUDA_CHECK_LAUNCH();
}

void CudaBackend::avg_pool2d_backward(const Pool2dArgs& a, const Tensor& dout, Tensor& dinp) {
  const int64_t n = dinp.numel();
  if (!n) return;
  const float inv = 1.f / float(a.kh * a.kw);
  avg_pool_backward_kernel<<<grid_for(n), kThreads, 0, stream()>>>(a, fptr(dout), inv, fptr(dinp));
  CUDA_CHECK_LAUNCH();
}

}  // namespace ss::cuda
