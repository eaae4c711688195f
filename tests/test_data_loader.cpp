// Loader: B34 random streams per (epoch, sample, view), identical batches for any worker count,
// drop_last, shuffling, labels with images, worker errors, early shutdown, eval batches.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/augment.h"
#include "data/dataset.h"
#include "data/loader.h"

namespace {

// n 32x32 RGB images; image i has label i % 10 and pixel values depending on i.
ss::MemoryDataset synthetic(int64_t n, int side = 32) {
  ss::MemoryDataset ds("synthetic", 3, side, side, 10);
  std::vector<uint8_t> px(size_t(3 * side * side));
  for (int64_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < px.size(); ++j) px[j] = uint8_t((i * 37 + int64_t(j) * 11) % 256);
    px[0] = uint8_t(i);  // pixel (0, 0) red = the index, to find the image again
    ds.push(px.data(), i % 10);
  }
  ds.set_stats({0.5f, 0.5f, 0.5f}, {0.25f, 0.25f, 0.25f});
  return ds;
}

std::vector<ss::Batch> epoch_batches(ss::Loader& loader, int64_t epoch) {
  loader.start_epoch(epoch);
  std::vector<ss::Batch> out;
  ss::Batch b;
  while (loader.next(b)) out.push_back(std::move(b));
  return out;
}

// A dataset whose image() fails for one index, to check that worker errors reach the consumer.
class FailingDataset : public ss::MemoryDataset {
 public:
  explicit FailingDataset(ss::MemoryDataset base, int64_t bad)
      : ss::MemoryDataset(std::move(base)), bad_(bad) {}
  const uint8_t* image(int64_t n) const override {
    if (n == bad_) throw std::runtime_error("[test] image " + std::to_string(n) + " is broken");
    return ss::MemoryDataset::image(n);
  }

 private:
  int64_t bad_;
};

}  // namespace

TEST_CASE("B34: every (epoch, sample, view) has its own stream, for any worker count") {
  const ss::MemoryDataset ds = synthetic(64);
  const ss::AugmentConfig cfg = ss::augment_preset("simclr-cifar", ds);
  auto run = [&](uint64_t seed, int workers, int epochs) {
    ss::LoaderOptions o;
    o.batch_size = 16, o.views = 2, o.workers = workers, o.shuffle = false, o.seed = seed;
    o.record_draws = true;
    ss::Loader loader(ds, cfg, o);
    // draws[e][k][i]: epoch e, view k, sample i
    std::vector<std::vector<std::vector<ss::ViewDraws>>> draws(static_cast<size_t>(epochs));
    for (int e = 0; e < epochs; ++e) {
      draws[size_t(e)].assign(2, std::vector<ss::ViewDraws>(64));
      for (const ss::Batch& b : epoch_batches(loader, e))
        for (int64_t k = 0; k < 2; ++k)
          for (int64_t n = 0; n < b.N; ++n)
            draws[size_t(e)][size_t(k)][size_t(b.indices[size_t(n)])] =
                b.draws[size_t(k * b.N + n)];
    }
    return draws;
  };
  const auto d = run(1234, 4, 4);

  // 1. All 128 crop-scale draws of an epoch are distinct (the bug gives 32 distinct values).
  std::set<double> scales;
  for (int k = 0; k < 2; ++k)
    for (int i = 0; i < 64; ++i) {
      const double s = d[0][size_t(k)][size_t(i)].crop_scale;
      CHECK((s >= 0.08 && s <= 1.0));
      scales.insert(s);
    }
  CHECK(scales.size() == 128);

  // 2. The two views of a sample flip independently.
  int agree = 0;
  for (int i = 0; i < 64; ++i) agree += d[0][0][size_t(i)].flip == d[0][1][size_t(i)].flip;
  INFO("samples whose two flips agree: " << agree);
  CHECK(agree >= 20);
  CHECK(agree <= 44);

  // 3. Epoch 1 differs from epoch 0 for every (sample, view).
  for (int k = 0; k < 2; ++k)
    for (int i = 0; i < 64; ++i)
      CHECK(d[1][size_t(k)][size_t(i)].crop_scale != d[0][size_t(k)][size_t(i)].crop_scale);

  // 4. Over 4 epochs, 512 flips: the count lies in [221, 291].
  int flips = 0;
  for (const auto& e : d)
    for (const auto& v : e)
      for (const auto& x : v) flips += x.flip;
  INFO("flips over 4 epochs: " << flips);
  CHECK(flips >= 221);
  CHECK(flips <= 291);

  // 5. Same seed: identical draws, with 4 workers or 1; another seed: different draws.
  const auto again = run(1234, 4, 2), one = run(1234, 1, 2), other = run(4321, 4, 1);
  int same_other = 0;
  for (int e = 0; e < 2; ++e)
    for (int k = 0; k < 2; ++k)
      for (int i = 0; i < 64; ++i) {
        const ss::ViewDraws& a = d[size_t(e)][size_t(k)][size_t(i)];
        CHECK(a.crop_scale == again[size_t(e)][size_t(k)][size_t(i)].crop_scale);
        CHECK(a.crop_scale == one[size_t(e)][size_t(k)][size_t(i)].crop_scale);
        CHECK(a.flip == one[size_t(e)][size_t(k)][size_t(i)].flip);
        if (e == 0) same_other += a.crop_scale == other[0][size_t(k)][size_t(i)].crop_scale;
      }
  CHECK(same_other == 0);
}

TEST_CASE("loader: bit-identical batches with 1 and 4 workers, shuffled, partial batch kept") {
  const ss::MemoryDataset ds = synthetic(100);
  const ss::AugmentConfig cfg = ss::augment_preset("du-cifar", ds);
  ss::LoaderOptions o;
  o.batch_size = 24, o.views = 2, o.drop_last = false, o.seed = 9;
  o.workers = 1;
  ss::Loader l1(ds, cfg, o);
  o.workers = 4;
  ss::Loader l4(ds, cfg, o);
  for (int64_t e = 0; e < 2; ++e) {
    const auto a = epoch_batches(l1, e), b = epoch_batches(l4, e);
    REQUIRE(a.size() == 5);
    REQUIRE(b.size() == 5);
    for (size_t i = 0; i < a.size(); ++i) {
      CHECK(a[i].indices == b[i].indices);
      CHECK(a[i].labels == b[i].labels);
      REQUIRE(a[i].images.size() == b[i].images.size());
      CHECK(std::memcmp(a[i].images.data(), b[i].images.data(), a[i].images.size() * 4) == 0);
    }
    CHECK(a.back().N == 4);
    CHECK(a.back().images.size() == size_t(2 * 4 * 3 * 32 * 32));
  }
}

TEST_CASE("loader: drop_last, per-epoch permutations, labels stay with images, view-major") {
  const ss::MemoryDataset ds = synthetic(100);
  ss::AugmentConfig plain;  // no randomness, no Normalize: views equal the image
  plain.crop = false, plain.out_h = plain.out_w = 32;
  ss::LoaderOptions o;
  o.batch_size = 32, o.views = 3, o.workers = 3, o.seed = 5;
  ss::Loader loader(ds, plain, o);
  CHECK(loader.batches_per_epoch() == 3);
  const auto e0 = epoch_batches(loader, 0), e1 = epoch_batches(loader, 1);
  REQUIRE(e0.size() == 3);
  std::vector<int64_t> order0, order1;
  for (const auto& b : e0) {
    CHECK(b.N == 32);
    CHECK(b.K == 3);
    for (int64_t n = 0; n < b.N; ++n) {
      const int64_t idx = b.indices[size_t(n)];
      order0.push_back(idx);
      CHECK(b.labels[size_t(n)] == ds.label(idx));
      for (int64_t k = 0; k < b.K; ++k) {
        const float* view = b.images.data() + size_t(k * b.N + n) * 3 * 1024;
        CHECK(int(std::lround(view[0] * 255)) == int(idx));  // row k*N + n is image n
        CHECK(view[1024 + 5] == doctest::Approx(ds.image(idx)[3 * 5 + 1] / 255.0).epsilon(1e-6));
      }
    }
  }
  for (const auto& b : e1) order1.insert(order1.end(), b.indices.begin(), b.indices.end());
  CHECK(order0 != order1);
  std::set<int64_t> uniq(order0.begin(), order0.end());
  CHECK(uniq.size() == 96);  // no repeats within an epoch
  std::vector<int64_t> perm = ss::epoch_permutation(100, 5, 0);
  CHECK(std::vector<int64_t>(perm.begin(), perm.begin() + 96) == order0);
  std::sort(perm.begin(), perm.end());
  for (int64_t i = 0; i < 100; ++i) CHECK(perm[size_t(i)] == i);

  o.drop_last = false;
  ss::Loader keep(ds, plain, o);
  CHECK(keep.batches_per_epoch() == 4);
  const auto k0 = epoch_batches(keep, 0);
  REQUIRE(k0.size() == 4);
  CHECK(k0.back().N == 4);
}

TEST_CASE("loader: a worker's exception reaches the consumer; early stop and restarts") {
  FailingDataset bad(synthetic(40), 17);
  ss::AugmentConfig plain;
  plain.crop = false, plain.out_h = plain.out_w = 32;
  ss::LoaderOptions o;
  o.batch_size = 10, o.workers = 2, o.shuffle = false;
  {
    ss::Loader loader(bad, plain, o);
    loader.start_epoch(0);
    ss::Batch b;
    CHECK(loader.next(b));  // images 0..9
    try {
      loader.next(b);
      FAIL("no error");
    } catch (const std::runtime_error& e) {
      CHECK(std::string(e.what()) == "[test] image 17 is broken");
    }
    CHECK(loader.next(b));  // the loader keeps going after an error
    CHECK(b.indices[0] == 20);
  }
  const ss::MemoryDataset ds = synthetic(200);
  for (int rep = 0; rep < 20; ++rep) {
    o.workers = 4, o.prefetch = 2, o.batch_size = 8;
    ss::Loader loader(ds, ss::augment_preset("simclr-cifar", ds), o);
    loader.start_epoch(0);
    ss::Batch b;
    if (rep % 2) loader.next(b);
    loader.start_epoch(1);  // restart mid-epoch: the old batches are discarded
    REQUIRE(loader.next(b));
    CHECK(b.epoch == 1);
    CHECK(b.number == 0);
  }  // destructors join with batches in flight and a full window
  ss::Loader idle(ds, plain, o);
  ss::Batch b;
  CHECK_THROWS_AS(idle.next(b), std::logic_error);
  o.batch_size = 0;
  CHECK_THROWS_AS(ss::Loader(ds, plain, o), std::invalid_argument);
}

TEST_CASE("eval loader: every image once, in order, one normalised view, partial batch kept") {
  const ss::MemoryDataset ds = synthetic(45);
  auto loader = ss::make_eval_loader(ds, 20, 3);
  const auto batches = epoch_batches(*loader, 0);
  REQUIRE(batches.size() == 3);
  CHECK(batches[2].N == 5);
  int64_t next = 0;
  for (const auto& b : batches) {
    CHECK(b.K == 1);
    for (int64_t n = 0; n < b.N; ++n, ++next) {
      CHECK(b.indices[size_t(n)] == next);
      const float want = (ds.image(next)[3 * 7 + 2] / 255.f - 0.5f) / 0.25f;
      CHECK(b.images[size_t(n) * 3072 + 2048 + 7] == doctest::Approx(want).epsilon(1e-6));
    }
  }
  CHECK(next == 45);
}
