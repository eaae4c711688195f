#include "models/head.h"

#include <stdexcept>

namespace ss {

ProjectionHead::ProjectionHead(int64_t in, int64_t hidden, int64_t out, bool use_bn_, uint64_t seed,
                               const BatchNormOptions& bn)
    : in_features(in), hidden_features(hidden), out_features(out), use_bn(use_bn_) {
  if (in <= 0 || hidden <= 0 || out <= 0)
    throw std::invalid_argument("[head] widths must be positive, got in " + std::to_string(in) +
                                ", hidden " + std::to_string(hidden) + ", out " +
                                std::to_string(out));
  Generator gen = Generator::derive(seed, {0x4ead});
  push_back(std::make_shared<Linear>(gen, in, hidden, true));
  if (use_bn) push_back(std::make_shared<BatchNorm>(hidden, bn));
  push_back(std::make_shared<ReLU>());
  push_back(std::make_shared<Linear>(gen, hidden, out, true));
}

SslModel::SslModel(std::shared_ptr<ResNet> encoder_, std::shared_ptr<Module> head_)
    : encoder(std::move(encoder_)), head(std::move(head_)) {
  if (!encoder || !head) throw std::invalid_argument("[ssl_model] encoder and head are required");
  register_module("", encoder);  // inlined: conv1.weight, layer1.0..., not encoder.conv1...
  register_module("head", head);
}

// x [N, C, H, W] -> features [N, feature_dim] -> out [N, D]
Tensor SslModel::forward(const Tensor& x) {
  return head->forward(encoder->forward(x));
}

Tensor SslModel::features(const Tensor& x) {
  return encoder->forward(x);
}

std::shared_ptr<SslModel> make_ssl_model(const std::string& encoder_name, int64_t in_channels,
                                         int64_t hidden_features, int64_t out_features, bool use_bn,
                                         uint64_t seed) {
  auto encoder = make_encoder(encoder_name, in_channels, seed);
  auto head = std::make_shared<ProjectionHead>(encoder->feature_dim(), hidden_features,
                                               out_features, use_bn, seed);
  return std::make_shared<SslModel>(encoder, head);
}

}  // namespace ss
