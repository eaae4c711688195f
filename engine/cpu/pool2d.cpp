// Max and average pooling on the CPU, one (n, c) plane per task.
#include <limits>

#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/thread_pool.h"

namespace ss::cpu {

void CpuBackend::max_pool2d_forward(const Pool2dArgs& a, const Tensor& x, Tensor& out,
                                    std::vector<int64_t>& argmax) {
  argmax.assign(size_t(out.numel()), 0);
  dispatch_dtype(x.dtype(), [&](auto t) {
    using T = decltype(t);
    const T* px = static_cast<const T*>(x.raw_data());
    T* po = static_cast<T*>(out.raw_data());
    parallel_for(a.N * a.C, 1, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        const T* in = px + p * a.H * a.W;
        for (int64_t oh = 0; oh < a.Ho; ++oh)
          for (int64_t ow = 0; ow < a.Wo; ++ow) {
            // The first maximum in row-major order wins ties (case B26).
            T m = -std::numeric_limits<T>::infinity();
            int64_t am = -1;
            for (int64_t i = 0; i < a.kh; ++i) {
              const int64_t ih = oh * a.sh - a.ph + i;
              if (ih < 0 || ih >= a.H) continue;
              for (int64_t j = 0; j < a.kw; ++j) {
                const int64_t iw = ow * a.sw - a.pw + j;
                if (iw < 0 || iw >= a.W) continue;
                const T v = in[ih * a.W + iw];
                if (am < 0 || v > m) {
                  m = v;
                  am = ih * a.W + iw;
                }
              }
            }
            const int64_t o = p * a.Ho * a.Wo + oh * a.Wo + ow;
            po[o] = m;
            argmax[size_t(o)] = p * a.H * a.W + am;
          }
      }
    });
  });
}

void CpuBackend::max_pool2d_backward(const Pool2dArgs& a, const Tensor& dout,
                                     const std::vector<int64_t>& argmax, Tensor& dinp) {
  dinp.fill_(0.0);
  dispatch_dtype(dout.dtype(), [&](auto t) {
    using T = decltype(t);
    const T* g = static_cast<const T*>(dout.raw_data());
    T* d = static_cast<T*>(dinp.raw_data());
    const int64_t plane = a.Ho * a.Wo;
    parallel_for(a.N * a.C, 1, [&](int64_t p0, int64_t p1) {
      for (int64_t o = p0 * plane; o < p1 * plane; ++o) d[argmax[size_t(o)]] += g[o];
    });
  });
}

void CpuBackend::avg_pool2d_forward(const Pool2dArgs& a, const Tensor& x, Tensor& out) {
  dispatch_dtype(x.dtype(), [&](auto t) {
    using T = decltype(t);
    const T* px = static_cast<const T*>(x.raw_data());
    T* po = static_cast<T*>(out.raw_data());
    const T inv = T(1) / T(a.kh * a.kw);  // padded cells count (count_include_pad)
    parallel_for(a.N * a.C, 1, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        const T* in = px + p * a.H * a.W;
        for (int64_t oh = 0; oh < a.Ho; ++oh)
          for (int64_t ow = 0; ow < a.Wo; ++ow) {
            T s = 0;
            for (int64_t i = 0; i < a.kh; ++i) {
              const int64_t ih = oh * a.sh - a.ph + i;
              if (ih < 0 || ih >= a.H) continue;
              for (int64_t j = 0; j < a.kw; ++j) {
                const int64_t iw = ow * a.sw - a.pw + j;
                if (iw >= 0 && iw < a.W) s += in[ih * a.W + iw];
              }
            }
            po[p * a.Ho * a.Wo + oh * a.Wo + ow] = s * inv;
          }
      }
    });
  });
}

void CpuBackend::avg_pool2d_backward(const Pool2dArgs& a, const Tensor& dout, Tensor& dinp) {
  dinp.fill_(0.0);
  dispatch_dtype(dout.dtype(), [&](auto t) {
    using T = decltype(t);
    const T* pg = static_cast<const T*>(dout.raw_data());
    T* pd = static_cast<T*>(dinp.raw_data());
    const T inv = T(1) / T(a.kh * a.kw);
    parallel_for(a.N * a.C, 1, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        T* d = pd + p * a.H * a.W;
        for (int64_t oh = 0; oh < a.Ho; ++oh)
          for (int64_t ow = 0; ow < a.Wo; ++ow) {
            const T g = pg[p * a.Ho * a.Wo + oh * a.Wo + ow] * inv;
            for (int64_t i = 0; i < a.kh; ++i) {
              const int64_t ih = oh * a.sh - a.ph + i;
              if (ih < 0 || ih >= a.H) continue;
              for (int64_t j = 0; j < a.kw; ++j) {
                const int64_t iw = ow * a.sw - a.pw + j;
                if (iw >= 0 && iw < a.W) d[ih * a.W + iw] += g;
              }
            }
          }
      }
    });
  });
}

}  // namespace ss::cpu
