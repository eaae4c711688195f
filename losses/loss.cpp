// Shared pieces of the losses: shape checks, parameter reading, Wang & Isola's metrics.
#include "losses/loss.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "engine/ops.h"

namespace ss {

namespace {
[[noreturn]] void fail(const std::string& loss, const std::string& what) {
  throw std::invalid_argument("[" + loss + "] " + what);
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}
}  // namespace

// z [K*N, D] -> N
int64_t views_batch(const char* loss, const Tensor& z, int64_t K) {
  if (!z.defined()) fail(loss, "z is undefined; expected embeddings [K*N, D]");
  if (z.dim() != 2) fail(loss, "expects embeddings z [K*N, D], got z " + z.str());
  if (K < 2)
    fail(loss,
         "K must be >= 2 views per image, got K = " + std::to_string(K) + " for z " + z.str());
  const int64_t rows = z.size(0);
  if (rows == 0 || z.size(1) == 0) fail(loss, "empty embeddings z " + z.str());
  if (rows % K != 0)
    fail(loss, "rows of z " + z.str() + " (" + std::to_string(rows) +
                   ") are not divisible by K = " + std::to_string(K) + " views");
  return rows / K;
}

ParamReader::ParamReader(std::string loss, const LossParams& params)
    : loss_(std::move(loss)), params_(params) {}

double ParamReader::get(const std::string& key, double fallback) {
  known_.push_back(key);
  const auto it = params_.find(key);
  return it == params_.end() ? fallback : it->second;
}

void check_positive(const std::string& loss, const std::string& key, double value) {
  if (!(value > 0) || !std::isfinite(value))
    fail(loss, "parameter '" + key + "' must be > 0, got " + number(value));
}

double ParamReader::positive(const std::string& key, double fallback) {
  const double v = get(key, fallback);
  check_positive(loss_, key, v);
  return v;
}

double ParamReader::non_negative(const std::string& key, double fallback) {
  const double v = get(key, fallback);
  if (!(v >= 0) || !std::isfinite(v))
    fail(loss_, "parameter '" + key + "' must be >= 0, got " + number(v));
  return v;
}

bool ParamReader::flag(const std::string& key, bool fallback) {
  const double v = get(key, fallback ? 1.0 : 0.0);
  if (v != 0 && v != 1)
    fail(loss_, "parameter '" + key + "' must be 0 (false) or 1 (true), got " + number(v));
  return v == 1;
}

void ParamReader::finish() const {
  for (const auto& kv : params_) {
    if (std::find(known_.begin(), known_.end(), kv.first) != known_.end()) continue;
    std::string names;
    for (const auto& k : known_) names += (names.empty() ? "" : ", ") + k;
    fail(loss_, "unknown parameter '" + kv.first + "'; known parameters: " + names);
  }
}

// log mean_i exp(v_i) = m + log( (1/n) sum_i exp(v_i - m) ), m = max_i v_i
double log_mean_exp(const std::vector<double>& v) {
  if (v.empty()) throw std::invalid_argument("[log_mean_exp] no values to average");
  const double m = *std::max_element(v.begin(), v.end());
  double s = 0;
  for (double x : v) s += std::exp(x - m);
  return m + std::log(s / double(v.size()));
}

// u [K*N, D] -> diag["align"], diag["unif"]
void add_wang_isola_metrics(const Tensor& u_in, int64_t K, std::map<std::string, double>& diag) {
  NoGradGuard no_grad;
  const Tensor u = u_in.detach().to(Device::cpu).to(DType::f64);  // on the host, in f64
  const int64_t N = u.size(0) / K;
  std::vector<Tensor> views;
  for (int64_t k = 0; k < K; ++k) views.push_back(u.slice(k * N, (k + 1) * N));

  // align = mean over n, k < l of ||u_n^(k) - u_n^(l)||^2
  double align = 0;
  int64_t pairs = 0;
  for (int64_t k = 0; k < K; ++k)
    for (int64_t l = k + 1; l < K; ++l) {
      const Tensor d = sub(views[size_t(k)], views[size_t(l)]);
      align += sum(mul(d, d)).item();
      pairs += N;
    }
  diag["align"] = align / double(pairs);
  if (N < 2) return;

  // unif = mean_k log mean_{n<m} exp(-2 d_nm), d = ||u_n||^2 + ||u_m||^2 - 2 u_n.u_m
  double unif = 0;
  for (const Tensor& v : views) {
    const std::vector<double> d = pairwise_sqdist(v).to_vector();
    std::vector<double> e;
    e.reserve(size_t(N * (N - 1) / 2));
    for (int64_t n = 0; n < N; ++n)
      for (int64_t m = n + 1; m < N; ++m) e.push_back(-2.0 * d[size_t(n * N + m)]);
    unif += log_mean_exp(e);
  }
  diag["unif"] = unif / double(K);
}

}  // namespace ss
