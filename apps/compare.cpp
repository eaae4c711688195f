#include "apps/compare.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>

#include "engine/ops.h"

namespace fs = std::filesystem;

namespace ss {

namespace {

std::string num(double v, const char* f = "%.4f") {
  if (std::isnan(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string pct(double v) {
  return v < 0 ? "-" : num(100 * v, "%.2f");
}

// The raw-pixel baseline: the un-augmented, normalised images themselves as features.
EvalSummary raw_pixel_baseline(const Config& cfg, const Datasets& data) {
  EncodeFn enc = [](const Tensor& x) { return flatten(x); };
  FeatureSet bank =
      extract_features(data.train, enc, cfg.get_int("eval.bank_limit"), 512, Device::cpu);
  FeatureSet test = extract_features(data.heldout, enc, 0, 512, Device::cpu);
  EvalSummary s;
  s.knn = knn_evaluate(bank, test, cfg.get_int("eval.knn_k"), cfg.get_double("eval.knn_t"));
  if (cfg.get_int("eval.linear_epochs") > 0) {
    LinearProbeOptions lp;
    lp.epochs = cfg.get_int("eval.linear_epochs");
    lp.lr = cfg.get_double("eval.linear_lr");
    lp.seed = uint64_t(cfg.get_int("run.seed"));
    s.linear_top1 = linear_probe(bank, test, lp);
  }
  const int64_t n = std::min<int64_t>(2048, test.features.size(0));
  s.unif = uniformity_metric(test.features.slice(0, n));
  s.align = NAN;
  return s;
}

}  // namespace

std::string markdown_table(const std::vector<CompareRow>& rows) {
  std::ostringstream os;
  os << "| objective | final loss | k-NN top-1 (%) | k-NN top-5 (%) | linear top-1 (%) | align | "
        "unif | train time | views/s |\n";
  os << "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const CompareRow& r : rows)
    os << "| " << r.name << " | " << num(r.loss) << " | " << pct(r.eval.knn.top1) << " | "
       << pct(r.eval.knn.top5) << " | " << pct(r.eval.linear_top1) << " | " << num(r.eval.align)
       << " | " << num(r.eval.unif) << " | "
       << (r.train_seconds > 0 ? format_duration(r.train_seconds) : std::string("-")) << " | "
       << (r.images_per_second > 0 ? num(r.images_per_second, "%.1f") : std::string("-")) << " |\n";
  return os.str();
}

std::string csv_table(const std::vector<CompareRow>& rows) {
  std::ostringstream os;
  os << "objective,final_loss,knn_top1,knn_top5,linear_top1,align,unif,train_seconds,views_per_s\n";
  for (const CompareRow& r : rows)
    os << r.name << "," << r.loss << "," << r.eval.knn.top1 << "," << r.eval.knn.top5 << ","
       << r.eval.linear_top1 << "," << r.eval.align << "," << r.eval.unif << "," << r.train_seconds
       << "," << r.images_per_second << "\n";
  return os.str();
}

std::vector<CompareRow> run_compare(const Config& cfg_in, const CompareOptions& opt) {
  Config cfg = resolve_paths(cfg_in);
  cfg.validate();
  if (opt.losses.empty()) throw std::invalid_argument("[compare] --losses names no objective");
  std::string list;
  for (const std::string& l : opt.losses) {
    if (std::count(opt.losses.begin(), opt.losses.end(), l) > 1)
      throw std::invalid_argument("[compare] --losses names '" + l + "' twice");
    list += (list.empty() ? "" : ", ") + l;
  }
  // Every objective's parameters, and the data, are checked before anything is written.
  check_run_setup(cfg, opt.losses);
  Datasets data = load_datasets(cfg);

  const std::string name = cfg.get_string("run.name");
  const std::string dir = prepare_run_dir(opt.runs_root, name, opt.mode, false);
  write_text_file(dir + "/config.toml", cfg.to_toml());
  RunLog log(dir + "/log.txt");
  log.line("selfsup compare: " + dir + " (objectives: " + list + ")");

  std::vector<CompareRow> rows;
  std::vector<std::string> run_names;
  for (const std::string& loss : opt.losses) {
    Config c = cfg;
    c.set("loss.name", loss);
    c.set("run.name", name + "/" + loss);
    log.line("== " + loss + " ==");
    TrainOptions to;
    to.runs_root = opt.runs_root;
    to.mode = RunDirMode::overwrite;
    TrainSummary ts = train(c, to, &data);
    Config saved;
    auto model = load_run_model(ts.run_dir, saved, data.train.channels());
    CompareRow r;
    r.name = loss;
    r.loss = ts.last_loss;
    r.eval = evaluate_model(*model, c, data, &log, ts.final_bank.get(), ts.final_test.get());
    r.train_seconds = ts.train_seconds;
    r.images_per_second = ts.images_per_second;
    rows.push_back(r);
    run_names.push_back(loss);
  }

  log.line("== baselines ==");
  auto random_model = build_model(cfg, data.train.channels());
  if (cfg.get_string("run.device") == "cuda") random_model->to(Device::cuda);
  CompareRow rnd;
  rnd.name = "random init";
  rnd.eval = evaluate_model(*random_model, cfg, data, &log);
  rows.push_back(rnd);
  CompareRow raw;
  raw.name = "raw pixels";
  raw.eval = raw_pixel_baseline(cfg, data);
  rows.push_back(raw);

  const std::string md = markdown_table(rows);
  write_text_file(dir + "/compare.md", md);
  write_text_file(dir + "/compare.csv", csv_table(rows));
  log.line("\n" + md);
  for (const std::string& f : write_plots(dir, run_names)) log.line("plot: " + f);
  log.line("table: " + dir + "/compare.md, " + dir + "/compare.csv");
  return rows;
}

std::vector<std::string> write_plots(const std::string& dir,
                                     const std::vector<std::string>& run_names) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    std::cerr << "[plots] gnuplot not found; install gnuplot-nox to get the plots\n";
    return {};
  }
  // One whitespace-separated data file per run with the columns the plots use.
  const std::vector<std::string> cols = {"epoch",  "loss",  "knn_top1", "align", "unif",
                                         "S_mean", "S_min", "S_max",    "w_max"};
  for (const std::string& r : run_names) {
    std::ofstream out(dir + "/" + r + "/plot.dat");
    for (const auto& row : read_metrics(dir + "/" + r + "/metrics.jsonl")) {
      for (size_t i = 0; i < cols.size(); ++i) {
        out << (i ? " " : "");
        if (row.contains(cols[i]) && row[cols[i]].is_number())
          out << row[cols[i]].get<double>();
        else
          out << "NaN";
      }
      out << "\n";
    }
  }
  auto plot_cmd = [&](int ycol, int xcol, const char* with) {
    std::string s;
    for (size_t i = 0; i < run_names.size(); ++i)
      s += (i ? ", " : "plot ") + std::string("'") + dir + "/" + run_names[i] +
           "/plot.dat' using " + std::to_string(xcol) + ":" + std::to_string(ycol) + " with " +
           with + " title '" + run_names[i] + "'";
    return s + "\n";
  };
  std::ostringstream gp;
  gp << "set terminal pngcairo size 900,600 noenhanced\nset grid\nset key outside right\n";
  gp << "set output '" << dir << "/loss.png'\nset title 'training loss per epoch'\n"
     << "set xlabel 'epoch'\nset ylabel 'loss'\n"
     << plot_cmd(2, 1, "linespoints");
  gp << "set output '" << dir << "/knn.png'\nset title 'k-NN top-1 on held-out images'\n"
     << "set ylabel 'top-1'\n"
     << plot_cmd(3, 1, "linespoints");
  gp << "set output '" << dir << "/align_unif.png'\n"
     << "set title 'alignment-uniformity plane (Wang & Isola), one point per epoch'\n"
     << "set xlabel 'uniformity (t = 2, lower is more uniform)'\n"
     << "set ylabel 'alignment (alpha = 2, lower is better aligned)'\n"
     << plot_cmd(4, 5, "linespoints");
  const auto du = std::find(run_names.begin(), run_names.end(), "du");
  std::vector<std::string> files = {dir + "/loss.png", dir + "/knn.png", dir + "/align_unif.png"};
  if (du != run_names.end()) {
    const std::string f = dir + "/du/plot.dat";
    gp << "set output '" << dir << "/du_weights.png'\n"
       << "set title 'DU weights per epoch: S_n = sum_m w''_nm and the largest w''_nm'\n"
       << "set xlabel 'epoch'\nset ylabel 'value'\nset logscale y\n"
       << "plot '" << f << "' using 1:6 with linespoints title 'mean S_n', '" << f
       << "' using 1:7 with lines title 'min S_n', '" << f
       << "' using 1:8 with lines title 'max S_n', '" << f
       << "' using 1:9 with linespoints title 'max w''_nm'\nunset logscale y\n";
    files.push_back(dir + "/du_weights.png");
  }
  const std::string script = dir + "/plots.gp";
  write_text_file(script, gp.str());
  if (std::system(("gnuplot '" + script + "'").c_str()) != 0) {
    std::cerr << "[plots] gnuplot failed on " << script << "\n";
    return {};
  }
  return files;
}

}  // namespace ss
