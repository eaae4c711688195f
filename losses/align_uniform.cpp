// Alignment and Uniformity (Wang & Isola); see losses/align_uniform.h and docs/losses.md.
#include "losses/align_uniform.h"

#include <cmath>
#include <limits>
#include <stdexcept>

#include "engine/ops.h"

namespace ss {

namespace {
constexpr double kNormEps = 1e-12;  // u = z / max(||z||, eps)

// x [N, D] -> []: log mean_{n<m} exp(-t d_nm), d = pairwise squared distances of the rows
Tensor log_mean_exp_pairs(const char* loss, const Tensor& x, double t) {
  const int64_t N = x.size(0);
  if (N < 2)
    throw std::invalid_argument(std::string("[") + loss +
                                "] uniformity needs at least 2 rows (pairs n < m), got " + x.str());

  // -t d_nm on the pairs n < m; every other entry -inf, so it drops out of the logsumexp.
  std::vector<uint8_t> not_pair(size_t(N * N), 0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t m = 0; m <= n; ++m) not_pair[size_t(n * N + m)] = 1;
  const Tensor v =
      masked_fill(mul(pairwise_sqdist(x), -t), not_pair, -std::numeric_limits<double>::infinity());

  // log mean = logsumexp over the N(N-1)/2 pairs - log(N(N-1)/2)
  const Tensor lse = sum(logsumexp(v.reshape({1, N * N}), 1));
  return add(lse, -std::log(double(N) * double(N - 1) / 2.0));
}

std::vector<Tensor> split_views(const Tensor& u, int64_t K, int64_t N) {
  std::vector<Tensor> views;
  for (int64_t k = 0; k < K; ++k) views.push_back(u.slice(k * N, (k + 1) * N));
  return views;
}

// views K x [N, D] -> []: mean over n, k < l of (||u^(k) - u^(l)||^2)^(alpha/2)
Tensor alignment_of_views(const std::vector<Tensor>& views, double alpha) {
  std::vector<Tensor> terms;
  for (size_t k = 0; k < views.size(); ++k)
    for (size_t l = k + 1; l < views.size(); ++l) {
      const Tensor d = sub(views[k], views[l]);
      terms.push_back(sqdist_pow(sum(mul(d, d), 1), alpha));  // [N]
    }
  return mean(concat(terms));
}

// views K x [N, D] -> []: mean_k log mean_{n<m} exp(-t ||u_n^(k) - u_m^(k)||^2)
Tensor uniformity_of_views(const char* loss, const std::vector<Tensor>& views, double t) {
  Tensor total;
  for (const Tensor& v : views) {
    const Tensor l = log_mean_exp_pairs(loss, v, t);
    total = total.defined() ? add(total, l) : l;
  }
  return mul(total, 1.0 / double(views.size()));
}
}  // namespace

// d2 [...] -> (d2)^(alpha/2) [...]; d/dd2 = (alpha/2) d2^(alpha/2 - 1) for d2 > 0, else 0
Tensor sqdist_pow(const Tensor& d2, double alpha) {
  check_positive("sqdist_pow", "alpha", alpha);
  if (alpha == 2) return d2;
  const double half = alpha / 2;
  Tensor out;
  {
    NoGradGuard no_grad;
    out = pow(d2, half);
  }
  const Tensor kd = d2.detach();
  return record("sqdist_pow", out, {d2}, [kd, half](const Tensor& dout) {
    const std::vector<double> d = kd.to_vector(), g = dout.to_vector();
    std::vector<double> dinp(d.size(), 0.0);
    for (size_t i = 0; i < d.size(); ++i)
      if (d[i] > 0) dinp[i] = g[i] * half * std::pow(d[i], half - 1);
    Tensor t = Tensor::from_vector(dinp, kd.shape()).to(dout.dtype());
    return std::vector<Tensor>{t.to(dout.device())};
  });
}

// z [K*N, D] -> []
Tensor alignment_loss(const Tensor& z, int64_t K, double alpha) {
  const int64_t N = views_batch("alignment", z, K);
  check_positive("alignment", "alpha", alpha);
  return alignment_of_views(split_views(normalize(z, 1, kNormEps), K, N), alpha);
}

// z [K*N, D] -> []
Tensor uniformity_loss(const Tensor& z, int64_t K, double t) {
  const int64_t N = views_batch("uniformity", z, K);
  check_positive("uniformity", "t", t);
  return uniformity_of_views("uniformity", split_views(normalize(z, 1, kNormEps), K, N), t);
}

// x [N, D] -> []
Tensor uniformity(const Tensor& x, double t) {
  if (!x.defined() || x.dim() != 2)
    throw std::invalid_argument("[uniformity] expects rows x [N, D], got x " +
                                (x.defined() ? x.str() : std::string("undefined")));
  check_positive("uniformity", "t", t);
  return log_mean_exp_pairs("uniformity", normalize(x, 1, kNormEps), t);
}

// x [N, D] -> []
Tensor raw_uniformity(const Tensor& x, double t) {
  if (!x.defined() || x.dim() != 2)
    throw std::invalid_argument("[raw_uniformity] expects rows x [N, D], got x " +
                                (x.defined() ? x.str() : std::string("undefined")));
  check_positive("raw_uniformity", "t", t);
  return log_mean_exp_pairs("raw_uniformity", x, t);
}

AlignUniform::AlignUniform(const AlignUniformOptions& opt) : opt_(opt) {
  check_positive("align_uniform", "alpha", opt.alpha);
  check_positive("align_uniform", "t", opt.t);
}

// z [K*N, D] -> loss [], diagnostics
LossOutput AlignUniform::forward(const Tensor& z, int64_t K) const {
  const int64_t N = views_batch("align_uniform", z, K);
  if (N < 2)
    throw std::invalid_argument("[align_uniform] uniformity needs N >= 2 images per view, got z " +
                                z.str() + " with K = " + std::to_string(K) +
                                " (N = " + std::to_string(N) + ")");
  const Tensor u = normalize(z, 1, kNormEps);
  const std::vector<Tensor> views = split_views(u, K, N);

  // L = w_align * L_align + w_unif * L_unif
  const Tensor l_align = alignment_of_views(views, opt_.alpha);
  const Tensor l_unif = uniformity_of_views("align_uniform", views, opt_.t);
  LossOutput out{add(mul(l_align, opt_.w_align), mul(l_unif, opt_.w_unif)), {}};

  out.diagnostics["loss_align"] = l_align.item();
  out.diagnostics["loss_unif"] = l_unif.item();
  add_wang_isola_metrics(u, K, out.diagnostics);
  return out;
}

LossParams AlignUniform::params() const {
  return {{"alpha", opt_.alpha}, {"t", opt_.t}, {"w_align", opt_.w_align}, {"w_unif", opt_.w_unif}};
}

LossPtr make_align_uniform(const LossParams& params) {
  ParamReader r("align_uniform", params);
  AlignUniformOptions opt;
  opt.alpha = r.positive("alpha", opt.alpha);
  opt.t = r.positive("t", opt.t);
  opt.w_align = r.non_negative("w_align", opt.w_align);
  opt.w_unif = r.non_negative("w_unif", opt.w_unif);
  r.finish();
  return std::make_unique<AlignUniform>(opt);
}

}  // namespace ss
