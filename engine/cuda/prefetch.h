// Moving host batches to the device one step ahead of the compute, in every build.
//
//   Prefetcher pf(device);
//   pf.submit(first_batch);
//   for (...) {
//     Tensor x = pf.take();              // ready for kernels queued from now on
//     if (more) pf.submit(next_batch);   // its copy overlaps this step's compute
//     ... forward / backward on x ...
//   }
//
// On CUDA, submit() stages the host tensor in pinned memory (two buffers, used in turn) and
// queues an asynchronous copy on a copy stream, recording an event; take() makes the compute
// stream wait for that event without blocking the host. For the CPU device, and in builds
// without CUDA, submit() takes a plain copy (the caller may reuse its buffer at once either way).
#pragma once
#include <stdexcept>

#include "engine/backend.h"
#include "engine/tensor.h"

namespace ss {

class Prefetcher {
 public:
  explicit Prefetcher(Device device);
  ~Prefetcher();
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  // Starts moving `host` (a CPU tensor) to the device; at most one submit may be pending.
  void submit(const Tensor& host);
  // The tensor of the pending submit (on the device; no autograd history).
  Tensor take();
  bool pending() const { return has_pending_; }
  Device device() const { return device_; }

 private:
  void check_submit(const Tensor& host) const {
    if (host.device() != Device::cpu)
      throw std::invalid_argument("[prefetch] expects a host tensor, got " + host.str());
    if (has_pending_)
      throw std::logic_error("[prefetch] submit() while a batch is pending; take() it first");
  }
  void submit_plain(const Tensor& host) {
    NoGradGuard ng;
    pending_ = Tensor::empty(host.shape(), host.dtype(), device_);
    pending_.copy_(host);
    has_pending_ = true;
  }
  Tensor take_plain() {
    if (!has_pending_) throw std::logic_error("[prefetch] take() without a pending submit()");
    has_pending_ = false;
    Tensor t = pending_;
    pending_ = Tensor();
    return t;
  }

  Device device_;
  Tensor pending_;
  bool has_pending_ = false;
  struct Impl;  // the CUDA staging buffers, streams and events (engine/cuda/prefetch.cpp)
  Impl* impl_ = nullptr;
};

#ifndef SELFSUP_WITH_CUDA
inline Prefetcher::Prefetcher(Device device) : device_(device) {
  backend(device);  // throws when the device is not built in
}
inline Prefetcher::~Prefetcher() = default;
inline void Prefetcher::submit(const Tensor& host) {
  check_submit(host);
  submit_plain(host);
}
inline Tensor Prefetcher::take() {
  return take_plain();
}
#endif

}  // namespace ss
