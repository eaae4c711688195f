// Finite-difference gradient checks in float64 for every differentiable op. Inputs are kept
// away from kinks (relu, abs, clamp, max ties) so central differences are valid.
#include "tests/helpers.h"

using namespace ss;
using namespace ss::test;

using In = std::vector<Tensor>;

// Values in [lo, hi] whose magnitude is at least `gap` away from 0 (away from kinks at 0).
static Tensor away_from_zero(const Shape& shape, uint64_t seed, double gap = 0.2) {
  Tensor t = rand64(shape, seed, gap, 1.0);
  NoGradGuard ng;
  double* p = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i)
    if (i % 2) p[i] = -p[i];
  return t;
}

TEST_CASE("gradcheck: elementwise binary ops with broadcasting") {
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{3, 4}, {3, 4}}, {{3, 4}, {4}},   {{3, 4}, {3, 1}}, {{2, 3, 2, 2}, {1, 3, 1, 1}},
      {{3, 4}, {}},     {{4, 1}, {1, 4}}};
  for (const auto& [sa, sb] : shapes) {
    CAPTURE(shape_str(sa));
    CAPTURE(shape_str(sb));
    Tensor a = rand64(sa, 1), b = rand64(sb, 2, 0.5, 1.5);
    check_gradients([](const In& in) { return weighted_sum(add(in[0], in[1])); }, {a, b});
    check_gradients([](const In& in) { return weighted_sum(sub(in[0], in[1])); }, {a, b});
    check_gradients([](const In& in) { return weighted_sum(mul(in[0], in[1])); }, {a, b});
    check_gradients([](const In& in) { return weighted_sum(div(in[0], in[1])); }, {a, b});
  }
}

TEST_CASE("gradcheck: elementwise unary ops") {
  Tensor x = away_from_zero({3, 5}, 3);
  Tensor pos = rand64({3, 5}, 4, 0.3, 2.0);
  check_gradients([](const In& in) { return weighted_sum(neg(in[0])); }, {x});
  check_gradients([](const In& in) { return weighted_sum(exp(in[0])); }, {x});
  check_gradients([](const In& in) { return weighted_sum(log(in[0])); }, {pos});
  check_gradients([](const In& in) { return weighted_sum(pow(in[0], 3.0)); }, {x});
  check_gradients([](const In& in) { return weighted_sum(pow(in[0], 1.5)); }, {pos});
  check_gradients([](const In& in) { return weighted_sum(pow(in[0], 2.0)); }, {x});
  check_gradients([](const In& in) { return weighted_sum(sqrt(in[0])); }, {pos});
  check_gradients([](const In& in) { return weighted_sum(abs(in[0])); }, {x});
  check_gradients([](const In& in) { return weighted_sum(relu(in[0])); }, {x});
  // Bounds at +-0.1 sit between the values (all |x| >= 0.2), away from the kinks.
  check_gradients([](const In& in) { return weighted_sum(clamp(in[0], -0.1, 0.1)); }, {x});
  check_gradients([](const In& in) { return weighted_sum(clamp(in[0], -0.5, 2.0)); }, {pos});
  check_gradients([](const In& in) { return weighted_sum(clamp_min(in[0], 0.1)); }, {x});
  check_gradients([](const In& in) { return weighted_sum(mul(add(in[0], 0.5), 2.0)); }, {x});
}

TEST_CASE("gradcheck: matmul with every transpose combination, and linear") {
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      Tensor a = rand64(ta ? Shape{4, 3} : Shape{3, 4}, 5);
      Tensor b = rand64(tb ? Shape{2, 4} : Shape{4, 2}, 6);
      check_gradients([=](const In& in) { return weighted_sum(matmul(in[0], in[1], ta, tb)); },
                      {a, b});
    }
  Tensor x = rand64({3, 4}, 7), w = rand64({2, 4}, 8), b = rand64({2}, 9);
  check_gradients([](const In& in) { return weighted_sum(linear(in[0], in[1], in[2])); },
                  {x, w, b});
  check_gradients([](const In& in) { return weighted_sum(linear(in[0], in[1], Tensor())); },
                  {x, w});
}

TEST_CASE("gradcheck: conv2d over kernel sizes, strides, paddings, with and without bias") {
  struct Case {
    int64_t N, Cin, H, W, Cout, k, stride, pad;
    bool bias;
  };
  const std::vector<Case> cases = {{2, 2, 5, 5, 3, 3, 1, 1, true},  {1, 2, 6, 5, 2, 3, 2, 1, false},
                                   {2, 3, 4, 4, 2, 1, 2, 0, true},  {1, 1, 5, 7, 2, 5, 1, 2, true},
                                   {2, 2, 4, 4, 2, 2, 2, 0, false}, {1, 2, 3, 3, 1, 3, 1, 0, true}};
  for (const Case& c : cases) {
    CAPTURE(c.k);
    CAPTURE(c.stride);
    CAPTURE(c.pad);
    Tensor x = rand64({c.N, c.Cin, c.H, c.W}, 10);
    Tensor w = rand64({c.Cout, c.Cin, c.k, c.k}, 11);
    Tensor b = c.bias ? rand64({c.Cout}, 12) : Tensor();
    const int64_t s = c.stride, p = c.pad;
    std::vector<Tensor> in = {x, w};
    if (c.bias) in.push_back(b);
    check_gradients(
        [=](const In& t) {
          return weighted_sum(conv2d(t[0], t[1], t.size() > 2 ? t[2] : Tensor(), s, p));
        },
        in);
  }
}

TEST_CASE("gradcheck: conv2d 3x3 stride 1 through Winograd F(2x2, 3x3) and F(4x4, 3x3)") {
  // 16 channels on both sides: the CPU takes the Winograd path (engine/cpu/winograd.h) for the
  // output, the input gradient (a flipped 3x3 conv) and the weight gradient; outputs of 4x4 and
  // more use 4x4 tiles. Odd sizes leave partial tiles at the edges; pads 0 to 2 cover the
  // transposed conv of the input gradient.
  struct Case {
    int64_t H, W, pad;
    bool bias;
  };
  for (const Case& c : {Case{5, 5, 1, true}, Case{4, 7, 0, false}, Case{3, 4, 2, true},
                        Case{7, 6, 1, false}, Case{3, 5, 1, true}}) {
    CAPTURE(c.H);
    CAPTURE(c.W);
    CAPTURE(c.pad);
    Tensor x = rand64({2, 16, c.H, c.W}, 30);
    Tensor w = rand64({16, 16, 3, 3}, 31);
    Tensor b = c.bias ? rand64({16}, 32) : Tensor();
    std::vector<Tensor> in = {x, w};
    if (c.bias) in.push_back(b);
    const int64_t p = c.pad;
    check_gradients(
        [=](const In& t) {
          return weighted_sum(conv2d(t[0], t[1], t.size() > 2 ? t[2] : Tensor(), 1, p));
        },
        in);
  }
}

TEST_CASE("gradcheck: batch norm in training and evaluation, 2-D and 4-D") {
  for (bool training : {true, false})
    for (const Shape& shape : {Shape{5, 3}, Shape{2, 3, 2, 3}}) {
      CAPTURE(training);
      CAPTURE(shape_str(shape));
      Tensor x = rand64(shape, 13, -2, 2);
      Tensor w = rand64({3}, 14, 0.5, 1.5), b = rand64({3}, 15);
      check_gradients(
          [=](const In& in) {
            Tensor rm = Tensor::zeros({3}, DType::f64), rv = Tensor::full({3}, 1.5, DType::f64);
            return weighted_sum(batch_norm(in[0], in[1], in[2], rm, rv, training));
          },
          {x, w, b});
    }
}

TEST_CASE("gradcheck: batch norm fused with the residual add and ReLU") {
  // relu(bn(x) + r) and relu(bn(x)): the fused op's backward masks dout by the output's sign
  // (no residual) or hands the masked dout to the residual (with one).
  for (bool training : {true, false})
    for (bool residual : {false, true}) {
      CAPTURE(training);
      CAPTURE(residual);
      Tensor x = rand64({2, 3, 2, 3}, 16, -2, 2);
      Tensor w = rand64({3}, 17, 0.5, 1.5), b = rand64({3}, 18, -0.5, 0.5);
      Tensor r = rand64({2, 3, 2, 3}, 19, -1, 1);
      std::vector<Tensor> in = {x, w, b};
      if (residual) in.push_back(r);
      check_gradients(
          [=](const In& t) {
            Tensor rm = Tensor::zeros({3}, DType::f64), rv = Tensor::full({3}, 1.5, DType::f64);
            return weighted_sum(batch_norm_add_relu(t[0], t[1], t[2], rm, rv,
                                                    t.size() > 3 ? t[3] : Tensor(), training));
          },
          in);
    }
}

TEST_CASE("gradcheck: pooling") {
  // Distinct values, so no max ties inside a window.
  Tensor x = Tensor::zeros({1, 2, 5, 6}, DType::f64);
  {
    Generator g(16);
    double* p = x.data<double>();
    for (int64_t i = 0; i < x.numel(); ++i)
      p[i] = double((i * 37) % 60) / 10.0 + 0.01 * g.uniform();
  }
  x.set_requires_grad(true);
  check_gradients([](const In& in) { return weighted_sum(max_pool2d(in[0], 2, 2)); }, {x});
  check_gradients([](const In& in) { return weighted_sum(max_pool2d(in[0], 3, 2, 1)); }, {x});
  check_gradients([](const In& in) { return weighted_sum(avg_pool2d(in[0], 2, 2)); }, {x});
  check_gradients([](const In& in) { return weighted_sum(avg_pool2d(in[0], 3, 2, 1)); }, {x});
  check_gradients([](const In& in) { return weighted_sum(global_avg_pool(in[0])); }, {x});
  check_gradients([](const In& in) { return weighted_sum(flatten(in[0])); }, {x});
}

TEST_CASE("gradcheck: reductions, softmax family and cross-entropy") {
  Tensor x = rand64({3, 4, 2}, 17, -2, 2);
  check_gradients([](const In& in) { return sum(in[0]); }, {x});
  check_gradients([](const In& in) { return mean(in[0]); }, {x});
  for (int64_t dim : {0, 1, 2, -1}) {
    CAPTURE(dim);
    check_gradients([=](const In& in) { return weighted_sum(sum(in[0], dim)); }, {x});
    check_gradients([=](const In& in) { return weighted_sum(mean(in[0], dim, true)); }, {x});
    check_gradients([=](const In& in) { return weighted_sum(max(in[0], dim)); }, {x});
    check_gradients([=](const In& in) { return weighted_sum(logsumexp(in[0], dim)); }, {x});
    check_gradients([=](const In& in) { return weighted_sum(log_softmax(in[0], dim)); }, {x});
    check_gradients([=](const In& in) { return weighted_sum(softmax(in[0], dim)); }, {x});
  }
  Tensor logits = rand64({4, 5}, 18, -3, 3);
  check_gradients([](const In& in) { return cross_entropy(in[0], {0, 4, 2, 2}); }, {logits});
}

TEST_CASE("gradcheck: normalisation, pairwise distances, masking") {
  Tensor x = rand64({4, 3}, 19), y = rand64({5, 3}, 20);
  check_gradients([](const In& in) { return weighted_sum(normalize(in[0], 1)); }, {x});
  check_gradients([](const In& in) { return weighted_sum(normalize(in[0], 0)); }, {x});
  check_gradients([](const In& in) { return weighted_sum(pairwise_sqdist(in[0], in[1])); }, {x, y});
  // One-argument form: the diagonal is exactly 0 and clamped; off-diagonal entries are smooth.
  check_gradients(
      [](const In& in) { return weighted_sum(fill_diagonal(pairwise_sqdist(in[0]), 0.0)); }, {x});
  std::vector<uint8_t> mask = {1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0};
  check_gradients([=](const In& in) { return weighted_sum(masked_fill(in[0], mask, 3.0)); }, {x});
  Tensor s = rand64({4, 4}, 21);
  check_gradients([](const In& in) { return sum(logsumexp(fill_diagonal(in[0], -INFINITY), 1)); },
                  {s});
}

TEST_CASE("gradcheck is a public API that catches a wrong gradient") {
  // An op whose backward is deliberately off by a factor 2 must be caught.
  auto bad_square = [](const Tensor& x) {
    Tensor out = mul(x.detach(), x.detach());
    const Tensor kx = x.detach();
    return record("bad_square", out, {x}, [kx](const Tensor& dout) {
      return std::vector<Tensor>{mul(mul(dout, kx), 4.0)};
    });
  };
  GradcheckResult r =
      gradcheck([&](const In& in) { return sum(bad_square(in[0])); }, {rand64({3}, 22)});
  CHECK_FALSE(r.ok);
  CHECK(r.report.find("analytical") != std::string::npos);
  check_throws_with([] { gradcheck([](const In& in) { return sum(in[0]); }, {Tensor::ones({2})}); },
                    {"[gradcheck]", "float64"});
}
