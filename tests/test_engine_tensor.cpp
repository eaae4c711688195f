// Tensor creation, views, copies and the autograd tape itself.
#include <algorithm>
#include <cstdint>
#include <map>

#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/memory_pool.h"
#include "tests/helpers.h"

using namespace ss;
using namespace ss::test;

TEST_CASE("creation and metadata") {
  Tensor z = Tensor::zeros({2, 3});
  CHECK(z.numel() == 6);
  CHECK(z.dtype() == DType::f32);
  CHECK(z.device() == Device::cpu);
  check_values(z, {0, 0, 0, 0, 0, 0});
  check_values(Tensor::ones({2}, DType::f64), {1, 1});
  check_values(Tensor::full({1, 2}, 2.5), {2.5, 2.5});
  CHECK(Tensor::scalar(3.0).item() == 3.0);
  CHECK(Tensor::zeros({0, 4}).numel() == 0);
  CHECK(z.size(-1) == 3);
  check_throws_with([&] { z.size(2); }, {"[size]", "[2, 3]"});
  check_throws_with(
      [] {
        Tensor::from_vector(std::vector<float>{1, 2, 3}, {2, 2});
      },
      {"[from_vector]", "[2, 2]"});
  check_throws_with([] { Tensor::zeros({2}).data<double>(); }, {"[data]", "f64"});
}

TEST_CASE("seeded generators are reproducible and have the right moments") {
  Generator a(7), b(7), c(8);
  Tensor x = Tensor::normal({100000}, 1.0, 2.0, a);
  Tensor y = Tensor::normal({100000}, 1.0, 2.0, b);
  Tensor w = Tensor::normal({100000}, 1.0, 2.0, c);
  CHECK(x.to_vector() == y.to_vector());
  CHECK(x.to_vector() != w.to_vector());
  const double m = mean(x).item();
  const double v = mean(mul(add(x, -m), add(x, -m))).item();
  CHECK(std::abs(m - 1.0) < 0.03);
  CHECK(std::abs(std::sqrt(v) - 2.0) < 0.03);
  Generator u(3);
  Tensor r = Tensor::uniform({10000}, -2, 3, u, DType::f64);
  for (double e : r.to_vector()) CHECK((e >= -2 && e < 3));
  // Derived streams differ by key and are stable.
  CHECK(Generator::derive(1, {0, 5}).next_u64() == Generator::derive(1, {0, 5}).next_u64());
  CHECK(Generator::derive(1, {0, 5}).next_u64() != Generator::derive(1, {5, 0}).next_u64());
}

TEST_CASE("reshape, slice, concat, clone, copy, fill") {
  Tensor x = Tensor::from_vector(std::vector<double>{0, 1, 2, 3, 4, 5}, {3, 2});
  check_values(x.reshape({2, -1}), {0, 1, 2, 3, 4, 5});
  CHECK(x.reshape({-1}).shape() == Shape{6});
  check_throws_with([&] { x.reshape({4, -1}); }, {"[reshape]", "[3, 2]", "[4, -1]"});
  check_values(x.slice(1, 3), {2, 3, 4, 5});
  check_throws_with([&] { x.slice(2, 4); }, {"[slice]", "[3, 2]"});
  Tensor c = concat({x.slice(2, 3), x.slice(0, 1)});
  check_values(c, {4, 5, 0, 1});
  check_throws_with(
      [&] {
        concat({x, Tensor::zeros({1, 3}, DType::f64)});
      },
      {"[concat]", "[1, 3]"});
  Tensor y = x.clone();
  y.fill_(7);
  check_values(x, {0, 1, 2, 3, 4, 5});
  check_values(y, {7, 7, 7, 7, 7, 7});
  y.copy_(x);
  check_values(y, {0, 1, 2, 3, 4, 5});
  Tensor f = x.to(DType::f32);
  CHECK(f.dtype() == DType::f32);
  check_values(f, {0, 1, 2, 3, 4, 5});
}

TEST_CASE("gradients flow through reshape, slice, concat and casts") {
  Tensor x = leaf({1, 2, 3, 4}, {4});
  Tensor y = concat({x.slice(2, 4), x.slice(0, 2)}).reshape({2, 2}).to(DType::f32);
  sum(mul(y, Tensor::from_vector(std::vector<float>{1, 2, 3, 4}, {2, 2}))).backward();
  check_values(x.grad(), {3, 4, 1, 2});
  check_gradients(
      [](const std::vector<Tensor>& in) {
        return weighted_sum(concat({in[0].slice(1, 3), in[0]}).reshape({-1}));
      },
      {rand64({3, 2}, 1)});
}

TEST_CASE("no_grad, detach and leaf rules") {
  Tensor x = leaf({1, 2}, {2});
  {
    NoGradGuard ng;
    Tensor y = mul(x, x);
    CHECK(y.is_leaf());
    CHECK_FALSE(y.requires_grad());
  }
  CHECK(grad_enabled());
  Tensor d = mul(x, 2.0).detach();
  CHECK(d.is_leaf());
  CHECK_FALSE(d.requires_grad());
  Tensor y = mul(x, x);
  check_throws_with([&] { y.set_requires_grad(false); }, {"[set_requires_grad]"});
  check_throws_with([] { Tensor::zeros({2}).backward(); }, {"[backward]", "one-element"});
  check_throws_with([] { sum(Tensor::zeros({2})).backward(); }, {"[backward]", "require grad"});
}

TEST_CASE("backward with a given gradient, and the graph is freed after backward") {
  Tensor x = leaf({1, 2, 3}, {3});
  Tensor y = mul(x, x);
  y.backward(Tensor::from_vector(std::vector<double>{1, 0, 2}, {3}));
  check_values(x.grad(), {2, 0, 12});
  check_throws_with([&] { y.backward(Tensor::ones({3}, DType::f64)); },
                    {"[backward]", "already freed"});
  check_throws_with([&] { mul(x, x).backward(Tensor::ones({2}, DType::f64)); },
                    {"[backward]", "[2]", "[3]"});
  // Keeping the graph allows a second pass; leaf gradients accumulate.
  x.zero_grad();
  Tensor s = sum(mul(x, x));
  run_backward(s, Tensor::ones({}, DType::f64), true);
  run_backward(s, Tensor::ones({}, DType::f64), false);
  check_values(x.grad(), {4, 8, 12});
}

TEST_CASE("the tape keeps only the values a derivative reads") {
  // What PyTorch saves for a residual block: add keeps neither operand, relu its output, mul the
  // other operand. An intermediate the user no longer holds must be freed before backward.
  Tensor w = leaf({0.5, -1.0, 2.0}, {3});
  std::weak_ptr<Storage> add_lhs, relu_in, mul_lhs;
  Tensor loss;
  {
    Tensor h = mul(w, 2.0);     // add's left operand
    Tensor r_in = add(w, 1.0);  // relu's input
    Tensor m = mul(w, 3.0);     // mul's left operand; mul(m, w) needs it for dw, not for dm
    add_lhs = h.impl()->storage;
    relu_in = r_in.impl()->storage;
    mul_lhs = m.impl()->storage;
    Tensor scale = Tensor::from_vector(std::vector<double>{1, 2, 3}, {3});
    loss = sum(add(add(h, relu(r_in)), mul(m, scale)));
  }
  CHECK(add_lhs.expired());
  CHECK(relu_in.expired());
  CHECK(mul_lhs.expired());  // scale needs no gradient, so m is not needed
  loss.backward();
  // d/dw [2w + relu(w + 1) + 3w * scale] = 2 + [w > -1] + 3 * scale
  check_values(w.grad(), {2 + 1 + 3, 2 + 0 + 6, 2 + 1 + 9});
}

TEST_CASE("memory pool: freed blocks are merged, split and reused across sizes") {
  cpu::MemoryPool pool;
  constexpr size_t MiB = size_t(1) << 20;
  void* a = pool.allocate(8 * MiB);
  CHECK(reinterpret_cast<uintptr_t>(a) % cpu::MemoryPool::kAlign == 0);
  pool.deallocate(a);
  // Two halves fit in the freed block: no new system allocation.
  void* b = pool.allocate(4 * MiB);
  void* c = pool.allocate(4 * MiB);
  CHECK(pool.stats().chunks == 1);
  CHECK(pool.stats().live == 8 * MiB);
  // Freed in either order, they merge back into one block that holds 8 MiB again.
  pool.deallocate(c);
  pool.deallocate(b);
  void* d = pool.allocate(8 * MiB);
  CHECK(d == a);
  CHECK(pool.stats().chunks == 1);
  // Small requests share a 2 MiB chunk; blocks never overlap.
  std::vector<char*> small;
  for (int i = 0; i < 100; ++i) small.push_back(static_cast<char*>(pool.allocate(1000 + 10 * i)));
  CHECK(pool.stats().chunks == 2);
  std::sort(small.begin(), small.end());
  for (size_t i = 1; i < small.size(); ++i) CHECK(small[i] - small[i - 1] >= 1000);
  for (char* p : small) pool.deallocate(p);
  pool.deallocate(d);
  CHECK(pool.stats().live == 0);
  pool.release_free_chunks();
  CHECK(pool.stats().reserved == 0);
  check_throws_with([&] { pool.deallocate(d); }, {"[memory pool]", "not in use"});
}

TEST_CASE("memory pool: a repeated training step stops taking memory from the system") {
  // A forward pass keeps activations of shrinking sizes, the backward frees them from the last
  // while allocating gradients: the shape of every step. An exact-size cache would hold each
  // size's high-water mark; the pool settles near the most that was live at once.
  cpu::MemoryPool pool;
  constexpr size_t KiB = 1024;
  const std::vector<size_t> stage = {4096 * KiB, 4096 * KiB, 2048 * KiB, 2048 * KiB,
                                     1024 * KiB, 1024 * KiB, 512 * KiB};
  // What an exact-size cache would hold: each size's most blocks live at once.
  std::map<size_t, int> now, most;
  auto alloc = [&](size_t n) {
    most[n] = std::max(most[n], ++now[n]);
    return std::make_pair(pool.allocate(n), n);
  };
  auto release = [&](std::pair<void*, size_t> b) {
    --now[b.second];
    pool.deallocate(b.first);
  };
  size_t chunks_after_two = 0, reserved_after_two = 0;
  for (int step = 0; step < 10; ++step) {
    std::vector<std::pair<void*, size_t>> acts;
    for (size_t s : stage) acts.push_back(alloc(s));
    auto grad = alloc(stage.back());
    for (size_t i = stage.size(); i-- > 0;) {
      auto next = alloc(stage[i]);  // the gradient of this layer's input
      release(grad);
      release(acts[i]);
      grad = next;
    }
    release(grad);
    if (step == 1)
      chunks_after_two = pool.stats().chunks, reserved_after_two = pool.stats().reserved;
  }
  size_t exact_size_cache = 0;
  for (auto [n, count] : most) exact_size_cache += n * size_t(count);
  const cpu::MemoryPool::Stats s = pool.stats();
  CHECK(s.live == 0);
  CHECK(s.chunks == chunks_after_two);
  CHECK(s.reserved == reserved_after_two);
  MESSAGE("live peak " << s.peak_live / KiB << " KiB, pool " << s.peak_reserved / KiB
                       << " KiB, exact-size cache " << exact_size_cache / KiB << " KiB");
  CHECK(s.peak_reserved < exact_size_cache);
  CHECK(double(s.peak_reserved) <= 1.4 * double(s.peak_live));
}

TEST_CASE("B31: fan-out sums every consumer's gradient, each node runs once") {
  SUBCASE("shared leaf along several paths") {
    for (double xv : {1.0, 2.0}) {
      Tensor x = leaf({xv}, {1});
      Tensor a = Tensor::from_vector(std::vector<double>{1}, {1});
      Tensor u = mul(x, a), q = mul(x, x);
      Tensor f = add(add(mul(x, u), mul(q, a)), mul(x, u));  // 3 x^2 a
      f.backward(Tensor::ones({1}, DType::f64));
      CHECK(f.item() == doctest::Approx(3 * xv * xv));
      CHECK(x.grad().item() == doctest::Approx(6 * xv));
    }
  }
  SUBCASE("x + x, x * x, residual") {
    Tensor x = leaf({3}, {1});
    sum(add(x, x)).backward();
    CHECK(x.grad().item() == 2);
    x.zero_grad();
    sum(mul(x, x)).backward();
    CHECK(x.grad().item() == 6);
    x.zero_grad();
    Tensor h = mul(x, 2.0);
    sum(add(h, x)).backward();
    CHECK(x.grad().item() == 3);
  }
  SUBCASE("Z Z^T") {
    Tensor z = leaf({1, 2, 3, 4}, {2, 2});
    Tensor l = sum(matmul(z, z, false, true));
    CHECK(l.item() == 52);
    l.backward();
    check_values(z.grad(), {8, 12, 8, 12});
  }
  SUBCASE("reused non-leaf") {
    Tensor w = leaf({2}, {1});
    Tensor x = Tensor::from_vector(std::vector<double>{1.5}, {1});
    Tensor h = relu(mul(w, x));
    Tensor l = sum(add(mul(h, h), mul(h, 3.0)));
    CHECK(l.item() == doctest::Approx(18));
    l.backward();
    CHECK(w.grad().item() == doctest::Approx(13.5));
  }
  SUBCASE("repeated backward accumulates into leaves only") {
    Tensor a = leaf({3}, {1}), b = leaf({2}, {1}), d = leaf({1}, {1});
    auto run = [&] { sum(mul(add(a, b), d)).backward(); };
    run();
    check_values(concat({a.grad(), b.grad(), d.grad()}), {1, 1, 5});
    run();
    check_values(concat({a.grad(), b.grad(), d.grad()}), {2, 2, 10});
    a.zero_grad();
    b.zero_grad();
    d.zero_grad();
    run();
    check_values(concat({a.grad(), b.grad(), d.grad()}), {1, 1, 5});
  }
  SUBCASE("diamond of non-leaves: every path counted once") {
    Tensor x = leaf({0.7, -1.2}, {2});
    Tensor h = exp(x);
    Tensor l = sum(add(mul(h, h), add(h, mul(h, 3.0))));  // h^2 + 4h
    l.backward();
    std::vector<double> xv = {0.7, -1.2};
    check_values(x.grad(), {2 * std::exp(2 * xv[0]) + 4 * std::exp(xv[0]),
                            2 * std::exp(2 * xv[1]) + 4 * std::exp(xv[1])});
  }
}
