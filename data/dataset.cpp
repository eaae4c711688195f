// MemoryDataset storage, statistics and channel expansion.
#include "data/dataset.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace ss {

MemoryDataset::MemoryDataset(std::string name, int channels, int height, int width,
                             int64_t num_classes)
    : name_(std::move(name)),
      channels_(channels),
      height_(height),
      width_(width),
      num_classes_(num_classes) {
  if (channels != 1 && channels != 3)
    throw std::invalid_argument("[dataset] " + name_ + ": channels must be 1 or 3, got " +
                                std::to_string(channels));
  if (height <= 0 || width <= 0)
    throw std::invalid_argument("[dataset] " + name_ + ": image size " + std::to_string(height) +
                                "x" + std::to_string(width) + " must be positive");
}

// Pointer to image n: pixels + n * H * W * C.
const uint8_t* MemoryDataset::image(int64_t n) const {
  if (n < 0 || n >= size())
    throw std::out_of_range("[dataset] " + name_ + ": image index " + std::to_string(n) +
                            " outside [0, " + std::to_string(size()) + ")");
  return pixels_.data() + size_t(n) * image_bytes();
}

int64_t MemoryDataset::label(int64_t n) const {
  if (n < 0 || n >= size())
    throw std::out_of_range("[dataset] " + name_ + ": label index " + std::to_string(n) +
                            " outside [0, " + std::to_string(size()) + ")");
  return labels_[size_t(n)];
}

// Appends image_bytes() bytes and a label in [0, num_classes).
void MemoryDataset::push(const uint8_t* hwc, int64_t label) {
  if (label < 0 || label >= num_classes_)
    throw std::invalid_argument("[dataset] " + name_ + ": label " + std::to_string(label) +
                                " outside [0, " + std::to_string(num_classes_) + ")");
  pixels_.insert(pixels_.end(), hwc, hwc + image_bytes());
  labels_.push_back(label);
}

void MemoryDataset::reserve(int64_t n) {
  pixels_.reserve(size_t(n) * image_bytes());
  labels_.reserve(size_t(n));
}

void MemoryDataset::set_stats(std::vector<float> mean, std::vector<float> std) {
  if (int(mean.size()) != channels_ || int(std.size()) != channels_)
    throw std::invalid_argument("[dataset] " + name_ + ": statistics need " +
                                std::to_string(channels_) + " values per channel");
  for (float s : std)
    if (!(s > 0)) throw std::invalid_argument("[dataset] " + name_ + ": std must be positive");
  mean_ = std::move(mean);
  std_ = std::move(std);
}

// mean_c = sum x / (255 M), std_c = sqrt(E[(x/255)^2] - mean_c^2), M pixels per channel.
void MemoryDataset::compute_stats() {
  std::vector<double> s(size_t(channels_), 0.0), s2(size_t(channels_), 0.0);
  const size_t total = pixels_.size();
  for (size_t i = 0; i < total; ++i) {
    const double x = pixels_[i] / 255.0;
    s[i % size_t(channels_)] += x;
    s2[i % size_t(channels_)] += x * x;
  }
  const double m = total ? double(total / size_t(channels_)) : 1.0;
  std::vector<float> mean, std;
  for (int c = 0; c < channels_; ++c) {
    const double mu = s[size_t(c)] / m;
    const double var = s2[size_t(c)] / m - mu * mu;
    mean.push_back(float(mu));
    std.push_back(float(std::sqrt(var > 1e-12 ? var : 1.0)));
  }
  set_stats(mean, std);
}

// (gray) -> (gray, gray, gray) per pixel; statistics are repeated per channel.
MemoryDataset expand_to_rgb(const MemoryDataset& ds) {
  if (ds.channels() != 1) return ds;
  MemoryDataset out(ds.name(), 3, ds.height(), ds.width(), ds.num_classes());
  out.reserve(ds.size());
  std::vector<uint8_t> rgb(out.image_bytes());
  const size_t hw = size_t(ds.height()) * size_t(ds.width());
  for (int64_t n = 0; n < ds.size(); ++n) {
    const uint8_t* g = ds.image(n);
    for (size_t i = 0; i < hw; ++i) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = g[i];
    out.push(rgb.data(), ds.label(n));
  }
  out.set_class_names(ds.class_names());
  if (!ds.mean().empty())
    out.set_stats(std::vector<float>(3, ds.mean()[0]), std::vector<float>(3, ds.std()[0]));
  return out;
}

}  // namespace ss
