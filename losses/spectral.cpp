// Spectral contrastive loss; see losses/spectral.h.
#include "losses/spectral.h"

#include <stdexcept>

#include "engine/ops.h"

namespace ss {

// z [K*N, D] -> []
Tensor spectral_loss(const Tensor& z, int64_t K, double w_repel) {
  const int64_t N = views_batch("spectral", z, K);
  if (N < 2)
    throw std::invalid_argument("[spectral] needs N >= 2 images (pairs n != m), got z " + z.str() +
                                " with K = " + std::to_string(K));
  Tensor total;
  for (int64_t k = 0; k < K; ++k)
    for (int64_t l = k + 1; l < K; ++l) {
      const Tensor a = z.slice(k * N, (k + 1) * N), b = z.slice(l * N, (l + 1) * N);

      // attract = -2 mean_n a_n.b_n
      const Tensor attract = mul(sum(mul(a, b)), -2.0 / double(N));

      // repel = mean_{n != m} (a_n.b_m)^2: the diagonal of g = a b^T zeroed, then summed
      const Tensor g = matmul(a, b, false, true);  // [N, N]
      const Tensor repel =
          mul(sum(fill_diagonal(mul(g, g), 0.0)), 1.0 / (double(N) * double(N - 1)));

      const Tensor pair = add(attract, mul(repel, w_repel));
      total = total.defined() ? add(total, pair) : pair;
    }
  return mul(total, 2.0 / (double(K) * double(K - 1)));  // mean over the K(K-1)/2 pairs
}

namespace {
class Spectral : public Loss {
 public:
  explicit Spectral(double w_repel) : w_repel_(w_repel) {}

  // z [K*N, D] -> loss [], diagnostics
  LossOutput forward(const Tensor& z, int64_t K) const override {
    LossOutput out{spectral_loss(z, K, w_repel_), {}};
    NoGradGuard no_grad;
    add_wang_isola_metrics(normalize(z, 1, 1e-12), K, out.diagnostics);
    return out;
  }
  std::string name() const override { return "spectral"; }
  LossParams params() const override { return {{"w_repel", w_repel_}}; }

 private:
  double w_repel_;
};
}  // namespace

LossPtr make_spectral(const LossParams& params) {
  ParamReader r("spectral", params);
  const double w_repel = r.non_negative("w_repel", 1.0);
  r.finish();
  return std::make_unique<Spectral>(w_repel);
}

}  // namespace ss
