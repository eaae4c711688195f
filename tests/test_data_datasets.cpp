// Dataset readers: CIFAR, IDX and image folders on synthetic files written to a temp folder,
// hostile inputs with their error messages (B19 layout; the real files when present).
#include <doctest/doctest.h>
#include <stb/stb_image_write.h>
#include <unistd.h>
#include <zlib.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "data/augment.h"
#include "data/dataset.h"

namespace fs = std::filesystem;

namespace {

using Bytes = std::vector<uint8_t>;

// A fresh folder under the system temp dir, removed at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("selfsup_test_data_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

void write_bytes(const std::string& path, const Bytes& b) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

void write_gz(const std::string& path, const Bytes& b) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  if (!b.empty()) REQUIRE(gzwrite(f, b.data(), unsigned(b.size())) == int(b.size()));
  gzclose(f);
}

// CIFAR-10 record r: label r % 10, pixel values derived from (r, channel, position).
Bytes cifar10_records(int n) {
  Bytes b;
  for (int r = 0; r < n; ++r) {
    b.push_back(uint8_t(r % 10));
    for (int c = 0; c < 3; ++c)
      for (int i = 0; i < 1024; ++i) b.push_back(uint8_t((r * 7 + c * 50 + i) % 256));
  }
  return b;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

// The error names the file and contains the given words.
void check_error(const std::function<void()>& fn, const std::string& file,
                 const std::string& words) {
  const std::string msg = error_of(fn);
  INFO("message: " << msg);
  CHECK(msg.find(file) != std::string::npos);
  CHECK(msg.find(words) != std::string::npos);
}

void put_be32(Bytes& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(uint8_t(v >> s));
}

Bytes idx_images(uint32_t n, uint32_t h, uint32_t w) {
  Bytes b;
  put_be32(b, 2051), put_be32(b, n), put_be32(b, h), put_be32(b, w);
  for (uint64_t i = 0; i < uint64_t(n) * h * w; ++i) b.push_back(uint8_t(i * 3));
  return b;
}

Bytes idx_labels(uint32_t n) {
  Bytes b;
  put_be32(b, 2049), put_be32(b, n);
  for (uint32_t i = 0; i < n; ++i) b.push_back(uint8_t(i % 10));
  return b;
}

// A minimal PNG encoder (filter 0 rows, one IDAT) for palette and 16-bit inputs that
// stb_image_write cannot produce.
void chunk(Bytes& png, const char* type, const Bytes& data) {
  put_be32(png, uint32_t(data.size()));
  Bytes body(type, type + 4);
  body.insert(body.end(), data.begin(), data.end());
  png.insert(png.end(), body.begin(), body.end());
  put_be32(png, uint32_t(crc32(0, body.data(), uInt(body.size()))));
}

Bytes make_png(uint32_t w, uint32_t h, int depth, int color, const Bytes& rows_raw,
               const Bytes& palette = {}) {
  Bytes png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  Bytes ihdr;
  put_be32(ihdr, w), put_be32(ihdr, h);
  ihdr.insert(ihdr.end(), {uint8_t(depth), uint8_t(color), 0, 0, 0});
  chunk(png, "IHDR", ihdr);
  if (!palette.empty()) chunk(png, "PLTE", palette);
  uLongf len = compressBound(uLong(rows_raw.size()));
  Bytes z(len);
  REQUIRE(compress(z.data(), &len, rows_raw.data(), uLong(rows_raw.size())) == Z_OK);
  z.resize(len);
  chunk(png, "IDAT", z);
  chunk(png, "IEND", {});
  return png;
}

}  // namespace

TEST_CASE("B19: CIFAR planar bytes become interleaved HWC by a transpose") {
  // A 32x32 record whose first 2x2 block is R = (1,2,3,4), G = (5,6,7,8), B = (9,10,11,12).
  Bytes rec(3073, 0);
  rec[0] = 4;
  const int pos[4] = {0, 1, 32, 33};  // (0,0), (0,1), (1,0), (1,1)
  for (int i = 0; i < 4; ++i) {
    rec[size_t(1 + pos[i])] = uint8_t(1 + i);
    rec[size_t(1 + 1024 + pos[i])] = uint8_t(5 + i);
    rec[size_t(1 + 2048 + pos[i])] = uint8_t(9 + i);
  }
  ss::MemoryDataset ds = ss::make_cifar_dataset({});
  ss::parse_cifar(rec.data(), rec.size(), "mem.bin", {}, ds);
  REQUIRE(ds.size() == 1);
  CHECK(ds.label(0) == 4);
  const uint8_t* px = ds.image(0);
  auto at = [&](int y, int x, int c) { return int(px[(y * 32 + x) * 3 + c]); };
  CHECK(at(0, 0, 0) == 1);
  CHECK(at(0, 0, 1) == 5);
  CHECK(at(0, 0, 2) == 9);
  CHECK(at(0, 1, 0) == 2);
  CHECK(at(0, 1, 2) == 10);
  CHECK(at(1, 0, 0) == 3);  // pixel (row 1, col 0) = (3, 7, 11)
  CHECK(at(1, 0, 1) == 7);
  CHECK(at(1, 0, 2) == 11);
  CHECK(at(1, 1, 0) == 4);
  CHECK(at(1, 1, 2) == 12);

  // The float conversion keeps the transpose: CHW plane 0 = R.
  std::vector<float> chw(3 * 1024);
  ss::to_float_chw(px, 3, 32, 32, chw.data());
  CHECK(chw[0] == doctest::Approx(1 / 255.0));
  CHECK(chw[1024 + 32] == doctest::Approx(7 / 255.0));
  CHECK(chw[2048 + 33] == doctest::Approx(12 / 255.0));
}

TEST_CASE("B19: byte to float is x / 255") {
  const uint8_t px[3] = {255, 128, 0};
  float out[3];
  ss::to_float_chw(px, 3, 1, 1, out);
  CHECK(out[0] == doctest::Approx(1.0).epsilon(1e-7));
  CHECK(out[1] == doctest::Approx(0.501961).epsilon(1e-6));
  CHECK(out[2] == 0.0f);
}

TEST_CASE("CIFAR-10: a folder with the standard names and an explicit file list") {
  TempDir t;
  for (int i = 1; i <= 5; ++i)
    write_bytes(t.file("data_batch_" + std::to_string(i) + ".bin"), cifar10_records(3));
  write_bytes(t.file("test_batch.bin"), cifar10_records(2));
  ss::MemoryDataset train = ss::load_cifar(t.path.string(), true);
  CHECK(train.size() == 15);
  CHECK(train.num_classes() == 10);
  CHECK(train.class_names().at(0) == "airplane");
  CHECK(train.mean().size() == 3);
  CHECK(train.label(4) == 1);
  CHECK(ss::load_cifar(t.path.string(), false).size() == 2);
  ss::MemoryDataset two = ss::load_cifar(
      std::vector<std::string>{t.file("data_batch_2.bin"), t.file("test_batch.bin")});
  CHECK(two.size() == 5);
  CHECK(two.image(4)[0] == uint8_t((1 * 7 + 0) % 256));  // record 1 of test_batch, R(0,0)

  fs::remove(t.path / "data_batch_3.bin");
  check_error([&] { ss::load_cifar(t.path.string(), true); }, t.file("data_batch_3.bin"),
              "missing");
}

TEST_CASE("CIFAR-100: fine labels by default, coarse by option") {
  TempDir t;
  Bytes b;
  for (int r = 0; r < 4; ++r) {
    b.push_back(uint8_t(r + 15));  // coarse
    b.push_back(uint8_t(r * 30));  // fine: 0, 30, 60, 90
    for (int i = 0; i < 3072; ++i) b.push_back(uint8_t(i));
  }
  write_bytes(t.file("train.bin"), b);
  ss::CifarOptions opt;
  opt.kind = ss::CifarKind::cifar100;
  ss::MemoryDataset fine = ss::load_cifar(t.path.string(), true, opt);
  CHECK(fine.num_classes() == 100);
  CHECK(fine.label(3) == 90);
  opt.coarse = true;
  ss::MemoryDataset coarse = ss::load_cifar(t.file("train.bin"), true, opt);
  CHECK(coarse.num_classes() == 20);
  CHECK(coarse.label(3) == 18);
  CHECK(coarse.image(0)[1] == 1024 % 256);  // G(0,0) = byte 1024 of the planes

  b[0] = 20;  // coarse label out of [0, 20)
  write_bytes(t.file("bad.bin"), b);
  check_error([&] { ss::load_cifar(t.file("bad.bin"), true, opt); }, t.file("bad.bin"),
              "label 20 outside [0, 20)");
  check_error([&] { ss::load_cifar(t.path.string(), false, opt); }, t.file("test.bin"), "missing");
}

TEST_CASE("CIFAR hostile input: empty, truncated, oversized, bad label, missing, a folder") {
  TempDir t;
  write_bytes(t.file("empty.bin"), {});
  check_error([&] { ss::load_cifar(t.file("empty.bin"), true); }, t.file("empty.bin"), "empty");

  Bytes trunc = cifar10_records(2);
  trunc.resize(trunc.size() - 1);
  write_bytes(t.file("trunc.bin"), trunc);
  check_error([&] { ss::load_cifar(t.file("trunc.bin"), true); }, t.file("trunc.bin"),
              "size 6145 is not a multiple of the record size 3073");

  Bytes over = cifar10_records(1);
  over.push_back(0);
  write_bytes(t.file("over.bin"), over);
  check_error([&] { ss::load_cifar(t.file("over.bin"), true); }, t.file("over.bin"),
              "size 3074 is not a multiple of the record size 3073");

  Bytes bad = cifar10_records(3);
  bad[2 * 3073] = 10;
  write_bytes(t.file("label.bin"), bad);
  check_error([&] { ss::load_cifar(t.file("label.bin"), true); }, t.file("label.bin"),
              "record 2 has label 10 outside [0, 10)");

  check_error([&] { ss::load_cifar(std::vector<std::string>{t.file("nope.bin")}); },
              t.file("nope.bin"), "no such file");
  check_error([&] { ss::load_cifar(t.path.string(), false); }, t.file("test_batch.bin"), "missing");
  // CIFAR-10 bytes read as CIFAR-100 have the wrong record size.
  write_bytes(t.file("ten.bin"), cifar10_records(2));
  ss::CifarOptions c100;
  c100.kind = ss::CifarKind::cifar100;
  check_error([&] { ss::load_cifar(t.file("ten.bin"), true, c100); }, t.file("ten.bin"),
              "record size 3074");
}

TEST_CASE("IDX: raw and gzipped files, labels stay with their images") {
  TempDir t;
  write_gz(t.file("train-images-idx3-ubyte.gz"), idx_images(5, 4, 3));
  write_gz(t.file("train-labels-idx1-ubyte.gz"), idx_labels(5));
  write_bytes(t.file("t10k-images-idx3-ubyte"), idx_images(2, 4, 3));
  write_bytes(t.file("t10k-labels-idx1-ubyte"), idx_labels(2));
  ss::MemoryDataset tr = ss::load_fashion_mnist(t.path.string(), true);
  CHECK(tr.size() == 5);
  CHECK(tr.channels() == 1);
  CHECK(tr.height() == 4);
  CHECK(tr.width() == 3);
  CHECK(tr.label(3) == 3);
  CHECK(tr.image(1)[0] == uint8_t(12 * 3));
  CHECK(tr.class_names().at(9) == "ankle boot");
  CHECK(tr.mean().at(0) == doctest::Approx(0.2860));
  ss::MemoryDataset te = ss::load_mnist(t.path.string(), false);
  CHECK(te.size() == 2);
  CHECK(te.mean().at(0) == doctest::Approx(0.1307));

  // The 1-channel rule's second option: expand to 3 equal channels.
  ss::MemoryDataset rgb = ss::expand_to_rgb(tr);
  CHECK(rgb.channels() == 3);
  CHECK(rgb.image(1)[0] == tr.image(1)[0]);
  CHECK(rgb.image(1)[2] == tr.image(1)[0]);
  CHECK(rgb.image(1)[5] == tr.image(1)[1]);
  CHECK(rgb.mean().size() == 3);
}

TEST_CASE("IDX hostile input: magic, absurd dims, counts, truncation, labels, empty, gzip") {
  TempDir t;
  const std::string img = t.file("img"), lab = t.file("lab");
  write_bytes(lab, idx_labels(5));

  auto load = [&] { ss::load_idx(img, lab, "test", 10); };
  Bytes b = idx_images(5, 4, 3);
  b[3] = 0x01;  // 2049: a labels file given as images
  write_bytes(img, b);
  check_error(load, img, "magic 2049 is not 2051");

  b = idx_images(5, 4, 3);
  b.resize(b.size() - 1);
  write_bytes(img, b);
  check_error(load, img, "size 75 does not match the header's 16 + 60 bytes");

  b = idx_images(5, 4, 3);
  b.push_back(1);
  write_bytes(img, b);
  check_error(load, img, "does not match the header");

  // Absurd dims: 4e9 x 4e9 x 4e9 must be refused from the header, with no allocation.
  Bytes absurd;
  put_be32(absurd, 2051), put_be32(absurd, 0xFFFFFFFFu), put_be32(absurd, 0xFFFFFFFFu);
  put_be32(absurd, 0xFFFFFFFFu);
  absurd.insert(absurd.end(), 100, 7);
  write_bytes(img, absurd);
  check_error(load, img, "dimensions need more than");

  Bytes zero;
  put_be32(zero, 2051), put_be32(zero, 5), put_be32(zero, 0), put_be32(zero, 3);
  write_bytes(img, zero);
  check_error(load, img, "dimension 1 is zero");

  Bytes two_dims;
  put_be32(two_dims, 0x00000802), put_be32(two_dims, 2), put_be32(two_dims, 2);
  check_error([&] { ss::parse_idx(two_dims.data(), 10, "x.idx", 2051); }, "x.idx",
              "magic 2050 is not 2051");

  Bytes short_header = {0, 0, 8, 3, 0, 0};
  write_bytes(img, short_header);
  check_error(load, img, "shorter than the 16-byte header");

  write_bytes(img, {});
  check_error(load, img, "empty");

  write_bytes(img, idx_images(4, 4, 3));
  check_error(load, lab, "has 5 labels but");

  write_bytes(img, idx_images(5, 4, 3));
  Bytes badlab = idx_labels(5);
  badlab.back() = 10;
  write_bytes(lab, badlab);
  check_error(load, lab, "label 10 at index 4 outside [0, 10)");

  // A gzip stream cut in half is a read error naming the file.
  const std::string gz = t.file("cut.gz");
  write_gz(gz, idx_images(50, 28, 28));
  Bytes whole;
  {
    std::ifstream f(gz, std::ios::binary);
    whole.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  whole.resize(whole.size() / 2);
  write_bytes(gz, whole);
  const std::string msg = error_of([&] { ss::load_idx(gz, lab, "test", 10); });
  INFO(msg);
  CHECK(msg.find(gz) != std::string::npos);
  CHECK(msg.find("gzip stream cut short") != std::string::npos);

  check_error([&] { ss::load_idx(t.file("missing"), lab, "test", 10); }, t.file("missing"),
              "no such file");
  check_error([&] { ss::load_fashion_mnist(t.file("nowhere"), true); }, t.file("nowhere"),
              "missing");
}

TEST_CASE("image folder: PNG, JPEG, BMP; gray, gray+alpha, palette, RGBA, 16-bit -> RGB") {
  TempDir t;
  const int w = 6, h = 4;
  std::vector<uint8_t> rgb(size_t(w * h * 3)), gray(size_t(w * h)), ga(size_t(w * h * 2)),
      rgba(size_t(w * h * 4));
  for (int i = 0; i < w * h; ++i) {
    rgb[size_t(3 * i)] = uint8_t(10 * i), rgb[size_t(3 * i + 1)] = 100, rgb[size_t(3 * i + 2)] = 7;
    gray[size_t(i)] = uint8_t(9 * i);
    ga[size_t(2 * i)] = uint8_t(9 * i), ga[size_t(2 * i + 1)] = 128;
    for (int c = 0; c < 3; ++c) rgba[size_t(4 * i + c)] = rgb[size_t(3 * i + c)];
    rgba[size_t(4 * i + 3)] = 200;
  }
  const std::string a = t.file("a_class"), b = t.file("b_class");
  fs::create_directories(a), fs::create_directories(b);
  REQUIRE(stbi_write_png((a + "/1_rgb.png").c_str(), w, h, 3, rgb.data(), w * 3));
  REQUIRE(stbi_write_png((a + "/2_gray.png").c_str(), w, h, 1, gray.data(), w));
  REQUIRE(stbi_write_png((a + "/3_ga.png").c_str(), w, h, 2, ga.data(), w * 2));
  REQUIRE(stbi_write_png((a + "/4_rgba.PNG").c_str(), w, h, 4, rgba.data(), w * 4));
  REQUIRE(stbi_write_bmp((b + "/5.bmp").c_str(), w, h, 3, rgb.data()));
  REQUIRE(stbi_write_jpg((b + "/6.jpg").c_str(), w, h, 3, rgb.data(), 95));
  // Palette PNG: index i -> colour (i, 2i, 3i); 16-bit gray PNG: value v * 257.
  Bytes pal, rows_p, rows_16;
  for (int i = 0; i < 256; ++i) pal.insert(pal.end(), {uint8_t(i), uint8_t(2 * i), uint8_t(3 * i)});
  for (int y = 0; y < h; ++y) {
    rows_p.push_back(0), rows_16.push_back(0);
    for (int x = 0; x < w; ++x) {
      rows_p.push_back(uint8_t(y * w + x));
      rows_16.push_back(uint8_t(20 * x)), rows_16.push_back(uint8_t(20 * x));
    }
  }
  write_bytes(b + "/7_pal.png", make_png(w, h, 8, 3, rows_p, pal));
  write_bytes(b + "/8_16bit.png", make_png(w, h, 16, 0, rows_16));
  write_bytes(b + "/notes.txt", {'h', 'i'});  // ignored: not an image extension

  ss::MemoryDataset same = ss::load_image_folder(t.path.string(), h, w);
  REQUIRE(same.size() == 8);
  CHECK(same.channels() == 3);
  CHECK(same.num_classes() == 2);
  CHECK(same.class_names() == std::vector<std::string>{"a_class", "b_class"});
  CHECK(same.label(3) == 0);
  CHECK(same.label(4) == 1);
  CHECK(same.mean().size() == 3);
  const uint8_t* p = same.image(0);  // rgb, pixel 5
  CHECK(int(p[15]) == 50);
  CHECK(int(p[16]) == 100);
  p = same.image(1);  // gray -> three equal channels
  CHECK(int(p[15]) == 45);
  CHECK(int(p[16]) == 45);
  CHECK(int(p[17]) == 45);
  p = same.image(2);  // gray + alpha: alpha dropped
  CHECK(int(p[17]) == 45);
  p = same.image(3);  // RGBA: alpha dropped
  CHECK(int(p[15]) == 50);
  CHECK(int(p[17]) == 7);
  p = same.image(4);  // BMP exact
  CHECK(int(p[15]) == 50);
  p = same.image(5);  // JPEG: within a few levels
  CHECK(std::abs(int(p[16]) - 100) <= 6);
  p = same.image(6);  // palette index 5 -> (5, 10, 15)
  CHECK(int(p[15]) == 5);
  CHECK(int(p[16]) == 10);
  CHECK(int(p[17]) == 15);
  p = same.image(7);  // 16-bit 20 x * 257 -> 8-bit 20 x
  CHECK(int(p[3 * 5]) == 100);
  CHECK(int(p[3 * 5 + 2]) == 100);

  // Resized on load: a constant image stays constant at any size.
  ss::MemoryDataset big = ss::load_image_folder(t.path.string(), 9, 13);
  CHECK(big.height() == 9);
  CHECK(big.width() == 13);
  ss::MemoryDataset small = ss::load_image_folder(t.path.string(), 2, 3);
  CHECK(int(small.image(0)[1]) == 100);
  CHECK(int(big.image(0)[1]) == 100);
}

TEST_CASE("image folder hostile input: empty folders, undecodable, zero and enormous sizes") {
  TempDir t;
  check_error([&] { ss::load_image_folder(t.path.string(), 8, 8); }, t.path.string(),
              "no class subfolders");
  fs::create_directories(t.path / "cat");
  check_error([&] { ss::load_image_folder(t.path.string(), 8, 8); }, t.file("cat"), "no images");
  check_error([&] { ss::load_image_folder(t.file("absent"), 8, 8); }, t.file("absent"),
              "not a folder");

  const std::string bad = t.file("cat/broken.png");
  write_bytes(bad, {'n', 'o', 't', ' ', 'a', 'n', ' ', 'i', 'm', 'a', 'g', 'e'});
  const std::string msg = error_of([&] { ss::load_image_folder(t.path.string(), 8, 8); });
  INFO(msg);
  CHECK(msg.find(bad) != std::string::npos);
  CHECK(msg.find("cannot decode (") != std::string::npos);

  // A truncated PNG (valid header, cut IDAT) is a decode error naming the file.
  Bytes rows(size_t(4 * (1 + 4 * 3)), 9);
  for (int y = 0; y < 4; ++y) rows[size_t(y * 13)] = 0;
  Bytes png = make_png(4, 4, 8, 2, rows);
  png.resize(png.size() - 20);
  check_error([&] { ss::decode_image(png.data(), png.size(), "cut.png", 8, 8); }, "cut.png",
              "cannot decode");

  // Enormous dimensions in the header are refused before decoding.
  Bytes huge = make_png(10000, 10000, 8, 2, rows);  // 1e8 pixels: stb would try
  check_error([&] { ss::decode_image(huge.data(), huge.size(), "huge.png", 8, 8); }, "huge.png",
              "above the limit");
  Bytes zero = make_png(0, 4, 8, 2, rows);
  check_error([&] { ss::decode_image(zero.data(), zero.size(), "zero.png", 8, 8); }, "zero.png",
              "");
  check_error([&] { ss::decode_image(rows.data(), 0, "empty.png", 8, 8); }, "empty.png", "empty");
  Bytes ok = make_png(4, 4, 8, 2, rows);
  check_error([&] { ss::decode_image(ok.data(), ok.size(), "ok.png", 0, 8); }, "ok.png",
              "output size 0x8");
  CHECK(ss::decode_image(ok.data(), ok.size(), "ok.png", 3, 5).size() == 45);
}

TEST_CASE("fuzz regressions: every saved input is rejected cleanly or parsed") {
  const fs::path dir = fs::path(SELFSUP_SOURCE_DIR) / "tests" / "fuzz" / "regressions";
  int n = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (!e.is_regular_file()) continue;
    std::ifstream f(e.path(), std::ios::binary);
    Bytes b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const std::string name = e.path().filename().string();
    try {
      if (name.rfind("fuzz_image", 0) == 0) ss::decode_image(b.data(), b.size(), name, 16, 16);
      if (name.rfind("fuzz_idx", 0) == 0) ss::parse_idx(b.data(), b.size(), name, 2051);
      if (name.rfind("fuzz_cifar", 0) == 0) {
        ss::MemoryDataset ds = ss::make_cifar_dataset({});
        ss::parse_cifar(b.data(), b.size(), name, {}, ds);
      }
    } catch (const std::runtime_error&) {
    }
    ++n;
  }
  MESSAGE(n << " fuzz regression inputs replayed");
}

TEST_CASE("real CIFAR-10 batch (skipped when /work/shared/data/cifar10 is absent)") {
  const std::string f = "/work/shared/data/cifar10/data_batch_1.bin";
  if (!fs::exists(f)) {
    MESSAGE("SKIPPED: " << f << " not found");
    return;
  }
  ss::MemoryDataset ds = ss::load_cifar(std::vector<std::string>{f});
  REQUIRE(ds.size() == 10000);
  std::vector<int64_t> counts(10, 0);
  double sum[3] = {0, 0, 0};
  int all_zero = 0;
  for (int64_t n = 0; n < ds.size(); ++n) {
    ++counts[size_t(ds.label(n))];
    const uint8_t* p = ds.image(n);
    bool zero = true;
    for (int i = 0; i < 3072; ++i) {
      sum[i % 3] += p[i];
      zero = zero && p[i] == 0;
    }
    all_zero += zero;
  }
  CHECK(all_zero == 0);
  CHECK(counts == std::vector<int64_t>{1005, 974, 1032, 1016, 999, 937, 1030, 1001, 1025, 981});
  // Published training-set means (R, G, B); one batch lies within 0.01, R/B swapped would not.
  const double want[3] = {0.4914, 0.4822, 0.4465};
  for (int c = 0; c < 3; ++c) CHECK(std::abs(sum[c] / (1024.0 * 10000 * 255) - want[c]) < 0.01);
}

TEST_CASE("real Fashion-MNIST (skipped when the Debian package is absent)") {
  if (!fs::exists(ss::kFashionMnistDir)) {
    MESSAGE("SKIPPED: " << ss::kFashionMnistDir << " not found");
    return;
  }
  ss::MemoryDataset te = ss::load_fashion_mnist(ss::kFashionMnistDir, false);
  CHECK(te.size() == 10000);
  CHECK(te.height() == 28);
  CHECK(te.width() == 28);
  CHECK(te.channels() == 1);
  double s = 0;
  for (uint8_t v : te.pixels()) s += v;
  CHECK(std::abs(s / (255.0 * double(te.pixels().size())) - 0.2860) < 0.01);
}
