// Modules: named parameters and buffers, children with dotted names, train / eval, state dicts,
// and the layers the models are built from (Conv2d, BatchNorm, Linear, ReLU, GlobalAvgPool,
// Sequential).
//
// Names follow PyTorch's state_dict: a child "layer1" holding a child "0" holding a parameter
// "weight" gives "layer1.0.weight", so checkpoints map one to one onto a PyTorch model of the
// same structure. A child registered with the empty name is inlined: its entries keep their own
// names (an encoder + head model exposes "conv1.weight" and "head.0.weight").
//
// A module owns its tensors as members and registers pointers to them, so modules are neither
// copyable nor movable; hold them in std::shared_ptr. Optimizers hold the parameter tensors
// themselves: move a model with to() before building its optimizer.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/random.h"
#include "engine/tensor.h"

namespace ss {

using NamedTensor = std::pair<std::string, Tensor>;

// One parameter as an optimizer sees it. no_decay marks BN scales / shifts and biases (the 1-D
// parameters), which are excluded from weight decay and from LARS adaptation (case B25).
struct ParameterInfo {
  std::string name;
  Tensor tensor;
  bool no_decay = false;
};

// What load_state_dict found besides the matching keys (both empty after a strict load).
struct LoadReport {
  std::vector<std::string> missing;     // in the model, not in the dict
  std::vector<std::string> unexpected;  // in the dict, not in the model
};

class Module {
 public:
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  virtual ~Module() = default;

  virtual std::string type_name() const = 0;

  // The computation. Modules with more than one input do not override it.
  virtual Tensor forward(const Tensor& x);
  Tensor operator()(const Tensor& x) { return forward(x); }

  // For summaries, without running anything. The defaults treat a module with children as the
  // composition of its children in registration order, and a leaf as shape-preserving and free.
  // FLOPs count 2 per multiply-add of convolutions and linear layers only (forward pass).
  virtual Shape output_shape(const Shape& input) const;
  virtual double flops(const Shape& input) const;
  // Whether a summary lists this module's children as rows instead of the module itself.
  virtual bool expand_in_summary() const { return false; }

  // Recursive, in registration order, with dotted names.
  std::vector<NamedTensor> named_parameters() const;
  std::vector<Tensor> parameters() const;
  std::vector<ParameterInfo> parameter_info() const;
  std::vector<NamedTensor> named_buffers() const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const {
    return children_;
  }
  int64_t num_parameters() const;

  // Parameters and buffers by name. The tensors are detached handles on the module's storage
  // (no copy): clone them to keep a snapshot.
  std::map<std::string, Tensor> state_dict() const;
  // Copies every matching entry into the module's tensors (converting the dtype; the device
  // stays the module's). A shape mismatch always throws, naming the key and both shapes; with
  // strict, so does a missing or unexpected key. Nothing is copied when it throws.
  LoadReport load_state_dict(const std::map<std::string, Tensor>& dict, bool strict = true);

  // Recursive. Training mode: BN uses batch statistics and updates its running statistics.
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  void zero_grad();  // drops the gradients of all parameters
  // Moves or converts every parameter and buffer (parameters stay requires_grad leaves).
  void to(Device device);
  void to(DType dtype);

 protected:
  void register_parameter(const std::string& name, Tensor* t, bool no_decay);
  void register_buffer(const std::string& name, Tensor* t);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_child(name, m);
    return m;
  }

 private:
  struct ParamSlot {
    std::string name;
    Tensor* tensor;
    bool no_decay;
  };
  struct BufferSlot {
    std::string name;
    Tensor* tensor;
  };
  void add_child(const std::string& name, std::shared_ptr<Module> m);
  void visit_params(const std::string& prefix,
                    const std::function<void(const std::string&, Tensor&, bool)>& fn) const;
  void visit_buffers(const std::string& prefix,
                     const std::function<void(const std::string&, Tensor&)>& fn) const;
  std::vector<ParamSlot> params_;
  std::vector<BufferSlot> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// ---- layers --------------------------------------------------------------------------------

// x [N, Cin, H, W] -> [N, Cout, Ho, Wo]; weight [Cout, Cin, k, k], bias [Cout] when enabled.
// Default init as PyTorch: weight kaiming_uniform(a = sqrt(5)), i.e. U(-1/sqrt(fan_in), ..),
// bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
class Conv2d : public Module {
 public:
  Conv2d(Generator& gen, int64_t in_channels, int64_t out_channels, int64_t kernel,
         int64_t stride = 1, int64_t padding = 0, bool bias = false);
  std::string type_name() const override { return "Conv2d"; }
  Tensor forward(const Tensor& x) override;
  Shape output_shape(const Shape& input) const override;
  double flops(const Shape& input) const override;

  Tensor weight, bias;
  int64_t in_channels, out_channels, kernel, stride, padding;
};

// x [N, Din] -> [N, Dout]; weight [Dout, Din], bias [Dout]. PyTorch's default init:
// weight kaiming_uniform(a = sqrt(5)) = U(-1/sqrt(Din), 1/sqrt(Din)), bias the same bound.
class Linear : public Module {
 public:
  Linear(Generator& gen, int64_t in_features, int64_t out_features, bool bias = true);
  std::string type_name() const override { return "Linear"; }
  Tensor forward(const Tensor& x) override;
  Shape output_shape(const Shape& input) const override;
  double flops(const Shape& input) const override;

  Tensor weight, bias;
  int64_t in_features, out_features;
};

struct BatchNormOptions {
  double eps = 1e-5;
  double momentum = 0.1;  // running = (1 - momentum) * running + momentum * batch
  bool affine = true;     // learnable weight (init 1) and bias (init 0)
  // Adds PyTorch's "num_batches_tracked" buffer (stored as a float64 scalar; the engine has no
  // integer tensors). Off by default: PyTorch loads a state dict without it.
  bool track_num_batches = false;
};

// BatchNorm1d on [N, C] and BatchNorm2d on [N, C, H, W] (engine batch_norm): batch statistics
// in training mode (which needs more than one value per channel, case B21), running statistics
// in eval mode, where the buffers are never written (case B23).
class BatchNorm : public Module {
 public:
  explicit BatchNorm(int64_t channels, BatchNormOptions options = {});
  std::string type_name() const override { return "BatchNorm"; }
  Tensor forward(const Tensor& x) override;
  // relu(forward(x) + residual) (residual may be undefined) as one op: batch_norm_add_relu.
  Tensor forward_add_relu(const Tensor& x, const Tensor& residual = Tensor());

  Tensor weight, bias, running_mean, running_var, num_batches_tracked;
  int64_t channels;
  BatchNormOptions options;
};

class ReLU : public Module {
 public:
  std::string type_name() const override { return "ReLU"; }
  Tensor forward(const Tensor& x) override;
};

// [N, C, H, W] -> [N, C]
class GlobalAvgPool : public Module {
 public:
  std::string type_name() const override { return "GlobalAvgPool"; }
  Tensor forward(const Tensor& x) override;
  Shape output_shape(const Shape& input) const override;
};

// Children named "0", "1", ... applied in order.
class Sequential : public Module {
 public:
  Sequential() = default;
  std::string type_name() const override { return "Sequential"; }
  Tensor forward(const Tensor& x) override;
  bool expand_in_summary() const override { return true; }

  template <class M>
  std::shared_ptr<M> push_back(std::shared_ptr<M> m) {
    return register_module(std::to_string(children().size()), std::move(m));
  }
  size_t size() const { return children().size(); }
  Module& at(size_t i) const { return *children().at(i).second; }
};

// A table of the model for an input shape: one row per module (children of modules that
// expand_in_summary are listed instead of them) with output shape, parameters and FLOPs, then
// the totals. The model's forward must be the composition of its children in order.
std::string model_summary(const Module& model, const Shape& input);

}  // namespace ss
