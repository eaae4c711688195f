// The CUDA backend's memory, elementwise kernels, broadcasting and GEMM; reductions, softmax and
// cross-entropy are in reduce.cu, convolution in conv2d.cu, pooling in pool2d.cu, batch norm in
// batch_norm.cu. Every kernel mirrors the CPU kernel of the same name in engine/cpu/.
#include <climits>
#include <cmath>
#include <stdexcept>
#include <string>

#include "engine/cuda/allocator.h"
#include "engine/cuda/common.cuh"

namespace ss {

// Called by backend() the first time Device::cuda is asked for; throws without a device, so
// has_backend(Device::cuda) is false on machines without a GPU.
Backend* make_cuda_backend() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    throw std::runtime_error(std::string("[cuda] no CUDA device: ") + cudaGetErrorString(err));
  }
  if (count == 0) throw std::runtime_error("[cuda] no CUDA device: cudaGetDeviceCount found none");
  return new cuda::CudaBackend();
}

namespace cuda {

CudaBackend::CudaBackend() {
  CUDA_CHECK(cudaSetDevice(0));
  CUBLAS_CHECK(cublasCreate(&blas_));
  CUBLAS_CHECK(cublasSetStream(blas_, stream()));
  // Plain FP32 GEMMs (no TF32), so results track the CPU backend's to float rounding.
  CUBLAS_CHECK(cublasSetMathMode(blas_, CUBLAS_DEFAULT_MATH));
  flag_ = static_cast<int*>(device_alloc(sizeof(int)));
  CUDA_CHECK(cudaMemsetAsync(flag_, 0, sizeof(int), stream()));
}

// The backend lives until the process ends; the driver reclaims the handle then.
CudaBackend::~CudaBackend() = default;

void CudaBackend::check_flag(const char* message) {
  int raised = 0;
  CUDA_CHECK(cudaMemcpy(&raised, flag_, sizeof(int), cudaMemcpyDeviceToHost));
  if (!raised) return;
  CUDA_CHECK(cudaMemsetAsync(flag_, 0, sizeof(int), stream()));
  throw std::invalid_argument(message);
}

// ---- memory --------------------------------------------------------------------------------

void* CudaBackend::allocate(size_t bytes) {
  return device_alloc(bytes);
}

void CudaBackend::deallocate(void* ptr, size_t bytes) {
  device_free(ptr, bytes);
}

// cudaMemcpy on the legacy stream: ordered after queued kernels; to the host it also waits.
void CudaBackend::copy_from_host(void* dst, const void* src, size_t bytes) {
  if (bytes) CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}

void CudaBackend::copy_to_host(void* dst, const void* src, size_t bytes) {
  if (bytes) CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}

// ---- elementwise ---------------------------------------------------------------------------

namespace {
void require_f32(const char* op, const Tensor& t) {
  if (t.dtype() != DType::f32)
    throw std::invalid_argument(std::string("[") + op + "] the CUDA backend is float32 only, got " +
                                t.str());
}

__global__ void fill_kernel(float* out, int64_t n, float v) {
  SS_GRID_STRIDE(i, n) out[i] = v;
}

__device__ inline float unary_f(int op, float v, float a, float b) {
  switch (UnaryOp(op)) {
    case UnaryOp::neg:
      return -v;
    case UnaryOp::exp:
      return expf(v);
    case UnaryOp::log:
      return logf(v);
    case UnaryOp::pow:
      return a == 2.f ? v * v : powf(v, a);
    case UnaryOp::sqrt:
      return sqrtf(v);
    case UnaryOp::abs:
      return fabsf(v);
    case UnaryOp::clamp:
      return fminf(fmaxf(v, a), b);
    case UnaryOp::relu:
      return v > 0.f ? v : 0.f;
  }
  return v;
}

// dinp = dout * f'(x), from the input v or the output y as the CPU backend does.
__device__ inline float unary_grad(int op, float v, float y, float g, float a, float b) {
  switch (UnaryOp(op)) {
    case UnaryOp::neg:
      return -g;
    case UnaryOp::exp:
      return g * y;
    case UnaryOp::log:
      return g / v;
    case UnaryOp::pow:
      return g * a * (a == 2.f ? v : powf(v, a - 1.f));
    case UnaryOp::sqrt:  // defined as 0 at x = 0 so that norms of zero stay finite
      return y > 0.f ? g / (2.f * y) : 0.f;
    case UnaryOp::abs:
      return v > 0.f ? g : (v < 0.f ? -g : 0.f);
    case UnaryOp::clamp:
      return (v >= a && v <= b) ? g : 0.f;
    case UnaryOp::relu:
      return v > 0.f ? g : 0.f;
  }
  return g;
}

__global__ void unary_kernel(int op, const float* x, float* out, int64_t n, float a, float b) {
  SS_GRID_STRIDE(i, n) out[i] = unary_f(op, x[i], a, b);
}

__global__ void unary_backward_kernel(int op, const float* x, const float* y, const float* g,
                                      float* d, int64_t n, float a, float b) {
  SS_GRID_STRIDE(i, n) d[i] = unary_grad(op, x[i], y[i], g[i], a, b);
}

// Clamp bounds may be +-HUGE_VAL (clamp_min); float() of that is +-inf, as on the CPU.
float to_f32(double v) {
  return float(v);
}
}  // namespace

void CudaBackend::fill(Tensor& out, double value) {
  require_f32("fill", out);
  const int64_t n = out.numel();
  if (!n) return;
  fill_kernel<<<grid_for(n), kThreads, 0, stream()>>>(fptr(out), n, float(value));
  CUDA_CHECK_LAUNCH();
}

void CudaBackend::cast(const Tensor& src, Tensor& out) {
  require_f32("cast", src);
  require_f32("cast", out);
  if (src.nbytes())
    CUDA_CHECK(cudaMemcpyAsync(out.raw_data(), src.raw_data(), src.nbytes(),
                               cudaMemcpyDeviceToDevice, stream()));
}

void CudaBackend::unary(UnaryOp op, const Tensor& x, Tensor& out, double p0, double p1) {
  require_f32("unary", x);
  const int64_t n = x.numel();
  if (!n) return;
  unary_kernel<<<grid_for(n), kThreads, 0, stream()>>>(int(op), fptr(x), fptr(out), n, to_f32(p0),
                                                       to_f32(p1));
  CUDA_CHECK_LAUNCH();
}

void CudaBackend::unary_backward(UnaryOp op, const Tensor& x, const Tensor& out, const Tensor& dout,
                                 Tensor& dinp, double p0, double p1) {
  require_f32("unary_backward", dout);
  const int64_t n = x.numel();
  if (!n) return;
  unary_backward_kernel<<<grid_for(n), kThreads, 0, stream()>>>(
      int(op), fptr(x), fptr(out), fptr(dout), fptr(dinp), n, to_f32(p0), to_f32(p1));
  CUDA_CHECK_LAUNCH();
}

// ---- broadcasting --------------------------------------------------------------------------

namespace {
constexpr int kMaxDims = 8;

// Strides of operand `s` (contiguous, right-aligned) in the index space of `out`: 0 where the
// operand is broadcast (as the CPU backend).
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

// The collapsed index space of a binary op, passed to the kernel by value.
struct Broadcast {
  int nd;
  int64_t shape[kMaxDims], sa[kMaxDims], sb[kMaxDims];
};

__device__ inline float binary_f(int op, float u, float v) {
  switch (BinaryOp(op)) {
    case BinaryOp::add:
      return u + v;
    case BinaryOp::sub:
      return u - v;
    case BinaryOp::mul:
      return u * v;
    case BinaryOp::div:
      return u / v;
  }
  return u;
}

__global__ void binary_kernel(int op, const float* a, const float* b, float* out, int64_t n,
                              Broadcast s) {
  SS_GRID_STRIDE(i, n) {
    int64_t oa, ob;
    if (s.nd == 1) {
      oa = i * s.sa[0];
      ob = i * s.sb[0];
    } else {
      int64_t r = i;
      oa = ob = 0;
      for (int d = s.nd - 1; d >= 0; --d) {
        const int64_t c = r % s.shape[d];
        r /= s.shape[d];
        oa += c * s.sa[d];
        ob += c * s.sb[d];
      }
    }
    out[i] = binary_f(op, a[oa], b[ob]);
  }
}

__global__ void masked_fill_kernel(const float* x, const uint8_t* mask, float v, float* out,
                                   int64_t n) {
  SS_GRID_STRIDE(i, n) out[i] = mask[i] ? v : x[i];
}

// sum_to's index space: kept dimensions (those of out) and summed ones, with x's strides.
struct SumTo {
  int nk, nr;
  int64_t kshape[kMaxDims], kstride[kMaxDims], rshape[kMaxDims], rstride[kMaxDims];
  int64_t R;  // number of summed elements per output
};

__device__ inline int64_t offset_of(int64_t i, int nd, const int64_t* shape,
                                    const int64_t* stride) {
  int64_t off = 0;
  for (int d = nd - 1; d >= 0; --d) {
    off += (i % shape[d]) * stride[d];
    i /= shape[d];
  }
  return off;
}

// One block per output element (many summed elements per output).
__global__ void sum_to_blocks(const float* x, float* out, int64_t O, SumTo s) {
  for (int64_t o = blockIdx.x; o < O; o += gridDim.x) {
    const float* base = x + offset_of(o, s.nk, s.kshape, s.kstride);
    double acc = 0;
    for (int64_t r = threadIdx.x; r < s.R; r += blockDim.x)
      acc += base[offset_of(r, s.nr, s.rshape, s.rstride)];
    acc = block_sum(acc);
    if (threadIdx.x == 0) out[o] = float(acc);
  }
}

// One thread per output element (many outputs, few summed elements each).
__global__ void sum_to_threads(const float* x, float* out, int64_t O, SumTo s) {
  SS_GRID_STRIDE(o, O) {
    const float* base = x + offset_of(o, s.nk, s.kshape, s.kstride);
    double acc = 0;
    for (int64_t r = 0; r < s.R; ++r) acc += base[offset_of(r, s.nr, s.rshape, s.rstride)];
    out[o] = float(acc);
  }
}
}  // namespace

void CudaBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  require_f32("binary", out);
  const int64_t n = out.numel();
  if (!n) return;
  Shape shape = out.shape();
  std::vector<int64_t> sa = broadcast_strides(a.shape(), shape);
  std::vector<int64_t> sb = broadcast_strides(b.shape(), shape);
  collapse(shape, {&sa, &sb});
  if (shape.size() > size_t(kMaxDims))
    throw std::invalid_argument("[binary] more than " + std::to_string(kMaxDims) +
                                " non-mergeable dimensions: " + a.str() + " and " + b.str());
  Broadcast s{};
  s.nd = int(shape.size());
  for (int d = 0; d < s.nd; ++d) {
    s.shape[d] = shape[size_t(d)];
    s.sa[d] = sa[size_t(d)];
    s.sb[d] = sb[size_t(d)];
  }
  binary_kernel<<<grid_for(n), kThreads, 0, stream()>>>(int(op), fptr(a), fptr(b), fptr(out), n, s);
  CUDA_CHECK_LAUNCH();
}

void CudaBackend::masked_fill(const Tensor& x, const uint8_t* mask, double value, Tensor& out) {
  require_f32("masked_fill", x);
  const int64_t n = x.numel();
  if (!n) return;
  DeviceBuffer dmask{size_t(n)};
  CUDA_CHECK(cudaMemcpy(dmask.as<uint8_t>(), mask, size_t(n), cudaMemcpyHostToDevice));
  masked_fill_kernel<<<grid_for(n), kThreads, 0, stream()>>>(fptr(x), dmask.as<uint8_t>(),
                                                             float(value), fptr(out), n);
  CUDA_CHECK_LAUNCH();
}

void CudaBackend::sum_to(const Tensor& x, Tensor& out) {
  require_f32("sum_to", x);
  const int64_t O = out.numel();
  if (!O) return;
  Shape shape = x.shape();
  std::vector<int64_t> sx(shape.size()), so = broadcast_strides(out.shape(), shape);
  int64_t stride = 1;
  for (int64_t d = int64_t(shape.size()) - 1; d >= 0; --d) {
    sx[size_t(d)] = stride;
    stride *= shape[size_t(d)];
  }
  collapse(shape, {&sx, &so});
  SumTo s{};
  s.R = 1;
  for (size_t d = 0; d < shape.size(); ++d) {
    const bool kept = so[d] != 0;
    int& k = kept ? s.nk : s.nr;
    if (k == kMaxDims)
      throw std::invalid_argument("[sum_to] too many non-mergeable dimensions: " + x.str() +
                                  " to " + out.str());
    (kept ? s.kshape : s.rshape)[k] = shape[d];
    (kept ? s.kstride : s.rstride)[k] = sx[d];
    if (!kept) s.R *= shape[d];
    ++k;
  }
  if (O >= 8192 && s.R <= 32)
    sum_to_threads<<<grid_for(O), kThreads, 0, stream()>>>(fptr(x), fptr(out), O, s);
  else
    sum_to_blocks<<<unsigned(std::min<int64_t>(O, 1 << 20)), kThreads, 0, stream()>>>(
        fptr(x), fptr(out), O, s);
  CUDA_CHECK_LAUNCH();
}

// ---- GEMM ----------------------------------------------------------------------------------

namespace {
int to_int(const char* op, int64_t v) {
  if (v > INT_MAX)
    throw std::invalid_argument(std::string("[") + op + "] dimension " + std::to_string(v) +
                                " exceeds cuBLAS's int range");
  return int(v);
}
}  // namespace

// Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
void CudaBackend::gemm_strided(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                               const float* A, int64_t sA, const float* B, int64_t sB, float beta,
                               float* C, int64_t sC, int64_t batch) {
  const int m = to_int("gemm", M), n = to_int("gemm", N), k = to_int("gemm", K);
  const int lda = ta ? m : k, ldb = tb ? k : n, ldc = n;
  const cublasOperation_t opA = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t opB = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  if (batch == 1)
    CUBLAS_CHECK(cublasSgemm(blas_, opB, opA, n, m, k, &alpha, B, ldb, A, lda, &beta, C, ldc));
  else
    CUBLAS_CHECK(cublasSgemmStridedBatched(blas_, opB, opA, n, m, k, &alpha, B, ldb, sB, A, lda, sA,
                                           &beta, C, ldc, sC, to_int("gemm", batch)));
}

void CudaBackend::gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                       const Tensor& A, const Tensor& B, double beta, Tensor& C) {
  require_f32("gemm", C);
  if (!M || !N) return;
  gemm_strided(ta, tb, M, N, K, float(alpha), fptr(A), 0, fptr(B), 0, float(beta), fptr(C), 0, 1);
}

}  // namespace cuda
}  // namespace ss
