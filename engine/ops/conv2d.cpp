// Convolution and pooling ops (NCHW): argument checks, output sizes and the tape.
#include <memory>

#include "engine/ops/common.h"

namespace ss {

using detail::fail;

// out = floor((in + 2 pad - dilation (kernel - 1) - 1) / stride) + 1 (case B27)
int64_t conv_out_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation) {
  const int64_t span = in + 2 * pad - dilation * (kernel - 1) - 1;
  return span < 0 ? 0 : span / stride + 1;
}

namespace {
// The profiler's name for a conv: the kernel classes take different CPU paths (3x3 stride 1:
// Winograd; others: im2col), so `selfsup bench` shows them apart.
const char* conv_kind(const Tensor& weight, int64_t stride) {
  const bool k3 = weight.dim() == 4 && weight.size(2) == 3 && weight.size(3) == 3;
  const bool k1 = weight.dim() == 4 && weight.size(2) == 1 && weight.size(3) == 1;
  if (k3 && stride == 1) return "conv2d 3x3 s1";
  if (k3 && stride == 2) return "conv2d 3x3 s2";
  if (k1) return "conv2d 1x1";
  return "conv2d";
}
}  // namespace

// x [N, Cin, H, W], weight [Cout, Cin, kh, kw] -> [N, Cout, Ho, Wo]
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t stride,
              int64_t pad) {
  const char* kind = conv_kind(weight, stride);
  prof::Scope ps(kind);
  const std::string shapes = "input " + x.str() + ", weight " + weight.str() +
                             (bias.defined() ? ", bias " + bias.str() : std::string());
  if (x.dim() != 4 || weight.dim() != 4)
    fail("conv2d", "expects input [N, Cin, H, W] and weight [Cout, Cin, kh, kw]; got " + shapes);
  detail::check_compatible("conv2d", x, weight);
  if (x.size(1) != weight.size(1))
    fail("conv2d", "input channels " + std::to_string(x.size(1)) + " differ from weight's " +
                       std::to_string(weight.size(1)) + "; " + shapes);
  if (bias.defined() && (bias.dim() != 1 || bias.size(0) != weight.size(0)))
    fail("conv2d", "bias must be [Cout]; " + shapes);
  if (stride < 1 || pad < 0)
    fail("conv2d", "stride must be >= 1 and pad >= 0, got stride " + std::to_string(stride) +
                       " pad " + std::to_string(pad) + "; " + shapes);
  Conv2dArgs a{
      x.size(0), x.size(1), x.size(2), x.size(3), weight.size(0), weight.size(2), weight.size(3),
      stride,    pad,       0,         0};
  a.Ho = conv_out_size(a.H, a.kh, stride, pad);
  a.Wo = conv_out_size(a.W, a.kw, stride, pad);
  if (a.Ho <= 0 || a.Wo <= 0)
    fail("conv2d",
         "kernel larger than the padded input; " + shapes + ", pad " + std::to_string(pad));
  Tensor out = Tensor::empty({a.N, a.Cout, a.Ho, a.Wo}, x.dtype(), x.device());
  if (a.N) backend(x).conv2d_forward(a, x, weight, bias, out);

  const bool gx = detail::wants_grad(x), gw = detail::wants_grad(weight);
  const bool gb = detail::wants_grad(bias);
  if (!gx && !gw && !gb) return out;
  const Tensor kx = x.detach(), kw = weight.detach();
  return record(kind, out, {x, weight, bias}, [=](const Tensor& dout) {
    Tensor dx, dw, db;
    if (gx) dx = Tensor::empty(kx.shape(), kx.dtype(), kx.device());
    if (gw) dw = Tensor::zeros(kw.shape(), kw.dtype(), kw.device());
    if (gb) db = Tensor::empty({a.Cout}, kx.dtype(), kx.device());
    backend(dout).conv2d_backward(a, kx, kw, dout, gx ? &dx : nullptr, gw ? &dw : nullptr,
                                  gb ? &db : nullptr);
    return std::vector<Tensor>{dx, dw, db};
  });
}

namespace {
Pool2dArgs pool_args(const char* op, const Tensor& x, int64_t kh, int64_t kw, int64_t sh,
                     int64_t sw, int64_t ph, int64_t pw) {
  if (x.dim() != 4) fail(op, "expects input [N, C, H, W], got " + x.str());
  if (kh < 1 || kw < 1 || sh < 1 || sw < 1 || ph < 0 || pw < 0)
    fail(op, "kernel and stride must be >= 1 and padding >= 0; input " + x.str());
  if (2 * ph > kh || 2 * pw > kw)
    fail(op, "padding must be at most half the kernel size; input " + x.str() + ", kernel " +
                 std::to_string(kh) + "x" + std::to_string(kw) + ", pad " + std::to_string(ph) +
                 "x" + std::to_string(pw));
  Pool2dArgs a{x.size(0), x.size(1), x.size(2), x.size(3), kh, kw, sh, sw, ph, pw, 0, 0};
  a.Ho = conv_out_size(a.H, kh, sh, ph);
  a.Wo = conv_out_size(a.W, kw, sw, pw);
  if (a.Ho <= 0 || a.Wo <= 0)
    fail(op, "window larger than the padded input " + x.str() + ", kernel " + std::to_string(kh) +
                 "x" + std::to_string(kw));
  return a;
}
}  // namespace

Tensor max_pool2d(const Tensor& x, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
                  int64_t pw) {
  prof::Scope ps("max_pool2d");
  const Pool2dArgs a = pool_args("max_pool2d", x, kh, kw, sh, sw, ph, pw);
  Tensor out = Tensor::empty({a.N, a.C, a.Ho, a.Wo}, x.dtype(), x.device());
  auto argmax = std::make_shared<std::vector<int64_t>>();
  backend(x).max_pool2d_forward(a, x, out, *argmax);
  const Shape in_shape = x.shape();
  return record("max_pool2d", out, {x}, [=](const Tensor& dout) {
    Tensor dx = Tensor::empty(in_shape, dout.dtype(), dout.device());
    backend(dout).max_pool2d_backward(a, dout, *argmax, dx);
    return std::vector<Tensor>{dx};
  });
}

Tensor max_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t pad) {
  return max_pool2d(x, kernel, kernel, stride, stride, pad, pad);
}

Tensor avg_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t pad) {
  prof::Scope ps("avg_pool2d");
  const Pool2dArgs a = pool_args("avg_pool2d", x, kernel, kernel, stride, stride, pad, pad);
  Tensor out = Tensor::empty({a.N, a.C, a.Ho, a.Wo}, x.dtype(), x.device());
  backend(x).avg_pool2d_forward(a, x, out);
  const Shape in_shape = x.shape();
  return record("avg_pool2d", out, {x}, [=](const Tensor& dout) {
    Tensor dx = Tensor::empty(in_shape, dout.dtype(), dout.device());
    backend(dout).avg_pool2d_backward(a, dout, dx);
    return std::vector<Tensor>{dx};
  });
}

// [N, C, H, W] -> [N, C]: the mean over each plane.
Tensor global_avg_pool(const Tensor& x) {
  prof::Scope ps("global_avg_pool");
  if (x.dim() != 4) fail("global_avg_pool", "expects input [N, C, H, W], got " + x.str());
  return mean(x.reshape({x.size(0), x.size(1), x.size(2) * x.size(3)}), 2);
}

}  // namespace ss
