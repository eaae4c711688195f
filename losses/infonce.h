// InfoNCE / NT-Xent (SimCLR) with K >= 2 views, and its decoupled variant (DCL).
#pragma once
#include <cstdint>
#include <vector>

#include "losses/loss.h"

namespace ss {

struct InfoNceOptions {
  double temperature = 0.5;  // tau > 0
  bool decoupled = false;    // DCL: positives left out of the denominator
};

// The K*N x K*N mask (row-major) of positive pairs: (a, b) with a != b and a = b mod N, i.e.
// the other K-1 views of the same image. Derived from N and K only (case B06).
std::vector<uint8_t> positive_mask(int64_t N, int64_t K);

// z [K*N, D] -> loss []
//   u_a  = z_a / max(||z_a||, 1e-12),   s_ab = u_a . u_b / tau
//   l_a  = -(1/(K-1)) sum_{p in P(a)} [ s_ap - logsumexp_{b != a} s_ab ]
//   L    = mean_a l_a
// With decoupled, the logsumexp runs over b != a, b not in P(a) (needs N >= 2).
Tensor infonce_loss(const Tensor& z, int64_t K, const InfoNceOptions& opt = {});

// Diagnostics (added to Wang & Isola's "align" and "unif"):
//   "q_mean"  mean over anchors of q_a = 1 - sum_{p in P(a)} exp(s_ap) / sum_{b != a} exp(s_ab),
//             the negative-positive coupling factor (Yeh et al.); for K = 2 exactly the factor
//             that scales every gradient of l_a. For K > 2 the positives' share of the softmax is
//             summed, so q_a is the probability mass the anchor puts on negatives. Always taken
//             with the full denominator b != a, also for the decoupled loss (which removes it).
//   "pos_cos" mean cosine u_a . u_p over ordered positive pairs
//   "neg_cos" mean cosine over ordered negative pairs (b != a, b not in P(a)); absent if N = 1
class InfoNce : public Loss {
 public:
  explicit InfoNce(const InfoNceOptions& opt = {}) : opt_(opt) {}
  LossOutput forward(const Tensor& z, int64_t K) const override;
  std::string name() const override { return "infonce"; }
  LossParams params() const override;

 private:
  InfoNceOptions opt_;
};

// Parameters: "temperature" (default 0.5, > 0), "decoupled" (0 or 1, default 0).
LossPtr make_infonce(const LossParams& params);

}  // namespace ss
