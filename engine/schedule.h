// Learning-rate schedules as pure functions of the global optimizer step, so a resumed run
// continues exactly where it stopped by passing its saved step.
//
// Linear warm-up then cosine decay (case B35). Steps s = 0 ... S-1 are the optimizer updates and
// lr(s) is in place before update s:
//   s < W:                 lr = base * (s + 1) / W          (never 0 at the first step)
//   otherwise, M = S - W:  lr = end + (base - end) * (1 + cos(pi * (s - W) / (M - 1))) / 2,
//                          and lr = end when M <= 1 or s = S - 1 (the floor is reached).
// W = 0 has no warm-up; W = S is warm-up only. Steps s >= S stay at end.
#pragma once
#include <cstdint>

namespace ss {

double warmup_cosine_lr(int64_t step, double base_lr, double end_lr, int64_t warmup_steps,
                        int64_t total_steps);

struct WarmupCosineSchedule {
  double base_lr = 0.1;
  double end_lr = 0.0;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;

  WarmupCosineSchedule() = default;
  WarmupCosineSchedule(double base_lr, int64_t total_steps, int64_t warmup_steps = 0,
                       double end_lr = 0.0);
  double lr(int64_t step) const;
  double operator()(int64_t step) const { return lr(step); }
};

}  // namespace ss
