// CIFAR-10 / CIFAR-100 binary batches: fixed-size records, planar RGB converted to HWC.
#include <stdexcept>
#include <string>

#include "data/dataset.h"
#include "data/io.h"

namespace ss {

namespace {
constexpr int kCifarSide = 32;
constexpr size_t kCifarPlane = size_t(kCifarSide) * kCifarSide;  // 1024 bytes per channel

const std::vector<std::string>& cifar10_names() {
  static const std::vector<std::string> names = {
      "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
  return names;
}

const char* tag(CifarKind kind) {
  return kind == CifarKind::cifar10 ? "cifar" : "cifar100";
}
}  // namespace

// 1 label byte (CIFAR-10) or 2 (coarse, fine: CIFAR-100), then 3 planes of 1024 bytes.
size_t cifar_record_bytes(CifarKind kind) {
  return (kind == CifarKind::cifar10 ? 1 : 2) + 3 * kCifarPlane;
}

MemoryDataset make_cifar_dataset(const CifarOptions& opt) {
  const bool c10 = opt.kind == CifarKind::cifar10;
  const int64_t classes = c10 ? 10 : (opt.coarse ? 20 : 100);
  MemoryDataset ds(c10 ? "cifar10" : "cifar100", 3, kCifarSide, kCifarSide, classes);
  if (c10) {
    ds.set_class_names(cifar10_names());
    ds.set_stats({0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f});
  } else {
    ds.set_stats({0.5071f, 0.4865f, 0.4409f}, {0.2673f, 0.2564f, 0.2762f});
  }
  return ds;
}

// hwc[(y*32 + x)*3 + c] = planar[c*1024 + y*32 + x]: a transpose, not a reshape (B19).
void parse_cifar(const uint8_t* data, size_t size, const std::string& file, const CifarOptions& opt,
                 MemoryDataset& ds) {
  const size_t rec = cifar_record_bytes(opt.kind);
  const std::string t = tag(opt.kind);
  if (size == 0) throw std::runtime_error("[" + t + "] " + file + ": file is empty");
  if (size % rec != 0)
    throw std::runtime_error("[" + t + "] " + file + ": size " + std::to_string(size) +
                             " is not a multiple of the record size " + std::to_string(rec));
  const size_t n = size / rec;
  const size_t label_bytes = rec - 3 * kCifarPlane;
  uint8_t hwc[3 * kCifarPlane];
  ds.reserve(ds.size() + int64_t(n));
  for (size_t r = 0; r < n; ++r) {
    const uint8_t* p = data + r * rec;
    // CIFAR-100 record: coarse byte, fine byte.
    const int64_t label =
        (opt.kind == CifarKind::cifar100 && opt.coarse) ? p[0] : p[label_bytes - 1];
    if (label >= ds.num_classes())
      throw std::runtime_error("[" + t + "] " + file + ": record " + std::to_string(r) +
                               " has label " + std::to_string(label) + " outside [0, " +
                               std::to_string(ds.num_classes()) + ")");
    const uint8_t* planes = p + label_bytes;
    for (size_t i = 0; i < kCifarPlane; ++i) {
      hwc[3 * i + 0] = planes[i];
      hwc[3 * i + 1] = planes[kCifarPlane + i];
      hwc[3 * i + 2] = planes[2 * kCifarPlane + i];
    }
    ds.push(hwc, label);
  }
}

std::vector<std::string> cifar_standard_files(const std::string& dir, CifarKind kind, bool train) {
  std::vector<std::string> names;
  if (kind == CifarKind::cifar10) {
    if (train)
      for (int i = 1; i <= 5; ++i) names.push_back("data_batch_" + std::to_string(i) + ".bin");
    else
      names.push_back("test_batch.bin");
  } else {
    names.push_back(train ? "train.bin" : "test.bin");
  }
  std::vector<std::string> files, missing;
  for (const auto& nm : names) {
    const std::string path = join_path(dir, nm);
    (is_regular_file(path) ? files : missing).push_back(path);
  }
  if (!missing.empty()) {
    std::string list;
    for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
    throw std::runtime_error("[" + std::string(tag(kind)) + "] " + dir + ": missing " + list +
                             " (pass an explicit list of batch files to use others)");
  }
  return files;
}

MemoryDataset load_cifar(const std::vector<std::string>& files, const CifarOptions& opt) {
  if (files.empty()) throw std::invalid_argument("[" + std::string(tag(opt.kind)) + "] no files");
  MemoryDataset ds = make_cifar_dataset(opt);
  for (const auto& f : files) {
    if (!is_regular_file(f))
      throw std::runtime_error("[" + std::string(tag(opt.kind)) + "] " + f + ": no such file");
    const std::vector<uint8_t> bytes = read_file_bytes(f, tag(opt.kind));
    parse_cifar(bytes.data(), bytes.size(), f, opt, ds);
  }
  return ds;
}

MemoryDataset load_cifar(const std::string& path, bool train, const CifarOptions& opt) {
  if (is_regular_file(path)) return load_cifar(std::vector<std::string>{path}, opt);
  return load_cifar(cifar_standard_files(path, opt.kind, train), opt);
}

}  // namespace ss
