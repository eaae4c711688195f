// The kernels one device provides. Ops are written once against this interface; the CPU
// backend (engine/cpu/) is always present, the CUDA backend (engine/cuda/) registers itself
// when it is built. Kernels receive allocated, contiguous outputs and never record autograd.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace ss {

enum class UnaryOp : uint8_t { neg, exp, log, pow, sqrt, abs, clamp, relu };
enum class BinaryOp : uint8_t { add, sub, mul, div };
enum class ReduceOp : uint8_t { sum, max, logsumexp };

struct Conv2dArgs {
  int64_t N, Cin, H, W, Cout, kh, kw, stride, pad, Ho, Wo;
};

struct Pool2dArgs {
  int64_t N, C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo;
};

class Backend {
 public:
  virtual ~Backend() = default;

  // Memory (a caching pool: freed blocks are kept for reuse).
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* ptr, size_t bytes) = 0;
  virtual void copy_from_host(void* dst, const void* src, size_t bytes) = 0;
  virtual void copy_to_host(void* dst, const void* src, size_t bytes) = 0;

  // Elementwise.
  virtual void fill(Tensor& out, double value) = 0;
  virtual void cast(const Tensor& src, Tensor& out) = 0;  // same shape, any dtypes
  virtual void unary(UnaryOp op, const Tensor& x, Tensor& out, double p0, double p1) = 0;
  // dinp = dout * f'(x) (out is f(x), for ops whose derivative is cheaper from the output).
  virtual void unary_backward(UnaryOp op, const Tensor& x, const Tensor& out, const Tensor& dout,
                              Tensor& dinp, double p0, double p1) = 0;
  // out has the broadcast shape of a and b.
  virtual void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) = 0;
  // out[j] = value where mask[j] else x[j]; mask is host memory of x.numel() bytes.
  virtual void masked_fill(const Tensor& x, const uint8_t* mask, double value, Tensor& out) = 0;
  // Sums x over the dimensions where out (right-aligned) has size 1 or is missing.
  virtual void sum_to(const Tensor& x, Tensor& out) = 0;

  // Reductions over the middle axis of x viewed as [outer, n, inner].
  virtual void reduce(ReduceOp op, const Tensor& x, int64_t outer, int64_t n, int64_t inner,
                      Tensor& out, std::vector<int64_t>* argmax) = 0;
  // softmax (log = false) or log-softmax (log = true) over the middle axis.
  virtual void softmax(const Tensor& x, int64_t outer, int64_t n, int64_t inner, bool log,
                       Tensor& out) = 0;
  virtual void softmax_backward(const Tensor& out, const Tensor& dout, int64_t outer, int64_t n,
                                int64_t inner, bool log, Tensor& dinp) = 0;

  // C = alpha * op(A) op(B) + beta * C with row-major [M, K] x [K, N] -> [M, N].
  virtual void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
                    const Tensor& A, const Tensor& B, double beta, Tensor& C) = 0;

  // Convolution (NCHW). dinp / dweight / dbias may be undefined when not needed.
  virtual void conv2d_forward(const Conv2dArgs& a, const Tensor& x, const Tensor& weight,
                              const Tensor& bias, Tensor& out) = 0;
  virtual void conv2d_backward(const Conv2dArgs& a, const Tensor& x, const Tensor& weight,
                               const Tensor& dout, Tensor* dinp, Tensor* dweight,
                               Tensor* dbias) = 0;

  // Pools. max_pool2d records the flat argmax of each output (first maximum wins).
  virtual void max_pool2d_forward(const Pool2dArgs& a, const Tensor& x, Tensor& out,
                                  std::vector<int64_t>& argmax) = 0;
  virtual void max_pool2d_backward(const Pool2dArgs& a, const Tensor& dout,
                                   const std::vector<int64_t>& argmax, Tensor& dinp) = 0;
  virtual void avg_pool2d_forward(const Pool2dArgs& a, const Tensor& x, Tensor& out) = 0;
  virtual void avg_pool2d_backward(const Pool2dArgs& a, const Tensor& dout, Tensor& dinp) = 0;

  // Batch norm over x viewed as [N, C, S] (S = H*W, or 1 for [N, C]):
  //   out = y = weight * (x - mean) * invstd + bias, then + residual where defined (same shape
  //   as x), then max(., 0) where relu: a ResNet's BN, residual add and ReLU in one pass.
  virtual void batch_norm_forward(const Tensor& x, int64_t N, int64_t C, int64_t S,
                                  const Tensor& weight, const Tensor& bias, const Tensor& mean,
                                  const Tensor& invstd, const Tensor& residual, bool relu,
                                  Tensor& out) = 0;
  virtual void batch_norm_stats(const Tensor& x, int64_t N, int64_t C, int64_t S, double eps,
                                Tensor& mean, Tensor& var_biased, Tensor& invstd) = 0;
  // Training-mode backward through batch statistics (train = true) or fixed ones. Where
  // relu_out is defined (the forward's output with relu fused on), dout is taken as 0 wherever
  // relu_out <= 0: the ReLU's backward, fused.
  virtual void batch_norm_backward(const Tensor& x, const Tensor& dout, const Tensor& relu_out,
                                   int64_t N, int64_t C, int64_t S, const Tensor& weight,
                                   const Tensor& mean, const Tensor& invstd, bool train,
                                   Tensor* dinp, Tensor* dweight, Tensor* dbias) = 0;

  // Cross-entropy: loss = mean_n (logsumexp(x_n) - x_n[y_n]); labels are already checked.
  virtual void cross_entropy_forward(const Tensor& logits, const std::vector<int64_t>& labels,
                                     Tensor& loss, Tensor& logprob) = 0;
  virtual void cross_entropy_backward(const Tensor& logprob, const std::vector<int64_t>& labels,
                                      const Tensor& dloss, Tensor& dlogits) = 0;
};

// The backend of a device; throws when that device's backend is not built in.
Backend& backend(Device device);
inline Backend& backend(const Tensor& t) {
  return backend(t.device());
}
void register_backend(Device device, Backend* b);
bool has_backend(Device device);

}  // namespace ss
