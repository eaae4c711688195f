// The projection head and the encoder + head model that self-supervised objectives train.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "engine/nn.h"
#include "models/resnet.h"

namespace ss {

// Linear(in, hidden) [-> BatchNorm1d(hidden)] -> ReLU -> Linear(hidden, out), a Sequential:
// with BN the entries are 0 (Linear), 1 (BN), 2 (ReLU), 3 (Linear); without, 0, 1 (ReLU), 2.
// [N, in] -> [N, out]. Linear layers use PyTorch's default initialisation.
class ProjectionHead : public Sequential {
 public:
  ProjectionHead(int64_t in_features, int64_t hidden_features, int64_t out_features,
                 bool use_bn = true, uint64_t seed = 0, const BatchNormOptions& bn = {});
  std::string type_name() const override { return "ProjectionHead"; }

  int64_t in_features, hidden_features, out_features;
  bool use_bn;
};

// features = encoder(x) [N, feature_dim]; forward = head(features) [N, out_features].
// The encoder's entries keep their names (conv1.weight, layer1.0.bn1.running_mean, ...), the
// head's are prefixed "head." (head.0.weight, ...).
class SslModel : public Module {
 public:
  SslModel(std::shared_ptr<ResNet> encoder, std::shared_ptr<Module> head);
  std::string type_name() const override { return "SslModel"; }
  Tensor forward(const Tensor& x) override;  // head(encoder(x))
  Tensor features(const Tensor& x);          // encoder(x)
  bool expand_in_summary() const override { return true; }

  std::shared_ptr<ResNet> encoder;
  std::shared_ptr<Module> head;
};

// make_encoder(encoder_name, in_channels, seed) with a ProjectionHead(feature_dim, hidden, out).
std::shared_ptr<SslModel> make_ssl_model(const std::string& encoder_name, int64_t in_channels,
                                         int64_t hidden_features, int64_t out_features,
                                         bool use_bn = true, uint64_t seed = 0);

}  // namespace ss
