// L2 normalisation, pairwise squared distances and masking.
#include <memory>

#include "engine/ops/common.h"

namespace ss {

using detail::fail;

// u = x / max(||x||, eps). The norm's derivative is taken as 0 at the zero vector (sqrt's
// gradient at 0 is defined as 0), so the zero row maps to zero with a finite gradient (B01).
Tensor normalize(const Tensor& x, int64_t dim_in, double eps) {
  prof::Scope ps("normalize");
  const int64_t dim = detail::wrap_dim("normalize", x, dim_in);
  if (!(eps > 0)) fail("normalize", "eps must be positive, got " + std::to_string(eps));
  Tensor norm = sqrt(sum(mul(x, x), dim, true));
  return div(x, clamp_min(norm, eps));
}

// ||a_i - b_j||^2 = ||a_i||^2 + ||b_j||^2 - 2 a_i . b_j, clamped at 0; a [N, D], b [M, D].
Tensor pairwise_sqdist(const Tensor& a, const Tensor& b) {
  prof::Scope ps("pairwise_sqdist");
  if (a.dim() != 2 || b.dim() != 2 || a.size(1) != b.size(1))
    fail("pairwise_sqdist", "expects a [N, D] and b [M, D], got " + a.str() + " and " + b.str());
  Tensor na = sum(mul(a, a), 1, true);                          // [N, 1]
  Tensor nb = sum(mul(b, b), 1, true).reshape({1, b.size(0)});  // [1, M]
  Tensor g = matmul(a, b, false, true);                         // [N, M]
  return clamp_min(sub(add(na, nb), mul(g, 2.0)), 0.0);
}

Tensor pairwise_sqdist(const Tensor& a) {
  return pairwise_sqdist(a, a);
}

Tensor masked_fill(const Tensor& x, const std::vector<uint8_t>& mask_in, double value) {
  prof::Scope ps("masked_fill");
  if (int64_t(mask_in.size()) != x.numel())
    fail("masked_fill", "mask of " + std::to_string(mask_in.size()) + " entries for " + x.str());
  auto mask = std::make_shared<const std::vector<uint8_t>>(mask_in);
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  backend(x).masked_fill(x, mask->data(), value, out);
  return record("masked_fill", out, {x}, [mask](const Tensor& dout) {
    Tensor d = Tensor::empty(dout.shape(), dout.dtype(), dout.device());
    backend(dout).masked_fill(dout, mask->data(), 0.0, d);
    return std::vector<Tensor>{d};
  });
}

Tensor fill_diagonal(const Tensor& x, double value) {
  if (x.dim() != 2 || x.size(0) != x.size(1))
    fail("fill_diagonal", "expects a square matrix, got " + x.str());
  const int64_t n = x.size(0);
  std::vector<uint8_t> mask(size_t(n * n), 0);
  for (int64_t i = 0; i < n; ++i) mask[size_t(i * n + i)] = 1;
  return masked_fill(x, mask, value);
}

}  // namespace ss
