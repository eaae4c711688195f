// Batch normalisation with PyTorch's BatchNorm1d / BatchNorm2d semantics.
#include "engine/ops/common.h"

namespace ss {

using detail::fail;

Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& running_mean,
                  Tensor& running_var, bool training, double momentum, double eps) {
  prof::Scope ps("batch_norm");
  if (x.dim() != 2 && x.dim() != 4)
    fail("batch_norm", "expects input [N, C] or [N, C, H, W], got " + x.str());
  const int64_t N = x.size(0), C = x.size(1), S = x.dim() == 4 ? x.size(2) * x.size(3) : 1;
  auto check_param = [&](const Tensor& p, const char* name) {
    if (p.defined() && (p.dim() != 1 || p.size(0) != C || p.dtype() != x.dtype()))
      fail("batch_norm", std::string(name) + " " + p.str() + " must be [" + std::to_string(C) +
                             "] of the input's dtype; input " + x.str());
  };
  check_param(weight, "weight");
  check_param(bias, "bias");
  check_param(running_mean, "running_mean");
  check_param(running_var, "running_var");
  if (!running_mean.defined() || !running_var.defined())
    fail("batch_norm", "running statistics are required; input " + x.str());
  if (training && N * S < 2)
    fail("batch_norm", "training needs more than one value per channel, got input " + x.str() +
                           " (" + std::to_string(N * S) + " value per channel)");

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
  backend(x).batch_norm_forward(x, N, C, S, weight, bias, mean, invstd, out);

  const bool gx = detail::wants_grad(x), gw = detail::wants_grad(weight);
  const bool gb = detail::wants_grad(bias);
  if (!gx && !gw && !gb) return out;
  const Tensor kx = x.detach(), kw = weight.defined() ? weight.detach() : Tensor();
  return record("batch_norm", out, {x, weight, bias}, [=](const Tensor& dout) {
    Tensor dx, dw, db;
    if (gx) dx = Tensor::empty(kx.shape(), kx.dtype(), kx.device());
    if (gw) dw = Tensor::empty({C}, kx.dtype(), kx.device());
    if (gb) db = Tensor::empty({C}, kx.dtype(), kx.device());
    backend(dout).batch_norm_backward(kx, dout, N, C, S, kw, mean, invstd, training,
                                      gx ? &dx : nullptr, gw ? &dw : nullptr, gb ? &db : nullptr);
    return std::vector<Tensor>{dx, dw, db};
  });
}

}  // namespace ss
