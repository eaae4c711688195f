// Spectral contrastive loss (HaoChen et al., 2021) over K >= 2 views.
#pragma once
#include "losses/loss.h"

namespace ss {

// z [K*N, D] -> []: mean over view pairs k < l of
//   -2 mean_n a_n.b_n + w_repel * mean_{n != m} (a_n.b_m)^2,   a = z^(k), b = z^(l)
Tensor spectral_loss(const Tensor& z, int64_t K, double w_repel = 1);

// Parameters: "w_repel" (default 1, >= 0).
LossPtr make_spectral(const LossParams& params);

}  // namespace ss
