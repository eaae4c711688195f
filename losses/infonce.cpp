// InfoNCE / NT-Xent over K >= 2 views; see losses/infonce.h and docs/losses.md.
#include "losses/infonce.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "engine/ops.h"

namespace ss {

namespace {
constexpr double kNormEps = 1e-12;  // u = z / max(||z||, eps)

struct InfoNceParts {
  Tensor loss;  // []
  Tensor u;     // [K*N, D] normalised rows
  Tensor gram;  // [K*N, K*N] u_a . u_b
};

// z [K*N, D] -> loss [], keeping u and the Gram matrix for the diagnostics
InfoNceParts infonce_parts(const Tensor& z, int64_t K, const InfoNceOptions& opt) {
  const int64_t N = views_batch("infonce", z, K);
  check_positive("infonce", "temperature", opt.temperature);
  if (opt.decoupled && N < 2)
    throw std::invalid_argument(
        "[infonce] the decoupled loss needs N >= 2 images (the denominator holds only "
        "negatives), got z " +
        z.str() + " with K = " + std::to_string(K));
  const int64_t rows = K * N;
  const double inf = std::numeric_limits<double>::infinity();

  // s_ab = u_a . u_b / tau over all K*N rows
  InfoNceParts p;
  p.u = normalize(z, 1, kNormEps);
  p.gram = matmul(p.u, p.u, false, true);
  const Tensor s = mul(p.gram, 1.0 / opt.temperature);

  // Denominator over b != a (and b not in P(a) when decoupled): masked to -inf, then a
  // max-shifted logsumexp per row.
  const std::vector<uint8_t> pos = positive_mask(N, K);
  std::vector<uint8_t> out_of_den(size_t(rows * rows), 0);
  for (int64_t a = 0; a < rows; ++a) {
    out_of_den[size_t(a * rows + a)] = 1;
    if (opt.decoupled)
      for (int64_t b = 0; b < rows; ++b)
        out_of_den[size_t(a * rows + b)] |= pos[size_t(a * rows + b)];
  }
  const Tensor lse = logsumexp(masked_fill(s, out_of_den, -inf), 1);  // [K*N]

  // (1/|P(a)|) sum_{p in P(a)} s_ap: every non-positive entry zeroed, then a row sum.
  std::vector<uint8_t> not_pos(pos.size());
  for (size_t i = 0; i < pos.size(); ++i) not_pos[i] = !pos[i];
  const Tensor pos_mean = mul(sum(masked_fill(s, not_pos, 0.0), 1), 1.0 / double(K - 1));

  // l_a = logsumexp_a - mean_p s_ap; L = mean_a l_a
  p.loss = mean(sub(lse, pos_mean));
  return p;
}

// gram [K*N, K*N] -> q_mean, pos_cos, neg_cos
void add_coupling_metrics(const Tensor& gram, int64_t N, int64_t K, double tau,
                          std::map<std::string, double>& diag) {
  const int64_t rows = K * N;
  const std::vector<double> g = gram.detach().to_vector();
  const std::vector<uint8_t> pos = positive_mask(N, K);
  double q = 0, pos_cos = 0, neg_cos = 0;
  int64_t n_pos = 0, n_neg = 0;
  for (int64_t a = 0; a < rows; ++a) {
    // q_a = 1 - sum_p exp(s_ap - m) / sum_{b != a} exp(s_ab - m), m = max_{b != a} s_ab
    double m = -std::numeric_limits<double>::infinity();
    for (int64_t b = 0; b < rows; ++b)
      if (b != a) m = std::max(m, g[size_t(a * rows + b)] / tau);
    double num = 0, den = 0;
    for (int64_t b = 0; b < rows; ++b) {
      if (b == a) continue;
      const double gab = g[size_t(a * rows + b)];
      const double e = std::exp(gab / tau - m);
      den += e;
      if (pos[size_t(a * rows + b)]) {
        num += e;
        pos_cos += gab;
        ++n_pos;
      } else {
        neg_cos += gab;
        ++n_neg;
      }
    }
    q += 1.0 - num / den;
  }
  diag["q_mean"] = q / double(rows);
  diag["pos_cos"] = pos_cos / double(n_pos);
  if (n_neg > 0) diag["neg_cos"] = neg_cos / double(n_neg);
}
}  // namespace

// N, K -> mask [K*N, K*N]: 1 where a != b and a mod N = b mod N
std::vector<uint8_t> positive_mask(int64_t N, int64_t K) {
  const int64_t rows = K * N;
  std::vector<uint8_t> mask(size_t(rows * rows), 0);
  for (int64_t a = 0; a < rows; ++a)
    for (int64_t b = 0; b < rows; ++b) mask[size_t(a * rows + b)] = a != b && a % N == b % N;
  return mask;
}

// z [K*N, D] -> loss []
Tensor infonce_loss(const Tensor& z, int64_t K, const InfoNceOptions& opt) {
  return infonce_parts(z, K, opt).loss;
}

// z [K*N, D] -> loss [], diagnostics
LossOutput InfoNce::forward(const Tensor& z, int64_t K) const {
  InfoNceParts p = infonce_parts(z, K, opt_);
  LossOutput out{p.loss, {}};
  NoGradGuard no_grad;
  const int64_t N = z.size(0) / K;
  add_coupling_metrics(p.gram, N, K, opt_.temperature, out.diagnostics);
  add_wang_isola_metrics(p.u, K, out.diagnostics);
  return out;
}

LossParams InfoNce::params() const {
  return {{"temperature", opt_.temperature}, {"decoupled", opt_.decoupled ? 1.0 : 0.0}};
}

LossPtr make_infonce(const LossParams& params) {
  ParamReader r("infonce", params);
  InfoNceOptions opt;
  opt.temperature = r.positive("temperature", opt.temperature);
  opt.decoupled = r.flag("decoupled", opt.decoupled);
  r.finish();
  return std::make_unique<InfoNce>(opt);
}

}  // namespace ss
