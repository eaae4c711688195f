#include "models/resnet.h"

#include <stdexcept>

#include "engine/init.h"
#include "engine/ops.h"

namespace ss {

namespace {

// Kaiming normal with fan_out and the ReLU gain, as torchvision's ResNet initialises its convs.
void init_conv(Conv2d& conv, Generator& gen) {
  kaiming_normal_(conv.weight, gen, FanMode::fan_out, calculate_gain("relu"));
}

std::string list_str(const std::vector<int64_t>& v) {
  std::string s = "(";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + ")";
}

}  // namespace

// ---- BasicBlock ----------------------------------------------------------------------------

BasicBlock::BasicBlock(Generator& gen, int64_t in_channels_, int64_t out_channels_, int64_t stride_,
                       const BatchNormOptions& bn)
    : in_channels(in_channels_), out_channels(out_channels_), stride(stride_) {
  conv1 = register_module(
      "conv1", std::make_shared<Conv2d>(gen, in_channels, out_channels, 3, stride, 1, false));
  bn1 = register_module("bn1", std::make_shared<BatchNorm>(out_channels, bn));
  conv2 = register_module(
      "conv2", std::make_shared<Conv2d>(gen, out_channels, out_channels, 3, 1, 1, false));
  bn2 = register_module("bn2", std::make_shared<BatchNorm>(out_channels, bn));
  init_conv(*conv1, gen);
  init_conv(*conv2, gen);
  if (stride != 1 || in_channels != out_channels) {
    shortcut = register_module("shortcut", std::make_shared<Sequential>());
    auto proj = shortcut->push_back(
        std::make_shared<Conv2d>(gen, in_channels, out_channels, 1, stride, 0, false));
    shortcut->push_back(std::make_shared<BatchNorm>(out_channels, bn));
    init_conv(*proj, gen);
  }
}

// x [N, Cin, H, W] -> out [N, Cout, H', W']. The backward of the add sends dout to both
// branches; the tape sums them at x (a fan-out, case B31).
Tensor BasicBlock::forward(const Tensor& x) {
  // relu(bn1(.)) runs as one fused op (batch_norm_add_relu). The tail keeps three ops: fused,
  // its backward holds dout, the residual's gradient and dx at once, and on cifar10-small that
  // raised the step's peak memory by about 220 MiB for about 5% of the time.
  Tensor h = conv2->forward(bn1->forward_add_relu(conv1->forward(x)));
  const Tensor skip = shortcut ? shortcut->forward(x) : x;
  return relu(add(bn2->forward(h), skip));
}

Shape BasicBlock::output_shape(const Shape& in) const {
  return conv2->output_shape(conv1->output_shape(in));
}

double BasicBlock::flops(const Shape& in) const {
  const Shape mid = conv1->output_shape(in);
  return conv1->flops(in) + conv2->flops(mid) + (shortcut ? shortcut->flops(in) : 0.0);
}

// ---- ResNet --------------------------------------------------------------------------------

ResNet::ResNet(const ResNetConfig& c) : config_(c) {
  if (c.depths.empty() || c.depths.size() != c.widths.size())
    throw std::invalid_argument("[resnet] depths " + list_str(c.depths) + " and widths " +
                                list_str(c.widths) + " must be non-empty and of equal length");
  for (size_t i = 0; i < c.depths.size(); ++i)
    if (c.depths[i] <= 0 || c.widths[i] <= 0)
      throw std::invalid_argument("[resnet] depths " + list_str(c.depths) + " and widths " +
                                  list_str(c.widths) + " must all be positive");
  if (c.in_channels <= 0 || c.stem_kernel <= 0 || c.stem_stride <= 0 || c.stem_padding < 0)
    throw std::invalid_argument("[resnet] bad stem: in_channels " + std::to_string(c.in_channels) +
                                ", kernel " + std::to_string(c.stem_kernel) + ", stride " +
                                std::to_string(c.stem_stride) + ", padding " +
                                std::to_string(c.stem_padding));

  Generator gen = Generator::derive(c.seed, {0x7e5e7});
  conv1 = register_module("conv1",
                          std::make_shared<Conv2d>(gen, c.in_channels, c.widths[0], c.stem_kernel,
                                                   c.stem_stride, c.stem_padding, false));
  init_conv(*conv1, gen);
  bn1 = register_module("bn1", std::make_shared<BatchNorm>(c.widths[0], c.bn));
  register_module("relu", std::make_shared<ReLU>());

  // Stage i: the first block changes width (and halves the resolution from stage 2 on).
  int64_t channels = c.widths[0];
  for (size_t i = 0; i < c.depths.size(); ++i) {
    auto stage = register_module("layer" + std::to_string(i + 1), std::make_shared<Sequential>());
    for (int64_t j = 0; j < c.depths[i]; ++j) {
      const int64_t stride = (i > 0 && j == 0) ? 2 : 1;
      stage->push_back(std::make_shared<BasicBlock>(gen, channels, c.widths[i], stride, c.bn));
      channels = c.widths[i];
    }
    layers.push_back(stage);
  }
  register_module("pool", std::make_shared<GlobalAvgPool>());
}

void ResNet::check_input(const Shape& s) const {
  if (s.size() != 4 || s[1] != config_.in_channels)
    throw std::invalid_argument("[resnet] input " + shape_str(s) + " must be [N, " +
                                std::to_string(config_.in_channels) + ", H, W]");
}

// x [N, C, H, W] -> stem [N, widths[0], H, W] -> stages -> pool [N, widths.back()]
Tensor ResNet::forward(const Tensor& x) {
  check_input(x.shape());
  Tensor h = bn1->forward_add_relu(conv1->forward(x));
  for (auto& stage : layers) h = stage->forward(h);
  return global_avg_pool(h);
}

Shape ResNet::output_shape(const Shape& input) const {
  check_input(input);
  return Module::output_shape(input);
}

// ---- registry ------------------------------------------------------------------------------

namespace {

struct NamedConfig {
  const char* name;
  std::vector<int64_t> depths, widths;
};

const std::vector<NamedConfig>& named_configs() {
  static const std::vector<NamedConfig> configs = {
      {"resnet18", {2, 2, 2, 2}, {64, 128, 256, 512}},
      {"resnet34", {3, 4, 6, 3}, {64, 128, 256, 512}},
      {"resnet-small", {1, 1, 1, 1}, {32, 64, 128, 256}},
      {"resnet-tiny", {1, 1, 1, 1}, {16, 32, 64, 128}},
      {"resnet-mini", {1, 1, 1}, {32, 64, 128}},
  };
  return configs;
}

}  // namespace

std::vector<std::string> encoder_names() {
  std::vector<std::string> out;
  for (const auto& c : named_configs()) out.push_back(c.name);
  return out;
}

ResNetConfig encoder_config(const std::string& name, int64_t in_channels, uint64_t seed) {
  for (const auto& c : named_configs()) {
    if (name != c.name) continue;
    ResNetConfig cfg;
    cfg.in_channels = in_channels;
    cfg.depths = c.depths;
    cfg.widths = c.widths;
    cfg.seed = seed;
    return cfg;
  }
  std::string known;
  for (const auto& n : encoder_names()) known += (known.empty() ? "" : ", ") + n;
  throw std::invalid_argument("[resnet] unknown encoder '" + name + "'; known: " + known);
}

std::shared_ptr<ResNet> make_encoder(const std::string& name, int64_t in_channels, uint64_t seed) {
  return std::make_shared<ResNet>(encoder_config(name, in_channels, seed));
}

}  // namespace ss
