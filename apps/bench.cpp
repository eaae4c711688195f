#include "apps/bench.h"

#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "apps/config.h"
#include "apps/train.h"
#include "engine/cpu/blas_setup.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/thread_pool.h"
#include "engine/cpu/winograd.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "engine/profiler.h"
#include "losses/loss.h"
#include "models/head.h"

namespace ss {

void add_bench_options(CLI::App& cmd, BenchOptions& o) {
  auto* model = cmd.add_option("--model", o.model, "encoder name (resnet18, resnet-small, ...)");
  cmd.add_option("--config", o.config, "take model and head (and the loss) from a config")
      ->check(CLI::ExistingFile)
      ->excludes(model);
  cmd.add_option("--loss", o.loss, "registered loss name (default: the config's, else infonce)");
  cmd.add_option("--device", o.device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  cmd.add_option("--batch,-b", o.batch, "images per step (N)")->check(CLI::Range(1, 1 << 20));
  cmd.add_option("--views,-k", o.views, "views per image (K)")->check(CLI::Range(2, 64));
  cmd.add_option("--image-size", o.image_size,
                 "input height and width (default: the config's dataset, else 32)")
      ->check(CLI::Range(1, 4096));
  cmd.add_option("--channels", o.channels, "input channels (default: the config's dataset, else 3)")
      ->check(CLI::Range(1, 4096));
  cmd.add_option("--warmup", o.warmup, "untimed steps first")->check(CLI::Range(0, 100000));
  cmd.add_option("--steps", o.steps, "timed steps")->check(CLI::Range(1, 100000));
  cmd.add_option("--threads", o.threads, "compute threads (0: all cores)")
      ->check(CLI::Range(0, 1024));
  cmd.add_option("--profile", o.profile, "per-op time breakdown (true/false)");
  cmd.add_option("--json", o.json, "append the figures as one JSON line to this file");
}

namespace {
double peak_rss_mib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}
}  // namespace

int run_bench(const BenchOptions& o_in) {
  BenchOptions o = o_in;
  std::string head_bn = "true";
  LossParams loss_params;
  Config cfg;
  if (!o.config.empty()) {
    cfg.load_file(o.config);
    cfg.validate();
    // The same checks as train's: every loss table, the encoder, the augmentation preset. The
    // device is bench's own --device, so the file's run.device is not held against it.
    Config checked = cfg;
    checked.set("run.device", std::string("cpu"));
    check_run_setup(checked, {cfg.get_string("loss.name")});
    o.model = cfg.get_string("model.encoder");
    o.head_hidden = cfg.get_int("model.head_hidden");
    o.head_out = cfg.get_int("model.head_out");
    head_bn = cfg.get_bool("model.head_bn") ? "true" : "false";
    if (o.loss.empty()) o.loss = cfg.get_string("loss.name");
    loss_params = cfg.loss_params(o.loss);
  }
  // Unless given on the command line, the input is the config's dataset's images (1x28x28 for
  // Fashion-MNIST and MNIST), else CIFAR's 3x32x32.
  const std::string ds = o.config.empty() ? "" : cfg.get_string("data.dataset");
  const bool gray28 = ds == "fashion-mnist" || ds == "mnist";
  if (o.channels == 0) o.channels = gray28 ? 1 : 3;
  if (o.image_size == 0) o.image_size = gray28 ? 28 : 32;
  if (o.loss.empty()) o.loss = "infonce";
  // Open the JSON file before the (long) run, so a bad path fails at once, not after it.
  std::ofstream json_out;
  if (!o.json.empty()) {
    json_out.open(o.json, std::ios::app);
    if (!json_out) throw std::runtime_error("[bench] cannot open --json file " + o.json);
  }
  if (o.threads > 0) cpu::set_num_threads(int(o.threads));
  const Device dev = o.device == "cuda" ? Device::cuda : Device::cpu;
  const int64_t V = o.views * o.batch;
  const Shape in_shape = {V, o.channels, o.image_size, o.image_size};

  auto model = o.config.empty() ? make_ssl_model(o.model, o.channels, o.head_hidden, o.head_out,
                                                 head_bn == "true", 0)
                                : build_model(cfg, o.channels);
  const double fwd_flops = model->flops(in_shape);
  if (dev != Device::cpu) model->to(dev);
  LossPtr loss = make_loss(o.loss, loss_params);
  SgdOptions so;
  so.lr = 0.1;
  so.momentum = 0.9;
  Sgd opt(split_decay_groups(*model, 5e-4), so);
  Generator gen(1);
  Tensor x = Tensor::normal(in_shape, 0, 1, gen).to(dev);

  std::printf(
      "selfsup bench: %s + head %lld-%lld, loss %s, batch %lld x %lld views = %lld, "
      "%lldx%lldx%lld, %s\n",
      o.model.c_str(), (long long)o.head_hidden, (long long)o.head_out, o.loss.c_str(),
      (long long)o.batch, (long long)o.views, (long long)V, (long long)o.channels,
      (long long)o.image_size, (long long)o.image_size, o.device.c_str());
  std::printf("%s\n%s\n", cpu::thread_policy(), cpu::blas_description().c_str());
  if (dev == Device::cpu) {
    const int wm = cpu::winograd_mode();
    std::printf("3x3 stride-1 convs: %s (SELFSUP_WINOGRAD=%d)\n",
                wm == 0 ? "im2col + GEMM"
                : wm == 2
                    ? "Winograd F(2x2, 3x3)"
                    : "Winograd F(4x4, 3x3); F(2x2) on outputs under 4x4, im2col under 16 channels",
                wm);
  }
  std::printf("parameters %lld, forward %.2f GFLOP per step (x3 for forward + backward)\n",
              (long long)model->num_parameters(), fwd_flops / 1e9);

  auto one_step = [&] {
    model->train();
    LossOutput out = loss->forward(model->forward(x), o.views);
    opt.zero_grad();
    out.loss.backward();
    opt.step();
    return out.loss.item();  // forces completion on any device
  };
  for (int64_t i = 0; i < o.warmup; ++i) one_step();
  prof::reset();
  prof::set_enabled(o.profile);
  std::vector<double> times;
  for (int64_t i = 0; i < o.steps; ++i) {
    const double t0 = prof::now_seconds();
    one_step();
    times.push_back(prof::now_seconds() - t0);
  }
  prof::set_enabled(false);
  std::vector<double> sorted = times;
  std::sort(sorted.begin(), sorted.end());
  const double med = sorted[sorted.size() / 2];
  const double views_s = double(V) / med, gflops = 3 * fwd_flops / med / 1e9;
  const double rss = peak_rss_mib();
  std::printf("step times (ms):");
  for (double t : times) std::printf(" %.1f", t * 1e3);
  std::printf("\nmedian %.1f ms/step | %.1f views/s | %.1f GFLOP/s | peak RSS %.0f MiB\n",
              med * 1e3, views_s, gflops, rss);
  if (dev == Device::cpu)
    std::printf("tensor memory: peak %.0f MiB live, %.0f MiB live + cached for reuse\n",
                double(cpu::pool_peak_in_use_bytes()) / 1048576.0,
                double(cpu::pool_peak_bytes()) / 1048576.0);

  if (o.profile) {
    double total = 0;
    for (double t : times) total += t;
    std::printf("\nwhere the time goes (per step, %lld timed steps):\n", (long long)o.steps);
    std::printf("  %-18s %10s %10s %8s\n", "op", "fwd ms", "bwd ms", "share");
    double counted = 0;
    for (const prof::Entry& e : prof::snapshot()) {
      const double f = e.forward_seconds / double(o.steps),
                   b = e.backward_seconds / double(o.steps);
      counted += e.forward_seconds + e.backward_seconds;
      if ((e.forward_seconds + e.backward_seconds) / total < 0.002) continue;
      std::printf("  %-18s %10.2f %10.2f %7.1f%%\n", e.op.c_str(), f * 1e3, b * 1e3,
                  100 * (e.forward_seconds + e.backward_seconds) / total);
    }
    std::printf("  %-29s %10.2f %7.1f%%\n", "other: optimizer, tape, alloc",
                (total - counted) / double(o.steps) * 1e3, 100 * (total - counted) / total);
  }
  if (json_out.is_open()) {
    std::vector<double> step_ms;
    for (double t : times) step_ms.push_back(t * 1e3);
    json_out << nlohmann::json{{"impl", "selfsup"},        {"model", o.model},
                               {"batch", o.batch},         {"views", o.views},
                               {"ms_per_step", med * 1e3}, {"views_per_s", views_s},
                               {"gflops", gflops},         {"peak_rss_mib", rss},
                               {"step_ms", step_ms},       {"loss", o.loss},
                               {"device", o.device},       {"threads", cpu::num_threads()},
                               {"channels", o.channels},   {"image_size", o.image_size},
                               {"profile", o.profile}}
                    .dump()
             << "\n";
  }
  return 0;
}

}  // namespace ss
