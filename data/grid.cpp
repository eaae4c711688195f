// augment_grid: a PNG of K augmented views per image, for people to look at the augmentations.
#include <stb/stb_image_write.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "data/loader.h"

namespace ss {

namespace {
constexpr int kPad = 2;           // white pixels between tiles
constexpr int kMinTileSide = 96;  // upscale (nearest) until a tile is at least this big

// Pixel (y, x) of a normalised CHW view back to 8-bit RGB: x * std + mean, x 255, rounded.
void draw_tile(const float* chw, int c, int h, int w, const AugmentConfig& cfg, int zoom,
               uint8_t* canvas, int canvas_w, int oy, int ox) {
  const size_t plane = size_t(h) * size_t(w);
  for (int y = 0; y < h * zoom; ++y)
    for (int x = 0; x < w * zoom; ++x) {
      const size_t src = size_t(y / zoom) * size_t(w) + size_t(x / zoom);
      uint8_t* dst = canvas + (size_t(oy + y) * size_t(canvas_w) + size_t(ox + x)) * 3;
      for (int k = 0; k < 3; ++k) {
        const int ch = c == 1 ? 0 : k;
        float v = chw[size_t(ch) * plane + src];
        if (!cfg.mean.empty()) v = v * cfg.std[size_t(ch)] + cfg.mean[size_t(ch)];
        dst[k] = uint8_t(std::lround(std::clamp(v, 0.f, 1.f) * 255.f));
      }
    }
}
}  // namespace

void augment_grid(const Dataset& ds, const std::string& preset, int K, int count, uint64_t seed,
                  const std::string& out_path) {
  augment_grid(ds, augment_preset(preset, ds), K, count, seed, out_path);
}

// Row r: image r un-augmented (eval preset, resized to the view size), then views 0..K-1.
void augment_grid(const Dataset& ds, const AugmentConfig& cfg, int K, int count, uint64_t seed,
                  const std::string& out_path) {
  if (K <= 0 || count <= 0)
    throw std::invalid_argument("[augment] grid needs K > 0 and count > 0, got K = " +
                                std::to_string(K) + ", count = " + std::to_string(count));
  count = int(std::min<int64_t>(count, ds.size()));
  LoaderOptions o;
  o.batch_size = count;
  o.views = K;
  o.workers = 1;
  o.shuffle = false;
  o.drop_last = false;
  o.seed = seed;
  const Loader views(ds, cfg, o);
  AugmentConfig plain = augment_preset("eval", ds);
  plain.out_h = cfg.out_h, plain.out_w = cfg.out_w;
  plain.mean = cfg.mean, plain.std = cfg.std;
  o.views = 1;
  const Loader originals(ds, plain, o);

  std::vector<int64_t> idx(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) idx[size_t(i)] = i;
  Batch b, orig;
  views.make_batch(idx, 0, 0, b);
  originals.make_batch(idx, 0, 0, orig);

  const int h = int(b.H), w = int(b.W), c = int(b.C);
  const int zoom = std::max(1, kMinTileSide / std::max(h, w));
  const int th = h * zoom, tw = w * zoom;
  const int cols = K + 1;
  const int cw = cols * tw + (cols + 1) * kPad, chh = count * th + (count + 1) * kPad;
  std::vector<uint8_t> canvas(size_t(cw) * size_t(chh) * 3, 255);
  const size_t per = size_t(c) * size_t(h) * size_t(w);
  for (int r = 0; r < count; ++r) {
    const int oy = kPad + r * (th + kPad);
    draw_tile(orig.images.data() + size_t(r) * per, c, h, w, plain, zoom, canvas.data(), cw, oy,
              kPad);
    for (int k = 0; k < K; ++k) {
      const float* v = b.images.data() + (size_t(k) * size_t(count) + size_t(r)) * per;
      draw_tile(v, c, h, w, cfg, zoom, canvas.data(), cw, oy, kPad + (k + 1) * (tw + kPad));
    }
  }
  if (!stbi_write_png(out_path.c_str(), cw, chh, 3, canvas.data(), cw * 3))
    throw std::runtime_error("[augment] " + out_path + ": cannot write the PNG grid");
}

}  // namespace ss
