// Loss values: every hand-computed number in docs/losses.md, cases B03 B06 B09 B10 B11, the
// diagnostics, and the registry with its parameter errors.
#include <cmath>
#include <limits>

#include "losses/align_uniform.h"
#include "losses/decoupled_uniformity.h"
#include "losses/infonce.h"
#include "tests/helpers.h"

using namespace ss;
using namespace ss::test;

namespace {

Tensor rows32(const std::vector<float>& v, int64_t cols) {
  return Tensor::from_vector(v, {int64_t(v.size()) / cols, cols});
}

// Unit vectors at the given angles in degrees, one row each, float64.
Tensor at_angles(const std::vector<double>& degrees) {
  std::vector<double> v;
  for (double a : degrees) {
    v.push_back(std::cos(a * M_PI / 180));
    v.push_back(std::sin(a * M_PI / 180));
  }
  return Tensor::from_vector(v, {int64_t(degrees.size()), 2});
}

// The NT-Xent rows of losses.md: a1 = (1,0), a2 = (0.8,0.6), b1 = (0.6,0.8), b2 = (0,1).
Tensor nt_xent_rows() {
  return rows32({1, 0, 0.8f, 0.6f, 0.6f, 0.8f, 0, 1}, 2);
}

Tensor nt_xent_rows64() {
  return Tensor::from_vector(std::vector<double>{1, 0, 0.8, 0.6, 0.6, 0.8, 0, 1}, {4, 2});
}

bool all_zero(const Tensor& g) {
  for (double e : g.to_vector())
    if (e != 0) return false;
  return true;
}

}  // namespace

TEST_CASE("B03: uniformity of three vectors, scale invariance and the raw metric") {
  const Tensor unit = rows32({1, 0, 0, 1, -1, 0}, 2);
  const Tensor big = rows32({10, 0, 0, 10, -10, 0}, 2);

  // log((2 e^-4 + e^-8) / 3) and log((2 e^-2 + e^-4) / 3)
  CHECK(uniformity(unit, 2).item() == doctest::Approx(-4.39635).epsilon(1e-6));
  CHECK(uniformity(unit, 1).item() == doctest::Approx(-2.33999).epsilon(1e-6));
  CHECK(uniformity(big, 2).item() == uniformity(unit, 2).item());
  CHECK(uniformity(big, 1).item() == uniformity(unit, 1).item());
  CHECK(uniformity(unit.to(DType::f64), 2).item() ==
        doctest::Approx(std::log((2 * std::exp(-4.0) + std::exp(-8.0)) / 3)).epsilon(1e-12));

  // The raw (non-normalising) metric on the scale-10 rows: -400 + log(2/3), finite in float32.
  const double raw = raw_uniformity(big, 2).item();
  CHECK(std::isfinite(raw));
  CHECK(raw == doctest::Approx(-400 + std::log(2.0 / 3)).epsilon(1e-6));  // -400.405
  CHECK(raw_uniformity(big.to(DType::f64), 2).item() ==
        doctest::Approx(-400 + std::log(2.0 / 3)).epsilon(1e-12));
  CHECK(raw_uniformity(unit, 2).item() == doctest::Approx(-4.39635).epsilon(1e-6));

  // As the uniformity term of the loss: K = 2 views of these three rows give the same value.
  const Tensor z = concat({big, unit});
  CHECK(uniformity_loss(z, 2, 2).item() == doctest::Approx(-4.39635).epsilon(1e-6));
  LossOutput au = make_loss("align_uniform", {{"w_align", 0}})->forward(z, 2);
  CHECK(au.loss.item() == doctest::Approx(-4.39635).epsilon(1e-6));
  CHECK(au.diagnostics.at("loss_align") == doctest::Approx(0).epsilon(1e-6));
}

TEST_CASE("B10: NT-Xent in float32 at small temperatures, no overflow") {
  const std::vector<std::pair<double, double>> cases = {
      {0.5, 1.27071}, {0.1, 2.96680}, {0.07, 4.07900}, {0.01, 28.0000}};
  for (const auto& [tau, want] : cases) {
    INFO("tau = " << tau);
    Tensor z = nt_xent_rows().set_requires_grad(true);
    LossOutput out = make_loss("infonce", {{"temperature", tau}})->forward(z, 2);
    CHECK(out.loss.dtype() == DType::f32);
    CHECK(out.loss.item() == doctest::Approx(want).epsilon(2e-6));
    out.loss.backward();
    for (double g : z.grad().to_vector()) CHECK(std::isfinite(g));
  }
}

TEST_CASE("B06: geometry comes from the rows, never from a configured batch size") {
  // A config written for batch 256 builds the same loss; the batch that arrives has N = 2.
  LossPtr loss = make_loss("infonce", {{"temperature", 0.5}});
  CHECK(loss->forward(nt_xent_rows(), 2).loss.item() == doctest::Approx(1.27071).epsilon(2e-6));

  // 10 samples with batch 4 and drop-last off: batches of 4, 4 and 2 pairs.
  Generator gen(11);
  for (int64_t n : {4, 4, 2}) {
    Tensor z = Tensor::normal({2 * n, 8}, 0, 1, gen, DType::f64).set_requires_grad(true);
    LossOutput out = loss->forward(z, 2);
    CHECK(std::isfinite(out.loss.item()));
    out.loss.backward();
    CHECK(z.grad().shape() == z.shape());
  }

  // In the last batch (N = 2, four rows) the one positive of row i is row (i + 2) mod 4.
  const std::vector<uint8_t> pos = positive_mask(2, 2);
  REQUIRE(pos.size() == 16);
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 4; ++j) CHECK(pos[size_t(i * 4 + j)] == (j == (i + 2) % 4));

  // K = 3, N = 2: rows 0, 2, 4 are one image, rows 1, 3, 5 the other.
  const std::vector<uint8_t> pos3 = positive_mask(2, 3);
  for (int64_t i = 0; i < 6; ++i)
    for (int64_t j = 0; j < 6; ++j) CHECK(pos3[size_t(i * 6 + j)] == (i != j && i % 2 == j % 2));
}

TEST_CASE("B09: empty or degenerate sets never give NaN") {
  SUBCASE("NT-Xent with N = 1 is exactly 0 with zero gradient") {
    for (DType dt : {DType::f32, DType::f64}) {
      Tensor z = rows32({0.3f, -1.2f, 0.5f, 2.0f, 0.1f, -0.7f}, 3).to(dt).set_requires_grad(true);
      LossOutput out = make_loss("infonce")->forward(z, 2);
      CHECK(out.loss.item() == 0.0);
      out.loss.backward();
      CHECK(all_zero(z.grad()));
      CHECK(out.diagnostics.count("neg_cos") == 0);  // no negatives to average
      CHECK(out.diagnostics.count("unif") == 0);     // no pairs within a view
      CHECK(out.diagnostics.at("q_mean") == 0.0);
    }
    // The decoupled loss has nothing left in its denominator: an error, not -inf.
    check_throws_with(
        [] {
          make_loss("infonce", {{"decoupled", 1}})->forward(nt_xent_rows().slice(0, 2), 2);
        },
        {"[infonce]", "decoupled", "N >= 2", "[2, 2]"});
  }
  SUBCASE("uniformity of two identical unit vectors is 0 with zero gradient") {
    for (const std::vector<double>& v :
         {std::vector<double>{1, 0, 1, 0}, std::vector<double>{0, 0, 1, 0, 0, 1}}) {
      const int64_t d = int64_t(v.size()) / 2;
      Tensor x = leaf(v, {2, d});
      Tensor l = uniformity(x, 2);
      CHECK(l.item() == 0.0);
      l.backward();
      CHECK(all_zero(x.grad()));
    }
    Tensor x = leaf({0.6, 0.8, 0.6, 0.8}, {2, 2});
    Tensor l = uniformity(x, 2);
    CHECK(std::abs(l.item()) < 1e-14);
    l.backward();
    for (double g : x.grad().to_vector()) CHECK(std::abs(g) < 1e-12);
  }
  SUBCASE("uniformity of a single vector is a clear error") {
    check_throws_with(
        [] {
          uniformity(rows32({1, 0}, 2), 2);
        },
        {"[uniformity]", "2 rows", "[1, 2]"});
    check_throws_with([] { raw_uniformity(rows32({1, 0}, 2), 2); }, {"[raw_uniformity]", "[1, 2]"});
    check_throws_with([] { make_loss("align_uniform")->forward(nt_xent_rows().slice(0, 2), 2); },
                      {"[align_uniform]", "N >= 2", "[2, 2]", "K = 2"});
    check_throws_with([] { make_loss("du")->forward(nt_xent_rows().slice(0, 2), 2); },
                      {"[du]", "N >= 2", "[2, 2]"});
    check_throws_with([] { du_from_means(rows32({1, 0}, 2), 2); }, {"[du]", "N >= 2", "[1, 2]"});
  }
  SUBCASE("a zero embedding row stays finite") {
    Tensor z = leaf({0, 0, 1, 0, 0.5, 0.5, 0, 1, 1, 1, -1, 0}, {6, 2});
    for (const std::string& name : registered_losses()) {
      INFO(name);
      z.zero_grad();
      LossOutput out = make_loss(name)->forward(z, 2);
      CHECK(std::isfinite(out.loss.item()));
      out.loss.backward();
      for (double g : z.grad().to_vector()) CHECK(std::isfinite(g));
    }
  }
}

// Contrastive losses do not decompose over micro-batches: the loss of a batch is not the mean of
// its halves' losses, because every anchor's denominator holds the whole batch. selfsup does not
// offer gradient accumulation for them (see losses/loss.h).
TEST_CASE("B11: a contrastive batch is not the mean of its micro-batches") {
  LossPtr loss = make_loss("infonce", {{"temperature", 0.5}});
  const Tensor full = at_angles({0, 90, 180, 270, 10, 100, 190, 280});
  const Tensor half1 = at_angles({0, 90, 10, 100});
  const Tensor half2 = at_angles({180, 270, 190, 280});
  const double l_full = loss->forward(full, 2).loss.item();
  const double l1 = loss->forward(half1, 2).loss.item();
  const double l2 = loss->forward(half2, 2).loss.item();
  CHECK(l_full == doctest::Approx(0.478333).epsilon(1e-6));
  CHECK(l1 == doctest::Approx(0.251980).epsilon(1e-6));
  CHECK(l2 == doctest::Approx(0.251980).epsilon(1e-6));
  CHECK(std::abs((l1 + l2) / 2 - l_full) > 0.2);
  // The same in float32.
  CHECK(loss->forward(full.to(DType::f32), 2).loss.item() ==
        doctest::Approx(0.478333).epsilon(1e-6));
}

TEST_CASE("InfoNCE with K = 3 and the decoupled variant on a hand case") {
  // Values computed independently (NumPy, float64) from the definitions in losses.md.
  const Tensor z = at_angles({0, 90, 20, 120, -30, 60});
  LossOutput out = make_loss("infonce", {{"temperature", 0.5}})->forward(z, 3);
  CHECK(out.loss.item() == doctest::Approx(1.0727510394930866).epsilon(1e-12));
  CHECK(make_loss("infonce", {{"decoupled", 1}})->forward(z, 3).loss.item() ==
        doctest::Approx(-0.3289276500775602).epsilon(1e-12));
  CHECK(out.diagnostics.at("q_mean") == doctest::Approx(0.2783552419167817).epsilon(1e-12));
  CHECK(out.diagnostics.at("pos_cos") == doctest::Approx(0.780092740304294).epsilon(1e-12));
  CHECK(out.diagnostics.at("neg_cos") == doctest::Approx(-0.047956555000746706).epsilon(1e-10));
  CHECK(out.diagnostics.at("align") == doctest::Approx(0.439814519391412).epsilon(1e-12));
  CHECK(out.diagnostics.at("unif") == doctest::Approx(-4.231530903555906).epsilon(1e-12));
}

TEST_CASE("InfoNCE diagnostics on the NT-Xent rows") {
  // u u^T has positives 0.6, 0.6 and negatives 0.8, 0.36, 0.8, 0.8 (each twice, ordered).
  LossOutput out = make_loss("infonce")->forward(nt_xent_rows64(), 2);
  const auto& d = out.diagnostics;
  CHECK(d.at("q_mean") == doctest::Approx(0.711001673944319).epsilon(1e-12));
  CHECK(d.at("pos_cos") == doctest::Approx(0.6).epsilon(1e-12));
  CHECK(d.at("neg_cos") == doctest::Approx(0.64).epsilon(1e-12));
  CHECK(d.at("align") == doctest::Approx(0.8).epsilon(1e-12));  // ||a1 - b1||^2 = ||a2 - b2||^2
  CHECK(d.at("unif") == doctest::Approx(-0.8).epsilon(1e-12));  // log exp(-2 * 0.4) per view
}

TEST_CASE("Alignment and uniformity: values, alpha and weights") {
  const Tensor z = nt_xent_rows64();
  // alpha 2, t 2: L_align = 0.8, L_unif = -0.8, L = 0.
  LossOutput out = make_loss("align_uniform")->forward(z, 2);
  CHECK(out.loss.item() == doctest::Approx(0).epsilon(1e-12));
  CHECK(out.diagnostics.at("loss_align") == doctest::Approx(0.8).epsilon(1e-12));
  CHECK(out.diagnostics.at("loss_unif") == doctest::Approx(-0.8).epsilon(1e-12));
  CHECK(out.diagnostics.at("align") == doctest::Approx(0.8).epsilon(1e-12));
  CHECK(out.diagnostics.at("unif") == doctest::Approx(-0.8).epsilon(1e-12));

  // alpha 1, t 1, weights 2 and 0.5: 2 sqrt(0.8) + 0.5 (-0.4).
  LossOutput o1 =
      make_loss("align_uniform", {{"alpha", 1}, {"t", 1}, {"w_align", 2}, {"w_unif", 0.5}})
          ->forward(z, 2);
  CHECK(o1.loss.item() == doctest::Approx(2 * std::sqrt(0.8) - 0.2).epsilon(1e-12));
  CHECK(o1.diagnostics.at("align") == doctest::Approx(0.8).epsilon(1e-12));  // always alpha 2
  CHECK(alignment_loss(z, 2, 3).item() == doctest::Approx(std::pow(0.8, 1.5)).epsilon(1e-12));

  // Uniformity is per view, then averaged: pooling all four rows would give another number.
  const double pooled = uniformity(z, 2).item();
  CHECK(uniformity_loss(z, 2, 2).item() == doctest::Approx(-0.8).epsilon(1e-12));
  CHECK(std::abs(pooled - (-0.8)) > 0.1);

  // ||.||^alpha at d = 0 has gradient 0 even for alpha < 2.
  Tensor same = leaf({1, 2, -1, 0, 1, 2, -1, 0}, {4, 2});
  Tensor a = alignment_loss(same, 2, 1);
  CHECK(a.item() == 0.0);
  a.backward();
  CHECK(all_zero(same.grad()));
}

TEST_CASE("Decoupled Uniformity: the hand case of losses.md") {
  // Views (1,0), (0,1), (-1,0) and (0.6,0.8), (0,1), (-0.8,-0.6): means (0.8,0.4), (0,1),
  // (-0.9,-0.3).
  const std::vector<double> v = {1, 0, 0, 1, -1, 0, 0.6, 0.8, 0, 1, -0.8, -0.6};
  const Tensor z = Tensor::from_vector(v, {6, 2});
  check_values(view_means(z, 2), {0.8, 0.4, 0, 1, -0.9, -0.3}, 1e-12);
  CHECK(du_loss(z, 2, 1).item() == doctest::Approx(-1.82426).epsilon(1e-6));
  CHECK(du_loss(z, 2, 2).item() == doctest::Approx(-3.04190).epsilon(1e-6));
  CHECK(make_loss("du", {{"t", 1}})->forward(z.to(DType::f32), 2).loss.item() ==
        doctest::Approx(-1.82426).epsilon(1e-6));

  // dL/dmu at t = 2, mu as the leaf.
  Tensor mu = view_means(z, 2).detach().set_requires_grad(true);
  du_from_means(mu, 2).backward();
  check_values(mu.grad(), {-3.07860, 2.24501, 2.85422, -2.51229, 0.224386, 0.267280}, 1e-5);

  // Scaling any input row by a positive factor changes nothing.
  std::vector<double> scaled = v;
  const double factors[6] = {3, 0.5, 10, 1e-3, 7, 2};
  for (size_t i = 0; i < 12; ++i) scaled[i] *= factors[i / 2];
  const Tensor zs = Tensor::from_vector(scaled, {6, 2});
  for (double t : {1.0, 2.0})
    CHECK(du_loss(zs, 2, t).item() == doctest::Approx(du_loss(z, 2, t).item()).epsilon(1e-14));
}

TEST_CASE("Decoupled Uniformity diagnostics on the hand case") {
  // w'_nm = 3 w_nm, S_n = sum_{m != n} w'_nm; values from NumPy at t = 2.
  const std::vector<double> v = {1, 0, 0, 1, -1, 0, 0.6, 0.8, 0, 1, -0.8, -0.6};
  LossOutput out = make_loss("du")->forward(Tensor::from_vector(v, {6, 2}), 2);
  const auto& d = out.diagnostics;
  CHECK(d.at("mu_sqnorm") == doctest::Approx(0.9).epsilon(1e-12));
  CHECK(d.at("S_mean") == doctest::Approx(2.0).epsilon(1e-12));  // N - 1
  CHECK(d.at("S_min") == doctest::Approx(0.165406142).epsilon(1e-8));
  CHECK(d.at("S_max") == doctest::Approx(2.9757199762).epsilon(1e-9));
  CHECK(d.at("w_max") == doctest::Approx(2.8345938580079855).epsilon(1e-12));
  CHECK(d.at("align") == doctest::Approx(0.4).epsilon(1e-12));
  CHECK(d.at("unif") == doctest::Approx(-3.145198847261436).epsilon(1e-12));
  // For K = 2, ||mu_n||^2 = (1 + u_n^(1).u_n^(2)) / 2 = 1 - align_n / 4.
  CHECK(d.at("mu_sqnorm") == doctest::Approx(1 - d.at("align") / 4).epsilon(1e-12));
}

TEST_CASE("every loss reports align and unif on the same scale") {
  Generator gen(5);
  const Tensor z = Tensor::normal({12, 6}, 0, 1, gen, DType::f64);
  LossOutput ref = make_loss("infonce")->forward(z, 3);
  for (const std::string& name : registered_losses()) {
    INFO(name);
    LossOutput out = make_loss(name)->forward(z, 3);
    CHECK(out.diagnostics.at("align") == doctest::Approx(ref.diagnostics.at("align")));
    CHECK(out.diagnostics.at("unif") == doctest::Approx(ref.diagnostics.at("unif")));
  }
  // At its defaults (alpha = 2, t = 2) align_uniform's own terms are Wang & Isola's metrics.
  LossOutput au = make_loss("align_uniform")->forward(z, 3);
  CHECK(au.diagnostics.at("loss_align") == doctest::Approx(au.diagnostics.at("align")));
  CHECK(au.diagnostics.at("loss_unif") == doctest::Approx(au.diagnostics.at("unif")));
}

TEST_CASE("diagnostics are not recorded on the tape") {
  Tensor z = rows32({1, 0, 0.8f, 0.6f, 0.6f, 0.8f, 0, 1, 0.2f, 0.3f, -1, 0}, 2);
  z.set_requires_grad(true);
  for (const std::string& name : registered_losses()) {
    INFO(name);
    LossOutput out = make_loss(name)->forward(z, 2);
    CHECK(grad_enabled());
    CHECK_FALSE(out.diagnostics.empty());
    CHECK(out.loss.requires_grad());
    for (const auto& kv : out.diagnostics) {
      INFO(kv.first);
      CHECK(std::isfinite(kv.second));
    }
  }
}

TEST_CASE("registry: names, parameters and their errors") {
  const std::vector<std::string> names = registered_losses();
  for (const char* n : {"align_uniform", "du", "infonce"})
    CHECK(std::find(names.begin(), names.end(), n) != names.end());
  CHECK(std::is_sorted(names.begin(), names.end()));

  // Resolved parameters, defaults filled in.
  CHECK(make_loss("infonce")->params() == LossParams{{"temperature", 0.5}, {"decoupled", 0}});
  CHECK(make_loss("du")->params() == LossParams{{"t", 2}});
  CHECK(make_loss("align_uniform", {{"alpha", 1}})->params() ==
        LossParams{{"alpha", 1}, {"t", 2}, {"w_align", 1}, {"w_unif", 1}});
  CHECK(make_loss("du")->name() == "du");

  check_throws_with([] { make_loss("simclr"); },
                    {"[make_loss]", "'simclr'", "align_uniform", "du", "infonce"});
  check_throws_with(
      [] {
        make_loss("infonce", {{"tau", 0.2}});
      },
      {"[infonce]", "unknown parameter 'tau'", "temperature", "decoupled"});
  check_throws_with(
      [] {
        make_loss("infonce", {{"temperature", 0}});
      },
      {"[infonce]", "'temperature'", "> 0", "got 0"});
  check_throws_with(
      [] {
        make_loss("infonce", {{"temperature", -0.5}});
      },
      {"[infonce]", "'temperature'", "-0.5"});
  check_throws_with(
      [] {
        make_loss("infonce", {{"temperature", std::nan("")}});
      },
      {"[infonce]", "'temperature'"});
  check_throws_with(
      [] {
        make_loss("infonce", {{"decoupled", 2}});
      },
      {"[infonce]", "'decoupled'", "0 (false) or 1 (true)"});
  check_throws_with([] { make_loss("du", {{"t", 0}}); }, {"[du]", "'t'", "> 0"});
  check_throws_with(
      [] {
        make_loss("du", {{"temperature", 1}});
      },
      {"[du]", "unknown parameter 'temperature'", "t"});
  check_throws_with(
      [] {
        make_loss("align_uniform", {{"alpha", -1}});
      },
      {"[align_uniform]", "'alpha'", "> 0"});
  check_throws_with(
      [] {
        make_loss("align_uniform", {{"t", -2}});
      },
      {"[align_uniform]", "'t'", "> 0"});
  check_throws_with(
      [] {
        make_loss("align_uniform", {{"w_unif", -1}});
      },
      {"[align_uniform]", "'w_unif'", ">= 0"});
  check_throws_with([] { DecoupledUniformity(DuOptions{-1}); }, {"[du]", "'t'"});

  // Shapes at forward time: K < 2, rows not divisible by K, not a matrix.
  const Tensor z = nt_xent_rows();
  for (const std::string& name : names) {
    INFO(name);
    LossPtr loss = make_loss(name);
    check_throws_with([&] { loss->forward(z, 1); }, {"[" + name + "]", "K must be >= 2", "[4, 2]"});
    check_throws_with([&] { loss->forward(z, 3); },
                      {"[" + name + "]", "not divisible by K = 3", "[4, 2]"});
    check_throws_with([&] { loss->forward(z.reshape({8}), 2); }, {"[" + name + "]", "[8]"});
    check_throws_with(
        [&] {
          loss->forward(Tensor::zeros({0, 2}), 2);
        },
        {"[" + name + "]", "empty", "[0, 2]"});
  }

  // A new loss registered at run time is built by name like the others; names are unique.
  register_loss("test_half_du", [](const LossParams& p) {
    ParamReader r("test_half_du", p);
    const double t = r.positive("t", 2);
    r.finish();
    return std::make_unique<DecoupledUniformity>(DuOptions{t / 2});
  });
  CHECK(make_loss("test_half_du", {{"t", 4}})->params() == LossParams{{"t", 2}});
  check_throws_with([] { register_loss("du", make_du); }, {"[register_loss]", "'du'", "already"});
  check_throws_with([] { register_loss("", make_du); }, {"[register_loss]", "empty"});
  check_throws_with([] { register_loss("x", nullptr); }, {"[register_loss]", "'x'"});
}

TEST_CASE("Decoupled Uniformity with a kernel prior") {
  // The hand case of losses.md with prior features; references from NumPy (np.linalg.solve).
  const std::vector<double> v = {1, 0, 0, 1, -1, 0, 0.6, 0.8, 0, 1, -0.8, -0.6};
  const Tensor z = Tensor::from_vector(v, {6, 2});
  const Tensor g = Tensor::from_vector(std::vector<double>{0, 0, 1, 0, 0, 2}, {3, 2});
  DuPriorOptions rbf;  // t 2, sigma 1, lambda 0.01
  check_values(kernel_prior_weights(g, rbf),
               {0.9843354570725857, 0.009297781015545606, 0.0013433237742448598,
                0.00929778101554562, 0.9845144249459816, 1.2688692859902037e-05,
                0.0013433237742448432, 1.268869285989564e-05, 0.9899179795497011},
               1e-12);
  CHECK(du_kernel_prior_loss(z, 2, g, rbf).item() ==
        doctest::Approx(-2.9409449486567967).epsilon(1e-12));

  DuPriorOptions cosine;
  cosine.kernel = PriorKernel::cosine;
  cosine.t = 1;
  const Tensor g2 = Tensor::from_vector(std::vector<double>{1, 0, 1, 1, 0, 1}, {3, 2});
  CHECK(du_kernel_prior_loss(z, 2, g2, cosine).item() ==
        doctest::Approx(-1.2125109688817077).epsilon(1e-12));

  // Priors far apart: G = I, alpha = I / (1 + lambda), so the loss is L_DU of mu / 1.01.
  const Tensor far = Tensor::from_vector(std::vector<double>{0, 0, 100, 0, 0, 100}, {3, 2});
  CHECK(du_kernel_prior_loss(z, 2, far, rbf).item() ==
        doctest::Approx(du_from_means(mul(view_means(z, 2), 1 / 1.01), 2).item()).epsilon(1e-12));

  // alpha is a constant: no gradient reaches the prior features.
  Tensor gl = leaf({0, 0, 1, 0, 0, 2}, {3, 2});
  Tensor zl = leaf(v, {6, 2});
  du_kernel_prior_loss(zl, 2, gl, rbf).backward();
  CHECK_FALSE(gl.grad().defined());
  CHECK(zl.grad().defined());

  check_throws_with([&] { du_kernel_prior_loss(z, 2, g.slice(0, 2), rbf); },
                    {"[du_prior]", "N = 3", "[2, 2]", "[6, 2]"});
  DuPriorOptions bad = rbf;
  bad.sigma = 0;
  check_throws_with([&] { du_kernel_prior_loss(z, 2, g, bad); }, {"[du_prior]", "'sigma'"});
  bad = rbf;
  bad.lambda = -1;
  check_throws_with([&] { du_kernel_prior_loss(z, 2, g, bad); }, {"[du_prior]", "'lambda'"});
}
