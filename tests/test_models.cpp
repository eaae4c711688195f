// The module system, layers, initialisation (B28), the ResNet encoder and projection head,
// batch-norm corner cases (B21, B23) and a float64 gradient check of BasicBlocks.
#include <algorithm>
#include <array>
#include <cmath>
#include <set>

#include "engine/init.h"
#include "engine/nn.h"
#include "engine/optim.h"
#include "models/head.h"
#include "models/resnet.h"
#include "tests/helpers.h"

using namespace ss;
using namespace ss::test;

namespace {

std::vector<std::string> keys_of(const std::vector<NamedTensor>& v) {
  std::vector<std::string> out;
  for (const auto& kv : v) out.push_back(kv.first);
  return out;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

double sample_std(const std::vector<double>& v) {
  double m = 0, s = 0;
  for (double x : v) m += x;
  m /= double(v.size());
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / double(v.size()));
}

// Bitwise copies of every parameter and buffer.
std::map<std::string, std::vector<double>> snapshot(const Module& m) {
  std::map<std::string, std::vector<double>> out;
  for (const auto& [k, t] : m.state_dict()) out[k] = t.to_vector();
  return out;
}

}  // namespace

// ---- module system -------------------------------------------------------------------------

TEST_CASE("BasicBlock parameter and buffer names follow PyTorch") {
  Generator gen(1);
  BasicBlock down(gen, 16, 32, 2);
  CHECK(keys_of(down.named_parameters()) ==
        std::vector<std::string>{"conv1.weight", "bn1.weight", "bn1.bias", "conv2.weight",
                                 "bn2.weight", "bn2.bias", "shortcut.0.weight", "shortcut.1.weight",
                                 "shortcut.1.bias"});
  CHECK(keys_of(down.named_buffers()) ==
        std::vector<std::string>{"bn1.running_mean", "bn1.running_var", "bn2.running_mean",
                                 "bn2.running_var", "shortcut.1.running_mean",
                                 "shortcut.1.running_var"});
  BasicBlock same(gen, 8, 8, 1);
  CHECK(same.shortcut == nullptr);
  CHECK(keys_of(same.named_parameters()).size() == 6);
  // A width change alone also needs the projection.
  BasicBlock wider(gen, 8, 16, 1);
  CHECK(wider.shortcut != nullptr);
}

TEST_CASE("encoder + head names, no-decay flags and parameter counts") {
  auto model = make_ssl_model("resnet-tiny", 3, 64, 32, true, 5);
  const auto names = keys_of(model->named_parameters());
  for (const char* k : {"conv1.weight", "bn1.weight", "layer1.0.conv1.weight", "layer1.0.bn2.bias",
                        "layer2.0.shortcut.0.weight", "layer4.0.shortcut.1.bias", "head.0.weight",
                        "head.0.bias", "head.1.weight", "head.3.weight", "head.3.bias"})
    CHECK_MESSAGE(contains(names, k), k);
  CHECK_FALSE(contains(names, "layer1.0.shortcut.0.weight"));  // identity shortcut
  const auto sd = model->state_dict();
  CHECK(sd.count("head.1.running_var") == 1);
  CHECK(sd.count("layer3.0.shortcut.1.running_mean") == 1);
  CHECK(sd.count("bn1.num_batches_tracked") == 0);

  for (const ParameterInfo& p : model->parameter_info()) {
    INFO(p.name);
    CHECK(p.no_decay == (p.tensor.dim() == 1));  // BN params and biases, exactly the 1-D ones
    CHECK(p.tensor.requires_grad());
  }
  int64_t total = 0;
  for (const auto& t : model->parameters()) total += t.numel();
  CHECK(total == model->num_parameters());
}

TEST_CASE("state_dict round trip and load errors name the key") {
  auto a = make_encoder("resnet-tiny", 3, 1);
  auto b = make_encoder("resnet-tiny", 3, 2);
  CHECK(a->named_parameters()[0].second.to_vector() != b->named_parameters()[0].second.to_vector());
  LoadReport r = b->load_state_dict(a->state_dict());
  CHECK(r.missing.empty());
  CHECK(r.unexpected.empty());
  CHECK(snapshot(*a) == snapshot(*b));

  auto sd = a->state_dict();
  sd["layer2.0.conv1.weight"] = Tensor::zeros({32, 16, 3, 1});
  check_throws_with([&] { b->load_state_dict(sd); }, {"[load_state_dict]", "layer2.0.conv1.weight",
                                                      "[32, 16, 3, 1]", "[32, 16, 3, 3]"});
  sd = a->state_dict();
  sd.erase("layer3.0.bn1.running_var");
  check_throws_with([&] { b->load_state_dict(sd); },
                    {"[load_state_dict]", "missing", "layer3.0.bn1.running_var"});
  sd = a->state_dict();
  sd["fc.weight"] = Tensor::zeros({10, 128});
  check_throws_with([&] { b->load_state_dict(sd); },
                    {"[load_state_dict]", "unexpected", "fc.weight"});
  r = b->load_state_dict(sd, false);
  CHECK(r.unexpected == std::vector<std::string>{"fc.weight"});

  // A failed load changes nothing.
  auto c = make_encoder("resnet-tiny", 3, 3);
  const auto before = snapshot(*c);
  sd = a->state_dict();
  sd["layer4.0.bn2.weight"] = Tensor::zeros({3});
  CHECK_THROWS(c->load_state_dict(sd));
  CHECK(snapshot(*c) == before);
}

TEST_CASE("train / eval recurse, zero_grad, to(dtype)") {
  auto model = make_ssl_model("resnet-tiny", 1, 32, 16, true, 0);
  CHECK(model->is_training());
  model->eval();
  CHECK_FALSE(model->is_training());
  CHECK_FALSE(model->encoder->layers[2]->at(0).is_training());
  CHECK_FALSE(model->head->children()[1].second->is_training());
  model->train();
  CHECK(model->encoder->layers[3]->at(0).is_training());

  Generator g(3);
  Tensor x = Tensor::normal({2, 1, 8, 8}, 0, 1, g);
  sum(model->forward(x)).backward();
  for (const auto& [n, t] : model->named_parameters()) {
    INFO(n);
    CHECK(t.grad().defined());
  }
  model->zero_grad();
  for (const auto& t : model->parameters()) CHECK_FALSE(t.grad().defined());

  const auto before = model->state_dict();
  model->to(DType::f64);
  for (const auto& [n, t] : model->named_parameters()) {
    CHECK(t.dtype() == DType::f64);
    CHECK(t.requires_grad());
    CHECK(t.to_vector() == before.at(n).to_vector());
  }
  for (const auto& [n, t] : model->named_buffers()) CHECK(t.dtype() == DType::f64);
  CHECK(model->forward(x.to(DType::f64)).dtype() == DType::f64);
}

TEST_CASE("BatchNorm num_batches_tracked is optional and counts training batches only") {
  BatchNorm plain(2);
  CHECK(plain.state_dict().count("num_batches_tracked") == 0);
  BatchNorm counted(2, BatchNormOptions{.track_num_batches = true});
  CHECK(counted.state_dict().count("num_batches_tracked") == 1);
  Tensor x = Tensor::from_vector(std::vector<float>{1, 2, 3, 5}, {2, 2});
  counted.forward(x);
  counted.forward(x);
  counted.eval();
  counted.forward(x);
  CHECK(counted.num_batches_tracked.item() == 2);
}

TEST_CASE("layer argument errors") {
  Generator gen(0);
  check_throws_with([&] { Conv2d(gen, 0, 4, 3); }, {"[Conv2d]", "in_channels"});
  check_throws_with([&] { Linear(gen, 4, -1); }, {"[Linear]", "out_features"});
  check_throws_with([&] { BatchNorm(4, BatchNormOptions{.eps = 0}); }, {"[BatchNorm]", "eps"});
  Conv2d conv(gen, 3, 4, 3, 1, 1);
  check_throws_with([&] { conv.output_shape({2, 4, 8, 8}); }, {"[Conv2d]", "[2, 4, 8, 8]"});
  check_throws_with([&] { conv.forward(Tensor::zeros({2, 4, 8, 8})); }, {"[conv2d]"});
}

// ---- initialisation (B28) ------------------------------------------------------------------

TEST_CASE("B28: fans from the weight shape and Kaiming std") {
  CHECK(compute_fans({64, 3, 3, 3}).fan_in == 27);
  CHECK(compute_fans({64, 3, 3, 3}).fan_out == 576);
  CHECK(compute_fans({10, 512}).fan_in == 512);
  CHECK(compute_fans({10, 512}).fan_out == 10);
  const double tol = 5e-7;
  CHECK(std::abs(kaiming_std({64, 3, 3, 3}, FanMode::fan_in) - 0.272166) < tol);
  CHECK(std::abs(kaiming_bound({64, 3, 3, 3}, FanMode::fan_in) - 0.471405) < tol);
  CHECK(std::abs(kaiming_std({64, 3, 3, 3}, FanMode::fan_out) - 0.0589256) < tol);
  CHECK(std::abs(kaiming_std({64, 3, 7, 7}, FanMode::fan_in) - 0.116642) < tol);
  CHECK(std::abs(kaiming_std({64, 3, 7, 7}, FanMode::fan_out) - 0.0252538) < tol);
  CHECK(std::abs(kaiming_std({10, 512}, FanMode::fan_in) - 0.0625) < tol);
  // The wrong axis (fan_in read from dimension 0 of [out, in]) is what fan_out gives here.
  CHECK(std::abs(kaiming_std({10, 512}, FanMode::fan_out) - 0.447214) < tol);
  CHECK(std::abs(calculate_gain("relu") - std::sqrt(2.0)) < 1e-15);
  check_throws_with([] { compute_fans({5}); }, {"[init]", "[5]"});
  check_throws_with([] { calculate_gain("swish"); }, {"[init]", "swish"});
}

TEST_CASE("B28: empirical std over >= 100000 draws within 1%") {
  struct Case {
    Shape shape;
    FanMode mode;
    bool uniform;
  };
  for (const Case& c :
       {Case{{64, 3, 3, 3}, FanMode::fan_in, false}, Case{{64, 3, 3, 3}, FanMode::fan_out, true},
        Case{{64, 3, 7, 7}, FanMode::fan_out, false}, Case{{10, 512}, FanMode::fan_in, true}}) {
    // Draw >= 100000 values of the weight's distribution.
    const int64_t reps = (100000 + shape_numel(c.shape) - 1) / shape_numel(c.shape);
    std::vector<double> all;
    Generator gen(11);
    for (int64_t r = 0; r < reps; ++r) {
      Tensor w = Tensor::zeros(c.shape);
      if (c.uniform)
        kaiming_uniform_(w, gen, c.mode);
      else
        kaiming_normal_(w, gen, c.mode);
      const auto v = w.to_vector();
      all.insert(all.end(), v.begin(), v.end());
    }
    REQUIRE(all.size() >= 100000);
    const double want = kaiming_std(c.shape, c.mode);
    INFO("shape " << shape_str(c.shape) << " want " << want << " got " << sample_std(all));
    CHECK(std::abs(sample_std(all) / want - 1) < 0.01);
  }
}

TEST_CASE("B28: ResNet init is Kaiming normal fan_out, BN 1 / 0; Linear is PyTorch's default") {
  auto net = make_encoder("resnet18", 3, 7);
  const auto sd = net->state_dict();
  // layer4.0.conv2.weight [512, 512, 3, 3]: 2.4M draws, fan_out = 4608.
  for (const char* k : {"layer4.0.conv2.weight", "layer1.0.conv1.weight", "conv1.weight"}) {
    const Tensor w = sd.at(k);
    const double want = std::sqrt(2.0 / double(compute_fans(w.shape()).fan_out));
    INFO(k << " want " << want << " got " << sample_std(w.to_vector()));
    CHECK(std::abs(sample_std(w.to_vector()) / want - 1) < (w.numel() >= 100000 ? 0.01 : 0.1));
  }
  for (const auto& [k, t] : sd) {
    if (k.find("bn") == std::string::npos && k.find("shortcut.1") == std::string::npos) continue;
    const double want = (k.ends_with(".weight") || k.ends_with("running_var")) ? 1.0 : 0.0;
    for (double v : t.to_vector()) CHECK(v == want);
  }

  Generator gen(4);
  Linear fc(gen, 512, 256);
  const double bound = 1.0 / std::sqrt(512.0);
  const auto w = fc.weight.to_vector();
  for (double v : w) CHECK(std::abs(v) <= bound);
  for (double v : fc.bias.to_vector()) CHECK(std::abs(v) <= bound);
  CHECK(std::abs(sample_std(w) / (bound / std::sqrt(3.0)) - 1) < 0.01);  // 131072 draws
}

// ---- ResNet --------------------------------------------------------------------------------

TEST_CASE("resnet18 has 11,168,832 parameters; summary lists blocks, shapes, FLOPs") {
  auto r18 = make_encoder("resnet18");
  CHECK(r18->num_parameters() == 11168832);
  CHECK(r18->feature_dim() == 512);
  CHECK(make_encoder("resnet34")->num_parameters() == 21276992);
  const std::string s = model_summary(*r18, {1, 3, 32, 32});
  MESSAGE("\n" << s);
  CHECK(s.find("total parameters: 11,168,832") != std::string::npos);
  CHECK(s.find("layer4.1") != std::string::npos);
  CHECK(s.find("[1, 512, 4, 4]") != std::string::npos);
  CHECK(s.find("[1, 512]") != std::string::npos);
  // Convolutions of CIFAR ResNet-18 at 32x32: 555,417,600 multiply-adds -> 1.1108 GFLOPs.
  CHECK(s.find("total GFLOPs: 1.1108") != std::string::npos);
  CHECK(r18->flops({1, 3, 32, 32}) == 2 * 555417600.0);

  auto model = make_ssl_model("resnet-tiny", 1, 64, 32, true, 0);
  const std::string t = model_summary(*model, {8, 1, 28, 28});
  MESSAGE("\n" << t);
  CHECK(t.find("head.3") != std::string::npos);
  CHECK(t.find("[8, 32]") != std::string::npos);
}

TEST_CASE("named configurations, custom depths and widths, shapes and input errors") {
  CHECK(encoder_names() == std::vector<std::string>{"resnet18", "resnet34", "resnet-small",
                                                    "resnet-tiny", "resnet-mini"});
  check_throws_with([] { make_encoder("resnet50"); },
                    {"[resnet]", "resnet50", "resnet18", "resnet-tiny"});
  auto tiny = make_encoder("resnet-tiny", 1);
  Generator g(2);
  Tensor x = Tensor::normal({3, 1, 28, 28}, 0, 1, g);
  Tensor y = tiny->forward(x);
  CHECK(y.shape() == Shape{3, 128});
  CHECK(tiny->output_shape({3, 1, 28, 28}) == Shape{3, 128});
  check_throws_with(
      [&] {
        tiny->forward(Tensor::zeros({3, 3, 28, 28}));
      },
      {"[resnet]", "[3, 3, 28, 28]", "[N, 1, H, W]"});
  check_throws_with([&] { tiny->forward(Tensor::zeros({3, 28, 28})); }, {"[resnet]"});

  ResNetConfig cfg;
  cfg.depths = {1, 2, 1};
  cfg.widths = {4, 8, 12};
  cfg.stem_padding = 0;
  ResNet custom(cfg);
  CHECK(custom.layers.size() == 3);
  CHECK(custom.layers[1]->size() == 2);
  CHECK(custom.forward(Tensor::zeros({2, 3, 10, 10})).shape() == Shape{2, 12});
  // padding 0: 10 -> 8 -> 8 -> 4 -> 2
  CHECK(custom.output_shape({2, 3, 10, 10}) == Shape{2, 12});
  cfg.widths = {4, 8};
  check_throws_with([&] { ResNet bad(cfg); }, {"[resnet]", "(1, 2, 1)", "(4, 8)"});

  check_throws_with([] { ProjectionHead(0, 4, 4); }, {"[head]"});
  ProjectionHead nobn(16, 8, 4, false);
  CHECK(keys_of(nobn.named_parameters()) ==
        std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"});
}

// ---- batch norm corner cases ---------------------------------------------------------------

TEST_CASE("B21: BatchNorm with one value per channel in training") {
  BatchNorm bn1d(4);
  check_throws_with(
      [&] {
        bn1d.forward(Tensor::ones({1, 4}));
      },
      {"[batch_norm]", "more than one value per channel", "[1, 4]"});
  // The buffers are untouched by the failed call.
  check_values(bn1d.running_mean, {0, 0, 0, 0}, 0);
  check_values(bn1d.running_var, {1, 1, 1, 1}, 0);

  // A model fails the same way on a last batch of one in training.
  auto model = make_ssl_model("resnet-tiny", 1, 16, 8, true, 0);
  // (The blocks run batch norm fused with the add and ReLU: batch_norm_add_relu.)
  check_throws_with(
      [&] {
        model->forward(Tensor::zeros({1, 1, 8, 8}));
      },
      {"[batch_norm", "more than one value per channel"});

  BatchNorm bn2d(1);
  Tensor x = Tensor::from_vector(std::vector<double>{1, 2, 3, 4}, {1, 1, 2, 2}).to(DType::f32);
  check_values(bn2d.forward(x), {-1.34164, -0.447212, 0.447212, 1.34164}, 1e-5);
  check_values(bn2d.running_mean, {0.25}, 1e-6);
  check_values(bn2d.running_var, {1.06667}, 1e-5);

  BatchNorm e(1);
  e.eval();
  check_values(e.forward(Tensor::full({1, 1}, 3.0)), {3.0 / std::sqrt(1.0 + 1e-5)}, 1e-6);
  check_values(e.forward(Tensor::full({1, 1}, 3.0)), {2.99998}, 2e-6);  // as the case states
  model->eval();
  CHECK(model->forward(Tensor::zeros({1, 1, 8, 8})).shape() == Shape{1, 8});
}

TEST_CASE("B23: eval mode never changes BN buffers; features do not depend on the batch") {
  // 1. The frozen encoder sees (4, 6): eval keeps (0, 1); train gives the buggy (0.5, 1.1).
  BatchNorm bn(1);
  Tensor x = Tensor::from_vector(std::vector<float>{4, 6}, {2, 1});
  bn.eval();
  {
    NoGradGuard ng;
    bn.forward(x);
  }
  CHECK(bn.running_mean.to_vector() == std::vector<double>{0.0});
  CHECK(bn.running_var.to_vector() == std::vector<double>{1.0});
  bn.train();
  bn.forward(x);
  check_values(bn.running_mean, {0.5}, 1e-6);
  check_values(bn.running_var, {1.1}, 1e-6);

  // 2. Many eval passes (with and without grad) leave everything bit-identical.
  auto model = make_ssl_model("resnet-tiny", 3, 32, 16, true, 9);
  Generator g(5);
  for (int i = 0; i < 3; ++i) model->forward(Tensor::normal({4, 3, 12, 12}, 0, 1, g));  // train
  const auto before = snapshot(*model);
  model->eval();
  for (int i = 0; i < 3; ++i) {
    NoGradGuard ng;
    model->features(Tensor::normal({5, 3, 12, 12}, 0.5, 2, g));
  }
  sum(model->forward(Tensor::normal({2, 3, 12, 12}, 0, 1, g))).backward();  // a probe step
  CHECK(snapshot(*model) == before);

  // A linear-probe "epoch": frozen encoder in eval mode, a classifier trained by SGD on its
  // features. The encoder's parameters and buffers stay bit-identical.
  model->zero_grad();
  Generator probe_gen(8);
  Linear probe(probe_gen, model->encoder->feature_dim(), 3);
  Sgd probe_opt({single_group(probe, 1e-4)}, SgdOptions{.lr = 0.1, .momentum = 0.9});
  for (int step = 0; step < 4; ++step) {
    Tensor feats;
    {
      NoGradGuard frozen;
      feats = model->features(Tensor::normal({4, 3, 12, 12}, 0, 1, g));
    }
    cross_entropy(probe.forward(feats), {0, 1, 2, 1}).backward();
    probe_opt.step();
    probe_opt.zero_grad();
  }
  CHECK(snapshot(*model) == before);

  // 3. A sample's feature alone equals its feature within a batch (eval mode only).
  NoGradGuard ng;
  Tensor batch = Tensor::normal({6, 3, 12, 12}, 0, 1, g);
  const auto all = model->features(batch).to_vector();
  const auto one = model->features(batch.slice(2, 3)).to_vector();
  double worst = 0;
  for (size_t j = 0; j < one.size(); ++j)
    worst = std::max(worst, std::abs(one[j] - all[2 * one.size() + j]));
  MESSAGE("max |feature alone - feature in batch| = " << worst);
  CHECK(worst < 1e-6);
  // In training mode the same comparison differs (batch statistics).
  model->train();
  const auto all_t = model->features(batch).to_vector();
  const auto pair_t = model->features(batch.slice(2, 4)).to_vector();
  double diff_t = 0;
  for (size_t j = 0; j < one.size(); ++j)
    diff_t = std::max(diff_t, std::abs(pair_t[j] - all_t[2 * one.size() + j]));
  CHECK(diff_t > 1e-3);
}

// ---- gradient check ------------------------------------------------------------------------

TEST_CASE("float64 gradcheck of tiny BasicBlocks (projection and identity shortcut)") {
  for (const auto& [cin, cout, stride, hw] :
       std::vector<std::array<int64_t, 4>>{{2, 3, 2, 4}, {3, 3, 1, 3}}) {
    Generator gen(uint64_t(cin * 10 + stride));
    BasicBlock block(gen, cin, cout, stride);
    block.to(DType::f64);
    // Random BN affine parameters, so the check does not sit at gamma = 1, beta = 0.
    for (auto& [n, t] : block.named_parameters())
      if (t.dim() == 1) t.copy_(Tensor::uniform(t.shape(), 0.5, 1.5, gen, DType::f64));
    Tensor x = rand64({2, cin, hw, hw}, 17);
    std::vector<Tensor> inputs = {x};
    for (const auto& t : block.parameters()) inputs.push_back(t);
    INFO("BasicBlock " << cin << " -> " << cout << " stride " << stride);
    check_gradients([&](const std::vector<Tensor>& in) { return block.forward(in[0]); }, inputs);
  }
}
