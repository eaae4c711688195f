// Tensors to and from safetensors files (readable by PyTorch's safetensors and by NumPy).
#pragma once
#include <map>
#include <string>

#include "engine/safetensors.h"
#include "engine/tensor.h"

namespace ss {

// A host copy of t as "F32" or "F64".
RawTensor to_raw(const Tensor& t);
// F32 / F64 (and F16 / BF16, widened to float32) into a CPU tensor; `name` names it in errors.
Tensor from_raw(const RawTensor& r, const std::string& name);

// Writes the tensors (atomically: a temporary file, then a rename) with string metadata.
void save_tensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                  const std::map<std::string, std::string>& metadata = {});

struct LoadedTensors {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;
};
LoadedTensors load_tensors(const std::string& path);

}  // namespace ss
