// IDX files (MNIST, Fashion-MNIST): big-endian header checked against the real byte count
// before anything is allocated from it.
#include <stdexcept>
#include <string>

#include "data/dataset.h"
#include "data/io.h"

namespace ss {

namespace {
constexpr uint32_t kIdxImages = 2051;  // 0x00000803: ubyte, 3 dims
constexpr uint32_t kIdxLabels = 2049;  // 0x00000801: ubyte, 1 dim
constexpr uint32_t kMaxSide = 1u << 14;

uint32_t be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}

[[noreturn]] void fail(const std::string& file, const std::string& what) {
  throw std::runtime_error("[idx] " + file + ": " + what);
}

// First existing of dir/name.gz and dir/name.
std::string find_idx(const std::string& dir, const std::string& name, const std::string& tag) {
  for (const std::string& cand : {join_path(dir, name + ".gz"), join_path(dir, name)})
    if (is_regular_file(cand)) return cand;
  throw std::runtime_error("[" + tag + "] " + dir + ": missing " + join_path(dir, name) + "[.gz]");
}
}  // namespace

// Header: 4-byte magic, ndim x u32 dims; payload must be exactly prod(dims) bytes.
IdxArray parse_idx(const uint8_t* data, size_t size, const std::string& file,
                   uint32_t expected_magic) {
  if (size == 0) fail(file, "file is empty");
  if (size < 4) fail(file, "size " + std::to_string(size) + " is shorter than the 4-byte magic");
  const uint32_t magic = be32(data);
  if (magic != expected_magic)
    fail(file, "magic " + std::to_string(magic) + " is not " + std::to_string(expected_magic) +
                   (expected_magic == kIdxImages ? " (IDX images)" : " (IDX labels)"));
  const size_t ndim = data[3];
  const size_t header = 4 + 4 * ndim;
  if (size < header)
    fail(file, "size " + std::to_string(size) + " is shorter than the " + std::to_string(header) +
                   "-byte header");
  IdxArray out;
  uint64_t total = 1;
  for (size_t d = 0; d < ndim; ++d) {
    const uint32_t v = be32(data + 4 + 4 * d);
    if (v == 0) fail(file, "dimension " + std::to_string(d) + " is zero");
    // The product is checked for overflow and bounded by the file size at each step.
    if (__builtin_mul_overflow(total, uint64_t(v), &total) || total > size) {
      fail(file, "dimensions need more than " + std::to_string(size - header) +
                     " data bytes (file size " + std::to_string(size) + ")");
    }
    out.dims.push_back(v);
  }
  if (header + total != size)
    fail(file, "size " + std::to_string(size) + " does not match the header's " +
                   std::to_string(header) + " + " + std::to_string(total) + " bytes");
  out.data.assign(data + header, data + size);
  return out;
}

MemoryDataset make_idx_dataset(const IdxArray& images, const IdxArray& labels,
                               const std::string& images_file, const std::string& labels_file,
                               const std::string& name, int64_t num_classes) {
  if (images.dims.size() != 3) fail(images_file, "images need 3 dimensions (N, H, W)");
  if (labels.dims.size() != 1) fail(labels_file, "labels need 1 dimension (N)");
  const uint32_t n = images.dims[0], h = images.dims[1], w = images.dims[2];
  if (h > kMaxSide || w > kMaxSide)
    fail(images_file, "image size " + std::to_string(h) + "x" + std::to_string(w) +
                          " exceeds the limit " + std::to_string(kMaxSide));
  if (labels.dims[0] != n)
    fail(labels_file, "has " + std::to_string(labels.dims[0]) + " labels but " + images_file +
                          " has " + std::to_string(n) + " images");
  MemoryDataset ds(name, 1, int(h), int(w), num_classes);
  ds.reserve(n);
  const size_t bytes = size_t(h) * w;
  for (uint32_t i = 0; i < n; ++i) {
    const int64_t lab = labels.data[i];
    if (lab >= num_classes)
      fail(labels_file, "label " + std::to_string(lab) + " at index " + std::to_string(i) +
                            " outside [0, " + std::to_string(num_classes) + ")");
    ds.push(images.data.data() + size_t(i) * bytes, lab);
  }
  return ds;
}

MemoryDataset load_idx(const std::string& images_file, const std::string& labels_file,
                       const std::string& name, int64_t num_classes) {
  const std::vector<uint8_t> ib = read_maybe_gz(images_file, "idx");
  const IdxArray images = parse_idx(ib.data(), ib.size(), images_file, kIdxImages);
  const std::vector<uint8_t> lb = read_maybe_gz(labels_file, "idx");
  const IdxArray labels = parse_idx(lb.data(), lb.size(), labels_file, kIdxLabels);
  return make_idx_dataset(images, labels, images_file, labels_file, name, num_classes);
}

MemoryDataset load_fashion_mnist(const std::string& dir, bool train) {
  const std::string p = train ? "train" : "t10k";
  MemoryDataset ds =
      load_idx(find_idx(dir, p + "-images-idx3-ubyte", "fashion-mnist"),
               find_idx(dir, p + "-labels-idx1-ubyte", "fashion-mnist"), "fashion-mnist", 10);
  ds.set_class_names({"t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                      "sneaker", "bag", "ankle boot"});
  ds.set_stats({0.2860f}, {0.3530f});
  return ds;
}

MemoryDataset load_mnist(const std::string& dir, bool train) {
  const std::string p = train ? "train" : "t10k";
  MemoryDataset ds = load_idx(find_idx(dir, p + "-images-idx3-ubyte", "mnist"),
                              find_idx(dir, p + "-labels-idx1-ubyte", "mnist"), "mnist", 10);
  ds.set_class_names({"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"});
  ds.set_stats({0.1307f}, {0.3081f});
  return ds;
}

}  // namespace ss
