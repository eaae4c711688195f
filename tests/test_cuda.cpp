// The CUDA backend against the CPU backend, op by op, forward and backward through autograd,
// compared with atol + rtol * |ref| and the largest difference printed on failure.
//
// Without a CUDA device every case says so ("skipped: no CUDA device") and passes. Setting
// SELFSUP_CUDA_TEST_ON_CPU=1 runs the same comparisons with the CPU as the device under test,
// which checks the harness itself on a machine without a GPU (it proves nothing about CUDA).
// This file has its own main: with no device it exits 77, which ctest reports as "Skipped".
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/cuda/device.h"
#include "engine/cuda/prefetch.h"
#include "engine/ops.h"

using namespace ss;

namespace {

// The device under test, or false (after one visible message) when there is none.
bool device_under_test(Device& dev) {
  static const bool on_cpu = [] {
    const char* v = std::getenv("SELFSUP_CUDA_TEST_ON_CPU");
    return v && std::string(v) == "1";
  }();
  if (has_backend(Device::cuda)) {
    dev = Device::cuda;
    return true;
  }
  if (on_cpu) {
    static bool said = false;
    if (!said) MESSAGE("no CUDA device: comparing the CPU with itself (harness self-check)");
    said = true;
    dev = Device::cpu;
    return true;
  }
  MESSAGE("skipped: no CUDA device");
  return false;
}

#define DEVICE_OR_SKIP(dev) \
  Device dev;               \
  if (!device_under_test(dev)) return

struct Tol {
  double atol = 1e-5, rtol = 1e-4;
};

// Every element of got within atol + rtol * |ref| of ref (equal infinities and NaNs match).
void check_close(const Tensor& ref, const Tensor& got, Tol tol, const std::string& what) {
  REQUIRE_MESSAGE(ref.defined() == got.defined(), what << ": defined on one device only");
  if (!ref.defined()) return;
  REQUIRE_MESSAGE(ref.shape() == got.shape(), what << ": shapes " << shape_str(ref.shape())
                                                   << " vs " << shape_str(got.shape()));
  const std::vector<double> r = ref.to_vector(), g = got.to_vector();
  double worst = -1;
  size_t at = 0;
  bool ok = true;
  for (size_t i = 0; i < r.size(); ++i) {
    if (r[i] == g[i] || (std::isnan(r[i]) && std::isnan(g[i]))) continue;
    const double d = std::abs(r[i] - g[i]);
    const double excess = d - (tol.atol + tol.rtol * std::abs(r[i]));
    if (!(excess <= 0)) ok = false;
    if (!(d <= worst)) {
      worst = d;
      at = i;
    }
  }
  INFO(what << ": largest difference " << worst << " at element " << at << " (cpu "
            << (r.empty() ? 0.0 : r[at]) << ", device " << (g.empty() ? 0.0 : g[at]) << "), atol "
            << tol.atol << " rtol " << tol.rtol);
  CHECK(ok);
}

Tensor on(const Tensor& host, Device dev, bool grad = false) {
  Tensor t = Tensor::empty(host.shape(), host.dtype(), dev);
  t.copy_(host);
  if (grad) t.set_requires_grad(true);
  return t;
}

Tensor uniform(const Shape& s, uint64_t seed, double lo = -1, double hi = 1) {
  Generator g(seed);
  return Tensor::uniform(s, lo, hi, g);
}

// Values from a small set, so that maxima tie often.
Tensor ties(const Shape& s, uint64_t seed) {
  Generator g(seed);
  std::vector<float> v(size_t(shape_numel(s)));
  for (auto& x : v) x = float(std::floor(g.uniform(0, 3)));
  return Tensor::from_vector(v, s);
}

// A fixed seed gradient for an output of this shape: distinct weights of both signs.
Tensor seed_grad(const Shape& s) {
  std::vector<float> w(size_t(shape_numel(s)));
  for (size_t i = 0; i < w.size(); ++i) w[i] = float(0.5 + 0.37 * double((i * 7) % 11)) - 1.5f;
  return Tensor::from_vector(w, s);
}

using OpFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Runs fn on CPU leaves and on device leaves made from the same host values, back-propagates the
// same seed gradient, and compares the outputs and the gradient of every input.
void compare_op(const std::string& name, Device dev, const OpFn& fn,
                const std::vector<Tensor>& inputs, Tol tol = {}, bool backward = true) {
  std::vector<Tensor> a, b;
  for (const Tensor& h : inputs) {
    a.push_back(on(h, Device::cpu, backward));
    b.push_back(on(h, dev, backward));
  }
  Tensor ya = fn(a), yb = fn(b);
  REQUIRE(yb.device() == dev);
  check_close(ya, yb, tol, name + " forward");
  if (!backward) return;
  ya.backward(seed_grad(ya.shape()));
  yb.backward(on(seed_grad(yb.shape()), dev));
  for (size_t i = 0; i < a.size(); ++i)
    check_close(a[i].grad(), b[i].grad(), tol, name + " gradient of input " + std::to_string(i));
}

}  // namespace

TEST_CASE("cuda: tensors move to the device and back") {
  DEVICE_OR_SKIP(dev);
  Tensor h = uniform({3, 5}, 1);
  Tensor d = on(h, dev);
  CHECK(d.device() == dev);
  check_close(h, d, {0, 0}, "round trip");
  check_close(h, d.to(Device::cpu), {0, 0}, "to(cpu)");
  check_close(Tensor::full({7}, 2.5), Tensor::full({7}, 2.5, DType::f32, dev), {0, 0}, "full");
  check_close(Tensor::zeros({0, 4}), Tensor::zeros({0, 4}, DType::f32, dev), {0, 0}, "empty");
  CHECK(Tensor::scalar(4.25, DType::f32, dev).item() == 4.25);
  Tensor c = Tensor::empty({3, 5}, DType::f32, dev);
  c.copy_(d);  // device to device
  check_close(h, c, {0, 0}, "copy_");
  check_close(h.slice(1, 3), d.slice(1, 3), {0, 0}, "slice");
  check_close(h.clone(), d.clone(), {0, 0}, "clone");
}

TEST_CASE("cuda: binary ops with broadcasting") {
  DEVICE_OR_SKIP(dev);
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{4, 5}, {4, 5}}, {{4, 5}, {5}},    {{3, 1, 4}, {1, 5, 1}},
      {{2, 3}, {}},     {{6}, {2, 1, 6}}, {{2, 3, 4, 5}, {3, 1, 5}},
      {{1}, {3, 2}},    {{5, 1}, {1, 7}}, {{2, 1, 3, 1, 2}, {4, 1, 5, 1}}};
  uint64_t seed = 10;
  for (const auto& [sa, sb] : shapes) {
    const std::string tag = shape_str(sa) + " and " + shape_str(sb);
    Tensor a = uniform(sa, ++seed), b = uniform(sb, ++seed), bpos = uniform(sb, ++seed, 0.5, 2);
    compare_op("add " + tag, dev, [](auto& v) { return add(v[0], v[1]); }, {a, b});
    compare_op("sub " + tag, dev, [](auto& v) { return sub(v[0], v[1]); }, {a, b});
    compare_op("mul " + tag, dev, [](auto& v) { return mul(v[0], v[1]); }, {a, b});
    compare_op("div " + tag, dev, [](auto& v) { return div(v[0], v[1]); }, {a, bpos});
  }
  Tensor a = uniform({3, 4}, 99);
  compare_op("add scalar", dev, [](auto& v) { return add(v[0], 2.5); }, {a});
  compare_op("mul scalar", dev, [](auto& v) { return mul(v[0], -1.5); }, {a});
  compare_op("operators", dev, [](auto& v) { return -(v[0] * v[0] + v[0]) / (v[0] * v[0] + 1.0); },
             {a});
}

TEST_CASE("cuda: unary ops and their derivatives") {
  DEVICE_OR_SKIP(dev);
  Tensor x = uniform({4, 6}, 3);
  {  // exact zeros and bounds exercise the derivative rules at kinks
    std::vector<double> v = x.to_vector();
    v[0] = 0;
    v[5] = -0.3;
    v[7] = 0.4;
    std::vector<float> f(v.begin(), v.end());
    x = Tensor::from_vector(f, {4, 6});
  }
  Tensor pos = uniform({4, 6}, 4, 0.1, 3);
  compare_op("neg", dev, [](auto& v) { return neg(v[0]); }, {x});
  compare_op("exp", dev, [](auto& v) { return exp(v[0]); }, {x});
  compare_op("log", dev, [](auto& v) { return log(v[0]); }, {pos});
  compare_op("pow 2", dev, [](auto& v) { return pow(v[0], 2.0); }, {x});
  compare_op("pow 3", dev, [](auto& v) { return pow(v[0], 3.0); }, {x});
  compare_op("pow 0.5", dev, [](auto& v) { return pow(v[0], 0.5); }, {pos});
  compare_op("pow -1.5", dev, [](auto& v) { return pow(v[0], -1.5); }, {pos});
  compare_op("sqrt", dev, [](auto& v) { return sqrt(v[0]); }, {pos});
  compare_op("sqrt at 0", dev, [](auto& v) { return sqrt(relu(v[0])); }, {x});
  compare_op("abs", dev, [](auto& v) { return abs(v[0]); }, {x});
  compare_op("clamp", dev, [](auto& v) { return clamp(v[0], -0.3, 0.4); }, {x});
  compare_op("clamp_min", dev, [](auto& v) { return clamp_min(v[0], 0.1); }, {x});
  compare_op("relu", dev, [](auto& v) { return relu(v[0]); }, {x});
}

TEST_CASE("cuda: shape ops") {
  DEVICE_OR_SKIP(dev);
  Tensor a = uniform({4, 6}, 5), b = uniform({2, 6}, 6), c = uniform({2, 3, 2, 2}, 7);
  compare_op("reshape", dev, [](auto& v) { return v[0].reshape({3, -1}); }, {a});
  compare_op("slice", dev, [](auto& v) { return v[0].slice(1, 3); }, {a});
  compare_op("concat", dev, [](auto& v) { return concat({v[0], v[1], v[0]}); }, {a, b});
  compare_op("transpose", dev, [](auto& v) { return transpose(v[0]); }, {a});
  compare_op("flatten", dev, [](auto& v) { return flatten(v[0]); }, {c});
  compare_op("clone", dev, [](auto& v) { return mul(v[0].clone(), v[0]); }, {a});
}

TEST_CASE("cuda: matmul and linear") {
  DEVICE_OR_SKIP(dev);
  const Tol tol{1e-4, 1e-4};
  const int64_t M = 17, K = 33, N = 9;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      Tensor a = uniform(ta ? Shape{K, M} : Shape{M, K}, 20 + ta);
      Tensor b = uniform(tb ? Shape{N, K} : Shape{K, N}, 30 + tb);
      compare_op(
          "matmul ta=" + std::to_string(ta) + " tb=" + std::to_string(tb), dev,
          [=](auto& v) { return matmul(v[0], v[1], ta, tb); }, {a, b}, tol);
    }
  Tensor x = uniform({8, 12}, 40), w = uniform({5, 12}, 41), bias = uniform({5}, 42);
  compare_op(
      "linear", dev, [](auto& v) { return linear(v[0], v[1], v[2]); }, {x, w, bias}, tol);
  compare_op(
      "linear without bias", dev, [](auto& v) { return linear(v[0], v[1], Tensor()); }, {x, w},
      tol);
  Tensor big_a = uniform({300, 257}, 43), big_b = uniform({257, 129}, 44);
  compare_op("matmul 300x257x129", dev, [](auto& v) { return matmul(v[0], v[1]); }, {big_a, big_b},
             {1e-3, 1e-3});
}

TEST_CASE("cuda: conv2d configurations") {
  DEVICE_OR_SKIP(dev);
  struct Config {
    const char* name;
    int64_t N, Cin, H, W, Cout, k, stride, pad;
    bool bias;
  };
  const Config configs[] = {
      {"3x3 pad 1", 2, 3, 8, 8, 4, 3, 1, 1, true},
      {"3x3 stride 2", 2, 4, 9, 9, 5, 3, 2, 1, false},
      {"1x1 stride 2", 2, 6, 8, 8, 3, 1, 2, 0, false},
      {"1x1 stride 1 (no im2col)", 3, 5, 4, 4, 6, 1, 1, 0, true},
      {"5x5 pad 2 non-square", 2, 3, 7, 11, 4, 5, 1, 2, true},
      {"batch 1", 1, 3, 6, 6, 2, 3, 1, 1, true},
      {"7x7 stride 2 pad 3", 2, 3, 16, 16, 4, 7, 2, 3, false},
      {"several image chunks", 16, 64, 64, 64, 8, 3, 1, 1, true},
  };
  uint64_t seed = 100;
  for (const Config& c : configs) {
    Tensor x = uniform({c.N, c.Cin, c.H, c.W}, ++seed);
    Tensor w = uniform({c.Cout, c.Cin, c.k, c.k}, ++seed, -0.3, 0.3);
    Tensor b = uniform({c.Cout}, ++seed);
    const Tol tol{1e-4, 1e-3};
    if (c.bias)
      compare_op(
          std::string("conv2d ") + c.name, dev,
          [&](auto& v) { return conv2d(v[0], v[1], v[2], c.stride, c.pad); }, {x, w, b}, tol);
    else
      compare_op(
          std::string("conv2d ") + c.name, dev,
          [&](auto& v) { return conv2d(v[0], v[1], Tensor(), c.stride, c.pad); }, {x, w}, tol);
  }
}

TEST_CASE("cuda: pooling, including ties (B26)") {
  DEVICE_OR_SKIP(dev);
  Tensor x = ties({2, 3, 9, 9}, 7);
  // Max-pool ties: both devices send the gradient to the first maximum, summed in one order,
  // so forward values and gradients agree exactly.
  const Tol exact{0, 0};
  compare_op(
      "max_pool2d 2x2 s2", dev, [](auto& v) { return max_pool2d(v[0], 2, 2); }, {x}, exact);
  compare_op(
      "max_pool2d 3x3 s2 p1", dev, [](auto& v) { return max_pool2d(v[0], 3, 2, 1); }, {x}, exact);
  compare_op(
      "max_pool2d 3x3 s1 (overlapping)", dev, [](auto& v) { return max_pool2d(v[0], 3, 1); }, {x},
      exact);
  compare_op(
      "max_pool2d 3x2 s(2,1) p(1,1)", dev,
      [](auto& v) { return max_pool2d(v[0], 3, 2, 2, 1, 1, 1); }, {x}, exact);
  Tensor y = uniform({2, 3, 9, 8}, 8);
  compare_op("avg_pool2d 2x2 s2", dev, [](auto& v) { return avg_pool2d(v[0], 2, 2); }, {y});
  compare_op("avg_pool2d 3x3 s1 p1", dev, [](auto& v) { return avg_pool2d(v[0], 3, 1, 1); }, {y});
  compare_op("avg_pool2d 3x3 s2 p1", dev, [](auto& v) { return avg_pool2d(v[0], 3, 2, 1); }, {y});
  compare_op("global_avg_pool", dev, [](auto& v) { return global_avg_pool(v[0]); }, {y});
}

TEST_CASE("cuda: batch norm, training and evaluation, running statistics") {
  DEVICE_OR_SKIP(dev);
  const Tol tol{1e-4, 1e-3};
  for (const Shape& s : {Shape{4, 3, 5, 6}, Shape{16, 7}}) {
    const int64_t C = s[1];
    Tensor x = uniform(s, 50, -2, 3), w = uniform({C}, 51, 0.5, 1.5), b = uniform({C}, 52);
    for (int training = 0; training < 2; ++training)
      for (int affine = 0; affine < 2; ++affine) {
        const std::string tag = "batch_norm " + shape_str(s) + (training ? " train" : " eval") +
                                (affine ? " affine" : "");
        Tensor rm_a = uniform({C}, 53), rv_a = uniform({C}, 54, 0.5, 2);
        Tensor rm_b = on(rm_a, dev), rv_b = on(rv_a, dev);
        // Two steps, so the running statistics are updated twice.
        for (int step = 0; step < 2; ++step) {
          std::vector<Tensor> in = {x, w, b};
          std::vector<Tensor> a, d;
          for (const Tensor& h : in) {
            a.push_back(on(h, Device::cpu, true));
            d.push_back(on(h, dev, true));
          }
          Tensor wa = affine ? a[1] : Tensor(), ba = affine ? a[2] : Tensor();
          Tensor wd = affine ? d[1] : Tensor(), bd = affine ? d[2] : Tensor();
          Tensor ya = batch_norm(a[0], wa, ba, rm_a, rv_a, training);
          Tensor yd = batch_norm(d[0], wd, bd, rm_b, rv_b, training);
          check_close(ya, yd, tol, tag + " forward");
          ya.backward(seed_grad(ya.shape()));
          yd.backward(on(seed_grad(yd.shape()), dev));
          check_close(a[0].grad(), d[0].grad(), tol, tag + " dinp");
          if (affine) {
            check_close(a[1].grad(), d[1].grad(), tol, tag + " dweight");
            check_close(a[2].grad(), d[2].grad(), tol, tag + " dbias");
          }
          check_close(rm_a, rm_b, tol, tag + " running_mean");
          check_close(rv_a, rv_b, tol, tag + " running_var");
        }
      }
  }
}

TEST_CASE("cuda: batch norm fused with the residual add and ReLU") {
  DEVICE_OR_SKIP(dev);
  const Tol tol{1e-4, 1e-3};
  Tensor x = uniform({4, 3, 5, 6}, 55, -2, 3), w = uniform({3}, 56, 0.5, 1.5);
  Tensor b = uniform({3}, 57), r = uniform({4, 3, 5, 6}, 58, -1, 1);
  for (int training = 0; training < 2; ++training) {
    const std::string tag = std::string("batch_norm_add_relu") + (training ? " train" : " eval");
    auto fused = [training](const std::vector<Tensor>& v, const Tensor& residual) {
      Tensor rm = Tensor::zeros({3}, DType::f32, v[0].device());
      Tensor rv = Tensor::ones({3}, DType::f32, v[0].device());
      return batch_norm_add_relu(v[0], v[1], v[2], rm, rv, residual, training != 0);
    };
    compare_op(
        tag + " residual", dev, [&](auto& v) { return fused(v, v[3]); }, {x, w, b, r}, tol);
    compare_op(
        tag, dev, [&](auto& v) { return fused(v, Tensor()); }, {x, w, b}, tol);
  }
}

TEST_CASE("cuda: reductions") {
  DEVICE_OR_SKIP(dev);
  Tensor x = uniform({3, 4, 5}, 60);
  compare_op("sum", dev, [](auto& v) { return sum(v[0]); }, {x});
  compare_op("mean", dev, [](auto& v) { return mean(v[0]); }, {x});
  for (int64_t d : {0, 1, 2, -1})
    for (bool keep : {false, true}) {
      const std::string tag = " dim " + std::to_string(d) + (keep ? " keepdim" : "");
      compare_op("sum" + tag, dev, [=](auto& v) { return sum(v[0], d, keep); }, {x});
      compare_op("mean" + tag, dev, [=](auto& v) { return mean(v[0], d, keep); }, {x});
      compare_op("logsumexp" + tag, dev, [=](auto& v) { return logsumexp(v[0], d, keep); }, {x});
    }
  // Ties: the first maximum takes the gradient on both devices.
  Tensor t = ties({4, 6, 5}, 61);
  for (int64_t d : {0, 1, 2})
    compare_op("max with ties dim " + std::to_string(d), dev, [=](auto& v) { return max(v[0], d); },
               {t}, {0, 0});
  Tensor big = uniform({3, 5000}, 62);
  compare_op("sum of long rows", dev, [](auto& v) { return sum(v[0], 1); }, {big});
  compare_op("max of long rows", dev, [](auto& v) { return max(v[0], 1); }, {big}, {0, 0});
  compare_op("logsumexp of long rows", dev, [](auto& v) { return logsumexp(v[0], 1); }, {big});
  compare_op("sum of everything", dev, [](auto& v) { return sum(v[0]); },
             {uniform({1000, 300}, 63)}, {1e-3, 1e-4});

  // A fully masked row: logsumexp gives -inf (B09), forward only.
  std::vector<uint8_t> mask(12, 0);
  for (int j = 0; j < 4; ++j) mask[size_t(4 + j)] = 1;
  compare_op(
      "logsumexp of a masked row", dev,
      [&](auto& v) { return logsumexp(masked_fill(v[0], mask, -INFINITY), 1); },
      {uniform({3, 4}, 64)}, {}, false);
}

TEST_CASE("cuda: softmax and log-softmax") {
  DEVICE_OR_SKIP(dev);
  Tensor x = uniform({3, 4, 5}, 70, -3, 3);
  for (int64_t d : {0, 1, 2}) {
    compare_op("softmax dim " + std::to_string(d), dev, [=](auto& v) { return softmax(v[0], d); },
               {x});
    compare_op("log_softmax dim " + std::to_string(d), dev,
               [=](auto& v) { return log_softmax(v[0], d); }, {x});
  }
  Tensor wide = uniform({4, 3000}, 71, -5, 5);
  compare_op("softmax of long rows", dev, [](auto& v) { return softmax(v[0], 1); }, {wide});
  compare_op("log_softmax of long rows", dev, [](auto& v) { return log_softmax(v[0], 1); }, {wide});
  // Partly masked rows are fine; a fully masked row is an error on every device.
  std::vector<uint8_t> some(12, 0);
  some[1] = some[6] = some[7] = 1;
  compare_op("softmax with masked entries", dev,
             [&](auto& v) { return softmax(masked_fill(v[0], some, -INFINITY), 1); },
             {uniform({3, 4}, 72)});
  std::vector<uint8_t> row(12, 0);
  for (int j = 0; j < 4; ++j) row[size_t(8 + j)] = 1;
  Tensor m = masked_fill(on(uniform({3, 4}, 73), dev), row, -INFINITY);
  CHECK_THROWS_AS(softmax(m, 1), std::invalid_argument);
  CHECK_THROWS_AS(log_softmax(m, 1), std::invalid_argument);
  // After the error the device still works.
  check_close(softmax(uniform({2, 3}, 74), 1), softmax(on(uniform({2, 3}, 74), dev), 1), {},
              "softmax after an error");
}

TEST_CASE("cuda: cross-entropy, and labels outside [0, C) rejected (B37)") {
  DEVICE_OR_SKIP(dev);
  const std::vector<int64_t> labels = {0, 3, 2, 2, 1, 4};
  compare_op("cross_entropy", dev, [&](auto& v) { return cross_entropy(v[0], labels); },
             {uniform({6, 5}, 80, -4, 4)});
  compare_op("cross_entropy scaled", dev,
             [&](auto& v) { return mul(cross_entropy(v[0], labels), 3.0); },
             {uniform({6, 5}, 81, -4, 4)});
  Tensor logits = on(uniform({3, 4}, 82), dev);
  for (int64_t bad : {int64_t(-1), int64_t(4), int64_t(100)}) {
    try {
      cross_entropy(logits, {0, bad, 1});
      FAIL("label " << bad << " was accepted");
    } catch (const std::invalid_argument& e) {
      const std::string msg = e.what();
      CHECK(msg.find("[cross_entropy]") != std::string::npos);
      CHECK(msg.find(std::to_string(bad)) != std::string::npos);
    }
  }
}

TEST_CASE("cuda: normalize, pairwise distances, masking") {
  DEVICE_OR_SKIP(dev);
  Tensor x = uniform({5, 4}, 90);
  {
    std::vector<double> v = x.to_vector();
    for (int j = 0; j < 4; ++j) v[size_t(8 + j)] = 0;  // a zero row (B01)
    x = Tensor::from_vector(std::vector<float>(v.begin(), v.end()), {5, 4});
  }
  compare_op("normalize", dev, [](auto& v) { return normalize(v[0], 1); }, {x});
  compare_op("normalize dim 0", dev, [](auto& v) { return normalize(v[0], 0); }, {x});
  compare_op("pairwise_sqdist", dev, [](auto& v) { return pairwise_sqdist(v[0]); }, {x},
             {1e-4, 1e-3});
  compare_op("pairwise_sqdist a, b", dev, [](auto& v) { return pairwise_sqdist(v[0], v[1]); },
             {x, uniform({3, 4}, 91)}, {1e-4, 1e-3});
  std::vector<uint8_t> mask(20, 0);
  for (size_t i = 0; i < mask.size(); i += 3) mask[i] = 1;
  compare_op("masked_fill", dev, [&](auto& v) { return masked_fill(v[0], mask, 7.5); }, {x});
  compare_op("fill_diagonal", dev,
             [](auto& v) { return logsumexp(fill_diagonal(v[0], -INFINITY), 1); },
             {uniform({6, 6}, 92)});
}

namespace {
// A small conv net written with ops: conv-bn-relu-maxpool-conv-bn-relu-gap-linear.
struct TinyNet {
  Tensor c1, g1, b1, c2, g2, b2, fw, fb;  // parameters
  Tensor rm1, rv1, rm2, rv2;              // running statistics
  std::vector<Tensor*> params() { return {&c1, &g1, &b1, &c2, &g2, &b2, &fw, &fb}; }

  static TinyNet make(Device dev) {
    TinyNet n;
    n.c1 = on(uniform({8, 3, 3, 3}, 200, -0.3, 0.3), dev, true);
    n.g1 = on(Tensor::ones({8}), dev, true);
    n.b1 = on(Tensor::zeros({8}), dev, true);
    n.c2 = on(uniform({16, 8, 3, 3}, 201, -0.2, 0.2), dev, true);
    n.g2 = on(Tensor::ones({16}), dev, true);
    n.b2 = on(Tensor::zeros({16}), dev, true);
    n.fw = on(uniform({10, 16}, 202, -0.25, 0.25), dev, true);
    n.fb = on(Tensor::zeros({10}), dev, true);
    n.rm1 = Tensor::zeros({8}, DType::f32, dev);
    n.rv1 = Tensor::ones({8}, DType::f32, dev);
    n.rm2 = Tensor::zeros({16}, DType::f32, dev);
    n.rv2 = Tensor::ones({16}, DType::f32, dev);
    return n;
  }

  Tensor forward(const Tensor& x) {
    Tensor h = relu(batch_norm(conv2d(x, c1, Tensor(), 1, 1), g1, b1, rm1, rv1, true));
    h = max_pool2d(h, 2, 2);
    h = relu(batch_norm(conv2d(h, c2, Tensor(), 2, 1), g2, b2, rm2, rv2, true));
    return linear(global_avg_pool(h), fw, fb);
  }

  void sgd_step(double lr) {
    NoGradGuard ng;
    for (Tensor* p : params()) {
      p->copy_(sub(*p, mul(p->grad(), lr)));
      p->zero_grad();
    }
  }
};

std::vector<int64_t> tiny_labels(int64_t n) {
  std::vector<int64_t> y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) y[size_t(i)] = (i * 7 + 3) % 10;
  return y;
}
}  // namespace

TEST_CASE("cuda: a few training steps of a small conv net match the CPU") {
  DEVICE_OR_SKIP(dev);
  TinyNet a = TinyNet::make(Device::cpu), d = TinyNet::make(dev);
  const std::vector<int64_t> y = tiny_labels(8);
  for (int step = 0; step < 5; ++step) {
    Tensor x = uniform({8, 3, 12, 12}, 300 + uint64_t(step));
    Tensor la = cross_entropy(a.forward(x), y), ld = cross_entropy(d.forward(on(x, dev)), y);
    check_close(la, ld, {1e-4, 1e-3}, "loss at step " + std::to_string(step));
    la.backward();
    ld.backward();
    a.sgd_step(0.1);
    d.sgd_step(0.1);
  }
  const std::vector<Tensor*> pa = a.params(), pd = d.params();
  for (size_t i = 0; i < pa.size(); ++i)
    check_close(*pa[i], *pd[i], {1e-4, 1e-3}, "parameter " + std::to_string(i) + " after 5 steps");
  check_close(a.rv2, d.rv2, {1e-4, 1e-3}, "running_var after 5 steps");
}

TEST_CASE("cuda: a few training steps of an MLP match the CPU") {
  DEVICE_OR_SKIP(dev);
  Tensor w1[2], b1[2], w2[2], b2[2];
  const Device devs[2] = {Device::cpu, dev};
  for (int k = 0; k < 2; ++k) {
    w1[k] = on(uniform({32, 20}, 400, -0.2, 0.2), devs[k], true);
    b1[k] = on(Tensor::zeros({32}), devs[k], true);
    w2[k] = on(uniform({10, 32}, 401, -0.2, 0.2), devs[k], true);
    b2[k] = on(Tensor::zeros({10}), devs[k], true);
  }
  const std::vector<int64_t> y = tiny_labels(16);
  for (int step = 0; step < 10; ++step) {
    Tensor x = uniform({16, 20}, 500 + uint64_t(step));
    Tensor loss[2];
    for (int k = 0; k < 2; ++k) {
      loss[k] = cross_entropy(linear(relu(linear(on(x, devs[k]), w1[k], b1[k])), w2[k], b2[k]), y);
      loss[k].backward();
      NoGradGuard ng;
      for (Tensor* p : {&w1[k], &b1[k], &w2[k], &b2[k]}) {
        p->copy_(sub(*p, mul(p->grad(), 0.5)));
        p->zero_grad();
      }
    }
    check_close(loss[0], loss[1], {1e-4, 1e-3}, "MLP loss at step " + std::to_string(step));
  }
  check_close(w1[0], w1[1], {1e-4, 1e-3}, "MLP first weight after 10 steps");
}

TEST_CASE("cuda: the caching allocator makes no cudaMalloc after a warm-up step") {
  DEVICE_OR_SKIP(dev);
  if (dev != Device::cuda) return;  // the counters belong to the CUDA allocator
  TinyNet n = TinyNet::make(dev);
  const std::vector<int64_t> y = tiny_labels(8);
  auto step = [&] {
    Tensor loss = cross_entropy(n.forward(on(uniform({8, 3, 12, 12}, 600), dev)), y);
    loss.backward();
    n.sgd_step(0.05);
    return loss.item();
  };
  step();  // warm-up: fills the free lists
  step();
  const CudaMemoryStats before = cuda_memory_stats();
  CHECK(before.malloc_calls > 0);
  for (int i = 0; i < 3; ++i) step();
  const CudaMemoryStats after = cuda_memory_stats();
  INFO("cudaMalloc calls " << before.malloc_calls << " -> " << after.malloc_calls << ", bytes "
                           << before.malloc_bytes << " -> " << after.malloc_bytes);
  CHECK(after.malloc_calls == before.malloc_calls);
  CHECK(after.in_use_bytes <= before.in_use_bytes);
}

TEST_CASE("prefetch: batches reach the device intact") {
  // The CPU path runs in every build; the CUDA path where a device is present.
  std::vector<Device> devices = {Device::cpu};
  if (has_backend(Device::cuda)) devices.push_back(Device::cuda);
  for (Device dev : devices) {
    Prefetcher pf(dev);
    CHECK_THROWS_AS(pf.take(), std::logic_error);
    Tensor host = uniform({4, 3, 5, 5}, 700);
    pf.submit(host);
    CHECK(pf.pending());
    CHECK_THROWS_AS(pf.submit(host), std::logic_error);
    std::vector<double> expect = host.to_vector();
    host.fill_(0.0);  // the caller may reuse its buffer once submit() returns
    for (int i = 0; i < 4; ++i) {
      Tensor got = pf.take();
      CHECK(got.device() == dev);
      CHECK(got.to_vector() == expect);
      Tensor next = uniform({4, 3, 5, 5}, 701 + uint64_t(i));
      expect = next.to_vector();
      pf.submit(next);
      Tensor work = mul(got, 2.0);  // compute queued while the next copy runs
      CHECK(work.to_vector().size() == got.to_vector().size());
    }
    CHECK(pf.take().to_vector() == expect);
    CHECK_FALSE(pf.pending());
  }
  if (!has_backend(Device::cuda)) {
    CHECK_THROWS(Prefetcher(Device::cuda));
    MESSAGE("prefetch: CUDA path skipped: no CUDA device");
  }
}

int main(int argc, char** argv) {
  doctest::Context ctx(argc, argv);
  const int rc = ctx.run();
  if (ctx.shouldExit() || rc != 0) return rc;
  const char* on_cpu = std::getenv("SELFSUP_CUDA_TEST_ON_CPU");
  const bool harness_only = on_cpu && std::string(on_cpu) == "1";
  return has_backend(Device::cuda) || harness_only ? 0 : 77;
}
