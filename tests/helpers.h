// Small helpers shared by the tests.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "engine/gradcheck.h"
#include "engine/ops.h"

namespace ss::test {

// A float64 leaf with values uniform in [lo, hi), requiring grad.
inline Tensor rand64(const Shape& shape, uint64_t seed, double lo = -1, double hi = 1) {
  Generator g(seed);
  Tensor t = Tensor::uniform(shape, lo, hi, g, DType::f64);
  t.set_requires_grad(true);
  return t;
}

inline Tensor leaf(const std::vector<double>& v, const Shape& shape) {
  Tensor t = Tensor::from_vector(v, shape);
  t.set_requires_grad(true);
  return t;
}

// Checks every element of t against want within tol.
inline void check_values(const Tensor& t, const std::vector<double>& want, double tol = 1e-5) {
  std::vector<double> got = t.to_vector();
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i << ": got " << got[i] << ", want " << want[i]);
    CHECK(std::abs(got[i] - want[i]) <= tol * std::max(1.0, std::abs(want[i])));
  }
}

// Runs gradcheck and reports the worst entry on failure.
inline void check_gradients(const GradcheckFn& fn, const std::vector<Tensor>& inputs,
                            GradcheckOptions opt = {}) {
  GradcheckResult r = gradcheck(fn, inputs, opt);
  INFO(r.report);
  CHECK(r.ok);
}

// Reduces any output to a scalar with fixed, distinct weights, so every element of the output
// influences the checked value differently.
inline Tensor weighted_sum(const Tensor& y) {
  std::vector<double> w(size_t(y.numel()));
  for (size_t i = 0; i < w.size(); ++i) w[i] = 0.5 + 0.37 * double((i * 7) % 11);
  return sum(mul(y, Tensor::from_vector(w, y.shape()).to(y.dtype())));
}

// Expects fn to throw std::exception whose message contains every given piece.
template <class F>
void check_throws_with(F&& fn, const std::vector<std::string>& pieces) {
  try {
    fn();
    FAIL("expected an exception containing '" << pieces[0] << "'");
  } catch (const std::exception& e) {
    const std::string msg = e.what();
    for (const auto& p : pieces) {
      INFO("message: " << msg);
      CHECK(msg.find(p) != std::string::npos);
    }
  }
}

}  // namespace ss::test
