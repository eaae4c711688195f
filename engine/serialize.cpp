#include "engine/serialize.h"

#include <cstring>
#include <stdexcept>

namespace ss {

RawTensor to_raw(const Tensor& t) {
  Tensor host = t.device() == Device::cpu ? t : t.to(Device::cpu);
  RawTensor r;
  r.dtype = t.dtype() == DType::f32 ? "F32" : "F64";
  r.shape = t.shape();
  r.bytes.resize(t.nbytes());
  if (!r.bytes.empty()) std::memcpy(r.bytes.data(), host.raw_data(), r.bytes.size());
  return r;
}

namespace {
// IEEE half / bfloat16 bits to float.
float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      int e = -1;
      uint32_t m = man;
      do {
        ++e;
        m <<= 1;
      } while (!(m & 0x400));
      bits = sign | uint32_t(127 - 15 - e) << 23 | (m & 0x3ff) << 13;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000 | man << 13;
  } else {
    bits = sign | (exp + 127 - 15) << 23 | man << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
}  // namespace

Tensor from_raw(const RawTensor& r, const std::string& name) {
  const int64_t n = shape_numel(r.shape);
  if (r.dtype == "F32" || r.dtype == "F64") {
    const DType dt = r.dtype == "F32" ? DType::f32 : DType::f64;
    if (r.bytes.size() != size_t(n) * dtype_size(dt))
      throw std::runtime_error("[safetensors] tensor '" + name +
                               "': " + std::to_string(r.bytes.size()) + " bytes for shape " +
                               shape_str(r.shape));
    return Tensor::from_buffer(r.bytes.data(), r.shape, dt);
  }
  if (r.dtype == "F16" || r.dtype == "BF16") {
    if (r.bytes.size() != size_t(n) * 2)
      throw std::runtime_error("[safetensors] tensor '" + name +
                               "': " + std::to_string(r.bytes.size()) + " bytes for shape " +
                               shape_str(r.shape));
    Tensor t = Tensor::empty(r.shape, DType::f32);
    float* p = t.data<float>();
    for (int64_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, r.bytes.data() + 2 * i, 2);
      if (r.dtype == "F16") {
        p[i] = half_to_float(h);
      } else {
        const uint32_t bits = uint32_t(h) << 16;
        std::memcpy(&p[i], &bits, 4);
      }
    }
    return t;
  }
  throw std::runtime_error("[safetensors] tensor '" + name + "' has dtype " + r.dtype +
                           "; only F32, F64, F16 and BF16 become tensors");
}

void save_tensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                  const std::map<std::string, std::string>& metadata) {
  SafetensorsFile f;
  for (const auto& [k, t] : tensors) f.tensors[k] = to_raw(t);
  f.metadata = metadata;
  write_safetensors(path, f);
}

LoadedTensors load_tensors(const std::string& path) {
  SafetensorsFile f = read_safetensors(path);
  LoadedTensors out;
  for (const auto& [k, r] : f.tensors) out.tensors[k] = from_raw(r, path + ": " + k);
  out.metadata = std::move(f.metadata);
  return out;
}

}  // namespace ss
