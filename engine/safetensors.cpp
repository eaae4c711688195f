#include "engine/safetensors.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

namespace ss {
namespace {

using json = nlohmann::json;

constexpr const char* kMetadataKey = "__metadata__";

// A JSON value for an error message, cut short so a hostile header cannot flood the message.
std::string brief(const json& v) {
  constexpr size_t kMax = 80;
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > kMax) s = s.substr(0, kMax) + "...";
  return s;
}

[[noreturn]] void fail(const std::string& file, const std::string& what) {
  throw std::runtime_error("[safetensors] " + file + ": " + what);
}

[[noreturn]] void fail_tensor(const std::string& file, const std::string& tensor,
                              const std::string& what) {
  fail(file, "tensor '" + tensor + "': " + what);
}

uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// One tensor entry of the header, validated on its own (not yet against the others).
struct Entry {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

// A JSON value that must be a non-negative integer; `what` names it in the error.
uint64_t non_negative_int(const json& v, const std::string& file, const std::string& tensor,
                          const std::string& what) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return uint64_t(v.get<int64_t>());
  fail_tensor(file, tensor, what + " must be a non-negative integer, got " + brief(v));
}

std::vector<int64_t> parse_shape(const json& v, const std::string& file,
                                 const std::string& tensor) {
  if (!v.is_array()) fail_tensor(file, tensor, "\"shape\" must be an array, got " + brief(v));
  std::vector<int64_t> shape;
  for (const json& d : v) {
    const uint64_t n = non_negative_int(d, file, tensor, "every dimension of \"shape\"");
    if (n > uint64_t(std::numeric_limits<int64_t>::max()))
      fail_tensor(file, tensor, "dimension " + std::to_string(n) + " does not fit in int64");
    shape.push_back(int64_t(n));
  }
  return shape;
}

// elements * element size, or a failure when the product does not fit in 64 bits.
uint64_t byte_size(const Entry& e, size_t elem, const std::string& file) {
  uint64_t n = elem;
  for (int64_t d : e.shape) {
    const uint64_t du = uint64_t(d);
    if (du != 0 && n > std::numeric_limits<uint64_t>::max() / du)
      fail_tensor(file, e.name, "shape times the " + e.dtype + " size overflows 64 bits");
    n *= du;
  }
  return n;
}

Entry parse_entry(const std::string& name, const json& v, const std::string& file) {
  if (!v.is_object()) fail_tensor(file, name, "entry must be a JSON object, got " + brief(v));
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!v.contains(key)) fail_tensor(file, name, std::string("missing \"") + key + "\"");

  Entry e;
  e.name = name;
  const json& dt = v.at("dtype");
  if (!dt.is_string()) fail_tensor(file, name, "\"dtype\" must be a string, got " + brief(dt));
  e.dtype = dt.get<std::string>();
  const size_t elem = safetensors_dtype_size(e.dtype);
  if (elem == 0) fail_tensor(file, name, "unknown dtype \"" + e.dtype + "\"");
  e.shape = parse_shape(v.at("shape"), file, name);

  const json& off = v.at("data_offsets");
  if (!off.is_array() || off.size() != 2)
    fail_tensor(file, name, "\"data_offsets\" must be [begin, end], got " + brief(off));
  e.begin = non_negative_int(off[0], file, name, "data_offsets begin");
  e.end = non_negative_int(off[1], file, name, "data_offsets end");
  if (e.begin > e.end)
    fail_tensor(file, name,
                "data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                    "] are reversed (begin > end)");

  // The span the offsets claim must be exactly what the shape and dtype need.
  const uint64_t need = byte_size(e, elem, file);
  if (need != e.end - e.begin)
    fail_tensor(file, name,
                "shape " + brief(v.at("shape")) + " of " + e.dtype + " needs " +
                    std::to_string(need) + " bytes but data_offsets [" + std::to_string(e.begin) +
                    ", " + std::to_string(e.end) + "] span " + std::to_string(e.end - e.begin));
  return e;
}

std::map<std::string, std::string> parse_metadata(const json& v, const std::string& file) {
  if (!v.is_object()) fail(file, "\"__metadata__\" must be an object, got " + brief(v));
  std::map<std::string, std::string> out;
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (!it.value().is_string())
      fail(file, "\"__metadata__\" value of \"" + it.key() + "\" must be a string, got " +
                     brief(it.value()));
    out[it.key()] = it.value().get<std::string>();
  }
  return out;
}

// Sorted by begin, the spans must cover [0, buffer) exactly: no overlap, no hole, no tail.
void check_tiling(std::vector<Entry>& entries, uint64_t buffer, const std::string& file) {
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t next = 0;
  const Entry* prev = nullptr;
  for (const Entry& e : entries) {
    const std::string span =
        "data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) + "]";
    const std::string after =
        prev ? "tensor '" + prev->name + "', which ends at " + std::to_string(next)
             : "the start of the data buffer";
    if (e.begin < next) fail_tensor(file, e.name, span + " overlap " + after);
    if (e.begin > next) fail_tensor(file, e.name, span + " leave a hole after " + after);
    if (e.end > buffer)
      fail_tensor(file, e.name,
                  span + " run past the data buffer of " + std::to_string(buffer) + " bytes");
    next = e.end;
    prev = &e;
  }
  if (next != buffer)
    fail(file, "the data buffer holds " + std::to_string(buffer) +
                   " bytes but the tensors end at " + std::to_string(next) + " (" +
                   std::to_string(buffer - next) + " trailing bytes after the last tensor)");
}

// Parses the header JSON, rejecting a repeated top-level key (nlohmann would keep the last).
json parse_header_json(const uint8_t* p, uint64_t n, const std::string& file) {
  if (n == 0 || p[0] != '{') fail(file, "header must be a JSON object starting with '{'");
  std::set<std::string> seen;
  std::string duplicate;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1 && duplicate.empty() &&
        !seen.insert(parsed.get<std::string>()).second)
      duplicate = parsed.get<std::string>();
    return true;
  };
  json header;
  try {
    header = json::parse(p, p + n, cb);
  } catch (const json::exception& e) {
    fail(file, std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail(file, "header must be a JSON object, got " + brief(header));
  if (!duplicate.empty()) fail(file, "header names \"" + duplicate + "\" more than once");
  return header;
}

}  // namespace

size_t safetensors_dtype_size(const std::string& dtype) {
  static const std::map<std::string, size_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1},
      {"U16", 2},  {"I16", 2}, {"F16", 2}, {"BF16", 2},    {"U32", 4},
      {"I32", 4},  {"F32", 4}, {"U64", 8}, {"I64", 8},     {"F64", 8}};
  const auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

SafetensorsFile parse_safetensors(const uint8_t* data, size_t size,
                                  const std::string& name_for_errors) {
  const std::string& file = name_for_errors;
  if (size < 8)
    fail(file, "file is " + std::to_string(size) + " bytes, shorter than the 8-byte header length");

  // N is checked against the cap before N + 8 is formed, so the sum cannot wrap.
  const uint64_t n = read_le64(data);
  if (n > kSafetensorsMaxHeader)
    fail(file, "header length " + std::to_string(n) + " exceeds the limit of " +
                   std::to_string(kSafetensorsMaxHeader) + " bytes");
  if (n > uint64_t(size) - 8)
    fail(file, "header length " + std::to_string(n) + " runs past the end of the file (" +
                   std::to_string(size) + " bytes)");
  const json header = parse_header_json(data + 8, n, file);

  SafetensorsFile out;
  std::vector<Entry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == kMetadataKey)
      out.metadata = parse_metadata(it.value(), file);
    else
      entries.push_back(parse_entry(it.key(), it.value(), file));
  }

  const uint8_t* buffer = data + 8 + n;
  const uint64_t buffer_size = uint64_t(size) - 8 - n;
  check_tiling(entries, buffer_size, file);

  for (const Entry& e : entries) {
    RawTensor& t = out.tensors[e.name];
    t.dtype = e.dtype;
    t.shape = e.shape;
    t.bytes.assign(buffer + e.begin, buffer + e.end);
  }
  return out;
}

SafetensorsFile read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open for reading");
  in.seekg(0, std::ios::end);
  const std::streamoff len = in.tellg();
  if (len < 0) fail(path, "cannot determine the file size");
  in.seekg(0, std::ios::beg);
  std::vector<uint8_t> bytes(static_cast<size_t>(len));
  if (len > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), len))
    fail(path, "read failed after " + std::to_string(in.gcount()) + " of " + std::to_string(len) +
                   " bytes");
  return parse_safetensors(bytes.data(), bytes.size(), path);
}

std::vector<uint8_t> serialize_safetensors(const SafetensorsFile& file,
                                           const std::string& name_for_errors) {
  const std::string& name = name_for_errors;
  auto bad = [&](const std::string& tensor, const std::string& what) {
    throw std::invalid_argument("[safetensors] " + name + ": tensor '" + tensor + "': " + what);
  };

  // Offsets are assigned in key order (std::map is sorted), contiguous from 0.
  json header = json::object();
  uint64_t offset = 0;
  for (const auto& [key, t] : file.tensors) {
    if (key == kMetadataKey) bad(key, "the name is reserved for metadata");
    const size_t elem = safetensors_dtype_size(t.dtype);
    if (elem == 0) bad(key, "unknown dtype \"" + t.dtype + "\"");
    uint64_t need = elem;
    for (int64_t d : t.shape) {
      if (d < 0) bad(key, "negative dimension " + std::to_string(d));
      if (d != 0 && need > std::numeric_limits<uint64_t>::max() / uint64_t(d))
        bad(key, "shape times the dtype size overflows 64 bits");
      need *= uint64_t(d);
    }
    if (need != t.bytes.size())
      bad(key, "shape and " + t.dtype + " need " + std::to_string(need) + " bytes but " +
                   std::to_string(t.bytes.size()) + " are given");
    header[key] = {
        {"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + need}}};
    offset += need;
  }
  if (!file.metadata.empty()) header[kMetadataKey] = file.metadata;

  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& e) {
    throw std::invalid_argument("[safetensors] " + name +
                                ": cannot encode the header: " + e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');

  std::vector<uint8_t> out;
  out.reserve(8 + text.size() + offset);
  const uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out.push_back(uint8_t(n >> (8 * i)));
  out.insert(out.end(), text.begin(), text.end());
  for (const auto& [key, t] : file.tensors) out.insert(out.end(), t.bytes.begin(), t.bytes.end());
  return out;
}

void write_safetensors(const std::string& path, const SafetensorsFile& file) {
  const std::vector<uint8_t> bytes = serialize_safetensors(file, path);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail(tmp, "cannot open for writing");
    out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    out.close();
    if (!out) {
      std::remove(tmp.c_str());
      fail(tmp, "write failed (" + std::to_string(bytes.size()) + " bytes)");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    fail(path, "cannot rename " + tmp + " into place: " + ec.message());
  }
}

}  // namespace ss
