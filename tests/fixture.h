// PyTorch parity fixtures (tests/fixtures/*.safetensors, described in tests/fixtures/README.md):
// loading them as Tensors and comparing with atol + rtol * |ref|.
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/safetensors.h"
#include "engine/tensor.h"

namespace ss::test {

// One fixture file, read and validated once; tensors are converted on request.
class Fixture {
 public:
  // `stem` is the file name in SELFSUP_FIXTURES without ".safetensors", e.g. "conv2d_k3_s1_p1".
  explicit Fixture(const std::string& stem)
      : path_(std::string(SELFSUP_FIXTURES) + "/" + stem + ".safetensors"),
        file_(read_safetensors(path_)) {}

  const std::string& path() const { return path_; }
  bool has(const std::string& name) const { return file_.tensors.count(name) != 0; }

  // A fresh CPU leaf (no autograd history) of the stored F32 or F64 tensor in `dtype`.
  Tensor get(const std::string& name, DType dtype) const {
    const RawTensor& raw = find(name);
    DType stored;
    if (raw.dtype == "F32")
      stored = DType::f32;
    else if (raw.dtype == "F64")
      stored = DType::f64;
    else
      throw std::runtime_error("[fixture] " + path_ + ": tensor '" + name + "' is " + raw.dtype +
                               ", not F32 or F64");
    NoGradGuard no_grad;
    Tensor t = Tensor::from_buffer(raw.bytes.data(), raw.shape, stored);
    return stored == dtype ? t : t.to(dtype).detach();
  }

  // The stored I64 tensor as integers (class labels).
  std::vector<int64_t> labels(const std::string& name) const {
    const RawTensor& raw = find(name);
    if (raw.dtype != "I64")
      throw std::runtime_error("[fixture] " + path_ + ": tensor '" + name + "' is " + raw.dtype +
                               ", not I64");
    std::vector<int64_t> v(raw.bytes.size() / sizeof(int64_t));
    if (!v.empty()) std::memcpy(v.data(), raw.bytes.data(), raw.bytes.size());
    return v;
  }

  const RawTensor& raw(const std::string& name) const { return find(name); }

  // A metadata entry as stored (a string), or as a number.
  std::string meta(const std::string& key) const {
    const auto it = file_.metadata.find(key);
    if (it == file_.metadata.end())
      throw std::runtime_error("[fixture] " + path_ + ": no metadata entry '" + key + "'");
    return it->second;
  }
  double meta_number(const std::string& key) const { return std::stod(meta(key)); }
  int64_t meta_int(const std::string& key) const { return std::stoll(meta(key)); }
  bool meta_bool(const std::string& key) const { return meta(key) == "true"; }

  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& kv : file_.tensors) out.push_back(kv.first);
    return out;
  }

 private:
  const RawTensor& find(const std::string& name) const {
    const auto it = file_.tensors.find(name);
    if (it == file_.tensors.end())
      throw std::runtime_error("[fixture] " + path_ + ": no tensor '" + name + "'");
    return it->second;
  }

  std::string path_;
  SafetensorsFile file_;
};

// Checks shapes are equal and |a - r| <= atol + rtol * |r| elementwise; reports the largest
// absolute and relative differences and the first failing element.
inline void check_close(const std::string& name, const Tensor& actual, const Tensor& ref,
                        double atol, double rtol) {
  INFO("check_close(" << name << ")");
  REQUIRE_MESSAGE(actual.defined(), name << ": the actual tensor is undefined");
  REQUIRE_MESSAGE(ref.defined(), name << ": the reference tensor is undefined");
  CHECK_MESSAGE(actual.shape() == ref.shape(), name << ": shape " << shape_str(actual.shape())
                                                    << " vs reference " << shape_str(ref.shape()));
  if (actual.shape() != ref.shape()) return;

  const std::vector<double> a = actual.to_vector();
  const std::vector<double> r = ref.to_vector();
  double max_abs = 0, max_rel = 0;
  int64_t bad = 0, first_bad = -1;
  for (size_t i = 0; i < a.size(); ++i) {
    const double diff = std::abs(a[i] - r[i]);
    const bool ok = diff <= atol + rtol * std::abs(r[i]);  // false for NaN
    if (std::isnan(diff)) max_abs = std::numeric_limits<double>::quiet_NaN();
    max_abs = std::max(max_abs, diff);
    if (r[i] != 0) max_rel = std::max(max_rel, diff / std::abs(r[i]));
    if (!ok && bad++ == 0) first_bad = int64_t(i);
  }
  MESSAGE(name << " " << shape_str(ref.shape()) << ": max |a - r| = " << max_abs
               << ", max |a - r| / |r| = " << max_rel << " (atol " << atol << ", rtol " << rtol
               << ")");
  CHECK_MESSAGE(bad == 0, name << ": " << bad << " of " << a.size()
                               << " elements out of tolerance; first at flat index " << first_bad
                               << ": " << (first_bad >= 0 ? a[size_t(first_bad)] : 0.0)
                               << " vs reference "
                               << (first_bad >= 0 ? r[size_t(first_bad)] : 0.0));
}

}  // namespace ss::test
