// `selfsup compare`: one encoder per objective under the same seed, data, augmentations,
// model and budget, evaluated side by side, with two honest baselines (the same encoder at
// random initialisation, and k-NN on raw pixels).
#pragma once
#include <string>
#include <vector>

#include "apps/config.h"
#include "apps/train.h"

namespace ss {

struct CompareRow {
  std::string name;   // objective, "random init" or "raw pixels"
  double loss = NAN;  // final training loss (objectives only)
  EvalSummary eval;
  double train_seconds = 0;  // 0 for baselines
  double images_per_second = 0;
};

struct CompareOptions {
  std::vector<std::string> losses = {"du", "infonce", "align_uniform"};
  std::string runs_root = "runs";
  RunDirMode mode = RunDirMode::create;
};

// Runs everything, prints the table, writes runs/<name>/compare.{md,csv} and the plots.
std::vector<CompareRow> run_compare(const Config& cfg, const CompareOptions& opt);

std::string markdown_table(const std::vector<CompareRow>& rows);
std::string csv_table(const std::vector<CompareRow>& rows);

// Loss, k-NN accuracy, the alignment-uniformity plane and DU's weight statistics per epoch,
// drawn with gnuplot from each run's metrics.jsonl into dir/*.png. Returns the files written
// (empty, with a warning on stderr, when gnuplot is missing).
std::vector<std::string> write_plots(const std::string& dir,
                                     const std::vector<std::string>& run_names);

}  // namespace ss
