// Conv2d on the CPU: 3x3 stride-1 layers with enough channels take Winograd F(4x4, 3x3) or
// F(2x2, 3x3) (winograd.h: GEMMs on transformed tiles, 4x or 2.25x fewer multiplies); the rest,
// im2col over a chunk of images, then one large GEMM per chunk.
//
// For a chunk of B images the columns are col [Cin*kh*kw, B*Ho*Wo]; then
//   forward:  out_chunk [Cout, B*Ho*Wo] = weight [Cout, Cin*kh*kw] x col
//   backward: dweight += dout_chunk x col^T,   dcol = weight^T x dout_chunk, then col2im.
// Chunks are sized so that col stays near kColBudget elements (about 2 MiB of float32): the
// packing buffer stays in cache while the GEMM reads it. The images are split into one group
// per thread and the groups run side by side (parallel_for_gemm), each with single-threaded
// GEMMs: on 2 cores this took the 3x3 conv of bench_conv from 55% to about 75% of the sgemm rate
// forward, and from 57% to 63-70% backward. Partial weight gradients are summed in group order,
// so the result depends only on the thread count.
#include <algorithm>
#include <cstring>
#include <vector>

#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/thread_pool.h"
#include "engine/cpu/winograd.h"

namespace ss::cpu {

namespace {
constexpr int64_t kColBudget = int64_t(1) << 19;

int64_t chunk_images(const Conv2dArgs& a) {
  const int64_t per_image = a.Cin * a.kh * a.kw * a.Ho * a.Wo;
  return std::clamp<int64_t>(kColBudget / std::max<int64_t>(1, per_image), 1, a.N);
}

// col[(c, i, j), (b, oh, ow)] = x[n0 + b, c, oh*s - p + i, ow*s - p + j] (0 outside).
template <class T>
void im2col(const Conv2dArgs& a, const T* x, int64_t n0, int64_t B, T* col) {
  const int64_t HoWo = a.Ho * a.Wo, rows = a.Cin * a.kh * a.kw, ld = B * HoWo;
  parallel_for(rows, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t c = r / (a.kh * a.kw), i = (r / a.kw) % a.kh, j = r % a.kw;
      // Output columns whose input column is inside the image: ow in [ow0, ow1).
      const int64_t ow0 = std::clamp<int64_t>((a.pad - j + a.stride - 1) / a.stride, 0, a.Wo);
      const int64_t ow1 =
          std::clamp<int64_t>((a.W + a.pad - j + a.stride - 1) / a.stride, ow0, a.Wo);
      for (int64_t b = 0; b < B; ++b) {
        const T* plane = x + ((n0 + b) * a.Cin + c) * a.H * a.W;
        T* dst = col + r * ld + b * HoWo;
        for (int64_t oh = 0; oh < a.Ho; ++oh) {
          T* d = dst + oh * a.Wo;
          const int64_t ih = oh * a.stride - a.pad + i;
          if (ih < 0 || ih >= a.H) {
            std::fill(d, d + a.Wo, T(0));
            continue;
          }
          std::fill(d, d + ow0, T(0));
          const T* src = plane + ih * a.W - a.pad + j;
          if (a.stride == 1)
            std::memcpy(d + ow0, src + ow0, size_t(ow1 - ow0) * sizeof(T));
          else if (a.stride == 2)  // a constant stride, so that the compiler vectorizes it
            for (int64_t ow = ow0; ow < ow1; ++ow) d[ow] = src[2 * ow];
          else
            for (int64_t ow = ow0; ow < ow1; ++ow) d[ow] = src[ow * a.stride];
          std::fill(d + ow1, d + a.Wo, T(0));
        }
      }
    }
  });
}

// dx[n0 + b, c, ih, iw] += col[(c, i, j), (b, oh, ow)]: the adjoint of im2col. Each task owns
// one input channel, so no two tasks write the same element. The kw rows of one kernel row i
// land on the same input row: column ow of row j lands on iw = stride ow - pad + j, whose phase
// iw mod stride depends only on j. So each j is added, contiguously, into its phase's sums, and
// the phases are then interleaved into the input row once.
template <class T>
void col2im(const Conv2dArgs& a, const T* col, int64_t n0, int64_t B, T* dx) {
  const int64_t HoWo = a.Ho * a.Wo, ld = B * HoWo, s = a.stride;
  const int64_t plen = (a.W + s - 1) / s;  // input columns per phase
  parallel_for(a.Cin, 1, [&](int64_t c0, int64_t c1) {
    std::vector<T> phase(size_t(s * plen));
    for (int64_t c = c0; c < c1; ++c)
      for (int64_t i = 0; i < a.kh; ++i)
        for (int64_t b = 0; b < B; ++b) {
          T* plane = dx + ((n0 + b) * a.Cin + c) * a.H * a.W;
          for (int64_t oh = 0; oh < a.Ho; ++oh) {
            const int64_t ih = oh * s - a.pad + i;
            if (ih < 0 || ih >= a.H) continue;
            std::fill(phase.begin(), phase.end(), T(0));
            for (int64_t j = 0; j < a.kw; ++j) {
              const T* src = col + ((c * a.kh + i) * a.kw + j) * ld + b * HoWo + oh * a.Wo;
              // Output columns whose input column is inside the image: ow in [ow0, ow1).
              const int64_t ow0 = std::clamp<int64_t>((a.pad - j + s - 1) / s, 0, a.Wo);
              const int64_t ow1 = std::clamp<int64_t>((a.W + a.pad - j + s - 1) / s, ow0, a.Wo);
              // iw = s (ow + o) + p with 0 <= p < s.
              const int64_t e = j - a.pad, p = ((e % s) + s) % s, o = (e - p) / s;
              T* q = phase.data() + p * plen + (ow0 + o);
              for (int64_t k = 0; k < ow1 - ow0; ++k) q[k] += src[ow0 + k];
            }
            T* d = plane + ih * a.W;
            if (s == 1) {
              for (int64_t k = 0; k < a.W; ++k) d[k] += phase[size_t(k)];
            } else if (s == 2) {  // a constant stride, so that the compiler vectorizes it
              const T* even = phase.data();
              const T* odd = phase.data() + plen;
              for (int64_t k = 0; k < a.W / 2; ++k) {
                d[2 * k] += even[k];
                d[2 * k + 1] += odd[k];
              }
              if (a.W % 2) d[a.W - 1] += even[a.W / 2];
            } else {
              for (int64_t iw = 0; iw < a.W; ++iw) d[iw] += phase[size_t((iw % s) * plen + iw / s)];
            }
          }
        }
  });
}

// out[n0 + b, co, :] = tmp[co, b*HoWo : (b+1)*HoWo] + bias[co]
template <class T>
void scatter_out(const Conv2dArgs& a, const T* tmp, const T* bias, int64_t n0, int64_t B, T* out) {
  const int64_t HoWo = a.Ho * a.Wo;
  parallel_for(B * a.Cout, 4, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / a.Cout, co = t % a.Cout;
      const T* s = tmp + co * B * HoWo + b * HoWo;
      T* d = out + ((n0 + b) * a.Cout + co) * HoWo;
      const T bv = bias ? bias[co] : T(0);
      for (int64_t k = 0; k < HoWo; ++k) d[k] = s[k] + bv;
    }
  });
}

// tmp[co, b*HoWo + k] = dout[n0 + b, co, k]
template <class T>
void gather_dout(const Conv2dArgs& a, const T* dout, int64_t n0, int64_t B, T* tmp) {
  const int64_t HoWo = a.Ho * a.Wo;
  parallel_for(B * a.Cout, 4, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / a.Cout, co = t % a.Cout;
      std::memcpy(tmp + co * B * HoWo + b * HoWo, dout + ((n0 + b) * a.Cout + co) * HoWo,
                  size_t(HoWo) * sizeof(T));
    }
  });
}

Tensor scratch(int64_t n, DType dt) {
  return Tensor::empty({n}, dt);
}

// The split of the N images into `parts` groups (group p is [first(p), first(p + 1))) and the
// number of images packed at once within a group.
struct Groups {
  int64_t parts, chunk;
  Groups(const Conv2dArgs& a)
      : parts(std::min<int64_t>(num_threads(), a.N)), chunk(chunk_images(a)) {}
  int64_t first(const Conv2dArgs& a, int64_t p) const { return a.N * p / parts; }
};
}  // namespace

void CpuBackend::conv2d_forward(const Conv2dArgs& a, const Tensor& x, const Tensor& weight,
                                const Tensor& bias, Tensor& out) {
  if (winograd_applies(a)) {
    dispatch_dtype(x.dtype(), [&](auto t) {
      using T = decltype(t);
      winograd_forward(a, static_cast<const T*>(x.raw_data()),
                       static_cast<const T*>(weight.raw_data()),
                       bias.defined() ? static_cast<const T*>(bias.raw_data()) : nullptr,
                       static_cast<T*>(out.raw_data()));
    });
    return;
  }
  const Groups g(a);
  const int64_t K = a.Cin * a.kh * a.kw, HoWo = a.Ho * a.Wo;
  dispatch_dtype(x.dtype(), [&](auto t) {
    using T = decltype(t);
    std::vector<Tensor> col(size_t(g.parts)), tmp(size_t(g.parts));
    for (int64_t p = 0; p < g.parts; ++p) {
      col[size_t(p)] = scratch(K * g.chunk * HoWo, x.dtype());
      tmp[size_t(p)] = scratch(a.Cout * g.chunk * HoWo, x.dtype());
    }
    const T* px = static_cast<const T*>(x.raw_data());
    const T* pb = bias.defined() ? static_cast<const T*>(bias.raw_data()) : nullptr;
    parallel_for_gemm(g.parts, 1, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        Tensor &c = col[size_t(p)], &o = tmp[size_t(p)];
        for (int64_t n0 = g.first(a, p); n0 < g.first(a, p + 1); n0 += g.chunk) {
          const int64_t nb = std::min(g.chunk, g.first(a, p + 1) - n0);
          im2col(a, px, n0, nb, static_cast<T*>(c.raw_data()));
          gemm(false, false, a.Cout, nb * HoWo, K, 1.0, weight, c, 0.0, o);
          scatter_out(a, static_cast<const T*>(o.raw_data()), pb, n0, nb,
                      static_cast<T*>(out.raw_data()));
        }
      }
    });
  });
}

void CpuBackend::conv2d_backward(const Conv2dArgs& a, const Tensor& x, const Tensor& weight,
                                 const Tensor& dout, Tensor* dinp, Tensor* dweight, Tensor* dbias) {
  const Groups gr(a);
  const int64_t K = a.Cin * a.kh * a.kw, HoWo = a.Ho * a.Wo;
  dispatch_dtype(x.dtype(), [&](auto t) {
    using T = decltype(t);
    const T* px = static_cast<const T*>(x.raw_data());
    const T* pg = static_cast<const T*>(dout.raw_data());
    // Stride 1: the input gradient is itself a convolution of dout with the flipped, transposed
    // kernel (padding k - 1 - p): one dense GEMM with K = Cout*kh*kw instead of a GEMM with
    // K = Cout followed by a col2im scatter.
    const bool dinp_as_conv =
        dinp && a.stride == 1 && a.pad <= a.kh - 1 && a.pad <= a.kw - 1 && a.kh == a.kw;
    if (dinp_as_conv) {
      Tensor wt = Tensor::empty({a.Cin, a.Cout, a.kh, a.kw}, x.dtype());
      const T* pw = static_cast<const T*>(weight.raw_data());
      T* pt = static_cast<T*>(wt.raw_data());
      // wt[ci, co, i, j] = weight[co, ci, kh - 1 - i, kw - 1 - j]
      for (int64_t co = 0; co < a.Cout; ++co)
        for (int64_t ci = 0; ci < a.Cin; ++ci)
          for (int64_t i = 0; i < a.kh; ++i)
            for (int64_t j = 0; j < a.kw; ++j)
              pt[((ci * a.Cout + co) * a.kh + i) * a.kw + j] =
                  pw[((co * a.Cin + ci) * a.kh + (a.kh - 1 - i)) * a.kw + (a.kw - 1 - j)];
      const Conv2dArgs t{a.N, a.Cout, a.Ho, a.Wo, a.Cin, a.kh, a.kw, 1, a.kh - 1 - a.pad, a.H, a.W};
      conv2d_forward(t, dout, wt, Tensor(), *dinp);
    }
    // 3x3 stride 1: the weight gradient as the adjoint of the Winograd forward (winograd.h).
    const bool dweight_winograd = dweight && winograd_applies(a);
    if (dweight_winograd) winograd_weight_grad(a, px, pg, static_cast<T*>(dweight->raw_data()));
    const bool dweight_im2col = dweight && !dweight_winograd;
    const bool dinp_im2col = dinp && !dinp_as_conv;
    // One group of images per thread; each keeps its own buffers and partial dweight.
    std::vector<Tensor> col(size_t(gr.parts)), g(size_t(gr.parts)), dw(size_t(gr.parts));
    const bool im2col_pass = dweight_im2col || dinp_im2col;
    for (int64_t p = 0; im2col_pass && p < gr.parts; ++p) {
      col[size_t(p)] = scratch(K * gr.chunk * HoWo, x.dtype());
      g[size_t(p)] = scratch(a.Cout * gr.chunk * HoWo, x.dtype());
      if (dweight_im2col) dw[size_t(p)] = Tensor::zeros({a.Cout, K}, x.dtype());
    }
    if (dinp_im2col) dinp->fill_(0.0);
    if (im2col_pass)
      parallel_for_gemm(gr.parts, 1, [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p) {
          Tensor &c = col[size_t(p)], &gp = g[size_t(p)];
          for (int64_t n0 = gr.first(a, p); n0 < gr.first(a, p + 1); n0 += gr.chunk) {
            const int64_t nb = std::min(gr.chunk, gr.first(a, p + 1) - n0);
            gather_dout(a, pg, n0, nb, static_cast<T*>(gp.raw_data()));
            if (dweight_im2col) {
              // dweight [Cout, K] += g [Cout, nb*HoWo] x col^T
              im2col(a, px, n0, nb, static_cast<T*>(c.raw_data()));
              gemm(false, true, a.Cout, K, nb * HoWo, 1.0, gp, c, 1.0, dw[size_t(p)]);
            }
            if (dinp_im2col) {
              // dcol [K, nb*HoWo] = weight^T x g, then scattered back onto the input.
              gemm(true, false, K, nb * HoWo, a.Cout, 1.0, weight, gp, 0.0, c);
              col2im(a, static_cast<const T*>(c.raw_data()), n0, nb,
                     static_cast<T*>(dinp->raw_data()));
            }
          }
        }
      });
    if (dweight_im2col) {
      // Partial gradients summed in group order: deterministic for a given thread count.
      T* d = static_cast<T*>(dweight->raw_data());
      std::fill(d, d + a.Cout * K, T(0));
      for (int64_t p = 0; p < gr.parts; ++p) {
        const T* s = static_cast<const T*>(dw[size_t(p)].raw_data());
        for (int64_t i = 0; i < a.Cout * K; ++i) d[i] += s[i];
      }
    }
    if (dbias) {
      T* db = static_cast<T*>(dbias->raw_data());
      parallel_for(a.Cout, 1, [&](int64_t c0, int64_t c1) {
        for (int64_t co = c0; co < c1; ++co) {
          double s = 0;
          for (int64_t n = 0; n < a.N; ++n) {
            const T* p = pg + (n * a.Cout + co) * HoWo;
            for (int64_t k = 0; k < HoWo; ++k) s += p[k];
          }
          db[co] = T(s);
        }
      });
    }
  });
}

}  // namespace ss::cpu
