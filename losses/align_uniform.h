// Alignment and Uniformity on the hypersphere (Wang & Isola, 2020), and the uniformity metric.
#pragma once
#include <cstdint>

#include "losses/loss.h"

namespace ss {

struct AlignUniformOptions {
  double alpha = 2;    // exponent of the alignment distance, > 0
  double t = 2;        // uniformity kernel scale, > 0
  double w_align = 1;  // weight of L_align, >= 0
  double w_unif = 1;   // weight of L_unif, >= 0
};

// d2 [...] (squared distances, >= 0) -> (d2)^(alpha/2) [...], with the gradient defined as 0
// where d2 = 0 (the power has an infinite slope there when alpha < 2).
Tensor sqdist_pow(const Tensor& d2, double alpha);

// z [K*N, D] -> []: L_align = mean over n and view pairs k < l of ||u_n^(k) - u_n^(l)||^alpha
Tensor alignment_loss(const Tensor& z, int64_t K, double alpha = 2);

// z [K*N, D] -> []: L_unif = mean over views k of uniformity(z^(k), t); needs N >= 2
Tensor uniformity_loss(const Tensor& z, int64_t K, double t = 2);

// x [N, D] -> []: log( mean_{n < m} exp(-t ||u_n - u_m||^2) ) of the normalised rows
// u = x / max(||x||, 1e-12), as a max-shifted logsumexp (never -inf); needs N >= 2.
Tensor uniformity(const Tensor& x, double t = 2);

// x [N, D] -> []: the same on the raw rows, without normalising (case B03 step 3). A metric for
// features that are not on the sphere; its values are not comparable with uniformity().
Tensor raw_uniformity(const Tensor& x, double t = 2);

// L = w_align * L_align + w_unif * L_unif. Diagnostics: "loss_align" and "loss_unif" (at this
// loss's alpha and t), plus Wang & Isola's "align" and "unif" (alpha = 2, t = 2).
class AlignUniform : public Loss {
 public:
  explicit AlignUniform(const AlignUniformOptions& opt = {});
  LossOutput forward(const Tensor& z, int64_t K) const override;
  std::string name() const override { return "align_uniform"; }
  LossParams params() const override;

 private:
  AlignUniformOptions opt_;
};

// Parameters: "alpha" (2, > 0), "t" (2, > 0), "w_align" (1, >= 0), "w_unif" (1, >= 0).
LossPtr make_align_uniform(const LossParams& params);

}  // namespace ss
