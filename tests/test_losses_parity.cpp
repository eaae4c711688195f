// Parity of every loss with PyTorch: value and dz = dL/dz on the fixtures
// tests/fixtures/loss_*.safetensors (see tests/fixtures/README.md), in float64 and float32.
#include <cmath>

#include "losses/decoupled_uniformity.h"
#include "losses/loss.h"
#include "tests/fixture.h"
#include "tests/helpers.h"

using namespace ss;
using namespace ss::test;

namespace {

const char* const kShapes[] = {"n8_d16_k2", "n8_d128_k2", "n64_d16_k2", "n8_d16_k3"};

// Fixture stem prefix (without the shape) -> loss name and parameters as a config would give.
struct ParityLoss {
  std::string stem;
  std::string name;
  LossParams params;
};

const std::vector<ParityLoss>& parity_losses() {
  static const std::vector<ParityLoss> v = {
      {"loss_infonce_tau0.5", "infonce", {{"temperature", 0.5}, {"decoupled", 0}}},
      {"loss_infonce_tau0.1", "infonce", {{"temperature", 0.1}, {"decoupled", 0}}},
      {"loss_infonce_decoupled_tau0.5", "infonce", {{"temperature", 0.5}, {"decoupled", 1}}},
      {"loss_align_uniform_a2_t2",
       "align_uniform",
       {{"alpha", 2}, {"t", 2}, {"w_align", 1}, {"w_unif", 1}}},
      {"loss_du_t2", "du", {{"t", 2}}},
      {"loss_du_t1", "du", {{"t", 1}}},
  };
  return v;
}

// The parameters recorded in the fixture's metadata, in the registry's names.
LossParams params_from_metadata(const Fixture& f) {
  const std::string loss = f.meta("loss");
  if (loss == "infonce")
    return {{"temperature", f.meta_number("tau")}, {"decoupled", f.meta_bool("decoupled")}};
  if (loss == "align_uniform")
    return {{"alpha", f.meta_number("alpha")},
            {"t", f.meta_number("t")},
            {"w_align", f.meta_number("w_align")},
            {"w_unif", f.meta_number("w_unif")}};
  return {{"t", f.meta_number("t")}};
}

}  // namespace

TEST_CASE("parity with PyTorch: every loss, value and dz") {
  for (const ParityLoss& p : parity_losses())
    for (const char* shape : kShapes) {
      const std::string stem = p.stem + "_" + shape;
      INFO(stem);
      const Fixture f(stem);
      REQUIRE(f.meta("loss") == p.name);
      CHECK(params_from_metadata(f) == p.params);
      const int64_t K = f.meta_int("K");
      LossPtr loss = make_loss(p.name, p.params);

      // float64: agreement to rounding.
      Tensor z = f.get("z", DType::f64).set_requires_grad(true);
      REQUIRE(z.size(0) == K * f.meta_int("N"));
      LossOutput out = loss->forward(z, K);
      out.loss.backward();
      check_close(stem + " loss f64", out.loss, f.get("loss", DType::f64), 1e-12, 1e-10);
      check_close(stem + " dz f64", z.grad(), f.get("dz", DType::f64), 1e-12, 1e-8);

      // float32: the same inputs (stored exactly in float32), float32 arithmetic throughout.
      Tensor z32 = f.get("z", DType::f32).set_requires_grad(true);
      Tensor l32 = loss->forward(z32, K).loss;
      l32.backward();
      check_close(stem + " loss f32", l32, f.get("loss", DType::f64), 1e-5, 1e-5);
      check_close(stem + " dz f32", z32.grad(), f.get("dz", DType::f64), 1e-6, 1e-3);
    }
}

TEST_CASE("parity with PyTorch: Decoupled Uniformity's means and dL/dmu") {
  const Fixture f("loss_du_t2_dmu_n8_d16_k2");
  const int64_t K = f.meta_int("K");
  const Tensor z = f.get("z", DType::f64);
  check_close("mu", view_means(z, K), f.get("mu", DType::f64), 1e-14, 1e-12);
  Tensor mu = f.get("mu", DType::f64).set_requires_grad(true);
  Tensor loss = du_from_means(mu, f.meta_number("t"));
  loss.backward();
  check_close("du loss from mu", loss, f.get("loss", DType::f64), 1e-12, 1e-10);
  check_close("dmu", mu.grad(), f.get("dmu", DType::f64), 1e-12, 1e-8);
}
