// safetensors reader and writer: every accepted and rejected file of case B38, built byte by
// byte; a write -> read round trip; and whole-class robustness (every truncation, every header
// bit flipped), meant to run under AddressSanitizer.
#include "engine/safetensors.h"

#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using Bytes = std::vector<uint8_t>;

// The 12 data bytes of B38: float32 1.0, 2.0, 3.0, little-endian.
const Bytes kData = {0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x40, 0x40};

const std::string kHeader = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                            R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";

void put_le64(Bytes& out, uint64_t n) {
  for (int i = 0; i < 8; ++i) out.push_back(uint8_t(n >> (8 * i)));
}

// prefix(N) + header padded with spaces to a multiple of 8 + data.
Bytes make_file(const std::string& header, const Bytes& data) {
  std::string h = header;
  h.append((8 - h.size() % 8) % 8, ' ');
  Bytes out;
  put_le64(out, h.size());
  out.insert(out.end(), h.begin(), h.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

// Parses from a heap block of exactly the file's size, so that AddressSanitizer sees any read
// past the end.
ss::SafetensorsFile parse_exact(const Bytes& file, const std::string& name) {
  std::unique_ptr<uint8_t[]> block(new uint8_t[file.size()]);
  if (!file.empty()) std::memcpy(block.get(), file.data(), file.size());
  return ss::parse_safetensors(block.get(), file.size(), name);
}

// The error message of a rejected file; fails the test when the file is accepted.
std::string rejection(const Bytes& file, const std::string& name) {
  try {
    parse_exact(file, name);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  FAIL_CHECK(name << " was accepted but must be rejected");
  return "";
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

std::vector<float> floats(const ss::RawTensor& t) {
  std::vector<float> v(t.bytes.size() / 4);
  std::memcpy(v.data(), t.bytes.data(), v.size() * 4);
  return v;
}

void check_b38_tensors(const ss::SafetensorsFile& f) {
  REQUIRE(f.tensors.size() == 2);
  const ss::RawTensor& a = f.tensors.at("a");
  const ss::RawTensor& b = f.tensors.at("b");
  CHECK(a.dtype == "F32");
  CHECK(a.shape == std::vector<int64_t>{2});
  CHECK(floats(a) == std::vector<float>{1.0f, 2.0f});
  CHECK(b.dtype == "F32");
  CHECK(b.shape == std::vector<int64_t>{1});
  CHECK(floats(b) == std::vector<float>{3.0f});
}

// What every accepted file must satisfy: each tensor's bytes match its shape and dtype, and
// together they account for the whole data buffer.
void check_consistent(const ss::SafetensorsFile& f, size_t buffer_size) {
  size_t total = 0;
  for (const auto& [name, t] : f.tensors) {
    const size_t elem = ss::safetensors_dtype_size(t.dtype);
    REQUIRE(elem > 0);
    size_t n = elem;
    for (int64_t d : t.shape) {
      REQUIRE(d >= 0);
      n *= size_t(d);
    }
    CHECK(n == t.bytes.size());
    total += t.bytes.size();
  }
  CHECK(total == buffer_size);
}

uint64_t header_length(const Bytes& file) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | file[size_t(i)];
  return n;
}

}  // namespace

TEST_CASE("B38: the 132-byte file loads") {
  CHECK(kHeader.size() == 108);
  Bytes file = {0x70, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  file.insert(file.end(), kHeader.begin(), kHeader.end());
  file.insert(file.end(), 4, ' ');
  file.insert(file.end(), kData.begin(), kData.end());
  REQUIRE(file.size() == 132);
  CHECK(make_file(kHeader, kData) == file);

  const ss::SafetensorsFile f = parse_exact(file, "b38.safetensors");
  check_b38_tensors(f);
  CHECK(f.metadata.empty());
}

TEST_CASE("B38: __metadata__ and the keys in the other order (N = 144, 164 bytes)") {
  const std::string header = R"({"__metadata__":{"format":"pt"},)"
                             R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},)"
                             R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const Bytes file = make_file(header, kData);
  REQUIRE(file.size() == 164);
  CHECK(header_length(file) == 144);

  const ss::SafetensorsFile f = parse_exact(file, "meta.safetensors");
  check_b38_tensors(f);
  CHECK(f.metadata == std::map<std::string, std::string>{{"format", "pt"}});
}

TEST_CASE("B38: a declared as F16 with shape [4] over the same 8 bytes is accepted") {
  const std::string header = R"({"a":{"dtype":"F16","shape":[4],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";
  const ss::SafetensorsFile f = parse_exact(make_file(header, kData), "f16.safetensors");
  const ss::RawTensor& a = f.tensors.at("a");
  CHECK(a.dtype == "F16");
  CHECK(a.shape == std::vector<int64_t>{4});
  CHECK(a.bytes == Bytes(kData.begin(), kData.begin() + 8));
}

TEST_CASE("B38 rejection 1: b with shape [2] and offsets [8, 16] over a 12-byte buffer") {
  const std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})";
  const std::string msg = rejection(make_file(header, kData), "r1.safetensors");
  CHECK(contains(msg, "r1.safetensors"));
  CHECK(contains(msg, "'b'"));
  CHECK(contains(msg, "past the data buffer"));
}

TEST_CASE("B38 rejection 2: a with reversed offsets [8, 0]") {
  const std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]},)"
                             R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";
  const std::string msg = rejection(make_file(header, kData), "r2.safetensors");
  CHECK(contains(msg, "r2.safetensors"));
  CHECK(contains(msg, "'a'"));
  CHECK(contains(msg, "reversed"));
}

TEST_CASE("B38 rejection 3: a with shape [1000, 1000] over 8 bytes") {
  const std::string header = R"({"a":{"dtype":"F32","shape":[1000,1000],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";
  const std::string msg = rejection(make_file(header, kData), "r3.safetensors");
  CHECK(contains(msg, "'a'"));
  CHECK(contains(msg, "4000000 bytes"));
}

TEST_CASE("B38 rejection 4: b with offsets [4, 8] over an 8-byte buffer overlaps a") {
  const std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  const Bytes data(kData.begin(), kData.begin() + 8);
  const std::string msg = rejection(make_file(header, data), "r4.safetensors");
  CHECK(contains(msg, "'b'"));
  CHECK(contains(msg, "overlap"));
}

TEST_CASE("B38 rejection 5: b with offsets [12, 16] over a 16-byte buffer leaves a hole") {
  const std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}})";
  Bytes data = kData;
  data.insert(data.end(), {0x00, 0x00, 0x80, 0x40});
  const std::string msg = rejection(make_file(header, data), "r5.safetensors");
  CHECK(contains(msg, "'b'"));
  CHECK(contains(msg, "hole"));
}

TEST_CASE("B38 rejection 6: header lengths past the end, wrapping, and over the cap") {
  const Bytes valid = make_file(kHeader, kData);
  for (uint64_t n : {uint64_t(132), ~uint64_t(0), uint64_t(100'000'001)}) {
    CAPTURE(n);
    Bytes file;
    put_le64(file, n);
    file.insert(file.end(), valid.begin() + 8, valid.end());
    REQUIRE(file.size() == 132);
    const std::string msg = rejection(file, "r6.safetensors");
    CHECK(contains(msg, "r6.safetensors"));
    CHECK(contains(msg, "header length"));
  }
}

TEST_CASE("B38 rejection 7: one extra byte after the data (133 bytes)") {
  Bytes file = make_file(kHeader, kData);
  file.push_back(0x00);
  REQUIRE(file.size() == 133);
  const std::string msg = rejection(file, "r7.safetensors");
  CHECK(contains(msg, "r7.safetensors"));
  CHECK(contains(msg, "trailing"));
}

TEST_CASE("B38 rejection 8: a with shape [2^62, 8] overflows 64 bits") {
  const std::string header =
      R"({"a":{"dtype":"F32","shape":[4611686018427387904,8],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";
  const std::string msg = rejection(make_file(header, kData), "r8.safetensors");
  CHECK(contains(msg, "'a'"));
  CHECK(contains(msg, "overflows"));
}

TEST_CASE("malformed headers are rejected with a message") {
  const Bytes two(kData.begin(), kData.begin() + 8);
  const auto one = [&](const std::string& entry) {
    return make_file(R"({"a":)" + entry + "}", two);
  };
  struct Case {
    Bytes file;
    const char* expect;
  };
  const std::vector<Case> cases = {
      {Bytes{1, 2, 3}, "shorter than"},
      {make_file("[1, 2]", {}), "starting with '{'"},
      {make_file("", {}), "starting with '{'"},
      {make_file("{\"a\":", {}), "not valid JSON"},
      {make_file(kHeader + "x", kData), "not valid JSON"},
      {one(R"({"dtype":"F33","shape":[2],"data_offsets":[0,8]})"), "unknown dtype"},
      {one(R"({"dtype":3,"shape":[2],"data_offsets":[0,8]})"), "must be a string"},
      {one(R"({"shape":[2],"data_offsets":[0,8]})"), "missing \"dtype\""},
      {one(R"({"dtype":"F32","data_offsets":[0,8]})"), "missing \"shape\""},
      {one(R"({"dtype":"F32","shape":[2]})"), "missing \"data_offsets\""},
      {one(R"({"dtype":"F32","shape":[-2],"data_offsets":[0,8]})"), "non-negative"},
      {one(R"({"dtype":"F32","shape":[2.0],"data_offsets":[0,8]})"), "non-negative"},
      {one(R"({"dtype":"F32","shape":2,"data_offsets":[0,8]})"), "must be an array"},
      {one(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8,9]})"), "[begin, end]"},
      {one(R"({"dtype":"F32","shape":[2],"data_offsets":[-1,8]})"), "non-negative"},
      {one(R"([1])"), "must be a JSON object"},
      {make_file(R"({"__metadata__":{"format":1}})", {}), "must be a string"},
      {make_file(R"({"__metadata__":[]})", {}), "must be an object"},
      {make_file(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                 R"("a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})",
                 {7}),
       "more than once"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    CAPTURE(i);
    const std::string msg = rejection(cases[i].file, "bad.safetensors");
    CHECK(contains(msg, "bad.safetensors"));
    CHECK_MESSAGE(contains(msg, cases[i].expect), msg);
  }
}

TEST_CASE("empty header, scalars and zero-size tensors are accepted") {
  CHECK(parse_exact(make_file("{}", {}), "empty.safetensors").tensors.empty());

  const std::string header = R"({"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]},)"
                             R"("z":{"dtype":"F32","shape":[0,3],"data_offsets":[8,8]}})";
  const Bytes data(8, 0);
  const ss::SafetensorsFile f = parse_exact(make_file(header, data), "scalar.safetensors");
  CHECK(f.tensors.at("s").shape.empty());
  CHECK(f.tensors.at("s").bytes.size() == 8);
  CHECK(f.tensors.at("z").shape == std::vector<int64_t>{0, 3});
  CHECK(f.tensors.at("z").bytes.empty());
}

TEST_CASE("write -> read round trip; the written file passes the same checks") {
  ss::SafetensorsFile f;
  f.metadata = {{"format", "pt"}, {"step", "12"}};
  ss::RawTensor w{"F64", {2, 3}, {}};
  for (int i = 0; i < 6; ++i) {
    const double v = 0.5 * i - 1.0;
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    w.bytes.insert(w.bytes.end(), p, p + 8);
  }
  f.tensors["layer1.0.conv1.weight"] = w;
  f.tensors["bn1.running_mean"] = {"F32", {3}, Bytes(kData.begin(), kData.end())};
  f.tensors["labels"] = {"I64", {1}, {5, 0, 0, 0, 0, 0, 0, 0}};
  f.tensors["mask"] = {"U8", {3}, {1, 0, 1}};
  f.tensors["empty"] = {"F32", {0}, {}};
  f.tensors["scalar"] = {"F32", {}, {0, 0, 0x80, 0x3F}};

  const auto dir = std::filesystem::temp_directory_path() / "selfsup_test_safetensors";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "round_trip.safetensors").string();
  ss::write_safetensors(path, f);
  CHECK_FALSE(std::filesystem::exists(path + ".tmp"));

  const ss::SafetensorsFile g = ss::read_safetensors(path);
  CHECK(g.metadata == f.metadata);
  REQUIRE(g.tensors.size() == f.tensors.size());
  for (const auto& [name, t] : f.tensors) {
    CAPTURE(name);
    const ss::RawTensor& u = g.tensors.at(name);
    CHECK(u.dtype == t.dtype);
    CHECK(u.shape == t.shape);
    CHECK(u.bytes == t.bytes);
  }

  // The layout itself: '{' first, N a multiple of 8, offsets contiguous from 0 in key order.
  std::ifstream in(path, std::ios::binary);
  const Bytes file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const uint64_t n = header_length(file);
  CHECK(n % 8 == 0);
  REQUIRE(8 + n <= file.size());
  CHECK(file[8] == '{');
  const auto header = nlohmann::json::parse(file.begin() + 8, file.begin() + 8 + long(n));
  uint64_t next = 0;
  std::string prev;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    CHECK(prev < it.key());
    prev = it.key();
    const auto off = it.value().at("data_offsets");
    CHECK(off[0].get<uint64_t>() == next);
    next = off[1].get<uint64_t>();
  }
  CHECK(next == file.size() - 8 - n);
  CHECK(ss::serialize_safetensors(f, "x") == file);

  std::filesystem::remove_all(dir);
}

TEST_CASE("the writer rejects inconsistent tensors and leaves no file behind") {
  const auto dir = std::filesystem::temp_directory_path() / "selfsup_test_safetensors_bad";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "bad.safetensors").string();
  const std::vector<ss::RawTensor> bad = {
      {"F32", {3}, Bytes(8, 0)}, {"F99", {1}, Bytes(4, 0)}, {"F32", {-1}, {}}};
  for (const ss::RawTensor& t : bad) {
    ss::SafetensorsFile f;
    f.tensors["t"] = t;
    CHECK_THROWS_AS(ss::write_safetensors(path, f), std::invalid_argument);
    CHECK_FALSE(std::filesystem::exists(path));
    CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
  }
  ss::SafetensorsFile f;
  f.tensors["__metadata__"] = {"U8", {1}, {0}};
  CHECK_THROWS_AS(ss::write_safetensors(path, f), std::invalid_argument);
  CHECK_THROWS_AS(ss::read_safetensors((dir / "missing.safetensors").string()), std::runtime_error);
  std::filesystem::remove_all(dir);
}

// Whole class of damaged files: nothing may crash or read out of bounds; a file that still loads
// must be self-consistent.
void load_or_throw(const Bytes& file) {
  try {
    const ss::SafetensorsFile f = parse_exact(file, "damaged.safetensors");
    const uint64_t n = header_length(file);
    check_consistent(f, file.size() - 8 - n);
  } catch (const std::runtime_error& e) {
    CHECK(contains(e.what(), "damaged.safetensors"));
  }
}

TEST_CASE("every truncation of a valid file is rejected") {
  const Bytes meta = make_file(
      R"({"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},)"
      R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
      kData);
  for (const Bytes& valid : {make_file(kHeader, kData), meta}) {
    for (size_t len = 0; len < valid.size(); ++len) {
      CAPTURE(len);
      const Bytes cut(valid.begin(), valid.begin() + long(len));
      CHECK_THROWS_AS(parse_exact(cut, "cut.safetensors"), std::runtime_error);
    }
  }
}

TEST_CASE("every bit of the length prefix and header flipped: load consistently or throw") {
  const Bytes meta = make_file(
      R"({"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},)"
      R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
      kData);
  for (const Bytes& valid : {make_file(kHeader, kData), meta}) {
    const size_t end = 8 + header_length(valid);
    for (size_t i = 0; i < end; ++i) {
      for (int bit = 0; bit < 8; ++bit) {
        CAPTURE(i);
        CAPTURE(bit);
        Bytes file = valid;
        file[i] ^= uint8_t(1u << bit);
        load_or_throw(file);
      }
      // Whole-byte replacements that keep JSON valid more often than random bits do.
      for (uint8_t c : {uint8_t('0'), uint8_t('9'), uint8_t(' '), uint8_t('"'), uint8_t(0)}) {
        Bytes file = valid;
        file[i] = c;
        load_or_throw(file);
      }
    }
  }
}

TEST_CASE("every committed fixture (written by scripts/fixtures_engine.py) passes the checks") {
  size_t count = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(SELFSUP_FIXTURES)) {
    if (entry.path().extension() != ".safetensors") continue;
    CAPTURE(entry.path().string());
    const ss::SafetensorsFile f = ss::read_safetensors(entry.path().string());
    CHECK_FALSE(f.tensors.empty());
    ++count;
  }
  MESSAGE(count << " fixture files read");
  CHECK(count > 0);
}
