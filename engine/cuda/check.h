// Error checks for CUDA runtime and cuBLAS calls: a failure throws std::runtime_error naming the
// call, the file and line, and the library's error string.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace ss::cuda {

[[noreturn]] inline void throw_cuda_error(const char* call, const char* file, int line,
                                          cudaError_t err) {
  throw std::runtime_error(std::string("[cuda] ") + call + " failed at " + file + ":" +
                           std::to_string(line) + ": " + cudaGetErrorName(err) + " (" +
                           cudaGetErrorString(err) + ")");
}

[[noreturn]] inline void throw_cublas_error(const char* call, const char* file, int line,
                                            cublasStatus_t st) {
  throw std::runtime_error(std::string("[cublas] ") + call + " failed at " + file + ":" +
                           std::to_string(line) + ": " + cublasGetStatusName(st) + " (" +
                           cublasGetStatusString(st) + ")");
}

}  // namespace ss::cuda

#define CUDA_CHECK(call)                                                     \
  do {                                                                       \
    const cudaError_t ss_cuda_err_ = (call);                                 \
    if (ss_cuda_err_ != cudaSuccess)                                         \
      ::ss::cuda::throw_cuda_error(#call, __FILE__, __LINE__, ss_cuda_err_); \
  } while (0)

#define CUBLAS_CHECK(call)                                                      \
  do {                                                                          \
    const cublasStatus_t ss_cublas_st_ = (call);                                \
    if (ss_cublas_st_ != CUBLAS_STATUS_SUCCESS)                                 \
      ::ss::cuda::throw_cublas_error(#call, __FILE__, __LINE__, ss_cublas_st_); \
  } while (0)

// After a kernel launch: reports a bad launch configuration at the launch site.
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())
