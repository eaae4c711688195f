// Helpers shared by the op implementations (not part of the public API).
#pragma once
#include <stdexcept>
#include <string>

#include "engine/backend.h"
#include "engine/ops.h"
#include "engine/profiler.h"

namespace ss::detail {

[[noreturn]] inline void fail(const char* op, const std::string& what) {
  throw std::invalid_argument(std::string("[") + op + "] " + what);
}

// True when autograd would need a gradient for t.
inline bool wants_grad(const Tensor& t) {
  return t.defined() && grad_enabled() && (t.requires_grad() || !t.is_leaf());
}

// Same dtype and device, or a clear error naming both tensors.
inline void check_compatible(const char* op, const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.device() != b.device())
    fail(op, "operands differ in dtype or device: " + a.str() + " and " + b.str());
}

inline void check_rank(const char* op, const Tensor& t, int64_t rank, const char* name) {
  if (t.dim() != rank)
    fail(op, std::string(name) + " must have rank " + std::to_string(rank) + ", got " + t.str());
}

// Normalises a possibly negative dimension index.
inline int64_t wrap_dim(const char* op, const Tensor& t, int64_t dim) {
  const int64_t r = t.dim();
  if (dim < -r || dim >= r)
    fail(op, "dimension " + std::to_string(dim) + " out of range for " + t.str());
  return dim < 0 ? dim + r : dim;
}

// Views x as [outer, n, inner] around dimension dim.
inline void split_dims(const Tensor& x, int64_t dim, int64_t& outer, int64_t& n, int64_t& inner) {
  outer = inner = 1;
  for (int64_t i = 0; i < dim; ++i) outer *= x.shape()[size_t(i)];
  n = x.shape()[size_t(dim)];
  for (int64_t i = dim + 1; i < x.dim(); ++i) inner *= x.shape()[size_t(i)];
}

inline Shape keepdim_shape(const Shape& s, int64_t dim) {
  Shape k = s;
  k[size_t(dim)] = 1;
  return k;
}

// dout summed over broadcast dimensions down to `shape` (case B32).
Tensor sum_to_shape(const Tensor& dout, const Shape& shape);
// t broadcast up to `shape` (a copy).
Tensor expand_to(const Tensor& t, const Shape& shape);

}  // namespace ss::detail
