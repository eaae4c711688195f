// Loader: persistent worker threads claim batch numbers, fill them, and hand them to the
// consumer in order through a bounded window.
#include "data/loader.h"

#include <algorithm>
#include <stdexcept>

namespace ss {

// Fisher-Yates: for i = n-1 .. 1, swap(p[i], p[below(i + 1)]).
std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> p(size_t(std::max<int64_t>(n, 0)));
  for (int64_t i = 0; i < n; ++i) p[size_t(i)] = i;
  Generator g = Generator::derive(seed, {uint64_t(epoch)});
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[size_t(i)], p[g.below(uint64_t(i) + 1)]);
  return p;
}

Loader::Loader(const Dataset& ds, AugmentConfig aug, LoaderOptions opt)
    : ds_(ds), aug_(std::move(aug), ds.channels(), ds.height(), ds.width()), opt_(opt) {
  if (opt_.batch_size <= 0)
    throw std::invalid_argument("[loader] batch_size " + std::to_string(opt_.batch_size) +
                                " must be positive");
  if (opt_.views <= 0)
    throw std::invalid_argument("[loader] views " + std::to_string(opt_.views) +
                                " must be positive");
  if (opt_.workers <= 0 || opt_.workers > 256)
    throw std::invalid_argument("[loader] workers " + std::to_string(opt_.workers) +
                                " must be in [1, 256]");
  if (ds_.size() == 0) throw std::invalid_argument("[loader] dataset " + ds_.name() + " is empty");
  opt_.prefetch = std::max(opt_.prefetch, opt_.workers);
  for (int i = 0; i < opt_.workers; ++i) threads_.emplace_back([this] { worker_loop(); });
}

// Sets stop, wakes every thread and joins; workers finish at most their current batch.
Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  ready_cv_.notify_all();
  for (auto& t : threads_) t.join();
}

// floor(n / B) batches with drop_last, ceil(n / B) without.
int64_t Loader::batches_per_epoch() const {
  const int64_t n = ds_.size(), b = opt_.batch_size;
  return opt_.drop_last ? n / b : (n + b - 1) / b;
}

void Loader::start_epoch(int64_t epoch) {
  std::vector<int64_t> order;
  if (opt_.shuffle) {
    order = epoch_permutation(ds_.size(), opt_.seed, epoch);
  } else {
    order.resize(size_t(ds_.size()));
    for (int64_t i = 0; i < ds_.size(); ++i) order[size_t(i)] = i;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++generation_;
    started_ = true;
    epoch_ = epoch;
    num_batches_ = batches_per_epoch();
    next_claim_ = next_consume_ = 0;
    order_ = std::make_shared<const std::vector<int64_t>>(std::move(order));
    ready_.clear();
  }
  work_cv_.notify_all();
}

// View k of image n goes to row k*N + n; its draws come from derive(seed, {epoch, index, k}).
void Loader::make_batch(const std::vector<int64_t>& idx, int64_t epoch, int64_t number,
                        Batch& out) const {
  const int64_t n = int64_t(idx.size()), k = opt_.views;
  const size_t per = aug_.out_numel();
  out.K = k, out.N = n, out.C = aug_.out_channels();
  out.H = aug_.config().out_h, out.W = aug_.config().out_w;
  out.epoch = epoch, out.number = number;
  out.images.resize(size_t(k * n) * per);
  out.labels.resize(size_t(n));
  out.indices = idx;
  out.draws.assign(opt_.record_draws ? size_t(k * n) : 0, ViewDraws{});
  for (int64_t i = 0; i < n; ++i) {
    const int64_t d = idx[size_t(i)];
    out.labels[size_t(i)] = ds_.label(d);
    const uint8_t* px = ds_.image(d);
    for (int64_t v = 0; v < k; ++v) {
      Generator g = Generator::derive(opt_.seed, {uint64_t(epoch), uint64_t(d), uint64_t(v)});
      const size_t row = size_t(v * n + i);
      aug_.apply(px, g, out.images.data() + row * per,
                 opt_.record_draws ? &out.draws[row] : nullptr);
    }
  }
}

// Claims the next batch number while it is inside the window [consumed, consumed + prefetch).
void Loader::worker_loop() {
  while (true) {
    std::shared_ptr<const std::vector<int64_t>> order;
    int64_t b = 0, epoch = 0;
    uint64_t gen = 0;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [this] {
        return stop_ || (started_ && next_claim_ < num_batches_ &&
                         next_claim_ < next_consume_ + opt_.prefetch);
      });
      if (stop_) return;
      b = next_claim_++;
      gen = generation_;
      epoch = epoch_;
      order = order_;
    }
    Slot slot;
    try {
      const int64_t first = b * opt_.batch_size;
      const int64_t last = std::min<int64_t>(first + opt_.batch_size, int64_t(order->size()));
      std::vector<int64_t> idx(order->begin() + first, order->begin() + last);
      make_batch(idx, epoch, b, slot.batch);
    } catch (...) {
      slot.error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (gen != generation_) continue;  // the epoch was restarted meanwhile
      ready_[b] = std::move(slot);
    }
    ready_cv_.notify_all();
  }
}

bool Loader::next(Batch& out) {
  Slot slot;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (!started_) throw std::logic_error("[loader] next() called before start_epoch()");
    if (next_consume_ >= num_batches_) return false;
    ready_cv_.wait(lock, [this] { return stop_ || ready_.count(next_consume_) > 0; });
    if (stop_) return false;
    auto it = ready_.find(next_consume_);
    slot = std::move(it->second);
    ready_.erase(it);
    ++next_consume_;
  }
  work_cv_.notify_all();
  if (slot.error) std::rethrow_exception(slot.error);
  out = std::move(slot.batch);
  return true;
}

std::unique_ptr<Loader> make_eval_loader(const Dataset& ds, int64_t batch_size, int workers) {
  LoaderOptions o;
  o.batch_size = batch_size;
  o.views = 1;
  o.workers = workers;
  o.shuffle = false;
  o.drop_last = false;
  return std::make_unique<Loader>(ds, augment_preset("eval", ds), o);
}

}  // namespace ss
