// Loss gradients: a float64 finite-difference check of every loss at K = 2 and K = 3, and the
// closed-form gradient of Decoupled Uniformity with respect to the means.
#include <cmath>

#include "losses/align_uniform.h"
#include "losses/decoupled_uniformity.h"
#include "losses/infonce.h"
#include "tests/helpers.h"

using namespace ss;
using namespace ss::test;

namespace {

// Every registered configuration worth checking: name and parameters.
const std::vector<std::pair<std::string, LossParams>>& configurations() {
  static const std::vector<std::pair<std::string, LossParams>> c = {
      {"infonce", {}},
      {"infonce", {{"temperature", 0.1}}},
      {"infonce", {{"decoupled", 1}}},
      {"align_uniform", {}},
      {"align_uniform", {{"alpha", 1}, {"t", 1}, {"w_align", 0.5}, {"w_unif", 2}}},
      {"align_uniform", {{"alpha", 3}}},
      {"du", {}},
      {"du", {{"t", 1}}},
  };
  return c;
}

std::string describe(const std::pair<std::string, LossParams>& c) {
  std::string s = c.first;
  for (const auto& kv : c.second) s += " " + kv.first + "=" + std::to_string(kv.second);
  return s;
}

// dL/dmu_n = -2t sum_{m != n} w_nm (mu_n - mu_m),
// w_nm = exp(-t d_nm) / sum_{i<j} exp(-t d_ij), computed directly in float64.
std::vector<double> du_closed_form_gradient(const std::vector<double>& mu, int64_t N, int64_t D,
                                            double t) {
  std::vector<double> d(size_t(N * N), 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t m = 0; m < N; ++m)
      for (int64_t j = 0; j < D; ++j) {
        const double diff = mu[size_t(n * D + j)] - mu[size_t(m * D + j)];
        d[size_t(n * N + m)] += diff * diff;
      }
  double den = 0;
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = i + 1; j < N; ++j) den += std::exp(-t * d[size_t(i * N + j)]);
  std::vector<double> g(size_t(N * D), 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t m = 0; m < N; ++m) {
      if (m == n) continue;
      const double w = std::exp(-t * d[size_t(n * N + m)]) / den;
      for (int64_t j = 0; j < D; ++j)
        g[size_t(n * D + j)] += -2 * t * w * (mu[size_t(n * D + j)] - mu[size_t(m * D + j)]);
    }
  return g;
}

}  // namespace

TEST_CASE("gradcheck of every loss in float64, K = 2 and K = 3") {
  for (const auto& config : configurations()) {
    LossPtr loss = make_loss(config.first, config.second);
    for (int64_t K : {2, 3}) {
      const int64_t N = 3, D = 4;
      INFO(describe(config) << ", K = " << K << ", N = " << N << ", D = " << D);
      const Tensor z = rand64({K * N, D}, 100 + uint64_t(K));
      check_gradients([&](const std::vector<Tensor>& in) { return loss->forward(in[0], K).loss; },
                      {z});
    }
  }
}

TEST_CASE("gradcheck of the standalone loss terms and metrics") {
  const Tensor z = rand64({6, 3}, 7);
  check_gradients([](const std::vector<Tensor>& in) { return uniformity(in[0], 2); }, {z});
  check_gradients([](const std::vector<Tensor>& in) { return raw_uniformity(in[0], 0.5); }, {z});
  check_gradients([](const std::vector<Tensor>& in) { return alignment_loss(in[0], 3, 1.5); }, {z});
  check_gradients([](const std::vector<Tensor>& in) { return uniformity_loss(in[0], 2, 1); }, {z});
  check_gradients([](const std::vector<Tensor>& in) { return du_from_means(in[0], 2); },
                  {rand64({4, 3}, 8, -0.5, 0.5)});
  check_gradients(
      [](const std::vector<Tensor>& in) { return weighted_sum(sqdist_pow(in[0], 0.7)); },
      {rand64({5}, 9, 0.1, 2)});
}

TEST_CASE("Decoupled Uniformity: autograd's dL/dmu equals the closed form") {
  for (int64_t K : {2, 3, 4}) {
    for (double t : {1.0, 2.0}) {
      const int64_t N = 10, D = 6;
      INFO("K = " << K << ", t = " << t);
      const Tensor z = rand64({K * N, D}, 40 + uint64_t(K));
      Tensor mu = view_means(z, K).detach().set_requires_grad(true);
      Tensor loss = du_from_means(mu, t);
      loss.backward();
      const std::vector<double> want = du_closed_form_gradient(mu.to_vector(), N, D, t);
      check_values(mu.grad(), want, 1e-12);

      // Through the means: dL/du_n^(k) = (1/K) dL/dmu_n, then through the normalisation; so
      // the gradient w.r.t. z equals backpropagating the closed form through view_means.
      Tensor zl = z.detach().clone().set_requires_grad(true);
      du_loss(zl, K, t).backward();
      Tensor zr = z.detach().clone().set_requires_grad(true);
      view_means(zr, K).backward(Tensor::from_vector(want, {N, D}));
      check_values(zl.grad(), zr.grad().to_vector(), 1e-12);
    }
  }
}

TEST_CASE("float32 and float64 agree on every loss") {
  Generator gen(21);
  const Tensor z64 = Tensor::normal({24, 16}, 0, 1, gen, DType::f64);
  const Tensor z32 = z64.to(DType::f32);
  for (const auto& config : configurations()) {
    INFO(describe(config));
    LossPtr loss = make_loss(config.first, config.second);
    Tensor a = z64.clone().set_requires_grad(true), b = z32.clone().set_requires_grad(true);
    Tensor la = loss->forward(a, 3).loss, lb = loss->forward(b, 3).loss;
    CHECK(lb.item() == doctest::Approx(la.item()).epsilon(1e-5));
    la.backward();
    lb.backward();
    check_values(b.grad(), a.grad().to_vector(), 1e-5);
  }
}

TEST_CASE("gradcheck of Decoupled Uniformity with a kernel prior (alpha constant)") {
  const Tensor g = rand64({3, 5}, 60).detach();
  for (PriorKernel kernel : {PriorKernel::rbf, PriorKernel::cosine})
    for (int64_t K : {2, 3}) {
      INFO("K = " << K << (kernel == PriorKernel::rbf ? ", rbf" : ", cosine"));
      DuPriorOptions opt;
      opt.kernel = kernel;
      check_gradients(
          [&](const std::vector<Tensor>& in) { return du_kernel_prior_loss(in[0], K, g, opt); },
          {rand64({K * 3, 4}, 61)});
    }
}
