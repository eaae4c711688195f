#include "apps/run_io.h"

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <stdexcept>

namespace fs = std::filesystem;

namespace ss {

std::string prepare_run_dir(const std::string& root, const std::string& name, RunDirMode mode,
                            bool resumable) {
  const fs::path dir = fs::path(root) / name;
  const bool exists = fs::exists(dir);
  if (mode == RunDirMode::resume) {
    if (!exists || !fs::exists(dir / "checkpoint.safetensors"))
      throw std::runtime_error("[run] cannot resume: " + (dir / "checkpoint.safetensors").string() +
                               " does not exist");
    return dir.string();
  }
  if (exists && !fs::is_directory(dir))
    throw std::runtime_error("[run] " + dir.string() + " exists and is not a directory");
  if (exists && !fs::is_empty(dir)) {
    if (mode == RunDirMode::create)
      throw std::runtime_error("[run] " + dir.string() + " already holds a run; pass --overwrite " +
                               "to replace it, " + (resumable ? "--resume to continue it, " : "") +
                               "or choose another run.name");
    // Only a directory that looks like a run is emptied.
    if (!fs::exists(dir / "config.toml"))
      throw std::runtime_error("[run] refusing to overwrite " + dir.string() +
                               ": it has no config.toml, so it is not a selfsup run directory");
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
