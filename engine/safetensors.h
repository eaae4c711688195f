// safetensors files: an 8-byte little-endian header length N, N bytes of JSON, then the raw
// little-endian tensor data. The JSON maps each tensor name to {"dtype", "shape",
// "data_offsets": [begin, end]} (offsets relative to the start of the data buffer) and may hold
// a "__metadata__" object of string -> string.
//
// This level is independent of Tensor: a RawTensor is the dtype string, the shape and the bytes
// exactly as stored (little-endian). The reader validates everything the file claims before it
// touches the data (header length cap, offsets that tile the buffer, sizes with overflow
// checks), so a truncated or hostile file gives an error naming the file, never a bad read.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace ss {

struct RawTensor {
  std::string dtype;  // "F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", ...
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;  // numel * element size bytes, little-endian
};

struct SafetensorsFile {
  std::map<std::string, RawTensor> tensors;
  std::map<std::string, std::string> metadata;
};

// The largest header the reader accepts (as the reference implementation).
constexpr uint64_t kSafetensorsMaxHeader = 100'000'000;

// Bytes per element of a safetensors dtype name; 0 when the name is unknown.
size_t safetensors_dtype_size(const std::string& dtype);

// Reads and validates a whole file. Throws std::runtime_error naming the file and what is wrong.
SafetensorsFile read_safetensors(const std::string& path);

// Validates and decodes an in-memory file of `size` bytes; `name_for_errors` names it in errors.
SafetensorsFile parse_safetensors(const uint8_t* data, size_t size,
                                  const std::string& name_for_errors);

// The bytes of a file holding `file`: keys sorted, offsets contiguous from 0 in key order,
// header starting with '{' and space-padded to a multiple of 8. Throws std::invalid_argument
// when a tensor is inconsistent (unknown dtype, negative dimension, wrong byte count).
std::vector<uint8_t> serialize_safetensors(const SafetensorsFile& file,
                                           const std::string& name_for_errors);

// Writes serialize_safetensors(file) to path + ".tmp", then renames it over `path`, so a
// reader never sees a half-written file.
void write_safetensors(const std::string& path, const SafetensorsFile& file);

}  // namespace ss
