// Decoupled Uniformity (Dufumier et al., ICML 2023).
#pragma once
#include <cstdint>

#include "losses/loss.h"

namespace ss {

struct DuOptions {
  double t = 2;  // kernel scale, > 0 (t = 2 as in the authors' code; t = 1 is the brief's formula)
};

// z [K*N, D] -> mu [N, D]: mu_n = (1/K) sum_k u_n^(k), u = z / max(||z||, 1e-12), not
// re-normalised.
Tensor view_means(const Tensor& z, int64_t K);

// mu [N, D] -> []: L_DU = log( (1/(N(N-1))) sum_{n != m} exp(-t ||mu_n - mu_m||^2) ), as a
// max-shifted logsumexp; needs N >= 2.
Tensor du_from_means(const Tensor& mu, double t = 2);

// z [K*N, D] -> []: du_from_means(view_means(z, K), t)
Tensor du_loss(const Tensor& z, int64_t K, double t = 2);

// Diagnostics, with d_nm = ||mu_n - mu_m||^2, w_nm = exp(-t d_nm) / sum_{i<j} exp(-t d_ij) and
// w'_nm = (N(N-1)/2) w_nm (the brief's weights, mean over ordered pairs in the denominator):
//   "mu_sqnorm"                  mean_n ||mu_n||^2, the implicit alignment (for K = 2,
//                                ||mu_n||^2 = (1 + u_n^(1).u_n^(2)) / 2)
//   "S_mean", "S_min", "S_max"   over n of S_n = sum_{m != n} w'_nm (S_mean is N - 1 always)
//   "w_max"                      max_{n != m} w'_nm
// plus Wang & Isola's "align" and "unif" of the normalised views.
class DecoupledUniformity : public Loss {
 public:
  explicit DecoupledUniformity(const DuOptions& opt = {});
  LossOutput forward(const Tensor& z, int64_t K) const override;
  std::string name() const override { return "du"; }
  LossParams params() const override { return {{"t", opt_.t}}; }

 private:
  DuOptions opt_;
};

// Parameters: "t" (default 2, > 0).
LossPtr make_du(const LossParams& params);

// ---- kernel-prior variant (Dufumier et al.'s main proposal) --------------------------------

enum class PriorKernel { rbf, cosine };

struct DuPriorOptions {
  double t = 2;  // kernel scale of L_DU, > 0
  PriorKernel kernel = PriorKernel::rbf;
  double sigma = 1;      // RBF bandwidth, > 0
  double lambda = 0.01;  // ridge, > 0
};

// g [N, P] prior features -> alpha [N, N] = (G + lambda I)^(-1) G, in float64 on the CPU, with
// G_nm = exp(-||g_n - g_m||^2 / (2 sigma^2)) (rbf) or g_n.g_m / (||g_n|| ||g_m||) (cosine).
// A constant: no gradient flows into g.
Tensor kernel_prior_weights(const Tensor& g, const DuPriorOptions& opt = {});

// z [K*N, D], g [N, P] -> []: L_DU of the means mu replaced by alpha mu (alpha constant).
Tensor du_kernel_prior_loss(const Tensor& z, int64_t K, const Tensor& g,
                            const DuPriorOptions& opt = {});

}  // namespace ss
