// Batch norm on the CPU over x viewed as [N, C, S]; one channel per task.
//
//   xhat = (x - mean_c) * invstd_c,   y = weight_c * xhat + bias_c
// Backward with batch statistics (M = N * S values per channel):
//   dbias_c = sum dout,  dweight_c = sum dout * xhat,
//   dx = weight_c * invstd_c / M * (M * dout - dbias_c - xhat * dweight_c)
// With a residual and a ReLU fused on (out = max(y + r, 0)), the forward writes out directly,
// and the backward takes dout as 0 where out <= 0: the passes over memory that a separate add
// and ReLU would make are saved.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/thread_pool.h"

namespace ss::cpu {

namespace {
template <class T>
const T* ptr(const Tensor& t) {
  return t.defined() ? static_cast<const T*>(t.raw_data()) : nullptr;
}
}  // namespace

void CpuBackend::batch_norm_stats(const Tensor& x, int64_t N, int64_t C, int64_t S, double eps,
                                  Tensor& mean, Tensor& var_biased, Tensor& invstd) {
  dispatch_dtype(x.dtype(), [&](auto t) {
    using T = decltype(t);
    const T* px = ptr<T>(x);
    T* pm = static_cast<T*>(mean.raw_data());
    T* pv = static_cast<T*>(var_biased.raw_data());
    T* pi = static_cast<T*>(invstd.raw_data());
    parallel_for(C, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        // One pass: per block, sums of x - x0 and (x - x0)^2 in the element type (vectorised),
        // accumulated in double. Shifting by the channel's first value x0 keeps
        // var = E[(x - x0)^2] - (E[x - x0])^2 free of cancellation for data far from zero.
        const double x0 = px[c * S];
        double s = 0, q = 0;
        for (int64_t n = 0; n < N; ++n) {
          const T* p = px + (n * C + c) * S;
          T bs = 0, bq = 0;
          const T sh = T(x0);
#pragma omp simd reduction(+ : bs, bq)
          for (int64_t k = 0; k < S; ++k) {
            const T d = p[k] - sh;
            bs += d;
            bq += d * d;
          }
          s += bs;
          q += bq;
        }
        const double M = double(N * S), dm = s / M;
        const double m = x0 + dm;
        const double v = std::max(0.0, q / M - dm * dm);
        pm[c] = T(m);
        pv[c] = T(v);
        pi[c] = T(1.0 / std::sqrt(v + eps));
      }
    });
  });
}

void CpuBackend::batch_norm_forward(const Tensor& x, int64_t N, int64_t C, int64_t S,
                                    const Tensor& weight, const Tensor& bias, const Tensor& mean,
                                    const Tensor& invstd, const Tensor& residual, bool relu,
                                    Tensor& out) {
  dispatch_dtype(x.dtype(), [&](auto t) {
    using T = decltype(t);
    const T *px = ptr<T>(x), *pw = ptr<T>(weight), *pb = ptr<T>(bias);
    const T *pm = ptr<T>(mean), *pi = ptr<T>(invstd), *pr = ptr<T>(residual);
    T* po = static_cast<T*>(out.raw_data());
    parallel_for(N * C, std::max<int64_t>(1, 4096 / S), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t c = r % C;
        const T scale = pi[c] * (pw ? pw[c] : T(1));
        const T shift = (pb ? pb[c] : T(0)) - pm[c] * scale;
        const T* p = px + r * S;
        T* o = po + r * S;
        if (pr) {
          const T* q = pr + r * S;
#pragma omp simd
          for (int64_t k = 0; k < S; ++k) {
            const T v = p[k] * scale + shift + q[k];
            o[k] = relu && !(v > T(0)) ? T(0) : v;
          }
        } else {
#pragma omp simd
          for (int64_t k = 0; k < S; ++k) {
            const T v = p[k] * scale + shift;
            o[k] = relu && !(v > T(0)) ? T(0) : v;
          }
        }
      }
    });
  });
}

void CpuBackend::batch_norm_backward(const Tensor& x, const Tensor& dout, const Tensor& relu_out,
                                     int64_t N, int64_t C, int64_t S, const Tensor& weight,
                                     const Tensor& mean, const Tensor& invstd, bool train,
                                     Tensor* dinp, Tensor* dweight, Tensor* dbias) {
  dispatch_dtype(x.dtype(), [&](auto t) {
    using T = decltype(t);
    const T *px = ptr<T>(x), *pg = ptr<T>(dout), *pw = ptr<T>(weight), *pro = ptr<T>(relu_out);
    const T *pm = ptr<T>(mean), *pi = ptr<T>(invstd);
    T* pd = dinp ? static_cast<T*>(dinp->raw_data()) : nullptr;
    T* pdw = dweight ? static_cast<T*>(dweight->raw_data()) : nullptr;
    T* pdb = dbias ? static_cast<T*>(dbias->raw_data()) : nullptr;
    const double M = double(N * S);
    // The loops for one channel, with the ReLU's mask (masked = true) or without: dout is read
    // as 0 where the fused ReLU's output is not positive. Both streams are loaded
    // unconditionally and the mask is a select, so the loops vectorize without masked loads.
    auto channel = [&](int64_t c, auto masked) {
      constexpr bool kMasked = decltype(masked)::value;
      const double is = pi[c];
      const T mt = pm[c];
      double sg = 0, sgx = 0;  // sum dout, sum dout * (x - mean)
      for (int64_t n = 0; n < N; ++n) {
        const int64_t off = (n * C + c) * S;
        const T *p = px + off, *gp = pg + off, *op = kMasked ? pro + off : gp;
        T bg = 0, bgx = 0;
#pragma omp simd reduction(+ : bg, bgx)
        for (int64_t k = 0; k < S; ++k) {
          T gk = gp[k];
          if constexpr (kMasked) gk = op[k] > T(0) ? gk : T(0);
          bg += gk;
          bgx += gk * (p[k] - mt);
        }
        sg += bg;
        sgx += bgx;
      }
      sgx *= is;
      if (pdb) pdb[c] = T(sg);
      if (pdw) pdw[c] = T(sgx);
      if (!pd) return;
      // dx = a (g - b - (x - mean) is q) = a g + k0 + k1 (x - mean).
      const double w = pw ? pw[c] : 1.0, a = w * is;
      const double b = train ? sg / M : 0.0, q = train ? sgx / M : 0.0;
      const T ta = T(a), k1 = T(-a * is * q), k0 = T(-a * b);
      for (int64_t n = 0; n < N; ++n) {
        const int64_t off = (n * C + c) * S;
        const T *p = px + off, *gp = pg + off, *op = kMasked ? pro + off : gp;
        T* d = pd + off;
#pragma omp simd
        for (int64_t k = 0; k < S; ++k) {
          T gk = gp[k];
          if constexpr (kMasked) gk = op[k] > T(0) ? gk : T(0);
          d[k] = ta * gk + (k0 + k1 * (p[k] - mt));
        }
      }
    };
    parallel_for(C, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        if (pro)
          channel(c, std::true_type{});
        else
          channel(c, std::false_type{});
      }
    });
  });
}

}  // namespace ss::cpu
