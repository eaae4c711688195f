// Decoupled Uniformity; see losses/decoupled_uniformity.h and docs/losses.md.
#include "losses/decoupled_uniformity.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "engine/ops.h"

namespace ss {

namespace {
constexpr double kNormEps = 1e-12;  // u = z / max(||z||, eps)

// z [K*N, D] -> u [K*N, D], mu [N, D]
void normalise_and_average(const Tensor& z, int64_t K, Tensor& u, Tensor& mu) {
  const int64_t N = views_batch("du", z, K);
  u = normalize(z, 1, kNormEps);

  // mu_n = (1/K) sum_k u_n^(k)
  Tensor total = u.slice(0, N);
  for (int64_t k = 1; k < K; ++k) total = add(total, u.slice(k * N, (k + 1) * N));
  mu = mul(total, 1.0 / double(K));
}

// d [N, N] (pairwise squared distances of the means) -> mu-weight diagnostics
void add_weight_metrics(const std::vector<double>& d, int64_t N, double t,
                        std::map<std::string, double>& diag) {
  // w'_nm = (N(N-1)/2) exp(-t d_nm - c) / sum_{i<j} exp(-t d_ij - c), c = max_{i<j} -t d_ij
  double c = -std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = i + 1; j < N; ++j) c = std::max(c, -t * d[size_t(i * N + j)]);
  double den = 0;
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = i + 1; j < N; ++j) den += std::exp(-t * d[size_t(i * N + j)] - c);
  const double scale = double(N) * double(N - 1) / 2.0 / den;

  // S_n = sum_{m != n} w'_nm
  double s_sum = 0, s_min = std::numeric_limits<double>::infinity(), s_max = -s_min, w_max = 0;
  for (int64_t n = 0; n < N; ++n) {
    double s = 0;
    for (int64_t m = 0; m < N; ++m) {
      if (m == n) continue;
      const double w = scale * std::exp(-t * d[size_t(n * N + m)] - c);
      s += w;
      w_max = std::max(w_max, w);
    }
    s_sum += s;
    s_min = std::min(s_min, s);
    s_max = std::max(s_max, s);
  }
  diag["S_mean"] = s_sum / double(N);
  diag["S_min"] = s_min;
  diag["S_max"] = s_max;
  diag["w_max"] = w_max;
}
}  // namespace

// z [K*N, D] -> mu [N, D]
Tensor view_means(const Tensor& z, int64_t K) {
  Tensor u, mu;
  normalise_and_average(z, K, u, mu);
  return mu;
}

// mu [N, D] -> []
Tensor du_from_means(const Tensor& mu, double t) {
  check_positive("du", "t", t);
  if (!mu.defined() || mu.dim() != 2)
    throw std::invalid_argument("[du] expects means mu [N, D], got mu " +
                                (mu.defined() ? mu.str() : std::string("undefined")));
  const int64_t N = mu.size(0);
  if (N < 2)
    throw std::invalid_argument("[du] needs N >= 2 images (pairs n != m), got mu " + mu.str());

  // -t d_nm over the ordered pairs n != m; the diagonal is -inf and drops out.
  const Tensor v =
      fill_diagonal(mul(pairwise_sqdist(mu), -t), -std::numeric_limits<double>::infinity());

  // L = logsumexp_{n != m} (-t d_nm) - log(N(N-1))
  const Tensor lse = sum(logsumexp(v.reshape({1, N * N}), 1));
  return add(lse, -std::log(double(N) * double(N - 1)));
}

// z [K*N, D] -> []
Tensor du_loss(const Tensor& z, int64_t K, double t) {
  return du_from_means(view_means(z, K), t);
}

DecoupledUniformity::DecoupledUniformity(const DuOptions& opt) : opt_(opt) {
  check_positive("du", "t", opt.t);
}

// z [K*N, D] -> loss [], diagnostics
LossOutput DecoupledUniformity::forward(const Tensor& z, int64_t K) const {
  Tensor u, mu;
  normalise_and_average(z, K, u, mu);
  if (mu.size(0) < 2)
    throw std::invalid_argument("[du] needs N >= 2 images (pairs n != m), got z " + z.str() +
                                " with K = " + std::to_string(K) + " (N = 1)");
  LossOutput out{du_from_means(mu, opt_.t), {}};

  NoGradGuard no_grad;
  const Tensor m = mu.detach().to(DType::f64);
  const int64_t N = m.size(0);
  out.diagnostics["mu_sqnorm"] = sum(mul(m, m)).item() / double(N);
  add_weight_metrics(pairwise_sqdist(m).to_vector(), N, opt_.t, out.diagnostics);
  add_wang_isola_metrics(u, K, out.diagnostics);
  return out;
}

LossPtr make_du(const LossParams& params) {
  ParamReader r("du", params);
  DuOptions opt;
  opt.t = r.positive("t", opt.t);
  r.finish();
  return std::make_unique<DecoupledUniformity>(opt);
}

}  // namespace ss
