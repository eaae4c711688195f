// Image folders decoded with stb_image: root/<class>/<file>, every image forced to 8-bit RGB and
// resized to one size.
#include <stb/stb_image.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

#include "data/augment.h"
#include "data/dataset.h"
#include "data/io.h"

namespace ss {

namespace {
constexpr int64_t kMaxPixels = int64_t(1) << 26;  // 64 Mpixel: refuse before decoding
constexpr int kMaxOutSide = 4096;

struct StbFree {
  void operator()(stbi_uc* p) const { stbi_image_free(p); }
};

bool has_image_extension(const std::filesystem::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char ch) { return char(std::tolower(ch)); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("[image] " + path + ": " + what);
}
}  // namespace

// stbi_info first, so an absurd header is refused before any pixel buffer exists.
std::vector<uint8_t> decode_image(const uint8_t* data, size_t size, const std::string& file,
                                  int out_h, int out_w) {
  if (out_h <= 0 || out_w <= 0 || out_h > kMaxOutSide || out_w > kMaxOutSide)
    fail(file, "output size " + std::to_string(out_h) + "x" + std::to_string(out_w) +
                   " outside [1, " + std::to_string(kMaxOutSide) + "]");
  if (size == 0) fail(file, "file is empty");
  if (size > size_t(INT32_MAX)) fail(file, "file larger than 2 GiB");
  int w = 0, h = 0, comp = 0;
  if (!stbi_info_from_memory(data, int(size), &w, &h, &comp))
    fail(file, std::string("cannot decode (") + stbi_failure_reason() + ")");
  if (w <= 0 || h <= 0 || int64_t(w) * int64_t(h) > kMaxPixels)
    fail(file, "image size " + std::to_string(w) + "x" + std::to_string(h) +
                   " is zero or above the limit of " + std::to_string(kMaxPixels) + " pixels");
  std::unique_ptr<stbi_uc, StbFree> px(stbi_load_from_memory(data, int(size), &w, &h, &comp, 3));
  if (!px) fail(file, std::string("cannot decode (") + stbi_failure_reason() + ")");
  std::vector<uint8_t> out(size_t(out_h) * size_t(out_w) * 3);
  if (w == out_w && h == out_h)
    std::copy(px.get(), px.get() + out.size(), out.begin());
  else
    resize_u8(px.get(), 3, h, w, out.data(), out_h, out_w);
  return out;
}

MemoryDataset load_image_folder(const std::string& root, int out_h, int out_w) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) fail(root, "not a folder");
  std::vector<fs::path> classes;
  for (const auto& e : fs::directory_iterator(root, ec))
    if (e.is_directory()) classes.push_back(e.path());
  std::sort(classes.begin(), classes.end());
  if (classes.empty()) fail(root, "no class subfolders");

  std::vector<std::pair<fs::path, int64_t>> files;
  std::vector<std::string> names;
  for (size_t k = 0; k < classes.size(); ++k) {
    std::vector<fs::path> imgs;
    for (const auto& e : fs::directory_iterator(classes[k], ec))
      if (e.is_regular_file() && has_image_extension(e.path())) imgs.push_back(e.path());
    std::sort(imgs.begin(), imgs.end());
    if (imgs.empty())
      fail(classes[k].string(), "no images (.png, .jpg, .jpeg, .bmp) in this class folder");
    for (const auto& p : imgs) files.emplace_back(p, int64_t(k));
    names.push_back(classes[k].filename().string());
  }
  if (files.empty()) fail(root, "no images (.png, .jpg, .jpeg, .bmp) in any class subfolder");

  MemoryDataset ds("folder:" + root, 3, out_h, out_w, int64_t(classes.size()));
  ds.reserve(int64_t(files.size()));
  for (const auto& [path, label] : files) {
    const std::vector<uint8_t> bytes = read_file_bytes(path.string(), "image");
    const std::vector<uint8_t> rgb =
        decode_image(bytes.data(), bytes.size(), path.string(), out_h, out_w);
    ds.push(rgb.data(), label);
  }
  ds.set_class_names(names);
  ds.compute_stats();
  return ds;
}

}  // namespace ss
