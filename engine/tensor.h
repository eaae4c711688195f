// Tensor: a contiguous, row-major n-d array of float32 or float64 on a device, plus the
// autograd links that record how it was made.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/random.h"

namespace ss {

enum class DType : uint8_t { f32, f64 };
enum class Device : uint8_t { cpu, cuda };

using Shape = std::vector<int64_t>;

size_t dtype_size(DType t);
const char* dtype_name(DType t);
const char* device_name(Device d);
std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);

// One allocation from a device's caching pool; returned to the pool when the last tensor
// that uses it goes away.
struct Storage {
  void* ptr = nullptr;
  size_t bytes = 0;
  Device device = Device::cpu;
  Storage(size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

struct Node;

struct TensorImpl {
  Shape shape;
  DType dtype = DType::f32;
  Device device = Device::cpu;
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements, from the start of storage
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;  // accumulated gradient of a leaf
  std::shared_ptr<Node> grad_fn;     // the op that produced a non-leaf
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // Creation. Values are uninitialised for empty().
  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu);
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu);
  static Tensor ones(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu);
  static Tensor full(const Shape& shape, double value, DType dtype = DType::f32,
                     Device device = Device::cpu);
  static Tensor scalar(double value, DType dtype = DType::f32, Device device = Device::cpu);
  static Tensor uniform(const Shape& shape, double lo, double hi, Generator& gen,
                        DType dtype = DType::f32, Device device = Device::cpu);
  static Tensor normal(const Shape& shape, double mean, double std, Generator& gen,
                       DType dtype = DType::f32, Device device = Device::cpu);
  static Tensor from_buffer(const void* data, const Shape& shape, DType dtype,
                            Device device = Device::cpu);
  static Tensor from_vector(const std::vector<float>& v, const Shape& shape);
  static Tensor from_vector(const std::vector<double>& v, const Shape& shape);

  // Metadata.
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl()->shape; }
  int64_t dim() const { return int64_t(shape().size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const { return shape_numel(shape()); }
  DType dtype() const { return impl()->dtype; }
  Device device() const { return impl()->device; }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype()); }
  std::string str() const;  // "[2, 3] f32 cpu"

  // Data. data<T>() checks the element type and that the tensor lives on the CPU.
  template <class T>
  T* data();
  template <class T>
  const T* data() const;
  void* raw_data();
  const void* raw_data() const;
  std::vector<double> to_vector() const;  // a host copy as doubles, any dtype or device
  double item() const;                    // the single element of a 1-element tensor

  // Views and copies (all differentiable unless noted).
  Tensor reshape(const Shape& shape) const;        // one dimension may be -1
  Tensor slice(int64_t begin, int64_t end) const;  // rows [begin, end) of dimension 0
  Tensor clone() const;
  Tensor detach() const;  // same storage, no autograd history
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;
  Tensor contiguous_copy() const { return clone(); }

  // In place, outside autograd (for buffers, parameters and optimizers).
  Tensor& fill_(double value);
  Tensor& copy_(const Tensor& src);  // same shape; dtype and device may differ

  // Autograd.
  bool requires_grad() const { return impl()->requires_grad; }
  Tensor& set_requires_grad(bool on = true);
  bool is_leaf() const { return impl()->grad_fn == nullptr; }
  Tensor grad() const;  // undefined when no gradient was accumulated yet
  void zero_grad();     // drops the accumulated gradient
  void set_grad(const Tensor& g);
  void backward() const;                    // from a one-element tensor, seed 1
  void backward(const Tensor& dout) const;  // with a given gradient of this tensor's shape
  const std::shared_ptr<Node>& grad_fn() const { return impl()->grad_fn; }

  TensorImpl* impl() const;
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& o) const { return impl_ == o.impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// ---- autograd tape --------------------------------------------------------------------------

// Gradients of the inputs given the gradient of the output; an undefined tensor means "none".
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& dout)>;

struct Node {
  std::string op;              // names the op in errors
  std::vector<Tensor> inputs;  // one per gradient that backward returns; storage-free
                               // stand-ins except for leaves that want a gradient
  BackwardFn backward;         // cleared (with what it captured) once the graph is freed
  bool released = false;
};

// Whether new ops are recorded on the tape (thread-local).
bool grad_enabled();

// No ops are recorded while one of these lives (evaluation, feature extraction, optimizers).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// Attaches a tape node to `out` when recording is on and any input needs a gradient.
// Used by every op: `return record("relu", out, {x}, [=](const Tensor& dout) {...});`
Tensor record(const char* op, Tensor out, std::vector<Tensor> inputs, BackwardFn backward);

// Runs reverse-mode differentiation from `root`; frees the graph unless retain_graph.
void run_backward(const Tensor& root, const Tensor& dout, bool retain_graph = false);

}  // namespace ss
