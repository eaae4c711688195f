// Batch normalisation with PyTorch's BatchNorm1d / BatchNorm2d semantics.
#include "engine/ops/common.h"

namespace ss {

using detail::fail;

namespace {

// batch_norm (relu = false, residual undefined) and batch_norm_add_relu share everything but
// the name and what is fused onto the output.
Tensor batch_norm_impl(const char* op, const Tensor& x, const Tensor& weight, const Tensor& bias,
                       Tensor& running_mean, Tensor& running_var, const Tensor& residual, bool relu,
                       bool training, double momentum, double eps) {
  prof::Scope ps(op);
  if (x.dim() != 2 && x.dim() != 4)
    fail(op, "expects input [N, C] or [N, C, H, W], got " + x.str());
  const int64_t N = x.size(0), C = x.size(1), S = x.dim() == 4 ? x.size(2) * x.size(3) : 1;
  auto check_param = [&](const Tensor& p, const char* name) {
    if (p.defined() && (p.dim() != 1 || p.size(0) != C || p.dtype() != x.dtype()))
      fail(op, std::string(name) + " " + p.str() + " must be [" + std::to_string(C) +
                   "] of the input's dtype; input " + x.str());
  };
  check_param(weight, "weight");
  check_param(bias, "bias");
  check_param(running_mean, "running_mean");
  check_param(running_var, "running_var");
  if (residual.defined() && (residual.shape() != x.shape() || residual.dtype() != x.dtype() ||
                             residual.device() != x.device()))
    fail(op, "residual " + residual.str() + " must match the input " + x.str());
  if (!running_mean.defined() || !running_var.defined())
    fail(op, "running statistics are required; input " + x.str());
  if (training && N * S < 2)
    fail(op, "training needs more than one value per channel, got input " + x.str() + " (" +
                 std::to_string(N * S) + " value per channel)");

  Tensor mean = Tensor::empty({C}, x.dtype(), x.device());
  Tensor invstd = Tensor::empty({C}, x.dtype(), x.device());
  if (training) {
    Tensor var = Tensor::empty({C}, x.dtype(), x.device());
    backend(x).batch_norm_stats(x, N, C, S, eps, mean, var, invstd);
    // running = (1 - momentum) running + momentum batch, the variance unbiased: M / (M - 1).
    NoGradGuard ng;
    const double M = double(N * S);
    running_mean.copy_(add(mul(running_mean, 1.0 - momentum), mul(mean, momentum)));
    running_var.copy_(add(mul(running_var, 1.0 - momentum), mul(var, momentum * M / (M - 1))));
  } else {
    NoGradGuard ng;
    mean.copy_(running_mean);
    invstd.copy_(div(Tensor::ones({C}, x.dtype(), x.device()), sqrt(add(running_var, eps))));
  }
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  backend(x).batch_norm_forward(x, N, C, S, weight, bias, mean, invstd, residual, relu, out);

  const bool gx = detail::wants_grad(x), gw = detail::wants_grad(weight);
  const bool gb = detail::wants_grad(bias), gr = detail::wants_grad(residual);
  if (!gx && !gw && !gb && !gr) return out;
  const Tensor kx = x.detach(), kw = weight.defined() ? weight.detach() : Tensor();
  const Tensor kout = relu ? out.detach() : Tensor();
  return record(op, out, {x, weight, bias, residual}, [=](const Tensor& dout) {
    Tensor dx, dw, db, dr, g = dout, mask = kout;
    if (gr) {
      // The residual's gradient is dout through the ReLU: made once, and the batch norm's
      // backward reads it unmasked.
      if (relu) {
        g = Tensor::empty(dout.shape(), dout.dtype(), dout.device());
        backend(dout).unary_backward(UnaryOp::relu, kout, kout, dout, g, 0, 0);
        mask = Tensor();
      }
      dr = g;
    }
    if (gx) dx = Tensor::empty(kx.shape(), kx.dtype(), kx.device());
    if (gw) dw = Tensor::empty({C}, kx.dtype(), kx.device());
    if (gb) db = Tensor::empty({C}, kx.dtype(), kx.device());
    if (gx || gw || gb)
      backend(dout).batch_norm_backward(kx, g, mask, N, C, S, kw, mean, invstd, training,
                                        gx ? &dx : nullptr, gw ? &dw : nullptr, gb ? &db : nullptr);
    return std::vector<Tensor>{dx, dw, db, dr};
  });
}

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& running_mean,
                  Tensor& running_var, bool training, double momentum, double eps) {
  return batch_norm_impl("batch_norm", x, weight, bias, running_mean, running_var, Tensor(), false,
                         training, momentum, eps);
}

Tensor batch_norm_add_relu(const Tensor& x, const Tensor& weight, const Tensor& bias,
                           Tensor& running_mean, Tensor& running_var, const Tensor& residual,
                           bool training, double momentum, double eps) {
  return batch_norm_impl("batch_norm_add_relu", x, weight, bias, running_mean, running_var,
                         residual, true, training, momentum, eps);
}

}  // namespace ss
