// Reductions (sum, max with first-index argmax, logsumexp), softmax / log-softmax and
// cross-entropy on the device, over x viewed as [outer, n, inner] as on the CPU.
//
// inner == 1 (a reduction over contiguous rows): one block per row, a block reduction.
// inner > 1: one thread per (outer, inner) position walking n with stride inner (coalesced
// across neighbouring threads). Sums accumulate in double, like the CPU kernels.
#include <cmath>
#include <vector>

#include "engine/cuda/allocator.h"
#include "engine/cuda/common.cuh"

namespace ss::cuda {

namespace {
constexpr float kNegInf = -INFINITY;

__device__ inline float block_max(float v) {
  int64_t idx = 0;
  block_argmax(v, idx);
  return v;
}

// One row of n contiguous values per block.
__global__ void reduce_rows(int op, const float* x, int64_t n, float* out, int64_t* argmax) {
  const int64_t row = blockIdx.x;
  const float* p = x + row * n;
  if (ReduceOp(op) == ReduceOp::sum) {
    double s = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += p[i];
    s = block_sum(s);
    if (threadIdx.x == 0) out[row] = float(s);
    return;
  }
  float m = 0.f;
  int64_t am = INT64_MAX;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    if (am == INT64_MAX || p[i] > m) {
      m = p[i];
      am = i;
    }
  block_argmax(m, am);
  if (ReduceOp(op) == ReduceOp::max) {
    if (threadIdx.x == 0) {
      out[row] = m;
      if (argmax) argmax[row] = am;
    }
    return;
  }
  // logsumexp = m + log sum exp(x - m); a row of all -inf gives -inf (case B09).
  if (m == kNegInf) {
    if (threadIdx.x == 0) out[row] = m;
    return;
  }
  double s = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += ::exp(double(p[i] - m));
  s = block_sum(s);
  if (threadIdx.x == 0) out[row] = float(double(m) + ::log(s));
}

// One thread per (o, j) of [outer, n, inner].
__global__ void reduce_cols(int op, const float* x, int64_t outer, int64_t n, int64_t inner,
                            float* out, int64_t* argmax) {
  SS_GRID_STRIDE(oi, outer * inner) {
    const int64_t o = oi / inner, j = oi % inner;
    const float* p = x + o * n * inner + j;
    if (ReduceOp(op) == ReduceOp::sum) {
      double s = 0;
      for (int64_t i = 0; i < n; ++i) s += p[i * inner];
      out[oi] = float(s);
      continue;
    }
    float m = p[0];
    int64_t am = 0;
    for (int64_t i = 1; i < n; ++i)
      if (p[i * inner] > m) {
        m = p[i * inner];
        am = i;
      }
    if (ReduceOp(op) == ReduceOp::max) {
      out[oi] = m;
      if (argmax) argmax[oi] = am;
      continue;
    }
    if (m == kNegInf) {
      out[oi] = m;
      continue;
    }
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += ::exp(double(p[i * inner] - m));
    out[oi] = float(double(m) + ::log(s));
  }
}

// softmax or log-softmax of one contiguous row per block; raises *flag on a row of all -inf.
__global__ void softmax_rows(const float* x, int64_t n, bool lg, float* out, int* flag) {
  const int64_t row = blockIdx.x;
  const float* p = x + row * n;
  float* q = out + row * n;
  float m = kNegInf;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) m = fmaxf(m, p[i]);
  m = block_max(m);
  if (m == kNegInf) {
    if (threadIdx.x == 0) *flag = 1;
    return;
  }
  double s = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += ::exp(double(p[i] - m));
  const double ls = ::log(block_sum(s));
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const double z = double(p[i] - m);
    q[i] = float(lg ? z - ls : ::exp(z - ls));
  }
}

__global__ void softmax_cols(const float* x, int64_t outer, int64_t n, int64_t inner, bool lg,
                             float* out, int* flag) {
  SS_GRID_STRIDE(oi, outer * inner) {
    const int64_t base = (oi / inner) * n * inner + oi % inner;
    const float* p = x + base;
    float* q = out + base;
    float m = kNegInf;
    for (int64_t i = 0; i < n; ++i) m = fmaxf(m, p[i * inner]);
    if (m == kNegInf) {
      *flag = 1;
      continue;
    }
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += ::exp(double(p[i * inner] - m));
    const double ls = ::log(s);
    for (int64_t i = 0; i < n; ++i) {
      const double z = double(p[i * inner] - m);
      q[i * inner] = float(lg ? z - ls : ::exp(z - ls));
    }
  }
}

// log-softmax: dx = g - softmax * sum(g); softmax: dx = y * (g - sum(g * y)).
__global__ void softmax_backward_rows(const float* y, const float* g, int64_t n, bool lg,
                                      float* d) {
  const int64_t base = int64_t(blockIdx.x) * n;
  double s = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    s += lg ? double(g[base + i]) : double(g[base + i] * y[base + i]);
  s = block_sum(s);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const int64_t k = base + i;
    d[k] = lg ? float(g[k] - expf(y[k]) * s) : float(y[k] * (g[k] - s));
  }
}

__global__ void softmax_backward_cols(const float* y, const float* g, int64_t outer, int64_t n,
                                      int64_t inner, bool lg, float* d) {
  SS_GRID_STRIDE(oi, outer * inner) {
    const int64_t base = (oi / inner) * n * inner + oi % inner;
    double s = 0;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t k = base + i * inner;
      s += lg ? double(g[k]) : double(g[k] * y[k]);
    }
    for (int64_t i = 0; i < n; ++i) {
      const int64_t k = base + i * inner;
      d[k] = lg ? float(g[k] - expf(y[k]) * s) : float(y[k] * (g[k] - s));
    }
  }
}

// loss = -mean_n logprob[n, y_n], one block.
__global__ void nll_kernel(const float* lp, const int64_t* labels, int64_t N, int64_t C,
                           float* loss) {
  double s = 0;
  for (int64_t n = threadIdx.x; n < N; n += blockDim.x) s -= lp[n * C + labels[n]];
  s = block_sum(s);
  if (threadIdx.x == 0) *loss = float(s / double(N));
}

// d/dx_nc = (softmax_nc - [c == y_n]) * dloss / N
__global__ void cross_entropy_backward_kernel(const float* lp, const int64_t* labels,
                                              const float* dloss, int64_t N, int64_t C, float* d) {
  const float g = *dloss / float(N);
  SS_GRID_STRIDE(i, N * C) {
    const int64_t n = i / C, c = i % C;
    d[i] = g * (expf(lp[i]) - (c == labels[n] ? 1.f : 0.f));
  }
}

unsigned rows_grid(int64_t rows) {
  if (rows > INT32_MAX) throw std::invalid_argument("[reduce] more than 2^31 rows");
  return unsigned(rows);
}

// The labels, uploaded for one kernel.
struct DeviceLabels {
  DeviceBuffer buf;
  explicit DeviceLabels(const std::vector<int64_t>& labels) : buf(labels.size() * sizeof(int64_t)) {
    if (!labels.empty())
      CUDA_CHECK(cudaMemcpy(buf.as<int64_t>(), labels.data(), labels.size() * sizeof(int64_t),
                            cudaMemcpyHostToDevice));
  }
  const int64_t* get() const { return buf.as<int64_t>(); }
};
}  // namespace

void CudaBackend::reduce(ReduceOp op, const Tensor& x, int64_t outer, int64_t n, int64_t inner,
                         Tensor& out, std::vector<int64_t>* argmax) {
  const int64_t outputs = outer * inner;
  if (argmax) argmax->assign(size_t(outputs), 0);
  if (!outputs) return;
  DeviceBuffer dargmax(argmax ? size_t(outputs) * sizeof(int64_t) : 0);
  int64_t* am = argmax ? dargmax.as<int64_t>() : nullptr;
  if (inner == 1)
    reduce_rows<<<rows_grid(outer), kThreads, 0, stream()>>>(int(op), fptr(x), n, fptr(out), am);
  else
    reduce_cols<<<grid_for(outputs), kThreads, 0, stream()>>>(int(op), fptr(x), outer, n, inner,
                                                              fptr(out), am);
  CUDA_CHECK_LAUNCH();
  if (argmax)
    CUDA_CHECK(
        cudaMemcpy(argmax->data(), am, size_t(outputs) * sizeof(int64_t), cudaMemcpyDeviceToHost));
}

void CudaBackend::softmax(const Tensor& x, int64_t outer, int64_t n, int64_t inner, bool log,
                          Tensor& out) {
  if (!outer || !n || !inner) return;
  if (inner == 1)
    softmax_rows<<<rows_grid(outer), kThreads, 0, stream()>>>(fptr(x), n, log, fptr(out), flag_);
  else
    softmax_cols<<<grid_for(outer * inner), kThreads, 0, stream()>>>(fptr(x), outer, n, inner, log,
                                                                     fptr(out), flag_);
  CUDA_CHECK_LAUNCH();
  check_flag(log ? "[log_softmax] a row has every entry masked (-inf): nothing to normalise over"
                 : "[softmax] a row has every entry masked (-inf): nothing to normalise over");
}

void CudaBackend::softmax_backward(const Tensor& out, const Tensor& dout, int64_t outer, int64_t n,
                                   int64_t inner, bool log, Tensor& dinp) {
  if (!outer || !n || !inner) return;
  if (inner == 1)
    softmax_backward_rows<<<rows_grid(outer), kThreads, 0, stream()>>>(fptr(out), fptr(dout), n,
                                                                       log, fptr(dinp));
  else
    softmax_backward_cols<<<grid_for(outer * inner), kThreads, 0, stream()>>>(
        fptr(out), fptr(dout), outer, n, inner, log, fptr(dinp));
  CUDA_CHECK_LAUNCH();
}

void CudaBackend::cross_entropy_forward(const Tensor& logits, const std::vector<int64_t>& labels,
                                        Tensor& loss, Tensor& logprob) {
  const int64_t N = logits.size(0), C = logits.size(1);
  softmax(logits, N, C, 1, true, logprob);
  DeviceLabels lab(labels);
  nll_kernel<<<1, kThreads, 0, stream()>>>(fptr(logprob), lab.get(), N, C, fptr(loss));
  CUDA_CHECK_LAUNCH();
}

void CudaBackend::cross_entropy_backward(const Tensor& logprob, const std::vector<int64_t>& labels,
                                         const Tensor& dloss, Tensor& dlogits) {
  const int64_t N = logprob.size(0), C = logprob.size(1);
  DeviceLabels lab(labels);
  cross_entropy_backward_kernel<<<grid_for(N * C), kThreads, 0, stream()>>>(
      fptr(logprob), lab.get(), fptr(dloss), N, C, fptr(dlogits));
  CUDA_CHECK_LAUNCH();
}

}  // namespace ss::cuda
