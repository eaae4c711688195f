// CPU backend: memory pool, elementwise kernels, reductions, softmax, GEMM, cross-entropy.
#include "engine/cpu/cpu_backend.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>

#include "engine/cpu/memory_pool.h"
#include "engine/cpu/thread_pool.h"

namespace ss {

namespace cpu {

// ---- memory: a best-fit pool over chunks kept for the whole run (engine/cpu/memory_pool.h) ----

namespace {
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kCache = false;  // no reuse, so AddressSanitizer sees every use after free
#else
constexpr bool kCache = true;
#endif
// Never destroyed: tensors in static storage may be freed after main returns.
MemoryPool& g_pool = *new MemoryPool(kCache);
}  // namespace

size_t pool_peak_bytes() {
  return g_pool.stats().peak_reserved;
}

size_t pool_peak_in_use_bytes() {
  return g_pool.stats().peak_live;
}

size_t pool_cached_bytes() {
  const MemoryPool::Stats s = g_pool.stats();
  return s.reserved - s.live;
}

size_t pool_in_use_bytes() {
  return g_pool.stats().live;
}

void* CpuBackend::allocate(size_t bytes) {
  return g_pool.allocate(bytes);
}

void CpuBackend::deallocate(void* ptr, size_t) {
  g_pool.deallocate(ptr);
}

void CpuBackend::copy_from_host(void* dst, const void* src, size_t bytes) {
  std::memcpy(dst, src, bytes);
}

void CpuBackend::copy_to_host(void* dst, const void* src, size_t bytes) {
  std::memcpy(dst, src, bytes);
}

// ---- elementwise ---------------------------------------------------------------------------

namespace {
constexpr int64_t kGrain = 1 << 15;

template <class T, class F>
void map_indices(int64_t n, F&& f) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) f(i);
  });
}
}  // namespace

void CpuBackend::fill(Tensor& out, double value) {
  dispatch_dtype(out.dtype(), [&](auto t) {
    using T = decltype(t);
    T* p = static_cast<T*>(out.raw_data());
    std::fill(p, p + out.numel(), T(value));
  });
}

void CpuBackend::cast(const Tensor& src, Tensor& out) {
  const int64_t n = src.numel();
  dispatch_dtype(src.dtype(), [&](auto s) {
    using S = decltype(s);
    const S* in = static_cast<const S*>(src.raw_data());
    dispatch_dtype(out.dtype(), [&](auto d) {
      using D = decltype(d);
      D* o = static_cast<D*>(out.raw_data());
      for (int64_t i = 0; i < n; ++i) o[i] = D(in[i]);
    });
  });
}

void CpuBackend::unary(UnaryOp op, const Tensor& x, Tensor& out, double p0, double p1) {
  const int64_t n = x.numel();
  dispatch_dtype(x.dtype(), [&](auto t) {
    using T = decltype(t);
    const T* in = static_cast<const T*>(x.raw_data());
    T* o = static_cast<T*>(out.raw_data());
    const T a = T(p0), b = T(p1);
    auto run = [&](auto f) { map_indices<T>(n, [&](int64_t i) { o[i] = f(in[i]); }); };
    switch (op) {
      case UnaryOp::neg:
        run([](T v) { return -v; });
        break;
      case UnaryOp::exp:
        run([](T v) { return std::exp(v); });
        break;
      case UnaryOp::log:
        run([](T v) { return std::log(v); });
        break;
      case UnaryOp::pow:
        run([a](T v) { return a == T(2) ? v * v : T(std::pow(v, a)); });
        break;
      case UnaryOp::sqrt:
        run([](T v) { return std::sqrt(v); });
        break;
      case UnaryOp::abs:
        run([](T v) { return std::abs(v); });
        break;
      case UnaryOp::clamp:
        run([a, b](T v) { return std::min(std::max(v, a), b); });
        break;
      case UnaryOp::relu:
        run([](T v) { return v > T(0) ? v : T(0); });
        break;
    }
  });
}

void CpuBackend::unary_backward(UnaryOp op, const Tensor& x, const Tensor& out, const Tensor& dout,
                                Tensor& dinp, double p0, double p1) {
  const int64_t n = x.numel();
  dispatch_dtype(x.dtype(), [&](auto t) {
    using T = decltype(t);
    const T* in = static_cast<const T*>(x.raw_data());
    const T* y = static_cast<const T*>(out.raw_data());
    const T* g = static_cast<const T*>(dout.raw_data());
    T* d = static_cast<T*>(dinp.raw_data());
    const T a = T(p0), b = T(p1);
    auto run = [&](auto f) { map_indices<T>(n, [&](int64_t i) { d[i] = f(in[i], y[i], g[i]); }); };
    switch (op) {
      case UnaryOp::neg:
        run([](T, T, T gg) { return -gg; });
        break;
      case UnaryOp::exp:
        run([](T, T yy, T gg) { return gg * yy; });
        break;
      case UnaryOp::log:
        run([](T v, T, T gg) { return gg / v; });
        break;
      case UnaryOp::pow:
        run([a](T v, T, T gg) { return gg * a * (a == T(2) ? v : T(std::pow(v, a - T(1)))); });
        break;
      // d sqrt(x) = 1 / (2 sqrt(x)); defined as 0 at x = 0 so that norms of zero stay finite.
      case UnaryOp::sqrt:
        run([](T, T yy, T gg) { return yy > T(0) ? gg / (T(2) * yy) : T(0); });
        break;
      case UnaryOp::abs:
        run([](T v, T, T gg) { return v > T(0) ? gg : (v < T(0) ? -gg : T(0)); });
        break;
      case UnaryOp::clamp:
        run([a, b](T v, T, T gg) { return (v >= a && v <= b) ? gg : T(0); });
        break;
      case UnaryOp::relu:
        run([](T v, T, T gg) { return v > T(0) ? gg : T(0); });
        break;
    }
  });
}

namespace {
// Strides of operand `s` (contiguous, right-aligned) in the index space of `out`: 0 where the
// operand is broadcast.
std::vector<int64_t> broadcast_strides(const Shape& s, const Shape& out) {
  std::vector<int64_t> st(out.size(), 0);
  int64_t stride = 1;
  for (int64_t i = int64_t(s.size()) - 1, j = int64_t(out.size()) - 1; i >= 0; --i, --j) {
    st[size_t(j)] = s[size_t(i)] == 1 ? 0 : stride;
    stride *= s[size_t(i)];
  }
  return st;
}

// Merges adjacent dimensions whose strides continue each other in every operand.
void collapse(Shape& shape, std::vector<std::vector<int64_t>*> strides) {
  Shape ns;
  std::vector<std::vector<int64_t>> nst(strides.size());
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !ns.empty();
    for (size_t k = 0; merge && k < strides.size(); ++k)
      merge = nst[k].back() == (*strides[k])[d] * shape[d];
    if (merge) {
      ns.back() *= shape[d];
      for (size_t k = 0; k < strides.size(); ++k) nst[k].back() = (*strides[k])[d];
    } else {
      ns.push_back(shape[d]);
      for (size_t k = 0; k < strides.size(); ++k) nst[k].push_back((*strides[k])[d]);
    }
  }
  if (ns.empty()) {
    ns.push_back(1);
    for (auto& v : nst) v.push_back(0);
  }
  shape = ns;
  for (size_t k = 0; k < strides.size(); ++k) *strides[k] = nst[k];
}

// Offsets of the first element of row r (all dims but the last) for each stride vector.
inline void row_offsets(int64_t r, const Shape& shape, const std::vector<int64_t>& sa,
                        const std::vector<int64_t>& sb, int64_t& oa, int64_t& ob) {
  oa = ob = 0;
  for (int64_t d = int64_t(shape.size()) - 2; d >= 0; --d) {
    const int64_t i = r % shape[size_t(d)];
    r /= shape[size_t(d)];
    oa += i * sa[size_t(d)];
    ob += i * sb[size_t(d)];
  }
}
}  // namespace

void CpuBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  Shape shape = out.shape();
  std::vector<int64_t> sa = broadcast_strides(a.shape(), shape);
  std::vector<int64_t> sb = broadcast_strides(b.shape(), shape);
  collapse(shape, {&sa, &sb});
  const int64_t inner = shape.back(), rows = shape_numel(shape) / inner;
  const int64_t ia = sa.back(), ib = sb.back();
  dispatch_dtype(out.dtype(), [&](auto t) {
    using T = decltype(t);
    const T* pa = static_cast<const T*>(a.raw_data());
    const T* pb = static_cast<const T*>(b.raw_data());
    T* po = static_cast<T*>(out.raw_data());
    auto run = [&](auto f) {
      parallel_for(rows, std::max<int64_t>(1, kGrain / inner), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          int64_t oa, ob;
          row_offsets(r, shape, sa, sb, oa, ob);
          const T* x = pa + oa;
          const T* y = pb + ob;
          T* o = po + r * inner;
          if (ia == 1 && ib == 1)
            for (int64_t i = 0; i < inner; ++i) o[i] = f(x[i], y[i]);
          else if (ia == 1 && ib == 0)
            for (int64_t i = 0; i < inner; ++i) o[i] = f(x[i], y[0]);
          else if (ia == 0 && ib == 1)
            for (int64_t i = 0; i < inner; ++i) o[i] = f(x[0], y[i]);
          else
            for (int64_t i = 0; i < inner; ++i) o[i] = f(x[i * ia], y[i * ib]);
        }
      });
    };
    switch (op) {
      case BinaryOp::add:
        run([](T u, T v) { return u + v; });
        break;
      case BinaryOp::sub:
        run([](T u, T v) { return u - v; });
        break;
      case BinaryOp::mul:
        run([](T u, T v) { return u * v; });
        break;
      case BinaryOp::div:
        run([](T u, T v) { return u / v; });
        break;
    }
  });
}

void CpuBackend::masked_fill(const Tensor& x, const uint8_t* mask, double value, Tensor& out) {
  dispatch_dtype(x.dtype(), [&](auto t) {
    using T = decltype(t);
    const T* in = static_cast<const T*>(x.raw_data());
    T* o = static_cast<T*>(out.raw_data());
    const T v = T(value);
    for (int64_t i = 0, n = x.numel(); i < n; ++i) o[i] = mask[i] ? v : in[i];
  });
}

void CpuBackend::sum_to(const Tensor& x, Tensor& out) {
  Shape shape = x.shape();
  std::vector<int64_t> sx(shape.size()), so = broadcast_strides(out.shape(), shape);
  int64_t stride = 1;
  for (int64_t d = int64_t(shape.size()) - 1; d >= 0; --d) {
    sx[size_t(d)] = stride;
    stride *= shape[size_t(d)];
  }
  collapse(shape, {&sx, &so});
  const int64_t inner = shape.back(), rows = shape_numel(shape) / inner, io = so.back();
  dispatch_dtype(x.dtype(), [&](auto t) {
    using T = decltype(t);
    const T* px = static_cast<const T*>(x.raw_data());
    T* po = static_cast<T*>(out.raw_data());
    std::vector<double> acc(size_t(out.numel()), 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      int64_t ox, oo;
      row_offsets(r, shape, sx, so, ox, oo);
      const T* in = px + ox;
      if (io == 0) {
        double s = 0;
        for (int64_t i = 0; i < inner; ++i) s += in[i];
        acc[size_t(oo)] += s;
      } else {
        for (int64_t i = 0; i < inner; ++i) acc[size_t(oo + i * io)] += in[i];
      }
    }
    for (size_t i = 0; i < acc.size(); ++i) po[i] = T(acc[i]);
  });
}

// ---- reductions and softmax over the middle axis of [outer, n, inner] --------------------

void CpuBackend::reduce(ReduceOp op, const Tensor& x, int64_t outer, int64_t n, int64_t inner,
                        Tensor& out, std::vector<int64_t>* argmax) {
  if (argmax) argmax->assign(size_t(outer * inner), 0);
  dispatch_dtype(x.dtype(), [&](auto t) {
    using T = decltype(t);
    const T* px = static_cast<const T*>(x.raw_data());
    T* po = static_cast<T*>(out.raw_data());
    parallel_for(outer * inner, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, n)),
                 [&](int64_t b, int64_t e) {
                   for (int64_t oi = b; oi < e; ++oi) {
                     const int64_t o = oi / inner, j = oi % inner;
                     const T* p = px + o * n * inner + j;
                     if (op == ReduceOp::sum) {
                       double s = 0;
                       for (int64_t i = 0; i < n; ++i) s += p[i * inner];
                       po[oi] = T(s);
                       continue;
                     }
                     T m = p[0];
                     int64_t am = 0;
                     for (int64_t i = 1; i < n; ++i)
                       if (p[i * inner] > m) {
                         m = p[i * inner];
                         am = i;
                       }
                     if (op == ReduceOp::max) {
                       po[oi] = m;
                       if (argmax) (*argmax)[size_t(oi)] = am;
                       continue;
                     }
                     // logsumexp = m + log sum exp(x - m); a row of all -inf gives -inf (case B09).
                     if (std::isinf(m) && m < 0) {
                       po[oi] = m;
                       continue;
                     }
                     double s = 0;
                     for (int64_t i = 0; i < n; ++i) s += std::exp(double(p[i * inner] - m));
                     po[oi] = T(double(m) + std::log(s));
                   }
                 });
  });
}

void CpuBackend::softmax(const Tensor& x, int64_t outer, int64_t n, int64_t inner, bool log,
                         Tensor& out) {
  dispatch_dtype(x.dtype(), [&](auto t) {
    using T = decltype(t);
    const T* px = static_cast<const T*>(x.raw_data());
    T* po = static_cast<T*>(out.raw_data());
    parallel_for(
        outer * inner, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, n)),
        [&](int64_t b, int64_t e) {
          for (int64_t oi = b; oi < e; ++oi) {
            const int64_t o = oi / inner, j = oi % inner;
            const T* p = px + o * n * inner + j;
            T* q = po + o * n * inner + j;
            T m = -std::numeric_limits<T>::infinity();
            for (int64_t i = 0; i < n; ++i) m = std::max(m, p[i * inner]);
            if (std::isinf(m) && m < 0)
              throw std::invalid_argument(std::string("[") + (log ? "log_softmax" : "softmax") +
                                          "] a row has every entry masked (-inf): nothing to "
                                          "normalise over");
            double s = 0;
            for (int64_t i = 0; i < n; ++i) s += std::exp(double(p[i * inner] - m));
            const double ls = std::log(s);
            for (int64_t i = 0; i < n; ++i) {
              const double z = double(p[i * inner] - m);
              q[i * inner] = T(log ? z - ls : std::exp(z - ls));
            }
          }
        });
  });
}

void CpuBackend::softmax_backward(const Tensor& out, const Tensor& dout, int64_t outer, int64_t n,
                                  int64_t inner, bool log, Tensor& dinp) {
  dispatch_dtype(out.dtype(), [&](auto t) {
    using T = decltype(t);
    const T* py = static_cast<const T*>(out.raw_data());
    const T* pg = static_cast<const T*>(dout.raw_data());
    T* pd = static_cast<T*>(dinp.raw_data());
    parallel_for(outer * inner, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, n)),
                 [&](int64_t b, int64_t e) {
                   for (int64_t oi = b; oi < e; ++oi) {
                     const int64_t base = (oi / inner) * n * inner + oi % inner;
                     const T* y = py + base;
                     const T* g = pg + base;
                     T* d = pd + base;
                     double s = 0;
                     // log-softmax: dx = g - softmax * sum(g); softmax: dx = y * (g - sum(g * y)).
                     for (int64_t i = 0; i < n; ++i)
                       s += log ? double(g[i * inner]) : double(g[i * inner] * y[i * inner]);
                     for (int64_t i = 0; i < n; ++i) {
                       const size_t k = size_t(i * inner);
                       d[k] = log ? T(g[k] - std::exp(y[k]) * s) : T(y[k] * (g[k] - s));
                     }
                   }
                 });
  });
}

// ---- GEMM ----------------------------------------------------------------------------------

void CpuBackend::gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                      const Tensor& A, const Tensor& B, double beta, Tensor& C) {
  // Thread policy (B29): OpenBLAS's threads and the pool's never run at once.
  if (in_parallel_region() && !gemm_allowed_in_region())
    throw std::logic_error(
        "[gemm] called inside a parallel_for region; issue GEMMs between "
        "parallel regions so OpenBLAS and the engine pool do not compete");
  const int lda = int(ta ? M : K), ldb = int(tb ? K : N), ldc = int(N);
  const auto TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
  if (C.dtype() == DType::f32)
    cblas_sgemm(CblasRowMajor, TA, TB, int(M), int(N), int(K), float(alpha),
                static_cast<const float*>(A.raw_data()), lda,
                static_cast<const float*>(B.raw_data()), ldb, float(beta),
                static_cast<float*>(C.raw_data()), ldc);
  else
    cblas_dgemm(CblasRowMajor, TA, TB, int(M), int(N), int(K), alpha,
                static_cast<const double*>(A.raw_data()), lda,
                static_cast<const double*>(B.raw_data()), ldb, beta,
                static_cast<double*>(C.raw_data()), ldc);
}

// ---- cross-entropy -------------------------------------------------------------------------

void CpuBackend::cross_entropy_forward(const Tensor& logits, const std::vector<int64_t>& labels,
                                       Tensor& loss, Tensor& logprob) {
  const int64_t N = logits.size(0), C = logits.size(1);
  softmax(logits, N, C, 1, true, logprob);
  dispatch_dtype(logits.dtype(), [&](auto t) {
    using T = decltype(t);
    const T* lp = static_cast<const T*>(logprob.raw_data());
    double s = 0;
    for (int64_t n = 0; n < N; ++n) s -= lp[n * C + labels[size_t(n)]];
    *static_cast<T*>(loss.raw_data()) = T(s / double(N));
  });
}

void CpuBackend::cross_entropy_backward(const Tensor& logprob, const std::vector<int64_t>& labels,
                                        const Tensor& dloss, Tensor& dlogits) {
  const int64_t N = logprob.size(0), C = logprob.size(1);
  dispatch_dtype(logprob.dtype(), [&](auto t) {
    using T = decltype(t);
    const T* lp = static_cast<const T*>(logprob.raw_data());
    T* d = static_cast<T*>(dlogits.raw_data());
    // d/dx_nc = (softmax_nc - [c == y_n]) / N
    const T g = *static_cast<const T*>(dloss.raw_data()) / T(N);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c)
        d[n * C + c] = g * (std::exp(lp[n * C + c]) - (c == labels[size_t(n)] ? T(1) : T(0)));
  });
}

// ---- BLAS self-check (case B30) ------------------------------------------------------------

namespace {
// Compares cblas_sgemm with a double loop on known and odd shapes; throws on a wrong result.
void blas_self_check() {
  const float A[4] = {1, 2, 3, 4}, B[4] = {5, 6, 7, 8};
  float C[4] = {1, 1, 1, 1};
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 2, 2, 2, 1.f, A, 2, B, 2, 1.f, C, 2);
  const float want[4] = {20, 23, 44, 51};
  for (int i = 0; i < 4; ++i)
    if (C[i] != want[i])
      throw std::runtime_error(
          "[blas self-check] OpenBLAS sgemm returned a wrong result for [[1,2],[3,4]] x "
          "[[5,6],[7,8]] + 1; refusing to run. Try another OPENBLAS_CORETYPE (e.g. Haswell).");
  const int shapes[3][3] = {{17, 33, 65}, {1, 1, 1}, {128, 1, 257}};
  Generator gen(1234);
  for (const auto& s : shapes) {
    const int M = s[0], N = s[1], K = s[2];
    std::vector<float> a(size_t(M * K)), b(size_t(K * N)), c(size_t(M * N));
    for (auto& v : a) v = float(gen.uniform(-1, 1));
    for (auto& v : b) v = float(gen.uniform(-1, 1));
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) {
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    M, N, K, 1.f, a.data(), ta ? M : K, b.data(), tb ? K : N, 0.f, c.data(), N);
        for (int i = 0; i < M; ++i)
          for (int j = 0; j < N; ++j) {
            double ref = 0, mag = 0;
            for (int k = 0; k < K; ++k) {
              const double x = a[size_t(ta ? k * M + i : i * K + k)];
              const double y = b[size_t(tb ? j * K + k : k * N + j)];
              ref += x * y;
              mag += std::abs(x * y);
            }
            if (std::abs(c[size_t(i * N + j)] - ref) > 1e-5 * std::max(1.0, mag))
              throw std::runtime_error(
                  "[blas self-check] OpenBLAS sgemm is wrong for M=" + std::to_string(M) +
                  " N=" + std::to_string(N) + " K=" + std::to_string(K) +
                  "; refusing to run. Try another OPENBLAS_CORETYPE.");
          }
      }
  }
}
}  // namespace

}  // namespace cpu

// ---- backend registry ----------------------------------------------------------------------

namespace {
Backend* g_backends[2] = {nullptr, nullptr};

Backend* cpu_backend_instance() {
  static cpu::CpuBackend* b = [] {
    cpu::blas_self_check();
    return new cpu::CpuBackend();
  }();
  return b;
}
}  // namespace

#ifdef SELFSUP_WITH_CUDA
Backend* make_cuda_backend();  // engine/cuda/
#endif

Backend& backend(Device device) {
  if (device == Device::cpu) return *cpu_backend_instance();
  Backend* b = g_backends[size_t(device)];
#ifdef SELFSUP_WITH_CUDA
  if (!b) {
    static Backend* cuda = make_cuda_backend();
    b = cuda;
  }
#endif
  if (!b)
    throw std::runtime_error(std::string("[backend] device '") + device_name(device) +
                             "' is not available in this build (configure with CUDA)");
  return *b;
}

void register_backend(Device device, Backend* b) {
  g_backends[size_t(device)] = b;
}

bool has_backend(Device device) {
  if (device == Device::cpu) return true;
  try {
    backend(device);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace ss
