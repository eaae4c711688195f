// The CUDA backend: cuBLAS for GEMMs, the engine's own kernels for everything else, memory from
// the caching allocator. float32 only (float64 tensors are refused on the device by
// Tensor::empty). All work is queued on the legacy default stream, in order; copies to the
// host wait for it.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "engine/backend.h"

namespace ss::cuda {

class CudaBackend final : public Backend {
 public:
  CudaBackend();
  ~CudaBackend() override;

  void* allocate(size_t bytes) override;
  void deallocate(void* ptr, size_t bytes) override;
  void copy_from_host(void* dst, const void* src, size_t bytes) override;
  void copy_to_host(void* dst, const void* src, size_t bytes) override;

  void fill(Tensor& out, double value) override;
  void cast(const Tensor& src, Tensor& out) override;
  void unary(UnaryOp op, const Tensor& x, Tensor& out, double p0, double p1) override;
  void unary_backward(UnaryOp op, const Tensor& x, const Tensor& out, const Tensor& dout,
                      Tensor& dinp, double p0, double p1) override;
  void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) override;
  void masked_fill(const Tensor& x, const uint8_t* mask, double value, Tensor& out) override;
  void sum_to(const Tensor& x, Tensor& out) override;

  void reduce(ReduceOp op, const Tensor& x, int64_t outer, int64_t n, int64_t inner, Tensor& out,
              std::vector<int64_t>* argmax) override;
  void softmax(const Tensor& x, int64_t outer, int64_t n, int64_t inner, bool log,
               Tensor& out) override;
  void softmax_backward(const Tensor& out, const Tensor& dout, int64_t outer, int64_t n,
                        int64_t inner, bool log, Tensor& dinp) override;

  void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
            const Tensor& A, const Tensor& B, double beta, Tensor& C) override;

  void conv2d_forward(const Conv2dArgs& a, const Tensor& x, const Tensor& weight,
                      const Tensor& bias, Tensor& out) override;
  void conv2d_backward(const Conv2dArgs& a, const Tensor& x, const Tensor& weight,
                       const Tensor& dout, Tensor* dinp, Tensor* dweight, Tensor* dbias) override;

  void max_pool2d_forward(const Pool2dArgs& a, const Tensor& x, Tensor& out,
                          std::vector<int64_t>& argmax) override;
  void max_pool2d_backward(const Pool2dArgs& a, const Tensor& dout,
                           const std::vector<int64_t>& argmax, Tensor& dinp) override;
  void avg_pool2d_forward(const Pool2dArgs& a, const Tensor& x, Tensor& out) override;
  void avg_pool2d_backward(const Pool2dArgs& a, const Tensor& dout, Tensor& dinp) override;

  void batch_norm_forward(const Tensor& x, int64_t N, int64_t C, int64_t S, const Tensor& weight,
                          const Tensor& bias, const Tensor& mean, const Tensor& invstd,
                          const Tensor& residual, bool relu, Tensor& out) override;
  void batch_norm_stats(const Tensor& x, int64_t N, int64_t C, int64_t S, double eps, Tensor& mean,
                        Tensor& var_biased, Tensor& invstd) override;
  void batch_norm_backward(const Tensor& x, const Tensor& dout, const Tensor& relu_out, int64_t N,
                           int64_t C, int64_t S, const Tensor& weight, const Tensor& mean,
                           const Tensor& invstd, bool train, Tensor* dinp, Tensor* dweight,
                           Tensor* dbias) override;

  void cross_entropy_forward(const Tensor& logits, const std::vector<int64_t>& labels, Tensor& loss,
                             Tensor& logprob) override;
  void cross_entropy_backward(const Tensor& logprob, const std::vector<int64_t>& labels,
                              const Tensor& dloss, Tensor& dlogits) override;

 private:
  // Row-major C[b] = alpha op(A[b]) op(B[b]) + beta C[b] for b < batch, element strides sA, sB,
  // sC between the matrices (a stride of 0 reuses one matrix for every b).
  void gemm_strided(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                    const float* A, int64_t sA, const float* B, int64_t sB, float beta, float* C,
                    int64_t sC, int64_t batch);
  // Throws the op's message when a kernel raised flag_ (one synchronising read).
  void check_flag(const char* message);

  cublasHandle_t blas_ = nullptr;
  int* flag_ = nullptr;  // one device int that kernels raise on a user error (e.g. a masked row)
};

// The stream every kernel and copy of the backend uses: the default stream, on which the
// synchronous cudaMemcpy calls are ordered too.
inline cudaStream_t stream() {
  return nullptr;
}

// Typed device pointers of f32 tensors (the only dtype on the device).
inline const float* fptr(const Tensor& t) {
  return t.defined() ? static_cast<const float*>(t.raw_data()) : nullptr;
}
inline float* fptr(Tensor& t) {
  return static_cast<float*>(t.raw_data());
}

}  // namespace ss::cuda
