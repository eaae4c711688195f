// Augmentations with torchvision's semantics, on float CHW images in [0, 1]; the random pipeline
// that draws every choice for (image, epoch, view) from one derived Generator.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/random.h"

namespace ss {

class Dataset;

// A float CHW image that the ops modify in place.
struct ImageView {
  float* data;
  int c, h, w;
  size_t plane() const { return size_t(h) * size_t(w); }
  float* channel(int k) const { return data + size_t(k) * plane(); }
};

// Grayscale weights (ITU-R 601, as PIL; torchvision's tensor path uses 0.2989 for red).
inline constexpr float kGrayR = 0.299f, kGrayG = 0.587f, kGrayB = 0.114f;
inline float gray_level(float r, float g, float b) {
  return kGrayR * r + kGrayG * g + kGrayB * b;
}
// PIL's 8-bit rule: L = (19595 R + 38470 G + 7471 B + 2^15) >> 16.
inline uint8_t gray_u8(uint8_t r, uint8_t g, uint8_t b) {
  return uint8_t((19595u * r + 38470u * g + 7471u * b + 32768u) >> 16);
}

// Crop box in source pixels.
struct CropBox {
  int top = 0, left = 0, height = 0, width = 0;
};

// Separable resampling table for one axis: out[i] = sum_t weight[i*taps+t] * in[index[i*taps+t]].
struct ResampleAxis {
  int taps = 0;
  std::vector<int> index;
  std::vector<float> weight;
};
// Upscaling (out >= in): bilinear, align_corners=False, src = max((i+0.5) in/out - 0.5, 0).
// Downscaling: triangle filter of support in/out (torchvision antialias=True). flip mirrors out.
ResampleAxis resample_axis(int in_size, int out_size, bool flip = false);

// x / 255, HWC bytes to CHW floats (B19).
void to_float_chw(const uint8_t* hwc, int c, int h, int w, float* out);
// Crops box from an HWC byte image of size h x w and resizes it into out (CHW floats in [0, 1]).
void resized_crop(const uint8_t* hwc, int c, int h, int w, const CropBox& box, bool flip,
                  ImageView out);
// Same for a whole image, HWC bytes to HWC bytes (rounded), for decoding image folders.
void resize_u8(const uint8_t* in, int c, int h, int w, uint8_t* out, int oh, int ow);

void hflip(ImageView img);
// clamp(f x, 0, 1).
void adjust_brightness(ImageView img, float f);
// clamp(f x + (1-f) m, 0, 1), m = mean gray level of the image (mean of x for 1 channel) (B13).
void adjust_contrast(ImageView img, float f);
// clamp(f x + (1-f) gray(x), 0, 1) per pixel; 1 channel: unchanged.
void adjust_saturation(ImageView img, float f);
// h' = (h + shift) mod 1 in HSV, as torchvision's _rgb2hsv / _hsv2rgb; 1 channel: unchanged.
void adjust_hue(ImageView img, float shift);
// R = G = B = 0.299 R + 0.587 G + 0.114 B; 1 channel: unchanged (B14).
void to_grayscale(ImageView img);
// exp(-x^2 / (2 sigma^2)) at x = -(size/2) .. size/2, normalised to sum 1 (B16).
std::vector<float> gaussian_kernel(int size, float sigma);
// Separable blur, reflect padding (mirror without repeating the edge), as torchvision.
void gaussian_blur(ImageView img, int size, float sigma);
// x >= t ? 1 - x : x (B17).
void solarize(ImageView img, float threshold);
// 8-bit: x >= t ? 255 - x : x.
void solarize_u8(uint8_t* px, size_t n, int threshold);
// (x - mean_c) / std_c.
void normalize(ImageView img, const std::vector<float>& mean, const std::vector<float>& std);

// torchvision RandomResizedCrop.get_params: area A U(scale), ratio exp(U(ln r0, ln r1)),
// w = round(sqrt(A r)), h = round(sqrt(A / r)), 10 tries, then the centred fallback (B15).
// first_scale, when given, receives the first try's scale draw.
CropBox random_resized_crop_box(int h, int w, double scale_lo, double scale_hi, double ratio_lo,
                                double ratio_hi, Generator& gen, double* first_scale = nullptr);

struct AugmentConfig {
  int out_h = 32, out_w = 32;
  bool crop = true;  // RandomResizedCrop; false resizes the whole image to out_h x out_w
  double scale_lo = 0.08, scale_hi = 1.0;
  double ratio_lo = 3.0 / 4.0, ratio_hi = 4.0 / 3.0;
  double flip_p = 0.0;
  double jitter_p = 0.0;  // RandomApply([ColorJitter], p)
  double brightness = 0, contrast = 0, saturation = 0, hue = 0;
  double gray_p = 0.0;
  double blur_p = 0.0;
  int blur_kernel = 3;
  double sigma_lo = 0.1, sigma_hi = 2.0;
  double solarize_p = 0.0;
  double solarize_threshold = 0.5;
  std::vector<float> mean, std;  // Normalize; empty = none
};

// Named presets: "simclr-cifar", "du-cifar", "fmnist", "eval" (alias "none"). Output size and
// Normalize statistics come from the dataset.
AugmentConfig augment_preset(const std::string& name, const Dataset& ds);
std::vector<std::string> augment_preset_names();

// What one view drew, for probes and debugging.
struct ViewDraws {
  double crop_scale = -1;  // first RandomResizedCrop scale draw
  CropBox box;
  bool flip = false, jitter = false, gray = false, blur = false, solarize = false;
  int order[4] = {0, 1, 2, 3};  // jitter order: 0 brightness, 1 contrast, 2 saturation, 3 hue
  float factors[4] = {1, 1, 1, 0};
  float sigma = 0;
};

class Augmenter {
 public:
  // Checks the configuration against the image shape (c, h, w).
  Augmenter(AugmentConfig cfg, int channels, int height, int width);
  const AugmentConfig& config() const { return cfg_; }
  int out_channels() const { return c_; }
  size_t out_numel() const { return size_t(c_) * size_t(cfg_.out_h) * size_t(cfg_.out_w); }
  // One view of an HWC byte image into out (out_numel() floats). Draw order: crop, flip, jitter
  // (apply, order, factors), grayscale, blur (apply, sigma), solarize.
  void apply(const uint8_t* hwc, Generator& gen, float* out, ViewDraws* draws = nullptr) const;

 private:
  AugmentConfig cfg_;
  int c_, h_, w_;
};

}  // namespace ss
