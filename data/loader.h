// K-view batch loader: worker threads fill view-major [K*N, C, H, W] float32 batches ahead of
// the consumer, with every random choice derived from (seed, epoch, image index, view).
#pragma once
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "data/augment.h"
#include "data/dataset.h"

namespace ss {

struct Batch {
  std::vector<float> images;     // [K*N, C, H, W]; row k*N + n is view k of image n
  std::vector<int64_t> labels;   // N
  std::vector<int64_t> indices;  // N dataset indices
  std::vector<ViewDraws> draws;  // K*N, same order as images, when record_draws is set
  int64_t K = 0, N = 0, C = 0, H = 0, W = 0;
  int64_t epoch = 0, number = 0;  // batch number within the epoch
};

struct LoaderOptions {
  int64_t batch_size = 256;
  int views = 2;          // K
  int workers = 2;        // worker threads
  int prefetch = 3;       // batches finished or in progress ahead of the consumer (>= workers)
  bool shuffle = true;    // permutation per epoch from derive(seed, {epoch})
  bool drop_last = true;  // drop the last partial batch
  uint64_t seed = 0;
  bool record_draws = false;
};

// The order of an epoch: Fisher-Yates with Generator::derive(seed, {epoch}).
std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch);

class Loader {
 public:
  // ds must outlive the loader.
  Loader(const Dataset& ds, AugmentConfig aug, LoaderOptions opt);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // Begins (or restarts) an epoch; batches of any previous epoch are discarded.
  void start_epoch(int64_t epoch);
  // Next batch of the current epoch in order; false at its end. Rethrows a worker's exception.
  bool next(Batch& out);
  int64_t batches_per_epoch() const;
  const LoaderOptions& options() const { return opt_; }
  const Augmenter& augmenter() const { return aug_; }

  // Fills one batch directly (no threads): images perm[first .. first + count).
  void make_batch(const std::vector<int64_t>& order, int64_t epoch, int64_t number,
                  Batch& out) const;

 private:
  struct Slot {
    Batch batch;
    std::exception_ptr error;
  };
  void worker_loop();

  const Dataset& ds_;
  Augmenter aug_;
  LoaderOptions opt_;

  std::mutex mu_;
  std::condition_variable work_cv_, ready_cv_;
  bool stop_ = false, started_ = false;
  uint64_t generation_ = 0;
  int64_t epoch_ = 0, num_batches_ = 0, next_claim_ = 0, next_consume_ = 0;
  std::shared_ptr<const std::vector<int64_t>> order_;
  std::map<int64_t, Slot> ready_;
  std::vector<std::thread> threads_;
};

// Un-augmented batches in dataset order for feature extraction: eval preset (convert +
// Normalize), one view, no shuffling, last partial batch kept. Call start_epoch(0) then next().
std::unique_ptr<Loader> make_eval_loader(const Dataset& ds, int64_t batch_size, int workers = 2);

// Writes a PNG grid: one row per image (the first count images), the un-augmented image then K
// views, with Normalize undone and small images upscaled by nearest neighbour.
void augment_grid(const Dataset& ds, const std::string& preset, int K, int count, uint64_t seed,
                  const std::string& out_path);
void augment_grid(const Dataset& ds, const AugmentConfig& cfg, int K, int count, uint64_t seed,
                  const std::string& out_path);

}  // namespace ss
