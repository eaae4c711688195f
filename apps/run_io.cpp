#include "apps/run_io.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <stdexcept>

namespace fs = std::filesystem;

namespace ss {

namespace {
// Files and folders selfsup writes into a run or comparison directory.
bool written_by_selfsup(const fs::path& p) {
  const std::string n = p.filename().string();
  if (fs::is_directory(p)) return fs::exists(p / "config.toml");  // a comparison's sub-run
  return n == "config.toml" || n == "log.txt" || n == "metrics.jsonl" || n == "compare.md" ||
         n == "compare.csv" || n == "plots.gp" || n == "plot.dat" ||
         n.rfind("checkpoint.safetensors", 0) == 0 || p.extension() == ".png";
}

// The first entry under dir (recursively through sub-runs) that selfsup did not write, or "".
std::string foreign_entry(const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!written_by_selfsup(e.path())) return e.path().string();
    if (e.is_directory()) {
      const std::string inner = foreign_entry(e.path());
      if (!inner.empty()) return inner;
    }
  }
  return "";
}
}  // namespace

bool is_plain_run_name(const std::string& name) {
  if (name.empty() || name[0] == '/') return false;
  for (size_t b = 0; b <= name.size();) {
    const size_t e = std::min(name.find('/', b), name.size());
    const std::string part = name.substr(b, e - b);
    if (part.empty() || part == "." || part == "..") return false;
    b = e + 1;
  }
  return true;
}

std::string prepare_run_dir(const std::string& root, const std::string& name, RunDirMode mode,
                            bool resumable) {
  const fs::path dir = fs::path(root) / name;
  // Defence in depth beside the run.name check: a plain name, and the run folder strictly inside
  // the root (also after symbolic links are followed).
  const fs::path canon_root = fs::weakly_canonical(fs::absolute(root));
  const fs::path canon_dir = fs::weakly_canonical(fs::absolute(dir));
  const auto rel = canon_dir.lexically_relative(canon_root);
  if (!is_plain_run_name(name) || rel.empty() || rel == "." || *rel.begin() == "..")
    throw std::runtime_error("[run] run.name '" + name + "' does not name a folder inside " + root);
  const bool exists = fs::exists(dir);
  const bool has_checkpoint = exists && fs::exists(dir / "checkpoint.safetensors");
  if (mode == RunDirMode::resume) {
    if (!has_checkpoint)
      throw std::runtime_error("[run] cannot resume: " + (dir / "checkpoint.safetensors").string() +
                               " does not exist");
    return dir.string();
  }
  if (exists && !fs::is_directory(dir))
    throw std::runtime_error("[run] " + dir.string() + " exists and is not a directory");
  if (exists && !fs::is_empty(dir)) {
    if (mode == RunDirMode::create)
      throw std::runtime_error("[run] " + dir.string() +
                               " is not empty; pass --overwrite to replace the run in it, " +
                               (resumable && has_checkpoint ? "--resume to continue it, " : "") +
                               "or choose another run.name");
    // Only a directory that looks like a run is emptied, and only if everything in it is
    // selfsup's own output: a file the user put there stops the overwrite.
    if (!fs::exists(dir / "config.toml"))
      throw std::runtime_error("[run] refusing to overwrite " + dir.string() +
                               ": it has no config.toml, so it is not a selfsup run directory");
    const std::string foreign = foreign_entry(dir);
    if (!foreign.empty())
      throw std::runtime_error("[run] refusing to overwrite " + dir.string() + ": it holds " +
                               foreign + ", which selfsup did not write; move it away first");
    fs::remove_all(dir);
  }
  fs::create_directories(dir);
  return dir.string();
}

RunLog::RunLog(const std::string& path, bool quiet) : file_(path, std::ios::app), quiet_(quiet) {
  if (!file_) throw std::runtime_error("[run] cannot open log file " + path);
}

void RunLog::line(const std::string& text) {
  if (!quiet_) std::cout << text << std::endl;
  if (file_.is_open()) file_ << text << std::endl;
}

MetricsFile::MetricsFile(const std::string& path) : file_(path, std::ios::app) {
  if (!file_) throw std::runtime_error("[run] cannot open metrics file " + path);
}

void MetricsFile::write(const nlohmann::json& row) {
  if (file_.is_open()) file_ << row.dump() << std::endl;
}

std::vector<nlohmann::json> read_metrics(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("[run] cannot read metrics file " + path);
  std::vector<nlohmann::json> rows;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    try {
      rows.push_back(nlohmann::json::parse(line));
    } catch (const nlohmann::json::exception& e) {
      throw std::runtime_error("[run] " + path + ":" + std::to_string(n) + ": " + e.what());
    }
  }
  return rows;
}

Progress::Progress(int64_t total_steps) : total_(total_steps) {
  start();
}

void Progress::start() {
  t0_ = Clock::now();
}

void Progress::step(int64_t images) {
  ++done_;
  images_ += images;
}

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(Clock::now() - t0_).count();
}

double Progress::images_per_second() const {
  const double s = elapsed_seconds();
  return s > 0 ? double(images_) / s : 0.0;
}

std::string Progress::eta() const {
  if (done_ == 0) return "?";
  return format_duration(elapsed_seconds() / double(done_) * double(total_ - done_));
}

std::string format_duration(double seconds) {
  const int64_t s = int64_t(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", (long long)(s / 3600), (long long)(s / 60 % 60));
  else if (s >= 60)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%llds", (long long)s);
  return buf;
}

void write_text_file(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) throw std::runtime_error("[run] cannot write " + tmp);
    out << text;
    if (!out.flush()) throw std::runtime_error("[run] write to " + tmp + " failed");
  }
  fs::rename(tmp, path);
}

}  // namespace ss
