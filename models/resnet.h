// ResNet encoders of BasicBlocks with the CIFAR stem (3x3 stride-1 convolution, no max-pool),
// and a registry of named configurations.
//
// Parameter names are PyTorch state_dict names: conv1, bn1, layer<i>.<j>.conv1 / .bn1 / .conv2
// / .bn2 and the projection shortcut layer<i>.<j>.shortcut.0 (1x1 conv) / .shortcut.1 (BN).
// The encoder ends with a global average pool and has no classifier: [N, C, H, W] ->
// [N, feature_dim] with feature_dim = the last stage's width.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/nn.h"

namespace ss {

struct ResNetConfig {
  int64_t in_channels = 3;                     // 1 for Fashion-MNIST / MNIST
  std::vector<int64_t> depths = {2, 2, 2, 2};  // BasicBlocks per stage
  std::vector<int64_t> widths = {64, 128, 256,
                                 512};  // channels per stage; the stem gives widths[0]
  int64_t stem_kernel = 3;
  int64_t stem_stride = 1;
  int64_t stem_padding = 1;
  BatchNormOptions bn;  // eps 1e-5, momentum 0.1
  uint64_t seed = 0;    // initialisation stream
};

// out = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)); the shortcut is the identity, or a
// 1x1 conv (stride s) + BN when the stride is not 1 or the width changes.
// x [N, Cin, H, W] -> out [N, Cout, H', W'] with H' = (H - 1) / stride + 1.
class BasicBlock : public Module {
 public:
  BasicBlock(Generator& gen, int64_t in_channels, int64_t out_channels, int64_t stride,
             const BatchNormOptions& bn = {});
  std::string type_name() const override { return "BasicBlock"; }
  Tensor forward(const Tensor& x) override;
  Shape output_shape(const Shape& input) const override;
  double flops(const Shape& input) const override;

  std::shared_ptr<Conv2d> conv1, conv2;
  std::shared_ptr<BatchNorm> bn1, bn2;
  std::shared_ptr<Sequential> shortcut;  // null for the identity
  int64_t in_channels, out_channels, stride;
};

// Convolutions: Kaiming normal, fan_out, ReLU gain; BN weight 1, bias 0 (case B28).
class ResNet : public Module {
 public:
  explicit ResNet(const ResNetConfig& config);
  std::string type_name() const override { return "ResNet"; }
  // x [N, in_channels, H, W] -> [N, feature_dim]
  Tensor forward(const Tensor& x) override;
  Shape output_shape(const Shape& input) const override;
  bool expand_in_summary() const override { return true; }

  int64_t feature_dim() const { return config_.widths.back(); }
  int64_t in_channels() const { return config_.in_channels; }
  const ResNetConfig& config() const { return config_; }

  std::shared_ptr<Conv2d> conv1;
  std::shared_ptr<BatchNorm> bn1;
  std::vector<std::shared_ptr<Sequential>> layers;  // layer1 ... layerK

 private:
  void check_input(const Shape& s) const;
  ResNetConfig config_;
};

// Named configurations: "resnet18" (2,2,2,2; 64,128,256,512), "resnet34" (3,4,6,3; same
// widths), "resnet-small" (1,1,1,1; 32,64,128,256), "resnet-tiny" (1,1,1,1; 16,32,64,128),
// "resnet-mini" (three stages 1,1,1; 32,64,128).
std::vector<std::string> encoder_names();
ResNetConfig encoder_config(const std::string& name, int64_t in_channels = 3, uint64_t seed = 0);
std::shared_ptr<ResNet> make_encoder(const std::string& name, int64_t in_channels = 3,
                                     uint64_t seed = 0);

}  // namespace ss
