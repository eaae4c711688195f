// The CUDA caching allocator: size-bucketed free lists of device blocks. Freed blocks are kept
// and handed out again for the same bucket, so a training loop whose shapes repeat stops calling
// cudaMalloc after its first step. All device work runs on one stream (the legacy default
// stream), so a block freed on the host can be reused at once: later kernels are ordered after
// the earlier ones that still read it.
#pragma once
#include <cstddef>

namespace ss::cuda {

void* device_alloc(size_t bytes);
void device_free(void* ptr, size_t bytes);

// A scratch block from the pool for the length of one kernel call.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes)
      : bytes_(bytes), ptr_(bytes ? device_alloc(bytes) : nullptr) {}
  ~DeviceBuffer() {
    if (ptr_) device_free(ptr_, bytes_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  template <class T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

 private:
  size_t bytes_;
  void* ptr_;
};

}  // namespace ss::cuda
