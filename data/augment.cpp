// Deterministic image ops (torchvision tensor semantics) and the seeded augmentation pipeline.
#include "data/augment.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "data/dataset.h"

namespace ss {

namespace {
inline float clamp01(float x) {
  return x < 0.f ? 0.f : (x > 1.f ? 1.f : x);
}

// Per-thread scratch so the hot path allocates nothing after warm-up.
std::vector<float>& scratch(int slot) {
  thread_local std::vector<float> buf[2];
  return buf[slot];
}

// Mirror index without repeating the edge: -1 -> 1, n -> n-2 (torch "reflect").
inline int reflect(int i, int n) {
  if (n == 1) return 0;
  const int period = 2 * (n - 1);
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}

[[noreturn]] void bad_config(const std::string& what) {
  throw std::invalid_argument("[augment] " + what);
}
}  // namespace

// Bilinear taps for out >= in, torchvision's antialiased triangle filter for out < in.
ResampleAxis resample_axis(int in_size, int out_size, bool flip) {
  if (in_size <= 0 || out_size <= 0)
    bad_config("resample from " + std::to_string(in_size) + " to " + std::to_string(out_size) +
               " pixels: sizes must be positive");
  ResampleAxis ax;
  const double scale = double(in_size) / double(out_size);
  if (in_size <= out_size) {
    ax.taps = 2;
    ax.index.resize(size_t(out_size) * 2);
    ax.weight.resize(size_t(out_size) * 2);
    for (int i = 0; i < out_size; ++i) {
      // src = max(scale (i + 0.5) - 0.5, 0); i1 = i0 + 1 except at the last pixel.
      const float src = std::max(float(scale) * (float(i) + 0.5f) - 0.5f, 0.f);
      const int i0 = int(src);
      const int i1 = i0 + (i0 < in_size - 1 ? 1 : 0);
      const float l1 = std::min(std::max(src - float(i0), 0.f), 1.f);
      const int o = flip ? out_size - 1 - i : i;
      ax.index[size_t(o) * 2] = i0;
      ax.index[size_t(o) * 2 + 1] = i1;
      ax.weight[size_t(o) * 2] = 1.f - l1;
      ax.weight[size_t(o) * 2 + 1] = l1;
    }
    return ax;
  }
  // Triangle filter of half-width support = scale, centred on scale (i + 0.5).
  const double support = scale;
  ax.taps = int(std::ceil(support)) * 2 + 1;
  ax.index.assign(size_t(out_size) * size_t(ax.taps), 0);
  ax.weight.assign(size_t(out_size) * size_t(ax.taps), 0.f);
  for (int i = 0; i < out_size; ++i) {
    const double center = scale * (i + 0.5);
    const int xmin = std::max(int(center - support + 0.5), 0);
    const int xsize = std::min(int(center + support + 0.5), in_size) - xmin;
    std::vector<double> w(size_t(ax.taps), 0.0);
    double total = 0;
    const int n = std::min(xsize, ax.taps);
    for (int j = 0; j < n; ++j) {
      const double x = std::abs((j + xmin - center + 0.5) / scale);
      w[size_t(j)] = x < 1.0 ? 1.0 - x : 0.0;
      total += w[size_t(j)];
    }
    const int o = flip ? out_size - 1 - i : i;
    for (int j = 0; j < ax.taps; ++j) {
      ax.index[size_t(o) * ax.taps + j] = j < n ? xmin + j : xmin;
      ax.weight[size_t(o) * ax.taps + j] = j < n && total > 0 ? float(w[size_t(j)] / total) : 0.f;
    }
  }
  return ax;
}

// out[c][y][x] = hwc[(y w + x) c_n + c] / 255.
void to_float_chw(const uint8_t* hwc, int c, int h, int w, float* out) {
  const size_t plane = size_t(h) * size_t(w);
  constexpr float inv = 1.f / 255.f;
  if (c == 3) {
    for (size_t i = 0; i < plane; ++i) {
      out[i] = hwc[3 * i] * inv;
      out[plane + i] = hwc[3 * i + 1] * inv;
      out[2 * plane + i] = hwc[3 * i + 2] * inv;
    }
    return;
  }
  for (size_t i = 0; i < plane; ++i)
    for (int k = 0; k < c; ++k) out[size_t(k) * plane + i] = hwc[i * size_t(c) + size_t(k)] * inv;
}

// Horizontal pass into tmp[c][y][ox], then vertical pass with the 1/255 folded into the weights.
void resized_crop(const uint8_t* hwc, int c, int h, int w, const CropBox& box, bool flip,
                  ImageView out) {
  if (box.height <= 0 || box.width <= 0 || box.top < 0 || box.left < 0 ||
      box.top + box.height > h || box.left + box.width > w)
    bad_config("crop box (" + std::to_string(box.top) + ", " + std::to_string(box.left) + ", " +
               std::to_string(box.height) + ", " + std::to_string(box.width) +
               ") outside the image " + std::to_string(h) + "x" + std::to_string(w));
  if (!flip && box.height == h && box.width == w && out.h == h && out.w == w)
    return to_float_chw(hwc, c, h, w, out.data);
  const ResampleAxis ax = resample_axis(box.width, out.w, flip);
  const ResampleAxis ay = resample_axis(box.height, out.h, false);
  const int bh = box.height, ow = out.w, tx = ax.taps;
  std::vector<float>& tmp = scratch(0);
  tmp.resize(size_t(c) * size_t(bh) * size_t(ow));

  for (int y = 0; y < bh; ++y) {
    const uint8_t* row = hwc + (size_t(box.top + y) * size_t(w) + size_t(box.left)) * size_t(c);
    for (int k = 0; k < c; ++k) {
      float* t = tmp.data() + (size_t(k) * bh + size_t(y)) * size_t(ow);
      for (int x = 0; x < ow; ++x) {
        const int* idx = &ax.index[size_t(x) * tx];
        const float* wt = &ax.weight[size_t(x) * tx];
        float s = 0.f;
        for (int j = 0; j < tx; ++j) s += wt[j] * float(row[size_t(idx[j]) * c + size_t(k)]);
        t[x] = s;
      }
    }
  }

  constexpr float inv = 1.f / 255.f;
  const int ty = ay.taps;
  for (int k = 0; k < c; ++k) {
    const float* t = tmp.data() + size_t(k) * bh * size_t(ow);
    float* o = out.channel(k);
    for (int y = 0; y < out.h; ++y) {
      float* orow = o + size_t(y) * size_t(ow);
      const int* idx = &ay.index[size_t(y) * ty];
      const float* wt = &ay.weight[size_t(y) * ty];
      for (int x = 0; x < ow; ++x) orow[x] = 0.f;
      for (int j = 0; j < ty; ++j) {
        const float wj = wt[j] * inv;
        const float* trow = t + size_t(idx[j]) * size_t(ow);
        for (int x = 0; x < ow; ++x) orow[x] += wj * trow[x];
      }
    }
  }
}

// Resize through the float path, then round x 255 back to bytes.
void resize_u8(const uint8_t* in, int c, int h, int w, uint8_t* out, int oh, int ow) {
  std::vector<float> f(size_t(c) * size_t(oh) * size_t(ow));
  resized_crop(in, c, h, w, CropBox{0, 0, h, w}, false, ImageView{f.data(), c, oh, ow});
  const size_t plane = size_t(oh) * size_t(ow);
  for (size_t i = 0; i < plane; ++i)
    for (int k = 0; k < c; ++k)
      out[i * size_t(c) + size_t(k)] =
          uint8_t(std::lround(clamp01(f[size_t(k) * plane + i]) * 255.f));
}

void hflip(ImageView img) {
  for (int k = 0; k < img.c; ++k)
    for (int y = 0; y < img.h; ++y) {
      float* r = img.channel(k) + size_t(y) * size_t(img.w);
      std::reverse(r, r + img.w);
    }
}

// x = clamp(f x) (blend with black).
void adjust_brightness(ImageView img, float f) {
  const size_t n = size_t(img.c) * img.plane();
  for (size_t i = 0; i < n; ++i) img.data[i] = clamp01(f * img.data[i]);
}

// x = clamp(f x + (1 - f) m), m = mean over pixels of the gray image.
void adjust_contrast(ImageView img, float f) {
  const size_t p = img.plane(), n = size_t(img.c) * p;
  double sum = 0;
  if (img.c == 3) {
    const float *r = img.channel(0), *g = img.channel(1), *b = img.channel(2);
    for (size_t i = 0; i < p; ++i) sum += gray_level(r[i], g[i], b[i]);
  } else {
    for (size_t i = 0; i < n; ++i) sum += img.data[i];
  }
  const float m = float(sum / double(img.c == 3 ? p : n));
  const float offset = (1.f - f) * m;
  for (size_t i = 0; i < n; ++i) img.data[i] = clamp01(f * img.data[i] + offset);
}

// x = clamp(f x + (1 - f) gray(pixel)).
void adjust_saturation(ImageView img, float f) {
  if (img.c != 3) return;
  float *r = img.channel(0), *g = img.channel(1), *b = img.channel(2);
  const float f1 = 1.f - f;
  for (size_t i = 0; i < img.plane(); ++i) {
    const float l = f1 * gray_level(r[i], g[i], b[i]);
    r[i] = clamp01(f * r[i] + l);
    g[i] = clamp01(f * g[i] + l);
    b[i] = clamp01(f * b[i] + l);
  }
}

// RGB -> HSV, h = (h + shift) mod 1, HSV -> RGB, with torchvision's exact case analysis.
void adjust_hue(ImageView img, float shift) {
  if (img.c != 3) return;
  if (shift < -0.5f || shift > 0.5f)
    bad_config("hue shift " + std::to_string(shift) + " outside [-0.5, 0.5]");
  float *rp = img.channel(0), *gp = img.channel(1), *bp = img.channel(2);
  for (size_t i = 0; i < img.plane(); ++i) {
    const float r = rp[i], g = gp[i], b = bp[i];
    const float maxc = std::max(r, std::max(g, b)), minc = std::min(r, std::min(g, b));
    const bool eqc = maxc == minc;
    const float cr = maxc - minc;
    const float s = cr / (eqc ? 1.f : maxc);
    const float crd = eqc ? 1.f : cr;
    const float rc = (maxc - r) / crd, gc = (maxc - g) / crd, bc = (maxc - b) / crd;
    float hh;
    if (maxc == r)
      hh = bc - gc;
    else if (maxc == g)
      hh = 2.f + rc - bc;
    else
      hh = 4.f + gc - rc;
    hh = std::fmod(hh / 6.f + 1.f, 1.f);
    hh = std::fmod(hh + shift, 1.f);  // torch remainder: fmod, then + 1 when negative
    if (hh < 0.f) hh += 1.f;

    const float v = maxc;
    const float h6 = hh * 6.f;
    const float fi = std::floor(h6);
    const float fr = h6 - fi;
    const int sector = int(fi) % 6;
    const float pp = clamp01(v * (1.f - s)), q = clamp01(v * (1.f - s * fr)),
                t = clamp01(v * (1.f - s * (1.f - fr)));
    float o0, o1, o2;
    switch (sector) {
      case 0:
        o0 = v, o1 = t, o2 = pp;
        break;
      case 1:
        o0 = q, o1 = v, o2 = pp;
        break;
      case 2:
        o0 = pp, o1 = v, o2 = t;
        break;
      case 3:
        o0 = pp, o1 = q, o2 = v;
        break;
      case 4:
        o0 = t, o1 = pp, o2 = v;
        break;
      default:
        o0 = v, o1 = pp, o2 = q;
        break;
    }
    rp[i] = o0, gp[i] = o1, bp[i] = o2;
  }
}

// R = G = B = 0.299 R + 0.587 G + 0.114 B.
void to_grayscale(ImageView img) {
  if (img.c != 3) return;
  float *r = img.channel(0), *g = img.channel(1), *b = img.channel(2);
  for (size_t i = 0; i < img.plane(); ++i) r[i] = g[i] = b[i] = gray_level(r[i], g[i], b[i]);
}

// k_t = exp(-0.5 (x_t / sigma)^2) / sum, x_t = t - size/2.
std::vector<float> gaussian_kernel(int size, float sigma) {
  if (size <= 0 || size % 2 == 0)
    bad_config("gaussian kernel size " + std::to_string(size) + " must be odd and positive");
  if (!(sigma > 0)) bad_config("gaussian sigma " + std::to_string(sigma) + " must be positive");
  std::vector<double> k(static_cast<size_t>(size));
  double total = 0;
  for (int t = 0; t < size; ++t) {
    const double x = double(t - size / 2) / sigma;
    k[size_t(t)] = std::exp(-0.5 * x * x);
    total += k[size_t(t)];
  }
  std::vector<float> out(static_cast<size_t>(size));
  for (int t = 0; t < size; ++t) out[size_t(t)] = float(k[size_t(t)] / total);
  return out;
}

// Rows then columns: out(y, x) = sum_t k_t in(reflect(y + t - r), ...), r = size / 2.
void gaussian_blur(ImageView img, int size, float sigma) {
  const std::vector<float> k = gaussian_kernel(size, sigma);
  const int r = size / 2, h = img.h, w = img.w;
  std::vector<float>& tmp = scratch(1);
  tmp.resize(img.plane());
  for (int ch = 0; ch < img.c; ++ch) {
    float* p = img.channel(ch);
    for (int y = 0; y < h; ++y) {
      const float* row = p + size_t(y) * size_t(w);
      float* t = tmp.data() + size_t(y) * size_t(w);
      for (int x = 0; x < w; ++x) {
        float s = 0.f;
        for (int j = 0; j < size; ++j) s += k[size_t(j)] * row[reflect(x + j - r, w)];
        t[x] = s;
      }
    }
    for (int y = 0; y < h; ++y) {
      float* o = p + size_t(y) * size_t(w);
      for (int x = 0; x < w; ++x) o[x] = 0.f;
      for (int j = 0; j < size; ++j) {
        const float* t = tmp.data() + size_t(reflect(y + j - r, h)) * size_t(w);
        for (int x = 0; x < w; ++x) o[x] += k[size_t(j)] * t[x];
      }
    }
  }
}

// x >= t ? 1 - x : x.
void solarize(ImageView img, float threshold) {
  const size_t n = size_t(img.c) * img.plane();
  for (size_t i = 0; i < n; ++i)
    if (img.data[i] >= threshold) img.data[i] = 1.f - img.data[i];
}

void solarize_u8(uint8_t* px, size_t n, int threshold) {
  for (size_t i = 0; i < n; ++i)
    if (px[i] >= threshold) px[i] = uint8_t(255 - px[i]);
}

// x = (x - mean_c) / std_c.
void normalize(ImageView img, const std::vector<float>& mean, const std::vector<float>& std) {
  if (int(mean.size()) != img.c || int(std.size()) != img.c)
    bad_config("normalize needs " + std::to_string(img.c) + " means and stds, got " +
               std::to_string(mean.size()) + " and " + std::to_string(std.size()));
  for (int k = 0; k < img.c; ++k) {
    float* p = img.channel(k);
    const float m = mean[size_t(k)], s = std[size_t(k)];
    for (size_t i = 0; i < img.plane(); ++i) p[i] = (p[i] - m) / s;
  }
}

// torchvision's get_params; Python's round() is round-half-even, as std::nearbyint.
CropBox random_resized_crop_box(int h, int w, double scale_lo, double scale_hi, double ratio_lo,
                                double ratio_hi, Generator& gen, double* first_scale) {
  const double area = double(h) * double(w);
  const double lr0 = std::log(ratio_lo), lr1 = std::log(ratio_hi);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double s = gen.uniform(scale_lo, scale_hi);
    if (attempt == 0 && first_scale) *first_scale = s;
    const double target = area * s;
    const double ratio = std::exp(gen.uniform(lr0, lr1));
    const int cw = int(std::nearbyint(std::sqrt(target * ratio)));
    const int ch = int(std::nearbyint(std::sqrt(target / ratio)));
    if (cw > 0 && cw <= w && ch > 0 && ch <= h) {
      const int top = int(gen.below(uint64_t(h - ch + 1)));
      const int left = int(gen.below(uint64_t(w - cw + 1)));
      return CropBox{top, left, ch, cw};
    }
  }
  // Centred fallback: clamp the aspect ratio into [ratio_lo, ratio_hi].
  const double in_ratio = double(w) / double(h);
  int cw = w, ch = h;
  if (in_ratio < ratio_lo) {
    ch = int(std::nearbyint(w / ratio_lo));
  } else if (in_ratio > ratio_hi) {
    cw = int(std::nearbyint(h * ratio_hi));
  }
  cw = std::clamp(cw, 1, w);
  ch = std::clamp(ch, 1, h);
  return CropBox{(h - ch) / 2, (w - cw) / 2, ch, cw};
}

std::vector<std::string> augment_preset_names() {
  return {"simclr-cifar", "du-cifar", "fmnist", "eval", "none"};
}

// SimCLR CIFAR recipe with colour strength s: jitter (0.8s, 0.8s, 0.8s, 0.2s) at p = 0.8.
AugmentConfig augment_preset(const std::string& name, const Dataset& ds) {
  AugmentConfig c;
  c.mean = ds.mean();
  c.std = ds.std();
  if (c.mean.empty())
    bad_config("dataset " + ds.name() + " has no Normalize statistics for preset " + name);
  if (name == "simclr-cifar" || name == "du-cifar") {
    const double s = name == "simclr-cifar" ? 0.5 : 1.0;
    c.out_h = c.out_w = 32;
    c.scale_lo = 0.08, c.scale_hi = 1.0;
    c.flip_p = 0.5;
    c.jitter_p = 0.8;
    c.brightness = c.contrast = c.saturation = 0.8 * s;
    c.hue = 0.2 * s;
    c.gray_p = 0.2;
  } else if (name == "fmnist") {
    // 28x28 gray: milder crops (the silhouette is the class), brightness/contrast only. On the
    // fmnist-small budget, crops of at least 70% of the image give the best k-NN; 50%, 20% and 8%
    // each cost about a point more, and no crop at all leaves nothing to learn
    // (scripts/reference_fmnist.py, PyTorch, same model and budget).
    c.out_h = c.out_w = 28;
    c.scale_lo = 0.7, c.scale_hi = 1.0;
    c.flip_p = 0.5;
    c.jitter_p = 0.8;
    c.brightness = c.contrast = 0.4;
  } else if (name == "eval" || name == "none") {
    c.crop = false;
    c.out_h = ds.height(), c.out_w = ds.width();
  } else {
    std::string list;
    for (const auto& n : augment_preset_names()) list += (list.empty() ? "" : ", ") + n;
    bad_config("unknown preset '" + name + "' (known: " + list + ")");
  }
  return c;
}

Augmenter::Augmenter(AugmentConfig cfg, int channels, int height, int width)
    : cfg_(std::move(cfg)), c_(channels), h_(height), w_(width) {
  auto prob = [](double p, const char* what) {
    if (!(p >= 0 && p <= 1))
      bad_config(std::string(what) + " probability " + std::to_string(p) + " outside [0, 1]");
  };
  if (c_ != 1 && c_ != 3) bad_config("images need 1 or 3 channels, got " + std::to_string(c_));
  if (h_ <= 0 || w_ <= 0) bad_config("input image size must be positive");
  if (cfg_.out_h <= 0 || cfg_.out_w <= 0 || cfg_.out_h > 4096 || cfg_.out_w > 4096)
    bad_config("output size " + std::to_string(cfg_.out_h) + "x" + std::to_string(cfg_.out_w) +
               " outside [1, 4096]");
  if (!(cfg_.scale_lo > 0 && cfg_.scale_lo <= cfg_.scale_hi && cfg_.scale_hi <= 1))
    bad_config("crop scale range must satisfy 0 < lo <= hi <= 1");
  if (!(cfg_.ratio_lo > 0 && cfg_.ratio_lo <= cfg_.ratio_hi))
    bad_config("crop ratio range must satisfy 0 < lo <= hi");
  prob(cfg_.flip_p, "flip");
  prob(cfg_.jitter_p, "jitter");
  prob(cfg_.gray_p, "grayscale");
  prob(cfg_.blur_p, "blur");
  prob(cfg_.solarize_p, "solarize");
  if (cfg_.brightness < 0 || cfg_.contrast < 0 || cfg_.saturation < 0)
    bad_config("jitter strengths must be non-negative");
  if (cfg_.hue < 0 || cfg_.hue > 0.5) bad_config("hue strength must be in [0, 0.5]");
  if (cfg_.blur_p > 0) {
    gaussian_kernel(cfg_.blur_kernel, float(cfg_.sigma_lo));
    if (cfg_.sigma_hi < cfg_.sigma_lo) bad_config("blur sigma range must satisfy lo <= hi");
  }
  if (!cfg_.mean.empty() && (int(cfg_.mean.size()) != c_ || int(cfg_.std.size()) != c_))
    bad_config("Normalize needs " + std::to_string(c_) + " means and stds");
}

void Augmenter::apply(const uint8_t* hwc, Generator& gen, float* out, ViewDraws* draws) const {
  ViewDraws d;
  const AugmentConfig& c = cfg_;
  d.box = c.crop ? random_resized_crop_box(h_, w_, c.scale_lo, c.scale_hi, c.ratio_lo, c.ratio_hi,
                                           gen, &d.crop_scale)
                 : CropBox{0, 0, h_, w_};
  d.flip = gen.bernoulli(c.flip_p);
  ImageView v{out, c_, c.out_h, c.out_w};
  resized_crop(hwc, c_, h_, w_, d.box, d.flip, v);

  // ColorJitter: a random order, then factors brightness, contrast, saturation, hue.
  d.jitter = gen.bernoulli(c.jitter_p);
  if (d.jitter) {
    for (int i = 3; i > 0; --i) std::swap(d.order[i], d.order[gen.below(uint64_t(i) + 1)]);
    const double str[3] = {c.brightness, c.contrast, c.saturation};
    for (int j = 0; j < 3; ++j)
      if (str[j] > 0) d.factors[j] = float(gen.uniform(std::max(0.0, 1 - str[j]), 1 + str[j]));
    if (c.hue > 0) d.factors[3] = float(gen.uniform(-c.hue, c.hue));
    for (int op : d.order) {
      if (op == 0 && c.brightness > 0) adjust_brightness(v, d.factors[0]);
      if (op == 1 && c.contrast > 0) adjust_contrast(v, d.factors[1]);
      if (op == 2 && c.saturation > 0) adjust_saturation(v, d.factors[2]);
      if (op == 3 && c.hue > 0) adjust_hue(v, d.factors[3]);
    }
  }
  d.gray = gen.bernoulli(c.gray_p);
  if (d.gray) to_grayscale(v);
  d.blur = gen.bernoulli(c.blur_p);
  if (d.blur) {
    d.sigma = float(gen.uniform(c.sigma_lo, c.sigma_hi));
    gaussian_blur(v, c.blur_kernel, d.sigma);
  }
  d.solarize = gen.bernoulli(c.solarize_p);
  if (d.solarize) solarize(v, float(c.solarize_threshold));
  if (!c.mean.empty()) normalize(v, c.mean, c.std);
  if (draws) *draws = d;
}

}  // namespace ss
