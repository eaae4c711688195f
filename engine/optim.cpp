#include "engine/optim.h"

#include <cmath>
#include <set>
#include <stdexcept>

#include "engine/ops.h"

namespace ss {

namespace {

// Slots that hold one number (float64, CPU) instead of a tensor shaped like the parameter.
bool is_scalar_slot(const std::string& slot) {
  return slot == "step" || slot == "trust_ratio";
}

double norm2(const Tensor& t) {
  return std::sqrt(sum(mul(t, t)).item());
}

}  // namespace

// ---- groups --------------------------------------------------------------------------------

std::vector<ParamGroup> split_decay_groups(const Module& model, double weight_decay) {
  ParamGroup decay, no_decay;
  decay.weight_decay = weight_decay;
  no_decay.weight_decay = 0.0;
  no_decay.lars_exclude = true;
  for (const ParameterInfo& p : model.parameter_info()) {
    if (!p.tensor.requires_grad()) continue;  // frozen
    ParamGroup& g = p.no_decay ? no_decay : decay;
    g.params.push_back(p.tensor);
    g.names.push_back(p.name);
  }
  std::vector<ParamGroup> out;
  if (!decay.params.empty()) out.push_back(std::move(decay));
  if (!no_decay.params.empty()) out.push_back(std::move(no_decay));
  return out;
}

ParamGroup single_group(const Module& model, double weight_decay, bool lars_exclude) {
  ParamGroup g;
  g.weight_decay = weight_decay;
  g.lars_exclude = lars_exclude;
  for (const auto& [name, t] : model.named_parameters()) {
    if (!t.requires_grad()) continue;
    g.params.push_back(t);
    g.names.push_back(name);
  }
  return g;
}

// ---- Optimizer -----------------------------------------------------------------------------

Optimizer::Optimizer(std::vector<ParamGroup> groups, double lr, const char* name)
    : name_(name), groups_(std::move(groups)), lr_(lr) {
  std::set<const TensorImpl*> seen;
  std::set<std::string> names;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const ParamGroup& grp = groups_[g];
    const std::string where = "[" + name_ + "] group " + std::to_string(g);
    if (!grp.names.empty() && grp.names.size() != grp.params.size())
      throw std::invalid_argument(where + " has " + std::to_string(grp.params.size()) +
                                  " parameters but " + std::to_string(grp.names.size()) + " names");
    if (!(grp.weight_decay >= 0) || !(grp.lr_scale >= 0))
      throw std::invalid_argument(where + ": weight_decay and lr_scale must be >= 0");
    for (size_t i = 0; i < grp.params.size(); ++i) {
      const Tensor& p = grp.params[i];
      if (!p.defined() || !p.is_leaf())
        throw std::invalid_argument(where + " parameter " + std::to_string(i) +
                                    " must be a defined leaf tensor");
      if (!seen.insert(p.impl()).second)
        throw std::invalid_argument(where + " parameter " + std::to_string(i) + " " + p.str() +
                                    " is already in a group");
      if (!names.insert(key(g, i)).second)
        throw std::invalid_argument(where + ": two parameters are named '" + key(g, i) + "'");
    }
  }
  state_.resize(groups_.size());
  for (size_t g = 0; g < groups_.size(); ++g) state_[g].resize(groups_[g].params.size());
  set_lr(lr);
}

std::string Optimizer::key(size_t g, size_t i) const {
  const ParamGroup& grp = groups_[g];
  return grp.names.empty() ? "group" + std::to_string(g) + "." + std::to_string(i) : grp.names[i];
}

void Optimizer::set_lr(double lr) {
  if (!(lr >= 0) || !std::isfinite(lr))
    throw std::invalid_argument("[" + name_ + "] learning rate must be finite and >= 0, got " +
                                std::to_string(lr));
  lr_ = lr;
}

void Optimizer::step() {
  NoGradGuard no_grad;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const ParamGroup& grp = groups_[g];
    for (size_t i = 0; i < grp.params.size(); ++i) {
      Tensor p = grp.params[i];
      const Tensor grad = p.grad();
      if (!grad.defined()) continue;
      update(grp, p, grad, lr_ * grp.lr_scale, state_[g][i]);
    }
  }
  ++step_count_;
}

void Optimizer::zero_grad() {
  for (auto& grp : groups_)
    for (auto& p : grp.params) p.zero_grad();
}

Tensor& Optimizer::slot(Slots& state, const std::string& name, const Tensor& p) {
  auto it = state.find(name);
  if (it == state.end()) {
    Tensor t = is_scalar_slot(name) ? Tensor::zeros({}, DType::f64)
                                    : Tensor::zeros(p.shape(), p.dtype(), p.device());
    it = state.emplace(name, t).first;
  }
  return it->second;
}

Tensor Optimizer::state(size_t group, size_t index, const std::string& name) const {
  const Slots& s = state_.at(group).at(index);
  const auto it = s.find(name);
  return it == s.end() ? Tensor() : it->second;
}

std::map<std::string, Tensor> Optimizer::state_dict() const {
  std::map<std::string, Tensor> out;
  out["step"] = Tensor::scalar(double(step_count_), DType::f64);
  for (size_t g = 0; g < groups_.size(); ++g)
    for (size_t i = 0; i < groups_[g].params.size(); ++i)
      for (const auto& [slot_name, t] : state_[g][i]) out[key(g, i) + "." + slot_name] = t.detach();
  return out;
}

void Optimizer::load_state_dict(const std::map<std::string, Tensor>& dict) {
  const auto step_it = dict.find("step");
  if (step_it == dict.end() || !step_it->second.defined() || step_it->second.numel() != 1)
    throw std::invalid_argument("[" + name_ + "] load_state_dict: no scalar 'step' entry");

  // Check everything first, so a failed load leaves the optimizer as it was.
  std::vector<std::vector<Slots>> loaded(groups_.size());
  std::set<std::string> used = {"step"};
  const std::vector<std::string> slots = slot_names();
  NoGradGuard no_grad;
  for (size_t g = 0; g < groups_.size(); ++g) {
    loaded[g].resize(groups_[g].params.size());
    for (size_t i = 0; i < groups_[g].params.size(); ++i) {
      const Tensor& p = groups_[g].params[i];
      size_t found = 0;
      for (const std::string& s : slots) {
        const std::string k = key(g, i) + "." + s;
        const auto it = dict.find(k);
        if (it == dict.end()) continue;
        const Shape want = is_scalar_slot(s) ? Shape{} : p.shape();
        if (!it->second.defined() || it->second.shape() != want)
          throw std::invalid_argument(
              "[" + name_ + "] load_state_dict: '" + k + "' is " +
              (it->second.defined() ? shape_str(it->second.shape()) : std::string("undefined")) +
              ", expected " + shape_str(want));
        Tensor t = is_scalar_slot(s) ? Tensor::zeros({}, DType::f64)
                                     : Tensor::zeros(p.shape(), p.dtype(), p.device());
        t.copy_(it->second);
        loaded[g][i][s] = t;
        used.insert(k);
        ++found;
      }
      // A parameter that never took a step has no state; one that did has every slot.
      if (found != 0 && found != slots.size())
        throw std::invalid_argument("[" + name_ + "] load_state_dict: '" + key(g, i) + "' has " +
                                    std::to_string(found) + " of its " +
                                    std::to_string(slots.size()) + " state entries");
    }
  }
  for (const auto& kv : dict)
    if (!used.count(kv.first))
      throw std::invalid_argument("[" + name_ + "] load_state_dict: unexpected key '" + kv.first +
                                  "'");
  state_ = std::move(loaded);
  step_count_ = int64_t(std::llround(step_it->second.item()));
}

// ---- SGD -----------------------------------------------------------------------------------

Sgd::Sgd(std::vector<ParamGroup> groups, const SgdOptions& o)
    : Optimizer(std::move(groups), o.lr, "sgd"), opt_(o) {
  if (!(o.momentum >= 0))
    throw std::invalid_argument("[sgd] momentum must be >= 0, got " + std::to_string(o.momentum));
  if (o.nesterov && o.momentum <= 0)
    throw std::invalid_argument("[sgd] Nesterov momentum needs momentum > 0");
}

std::vector<std::string> Sgd::slot_names() const {
  if (opt_.momentum == 0) return {};
  return {"momentum_buffer"};
}

void Sgd::update(const ParamGroup& group, Tensor& p, const Tensor& g, double lr, Slots& state) {
  // g' = g + wd * w
  Tensor d = group.weight_decay != 0 ? add(g, mul(p, group.weight_decay)) : g;

  // buf = mu * buf + g' (buf starts at 0, so the first step gives buf = g' exactly)
  if (opt_.momentum != 0) {
    Tensor& buf = slot(state, "momentum_buffer", p);
    buf.copy_(add(mul(buf, opt_.momentum), d));
    d = opt_.nesterov ? add(d, mul(buf, opt_.momentum)) : buf;
  }

  // w = w - lr * g'
  p.copy_(sub(p, mul(d, lr)));
}

// ---- LARS ----------------------------------------------------------------------------------

Lars::Lars(std::vector<ParamGroup> groups, const LarsOptions& o)
    : Optimizer(std::move(groups), o.lr, "lars"), opt_(o) {
  if (!(o.momentum >= 0) || !(o.trust_coefficient > 0))
    throw std::invalid_argument("[lars] needs momentum >= 0 and trust_coefficient > 0, got " +
                                std::to_string(o.momentum) + " and " +
                                std::to_string(o.trust_coefficient));
}

std::vector<std::string> Lars::slot_names() const {
  return {"momentum_buffer", "trust_ratio"};
}

void Lars::update(const ParamGroup& group, Tensor& p, const Tensor& g, double lr, Slots& state) {
  // g' = g + wd * w, before the norms
  const Tensor d = group.weight_decay != 0 ? add(g, mul(p, group.weight_decay)) : g;

  // trust = eta * ||w|| / ||g'||, or 1 for excluded groups and zero norms (no 0/0).
  double trust = 1.0;
  if (!group.lars_exclude) {
    const double w_norm = norm2(p), g_norm = norm2(d);
    if (w_norm > 0 && g_norm > 0) trust = opt_.trust_coefficient * w_norm / g_norm;
  }
  slot(state, "trust_ratio", p).fill_(trust);

  // v = mu * v + lr * trust * g';  w = w - v
  Tensor& v = slot(state, "momentum_buffer", p);
  v.copy_(add(mul(v, opt_.momentum), mul(d, lr * trust)));
  p.copy_(sub(p, v));
}

// ---- AdamW ---------------------------------------------------------------------------------

AdamW::AdamW(std::vector<ParamGroup> groups, const AdamWOptions& o)
    : Optimizer(std::move(groups), o.lr, "adamw"), opt_(o) {
  if (!(o.beta1 >= 0 && o.beta1 < 1) || !(o.beta2 >= 0 && o.beta2 < 1) || !(o.eps > 0))
    throw std::invalid_argument("[adamw] needs betas in [0, 1) and eps > 0, got " +
                                std::to_string(o.beta1) + ", " + std::to_string(o.beta2) + ", " +
                                std::to_string(o.eps));
}

std::vector<std::string> AdamW::slot_names() const {
  return {"exp_avg", "exp_avg_sq", "step"};
}

void AdamW::update(const ParamGroup& group, Tensor& p, const Tensor& g, double lr, Slots& state) {
  // Decoupled decay: w = w * (1 - lr * wd)
  if (group.weight_decay != 0) p.copy_(mul(p, 1.0 - lr * group.weight_decay));

  // m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
  Tensor& m = slot(state, "exp_avg", p);
  Tensor& v = slot(state, "exp_avg_sq", p);
  m.copy_(add(mul(m, opt_.beta1), mul(g, 1.0 - opt_.beta1)));
  v.copy_(add(mul(v, opt_.beta2), mul(mul(g, g), 1.0 - opt_.beta2)));
  Tensor& t_slot = slot(state, "step", p);
  const double t = t_slot.item() + 1;
  t_slot.fill_(t);

  // w = w - (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps), bc_k = 1 - b_k^t
  const double bc1 = 1.0 - std::pow(opt_.beta1, t);
  const double bc2 = 1.0 - std::pow(opt_.beta2, t);
  const Tensor denom = add(mul(sqrt(v), 1.0 / std::sqrt(bc2)), opt_.eps);
  p.copy_(sub(p, mul(div(m, denom), lr / bc1)));
}

// ---- factory -------------------------------------------------------------------------------

std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& c,
                                          std::vector<ParamGroup> groups) {
  if (c.name == "sgd")
    return std::make_unique<Sgd>(std::move(groups), SgdOptions{c.lr, c.momentum, c.nesterov});
  if (c.name == "lars")
    return std::make_unique<Lars>(std::move(groups),
                                  LarsOptions{c.lr, c.momentum, c.trust_coefficient});
  if (c.name == "adamw")
    return std::make_unique<AdamW>(std::move(groups), AdamWOptions{c.lr, c.beta1, c.beta2, c.eps});
  throw std::invalid_argument("[optim] unknown optimizer '" + c.name +
                              "'; known: sgd, lars, adamw");
}

}  // namespace ss
