#include "engine/cpu/thread_pool.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace ss::cpu {

namespace {
thread_local bool t_in_region = false;
thread_local bool t_gemm_allowed = false;

class Pool {
 public:
  explicit Pool(int n) : size_(std::max(1, n)) {
    for (int i = 1; i < size_; ++i) workers_.emplace_back([this, i] { loop(i); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }

  int size() const { return size_; }

  // Splits [0, n) into `size_` contiguous parts, runs part 0 on the caller.
  void run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    const int64_t parts =
        std::min<int64_t>(size_, std::max<int64_t>(1, n / std::max<int64_t>(1, grain)));
    if (parts <= 1 || t_in_region) {
      // Inline, but still a region: the same rules hold whatever the thread count.
      const bool prev = t_in_region;
      t_in_region = true;
      try {
        fn(0, n);
      } catch (...) {
        t_in_region = prev;
        throw;
      }
      t_in_region = prev;
      return;
    }
    std::unique_lock<std::mutex> job_lock(job_mu_);  // one parallel_for at a time
    {
      std::lock_guard<std::mutex> lk(mu_);
      fn_ = &fn;
      n_ = n;
      parts_ = parts;
      pending_ = int(parts) - 1;
      error_ = nullptr;
      ++generation_;
    }
    cv_.notify_all();
    execute(0);
    std::unique_lock<std::mutex> lk(mu_);
    done_cv_.wait(lk, [this] { return pending_ == 0; });
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void execute(int64_t part) {
    const int64_t begin = n_ * part / parts_, end = n_ * (part + 1) / parts_;
    t_in_region = true;
    try {
      if (begin < end) (*fn_)(begin, end);
    } catch (...) {
      std::lock_guard<std::mutex> lk(mu_);
      if (!error_) error_ = std::current_exception();
    }
    t_in_region = false;
  }

  void loop(int index) {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        if (index >= parts_) continue;
      }
      execute(index);
      std::lock_guard<std::mutex> lk(mu_);
      if (--pending_ == 0) done_cv_.notify_one();
    }
  }

  int size_;
  std::vector<std::thread> workers_;
  std::mutex mu_, job_mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0, parts_ = 0;
  int pending_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

int default_threads() {
  if (const char* env = std::getenv("SELFSUP_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

std::mutex g_pool_mu;
std::unique_ptr<Pool> g_pool;
std::string g_policy;

Pool& pool() {
  std::lock_guard<std::mutex> lk(g_pool_mu);
  if (!g_pool) {
    const int n = default_threads();
    g_pool = std::make_unique<Pool>(n);
    openblas_set_num_threads(n);
    g_policy = "threads: " + std::to_string(n) + " engine pool + " + std::to_string(n) +
               " OpenBLAS, never both at once (GEMMs inside pool work run single-threaded)";
  }
  return *g_pool;
}
}  // namespace

int num_threads() {
  return pool().size();
}

void set_num_threads(int n) {
  std::lock_guard<std::mutex> lk(g_pool_mu);
  n = std::max(1, n);
  g_pool = std::make_unique<Pool>(n);
  openblas_set_num_threads(n);
  g_policy = "threads: " + std::to_string(n) + " engine pool + " + std::to_string(n) +
             " OpenBLAS, never both at once (GEMMs inside pool work run single-threaded)";
}

bool in_parallel_region() {
  return t_in_region;
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  pool().run(n, grain, fn);
}

bool gemm_allowed_in_region() {
  return t_gemm_allowed;
}

void parallel_for_gemm(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  struct OneBlasThread {  // restores OpenBLAS's thread count on every exit
    int n = num_threads();
    OneBlasThread() { openblas_set_num_threads(1); }
    ~OneBlasThread() { openblas_set_num_threads(n); }
  } one;
  parallel_for(n, grain, [&](int64_t b, int64_t e) {
    struct Allow {
      bool prev = t_gemm_allowed;
      Allow() { t_gemm_allowed = true; }
      ~Allow() { t_gemm_allowed = prev; }
    } allow;
    fn(b, e);
  });
}

const char* thread_policy() {
  pool();
  return g_policy.c_str();
}

}  // namespace ss::cpu
