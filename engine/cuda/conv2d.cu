// Conv2d on the device: im2col / col2im kernels and cuBLAS GEMMs over chunks of images.
//
// Per image b of a chunk, with col[b] [Cin*kh*kw, Ho*Wo]:
//   forward:  out[b] [Cout, Ho*Wo] = weight [Cout, Cin*kh*kw] x col[b]   (one strided-batched GEMM)
//   dinp:     dcol[b] = weight^T x dout[b], then col2im (a gather: no atomics, deterministic)
//   dweight:  dweight += g [Cout, B*Ho*Wo] x col^T, with dout gathered into g and col laid out
//             [Cin*kh*kw, B*Ho*Wo], one large GEMM per chunk as on the CPU.
// A 1x1 convolution with stride 1 and no padding reads x (and writes dinp) in place of col.
#include <algorithm>

#include "engine/cuda/allocator.h"
#include "engine/cuda/common.cuh"

namespace ss::cuda {

namespace {
constexpr int64_t kColBudget = int64_t(1) << 25;  // floats of col per chunk (128 MiB)

int64_t chunk_images(const Conv2dArgs& a) {
  const int64_t per_image = a.Cin * a.kh * a.kw * a.Ho * a.Wo;
  return std::clamp<int64_t>(kColBudget / std::max<int64_t>(1, per_image), 1, a.N);
}

bool is_pointwise(const Conv2dArgs& a) {
  return a.kh == 1 && a.kw == 1 && a.stride == 1 && a.pad == 0;
}

// col[r * ld_r + b * ld_b + (oh, ow)] = x[n0 + b, c, oh*s - p + i, ow*s - p + j] (0 outside),
// with r = (c, i, j).
__global__ void im2col_kernel(Conv2dArgs a, const float* x, int64_t n0, int64_t B, float* col,
                              int64_t ld_r, int64_t ld_b) {
  const int64_t HoWo = a.Ho * a.Wo, K = a.Cin * a.kh * a.kw;
  SS_GRID_STRIDE(t, K * B * HoWo) {
    const int64_t hw = t % HoWo, b = (t / HoWo) % B, r = t / (HoWo * B);
    const int64_t c = r / (a.kh * a.kw), i = (r / a.kw) % a.kh, j = r % a.kw;
    const int64_t ih = (hw / a.Wo) * a.stride - a.pad + i;
    const int64_t iw = (hw % a.Wo) * a.stride - a.pad + j;
    float v = 0.f;
    if (ih >= 0 && ih < a.H && iw >= 0 && iw < a.W)
      v = x[((n0 + b) * a.Cin + c) * a.H * a.W + ih * a.W + iw];
    col[r * ld_r + b * ld_b + hw] = v;
  }
}

// dx[n0 + b, c, ih, iw] = sum over (i, j) of the col entry that im2col read it into, summed in
// the CPU's (i, j) order.
__global__ void col2im_kernel(Conv2dArgs a, const float* col, int64_t n0, int64_t B, float* dx,
                              int64_t ld_r, int64_t ld_b) {
  const int64_t HW = a.H * a.W;
  SS_GRID_STRIDE(t, B * a.Cin * HW) {
    const int64_t iw = t % a.W, ih = (t / a.W) % a.H, c = (t / HW) % a.Cin, b = t / (HW * a.Cin);
    float s = 0.f;
    for (int64_t i = 0; i < a.kh; ++i) {
      const int64_t th = ih + a.pad - i;
      if (th < 0 || th % a.stride) continue;
      const int64_t oh = th / a.stride;
      if (oh >= a.Ho) continue;
      for (int64_t j = 0; j < a.kw; ++j) {
        const int64_t tw = iw + a.pad - j;
        if (tw < 0 || tw % a.stride) continue;
        const int64_t ow = tw / a.stride;
        if (ow >= a.Wo) continue;
        s += col[((c * a.kh + i) * a.kw + j) * ld_r + b * ld_b + oh * a.Wo + ow];
      }
    }
    dx[(n0 + b) * a.Cin * HW + c * HW + ih * a.W + iw] = s;
  }
}

// out[n, co, :] += bias[co]
__global__ void add_bias_kernel(float* out, const float* bias, int64_t n, int64_t Cout,
                                int64_t HoWo) {
  SS_GRID_STRIDE(i, n) out[i] += bias[(i / HoWo) % Cout];
}

// g[co, b*HoWo + k] = dout[n0 + b, co, k]
__global__ void gather_dout_kernel(const float* dout, int64_t n0, int64_t B, int64_t Cout,
                                   int64_t HoWo, float* g) {
  SS_GRID_STRIDE(t, B * Cout * HoWo) {
    const int64_t k = t % HoWo, b = (t / HoWo) % B, co = t / (HoWo * B);
    g[t] = dout[((n0 + b) * Cout + co) * HoWo + k];
  }
}

// dbias[co] = sum over n and (h, w) of dout[n, co, h, w]; one block per channel.
__global__ void dbias_kernel(const float* dout, int64_t N, int64_t Cout, int64_t HoWo,
                             float* dbias) {
  const int64_t co = blockIdx.x;
  double s = 0;
  for (int64_t t = threadIdx.x; t < N * HoWo; t += blockDim.x)
    s += dout[((t / HoWo) * Cout + co) * HoWo + t % HoWo];
  s = block_sum(s);
  if (threadIdx.x == 0) dbias[co] = float(s);
}
}  // namespace

void CudaBackend::conv2d_forward(const Conv2dArgs& a, const Tensor& x, const Tensor& weight,
                                 const Tensor& bias, Tensor& out) {
  const int64_t K = a.Cin * a.kh * a.kw, HoWo = a.Ho * a.Wo;
  const bool direct = is_pointwise(a);
  const int64_t B = direct ? a.N : chunk_images(a);
  DeviceBuffer col(direct ? 0 : size_t(K * B * HoWo) * sizeof(float));
  const float* px = fptr(x);
  for (int64_t n0 = 0; n0 < a.N; n0 += B) {
    const int64_t nb = std::min(B, a.N - n0);
    const float* c = px + n0 * a.Cin * a.H * a.W;
    if (!direct) {
      im2col_kernel<<<grid_for(K * nb * HoWo), kThreads, 0, stream()>>>(
          a, px, n0, nb, col.as<float>(), HoWo, K * HoWo);
      CUDA_CHECK_LAUNCH();
      c = col.as<float>();
    }
    gemm_strided(false, false, a.Cout, HoWo, K, 1.f, fptr(weight), 0, c, K * HoWo, 0.f,
                 fptr(out) + n0 * a.Cout * HoWo, a.Cout * HoWo, nb);
  }
  if (bias.defined()) {
    const int64_t n = out.numel();
    add_bias_kernel<<<grid_for(n), kThreads, 0, stream()>>>(fptr(out), fptr(bias), n, a.Cout, HoWo);
    CUDA_CHECK_LAUNCH();
  }
}

void CudaBackend::conv2d_backward(const Conv2dArgs& a, const Tensor& x, const Tensor& weight,
                                  const Tensor& dout, Tensor* dinp, Tensor* dweight,
                                  Tensor* dbias) {
  const int64_t K = a.Cin * a.kh * a.kw, HoWo = a.Ho * a.Wo, CHW = a.Cin * a.H * a.W;
  const bool direct = is_pointwise(a);
  const int64_t B = chunk_images(a);
  const float* pg = fptr(dout);

  if (dinp) {
    // dcol[b] [K, HoWo] = weight^T [K, Cout] x dout[b] [Cout, HoWo], then onto the input.
    const int64_t Bd = direct ? a.N : B;
    DeviceBuffer dcol(direct ? 0 : size_t(K * Bd * HoWo) * sizeof(float));
    for (int64_t n0 = 0; n0 < a.N; n0 += Bd) {
      const int64_t nb = std::min(Bd, a.N - n0);
      float* dst = direct ? fptr(*dinp) + n0 * CHW : dcol.as<float>();
      gemm_strided(true, false, K, HoWo, a.Cout, 1.f, fptr(weight), 0, pg + n0 * a.Cout * HoWo,
                   a.Cout * HoWo, 0.f, dst, K * HoWo, nb);
      if (direct) continue;
      col2im_kernel<<<grid_for(nb * CHW), kThreads, 0, stream()>>>(a, dcol.as<float>(), n0, nb,
                                                                   fptr(*dinp), HoWo, K * HoWo);
      CUDA_CHECK_LAUNCH();
    }
  }

  if (dweight) {
    // dweight [Cout, K] (+)= g [Cout, nb*HoWo] x col^T, col laid out [K, nb*HoWo].
    DeviceBuffer col(size_t(K * B * HoWo) * sizeof(float));
    DeviceBuffer g(size_t(a.Cout * B * HoWo) * sizeof(float));
    for (int64_t n0 = 0; n0 < a.N; n0 += B) {
      const int64_t nb = std::min(B, a.N - n0);
      gather_dout_kernel<<<grid_for(nb * a.Cout * HoWo), kThreads, 0, stream()>>>(
          pg, n0, nb, a.Cout, HoWo, g.as<float>());
      CUDA_CHECK_LAUNCH();
      im2col_kernel<<<grid_for(K * nb * HoWo), kThreads, 0, stream()>>>(
          a, fptr(x), n0, nb, col.as<float>(), nb * HoWo, HoWo);
      CUDA_CHECK_LAUNCH();
      gemm_strided(false, true, a.Cout, K, nb * HoWo, 1.f, g.as<float>(), 0, col.as<float>(), 0,
                   n0 == 0 ? 0.f : 1.f, fptr(*dweight), 0, 1);
    }
  }

  if (dbias) {
    dbias_kernel<<<unsigned(a.Cout), kThreads, 0, stream()>>>(pg, a.N, a.Cout, HoWo, fptr(*dbias));
    CUDA_CHECK_LAUNCH();
  }
}

}  // namespace ss::cuda
