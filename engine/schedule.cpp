#include "engine/schedule.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace ss {

namespace {

void check_schedule(double base, double end, int64_t warmup, int64_t total) {
  if (total < 1 || warmup < 0 || warmup > total)
    throw std::invalid_argument(
        "[schedule] needs total_steps >= 1 and 0 <= warmup_steps <= "
        "total_steps, got warmup " +
        std::to_string(warmup) + ", total " + std::to_string(total));
  if (!std::isfinite(base) || !std::isfinite(end) || base < 0 || end < 0)
    throw std::invalid_argument("[schedule] learning rates must be finite and >= 0, got base " +
                                std::to_string(base) + ", end " + std::to_string(end));
}

}  // namespace

double warmup_cosine_lr(int64_t s, double base, double end, int64_t W, int64_t S) {
  check_schedule(base, end, W, S);
  if (s < 0) throw std::invalid_argument("[schedule] step " + std::to_string(s) + " < 0");
  if (s >= S) return end;

  // Warm-up counts the update being made: step 0 already gets base / W.
  if (s < W) return base * double(s + 1) / double(W);

  // Cosine over the M = S - W remaining steps, from base at s = W to end at s = S - 1.
  const int64_t M = S - W;
  if (M <= 1 || s == S - 1) return end;
  const double pi = 3.14159265358979323846;
  const double t = double(s - W) / double(M - 1);
  return end + (base - end) * (1.0 + std::cos(pi * t)) / 2.0;
}

WarmupCosineSchedule::WarmupCosineSchedule(double base, int64_t total, int64_t warmup, double end)
    : base_lr(base), end_lr(end), warmup_steps(warmup), total_steps(total) {
  check_schedule(base, end, warmup, total);
}

double WarmupCosineSchedule::lr(int64_t step) const {
  return warmup_cosine_lr(step, base_lr, end_lr, warmup_steps, total_steps);
}

}  // namespace ss
