// Optimizers: PyTorch parity of one and two steps (SGD with momentum / Nesterov, AdamW, LARS),
// the weight-decay and LARS exclusions of case B25, decay / no-decay groups, state dicts.
#include <cmath>

#include "engine/nn.h"
#include "engine/optim.h"
#include "models/resnet.h"
#include "tests/fixture.h"
#include "tests/helpers.h"

using namespace ss;
using namespace ss::test;

namespace {

// p0 from the fixture as a leaf of `dtype`, in one group (weight decay from the metadata).
ParamGroup fixture_group(const Fixture& fx, DType dtype, Tensor& p) {
  p = fx.get("p0", dtype);
  p.set_requires_grad(true);
  ParamGroup g;
  g.params = {p};
  g.names = {"w"};
  g.weight_decay = fx.meta_number("weight_decay");
  return g;
}

// Two steps with g0 then g1; after step k, p and each state slot are compared with the
// fixture's p<k> and <state name><k>.
void check_two_steps(Optimizer& opt, Tensor& p, const Fixture& fx, DType dtype,
                     const std::vector<std::pair<std::string, std::string>>& slots, double rtol) {
  const double atol = dtype == DType::f64 ? 1e-14 : 1e-7;
  for (int k = 1; k <= 2; ++k) {
    p.set_grad(fx.get("g" + std::to_string(k - 1), dtype));
    opt.step();
    INFO("step " << k);
    check_close("p" + std::to_string(k), p, fx.get("p" + std::to_string(k), DType::f64), atol,
                rtol);
    for (const auto& [slot, ref] : slots) {
      const std::string name = ref + std::to_string(k);
      check_close(name, opt.state(0, 0, slot), fx.get(name, DType::f64), atol, rtol);
    }
  }
  CHECK(opt.step_count() == 2);
}

Tensor leaf1(const std::vector<double>& v) {
  Tensor t = Tensor::from_vector(v, {int64_t(v.size())});
  t.set_requires_grad(true);
  return t;
}

// A module with one conv weight, one BN and one linear bias: the three kinds of B25.1.
class TinyNet : public Module {
 public:
  explicit TinyNet(Generator& gen) {
    conv = register_module("conv", std::make_shared<Conv2d>(gen, 1, 1, 1));
    bn = register_module("bn", std::make_shared<BatchNorm>(1));
    fc = register_module("fc", std::make_shared<Linear>(gen, 1, 1, true));
  }
  std::string type_name() const override { return "TinyNet"; }
  std::shared_ptr<Conv2d> conv;
  std::shared_ptr<BatchNorm> bn;
  std::shared_ptr<Linear> fc;
};

}  // namespace

// ---- PyTorch parity ------------------------------------------------------------------------

TEST_CASE("SGD momentum and Nesterov match torch.optim.SGD over two steps") {
  for (const char* stem : {"optim_sgd_momentum", "optim_sgd_nesterov"})
    for (DType dt : {DType::f64, DType::f32}) {
      Fixture fx(stem);
      INFO(std::string(stem) << " " << std::string(dtype_name(dt)));
      CHECK(fx.meta_number("lr") == 0.1);
      Tensor p;
      Sgd opt({fixture_group(fx, dt, p)},
              SgdOptions{.lr = fx.meta_number("lr"),
                         .momentum = fx.meta_number("momentum"),
                         .nesterov = std::string(stem).ends_with("nesterov")});
      check_two_steps(opt, p, fx, dt, {{"momentum_buffer", "momentum_buffer"}},
                      dt == DType::f64 ? 1e-12 : 1e-5);
    }
}

TEST_CASE("AdamW matches torch.optim.AdamW over two steps") {
  for (DType dt : {DType::f64, DType::f32}) {
    Fixture fx("optim_adamw");
    INFO(std::string(dtype_name(dt)));
    Tensor p;
    AdamW opt({fixture_group(fx, dt, p)}, AdamWOptions{.lr = fx.meta_number("lr"),
                                                       .beta1 = fx.meta_number("beta1"),
                                                       .beta2 = fx.meta_number("beta2"),
                                                       .eps = fx.meta_number("eps")});
    check_two_steps(opt, p, fx, dt, {{"exp_avg", "exp_avg"}, {"exp_avg_sq", "exp_avg_sq"}},
                    dt == DType::f64 ? 1e-12 : 1e-5);
    CHECK(opt.state(0, 0, "step").item() == 2);
  }
}

TEST_CASE("LARS (SimCLR variant) matches the fixture over two steps, trust ratios included") {
  for (DType dt : {DType::f64, DType::f32}) {
    Fixture fx("optim_lars");
    INFO(std::string(dtype_name(dt)));
    CHECK(fx.meta("variant") == "simclr");
    Tensor p;
    Lars opt({fixture_group(fx, dt, p)}, LarsOptions{.lr = fx.meta_number("lr"),
                                                     .momentum = fx.meta_number("momentum"),
                                                     .trust_coefficient = fx.meta_number("eta")});
    check_two_steps(opt, p, fx, dt,
                    {{"momentum_buffer", "momentum_buffer"}, {"trust_ratio", "trust"}},
                    dt == DType::f64 ? 1e-12 : 1e-5);
  }
}

// ---- B25 -----------------------------------------------------------------------------------

TEST_CASE("B25.1: SGD weight decay skips BN parameters and biases") {
  Generator gen(0);
  TinyNet net(gen);
  net.conv->weight.fill_(2.0);
  net.bn->weight.fill_(1.0);
  net.fc->bias.fill_(0.5);
  auto groups = split_decay_groups(net, 0.1);
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].names == std::vector<std::string>{"conv.weight", "fc.weight"});
  CHECK(groups[0].weight_decay == 0.1);
  CHECK_FALSE(groups[0].lars_exclude);
  CHECK(groups[1].names == std::vector<std::string>{"bn.weight", "bn.bias", "fc.bias"});
  CHECK(groups[1].weight_decay == 0.0);
  CHECK(groups[1].lars_exclude);

  Sgd opt(groups, SgdOptions{.lr = 0.1, .momentum = 0});
  for (auto& t : net.parameters()) t.set_grad(Tensor::zeros(t.shape()));
  opt.step();
  check_values(net.conv->weight, {1.98}, 1e-7);
  check_values(net.bn->weight, {1.0}, 0);
  check_values(net.fc->bias, {0.5}, 0);
}

TEST_CASE("B25.2-4: LARS adaptation, exclusion and the zero-norm guard") {
  Tensor w = leaf1({3, 4});      // a conv weight: decay 0.1, adapted
  Tensor gamma = leaf1({1, 1});  // BN gamma: excluded from decay and adaptation
  Tensor zero = leaf1({0, 0});   // a non-excluded weight at zero
  ParamGroup adapted{.params = {w, zero}, .names = {"w", "zero"}, .weight_decay = 0.1};
  ParamGroup excluded{.params = {gamma}, .names = {"gamma"}, .lars_exclude = true};
  Lars opt({adapted, excluded}, LarsOptions{.lr = 1, .momentum = 0, .trust_coefficient = 0.001});
  for (Tensor* t : {&w, &gamma, &zero})
    t->set_grad(Tensor::from_vector(std::vector<double>{0.3, 0.4}, {2}));
  opt.step();

  // g' = (0.3, 0.4) + 0.1 (3, 4) = (0.6, 0.8); trust = 0.001 * 5 / 1 = 0.005.
  check_values(opt.state(0, 0, "trust_ratio"), {0.005}, 1e-12);
  check_values(w, {2.997, 3.996}, 1e-12);
  check_values(opt.state(1, 0, "trust_ratio"), {1.0}, 0);
  check_values(gamma, {0.7, 0.6}, 1e-12);
  check_values(opt.state(0, 1, "trust_ratio"), {1.0}, 0);
  check_values(zero, {-0.3, -0.4}, 1e-12);
  for (Tensor* t : {&w, &gamma, &zero})
    for (double v : t->to_vector()) CHECK(std::isfinite(v));

  // A zero gradient (after decay) also uses trust 1 instead of 0 / 0.
  Tensor still = leaf1({0, 0});
  Lars guard({ParamGroup{.params = {still}}}, LarsOptions{.lr = 1, .momentum = 0.9});
  still.set_grad(Tensor::zeros({2}, DType::f64));
  guard.step();
  check_values(still, {0, 0}, 0);
  check_values(guard.state(0, 0, "trust_ratio"), {1.0}, 0);
}

TEST_CASE("decay groups of a ResNet: every 1-D parameter is excluded, frozen ones left out") {
  auto net = make_encoder("resnet-tiny");
  auto groups = split_decay_groups(*net, 5e-4);
  REQUIRE(groups.size() == 2);
  size_t n = 0;
  for (const auto& g : groups)
    for (const auto& p : g.params) {
      CHECK((p.dim() == 1) == g.lars_exclude);
      CHECK((p.dim() == 1) == (g.weight_decay == 0));
      ++n;
    }
  CHECK(n == net->parameters().size());
  net->conv1->weight.set_requires_grad(false);
  CHECK(split_decay_groups(*net, 5e-4)[0].params.size() == groups[0].params.size() - 1);
  CHECK(single_group(*net, 0.0).params.size() == n - 1);
}

// ---- state, errors, factory ----------------------------------------------------------------

TEST_CASE("optimizer state dict: save, load into a fresh optimizer, continue identically") {
  for (const char* name : {"sgd", "lars", "adamw"}) {
    INFO(std::string(name));
    Fixture fx("optim_adamw");  // any p0, g0, g1
    Tensor a = fx.get("p0", DType::f64), b = fx.get("p0", DType::f64);
    a.set_requires_grad(true);
    b.set_requires_grad(true);
    OptimizerConfig cfg{.name = name, .lr = 0.05, .nesterov = true};
    auto oa =
        make_optimizer(cfg, {ParamGroup{.params = {a}, .names = {"w"}, .weight_decay = 0.01}});
    auto ob =
        make_optimizer(cfg, {ParamGroup{.params = {b}, .names = {"w"}, .weight_decay = 0.01}});
    CHECK(oa->name() == name);
    a.set_grad(fx.get("g0", DType::f64));
    oa->step();

    // A checkpoint: parameter values and optimizer state, cloned.
    std::map<std::string, Tensor> saved;
    for (const auto& [k, t] : oa->state_dict()) saved[k] = t.clone();
    CHECK(saved.count("step"));
    CHECK(saved.count(std::string(name) == "adamw" ? "w.exp_avg" : "w.momentum_buffer"));
    b.copy_(a);
    ob->load_state_dict(saved);
    CHECK(ob->step_count() == 1);

    a.set_grad(fx.get("g1", DType::f64));
    b.set_grad(fx.get("g1", DType::f64));
    oa->step();
    ob->step();
    CHECK(a.to_vector() == b.to_vector());

    auto bad = saved;
    bad["w.extra"] = Tensor::zeros({1});
    check_throws_with([&] { ob->load_state_dict(bad); }, {"unexpected", "w.extra"});
    bad = saved;
    for (auto& [k, t] : bad)
      if (k != "step" && t.dim() == 2) t = Tensor::zeros({5, 4}, DType::f64);
    check_throws_with([&] { ob->load_state_dict(bad); }, {"[4, 5]", "[5, 4]"});
  }
}

TEST_CASE("optimizer argument errors and skipped parameters") {
  Tensor p = leaf1({1, 2});
  check_throws_with([&] { Sgd({ParamGroup{.params = {p}}}, SgdOptions{.nesterov = true}); },
                    {"[sgd]", "Nesterov"});
  check_throws_with(
      [&] {
        Sgd({ParamGroup{.params = {p, p}}}, SgdOptions{});
      },
      {"[sgd]", "already in a group"});
  check_throws_with([&] { AdamW({ParamGroup{.params = {p}}}, AdamWOptions{.beta1 = 1.0}); },
                    {"[adamw]", "betas"});
  check_throws_with([&] { make_optimizer({.name = "adagrad"}, {}); }, {"[optim]", "adagrad"});
  Sgd opt({ParamGroup{.params = {p}, .weight_decay = 0.5}}, SgdOptions{.lr = 0.1});
  check_throws_with([&] { opt.set_lr(-1); }, {"[sgd]", "learning rate"});
  opt.step();  // no gradient: untouched, even with weight decay (as PyTorch)
  check_values(p, {1, 2}, 0);
  p.set_grad(Tensor::ones({2}, DType::f64));
  opt.zero_grad();
  CHECK_FALSE(p.grad().defined());
}

TEST_CASE("SGD lr scale per group and set_lr") {
  Tensor a = leaf1({1}), b = leaf1({1});
  Sgd opt({ParamGroup{.params = {a}}, ParamGroup{.params = {b}, .lr_scale = 0.5}},
          SgdOptions{.lr = 1.0});
  opt.set_lr(0.2);
  a.set_grad(Tensor::ones({1}, DType::f64));
  b.set_grad(Tensor::ones({1}, DType::f64));
  opt.step();
  check_values(a, {0.8}, 1e-15);
  check_values(b, {0.9}, 1e-15);
}
