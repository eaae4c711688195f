#include "engine/tensor.h"

#include <cstring>
#include <sstream>
#include <stdexcept>

#include "engine/backend.h"
#include "engine/ops.h"

namespace ss {

size_t dtype_size(DType t) {
  return t == DType::f32 ? 4 : 8;
}
const char* dtype_name(DType t) {
  return t == DType::f32 ? "f32" : "f64";
}
const char* device_name(Device d) {
  return d == Device::cpu ? "cpu" : "cuda";
}

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

Storage::Storage(size_t nbytes, Device dev) : bytes(nbytes), device(dev) {
  ptr = nbytes ? backend(dev).allocate(nbytes) : nullptr;
}

Storage::~Storage() {
  if (ptr) backend(device).deallocate(ptr, bytes);
}

// ---- creation ------------------------------------------------------------------------------

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape)
    if (d < 0)
      throw std::invalid_argument("[empty] negative dimension in shape " + shape_str(shape));
  if (device == Device::cuda && dtype == DType::f64)
    throw std::invalid_argument("[empty] float64 is CPU-only (gradient checks); shape " +
                                shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->dtype = dtype;
  impl->device = device;
  impl->storage = std::make_shared<Storage>(size_t(shape_numel(shape)) * dtype_size(dtype), device);
  return Tensor(std::move(impl));
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(value);
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  return full(shape, 0.0, dtype, device);
}

Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) {
  return full(shape, 1.0, dtype, device);
}

Tensor Tensor::scalar(double value, DType dtype, Device device) {
  return full({}, value, dtype, device);
}

namespace {
// Fills a host tensor from a generator, then moves it to the device.
template <class Draw>
Tensor random_tensor(const Shape& shape, DType dtype, Device device, Draw draw) {
  Tensor host = Tensor::empty(shape, dtype);
  const int64_t n = host.numel();
  if (dtype == DType::f32) {
    float* p = host.data<float>();
    for (int64_t i = 0; i < n; ++i) p[i] = float(draw());
  } else {
    double* p = host.data<double>();
    for (int64_t i = 0; i < n; ++i) p[i] = draw();
  }
  return device == Device::cpu ? host : host.to(device);
}
}  // namespace

Tensor Tensor::uniform(const Shape& shape, double lo, double hi, Generator& gen, DType dtype,
                       Device device) {
  return random_tensor(shape, dtype, device, [&] { return gen.uniform(lo, hi); });
}

Tensor Tensor::normal(const Shape& shape, double mean, double std, Generator& gen, DType dtype,
                      Device device) {
  return random_tensor(shape, dtype, device, [&] { return mean + std * gen.normal(); });
}

Tensor Tensor::from_buffer(const void* data, const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  if (t.nbytes()) backend(device).copy_from_host(t.raw_data(), data, t.nbytes());
  return t;
}

Tensor Tensor::from_vector(const std::vector<float>& v, const Shape& shape) {
  if (int64_t(v.size()) != shape_numel(shape))
    throw std::invalid_argument("[from_vector] " + std::to_string(v.size()) +
                                " values do not fill shape " + shape_str(shape));
  return from_buffer(v.data(), shape, DType::f32);
}

Tensor Tensor::from_vector(const std::vector<double>& v, const Shape& shape) {
  if (int64_t(v.size()) != shape_numel(shape))
    throw std::invalid_argument("[from_vector] " + std::to_string(v.size()) +
                                " values do not fill shape " + shape_str(shape));
  return from_buffer(v.data(), shape, DType::f64);
}

// ---- metadata and data ---------------------------------------------------------------------

TensorImpl* Tensor::impl() const {
  if (!impl_) throw std::logic_error("[tensor] use of an undefined tensor");
  return impl_.get();
}

int64_t Tensor::size(int64_t d) const {
  const int64_t r = dim();
  if (d < -r || d >= r)
    throw std::invalid_argument("[size] dimension " + std::to_string(d) + " out of range for " +
                                shape_str(shape()));
  return shape()[size_t(d < 0 ? d + r : d)];
}

std::string Tensor::str() const {
  return shape_str(shape()) + " " + dtype_name(dtype()) + " " + device_name(device());
}

void* Tensor::raw_data() {
  auto* im = impl();
  return static_cast<char*>(im->storage->ptr) + im->offset * int64_t(dtype_size(im->dtype));
}

const void* Tensor::raw_data() const {
  return const_cast<Tensor*>(this)->raw_data();
}

template <class T>
static void check_access(const Tensor& t) {
  constexpr DType want = std::is_same_v<T, float> ? DType::f32 : DType::f64;
  if (t.dtype() != want)
    throw std::invalid_argument(std::string("[data] tensor ") + t.str() + " accessed as " +
                                dtype_name(want));
  if (t.device() != Device::cpu)
    throw std::invalid_argument("[data] tensor " + t.str() +
                                " is not on the CPU; copy it with .to(Device::cpu)");
}

template <class T>
T* Tensor::data() {
  check_access<T>(*this);
  return static_cast<T*>(raw_data());
}

template <class T>
const T* Tensor::data() const {
  check_access<T>(*this);
  return static_cast<const T*>(raw_data());
}

template float* Tensor::data<float>();
template double* Tensor::data<double>();
template const float* Tensor::data<float>() const;
template const double* Tensor::data<double>() const;

std::vector<double> Tensor::to_vector() const {
  Tensor host = device() == Device::cpu ? *this : to(Device::cpu);
  std::vector<double> v(static_cast<size_t>(numel()));
  if (dtype() == DType::f32) {
    const float* p = host.data<float>();
    for (size_t i = 0; i < v.size(); ++i) v[i] = p[i];
  } else {
    std::memcpy(v.data(), host.data<double>(), v.size() * sizeof(double));
  }
  return v;
}

double Tensor::item() const {
  if (numel() != 1)
    throw std::invalid_argument("[item] tensor " + str() + " does not hold exactly one value");
  return to_vector()[0];
}

// ---- views and copies ----------------------------------------------------------------------

Tensor Tensor::reshape(const Shape& shape_in) const {
  Shape shape = shape_in;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (infer >= 0)
        throw std::invalid_argument("[reshape] more than one -1 in " + shape_str(shape_in));
      infer = int64_t(i);
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0 && known > 0 && numel() % known == 0) shape[size_t(infer)] = numel() / known;
  if (shape_numel(shape) != numel() || (infer >= 0 && shape[size_t(infer)] < 0))
    throw std::invalid_argument("[reshape] cannot view " + shape_str(this->shape()) + " as " +
                                shape_str(shape_in));
  auto impl = std::make_shared<TensorImpl>(*impl_);
  impl->shape = shape;
  impl->grad.reset();
  impl->grad_fn.reset();
  impl->requires_grad = false;
  Tensor out(std::move(impl));
  const Shape in_shape = this->shape();
  return record("reshape", out, {*this}, [in_shape](const Tensor& dout) {
    return std::vector<Tensor>{dout.reshape(in_shape)};
  });
}

Tensor Tensor::slice(int64_t begin, int64_t end) const {
  if (dim() < 1 || begin < 0 || end > shape()[0] || begin > end)
    throw std::invalid_argument("[slice] rows [" + std::to_string(begin) + ", " +
                                std::to_string(end) + ") out of range for " + shape_str(shape()));
  auto impl = std::make_shared<TensorImpl>(*impl_);
  const int64_t row = shape()[0] ? numel() / shape()[0] : 0;
  impl->shape[0] = end - begin;
  impl->offset += begin * row;
  impl->grad.reset();
  impl->grad_fn.reset();
  impl->requires_grad = false;
  Tensor out(std::move(impl));
  const Shape in_shape = shape();
  const DType dt = dtype();
  const Device dev = device();
  return record("slice", out, {*this}, [=](const Tensor& dout) {
    Tensor g = Tensor::zeros(in_shape, dt, dev);
    if (dout.numel()) {
      Tensor part = g.slice(begin, end);
      part.copy_(dout);
    }
    return std::vector<Tensor>{g};
  });
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype(), device());
  out.copy_(*this);
  return record("clone", out, {*this},
                [](const Tensor& dout) { return std::vector<Tensor>{dout}; });
}

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>(*impl_);
  impl->grad.reset();
  impl->grad_fn.reset();
  impl->requires_grad = false;
  return Tensor(std::move(impl));
}

Tensor Tensor::to(DType dt) const {
  if (dt == dtype()) return *this;
  Tensor out = empty(shape(), dt, device());
  backend(device()).cast(*this, out);
  const DType src = dtype();
  return record("to", out, {*this},
                [src](const Tensor& dout) { return std::vector<Tensor>{dout.to(src)}; });
}

Tensor Tensor::to(Device dev) const {
  if (dev == device()) return *this;
  Tensor out = empty(shape(), dtype(), dev);
  out.copy_(*this);
  const Device src = device();
  return record("to", out, {*this},
                [src](const Tensor& dout) { return std::vector<Tensor>{dout.to(src)}; });
}

Tensor& Tensor::fill_(double value) {
  backend(device()).fill(*this, value);
  return *this;
}

Tensor& Tensor::copy_(const Tensor& src) {
  if (src.shape() != shape())
    throw std::invalid_argument("[copy_] source " + src.str() + " does not match destination " +
                                str());
  if (src.device() == device()) {
    if (src.dtype() == dtype()) {
      if (device() == Device::cpu)
        std::memcpy(raw_data(), src.raw_data(), nbytes());
      else
        backend(device()).cast(src, *this);
    } else {
      backend(device()).cast(src, *this);
    }
    return *this;
  }
  // Across devices: move the bytes through the host, converting the dtype on the CPU.
  Tensor host_src = src.device() == Device::cpu ? src : Tensor::empty(src.shape(), src.dtype());
  if (src.device() != Device::cpu)
    backend(src.device()).copy_to_host(host_src.raw_data(), src.raw_data(), src.nbytes());
  Tensor host_dst = host_src.dtype() == dtype() ? host_src : Tensor::empty(shape(), dtype());
  if (!host_dst.same(host_src)) backend(Device::cpu).cast(host_src, host_dst);
  backend(device()).copy_from_host(raw_data(), host_dst.raw_data(), nbytes());
  return *this;
}

// ---- autograd accessors --------------------------------------------------------------------

Tensor& Tensor::set_requires_grad(bool on) {
  if (!is_leaf())
    throw std::invalid_argument("[set_requires_grad] only leaf tensors can change requires_grad (" +
                                str() + " was made by " + grad_fn()->op + "); use detach()");
  impl()->requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const {
  return impl()->grad ? Tensor(impl()->grad) : Tensor();
}

void Tensor::zero_grad() {
  impl()->grad.reset();
}

void Tensor::set_grad(const Tensor& g) {
  if (g.defined() && g.shape() != shape())
    throw std::invalid_argument("[set_grad] gradient " + g.str() + " does not match " + str());
  impl()->grad = g.defined() ? g.impl_ptr() : nullptr;
}

void Tensor::backward() const {
  if (numel() != 1)
    throw std::invalid_argument("[backward] implicit gradient needs a one-element tensor, got " +
                                str() + "; pass the gradient explicitly");
  run_backward(*this, Tensor::ones(shape(), dtype(), device()));
}

void Tensor::backward(const Tensor& dout) const {
  run_backward(*this, dout);
}

}  // namespace ss
