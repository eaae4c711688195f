// Elementwise ops with broadcasting, and their derivatives.
#include "engine/ops/common.h"

namespace ss {

using detail::fail;

namespace detail {

Tensor sum_to_shape(const Tensor& dout, const Shape& shape) {
  if (dout.shape() == shape) return dout;
  Tensor out = Tensor::empty(shape, dout.dtype(), dout.device());
  backend(dout).sum_to(dout, out);
  return out;
}

Tensor expand_to(const Tensor& t, const Shape& shape) {
  if (t.shape() == shape) return t;
  Tensor out = Tensor::empty(shape, t.dtype(), t.device());
  backend(t).binary(BinaryOp::add, t, Tensor::scalar(0.0, t.dtype(), t.device()), out);
  return out;
}

}  // namespace detail

namespace {

// NumPy broadcasting: dimensions aligned from the right, a size of 1 stretches.
Shape broadcast_shape(const char* op, const Shape& a, const Shape& b) {
  Shape out(std::max(a.size(), b.size()), 1);
  for (size_t i = 0; i < out.size(); ++i) {
    const int64_t da = i < a.size() ? a[a.size() - 1 - i] : 1;
    const int64_t db = i < b.size() ? b[b.size() - 1 - i] : 1;
    if (da != db && da != 1 && db != 1)
      fail(op, "shapes " + shape_str(a) + " and " + shape_str(b) + " cannot be broadcast");
    out[out.size() - 1 - i] = da == 1 ? db : da;
  }
  return out;
}

Tensor binary_op(const char* name, BinaryOp op, const Tensor& a, const Tensor& b) {
  prof::Scope ps(name);
  detail::check_compatible(name, a, b);
  Tensor out = Tensor::empty(broadcast_shape(name, a.shape(), b.shape()), a.dtype(), a.device());
  backend(a).binary(op, a, b, out);
  if (!detail::wants_grad(a) && !detail::wants_grad(b)) return out;

  const Shape sa = a.shape(), sb = b.shape();
  const bool ga = detail::wants_grad(a), gb = detail::wants_grad(b);
  // Only the operands a derivative needs are kept alive on the tape.
  const Tensor ka = (op == BinaryOp::mul && gb) ? a.detach() : Tensor();
  const Tensor kb = ((op == BinaryOp::mul && ga) || op == BinaryOp::div) ? b.detach() : Tensor();
  const Tensor ko = (op == BinaryOp::div && gb) ? out.detach() : Tensor();
  return record(name, out, {a, b}, [=](const Tensor& dout) {
    using detail::sum_to_shape;
    Tensor da, db;
    switch (op) {
      case BinaryOp::add:
        if (ga) da = sum_to_shape(dout, sa);
        if (gb) db = sum_to_shape(dout, sb);
        break;
      case BinaryOp::sub:
        if (ga) da = sum_to_shape(dout, sa);
        if (gb) db = sum_to_shape(neg(dout), sb);
        break;
      case BinaryOp::mul:  // d(ab) = b da + a db
        if (ga) da = sum_to_shape(mul(dout, kb), sa);
        if (gb) db = sum_to_shape(mul(dout, ka), sb);
        break;
      case BinaryOp::div:  // d(a/b) = da / b - (a/b) db / b
        if (ga) da = sum_to_shape(div(dout, kb), sa);
        if (gb) db = sum_to_shape(neg(div(mul(dout, ko), kb)), sb);
        break;
    }
    return std::vector<Tensor>{da, db};
  });
}

// Which saved values each unary derivative reads: the input x, the output y, or neither.
enum class Keep { x, y, none };

Tensor unary_op(const char* name, UnaryOp op, const Tensor& x, Keep keep, double p0 = 0,
                double p1 = 0) {
  prof::Scope ps(name);
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  backend(x).unary(op, x, out, p0, p1);
  if (!detail::wants_grad(x)) return out;
  const Tensor kx = keep == Keep::x ? x.detach() : (keep == Keep::y ? out.detach() : Tensor());
  const Tensor ky = keep == Keep::y ? out.detach() : kx;
  return record(name, out, {x}, [=](const Tensor& dout) {
    Tensor dinp = Tensor::empty(dout.shape(), dout.dtype(), dout.device());
    const Tensor& sx = kx.defined() ? kx : dout;
    const Tensor& sy = ky.defined() ? ky : dout;
    backend(dout).unary_backward(op, sx, sy, dout, dinp, p0, p1);
    return std::vector<Tensor>{dinp};
  });
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  return binary_op("add", BinaryOp::add, a, b);
}
Tensor sub(const Tensor& a, const Tensor& b) {
  return binary_op("sub", BinaryOp::sub, a, b);
}
Tensor mul(const Tensor& a, const Tensor& b) {
  return binary_op("mul", BinaryOp::mul, a, b);
}
Tensor div(const Tensor& a, const Tensor& b) {
  return binary_op("div", BinaryOp::div, a, b);
}

Tensor add(const Tensor& a, double s) {
  return add(a, Tensor::scalar(s, a.dtype(), a.device()));
}
Tensor mul(const Tensor& a, double s) {
  return mul(a, Tensor::scalar(s, a.dtype(), a.device()));
}

Tensor neg(const Tensor& x) {
  return unary_op("neg", UnaryOp::neg, x, Keep::none);
}
Tensor exp(const Tensor& x) {
  return unary_op("exp", UnaryOp::exp, x, Keep::y);
}
Tensor log(const Tensor& x) {
  return unary_op("log", UnaryOp::log, x, Keep::x);
}
Tensor pow(const Tensor& x, double p) {
  return unary_op("pow", UnaryOp::pow, x, Keep::x, p);
}
Tensor sqrt(const Tensor& x) {
  return unary_op("sqrt", UnaryOp::sqrt, x, Keep::y);
}
Tensor abs(const Tensor& x) {
  return unary_op("abs", UnaryOp::abs, x, Keep::x);
}
Tensor relu(const Tensor& x) {
  return unary_op("relu", UnaryOp::relu, x, Keep::y);
}

Tensor clamp(const Tensor& x, double lo, double hi) {
  if (!(lo <= hi))
    fail("clamp", "lower bound " + std::to_string(lo) + " exceeds upper bound " +
                      std::to_string(hi) + " for " + x.str());
  return unary_op("clamp", UnaryOp::clamp, x, Keep::x, lo, hi);
}

Tensor clamp_min(const Tensor& x, double lo) {
  return unary_op("clamp", UnaryOp::clamp, x, Keep::x, lo, HUGE_VAL);
}

}  // namespace ss
