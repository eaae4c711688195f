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
  const Tensor m = mu.detach().to(Device::cpu).to(DType::f64);  // diagnostics on the host
  const int64_t N = m.size(0);
  out.diagnostics["mu_sqnorm"] = sum(mul(m, m)).item() / double(N);
  add_weight_metrics(pairwise_sqdist(m).to_vector(), N, opt_.t, out.diagnostics);
  add_wang_isola_metrics(u, K, out.diagnostics);
  return out;
}

// g [N, P] -> alpha [N, N]
Tensor kernel_prior_weights(const Tensor& g_in, const DuPriorOptions& opt) {
  if (!g_in.defined() || g_in.dim() != 2 || g_in.size(0) == 0)
    throw std::invalid_argument("[du_prior] expects prior features g [N, P], got g " +
                                (g_in.defined() ? g_in.str() : std::string("undefined")));
  check_positive("du_prior", "sigma", opt.sigma);
  check_positive("du_prior", "lambda", opt.lambda);
  NoGradGuard no_grad;
  const Tensor g = g_in.detach().to(Device::cpu).to(DType::f64);
  const int64_t N = g.size(0);

  // G_nm = exp(-||g_n - g_m||^2 / (2 sigma^2)), or the cosine of g_n and g_m
  std::vector<double> G;
  if (opt.kernel == PriorKernel::rbf) {
    G = pairwise_sqdist(g).to_vector();
    for (double& v : G) v = std::exp(-v / (2 * opt.sigma * opt.sigma));
  } else {
    const Tensor gn = normalize(g, 1, kNormEps);
    G = matmul(gn, gn, false, true).to_vector();
  }

  // Cholesky of A = G + lambda I = L L^T (A is positive definite: G is a PSD kernel matrix)
  std::vector<double> L(size_t(N * N), 0.0);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j <= i; ++j) {
      double v = G[size_t(i * N + j)] + (i == j ? opt.lambda : 0.0);
      for (int64_t k = 0; k < j; ++k) v -= L[size_t(i * N + k)] * L[size_t(j * N + k)];
      if (i == j) {
        if (!(v > 0))
          throw std::invalid_argument("[du_prior] G + lambda I is not positive definite for g " +
                                      g_in.str() + "; increase 'lambda'");
        L[size_t(i * N + i)] = std::sqrt(v);
      } else {
        L[size_t(i * N + j)] = v / L[size_t(j * N + j)];
      }
    }

  // alpha = A^(-1) G: for each column c of G, solve L y = G_c, then L^T x = y
  std::vector<double> alpha(size_t(N * N), 0.0), y(size_t(N), 0.0);
  for (int64_t c = 0; c < N; ++c) {
    for (int64_t i = 0; i < N; ++i) {
      double v = G[size_t(i * N + c)];
      for (int64_t k = 0; k < i; ++k) v -= L[size_t(i * N + k)] * y[size_t(k)];
      y[size_t(i)] = v / L[size_t(i * N + i)];
    }
    for (int64_t i = N - 1; i >= 0; --i) {
      double v = y[size_t(i)];
      for (int64_t k = i + 1; k < N; ++k) v -= L[size_t(k * N + i)] * alpha[size_t(k * N + c)];
      alpha[size_t(i * N + c)] = v / L[size_t(i * N + i)];
    }
  }
  return Tensor::from_vector(alpha, {N, N});
}

// z [K*N, D], g [N, P] -> []
Tensor du_kernel_prior_loss(const Tensor& z, int64_t K, const Tensor& g,
                            const DuPriorOptions& opt) {
  const int64_t N = views_batch("du_prior", z, K);
  if (!g.defined() || g.dim() != 2 || g.size(0) != N)
    throw std::invalid_argument(
        "[du_prior] prior features g must have one row per image (N = " + std::to_string(N) +
        "), got g " + (g.defined() ? g.str() : std::string("undefined")) + " for z " + z.str() +
        " with K = " + std::to_string(K));
  check_positive("du_prior", "t", opt.t);

  // mu'_n = sum_m alpha_nm mu_m, alpha constant
  const Tensor alpha = kernel_prior_weights(g, opt).to(z.dtype()).to(z.device());
  return du_from_means(matmul(alpha, view_means(z, K)), opt.t);
}

LossPtr make_du(const LossParams& params) {
  ParamReader r("du", params);
  DuOptions opt;
  opt.t = r.positive("t", opt.t);
  r.finish();
  return std::make_unique<DecoupledUniformity>(opt);
}

}  // namespace ss
