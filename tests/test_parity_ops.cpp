// Parity of the engine's ops with PyTorch (fixtures from scripts/fixtures_engine.py, described
// in tests/fixtures/README.md): outputs and gradients of L = sum(out * dout), in float32 and in
// float64, from the same float32-exact inputs.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "engine/ops.h"
#include "tests/fixture.h"

namespace {

using ss::DType;
using ss::Tensor;
using ss::test::check_close;
using ss::test::Fixture;

struct Tol {
  double atol, rtol;
};

// float64 references were computed in float64, so the f64 engine must agree to rounding; the f32
// engine to float32 accuracy. Convolution and batch-norm sum over many terms, hence looser.
Tol tol_for(DType dt, bool many_terms = false) {
  if (dt == DType::f64) return {1e-10, 1e-9};
  return many_terms ? Tol{1e-4, 1e-3} : Tol{1e-5, 1e-4};
}

const char* dt_name(DType dt) {
  return dt == DType::f64 ? "f64" : "f32";
}

Tensor input(const Fixture& f, const std::string& name, DType dt) {
  Tensor t = f.get(name, dt);
  t.set_requires_grad(true);
  return t;
}

void check(const Fixture& f, DType dt, const std::string& name, const Tensor& actual,
           const std::string& ref_name, Tol tol) {
  check_close(f.path() + " " + name + " " + dt_name(dt), actual, f.get(ref_name, DType::f64),
              tol.atol, tol.rtol);
}

const std::vector<DType> kDtypes = {DType::f32, DType::f64};

}  // namespace

TEST_CASE("parity: conv2d") {
  for (const char* stem : {"conv2d_k3_s1_p1", "conv2d_k3_s2_p1", "conv2d_k1_s2_p0",
                           "conv2d_k5_s1_p2_7x9", "conv2d_k3_s1_p1_n1_nobias"}) {
    const Fixture f(stem);
    const bool has_bias = f.meta_bool("bias");
    for (DType dt : kDtypes) {
      CAPTURE(stem);
      CAPTURE(dt_name(dt));
      const Tol tol = tol_for(dt, true);
      Tensor x = input(f, "x", dt);
      Tensor weight = input(f, "weight", dt);
      Tensor bias = has_bias ? input(f, "bias", dt) : Tensor();
      Tensor out = ss::conv2d(x, weight, bias, f.meta_int("stride"), f.meta_int("pad"));
      out.backward(f.get("dout", dt));
      check(f, dt, "out", out, "out", tol);
      check(f, dt, "dx", x.grad(), "dx", tol);
      check(f, dt, "dweight", weight.grad(), "dweight", tol);
      if (has_bias) check(f, dt, "dbias", bias.grad(), "dbias", tol);
    }
  }
}

TEST_CASE("parity: batch_norm training, and running statistics after three steps") {
  for (const char* stem : {"batch_norm_nc_train", "batch_norm_nchw_train"}) {
    const Fixture f(stem);
    const double momentum = f.meta_number("momentum"), eps = f.meta_number("eps");
    for (DType dt : kDtypes) {
      CAPTURE(stem);
      CAPTURE(dt_name(dt));
      const Tol tol = tol_for(dt, true);
      Tensor x0 = input(f, "x0", dt);
      Tensor weight = input(f, "weight", dt);
      Tensor bias = input(f, "bias", dt);
      const int64_t c = weight.numel();
      Tensor running_mean = Tensor::zeros({c}, dt);
      Tensor running_var = Tensor::ones({c}, dt);

      Tensor out = ss::batch_norm(x0, weight, bias, running_mean, running_var, true, momentum, eps);
      out.backward(f.get("dout", dt));
      check(f, dt, "out", out, "out", tol);
      check(f, dt, "dx", x0.grad(), "dx", tol);
      check(f, dt, "dweight", weight.grad(), "dweight", tol);
      check(f, dt, "dbias", bias.grad(), "dbias", tol);

      // Steps two and three update the running statistics only.
      ss::NoGradGuard no_grad;
      for (const char* name : {"x1", "x2"})
        ss::batch_norm(f.get(name, dt), weight, bias, running_mean, running_var, true, momentum,
                       eps);
      check(f, dt, "running_mean", running_mean, "running_mean", tol);
      check(f, dt, "running_var", running_var, "running_var", tol);
    }
  }
}

TEST_CASE("parity: batch_norm evaluation with given running statistics") {
  for (const char* stem : {"batch_norm_nc_eval", "batch_norm_nchw_eval"}) {
    const Fixture f(stem);
    for (DType dt : kDtypes) {
      CAPTURE(stem);
      CAPTURE(dt_name(dt));
      const Tol tol = tol_for(dt, true);
      Tensor x = input(f, "x", dt);
      Tensor weight = input(f, "weight", dt);
      Tensor bias = input(f, "bias", dt);
      Tensor running_mean = f.get("running_mean", dt);
      Tensor running_var = f.get("running_var", dt);
      Tensor out = ss::batch_norm(x, weight, bias, running_mean, running_var, false,
                                  f.meta_number("momentum"), f.meta_number("eps"));
      out.backward(f.get("dout", dt));
      check(f, dt, "out", out, "out", tol);
      check(f, dt, "dx", x.grad(), "dx", tol);
      check(f, dt, "dweight", weight.grad(), "dweight", tol);
      check(f, dt, "dbias", bias.grad(), "dbias", tol);

      // Evaluation leaves the running statistics as they were.
      check(f, dt, "running_mean unchanged", running_mean, "running_mean", tol_for(dt));
      check(f, dt, "running_var unchanged", running_var, "running_var", tol_for(dt));
    }
  }
}

TEST_CASE("parity: max_pool2d, avg_pool2d, global_avg_pool") {
  for (const char* stem : {"max_pool2d_k2_s2", "max_pool2d_k3_s2_p1", "avg_pool2d_k2_s2",
                           "avg_pool2d_k3_s2_p1", "global_avg_pool"}) {
    const Fixture f(stem);
    const std::string op = f.meta("op");
    for (DType dt : kDtypes) {
      CAPTURE(stem);
      CAPTURE(dt_name(dt));
      Tensor x = input(f, "x", dt);
      Tensor out;
      if (op == "global_avg_pool")
        out = ss::global_avg_pool(x);
      else if (op == "max_pool2d")
        out = ss::max_pool2d(x, f.meta_int("kernel"), f.meta_int("stride"), f.meta_int("pad"));
      else
        out = ss::avg_pool2d(x, f.meta_int("kernel"), f.meta_int("stride"), f.meta_int("pad"));
      out.backward(f.get("dout", dt));
      check(f, dt, "out", out, "out", tol_for(dt));
      check(f, dt, "dx", x.grad(), "dx", tol_for(dt));
    }
  }
}

TEST_CASE("parity: linear") {
  const Fixture f("linear");
  for (DType dt : kDtypes) {
    CAPTURE(dt_name(dt));
    Tensor x = input(f, "x", dt);
    Tensor weight = input(f, "weight", dt);
    Tensor bias = input(f, "bias", dt);
    Tensor out = ss::linear(x, weight, bias);
    out.backward(f.get("dout", dt));
    check(f, dt, "out", out, "out", tol_for(dt));
    check(f, dt, "dx", x.grad(), "dx", tol_for(dt));
    check(f, dt, "dweight", weight.grad(), "dweight", tol_for(dt));
    check(f, dt, "dbias", bias.grad(), "dbias", tol_for(dt));
  }
}

TEST_CASE("parity: matmul, all four transpose combinations") {
  for (const char* stem : {"matmul_nn", "matmul_nt", "matmul_tn", "matmul_tt"}) {
    const Fixture f(stem);
    for (DType dt : kDtypes) {
      CAPTURE(stem);
      CAPTURE(dt_name(dt));
      Tensor a = input(f, "a", dt);
      Tensor b = input(f, "b", dt);
      Tensor out = ss::matmul(a, b, f.meta_bool("trans_a"), f.meta_bool("trans_b"));
      out.backward(f.get("dout", dt));
      check(f, dt, "out", out, "out", tol_for(dt));
      check(f, dt, "da", a.grad(), "da", tol_for(dt));
      check(f, dt, "db", b.grad(), "db", tol_for(dt));
    }
  }
}

TEST_CASE("parity: cross_entropy (mean, integer labels)") {
  const Fixture f("cross_entropy");
  for (DType dt : kDtypes) {
    CAPTURE(dt_name(dt));
    Tensor logits = input(f, "logits", dt);
    Tensor out = ss::cross_entropy(logits, f.labels("labels"));
    out.backward(f.get("dout", dt));
    check(f, dt, "out", out, "out", tol_for(dt));
    check(f, dt, "dlogits", logits.grad(), "dlogits", tol_for(dt));
  }
}

TEST_CASE("parity: logsumexp and log_softmax over dim 1, with rows shifted by +-1000") {
  for (const char* stem : {"logsumexp", "log_softmax"}) {
    const Fixture f(stem);
    for (DType dt : kDtypes) {
      CAPTURE(stem);
      CAPTURE(dt_name(dt));
      // In float32 a value near 1000 carries an ulp of 6e-5, so the absolute tolerance is wider.
      const Tol tol = dt == DType::f64 ? tol_for(dt) : Tol{2e-4, 1e-4};
      Tensor x = input(f, "x", dt);
      const int64_t dim = f.meta_int("dim");
      Tensor out =
          std::string(stem) == "logsumexp" ? ss::logsumexp(x, dim) : ss::log_softmax(x, dim);
      out.backward(f.get("dout", dt));
      check(f, dt, "out", out, "out", tol);
      check(f, dt, "dx", x.grad(), "dx", tol);
    }
  }
}

TEST_CASE("parity: normalize (dim 1, eps 1e-12), also with an all-zero row") {
  for (const char* stem : {"normalize", "normalize_zero_row"}) {
    const Fixture f(stem);
    for (DType dt : kDtypes) {
      CAPTURE(stem);
      CAPTURE(dt_name(dt));
      Tensor x = input(f, "x", dt);
      Tensor out = ss::normalize(x, f.meta_int("dim"), f.meta_number("eps"));
      out.backward(f.get("dout", dt));
      check(f, dt, "out", out, "out", tol_for(dt));
      check(f, dt, "dx", x.grad(), "dx", tol_for(dt));
    }
  }
}
