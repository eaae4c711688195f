// Conv2d throughput against a large square SGEMM, in one run (not a test).
//
//   ./build/bench_conv [--threads 2] [--reps 5]
//
// Conv: N = 256, C = 64 -> 64, 32x32, 3x3, padding 1. FLOPs count 2 per multiply-add; the
// backward pass does two GEMMs' worth (input and weight gradients).
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "engine/backend.h"
#include "engine/cpu/blas_setup.h"
#include "engine/cpu/thread_pool.h"
#include "engine/ops.h"

using namespace ss;

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

template <class F>
double median_seconds(int reps, F&& f) {
  f();  // warm-up
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(seconds_since(t0));
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}
}  // namespace

int main(int argc, char** argv) {
  cpu::select_blas_kernels(argv);
  int threads = 2, reps = 5;
  for (int i = 1; i + 1 < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[++i]);
    if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[++i]);
  }
  cpu::set_num_threads(threads);
  std::printf("%s\n%s\n", cpu::thread_policy(), cpu::blas_description().c_str());

  const int64_t N = 256, C = 64, H = 32, W = 32, K = 3;
  Generator g(1);
  Tensor x = Tensor::normal({N, C, H, W}, 0, 1, g), w = Tensor::normal({C, C, K, K}, 0, 0.05, g);
  Tensor out = Tensor::empty({N, C, H, W}), dx = Tensor::empty(x.shape());
  Tensor dw = Tensor::empty(w.shape()), dout = Tensor::normal({N, C, H, W}, 0, 1, g);
  Conv2dArgs a{N, C, H, W, C, K, K, 1, 1, H, W};
  Backend& be = backend(Device::cpu);
  const double conv_flop = 2.0 * N * C * H * W * C * K * K;

  const double t_fwd = median_seconds(reps, [&] { be.conv2d_forward(a, x, w, Tensor(), out); });
  const double t_bwd =
      median_seconds(reps, [&] { be.conv2d_backward(a, x, w, dout, &dx, &dw, nullptr); });

  const int n = 4096;
  std::vector<float> A(size_t(n) * n, 1.f), B(size_t(n) * n, 0.5f), Cm(size_t(n) * n);
  const double t_gemm = median_seconds(reps, [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.f, A.data(), n, B.data(), n,
                0.f, Cm.data(), n);
  });

  const double gemm_gf = 2.0 * n * n * double(n) / t_gemm / 1e9;
  const double fwd_gf = conv_flop / t_fwd / 1e9, bwd_gf = 2 * conv_flop / t_bwd / 1e9;
  std::printf("sgemm %dx%dx%d          %8.2f ms  %7.1f GFLOP/s\n", n, n, n, t_gemm * 1e3, gemm_gf);
  std::printf(
      "conv2d forward  (N=256, 64->64, 32x32, 3x3)  %8.2f ms  %7.1f GFLOP/s  %5.1f%% of sgemm\n",
      t_fwd * 1e3, fwd_gf, 100 * fwd_gf / gemm_gf);
  std::printf(
      "conv2d backward (input + weight gradients)  %8.2f ms  %7.1f GFLOP/s  %5.1f%% of sgemm\n",
      t_bwd * 1e3, bwd_gf, 100 * bwd_gf / gemm_gf);
  return 0;
}
