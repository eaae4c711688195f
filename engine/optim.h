// Optimizers over parameter groups: SGD (momentum, Nesterov, weight decay), LARS (the SimCLR
// variant) and AdamW, with their state as named tensors for checkpoints.
//
//   auto groups = split_decay_groups(model, 1e-6);       // decay / no-decay (BN, biases)
//   Sgd opt(groups, SgdOptions{.lr = 0.1, .momentum = 0.9});
//   for (s = 0; s < S; ++s) { opt.set_lr(schedule.lr(s)); ...backward...; opt.step();
//                             opt.zero_grad(); }
//
// Every update runs under NoGradGuard with engine ops, so it works on any device the
// parameters live on. A parameter without a gradient is skipped (its state is unchanged).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/nn.h"
#include "engine/tensor.h"

namespace ss {

struct ParamGroup {
  std::vector<Tensor> params;
  std::vector<std::string> names;  // empty, or one per parameter: the keys of the state dict
  double lr_scale = 1.0;           // the group's lr is the optimizer's lr times this
  double weight_decay = 0.0;
  bool lars_exclude = false;  // LARS: no trust-ratio adaptation (trust 1) for this group
};

// Two groups from a module's parameters: "decay" (weights of convolutions and linear layers)
// with weight_decay, and "no decay" (BN weights / biases and all biases, the parameters marked
// no_decay) with weight decay 0 and lars_exclude (case B25). Empty groups are left out.
std::vector<ParamGroup> split_decay_groups(const Module& model, double weight_decay);
// One group holding all of a module's parameters with the same settings.
ParamGroup single_group(const Module& model, double weight_decay, bool lars_exclude = false);

class Optimizer {
 public:
  Optimizer(std::vector<ParamGroup> groups, double lr, const char* name);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  const std::string& name() const { return name_; }
  void step();       // one update of every parameter that has a gradient, at the current lr
  void zero_grad();  // drops the gradients of every parameter
  void set_lr(double lr);
  double lr() const { return lr_; }
  int64_t step_count() const { return step_count_; }
  const std::vector<ParamGroup>& groups() const { return groups_; }

  // "step" (a float64 scalar, the number of step() calls) and "<parameter>.<slot>" for every
  // state tensor, e.g. "layer1.0.conv1.weight.momentum_buffer", "conv1.weight.exp_avg".
  // Parameters without names are keyed "group<g>.<i>". The tensors share the optimizer's
  // storage (clone to snapshot). Loading requires every key of a state of the same shape;
  // checkpoint the model and the optimizer together.
  std::map<std::string, Tensor> state_dict() const;
  void load_state_dict(const std::map<std::string, Tensor>& dict);

  // The state of the i-th parameter of group g, by slot name; undefined before its first step.
  Tensor state(size_t group, size_t index, const std::string& slot) const;

 protected:
  using Slots = std::map<std::string, Tensor>;
  // Updates p in place from its gradient g; `lr` is the group's learning rate.
  virtual void update(const ParamGroup& group, Tensor& p, const Tensor& g, double lr,
                      Slots& state) = 0;
  // The slots a parameter's state holds once it has taken a step (for load_state_dict).
  virtual std::vector<std::string> slot_names() const = 0;
  // A state tensor, created as zeros of p's shape, dtype and device on first use.
  static Tensor& slot(Slots& state, const std::string& name, const Tensor& p);

 private:
  std::string key(size_t g, size_t i) const;

  std::string name_;
  std::vector<ParamGroup> groups_;
  std::vector<std::vector<Slots>> state_;  // [group][param]
  double lr_;
  int64_t step_count_ = 0;
};

// PyTorch's SGD (dampening 0): g = g + wd * w; buf = mu * buf + g (buf = g at the first step);
// Nesterov: g = g + mu * buf, else g = buf; w = w - lr * g. State: "momentum_buffer".
struct SgdOptions {
  double lr = 0.1;
  double momentum = 0.0;
  bool nesterov = false;
};
class Sgd : public Optimizer {
 public:
  Sgd(std::vector<ParamGroup> groups, const SgdOptions& options);
  const SgdOptions& options() const { return opt_; }

 protected:
  void update(const ParamGroup& group, Tensor& p, const Tensor& g, double lr,
              Slots& state) override;
  std::vector<std::string> slot_names() const override;

 private:
  SgdOptions opt_;
};

// LARS as in SimCLR's LARSOptimizer (tests/fixtures/README.md):
//   g = g + wd * w                                  (the group's weight decay)
//   trust = eta * ||w|| / ||g||  if ||w|| > 0 and ||g|| > 0 and the group is not excluded,
//           else 1
//   v = momentum * v + lr * trust * g;   w = w - v
// The learning rate sits inside the momentum buffer. State: "momentum_buffer" and
// "trust_ratio" (a float64 scalar, the last trust ratio, for diagnostics).
struct LarsOptions {
  double lr = 0.1;
  double momentum = 0.9;
  double trust_coefficient = 0.001;  // eta
};
class Lars : public Optimizer {
 public:
  Lars(std::vector<ParamGroup> groups, const LarsOptions& options);
  const LarsOptions& options() const { return opt_; }

 protected:
  void update(const ParamGroup& group, Tensor& p, const Tensor& g, double lr,
              Slots& state) override;
  std::vector<std::string> slot_names() const override;

 private:
  LarsOptions opt_;
};

// PyTorch's AdamW: w = w * (1 - lr * wd); m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
// w = w - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps), t counted per parameter.
// State: "exp_avg", "exp_avg_sq", "step" (a float64 scalar).
struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
};
class AdamW : public Optimizer {
 public:
  AdamW(std::vector<ParamGroup> groups, const AdamWOptions& options);
  const AdamWOptions& options() const { return opt_; }

 protected:
  void update(const ParamGroup& group, Tensor& p, const Tensor& g, double lr,
              Slots& state) override;
  std::vector<std::string> slot_names() const override;

 private:
  AdamWOptions opt_;
};

// By name, for configs: "sgd", "lars", "adamw". Unused fields are ignored.
struct OptimizerConfig {
  std::string name = "sgd";
  double lr = 0.1;
  double momentum = 0.9;                          // sgd, lars
  bool nesterov = false;                          // sgd
  double trust_coefficient = 0.001;               // lars
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adamw
};
std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& config,
                                          std::vector<ParamGroup> groups);

}  // namespace ss
