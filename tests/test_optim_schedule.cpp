// Linear warm-up + cosine decay (case B35): every number of the case, the edge cases, the
// CIFAR per-step setting, and resuming from a saved global step.
#include <cmath>

#include "engine/optim.h"
#include "engine/schedule.h"
#include "tests/helpers.h"

using namespace ss;
using namespace ss::test;

namespace {

// 6 significant digits, as the case gives them.
void check_lr(double got, double want) {
  INFO("got " << got << ", want " << want);
  CHECK(std::abs(got - want) <= 5e-6 * std::abs(want) + 1e-15);
}

}  // namespace

TEST_CASE("B35.1: base 0.3, end 0, W = 10, S = 100") {
  const WarmupCosineSchedule s(0.3, 100, 10, 0.0);
  check_lr(s.lr(0), 0.03);
  CHECK(s.lr(0) > 0);
  check_lr(s.lr(4), 0.15);
  check_lr(s.lr(9), 0.3);
  check_lr(s.lr(10), 0.3);
  check_lr(s.lr(11), 0.299907);
  check_lr(s.lr(30), 0.264147);
  check_lr(s.lr(54), 0.152647);
  check_lr(s.lr(55), 0.147353);
  check_lr(s.lr(98), 9.34407e-05);
  CHECK(s.lr(99) == 0.0);
  double total = 0;
  for (int64_t k = 0; k < 100; ++k) total += s.lr(k);
  CHECK(std::abs(total - 15.15) < 1e-9);
  // Monotone: up during warm-up, then down.
  for (int64_t k = 1; k < 100; ++k)
    CHECK((k <= 10 ? s.lr(k) >= s.lr(k - 1) : s.lr(k) <= s.lr(k - 1)));
}

TEST_CASE("B35.2: the wrong variants are not what the schedule computes") {
  const WarmupCosineSchedule s(0.3, 100, 10);
  // base * s / W would give lr(0) = 0 and lr(9) = 0.27.
  CHECK(s.lr(0) != 0.0);
  CHECK(std::abs(s.lr(9) - 0.27) > 0.01);
  // A cosine denominator of M instead of M - 1 would give lr(55) = 0.15, lr(99) = 9.13759e-05.
  CHECK(std::abs(s.lr(55) - 0.15) > 1e-3);
  CHECK(s.lr(99) == 0.0);
  const double pi = std::acos(-1.0);
  check_lr(0.3 * (1 + std::cos(pi * 45 / 90)) / 2, 0.15);
  check_lr(0.3 * (1 + std::cos(pi * 89 / 90)) / 2, 9.13759e-05);
}

TEST_CASE("B35.3: edge cases W = S, W = 0, end > 0, S = 1") {
  const WarmupCosineSchedule only_warmup(0.3, 10, 10);
  for (int64_t k = 0; k < 10; ++k) check_lr(only_warmup.lr(k), 0.03 * double(k + 1));
  for (int64_t k = 0; k < 10; ++k) CHECK(std::isfinite(only_warmup.lr(k)));

  const WarmupCosineSchedule no_warmup(0.3, 100, 0);
  check_lr(no_warmup.lr(0), 0.3);
  check_lr(no_warmup.lr(1), 0.299924);
  CHECK(no_warmup.lr(99) == 0.0);

  const WarmupCosineSchedule floor(0.3, 100, 10, 0.001);
  check_lr(floor.lr(55), 0.147862);
  CHECK(floor.lr(99) == 0.001);

  // One cosine step (M = 1) and a one-step run: end, no 0 / 0.
  CHECK(WarmupCosineSchedule(0.3, 11, 10, 0.01).lr(10) == 0.01);
  CHECK(WarmupCosineSchedule(0.3, 1, 0, 0.0).lr(0) == 0.0);
  check_lr(WarmupCosineSchedule(0.3, 1, 1, 0.0).lr(0), 0.3);
  // After the run the rate stays at the floor; bad arguments throw.
  CHECK(floor.lr(100) == 0.001);
  check_throws_with([&] { floor.lr(-1); }, {"[schedule]", "-1"});
  check_throws_with([] { WarmupCosineSchedule(0.3, 10, 11); }, {"[schedule]", "11"});
  check_throws_with([] { WarmupCosineSchedule(0.3, 0, 0); }, {"[schedule]"});
  check_throws_with([] { WarmupCosineSchedule(-0.3, 10, 0); }, {"[schedule]"});
}

TEST_CASE("B35.4: per-step CIFAR-10 schedule (390 steps/epoch, 10 warm-up epochs, 500 epochs)") {
  const int64_t per_epoch = 390;
  const WarmupCosineSchedule s(0.6, 500 * per_epoch, 10 * per_epoch);
  check_lr(s.lr(0), 0.000153846);
  check_lr(s.lr(3899), 0.6);
  check_lr(s.lr(3900), 0.6);
  CHECK(s.lr(194999) == 0.0);
  check_lr(warmup_cosine_lr(0, 0.6, 0.0, 3900, 195000), 0.000153846);
}

TEST_CASE("B35.5: lr(s) is set before update s; a resumed run continues from its saved step") {
  const WarmupCosineSchedule sched(0.3, 100, 10);
  auto run = [&](Tensor& p, Optimizer& opt, int64_t from, int64_t to, std::vector<double>& lrs) {
    for (int64_t s = from; s < to; ++s) {
      opt.set_lr(sched.lr(opt.step_count()));  // the global step, in place before the update
      lrs.push_back(opt.lr());
      p.set_grad(Tensor::full(p.shape(), 1.0, DType::f64));
      opt.step();
    }
  };
  // One run of 100 steps.
  Tensor p = Tensor::zeros({3}, DType::f64).set_requires_grad(true);
  Sgd whole({ParamGroup{.params = {p}, .names = {"p"}}}, SgdOptions{.momentum = 0.9});
  std::vector<double> lrs_whole;
  run(p, whole, 0, 100, lrs_whole);
  check_lr(lrs_whole[0], 0.03);  // the first update already moves the weights
  CHECK(lrs_whole[99] == 0.0);

  // The same run stopped after 37 steps and resumed from a checkpoint.
  Tensor q = Tensor::zeros({3}, DType::f64).set_requires_grad(true);
  std::vector<double> lrs_resumed;
  std::map<std::string, Tensor> saved_state;
  Tensor saved_q;
  {
    Sgd first({ParamGroup{.params = {q}, .names = {"p"}}}, SgdOptions{.momentum = 0.9});
    run(q, first, 0, 37, lrs_resumed);
    for (const auto& [k, t] : first.state_dict()) saved_state[k] = t.clone();
    saved_q = q.detach().clone();
  }
  Tensor r = Tensor::zeros({3}, DType::f64).set_requires_grad(true);
  r.copy_(saved_q);
  Sgd resumed({ParamGroup{.params = {r}, .names = {"p"}}}, SgdOptions{.momentum = 0.9});
  resumed.load_state_dict(saved_state);
  CHECK(resumed.step_count() == 37);
  run(r, resumed, 37, 100, lrs_resumed);
  CHECK(lrs_resumed == lrs_whole);
  CHECK(r.to_vector() == p.to_vector());
}
