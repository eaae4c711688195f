// Pretraining one encoder with one objective: `selfsup train`, and the evaluation that
// `selfsup eval` and `selfsup compare` run on a finished model.
#pragma once
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "apps/config.h"
#include "apps/evaluate.h"
#include "apps/run_io.h"
#include "data/dataset.h"
#include "models/head.h"

namespace ss {

struct Datasets {
  MemoryDataset train;    // pretraining images and the k-NN bank
  MemoryDataset heldout;  // never seen in pretraining: k-NN queries, probe test set
};

// The datasets named by data.dataset / data.path / data.train_files / data.eval_files, cut to
// data.train_limit and data.eval_limit.
Datasets load_datasets(const Config& cfg);

// The encoder + head of the configuration, initialised from run.seed.
std::shared_ptr<SslModel> build_model(const Config& cfg, int64_t in_channels);

struct TrainOptions {
  std::string runs_root = "runs";
  RunDirMode mode = RunDirMode::create;
  bool quiet = false;  // no stdout (the log file is still written)
};

struct TrainSummary {
  std::string run_dir;
  int64_t epochs_done = 0;
  double last_loss = 0;
  double last_knn_top1 = -1;  // -1 when no k-NN evaluation ran
  double train_seconds = 0;
  double images_per_second = 0;  // views per second during the training steps
  std::map<std::string, double> last_diagnostics;
  // The k-NN features of the final weights (bank, held-out), when the last epoch evaluated.
  std::shared_ptr<FeatureSet> final_bank, final_test;
};

// Everything checkable before a run directory is made or a step is trained: the losses that
// will run and every [loss.<name>] table, the encoder, the augmentation preset, the device.
// Errors name the key or table.
void check_run_setup(const Config& cfg, const std::vector<std::string>& losses);
// The configuration with a relative data.path made absolute, as run directories store it.
Config resolve_paths(Config cfg);

// Runs (or resumes) the configured pretraining in runs_root/run.name. With the datasets given,
// they are used instead of loading them again.
TrainSummary train(const Config& cfg, const TrainOptions& opt, const Datasets* data = nullptr);

struct EvalSummary {
  KnnResult knn;
  double linear_top1 = NAN;  // NaN when the probe was skipped
  double align = 0, unif = 0;
};

// k-NN, linear probe and alignment / uniformity of the model's features on the held-out set.
// Features already extracted from these same weights (TrainSummary::final_bank/final_test)
// are used instead of being computed again.
EvalSummary evaluate_model(SslModel& model, const Config& cfg, const Datasets& data,
                           RunLog* log = nullptr, const FeatureSet* bank = nullptr,
                           const FeatureSet* test = nullptr);

// Loads runs/<name>/checkpoint.safetensors into a model built from its config.toml.
std::shared_ptr<SslModel> load_run_model(const std::string& run_dir, Config& cfg_out,
                                         int64_t in_channels);

}  // namespace ss
