// What a run writes: the run directory, a human log (stdout and log.txt), and the
// machine-readable metrics file (metrics.jsonl, one JSON object per line).
#pragma once
#include <chrono>
#include <cstdint>
#include <fstream>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

namespace ss {

enum class RunDirMode { create, overwrite, resume };

// True when `name` can name a run folder under a runs root: relative, and every '/'-separated
// part a plain folder name (not empty, '.' or '..'), so it never names the root itself or
// anything outside it.
bool is_plain_run_name(const std::string& name);

// Makes runs/<name>. `create` refuses an existing, non-empty directory (nothing the user wrote
// is touched); `overwrite` empties it first; `resume` requires it to exist.
// `resumable` adds "--resume to continue it" to the refusal (train has --resume, compare not).
std::string prepare_run_dir(const std::string& root, const std::string& name, RunDirMode mode,
                            bool resumable = true);

// Lines to stdout and to <dir>/log.txt (appended, so a resumed run keeps its history).
class RunLog {
 public:
  RunLog() = default;
  explicit RunLog(const std::string& path, bool quiet = false);
  void line(const std::string& text);
  void set_quiet(bool q) { quiet_ = q; }

 private:
  std::ofstream file_;
  bool quiet_ = false;
};

// Appends JSON objects, one per line, flushed after each.
class MetricsFile {
 public:
  MetricsFile() = default;
  explicit MetricsFile(const std::string& path);
  void write(const nlohmann::json& row);

 private:
  std::ofstream file_;
};

// Reads every row of a metrics.jsonl file.
std::vector<nlohmann::json> read_metrics(const std::string& path);

// Throughput and time-left estimate over a fixed amount of work.
class Progress {
 public:
  explicit Progress(int64_t total_steps);
  void start();
  // Call once per finished step with the number of images (views) it processed.
  void step(int64_t images);
  double images_per_second() const;
  double elapsed_seconds() const;
  std::string eta() const;  // "1m23s"
  int64_t done() const { return done_; }

 private:
  using Clock = std::chrono::steady_clock;
  int64_t total_, done_ = 0, images_ = 0;
  Clock::time_point t0_;
};

std::string format_duration(double seconds);
// Writes text to path atomically (temporary file, then rename).
void write_text_file(const std::string& path, const std::string& text);

}  // namespace ss
