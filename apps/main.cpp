// selfsup: pretrain, evaluate and compare self-supervised objectives from the command line.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "apps/bench.h"
#include "apps/compare.h"
#include "apps/train.h"
#include "data/loader.h"
#include "engine/cpu/blas_setup.h"
#include "engine/cpu/thread_pool.h"
#include "losses/loss.h"

using namespace ss;

namespace {

Config make_config(const std::string& file, const std::vector<std::string>& sets) {
  Config cfg;
  if (!file.empty()) cfg.load_file(file);
  for (const std::string& s : sets) cfg.apply_override(s);
  cfg.validate();
  return cfg;
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    const size_t b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
    if (b != std::string::npos) out.push_back(item.substr(b, e - b + 1));
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  // Line-buffered even into a pipe, so progress reaches `| tee log` as it is printed.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  cpu::select_blas_kernels(argv);
  CLI::App app{"selfsup: compare self-supervised objectives end to end"};
  app.require_subcommand(1);

  std::string config, runs = "runs", run_dir, losses = "du,infonce,align_uniform";
  std::vector<std::string> sets;
  bool resume = false, overwrite = false;

  auto* train_cmd = app.add_subcommand("train", "pretrain one encoder with one objective");
  train_cmd->add_option("--config,-c", config, "TOML configuration file")->check(CLI::ExistingFile);
  train_cmd->add_option("--set", sets, "override a key: section.key=value (repeatable)");
  train_cmd->add_option("--runs", runs, "folder holding the run directories");
  train_cmd->add_flag("--resume", resume, "continue runs/<run.name> from its checkpoint");
  train_cmd->add_flag("--overwrite", overwrite, "replace an existing run directory")
      ->excludes("--resume");

  auto* eval_cmd = app.add_subcommand("eval", "k-NN, linear probe, alignment and uniformity");
  eval_cmd->add_option("--run", run_dir, "a run directory (runs/<name>)")->required();
  eval_cmd->add_option("--set", sets,
                       "override an eval.* key, data.path, run.device or run.threads, "
                       "e.g. eval.features=head");

  auto* cmp_cmd = app.add_subcommand("compare", "pretrain and evaluate several objectives");
  cmp_cmd->add_option("--config,-c", config, "TOML configuration file")->check(CLI::ExistingFile);
  cmp_cmd->add_option("--losses", losses, "comma-separated registered loss names");
  cmp_cmd->add_option("--set", sets, "override a key: section.key=value (repeatable)");
  cmp_cmd->add_option("--runs", runs, "folder holding the run directories");
  cmp_cmd->add_flag("--overwrite", overwrite, "replace an existing comparison directory");

  BenchOptions bench;
  auto* bench_cmd = app.add_subcommand("bench", "time one SSL training step");
  add_bench_options(*bench_cmd, bench);

  std::string aug_dataset = "fashion-mnist", aug_path, aug_preset, aug_out = "views.png";
  int aug_views = 4, aug_count = 8;
  uint64_t aug_seed = 0;
  auto* aug_cmd = app.add_subcommand("augment", "write a PNG grid of K views per image");
  aug_cmd->add_option("--dataset", aug_dataset, "fashion-mnist, mnist, cifar10, cifar100, folder");
  aug_cmd->add_option("--data", aug_path, "dataset folder or file");
  aug_cmd->add_option(
      "--preset", aug_preset,
      "augmentation preset (default: fmnist for MNIST-like data, else simclr-cifar)");
  aug_cmd->add_option("--views,-k", aug_views, "views per image")->check(CLI::Range(1, 64));
  aug_cmd->add_option("--count,-n", aug_count, "images")->check(CLI::Range(1, 1024));
  aug_cmd->add_option("--seed", aug_seed, "seed")->check(CLI::NonNegativeNumber);
  aug_cmd->add_option("--out,-o", aug_out, "output PNG (.png)");

  CLI11_PARSE(app, argc, argv);
  try {
    if (*train_cmd) {
      TrainOptions to;
      to.runs_root = runs;
      to.mode = resume      ? RunDirMode::resume
                : overwrite ? RunDirMode::overwrite
                            : RunDirMode::create;
      train(make_config(config, sets), to);
    } else if (*eval_cmd) {
      if (!std::filesystem::is_regular_file(run_dir + "/config.toml"))
        throw std::runtime_error(
            "[eval] " + run_dir +
            " is not a run directory (no config.toml); pass --run runs/<name>");
      Config cfg;
      cfg.load_file(run_dir + "/config.toml");
      for (const std::string& s : sets) {
        const std::string key = s.substr(0, s.find('='));
        if (key.rfind("eval.", 0) != 0 && key != "data.path" && key != "run.device" &&
            key != "run.threads")
          throw std::invalid_argument("[eval] --set " + key +
                                      ": eval changes only eval.*, data.path, run.device and "
                                      "run.threads; the run's training keys are fixed");
        cfg.apply_override(s);
      }
      cfg.validate();
      Datasets data = load_datasets(cfg);
      Config saved;
      auto model = load_run_model(run_dir, saved, data.train.channels());
      if (cfg.get_string("run.device") == "cuda") model->to(Device::cuda);
      RunLog log(run_dir + "/log.txt");
      EvalSummary s = evaluate_model(*model, cfg, data, &log);
      CompareRow row;
      row.name = cfg.get_string("loss.name");
      row.eval = s;
      std::cout << markdown_table({row});
    } else if (*cmp_cmd) {
      CompareOptions co;
      co.losses = split_commas(losses);
      co.runs_root = runs;
      co.mode = overwrite ? RunDirMode::overwrite : RunDirMode::create;
      for (const std::string& l : co.losses) make_loss(l, {});  // unknown names fail up front
      run_compare(make_config(config, sets), co);
    } else if (*bench_cmd) {
      return run_bench(bench);
    } else if (*aug_cmd) {
      if (std::filesystem::path(aug_out).extension() != ".png")
        throw std::invalid_argument("[augment] --out " + aug_out + " must end in .png");
      if (aug_preset.empty())
        aug_preset =
            aug_dataset == "fashion-mnist" || aug_dataset == "mnist" ? "fmnist" : "simclr-cifar";
      Config cfg;
      cfg.set("data.dataset", aug_dataset);
      cfg.set("data.path", aug_path);
      cfg.set("data.train_limit", int64_t(aug_count));
      cfg.set("data.eval_limit", int64_t(1));
      cfg.validate();
      Datasets data = load_datasets(cfg);
      if (data.train.size() < aug_count)
        throw std::invalid_argument("[augment] --count " + std::to_string(aug_count) + " but " +
                                    (aug_path.empty() ? aug_dataset : aug_path) + " holds only " +
                                    std::to_string(data.train.size()) + " images");
      augment_grid(data.train, aug_preset, aug_views, aug_count, aug_seed, aug_out);
      std::cout << "wrote " << aug_out << " (" << aug_count << " images x " << aug_views
                << " views, preset " << aug_preset << ")\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "selfsup: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
