// Differentiable operations. Each op checks its arguments and throws std::invalid_argument
// whose message starts with "[op]" and names every shape involved.
//
// Shape alphabet in comments: N batch, C channels, H, W spatial, D features, K views.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace ss {

// ---- elementwise, with broadcasting (NumPy rules: align trailing dims, size 1 stretches) ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double s);
Tensor mul(const Tensor& a, double s);
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor pow(const Tensor& x, double p);                // x^p; for non-integer p, x must be >= 0
Tensor sqrt(const Tensor& x);                         // gradient at 0 is defined as 0 (finite)
Tensor abs(const Tensor& x);                          // gradient at 0 is 0
Tensor clamp(const Tensor& x, double lo, double hi);  // gradient 1 strictly inside (lo, hi)
Tensor clamp_min(const Tensor& x, double lo);
Tensor relu(const Tensor& x);

inline Tensor operator+(const Tensor& a, const Tensor& b) {
  return add(a, b);
}
inline Tensor operator-(const Tensor& a, const Tensor& b) {
  return sub(a, b);
}
inline Tensor operator*(const Tensor& a, const Tensor& b) {
  return mul(a, b);
}
inline Tensor operator/(const Tensor& a, const Tensor& b) {
  return div(a, b);
}
inline Tensor operator-(const Tensor& a) {
  return neg(a);
}
inline Tensor operator+(const Tensor& a, double s) {
  return add(a, s);
}
inline Tensor operator*(const Tensor& a, double s) {
  return mul(a, s);
}
inline Tensor operator*(double s, const Tensor& a) {
  return mul(a, s);
}

// ---- shape ---------------------------------------------------------------------------------
Tensor flatten(const Tensor& x);                  // [N, ...] -> [N, prod(...)]
Tensor concat(const std::vector<Tensor>& parts);  // along dimension 0
Tensor transpose(const Tensor& x);                // 2-D [A, B] -> [B, A] (a copy)

// ---- linear algebra ------------------------------------------------------------------------
// [M, K] x [K, N] -> [M, N]; trans_a / trans_b read the stored operand transposed.
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);
// x [N, Din], weight [Dout, Din], bias [Dout] or undefined -> [N, Dout]
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);

// ---- convolution and pooling (NCHW) --------------------------------------------------------
int64_t conv_out_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad,
                      int64_t dilation = 1);
// x [N, Cin, H, W], weight [Cout, Cin, kh, kw], bias [Cout] or undefined
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t stride = 1,
              int64_t pad = 0);
Tensor max_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t pad = 0);
Tensor max_pool2d(const Tensor& x, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
                  int64_t pw);
// Average pooling; padded cells count in the divisor (PyTorch's count_include_pad=True).
Tensor avg_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t pad = 0);
Tensor global_avg_pool(const Tensor& x);  // [N, C, H, W] -> [N, C]

// ---- batch normalisation ([N, C] or [N, C, H, W]) ------------------------------------------
// Training: normalises with the batch statistics (biased variance) and updates the running
// statistics in place: running = (1 - momentum) * running + momentum * batch, with the
// unbiased variance, as PyTorch's BatchNorm1d / BatchNorm2d. Evaluation: running statistics.
// weight / bias [C] may be undefined (no affine).
Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& running_mean,
                  Tensor& running_var, bool training, double momentum = 0.1, double eps = 1e-5);

// relu(batch_norm(x) + residual), or relu(batch_norm(x)) with residual undefined: the same
// values and gradients as the three ops, in fewer passes over memory and without keeping the
// normalised values for the ReLU's backward (a ResNet block's tail).
Tensor batch_norm_add_relu(const Tensor& x, const Tensor& weight, const Tensor& bias,
                           Tensor& running_mean, Tensor& running_var, const Tensor& residual,
                           bool training, double momentum = 0.1, double eps = 1e-5);

// ---- reductions ----------------------------------------------------------------------------
Tensor sum(const Tensor& x);  // all elements -> shape []
Tensor sum(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor max(const Tensor& x, int64_t dim, bool keepdim = false);        // ties: first index
Tensor logsumexp(const Tensor& x, int64_t dim, bool keepdim = false);  // max-shifted
Tensor log_softmax(const Tensor& x, int64_t dim);
Tensor softmax(const Tensor& x, int64_t dim);
// Mean cross-entropy of logits [N, C] against labels in [0, C).
Tensor cross_entropy(const Tensor& logits, const std::vector<int64_t>& labels);

// ---- geometry ------------------------------------------------------------------------------
// x / max(||x||, eps) along dim.
Tensor normalize(const Tensor& x, int64_t dim = 1, double eps = 1e-12);
// ||a_i - b_j||^2 = ||a_i||^2 + ||b_j||^2 - 2 a_i.b_j clamped at 0, one matrix product.
// a [N, D], b [M, D] -> [N, M]. The one-argument form uses b = a.
Tensor pairwise_sqdist(const Tensor& a, const Tensor& b);
Tensor pairwise_sqdist(const Tensor& a);

// ---- masking (before a reduction) ----------------------------------------------------------
// Entries where mask is true become `value` (typically -inf before logsumexp); the gradient
// there is 0. mask is row-major with x's numel.
Tensor masked_fill(const Tensor& x, const std::vector<uint8_t>& mask, double value);
// The diagonal of a square [N, N] matrix becomes `value`.
Tensor fill_diagonal(const Tensor& x, double value);

}  // namespace ss
