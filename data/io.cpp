// Whole-file reads with a size cap, and gzip-transparent reads through zlib.
#include "data/io.h"

#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>

#include "data/dataset.h"

namespace ss {

namespace {
struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};
}  // namespace

// Reads the file in 64 KiB chunks so memory follows the real length, never a header.
std::vector<uint8_t> read_file_bytes(const std::string& path, const std::string& tag,
                                     size_t max_bytes) {
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  if (!f)
    throw std::runtime_error("[" + tag + "] " + path + ": cannot open (" + std::strerror(errno) +
                             ")");
  std::vector<uint8_t> out;
  std::vector<uint8_t> chunk(size_t(1) << 16);
  while (true) {
    const size_t got = std::fread(chunk.data(), 1, chunk.size(), f.get());
    if (got == 0) break;
    if (out.size() + got > max_bytes)
      throw std::runtime_error("[" + tag + "] " + path + ": larger than the limit of " +
                               std::to_string(max_bytes) + " bytes");
    out.insert(out.end(), chunk.begin(), chunk.begin() + long(got));
  }
  if (std::ferror(f.get()))
    throw std::runtime_error("[" + tag + "] " + path + ": read error (" + std::strerror(errno) +
                             ")");
  return out;
}

// gzread passes plain files through unchanged, so one path serves .gz and raw IDX files.
std::vector<uint8_t> read_maybe_gz(const std::string& path, const std::string& tag,
                                   size_t max_bytes) {
  if (!is_regular_file(path)) throw std::runtime_error("[" + tag + "] " + path + ": no such file");
  std::unique_ptr<gzFile_s, GzCloser> f(gzopen(path.c_str(), "rb"));
  if (!f)
    throw std::runtime_error("[" + tag + "] " + path + ": cannot open (" + std::strerror(errno) +
                             ")");
  std::vector<uint8_t> out;
  std::vector<uint8_t> chunk(size_t(1) << 16);
  while (true) {
    const int got = gzread(f.get(), chunk.data(), unsigned(chunk.size()));
    if (got < 0) {
      int code = 0;
      const char* msg = gzerror(f.get(), &code);
      throw std::runtime_error("[" + tag + "] " + path + ": corrupt gzip stream (" +
                               std::string(msg ? msg : "unknown") + ")");
    }
    if (got == 0) {
      // gzread returns 0 both at the end of a whole stream and where a cut one stops.
      int code = 0;
      const char* msg = gzerror(f.get(), &code);
      if (code != Z_OK)
        throw std::runtime_error("[" + tag + "] " + path + ": gzip stream cut short or corrupt (" +
                                 std::string(msg ? msg : "unknown") + ") after " +
                                 std::to_string(out.size()) + " decompressed bytes");
      break;
    }
    if (out.size() + size_t(got) > max_bytes)
      throw std::runtime_error("[" + tag + "] " + path + ": larger than the limit of " +
                               std::to_string(max_bytes) + " bytes once decompressed");
    out.insert(out.end(), chunk.begin(), chunk.begin() + got);
  }
  return out;
}

std::string join_path(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  if (dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

bool is_regular_file(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

}  // namespace ss
