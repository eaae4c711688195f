// Augmentations: the B13-B17 cases with their exact numbers, the random-apply wrappers, the
// presets, 1-channel handling and the PNG grid.
#include <doctest/doctest.h>
#include <stb/stb_image.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "data/augment.h"
#include "data/dataset.h"
#include "data/loader.h"

namespace {

// A dataset of n h x w images with c channels, pixel values from a simple formula.
ss::MemoryDataset synthetic(int64_t n, int c, int h, int w) {
  ss::MemoryDataset ds("synthetic", c, h, w, 10);
  std::vector<uint8_t> px(size_t(c * h * w));
  for (int64_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < px.size(); ++j) px[j] = uint8_t((i * 31 + int64_t(j) * 7) % 256);
    ds.push(px.data(), i % 10);
  }
  ds.compute_stats();
  return ds;
}

// Pixels given as (r, g, b) triples, stored CHW.
std::vector<float> chw(const std::vector<std::array<float, 3>>& px) {
  std::vector<float> out(px.size() * 3);
  for (size_t i = 0; i < px.size(); ++i)
    for (int c = 0; c < 3; ++c) out[size_t(c) * px.size() + i] = px[i][size_t(c)];
  return out;
}

void check_pixel(const std::vector<float>& img, size_t npix, size_t i, float r, float g, float b) {
  CHECK(img[i] == doctest::Approx(r).epsilon(1e-5));
  CHECK(img[npix + i] == doctest::Approx(g).epsilon(1e-5));
  CHECK(img[2 * npix + i] == doctest::Approx(b).epsilon(1e-5));
}

}  // namespace

TEST_CASE("B13: contrast pivots on the mean gray level; saturation and brightness") {
  std::vector<float> a = chw({{1, 0, 0}, {0, 0, 1}});
  ss::adjust_contrast({a.data(), 3, 1, 2}, 0.5f);
  check_pixel(a, 2, 0, 0.60325f, 0.10325f, 0.10325f);  // m = 0.2065, not per channel, not 74/255
  check_pixel(a, 2, 1, 0.10325f, 0.10325f, 0.60325f);

  std::vector<float> b = chw({{0.6f, 0.4f, 0.2f}, {0.2f, 0.4f, 0.6f}});
  ss::adjust_contrast({b.data(), 3, 1, 2}, 1.5f);
  check_pixel(b, 2, 0, 0.7f, 0.4f, 0.1f);
  check_pixel(b, 2, 1, 0.1f, 0.4f, 0.7f);

  std::vector<float> s0 = chw({{0.8f, 0.4f, 0.2f}});
  ss::adjust_saturation({s0.data(), 3, 1, 1}, 0.f);
  check_pixel(s0, 1, 0, 0.4968f, 0.4968f, 0.4968f);
  std::vector<float> s2 = chw({{0.8f, 0.4f, 0.2f}});
  ss::adjust_saturation({s2.data(), 3, 1, 1}, 2.f);
  check_pixel(s2, 1, 0, 1.f, 0.3032f, 0.f);
  for (float f : {0.f, 0.3f, 1.7f, 5.f}) {
    std::vector<float> g = chw({{0.3f, 0.3f, 0.3f}});
    ss::adjust_saturation({g.data(), 3, 1, 1}, f);
    check_pixel(g, 1, 0, 0.3f, 0.3f, 0.3f);
  }
  std::vector<float> br = chw({{0.8f, 0.4f, 0.2f}});
  ss::adjust_brightness({br.data(), 3, 1, 1}, 1.5f);
  check_pixel(br, 1, 0, 1.f, 0.6f, 0.3f);

  // Contrast keeps the mean gray level when nothing clips: no brightness shift.
  std::vector<float> mid = chw({{0.5f, 0.45f, 0.4f}, {0.4f, 0.5f, 0.55f}, {0.45f, 0.5f, 0.5f}});
  auto mean_gray = [](const std::vector<float>& v) {
    double s = 0;
    for (size_t i = 0; i < 3; ++i) s += ss::gray_level(v[i], v[3 + i], v[6 + i]);
    return s / 3;
  };
  const double before = mean_gray(mid);
  ss::adjust_contrast({mid.data(), 3, 1, 3}, 1.4f);
  CHECK(mean_gray(mid) == doctest::Approx(before).epsilon(1e-6));
}

TEST_CASE("B14: grayscale weights, PIL 8-bit rounding, 3 equal channels, 1-channel inputs") {
  CHECK(ss::gray_level(1, 0, 0) == doctest::Approx(0.299).epsilon(1e-6));
  CHECK(ss::gray_level(0, 1, 0) == doctest::Approx(0.587).epsilon(1e-6));
  CHECK(ss::gray_level(0, 0, 1) == doctest::Approx(0.114).epsilon(1e-6));
  CHECK(ss::gray_level(1, 1, 1) == doctest::Approx(1.0).epsilon(1e-6));
  CHECK(ss::gray_level(0.2f, 0.4f, 0.6f) == doctest::Approx(0.363).epsilon(1e-6));
  CHECK(int(ss::gray_u8(255, 0, 0)) == 76);
  CHECK(int(ss::gray_u8(200, 100, 50)) == 124);
  CHECK(int(ss::gray_u8(255, 255, 255)) == 255);

  // RandomGrayscale at p = 1 on RGB: three identical channels out.
  ss::MemoryDataset rgb = synthetic(4, 3, 8, 8);
  ss::AugmentConfig cfg;
  cfg.out_h = cfg.out_w = 8;
  cfg.gray_p = 1.0;
  ss::Augmenter aug(cfg, 3, 8, 8);
  std::vector<float> out(aug.out_numel());
  ss::Generator g(5);
  aug.apply(rgb.image(1), g, out.data());
  for (int i = 0; i < 64; ++i) {
    CHECK(out[size_t(i)] == out[size_t(64 + i)]);
    CHECK(out[size_t(i)] == out[size_t(128 + i)]);
  }

  // 1 channel: grayscale, saturation and hue pass through; contrast uses the image mean.
  std::vector<float> one = {0.2f, 0.6f};
  ss::to_grayscale({one.data(), 1, 1, 2});
  ss::adjust_saturation({one.data(), 1, 1, 2}, 3.f);
  ss::adjust_hue({one.data(), 1, 1, 2}, 0.3f);
  CHECK(one == std::vector<float>{0.2f, 0.6f});
  ss::adjust_contrast({one.data(), 1, 1, 2}, 0.5f);
  CHECK(one[0] == doctest::Approx(0.3));
  CHECK(one[1] == doctest::Approx(0.5));

  // The full strongest pipeline on a 1-channel dataset runs and keeps 1 channel.
  ss::MemoryDataset gray = synthetic(3, 1, 28, 28);
  ss::AugmentConfig strong = ss::augment_preset("du-cifar", gray);
  strong.jitter_p = strong.gray_p = strong.blur_p = strong.solarize_p = 1.0;
  ss::Augmenter a1(strong, 1, 28, 28);
  CHECK(a1.out_channels() == 1);
  std::vector<float> v(a1.out_numel());
  a1.apply(gray.image(0), g, v.data());
  for (float x : v) CHECK(std::isfinite(x));
}

TEST_CASE("B15: RandomResizedCrop ratio range, log-uniform ratio, centred fallback") {
  ss::Generator g(11);
  // Area fixed at 10 000 (scale 0.25 of 200x200), ratio fixed at 0.75: w = 87, h = 115.
  for (int i = 0; i < 20; ++i) {
    const ss::CropBox b = ss::random_resized_crop_box(200, 200, 0.25, 0.25, 0.75, 0.75, g);
    CHECK(b.width == 87);
    CHECK(b.height == 115);
    CHECK(b.top >= 0);
    CHECK(b.top + b.height <= 200);
    CHECK(b.left + b.width <= 200);
  }
  // With ratio (0.75, 0.75) no crop is ever near 4/3 (no width/height swap).
  for (int i = 0; i < 5000; ++i) {
    const ss::CropBox b = ss::random_resized_crop_box(200, 200, 0.08, 1.0, 0.75, 0.75, g);
    const double r = double(b.width) / b.height;
    CHECK(r < 0.8);
    CHECK(r > 0.7);
  }
  // Log-uniform ratio over (0.5, 2): half the crops are taller than wide.
  int taller = 0;
  const int draws = 20000;
  for (int i = 0; i < draws; ++i) {
    const ss::CropBox b = ss::random_resized_crop_box(1000, 1000, 0.08, 0.25, 0.5, 2.0, g);
    taller += b.width < b.height;
  }
  CHECK(double(taller) / draws == doctest::Approx(0.5).epsilon(0.02));
  CHECK(std::abs(double(taller) / draws - 0.5) <= 0.01);
  // Fallback: 10 high x 1000 wide never fits, so every call gives the centred 13 x 10 crop.
  for (int i = 0; i < 50; ++i) {
    const ss::CropBox wide = ss::random_resized_crop_box(10, 1000, 0.08, 1.0, 0.75, 4.0 / 3, g);
    CHECK(wide.width == 13);
    CHECK(wide.height == 10);
    CHECK(wide.top == 0);
    CHECK(wide.left == 493);
    const ss::CropBox tall = ss::random_resized_crop_box(1000, 10, 0.08, 1.0, 0.75, 4.0 / 3, g);
    CHECK(tall.width == 10);
    CHECK(tall.height == 13);
    CHECK(tall.top == 493);
    CHECK(tall.left == 0);
  }
  // Every crop lies inside the image, for small images too.
  for (int i = 0; i < 2000; ++i) {
    const int h = 1 + int(g.below(40)), w = 1 + int(g.below(40));
    const ss::CropBox b = ss::random_resized_crop_box(h, w, 0.08, 1.0, 0.75, 4.0 / 3, g);
    CHECK((b.height >= 1 && b.width >= 1 && b.top + b.height <= h && b.left + b.width <= w));
  }
}

TEST_CASE("B16: random-apply wrappers apply with probability p, blur kernel values") {
  ss::MemoryDataset ds = synthetic(1, 3, 12, 12);
  auto rate = [&](ss::AugmentConfig cfg, bool ss::ViewDraws::*field) {
    cfg.out_h = cfg.out_w = 12;
    cfg.crop = false;
    ss::Augmenter aug(cfg, 3, 12, 12);
    std::vector<float> out(aug.out_numel());
    int hits = 0;
    const int calls = 10000;
    for (int i = 0; i < calls; ++i) {
      ss::Generator g = ss::Generator::derive(99, {0, uint64_t(i), 0});
      ss::ViewDraws d;
      aug.apply(ds.image(0), g, out.data(), &d);
      hits += d.*field;
    }
    return double(hits) / calls;
  };
  struct Case {
    double ss::AugmentConfig::*p;
    bool ss::ViewDraws::*drawn;
    const char* name;
  };
  const Case cases[] = {{&ss::AugmentConfig::blur_p, &ss::ViewDraws::blur, "blur"},
                        {&ss::AugmentConfig::jitter_p, &ss::ViewDraws::jitter, "jitter"},
                        {&ss::AugmentConfig::gray_p, &ss::ViewDraws::gray, "grayscale"},
                        {&ss::AugmentConfig::solarize_p, &ss::ViewDraws::solarize, "solarize"},
                        {&ss::AugmentConfig::flip_p, &ss::ViewDraws::flip, "flip"}};
  for (const Case& c : cases) {
    INFO(c.name);
    for (double p : {0.0, 1.0, 0.1, 0.2, 0.8}) {
      ss::AugmentConfig cfg;
      cfg.brightness = 0.4;
      cfg.*c.p = p;
      const double r = rate(cfg, c.drawn);
      INFO("p = " << p << ", applied " << r);
      if (p == 0.0 || p == 1.0)
        CHECK(r == p);
      else
        CHECK(std::abs(r - p) <= 0.01);
    }
  }

  const std::vector<float> k13 = ss::gaussian_kernel(3, 1.f);
  CHECK(k13[0] == doctest::Approx(0.274069).epsilon(1e-5));
  CHECK(k13[1] == doctest::Approx(0.451863).epsilon(1e-5));
  CHECK(k13[2] == doctest::Approx(0.274069).epsilon(1e-5));
  const std::vector<float> k15 = ss::gaussian_kernel(5, 1.f);
  const double want15[5] = {0.054489, 0.244201, 0.402620, 0.244201, 0.054489};
  for (int i = 0; i < 5; ++i) CHECK(k15[size_t(i)] == doctest::Approx(want15[i]).epsilon(1e-5));
  const std::vector<float> k053 = ss::gaussian_kernel(3, 0.5f);
  CHECK(k053[0] == doctest::Approx(0.106507).epsilon(1e-5));
  CHECK(k053[1] == doctest::Approx(0.786986).epsilon(1e-5));

  std::vector<float> impulse(25, 0.f);
  impulse[12] = 1.f;
  ss::gaussian_blur({impulse.data(), 1, 5, 5}, 3, 1.f);
  CHECK(impulse[12] == doctest::Approx(0.204180).epsilon(1e-5));
  std::vector<float> flat(3 * 7 * 9, 0.37f);
  ss::gaussian_blur({flat.data(), 3, 7, 9}, 5, 1.3f);
  for (float x : flat) CHECK(x == doctest::Approx(0.37f).epsilon(1e-6));
  CHECK_THROWS_AS(ss::gaussian_kernel(4, 1.f), std::invalid_argument);
  CHECK_THROWS_AS(ss::gaussian_kernel(3, 0.f), std::invalid_argument);
}

TEST_CASE("B17: solarize inverts at or above the threshold; a fixed threshold is fixed") {
  std::vector<float> v = {0.2f, 0.49f, 0.5f, 0.8f};
  ss::solarize({v.data(), 1, 1, 4}, 0.5f);
  CHECK(v[0] == doctest::Approx(0.2f));
  CHECK(v[1] == doctest::Approx(0.49f));
  CHECK(v[2] == doctest::Approx(0.5f));
  CHECK(v[3] == doctest::Approx(0.2f));
  uint8_t b[4] = {100, 127, 128, 200};
  ss::solarize_u8(b, 4, 128);
  CHECK(int(b[0]) == 100);
  CHECK(int(b[1]) == 127);
  CHECK(int(b[2]) == 127);
  CHECK(int(b[3]) == 55);

  ss::MemoryDataset ds = synthetic(1, 3, 10, 10);
  ss::AugmentConfig cfg;
  cfg.crop = false;
  cfg.out_h = cfg.out_w = 10;
  cfg.solarize_p = 1.0;
  cfg.solarize_threshold = 0.5;
  ss::Augmenter aug(cfg, 3, 10, 10);
  std::vector<float> first(aug.out_numel()), again(aug.out_numel());
  for (int i = 0; i < 100; ++i) {
    ss::Generator g{uint64_t(i)};  // different streams: the output must not change
    aug.apply(ds.image(0), g, i == 0 ? first.data() : again.data());
    if (i > 0) CHECK(again == first);
  }
}

TEST_CASE("ColorJitter draws: factor ranges as torchvision, every order occurs") {
  ss::MemoryDataset ds = synthetic(1, 3, 8, 8);
  ss::AugmentConfig cfg = ss::augment_preset("du-cifar", ds);  // 0.8, 0.8, 0.8, 0.2
  cfg.jitter_p = 1.0;
  ss::Augmenter aug(cfg, 3, 8, 8);
  std::vector<float> out(aug.out_numel());
  std::set<std::vector<int>> orders;
  float lo[4] = {9, 9, 9, 9}, hi[4] = {-9, -9, -9, -9};
  for (int i = 0; i < 2000; ++i) {
    ss::Generator g = ss::Generator::derive(3, {0, uint64_t(i), 0});
    ss::ViewDraws d;
    aug.apply(ds.image(0), g, out.data(), &d);
    orders.insert(std::vector<int>(d.order, d.order + 4));
    for (int j = 0; j < 4; ++j)
      lo[j] = std::min(lo[j], d.factors[j]), hi[j] = std::max(hi[j], d.factors[j]);
  }
  CHECK(orders.size() == 24);
  for (int j = 0; j < 3; ++j) {
    CHECK(lo[j] >= 0.2f - 1e-6f);  // [max(0, 1 - 0.8), 1 + 0.8]
    CHECK(lo[j] < 0.25f);
    CHECK(hi[j] <= 1.8f);
    CHECK(hi[j] > 1.75f);
  }
  CHECK(lo[3] >= -0.2f);
  CHECK(lo[3] < -0.19f);
  CHECK(hi[3] <= 0.2f);
  CHECK(hi[3] > 0.19f);
}

TEST_CASE("presets: parameters, eval = convert + normalise, unknown names") {
  ss::MemoryDataset cifar = ss::make_cifar_dataset({});
  std::vector<uint8_t> px(3072);
  for (size_t i = 0; i < px.size(); ++i) px[i] = uint8_t(i % 251);
  cifar.push(px.data(), 3);
  const ss::AugmentConfig s = ss::augment_preset("simclr-cifar", cifar);
  CHECK(s.out_h == 32);
  CHECK(s.scale_lo == 0.08);
  CHECK(s.flip_p == 0.5);
  CHECK(s.jitter_p == 0.8);
  CHECK(s.brightness == doctest::Approx(0.4));
  CHECK(s.saturation == doctest::Approx(0.4));
  CHECK(s.hue == doctest::Approx(0.1));
  CHECK(s.gray_p == 0.2);
  CHECK(s.blur_p == 0);
  CHECK(s.mean == std::vector<float>{0.4914f, 0.4822f, 0.4465f});
  CHECK(s.std == std::vector<float>{0.2470f, 0.2435f, 0.2616f});
  const ss::AugmentConfig d = ss::augment_preset("du-cifar", cifar);
  CHECK(d.contrast == doctest::Approx(0.8));
  CHECK(d.hue == doctest::Approx(0.2));
  ss::MemoryDataset fm("fashion-mnist", 1, 28, 28, 10);
  fm.set_stats({0.2860f}, {0.3530f});
  const ss::AugmentConfig f = ss::augment_preset("fmnist", fm);
  CHECK(f.out_h == 28);
  CHECK(f.scale_lo == doctest::Approx(0.7));
  CHECK(f.saturation == 0);
  CHECK(f.hue == 0);
  CHECK(f.mean == std::vector<float>{0.2860f});

  const ss::AugmentConfig e = ss::augment_preset("eval", cifar);
  ss::Augmenter aug(e, 3, 32, 32);
  std::vector<float> out(aug.out_numel());
  ss::Generator g(0);
  aug.apply(cifar.image(0), g, out.data());
  for (int c = 0; c < 3; ++c)
    for (int i : {0, 77, 1023}) {
      const float want = (px[size_t(3 * i + c)] / 255.f - e.mean[size_t(c)]) / e.std[size_t(c)];
      CHECK(out[size_t(c * 1024 + i)] == doctest::Approx(want).epsilon(1e-5));
    }
  try {
    ss::augment_preset("simclr", cifar);
    FAIL("no error");
  } catch (const std::invalid_argument& ex) {
    CHECK(std::string(ex.what()).find("unknown preset 'simclr'") != std::string::npos);
    CHECK(std::string(ex.what()).find("simclr-cifar") != std::string::npos);
  }
  ss::AugmentConfig bad = s;
  bad.gray_p = 1.5;
  CHECK_THROWS_AS(ss::Augmenter(bad, 3, 32, 32), std::invalid_argument);
}

TEST_CASE("augment_grid writes a PNG: originals then K views per row, Normalize undone") {
  ss::MemoryDataset ds = synthetic(5, 3, 16, 16);
  const std::string out = (std::filesystem::temp_directory_path() /
                           ("selfsup_grid_" + std::to_string(getpid()) + ".png"))
                              .string();
  ss::augment_grid(ds, "simclr-cifar", 4, 3, 7, out);
  int w = 0, h = 0, c = 0;
  stbi_uc* img = stbi_load(out.c_str(), &w, &h, &c, 3);
  REQUIRE(img != nullptr);
  // Tiles of 32 x 3 = 96 pixels, 2-pixel gaps: 5 columns, 3 rows.
  CHECK(w == 5 * 96 + 6 * 2);
  CHECK(h == 3 * 96 + 4 * 2);
  // The original tile of row 0 is image 0 resized 16 -> 32 (bilinear); its corner pixel is exact.
  CHECK(int(img[(2 * w + 2) * 3]) == int(ds.image(0)[0]));
  stbi_image_free(img);
  std::filesystem::remove(out);
  CHECK_THROWS_AS(ss::augment_grid(ds, "eval", 0, 3, 7, out), std::invalid_argument);
}
