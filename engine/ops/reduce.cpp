// Reductions (sum, mean, max, logsumexp), softmax and cross-entropy.
#include <memory>

#include "engine/ops/common.h"

namespace ss {

using detail::fail;

namespace {
Shape reduced_shape(const Tensor& x, int64_t dim, bool keepdim) {
  Shape s = x.shape();
  if (keepdim)
    s[size_t(dim)] = 1;
  else
    s.erase(s.begin() + dim);
  return s;
}

void check_nonempty(const char* op, const Tensor& x, int64_t dim) {
  if (x.size(dim) == 0)
    fail(op, "reduction over an empty dimension " + std::to_string(dim) + " of " + x.str());
}
}  // namespace

Tensor sum(const Tensor& x) {
  prof::Scope ps("sum");
  Tensor out = Tensor::empty({}, x.dtype(), x.device());
  backend(x).reduce(ReduceOp::sum, x, 1, x.numel(), 1, out, nullptr);
  const Shape in_shape = x.shape();
  return record("sum", out, {x}, [in_shape](const Tensor& dout) {
    return std::vector<Tensor>{detail::expand_to(dout, in_shape)};
  });
}

Tensor sum(const Tensor& x, int64_t dim_in, bool keepdim) {
  prof::Scope ps("sum");
  const int64_t dim = detail::wrap_dim("sum", x, dim_in);
  int64_t outer, n, inner;
  detail::split_dims(x, dim, outer, n, inner);
  Tensor out = Tensor::empty(reduced_shape(x, dim, keepdim), x.dtype(), x.device());
  backend(x).reduce(ReduceOp::sum, x, outer, n, inner, out, nullptr);
  const Shape in_shape = x.shape(), keep = detail::keepdim_shape(x.shape(), dim);
  return record("sum", out, {x}, [=](const Tensor& dout) {
    return std::vector<Tensor>{detail::expand_to(dout.reshape(keep), in_shape)};
  });
}

Tensor mean(const Tensor& x) {
  if (x.numel() == 0) fail("mean", "mean of an empty tensor " + x.str());
  return mul(sum(x), 1.0 / double(x.numel()));
}

Tensor mean(const Tensor& x, int64_t dim_in, bool keepdim) {
  const int64_t dim = detail::wrap_dim("mean", x, dim_in);
  check_nonempty("mean", x, dim);
  return mul(sum(x, dim, keepdim), 1.0 / double(x.size(dim)));
}

Tensor max(const Tensor& x, int64_t dim_in, bool keepdim) {
  prof::Scope ps("max");
  const int64_t dim = detail::wrap_dim("max", x, dim_in);
  check_nonempty("max", x, dim);
  int64_t outer, n, inner;
  detail::split_dims(x, dim, outer, n, inner);
  Tensor out = Tensor::empty(reduced_shape(x, dim, keepdim), x.dtype(), x.device());
  auto argmax = std::make_shared<std::vector<int64_t>>();
  backend(x).reduce(ReduceOp::max, x, outer, n, inner, out, argmax.get());
  const Shape in_shape = x.shape();
  const DType dt = x.dtype();
  return record("max", out, {x}, [=](const Tensor& dout) {
    // The whole gradient goes to the first maximum of each row.
    std::vector<double> g = dout.to_vector(), d(size_t(outer * n * inner), 0.0);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t j = 0; j < inner; ++j) {
        const size_t oi = size_t(o * inner + j);
        d[size_t((o * n + (*argmax)[oi]) * inner + j)] = g[oi];
      }
    Tensor dx = Tensor::from_vector(d, in_shape).to(dt);
    return std::vector<Tensor>{dx.to(dout.device())};
  });
}

Tensor logsumexp(const Tensor& x, int64_t dim_in, bool keepdim) {
  prof::Scope ps("logsumexp");
  const int64_t dim = detail::wrap_dim("logsumexp", x, dim_in);
  check_nonempty("logsumexp", x, dim);
  int64_t outer, n, inner;
  detail::split_dims(x, dim, outer, n, inner);
  Tensor out = Tensor::empty(reduced_shape(x, dim, keepdim), x.dtype(), x.device());
  backend(x).reduce(ReduceOp::logsumexp, x, outer, n, inner, out, nullptr);
  const Shape keep = detail::keepdim_shape(x.shape(), dim);
  const Tensor kx = x.detach(), ko = out.detach();
  return record("logsumexp", out, {x}, [=](const Tensor& dout) {
    // d lse / dx_i = softmax_i = exp(x_i - lse)
    Tensor p = exp(sub(kx, ko.reshape(keep)));
    return std::vector<Tensor>{mul(p, dout.reshape(keep))};
  });
}

namespace {
Tensor softmax_op(const char* name, const Tensor& x, int64_t dim_in, bool log) {
  prof::Scope ps(name);
  const int64_t dim = detail::wrap_dim(name, x, dim_in);
  check_nonempty(name, x, dim);
  int64_t outer, n, inner;
  detail::split_dims(x, dim, outer, n, inner);
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  backend(x).softmax(x, outer, n, inner, log, out);
  const Tensor ko = out.detach();
  return record(name, out, {x}, [=](const Tensor& dout) {
    Tensor dx = Tensor::empty(ko.shape(), ko.dtype(), ko.device());
    backend(dout).softmax_backward(ko, dout, outer, n, inner, log, dx);
    return std::vector<Tensor>{dx};
  });
}
}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) {
  return softmax_op("softmax", x, dim, false);
}
Tensor log_softmax(const Tensor& x, int64_t dim) {
  return softmax_op("log_softmax", x, dim, true);
}

// loss = mean_n (logsumexp_c x_nc - x_{n, y_n}); every label must lie in [0, C) (case B37).
Tensor cross_entropy(const Tensor& logits, const std::vector<int64_t>& labels) {
  prof::Scope ps("cross_entropy");
  if (logits.dim() != 2) fail("cross_entropy", "expects logits [N, C], got " + logits.str());
  const int64_t N = logits.size(0), C = logits.size(1);
  if (int64_t(labels.size()) != N)
    fail("cross_entropy", std::to_string(labels.size()) + " labels for logits " + logits.str());
  if (N == 0 || C == 0) fail("cross_entropy", "empty logits " + logits.str());
  for (size_t i = 0; i < labels.size(); ++i)
    if (labels[i] < 0 || labels[i] >= C)
      fail("cross_entropy", "label " + std::to_string(labels[i]) + " at row " + std::to_string(i) +
                                " is outside [0, " + std::to_string(C) + ") for logits " +
                                logits.str());
  Tensor loss = Tensor::empty({}, logits.dtype(), logits.device());
  Tensor logprob = Tensor::empty(logits.shape(), logits.dtype(), logits.device());
  backend(logits).cross_entropy_forward(logits, labels, loss, logprob);
  auto lab = std::make_shared<const std::vector<int64_t>>(labels);
  return record("cross_entropy", loss, {logits}, [=](const Tensor& dout) {
    Tensor d = Tensor::empty(logprob.shape(), logprob.dtype(), logprob.device());
    backend(dout).cross_entropy_backward(logprob, *lab, dout, d);
    return std::vector<Tensor>{d};
  });
}

}  // namespace ss
