// The CUDA side of Prefetcher (engine/cuda/prefetch.h): pinned staging, a copy stream, events.
#include "engine/cuda/prefetch.h"

#include <cstring>

#include "engine/cuda/check.h"
#include "engine/cuda/cuda_backend.h"

namespace ss {

struct Prefetcher::Impl {
  struct Slot {
    void* pinned = nullptr;
    size_t capacity = 0;
    cudaEvent_t done = nullptr;  // the copy out of this buffer finished
    bool in_use = false;
  };
  cudaStream_t copy = nullptr;
  cudaEvent_t compute_mark = nullptr;  // the compute stream's position when a copy starts
  Slot slots[2];
  int next = 0;
  cudaEvent_t pending_done = nullptr;

  Impl() {
    CUDA_CHECK(cudaStreamCreateWithFlags(&copy, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreateWithFlags(&compute_mark, cudaEventDisableTiming));
    for (Slot& s : slots) CUDA_CHECK(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming));
  }
  // Best effort: errors while tearing down are not worth a throw from a destructor.
  ~Impl() {
    for (Slot& s : slots) {
      if (s.in_use) (void)cudaEventSynchronize(s.done);
      if (s.pinned) (void)cudaFreeHost(s.pinned);
      (void)cudaEventDestroy(s.done);
    }
    (void)cudaEventDestroy(compute_mark);
    (void)cudaStreamDestroy(copy);
  }
};

Prefetcher::Prefetcher(Device device) : device_(device) {
  backend(device);  // throws when the device is absent or not built in
  if (device == Device::cuda) impl_ = new Impl();
}

Prefetcher::~Prefetcher() {
  delete impl_;
}

void Prefetcher::submit(const Tensor& host) {
  check_submit(host);
  if (!impl_) return submit_plain(host);
  Impl::Slot& s = impl_->slots[impl_->next];
  impl_->next ^= 1;
  const size_t bytes = host.nbytes();

  // Stage the batch in pinned memory (once this buffer's previous copy has finished).
  if (s.in_use) CUDA_CHECK(cudaEventSynchronize(s.done));
  s.in_use = false;
  if (s.capacity < bytes) {
    if (s.pinned) CUDA_CHECK(cudaFreeHost(s.pinned));
    s.pinned = nullptr;
    s.capacity = 0;
    CUDA_CHECK(cudaHostAlloc(&s.pinned, bytes, cudaHostAllocDefault));
    s.capacity = bytes;
  }
  if (bytes) std::memcpy(s.pinned, host.raw_data(), bytes);

  // The destination block may have just been freed by work still queued on the compute
  // stream: the copy stream waits for the compute stream's current position first.
  Tensor dev = Tensor::empty(host.shape(), host.dtype(), Device::cuda);
  CUDA_CHECK(cudaEventRecord(impl_->compute_mark, cuda::stream()));
  CUDA_CHECK(cudaStreamWaitEvent(impl_->copy, impl_->compute_mark, 0));
  if (bytes)
    CUDA_CHECK(
        cudaMemcpyAsync(dev.raw_data(), s.pinned, bytes, cudaMemcpyHostToDevice, impl_->copy));
  CUDA_CHECK(cudaEventRecord(s.done, impl_->copy));
  s.in_use = true;
  impl_->pending_done = s.done;
  pending_ = dev;
  has_pending_ = true;
}

Tensor Prefetcher::take() {
  if (impl_ && has_pending_)
    CUDA_CHECK(cudaStreamWaitEvent(cuda::stream(), impl_->pending_done, 0));
  return take_plain();
}

}  // namespace ss
