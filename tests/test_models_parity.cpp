// PyTorch parity of a ResNet BasicBlock and of a small encoder + head (tests/fixtures/README.md,
// "Models"): weights loaded by their state_dict names, one training-mode forward, backward with
// the stored dout; output, input gradient, every parameter gradient and the running statistics
// after the step are compared, in float64 and in float32.
#include <algorithm>
#include <cmath>
#include <string>

#include "engine/nn.h"
#include "models/head.h"
#include "models/resnet.h"
#include "tests/fixture.h"
#include "tests/helpers.h"

using namespace ss;
using namespace ss::test;

namespace {

bool starts_with(const std::string& s, const char* p) {
  return s.rfind(p, 0) == 0;
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to_vector()) m = std::max(m, std::abs(v));
  return m;
}

// |a - r| <= atol + rtol |r| elementwise, with atol = atol_scale * max(1, max |r|): elements
// that are zero in exact arithmetic (the gradient of a bias followed by BN is 0 up to rounding)
// or that come out of cancellations are only meaningful relative to the tensor's scale. Also
// reports the normwise relative difference max |a - r| / max |r|.
void compare(const std::string& name, const Tensor& actual, const Tensor& ref, double rtol,
             double atol_scale) {
  const double scale = max_abs(ref);
  check_close(name, actual, ref, atol_scale * std::max(1.0, scale), rtol);
  if (actual.defined() && actual.shape() == ref.shape()) {
    double worst = 0;
    const auto a = actual.to_vector(), r = ref.to_vector();
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - r[i]));
    MESSAGE(name << ": max |a - r| / max |r| = " << (scale > 0 ? worst / scale : worst));
  }
}

void check_parity(Module& model, const Fixture& fx, DType dtype, double rtol, double atol_scale) {
  // The weights: every fixture entry that is not an input, output or reference, strictly.
  std::map<std::string, Tensor> weights;
  for (const std::string& k : fx.names())
    if (!starts_with(k, "grad.") && !starts_with(k, "after.") && k != "input" && k != "dout" &&
        k != "output" && k != "dinput")
      weights[k] = fx.get(k, dtype);
  model.to(dtype);
  model.load_state_dict(weights);  // strict: the names match both ways
  model.train();

  // Every reference the fixture holds belongs to a parameter or buffer of the model.
  const auto sd = model.state_dict();
  for (const std::string& k : fx.names()) {
    if (starts_with(k, "grad.")) CHECK_MESSAGE(sd.count(k.substr(5)), k);
    if (starts_with(k, "after.")) CHECK_MESSAGE(sd.count(k.substr(6)), k);
  }

  Tensor x = fx.get("input", dtype);
  x.set_requires_grad(true);
  Tensor out = model.forward(x);
  out.backward(fx.get("dout", dtype));

  compare("output", out, fx.get("output", DType::f64), rtol, atol_scale);
  compare("dinput", x.grad(), fx.get("dinput", DType::f64), rtol, atol_scale);
  for (const auto& [name, p] : model.named_parameters())
    compare("grad." + name, p.grad(), fx.get("grad." + name, DType::f64), rtol, atol_scale);
  for (const auto& [name, b] : model.named_buffers())
    compare("after." + name, b, fx.get("after." + name, DType::f64), rtol, atol_scale);
}

std::shared_ptr<SslModel> small_encoder_with_head() {
  ResNetConfig cfg;
  cfg.in_channels = 3;
  cfg.depths = {1, 1, 1, 1};
  cfg.widths = {8, 16, 32, 64};
  auto encoder = std::make_shared<ResNet>(cfg);
  auto head = std::make_shared<ProjectionHead>(64, 64, 32, true);
  return std::make_shared<SslModel>(encoder, head);
}

}  // namespace

TEST_CASE("parity: BasicBlock 16 -> 32, stride 2, training mode, float64") {
  Fixture fx("model_basic_block");
  CHECK(fx.meta_number("bn_eps") == 1e-5);
  CHECK(fx.meta_number("bn_momentum") == 0.1);
  Generator gen(0);
  BasicBlock block(gen, 16, 32, 2);
  check_parity(block, fx, DType::f64, 1e-4, 1e-10);
}

TEST_CASE("parity: BasicBlock 16 -> 32, stride 2, training mode, float32") {
  Fixture fx("model_basic_block");
  Generator gen(0);
  BasicBlock block(gen, 16, 32, 2);
  check_parity(block, fx, DType::f32, 1e-4, 1e-5);
}

TEST_CASE("parity: small encoder + head, training mode, float64") {
  Fixture fx("model_small_encoder");
  auto model = small_encoder_with_head();
  check_parity(*model, fx, DType::f64, 1e-4, 1e-10);
  // head.0 feeds a training-mode BN, which removes any constant: its bias gradient is 0.
  for (double v : model->head->named_parameters()[1].second.grad().to_vector())
    CHECK(std::abs(v) < 1e-12);
}

TEST_CASE("parity: small encoder + head, training mode, float32") {
  Fixture fx("model_small_encoder");
  auto model = small_encoder_with_head();
  check_parity(*model, fx, DType::f32, 1e-4, 1e-5);
}
