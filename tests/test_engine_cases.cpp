// Faults other libraries shipped (../shared/docs/cases.md), each tested as its class of fault.
#include <cblas.h>

#include <chrono>
#include <thread>
#include <tuple>

#include "engine/backend.h"
#include "engine/cpu/thread_pool.h"
#include "engine/cpu/winograd.h"
#include "tests/helpers.h"

using namespace ss;
using namespace ss::test;

static Tensor norm2(const Tensor& x) {
  return sqrt(sum(mul(x, x)));
}

TEST_CASE("B01: norm and normalize at the zero vector have finite gradients") {
  Tensor z = leaf({0, 0, 0}, {3});
  Tensor n = norm2(z);
  CHECK(n.item() == 0);
  n.backward();
  check_values(z.grad(), {0, 0, 0});

  Tensor x = leaf({3, 4}, {2});
  norm2(x).backward();
  check_values(x.grad(), {0.6, 0.8}, 1e-12);

  Tensor z2 = leaf({0, 0}, {1, 2});
  Tensor u = normalize(z2, 1);
  check_values(u, {0, 0});
  sum(u).backward();
  for (double g : z2.grad().to_vector()) CHECK(std::isfinite(g));

  Tensor y = leaf({3, 4}, {1, 2});
  Tensor v = normalize(y, 1);
  check_values(v, {0.6, 0.8}, 1e-12);
  sum(v).backward();
  check_values(y.grad(), {0.032, -0.024}, 1e-12);

  // The same holds in float32 and along dimension 0, and for rows mixed with zero rows.
  Tensor m = Tensor::from_vector(std::vector<float>{0, 3, 0, 4}, {2, 2});
  m.set_requires_grad(true);
  Tensor mu = normalize(m, 0);
  check_values(mu, {0, 0.6, 0, 0.8});
  sum(mu).backward();
  for (double g : m.grad().to_vector()) CHECK(std::isfinite(g));
}

TEST_CASE("B09: empty or fully masked reductions") {
  Tensor a = Tensor::from_vector(std::vector<double>{-INFINITY, -INFINITY}, {1, 2});
  CHECK(logsumexp(a, 1).item() == -INFINITY);
  check_values(logsumexp(Tensor::from_vector(std::vector<double>{1, 2}, {1, 2}), 1), {2.31326},
               1e-6);
  Tensor s = Tensor::zeros({2, 2});
  check_throws_with(
      [&] {
        softmax(masked_fill(s, {1, 1, 0, 0}, -INFINITY), 1);
      },
      {"[softmax]", "masked"});
  check_throws_with(
      [&] {
        log_softmax(masked_fill(s, {1, 1, 0, 0}, -INFINITY), 1);
      },
      {"[log_softmax]"});
  check_throws_with([] { mean(Tensor::zeros({0})); }, {"[mean]", "[0]"});
  check_throws_with([] { logsumexp(Tensor::zeros({2, 0}), 1); }, {"[logsumexp]", "[2, 0]"});
}

TEST_CASE("B10: softmax, logsumexp and cross-entropy are max-shifted") {
  for (DType dt : {DType::f32, DType::f64}) {
    auto t = [&](std::vector<double> v) { return Tensor::from_vector(v, {1, 2}).to(dt); };
    check_values(softmax(t({1000, 1001}), 1), {0.268941, 0.731059});
    check_values(softmax(t({-10000, -10000}), 1), {0.5, 0.5});
    check_values(logsumexp(t({1000, 1001}), 1), {1001.31326}, 1e-6);
    check_values(logsumexp(t({-1000, -1000}), 1), {-999.306853}, 1e-6);
    check_values(log_softmax(t({1000, 1001}), 1), {-1.31326, -0.31326}, 1e-5);
    CHECK(cross_entropy(t({1000, 1001}), {0}).item() == doctest::Approx(1.31326).epsilon(1e-5));
  }
}

TEST_CASE("B21: batch norm needs more than one value per channel in training") {
  Tensor rm = Tensor::zeros({3}), rv = Tensor::ones({3});
  check_throws_with(
      [&] {
        batch_norm(Tensor::ones({1, 3}), Tensor(), Tensor(), rm, rv, true);
      },
      {"[batch_norm]", "[1, 3]", "more than one value"});
  Tensor rm1 = Tensor::zeros({1}, DType::f64), rv1 = Tensor::ones({1}, DType::f64);
  Tensor x = Tensor::from_vector(std::vector<double>{1, 2, 3, 4}, {1, 1, 2, 2});
  Tensor y = batch_norm(x, Tensor(), Tensor(), rm1, rv1, true);
  check_values(y, {-1.34164, -0.447212, 0.447212, 1.34164}, 1e-5);
  check_values(rm1, {0.25}, 1e-12);
  check_values(rv1, {0.9 + 0.1 * 5.0 / 3.0}, 1e-12);
  Tensor rm0 = Tensor::zeros({1}, DType::f64), rv0 = Tensor::ones({1}, DType::f64);
  Tensor e =
      batch_norm(Tensor::from_vector(std::vector<double>{3}, {1, 1}), Tensor::ones({1}, DType::f64),
                 Tensor::zeros({1}, DType::f64), rm0, rv0, false);
  check_values(e, {3.0 / std::sqrt(1.0 + 1e-5)}, 1e-12);  // 2.99998
}

TEST_CASE("B26: max-pool ties send the whole gradient to the first maximum") {
  auto grad_of = [](std::vector<double> v, Shape shape, int64_t kh, int64_t kw, int64_t s) {
    Tensor x = leaf(v, shape);
    sum(max_pool2d(x, kh, kw, s, s, 0, 0)).backward();
    return x.grad().to_vector();
  };
  CHECK(grad_of({1, 2, 2, 2}, {1, 1, 2, 2}, 2, 2, 2) == std::vector<double>{0, 1, 0, 0});
  CHECK(grad_of({1, 2, 5, 2, 1}, {1, 1, 1, 5}, 1, 3, 2) == std::vector<double>{0, 0, 2, 0, 0});
  CHECK(grad_of({3, 1, 3, 1, 3}, {1, 1, 1, 5}, 1, 3, 2) == std::vector<double>{1, 0, 1, 0, 0});
  // All equal: each window's gradient goes to its first element, in float32 too.
  Tensor x = Tensor::ones({1, 1, 4, 4});
  x.set_requires_grad(true);
  sum(max_pool2d(x, 2, 2)).backward();
  check_values(x.grad(), {1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0});
}

TEST_CASE("B27: convolution and pooling output sizes") {
  CHECK(conv_out_size(10, 3, 2, 2) == 6);
  CHECK(conv_out_size(32, 3, 1, 1) == 32);
  CHECK(conv_out_size(32, 3, 2, 1) == 16);
  CHECK(conv_out_size(224, 7, 2, 3) == 112);
  CHECK(conv_out_size(112, 3, 2, 1) == 56);
  CHECK(conv_out_size(7, 3, 2, 1) == 4);
  CHECK(conv_out_size(8, 2, 2, 0) == 4);
  CHECK(conv_out_size(5, 3, 2, 0) == 2);
  CHECK(conv_out_size(5, 3, 2, 1) == 3);
  CHECK(conv_out_size(7, 1, 2, 0) == 4);
  // The ops produce what the formula says.
  Generator g(1);
  Tensor x = Tensor::normal({1, 2, 10, 10}, 0, 1, g);
  CHECK(conv2d(x, Tensor::normal({3, 2, 3, 3}, 0, 1, g), Tensor(), 2, 2).shape() ==
        Shape{1, 3, 6, 6});
  CHECK(conv2d(Tensor::ones({1, 1, 7, 7}), Tensor::ones({1, 1, 1, 1}), Tensor(), 2, 0).shape() ==
        Shape{1, 1, 4, 4});
  CHECK(max_pool2d(Tensor::ones({1, 1, 7, 7}), 3, 2, 1).shape() == Shape{1, 1, 4, 4});
  CHECK(avg_pool2d(Tensor::ones({1, 1, 5, 5}), 3, 2, 1).shape() == Shape{1, 1, 3, 3});
  // 1-D cross-correlation of (1..5) with (1, 0, -1), stride 2, padding 1.
  Tensor s = Tensor::from_vector(std::vector<double>{1, 2, 3, 4, 5}, {1, 1, 1, 5});
  // A 3x3 kernel whose middle row is (1, 0, -1), padding 1: the 1-D result in the one row.
  Tensor k3 = Tensor::from_vector(std::vector<double>{0, 0, 0, 1, 0, -1, 0, 0, 0}, {1, 1, 3, 3});
  check_values(conv2d(s, k3, Tensor(), 2, 1), {-2, -2, 4});
}

TEST_CASE("B29: one thread policy; GEMMs from engine threads do not oversubscribe") {
  MESSAGE(std::string(cpu::thread_policy()));
  CHECK(cpu::num_threads() >= 1);
  CHECK(openblas_get_num_threads() == cpu::num_threads());
  // Many threads each running a 128^3 SGEMM: with OpenBLAS told to use one thread here the
  // work completes and gives the right answer on every thread.
  const int T = 8, n = 128;
  std::vector<float> a(n * n, 1.f), b(n * n, 2.f);
  std::vector<std::vector<float>> c(T, std::vector<float>(n * n));
  const int saved = openblas_get_num_threads();
  openblas_set_num_threads(1);
  std::vector<std::thread> ts;
  for (int t = 0; t < T; ++t)
    ts.emplace_back([&, t] {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.f, a.data(), n, b.data(), n,
                  0.f, c[size_t(t)].data(), n);
    });
  for (auto& th : ts) th.join();
  openblas_set_num_threads(saved);
  for (const auto& ct : c) CHECK(ct[0] == 2.f * n);
  // parallel_for regions run nested work inline rather than spawning more threads.
  std::atomic<int> inner_parallel{0};
  cpu::parallel_for(4, 1, [&](int64_t, int64_t) {
    cpu::parallel_for(4, 1, [&](int64_t, int64_t) {
      if (cpu::in_parallel_region()) inner_parallel++;
    });
  });
  CHECK(inner_parallel.load() >= 1);
  // A GEMM issued from inside a pool region is refused instead of oversubscribing.
  Tensor m = Tensor::ones({4, 4});
  bool refused = false;
  cpu::parallel_for(2, 1, [&](int64_t b, int64_t) {
    if (b != 0) return;
    try {
      matmul(m, m);
    } catch (const std::logic_error& e) {
      refused = std::string(e.what()).find("[gemm]") != std::string::npos;
    }
  });
  CHECK(refused);
}

TEST_CASE(
    "parallel_for_gemm: one OpenBLAS thread per part; conv2d is the same for 1 or 2 threads") {
  const int saved = cpu::num_threads();
  cpu::set_num_threads(2);
  // Inside the region every part may run its own GEMM, with OpenBLAS held at one thread.
  Tensor m = Tensor::from_vector(std::vector<float>{1, 2, 3, 4}, {2, 2});
  std::vector<float> first(2, 0.f);
  std::vector<int> blas_threads(2, -1);
  cpu::parallel_for_gemm(2, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      CHECK(cpu::gemm_allowed_in_region());
      blas_threads[size_t(p)] = openblas_get_num_threads();
      first[size_t(p)] = matmul(m, m).data<float>()[0];
    }
  });
  CHECK(first == std::vector<float>{7.f, 7.f});
  CHECK(blas_threads == std::vector<int>{1, 1});
  CHECK(openblas_get_num_threads() == 2);  // restored on exit
  CHECK_FALSE(cpu::gemm_allowed_in_region());

  // conv2d forward and backward split over image groups: 1 and 2 threads agree, and a second
  // run at 2 threads is bit-identical (partial weight gradients are summed in group order).
  auto run = [](int threads) {
    cpu::set_num_threads(threads);
    std::vector<double> out;
    for (int64_t stride : {1, 2}) {  // stride 1: input gradient as a convolution; 2: col2im
      Generator g(7);
      Tensor x = Tensor::normal({5, 3, 9, 9}, 0, 1, g, DType::f64).set_requires_grad(true);
      Tensor w = Tensor::normal({4, 3, 3, 3}, 0, 1, g, DType::f64).set_requires_grad(true);
      Tensor y = conv2d(x, w, Tensor(), stride, 1);
      sum(mul(y, y)).backward();
      for (const Tensor& r : {y, x.grad(), w.grad()}) {
        const std::vector<double> v = r.to_vector();
        out.insert(out.end(), v.begin(), v.end());
      }
    }
    return out;
  };
  const std::vector<double> one = run(1), two = run(2), again = run(2);
  CHECK(two == again);
  REQUIRE(one.size() == two.size());
  double worst = 0;
  for (size_t i = 0; i < one.size(); ++i) worst = std::max(worst, std::abs(one[i] - two[i]));
  MESSAGE("max |1 thread - 2 threads| = " << worst);
  CHECK(worst < 1e-10);
  cpu::set_num_threads(saved);
}

TEST_CASE("conv2d: Winograd F(2x2, 3x3), F(4x4, 3x3) and im2col agree on values and gradients") {
  // The CPU paths for a 3x3 stride-1 conv, on odd sizes (partial edge tiles), one tile per image
  // (4x4, whose chunks take the whole group), one tile per row (5x3, pad 0), every pad the
  // Winograd path takes, 1 and 2 threads:
  // float64 to rounding, float32 to a small multiple of the rounding at the output's scale (F(4x4)
  // multiplies by up to 8 in its transforms).
  const int saved = cpu::num_threads();
  auto run = [](DType dt, int64_t H, int64_t W, int64_t pad, int mode) {
    cpu::set_winograd_mode(mode);
    Generator g(11);
    Tensor x = Tensor::normal({3, 16, H, W}, 0, 1, g, dt).set_requires_grad(true);
    Tensor w = Tensor::normal({24, 16, 3, 3}, 0, 0.1, g, dt).set_requires_grad(true);
    Tensor b = Tensor::normal({24}, 0, 1, g, dt).set_requires_grad(true);
    Tensor y = conv2d(x, w, b, 1, pad);
    Tensor r = Tensor::normal(y.shape(), 0, 1, g, dt);
    sum(mul(y, r)).backward();
    std::vector<std::vector<double>> out;
    for (const Tensor& t : {y, x.grad(), w.grad(), b.grad()}) out.push_back(t.to_vector());
    cpu::set_winograd_mode(4);
    return out;
  };
  for (int threads : {1, 2})
    for (DType dt : {DType::f64, DType::f32})
      for (auto [H, W, pad] : {std::tuple{7, 9, 1}, std::tuple{8, 8, 1}, std::tuple{5, 6, 0},
                               std::tuple{4, 5, 2}, std::tuple{13, 11, 1}, std::tuple{9, 10, 2},
                               std::tuple{4, 4, 1}, std::tuple{3, 5, 1}, std::tuple{5, 3, 0}}) {
        cpu::set_num_threads(threads);
        CAPTURE(threads);
        CAPTURE(H);
        CAPTURE(W);
        CAPTURE(pad);
        const Conv2dArgs args{3, 16, H, W, 24, 3, 3, 1, pad, H + 2 * pad - 2, W + 2 * pad - 2};
        CHECK(cpu::winograd_tile(args) == (args.Ho >= 4 && args.Wo >= 4 ? 4 : 2));
        const auto ref = run(dt, H, W, pad, 0);
        for (int mode : {2, 4}) {
          CAPTURE(mode);
          const auto wino = run(dt, H, W, pad, mode);
          const std::string names[] = {"output", "input grad", "weight grad", "bias grad"};
          for (size_t k = 0; k < ref.size(); ++k) {
            CAPTURE(names[k]);
            REQUIRE(wino[k].size() == ref[k].size());
            double worst = 0, scale = 0;
            for (size_t i = 0; i < ref[k].size(); ++i) {
              worst = std::max(worst, std::abs(wino[k][i] - ref[k][i]));
              scale = std::max(scale, std::abs(ref[k][i]));
            }
            MESSAGE(names[k] << ": max |winograd - im2col| / scale = " << worst / scale);
            CHECK(worst <= (dt == DType::f64 ? 1e-12 : 1e-5) * std::max(1.0, scale));
          }
        }
      }
  cpu::set_num_threads(saved);
}

TEST_CASE("batch_norm_add_relu equals batch_norm, add and relu, values and gradients") {
  // The fused op against the three separate ops on the same inputs, float64 and float32, with
  // and without the residual; running statistics updated alike.
  for (DType dt : {DType::f64, DType::f32})
    for (bool residual : {false, true}) {
      CAPTURE(residual);
      CAPTURE(dt == DType::f64);
      auto run = [&](bool fused) {
        Generator g(21);
        Tensor x = Tensor::normal({4, 5, 3, 3}, 0.3, 1, g, dt).set_requires_grad(true);
        Tensor w = Tensor::normal({5}, 1, 0.2, g, dt).set_requires_grad(true);
        Tensor b = Tensor::normal({5}, 0, 0.5, g, dt).set_requires_grad(true);
        Tensor r = Tensor::normal({4, 5, 3, 3}, 0, 1, g, dt).set_requires_grad(true);
        Tensor rm = Tensor::zeros({5}, dt), rv = Tensor::ones({5}, dt);
        Tensor y = fused ? batch_norm_add_relu(x, w, b, rm, rv, residual ? r : Tensor(), true)
                         : relu(residual ? add(batch_norm(x, w, b, rm, rv, true), r)
                                         : batch_norm(x, w, b, rm, rv, true));
        Tensor dy = Tensor::normal(y.shape(), 0, 1, g, dt);
        sum(mul(y, dy)).backward();
        std::vector<std::vector<double>> out;
        for (const Tensor& t : {y, x.grad(), w.grad(), b.grad(), rm, rv})
          out.push_back(t.to_vector());
        out.push_back(residual ? r.grad().to_vector() : std::vector<double>{});
        return out;
      };
      const auto fused = run(true), plain = run(false);
      const double tol = dt == DType::f64 ? 1e-12 : 1e-5;
      for (size_t k = 0; k < fused.size(); ++k) {
        CAPTURE(k);
        REQUIRE(fused[k].size() == plain[k].size());
        for (size_t i = 0; i < fused[k].size(); ++i)
          CHECK(std::abs(fused[k][i] - plain[k][i]) <= tol * std::max(1.0, std::abs(plain[k][i])));
      }
      // Some outputs are clipped, so the mask is exercised.
      CHECK(std::count(fused[0].begin(), fused[0].end(), 0.0) > 0);
    }
  Tensor rm = Tensor::zeros({3}), rv = Tensor::ones({3});
  check_throws_with(
      [&] {
        batch_norm_add_relu(Tensor::ones({2, 3, 2, 2}), Tensor(), Tensor(), rm, rv,
                            Tensor::ones({2, 3, 2, 1}), true);
      },
      {"[batch_norm_add_relu]", "residual [2, 3, 2, 1]", "[2, 3, 2, 2]"});
}

TEST_CASE("B30: GEMM wrapper matches a double-precision loop") {
  Tensor A = Tensor::from_vector(std::vector<float>{1, 2, 3, 4}, {2, 2});
  Tensor B = Tensor::from_vector(std::vector<float>{5, 6, 7, 8}, {2, 2});
  check_values(matmul(A, B), {19, 22, 43, 50});
  check_values(matmul(A, B, true, false), {26, 30, 38, 44});
  Tensor C = Tensor::ones({2, 2});
  backend(Device::cpu).gemm(false, false, 2, 2, 2, 1.0, A, B, 1.0, C);
  check_values(C, {20, 23, 44, 51});
  const int shapes[3][3] = {{17, 33, 65}, {1, 1, 1}, {128, 1, 257}};
  for (const auto& s : shapes)
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) {
        const int64_t M = s[0], N = s[1], K = s[2];
        Generator g(uint64_t(M * 1000 + ta * 2 + tb));
        Tensor a = Tensor::uniform(ta ? Shape{K, M} : Shape{M, K}, -1, 1, g);
        Tensor b = Tensor::uniform(tb ? Shape{N, K} : Shape{K, N}, -1, 1, g);
        std::vector<double> got = matmul(a, b, ta, tb).to_vector();
        std::vector<double> av = a.to_vector(), bv = b.to_vector();
        double worst = 0;
        for (int64_t i = 0; i < M; ++i)
          for (int64_t j = 0; j < N; ++j) {
            double ref = 0;
            for (int64_t k = 0; k < K; ++k)
              ref +=
                  av[size_t(ta ? k * M + i : i * K + k)] * bv[size_t(tb ? j * K + k : k * N + j)];
            worst = std::max(worst,
                             std::abs(got[size_t(i * N + j)] - ref) / std::max(1.0, std::abs(ref)));
          }
        CAPTURE(M);
        CAPTURE(ta);
        CAPTURE(tb);
        CHECK(worst < 1e-5);
      }
}

TEST_CASE("B32: broadcast gradients are summed back to each operand's shape") {
  SUBCASE("linear-style X W + b against targets") {
    Tensor X = leaf({1, 2, 3, 4, 5, 6}, {2, 3}), W = leaf({0.1, 0.2, 0.3}, {3, 1});
    Tensor b = leaf({0.5, -0.5, 1.0}, {1, 3}), t = leaf({1, 2}, {2, 1});
    Tensor y = add(matmul(X, W), b);
    Tensor r = sub(y, t);
    Tensor L = sum(mul(r, r));
    CHECK(L.item() == doctest::Approx(11));
    L.backward();
    CHECK(W.grad().shape() == Shape{3, 1});
    CHECK(b.grad().shape() == Shape{1, 3});
    CHECK(t.grad().shape() == Shape{2, 1});
    check_values(W.grad(), {41.2, 54.8, 68.4}, 1e-12);
    check_values(b.grad(), {5.2, 1.2, 7.2}, 1e-12);
    check_values(t.grad(), {-4.4, -9.2}, 1e-12);
    check_values(X.grad(), {0.44, 0.88, 1.32, 0.92, 1.84, 2.76}, 1e-12);
  }
  SUBCASE("row vector plus matrix") {
    Tensor a = leaf({1, 0, -1}, {3}), B = leaf({1, 2, 3, 4, 5, 6}, {2, 3});
    Tensor s = add(B, a);
    Tensor L = sum(mul(s, s));
    CHECK(L.item() == 87);
    L.backward();
    CHECK(a.grad().shape() == Shape{3});
    check_values(a.grad(), {14, 14, 14});
    check_values(B.grad(), {4, 4, 4, 10, 10, 10});
  }
  SUBCASE("scalar times matrix") {
    std::vector<double> m(20);
    for (int i = 0; i < 20; ++i) m[size_t(i)] = i;
    Tensor s = leaf({2}, {1}), M = leaf(m, {5, 4});
    sum(mul(s, M)).backward();
    CHECK(s.grad().shape() == Shape{1});
    check_values(s.grad(), {190});
    for (double g : M.grad().to_vector()) CHECK(g == 2);
  }
  SUBCASE("outer product") {
    Tensor u = leaf({1, 2, 3, 4}, {4, 1}), v = leaf({1, 10, 100, 1000}, {1, 4});
    Tensor L = sum(mul(u, v));
    CHECK(L.item() == 11110);
    L.backward();
    CHECK(u.grad().shape() == Shape{4, 1});
    CHECK(v.grad().shape() == Shape{1, 4});
    check_values(u.grad(), {1111, 1111, 1111, 1111});
    check_values(v.grad(), {10, 10, 10, 10});
  }
  SUBCASE("a slice broadcast against its own tensor") {
    Tensor x = leaf({1, 2, 3, 4}, {4});
    Tensor L = sum(mul(x.slice(0, 1), x));
    CHECK(L.item() == 10);
    L.backward();
    check_values(x.grad(), {11, 1, 1, 1});
  }
  SUBCASE("per-channel batch-norm affine parameters") {
    Tensor x = Tensor::from_vector(std::vector<double>{1, 2, 3, 4, 5, 6, 7, 8}, {2, 1, 2, 2});
    Tensor g = leaf({2}, {1}), b = leaf({0.5}, {1});
    Tensor rm = Tensor::zeros({1}, DType::f64), rv = Tensor::ones({1}, DType::f64);
    Tensor y = batch_norm(x, g, b, rm, rv, true);
    Tensor L = sum(mul(y, y));
    CHECK(L.item() == doctest::Approx(33.9999).epsilon(1e-5));
    L.backward();
    CHECK(g.grad().shape() == Shape{1});
    check_values(b.grad(), {8}, 1e-9);
    check_values(g.grad(), {31.9999}, 1e-5);
  }
  SUBCASE("per-channel [1, C, 1, 1] over [N, C, H, W]") {
    Tensor x = rand64({2, 3, 2, 2}, 5), c = rand64({1, 3, 1, 1}, 6);
    sum(mul(x, c)).backward();
    CHECK(c.grad().shape() == Shape{1, 3, 1, 1});
    std::vector<double> xv = x.to_vector(), cg = c.grad().to_vector();
    for (int ch = 0; ch < 3; ++ch) {
      double s = 0;
      for (int n = 0; n < 2; ++n)
        for (int k = 0; k < 4; ++k) s += xv[size_t((n * 3 + ch) * 4 + k)];
      CHECK(cg[size_t(ch)] == doctest::Approx(s));
    }
  }
}

TEST_CASE("B37: cross-entropy rejects labels outside [0, C)") {
  Tensor logits = leaf({2.5, 0, 0, 0, 0, 2.5}, {2, 3});
  Tensor l = cross_entropy(logits, {0, 2});
  CHECK(l.item() == doctest::Approx(0.152008).epsilon(1e-6));
  l.backward();
  check_values(logits.grad(), {-0.0705095, 0.0352547, 0.0352547, 0.0352547, 0.0352547, -0.0705095},
               1e-5);
  Tensor f32 = Tensor::from_vector(std::vector<float>{2.5, 0, 0, 0, 0, 2.5}, {2, 3});
  CHECK(cross_entropy(f32, {0, 2}).item() == doctest::Approx(0.152008).epsilon(1e-6));
  for (int64_t bad : {int64_t(1000), int64_t(3), int64_t(-1)})
    check_throws_with(
        [&] {
          cross_entropy(logits, {0, bad});
        },
        {"[cross_entropy]", "label " + std::to_string(bad), "[0, 3)", "[2, 3]"});
  check_throws_with([&] { cross_entropy(logits, {0}); }, {"[cross_entropy]", "1 labels"});
  CHECK(cross_entropy(Tensor::zeros({1, 10}), {7}).item() == doctest::Approx(2.30259));
}

TEST_CASE("argument errors name the op and every shape") {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4, 5});
  check_throws_with([&] { add(a, b); }, {"[add]", "[2, 3]", "[4, 5]"});
  check_throws_with([&] { matmul(a, b); }, {"[matmul]", "[2, 3]", "[4, 5]"});
  check_throws_with([&] { matmul(a, Tensor::zeros({3})); }, {"[matmul]", "2-D"});
  check_throws_with([&] { add(a, Tensor::zeros({2, 3}, DType::f64)); }, {"[add]", "f64"});
  check_throws_with(
      [&] {
        linear(a, Tensor::zeros({4, 2}), Tensor());
      },
      {"[linear]", "[2, 3]", "[4, 2]"});
  Tensor x = Tensor::zeros({1, 3, 8, 8});
  check_throws_with(
      [&] {
        conv2d(x, Tensor::zeros({4, 2, 3, 3}), Tensor());
      },
      {"[conv2d]", "[1, 3, 8, 8]", "[4, 2, 3, 3]"});
  check_throws_with(
      [&] {
        conv2d(x, Tensor::zeros({4, 3, 9, 9}), Tensor());
      },
      {"[conv2d]", "larger"});
  check_throws_with(
      [&] {
        conv2d(x, Tensor::zeros({4, 3, 3, 3}), Tensor::zeros({3}));
      },
      {"[conv2d]", "bias", "[3]"});
  check_throws_with(
      [&] {
        conv2d(Tensor::zeros({3, 8, 8}), Tensor::zeros({4, 3, 3, 3}), Tensor());
      },
      {"[conv2d]", "[3, 8, 8]"});
  Tensor rm = Tensor::zeros({4}), rv = Tensor::ones({4});
  check_throws_with([&] { batch_norm(x, Tensor(), Tensor(), rm, rv, true); },
                    {"[batch_norm]", "[4]", "[1, 3, 8, 8]"});
  check_throws_with([&] { max_pool2d(Tensor::zeros({1, 1, 2, 2}), 3, 1); }, {"[max_pool2d]"});
  check_throws_with([&] { sum(a, 2); }, {"[sum]", "[2, 3]"});
  check_throws_with([&] { masked_fill(a, {1, 0}, 0); }, {"[masked_fill]", "[2, 3]"});
  check_throws_with([&] { fill_diagonal(a, 0); }, {"[fill_diagonal]", "[2, 3]"});
  check_throws_with([&] { pairwise_sqdist(a, b); }, {"[pairwise_sqdist]", "[2, 3]", "[4, 5]"});
  check_throws_with([&] { concat({}); }, {"[concat]"});
  check_throws_with([&] { Tensor::zeros({2}, DType::f32, Device::cuda); }, {"cuda"});
}

TEST_CASE("determinism: the same inputs give bit-identical results across runs") {
  auto run = [] {
    Generator g(42);
    Tensor x = Tensor::normal({8, 3, 8, 8}, 0, 1, g), w = Tensor::normal({4, 3, 3, 3}, 0, 1, g);
    w.set_requires_grad(true);
    Tensor rm = Tensor::zeros({4}), rv = Tensor::ones({4});
    Tensor y = relu(batch_norm(conv2d(x, w, Tensor(), 1, 1), Tensor(), Tensor(), rm, rv, true));
    sum(mul(y, y)).backward();
    return w.grad().to_vector();
  };
  CHECK(run() == run());
}
