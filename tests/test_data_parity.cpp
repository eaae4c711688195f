// Parity of the deterministic image ops with torchvision 0.14, from fixtures written by
// scripts/fixtures_data.py (tests/fixtures/data/cases.txt lists the cases).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "data/augment.h"

namespace {

struct Npy {
  std::string descr;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

// Minimal .npy reader (format 1.0/2.0, C order): magic, version, header length, dict, data.
Npy read_npy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  REQUIRE_MESSAGE(f.good(), "cannot open fixture " << path);
  std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  REQUIRE(all.size() > 10);
  REQUIRE(all.compare(0, 6, "\x93NUMPY") == 0);
  const int major = uint8_t(all[6]);
  size_t hlen = 0, start = 0;
  if (major == 1) {
    hlen = uint8_t(all[8]) | (size_t(uint8_t(all[9])) << 8);
    start = 10;
  } else {
    for (int i = 0; i < 4; ++i) hlen |= size_t(uint8_t(all[8 + i])) << (8 * i);
    start = 12;
  }
  const std::string header = all.substr(start, hlen);
  Npy out;
  const size_t d = header.find("'descr':");
  const size_t q1 = header.find('\'', d + 8), q2 = header.find('\'', q1 + 1);
  out.descr = header.substr(q1 + 1, q2 - q1 - 1);
  REQUIRE(header.find("'fortran_order': False") != std::string::npos);
  const size_t s = header.find("'shape':");
  const size_t p1 = header.find('(', s), p2 = header.find(')', p1);
  std::stringstream dims(header.substr(p1 + 1, p2 - p1 - 1));
  std::string tok;
  while (std::getline(dims, tok, ','))
    if (tok.find_first_not_of(' ') != std::string::npos) out.shape.push_back(std::stoll(tok));
  out.bytes.assign(all.begin() + long(start + hlen), all.end());
  return out;
}

std::vector<float> as_f32(const Npy& a) {
  REQUIRE(a.descr == "<f4");
  std::vector<float> v(a.bytes.size() / 4);
  std::memcpy(v.data(), a.bytes.data(), v.size() * 4);
  return v;
}

std::string fixture(const std::string& name) {
  return std::string(SELFSUP_FIXTURES) + "/data/" + name;
}

// max |got - want|, checked against atol 1e-5 and printed.
void check_close(const std::string& name, const std::vector<float>& got,
                 const std::vector<float>& want) {
  REQUIRE_MESSAGE(got.size() == want.size(), name << ": " << got.size() << " vs " << want.size());
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double e = std::abs(double(got[i]) - double(want[i]));
    if (e > worst) worst = e, at = i;
  }
  MESSAGE(name << ": max |diff| " << worst << " at " << at);
  CHECK_MESSAGE(worst <= 1e-5, name << ": got " << got[at] << ", torchvision " << want[at]);
}

}  // namespace

TEST_CASE("parity: every torchvision fixture in cases.txt matches within 1e-5") {
  const Npy in = read_npy(fixture("input_u8.npy"));
  REQUIRE(in.descr == "|u1");
  REQUIRE(in.shape.size() == 3);
  const int h = int(in.shape[0]), w = int(in.shape[1]), c = int(in.shape[2]);
  std::vector<float> x(size_t(c * h * w));
  ss::to_float_chw(in.bytes.data(), c, h, w, x.data());

  std::ifstream list(fixture("cases.txt"));
  REQUIRE(list.good());
  std::string line;
  int cases = 0;
  while (std::getline(list, line)) {
    if (line.empty()) continue;
    std::stringstream ss_line(line);
    std::string name, op;
    ss_line >> name >> op;
    const std::vector<float> want = as_f32(read_npy(fixture(name + ".npy")));
    std::vector<float> img = x;
    ss::ImageView v{img.data(), c, h, w};
    if (op == "brightness" || op == "contrast" || op == "saturation" || op == "hue" ||
        op == "solarize") {
      float f = 0;
      ss_line >> f;
      if (op == "brightness") ss::adjust_brightness(v, f);
      if (op == "contrast") ss::adjust_contrast(v, f);
      if (op == "saturation") ss::adjust_saturation(v, f);
      if (op == "hue") ss::adjust_hue(v, f);
      if (op == "solarize") ss::solarize(v, f);
    } else if (op == "contrast1ch") {
      float f = 0;
      ss_line >> f;
      img.resize(size_t(h * w));
      v = ss::ImageView{img.data(), 1, h, w};
      ss::adjust_contrast(v, f);
    } else if (op == "crop") {
      ss::CropBox box;
      int oh = 0, ow = 0, flip = 0;
      ss_line >> box.top >> box.left >> box.height >> box.width >> oh >> ow >> flip;
      img.assign(size_t(c * oh * ow), 0.f);
      ss::resized_crop(in.bytes.data(), c, h, w, box, flip != 0,
                       ss::ImageView{img.data(), c, oh, ow});
    } else if (op == "blur") {
      int k = 0;
      float s = 0;
      ss_line >> k >> s;
      ss::gaussian_blur(v, k, s);
    } else if (op == "normalize") {
      std::vector<float> mean(3), std(3);
      for (auto& m : mean) ss_line >> m;
      for (auto& s : std) ss_line >> s;
      ss::normalize(v, mean, std);
    } else {
      FAIL("unknown op in cases.txt: " << op);
    }
    check_close(name, img, want);
    ++cases;
  }
  CHECK(cases >= 20);
}

TEST_CASE("parity: 8-bit grayscale equals PIL's convert('L') exactly") {
  const Npy in = read_npy(fixture("input_u8.npy"));
  const Npy gray = read_npy(fixture("gray_pil_u8.npy"));
  REQUIRE(gray.bytes.size() * 3 == in.bytes.size());
  int bad = 0;
  for (size_t i = 0; i < gray.bytes.size(); ++i) {
    const uint8_t* p = &in.bytes[3 * i];
    if (ss::gray_u8(p[0], p[1], p[2]) != gray.bytes[i]) ++bad;
  }
  CHECK(bad == 0);
}
