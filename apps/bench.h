// `selfsup bench`: one SSL training step (data already in memory; encoder forward and backward
// on K*N views, head, loss, optimizer step), timed over several steps after a warm-up.
#pragma once
#include <string>

namespace CLI {
class App;
}

namespace ss {

struct BenchOptions {
  std::string model = "resnet18";  // encoder name, or a config file via `config`
  std::string config;              // take model, head and loss from this TOML file
  std::string loss;                // empty: the config's [loss] name, else infonce
  std::string device = "cpu";
  int64_t batch = 256;  // N; the step sees K*N views
  int64_t views = 2;
  int64_t image_size = 0;  // 0: the config's dataset (28 for Fashion-MNIST/MNIST), else 32
  int64_t channels = 0;    // 0: the config's dataset (1 for Fashion-MNIST/MNIST), else 3
  int64_t head_hidden = 512, head_out = 128;
  int64_t warmup = 2, steps = 5;
  int64_t threads = 0;  // 0: all cores
  bool profile = true;  // per-op breakdown (adds a little overhead)
  std::string json;     // also append a JSON line with the figures to this file
};

void add_bench_options(CLI::App& cmd, BenchOptions& opt);
int run_bench(const BenchOptions& opt);

}  // namespace ss
