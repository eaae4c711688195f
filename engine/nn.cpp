#include "engine/nn.h"

#include <cmath>
#include <cstdio>
#include <set>
#include <sstream>
#include <stdexcept>

#include "engine/init.h"
#include "engine/ops.h"

namespace ss {

namespace {

std::string join_name(const std::string& prefix, const std::string& name) {
  if (prefix.empty()) return name;
  if (name.empty()) return prefix;
  return prefix + "." + name;
}

// "11168832" -> "11,168,832"
std::string group_digits(int64_t v) {
  std::string s = std::to_string(v < 0 ? -v : v), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return v < 0 ? "-" + out : out;
}

void check_positive(const char* layer, const char* what, int64_t v) {
  if (v <= 0)
    throw std::invalid_argument(std::string("[") + layer + "] " + what + " must be positive, got " +
                                std::to_string(v));
}

Tensor make_param(const Shape& shape) {
  Tensor t = Tensor::zeros(shape);
  t.set_requires_grad(true);
  return t;
}

}  // namespace

// ---- Module --------------------------------------------------------------------------------

Tensor Module::forward(const Tensor& x) {
  throw std::invalid_argument("[module] " + type_name() + " has no single-input forward (input " +
                              x.str() + ")");
}

Shape Module::output_shape(const Shape& input) const {
  Shape s = input;
  for (const auto& c : children_) s = c.second->output_shape(s);
  return s;
}

double Module::flops(const Shape& input) const {
  Shape s = input;
  double total = 0;
  for (const auto& c : children_) {
    total += c.second->flops(s);
    s = c.second->output_shape(s);
  }
  return total;
}

void Module::register_parameter(const std::string& name, Tensor* t, bool no_decay) {
  params_.push_back({name, t, no_decay});
}

void Module::register_buffer(const std::string& name, Tensor* t) {
  buffers_.push_back({name, t});
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> m) {
  if (!m) throw std::invalid_argument("[module] child '" + name + "' is null");
  for (const auto& c : children_)
    if (!name.empty() && c.first == name)
      throw std::invalid_argument("[module] " + type_name() + " already has a child '" + name +
                                  "'");
  children_.emplace_back(name, std::move(m));
}

void Module::visit_params(const std::string& prefix,
                          const std::function<void(const std::string&, Tensor&, bool)>& fn) const {
  for (const ParamSlot& p : params_) fn(join_name(prefix, p.name), *p.tensor, p.no_decay);
  for (const auto& c : children_) c.second->visit_params(join_name(prefix, c.first), fn);
}

void Module::visit_buffers(const std::string& prefix,
                           const std::function<void(const std::string&, Tensor&)>& fn) const {
  for (const BufferSlot& b : buffers_) fn(join_name(prefix, b.name), *b.tensor);
  for (const auto& c : children_) c.second->visit_buffers(join_name(prefix, c.first), fn);
}

std::vector<NamedTensor> Module::named_parameters() const {
  std::vector<NamedTensor> out;
  visit_params("", [&](const std::string& n, Tensor& t, bool) { out.emplace_back(n, t); });
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  visit_params("", [&](const std::string&, Tensor& t, bool) { out.push_back(t); });
  return out;
}

std::vector<ParameterInfo> Module::parameter_info() const {
  std::vector<ParameterInfo> out;
  visit_params("", [&](const std::string& n, Tensor& t, bool nd) { out.push_back({n, t, nd}); });
  return out;
}

std::vector<NamedTensor> Module::named_buffers() const {
  std::vector<NamedTensor> out;
  visit_buffers("", [&](const std::string& n, Tensor& t) { out.emplace_back(n, t); });
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  visit_params("", [&](const std::string&, Tensor& t, bool) { n += t.numel(); });
  return n;
}

std::map<std::string, Tensor> Module::state_dict() const {
  std::map<std::string, Tensor> out;
  auto add = [&](const std::string& n, Tensor& t) {
    if (!out.emplace(n, t.detach()).second)
      throw std::logic_error("[state_dict] two entries are named '" + n + "'");
  };
  visit_params("", [&](const std::string& n, Tensor& t, bool) { add(n, t); });
  visit_buffers("", add);
  return out;
}

LoadReport Module::load_state_dict(const std::map<std::string, Tensor>& dict, bool strict) {
  // First check everything, then copy, so a failed load leaves the module as it was.
  std::vector<std::pair<Tensor*, const Tensor*>> copies;
  std::set<std::string> known;
  LoadReport report;
  auto match = [&](const std::string& n, Tensor& t) {
    known.insert(n);
    const auto it = dict.find(n);
    if (it == dict.end()) {
      report.missing.push_back(n);
      return;
    }
    if (!it->second.defined() || it->second.shape() != t.shape())
      throw std::invalid_argument(
          "[load_state_dict] '" + n + "': the state dict holds " +
          (it->second.defined() ? shape_str(it->second.shape()) : std::string("nothing")) +
          ", the model expects " + shape_str(t.shape()));
    copies.emplace_back(&t, &it->second);
  };
  visit_params("", [&](const std::string& n, Tensor& t, bool) { match(n, t); });
  visit_buffers("", match);
  for (const auto& kv : dict)
    if (!known.count(kv.first)) report.unexpected.push_back(kv.first);

  if (strict && (!report.missing.empty() || !report.unexpected.empty())) {
    std::string msg = "[load_state_dict] " + type_name() + ":";
    auto list = [&](const char* what, const std::vector<std::string>& keys) {
      if (keys.empty()) return;
      msg += std::string(" ") + what + " key" + (keys.size() > 1 ? "s" : "");
      for (size_t i = 0; i < keys.size() && i < 8; ++i) msg += (i ? ", '" : " '") + keys[i] + "'";
      if (keys.size() > 8) msg += ", ... (" + std::to_string(keys.size()) + " in all)";
      msg += ";";
    };
    list("missing", report.missing);
    list("unexpected", report.unexpected);
    throw std::invalid_argument(msg);
  }

  NoGradGuard no_grad;
  for (auto& [dst, src] : copies) dst->copy_(*src);
  return report;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& c : children_) c.second->train(on);
}

void Module::zero_grad() {
  visit_params("", [](const std::string&, Tensor& t, bool) { t.zero_grad(); });
}

void Module::to(Device device) {
  NoGradGuard no_grad;
  visit_params("", [&](const std::string&, Tensor& t, bool) {
    if (t.device() == device) return;
    Tensor moved = t.to(device).detach();
    moved.set_requires_grad(t.requires_grad());
    t = moved;
  });
  visit_buffers("", [&](const std::string&, Tensor& t) {
    if (t.device() != device) t = t.to(device).detach();
  });
}

void Module::to(DType dtype) {
  NoGradGuard no_grad;
  visit_params("", [&](const std::string&, Tensor& t, bool) {
    if (t.dtype() == dtype) return;
    Tensor cast = t.to(dtype).detach();
    cast.set_requires_grad(t.requires_grad());
    t = cast;
  });
  visit_buffers("", [&](const std::string&, Tensor& t) {
    if (t.dtype() != dtype) t = t.to(dtype).detach();
  });
}

// ---- Conv2d --------------------------------------------------------------------------------

Conv2d::Conv2d(Generator& gen, int64_t in_channels_, int64_t out_channels_, int64_t kernel_,
               int64_t stride_, int64_t padding_, bool with_bias)
    : in_channels(in_channels_),
      out_channels(out_channels_),
      kernel(kernel_),
      stride(stride_),
      padding(padding_) {
  check_positive("Conv2d", "in_channels", in_channels);
  check_positive("Conv2d", "out_channels", out_channels);
  check_positive("Conv2d", "kernel", kernel);
  check_positive("Conv2d", "stride", stride);
  if (padding < 0)
    throw std::invalid_argument("[Conv2d] padding must be >= 0, got " + std::to_string(padding));

  // PyTorch's reset_parameters: kaiming_uniform(a = sqrt(5)) gives bound 1 / sqrt(fan_in).
  weight = make_param({out_channels, in_channels, kernel, kernel});
  kaiming_uniform_(weight, gen, FanMode::fan_in, calculate_gain("leaky_relu", std::sqrt(5.0)));
  register_parameter("weight", &weight, false);
  if (with_bias) {
    const double bound = 1.0 / std::sqrt(double(fan_of(weight.shape(), FanMode::fan_in)));
    bias = make_param({out_channels});
    uniform_(bias, -bound, bound, gen);
    register_parameter("bias", &bias, true);
  }
}

// x [N, Cin, H, W] -> out [N, Cout, Ho, Wo]; backward gives dinp, dweight, dbias.
Tensor Conv2d::forward(const Tensor& x) {
  return conv2d(x, weight, bias, stride, padding);
}

Shape Conv2d::output_shape(const Shape& in) const {
  if (in.size() != 4 || in[1] != in_channels)
    throw std::invalid_argument("[Conv2d] input " + shape_str(in) + " must be [N, " +
                                std::to_string(in_channels) + ", H, W]");
  return {in[0], out_channels, conv_out_size(in[2], kernel, stride, padding),
          conv_out_size(in[3], kernel, stride, padding)};
}

double Conv2d::flops(const Shape& in) const {
  const Shape o = output_shape(in);
  // 2 FLOPs per multiply-add: each output element takes Cin * k * k of them.
  return 2.0 * double(shape_numel(o)) * double(in_channels * kernel * kernel);
}

// ---- Linear --------------------------------------------------------------------------------

Linear::Linear(Generator& gen, int64_t in_features_, int64_t out_features_, bool with_bias)
    : in_features(in_features_), out_features(out_features_) {
  check_positive("Linear", "in_features", in_features);
  check_positive("Linear", "out_features", out_features);
  weight = make_param({out_features, in_features});
  kaiming_uniform_(weight, gen, FanMode::fan_in, calculate_gain("leaky_relu", std::sqrt(5.0)));
  register_parameter("weight", &weight, false);
  if (with_bias) {
    const double bound = 1.0 / std::sqrt(double(in_features));
    bias = make_param({out_features});
    uniform_(bias, -bound, bound, gen);
    register_parameter("bias", &bias, true);
  }
}

// x [N, Din] -> out [N, Dout]; backward gives dinp, dweight, dbias.
Tensor Linear::forward(const Tensor& x) {
  return linear(x, weight, bias);
}

Shape Linear::output_shape(const Shape& in) const {
  if (in.size() != 2 || in[1] != in_features)
    throw std::invalid_argument("[Linear] input " + shape_str(in) + " must be [N, " +
                                std::to_string(in_features) + "]");
  return {in[0], out_features};
}

double Linear::flops(const Shape& in) const {
  return 2.0 * double(output_shape(in)[0]) * double(in_features * out_features);
}

// ---- BatchNorm -----------------------------------------------------------------------------

BatchNorm::BatchNorm(int64_t channels_, BatchNormOptions options_)
    : channels(channels_), options(options_) {
  check_positive("BatchNorm", "channels", channels);
  if (!(options.eps > 0) || !(options.momentum >= 0 && options.momentum <= 1))
    throw std::invalid_argument("[BatchNorm] needs eps > 0 and momentum in [0, 1], got eps " +
                                std::to_string(options.eps) + ", momentum " +
                                std::to_string(options.momentum));
  if (options.affine) {
    weight = Tensor::ones({channels}).set_requires_grad(true);
    bias = make_param({channels});
    register_parameter("weight", &weight, true);
    register_parameter("bias", &bias, true);
  }
  running_mean = Tensor::zeros({channels});
  running_var = Tensor::ones({channels});
  register_buffer("running_mean", &running_mean);
  register_buffer("running_var", &running_var);
  if (options.track_num_batches) {
    num_batches_tracked = Tensor::zeros({}, DType::f64);
    register_buffer("num_batches_tracked", &num_batches_tracked);
  }
}

// x [N, C] or [N, C, H, W] -> out of the same shape; backward gives dinp, dweight, dbias.
Tensor BatchNorm::forward(const Tensor& x) {
  Tensor out = batch_norm(x, weight, bias, running_mean, running_var, is_training(),
                          options.momentum, options.eps);
  if (is_training() && options.track_num_batches)
    num_batches_tracked.fill_(num_batches_tracked.item() + 1);
  return out;
}

Tensor BatchNorm::forward_add_relu(const Tensor& x, const Tensor& residual) {
  Tensor out = batch_norm_add_relu(x, weight, bias, running_mean, running_var, residual,
                                   is_training(), options.momentum, options.eps);
  if (is_training() && options.track_num_batches)
    num_batches_tracked.fill_(num_batches_tracked.item() + 1);
  return out;
}

// ---- stateless layers ----------------------------------------------------------------------

Tensor ReLU::forward(const Tensor& x) {
  return relu(x);
}

// x [N, C, H, W] -> out [N, C]
Tensor GlobalAvgPool::forward(const Tensor& x) {
  return global_avg_pool(x);
}

Shape GlobalAvgPool::output_shape(const Shape& in) const {
  if (in.size() != 4)
    throw std::invalid_argument("[GlobalAvgPool] input " + shape_str(in) + " must be [N, C, H, W]");
  return {in[0], in[1]};
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (const auto& c : children()) h = c.second->forward(h);
  return h;
}

// ---- summary -------------------------------------------------------------------------------

namespace {

struct SummaryRow {
  std::string name, type, shape;
  int64_t params;
  double flops;
};

void summary_rows(const Module& m, const std::string& name, Shape& shape,
                  std::vector<SummaryRow>& rows) {
  if (m.expand_in_summary() && !m.children().empty()) {
    for (const auto& c : m.children())
      summary_rows(*c.second, join_name(name, c.first), shape, rows);
    return;
  }
  const double f = m.flops(shape);
  shape = m.output_shape(shape);
  rows.push_back({name.empty() ? m.type_name() : name, m.type_name(), shape_str(shape),
                  m.num_parameters(), f});
}

}  // namespace

std::string model_summary(const Module& model, const Shape& input) {
  std::vector<SummaryRow> rows;
  Shape shape = input;
  summary_rows(model, "", shape, rows);

  size_t wn = 6, wt = 6, ws = 12;
  for (const auto& r : rows) {
    wn = std::max(wn, r.name.size());
    wt = std::max(wt, r.type.size());
    ws = std::max(ws, r.shape.size());
  }
  std::ostringstream os;
  char line[512];
  auto emit = [&](const std::string& a, const std::string& b, const std::string& c,
                  const std::string& d, const std::string& e) {
    std::snprintf(line, sizeof line, "%-*s  %-*s  %-*s  %12s  %12s\n", int(wn), a.c_str(), int(wt),
                  b.c_str(), int(ws), c.c_str(), d.c_str(), e.c_str());
    os << line;
  };
  char buf[64];
  emit("module", "type", "output shape", "params", "MFLOPs");
  emit("input", "", shape_str(input), "", "");
  double total_flops = 0;
  for (const auto& r : rows) {
    std::snprintf(buf, sizeof buf, "%.3f", r.flops / 1e6);
    emit(r.name, r.type, r.shape, group_digits(r.params), buf);
    total_flops += r.flops;
  }
  int64_t buffers = 0;
  for (const auto& [n, t] : model.named_buffers()) buffers += t.numel();
  os << "total parameters: " << group_digits(model.num_parameters())
     << " (buffers: " << group_digits(buffers) << " values)\n";
  std::snprintf(buf, sizeof buf, "%.4f", total_flops / 1e9);
  os << "total GFLOPs: " << buf << " for input " << shape_str(input)
     << " (forward pass; FLOPs = 2 x multiply-adds of convolutions and linear layers; BN, "
        "ReLU, residual adds and pooling are not counted)\n";
  return os.str();
}

}  // namespace ss
