// Loader throughput: the simclr-cifar pipeline (two 32x32 views per image) on a CIFAR-10 batch
// file, in images/s on one thread and through the threaded Loader.
//   bench_loader [file] [--workers W] [--epochs E]
// Prints "per-thread images/s: X" for scripts/bench_loader.py to read.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <thread>

#include "data/dataset.h"
#include "data/loader.h"

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

int main(int argc, char** argv) {
  std::string file = "/work/shared/data/cifar10/data_batch_1.bin";
  int workers = int(std::max(1u, std::thread::hardware_concurrency()));
  int epochs = 3;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--workers") && i + 1 < argc) {
      workers = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--epochs") && i + 1 < argc) {
      epochs = std::atoi(argv[++i]);
    } else {
      file = argv[i];
    }
  }
  try {
    const ss::MemoryDataset ds = ss::load_cifar(std::vector<std::string>{file});
    const ss::AugmentConfig cfg = ss::augment_preset("simclr-cifar", ds);
    ss::LoaderOptions o;
    o.batch_size = 256, o.views = 2, o.workers = 1, o.seed = 1;

    // One thread: make_batch on the calling thread, every image of the file, per epoch.
    const ss::Loader direct(ds, cfg, o);
    std::vector<int64_t> idx;
    ss::Batch b;
    double best = 0;
    for (int e = 0; e < epochs; ++e) {
      const std::vector<int64_t> perm = ss::epoch_permutation(ds.size(), o.seed, e);
      const auto t0 = std::chrono::steady_clock::now();
      for (int64_t first = 0; first < ds.size(); first += o.batch_size) {
        idx.assign(perm.begin() + first,
                   perm.begin() + std::min<int64_t>(first + o.batch_size, ds.size()));
        direct.make_batch(idx, e, first / o.batch_size, b);
      }
      best = std::max(best, double(ds.size()) / seconds_since(t0));
    }
    std::printf("simclr-cifar on %s: %lld images, 2 views of 32x32 each\n", file.c_str(),
                (long long)ds.size());
    std::printf("per-thread images/s: %.0f (best of %d epochs, one thread)\n", best, epochs);

    // The threaded loader, consuming every batch.
    o.workers = workers;
    ss::Loader loader(ds, cfg, o);
    const auto t0 = std::chrono::steady_clock::now();
    int64_t seen = 0;
    for (int e = 0; e < epochs; ++e) {
      loader.start_epoch(e);
      while (loader.next(b)) seen += b.N;
    }
    const double rate = double(seen) / seconds_since(t0);
    std::printf("loader images/s: %.0f with %d workers (%.0f per worker)\n", rate, workers,
                rate / workers);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
