// Datasets: labelled 8-bit images held in memory, interleaved HWC, plus the readers for CIFAR,
// IDX (MNIST / Fashion-MNIST) and image folders.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ss {

// A labelled image collection. image(n) points at height*width*channels bytes, HWC interleaved.
class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual int64_t num_classes() const = 0;
  virtual int channels() const = 0;
  virtual int height() const = 0;
  virtual int width() const = 0;
  virtual const uint8_t* image(int64_t n) const = 0;
  virtual int64_t label(int64_t n) const = 0;
  // Class names in label order; empty when unknown.
  virtual const std::vector<std::string>& class_names() const = 0;
  // Per-channel mean and std on the [0, 1] scale, used by the Normalize step of the presets.
  virtual const std::vector<float>& mean() const = 0;
  virtual const std::vector<float>& std() const = 0;
  virtual const std::string& name() const = 0;
};

// The one concrete dataset: every reader below fills one of these.
class MemoryDataset : public Dataset {
 public:
  MemoryDataset() = default;
  MemoryDataset(std::string name, int channels, int height, int width, int64_t num_classes);

  int64_t size() const override { return int64_t(labels_.size()); }
  int64_t num_classes() const override { return num_classes_; }
  int channels() const override { return channels_; }
  int height() const override { return height_; }
  int width() const override { return width_; }
  const uint8_t* image(int64_t n) const override;
  int64_t label(int64_t n) const override;
  const std::vector<std::string>& class_names() const override { return class_names_; }
  const std::vector<float>& mean() const override { return mean_; }
  const std::vector<float>& std() const override { return std_; }
  const std::string& name() const override { return name_; }

  size_t image_bytes() const { return size_t(channels_) * size_t(height_) * size_t(width_); }
  // Appends one image (image_bytes() bytes, HWC) with its label; the label must be in range.
  void push(const uint8_t* hwc, int64_t label);
  void reserve(int64_t n);
  void set_class_names(std::vector<std::string> names) { class_names_ = std::move(names); }
  void set_num_classes(int64_t c) { num_classes_ = c; }
  // Sets the Normalize statistics; when never called they are computed from the pixels.
  void set_stats(std::vector<float> mean, std::vector<float> std);
  // mean_c = sum x / (255 M), std_c = sqrt(sum x^2 / (255^2 M) - mean_c^2) over M pixels.
  void compute_stats();
  const std::vector<uint8_t>& pixels() const { return pixels_; }

 private:
  std::string name_;
  int channels_ = 0, height_ = 0, width_ = 0;
  int64_t num_classes_ = 0;
  std::vector<uint8_t> pixels_;
  std::vector<int64_t> labels_;
  std::vector<std::string> class_names_;
  std::vector<float> mean_, std_;
};

// Copies a 1-channel dataset to 3 equal channels (R = G = B = gray); others are returned as is.
MemoryDataset expand_to_rgb(const MemoryDataset& ds);

// --- CIFAR -------------------------------------------------------------------------------------

enum class CifarKind { cifar10, cifar100 };

struct CifarOptions {
  CifarKind kind = CifarKind::cifar10;
  bool coarse = false;  // CIFAR-100: 20 coarse labels instead of the 100 fine ones
};

// Record: [coarse] label bytes then 1024 R, 1024 G, 1024 B bytes (32x32 planes, row-major).
size_t cifar_record_bytes(CifarKind kind);
// The standard file names in dir: data_batch_1..5.bin / test_batch.bin (CIFAR-10) or
// train.bin / test.bin (CIFAR-100). Throws naming every missing file.
std::vector<std::string> cifar_standard_files(const std::string& dir, CifarKind kind, bool train);
// Parses one in-memory batch file and appends its records to ds (created by make_cifar_dataset).
void parse_cifar(const uint8_t* data, size_t size, const std::string& file, const CifarOptions& opt,
                 MemoryDataset& ds);
MemoryDataset make_cifar_dataset(const CifarOptions& opt);
// Reads the given batch files in order.
MemoryDataset load_cifar(const std::vector<std::string>& files, const CifarOptions& opt = {});
// path is a folder (standard names) or one .bin file.
MemoryDataset load_cifar(const std::string& path, bool train, const CifarOptions& opt = {});

// --- IDX (MNIST, Fashion-MNIST) ----------------------------------------------------------------

// An IDX array of unsigned bytes: magic 0x0000 08 ndim, ndim big-endian u32 dims, then data.
struct IdxArray {
  std::vector<uint32_t> dims;
  std::vector<uint8_t> data;
};

// Parses an IDX ubyte array with the expected magic (2051 images, 2049 labels).
IdxArray parse_idx(const uint8_t* data, size_t size, const std::string& file,
                   uint32_t expected_magic);
// Reads a file, gzipped or not (zlib), refusing anything above max_bytes once decompressed.
std::vector<uint8_t> read_maybe_gz(const std::string& path, const std::string& tag,
                                   size_t max_bytes = size_t(1) << 31);
// Pairs an images file (N x H x W) with a labels file (N); labels must be < num_classes.
MemoryDataset load_idx(const std::string& images_file, const std::string& labels_file,
                       const std::string& name, int64_t num_classes);
MemoryDataset make_idx_dataset(const IdxArray& images, const IdxArray& labels,
                               const std::string& images_file, const std::string& labels_file,
                               const std::string& name, int64_t num_classes);

inline const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";
// train-images-idx3-ubyte[.gz] etc. in dir; class names and statistics of Fashion-MNIST.
MemoryDataset load_fashion_mnist(const std::string& dir = kFashionMnistDir, bool train = true);
MemoryDataset load_mnist(const std::string& dir, bool train = true);

// --- image folders -----------------------------------------------------------------------------

// Decodes PNG / JPEG / BMP bytes with stb_image to 8-bit RGB (gray, gray+alpha, palette, RGBA and
// 16-bit all become 3 channels; alpha is dropped), resized to out_h x out_w.
std::vector<uint8_t> decode_image(const uint8_t* data, size_t size, const std::string& file,
                                  int out_h, int out_w);
// root/<class>/<image>: classes are the sorted subfolder names, images their sorted files with
// extension .png, .jpg, .jpeg or .bmp (any case).
MemoryDataset load_image_folder(const std::string& root, int out_h, int out_w);

}  // namespace ss
