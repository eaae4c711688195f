// Matrix products: matmul with either operand transposed, and linear layers.
#include "engine/ops/common.h"

namespace ss {

using detail::fail;

// C [M, N] = op(A) [M, K] x op(B) [K, N]
Tensor matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  prof::Scope ps("matmul");
  detail::check_compatible("matmul", a, b);
  if (a.dim() != 2 || b.dim() != 2)
    fail("matmul", "operands must be 2-D, got " + a.str() + " and " + b.str());
  const int64_t M = ta ? a.size(1) : a.size(0), K = ta ? a.size(0) : a.size(1);
  const int64_t Kb = tb ? b.size(1) : b.size(0), N = tb ? b.size(0) : b.size(1);
  if (K != Kb)
    fail("matmul", "inner dimensions differ: " + shape_str(a.shape()) + (ta ? "^T" : "") + " x " +
                       shape_str(b.shape()) + (tb ? "^T" : "") + " (" + std::to_string(K) + " vs " +
                       std::to_string(Kb) + ")");
  Tensor out = Tensor::empty({M, N}, a.dtype(), a.device());
  if (K == 0)
    out.fill_(0.0);
  else if (M && N)
    backend(a).gemm(ta, tb, M, N, K, 1.0, a, b, 0.0, out);
  if (!detail::wants_grad(a) && !detail::wants_grad(b)) return out;

  const bool ga = detail::wants_grad(a), gb = detail::wants_grad(b);
  const Tensor ka = gb ? a.detach() : Tensor(), kb = ga ? b.detach() : Tensor();
  return record("matmul", out, {a, b}, [=](const Tensor& dC) {
    // With A' = op(A), B' = op(B): dA' = dC B'^T and dB' = A'^T dC, transposed back as needed.
    Tensor da, db;
    if (ga) da = ta ? matmul(kb, dC, tb, true) : matmul(dC, kb, false, !tb);
    if (gb) db = tb ? matmul(dC, ka, true, ta) : matmul(ka, dC, !ta, false);
    return std::vector<Tensor>{da, db};
  });
}

// out [N, Dout] = x [N, Din] weight^T [Din, Dout] + bias [Dout]
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  prof::Scope ps("linear");
  if (x.dim() != 2 || weight.dim() != 2 || x.size(1) != weight.size(1))
    fail("linear", "input " + x.str() + " does not match weight " + weight.str() +
                       " (expected input [N, Din] and weight [Dout, Din])");
  if (bias.defined() && (bias.dim() != 1 || bias.size(0) != weight.size(0)))
    fail("linear", "bias " + bias.str() + " does not match weight " + weight.str());
  Tensor out = matmul(x, weight, false, true);
  return bias.defined() ? add(out, bias) : out;
}

}  // namespace ss
