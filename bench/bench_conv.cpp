// Conv2d throughput against a large square SGEMM, in one run (not a test).
//
//   ./build/bench_conv [--threads 2] [--reps 5] [--n 256] [--cin 64] [--cout 64] [--hw 32]
//                      [--k 3] [--stride 1] [--no-gemm]
//
// Default conv: N = 256, C = 64 -> 64, 32x32, 3x3, padding k / 2. FLOPs count 2 per
// multiply-add; the backward pass does two GEMMs' worth (input and weight gradients).
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
  int64_t N = 256, Cin = 64, Cout = 64, HW = 32, K = 3, S = 1;
  bool gemm = true;
  for (int i = 1; i < argc; ++i) {
    const bool has_value = i + 1 < argc;
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      std::printf(
          "usage: bench_conv [--threads 2] [--reps 5] [--n 256] [--cin 64] [--cout 64] "
          "[--hw 32] [--k 3] [--stride 1] [--no-gemm]\n"
          "Times one conv2d layer (forward, then input + weight gradients) against a 4096^3 "
          "sgemm\n(--no-gemm skips it); padding is k / 2.\n");
      return 0;
    }
    if (!std::strcmp(argv[i], "--no-gemm"))
      gemm = false;
    else if (!std::strcmp(argv[i], "--threads") && has_value)
      threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--reps") && has_value)
      reps = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--n") && has_value)
      N = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--cin") && has_value)
      Cin = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--cout") && has_value)
      Cout = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--hw") && has_value)
      HW = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--k") && has_value)
      K = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--stride") && has_value)
      S = std::atoll(argv[++i]);
    else {
      std::fprintf(stderr, "bench_conv: unknown or incomplete option '%s'\n", argv[i]);
      return 2;
    }
  }
  if (N < 1 || Cin < 1 || Cout < 1 || HW < K || K < 1 || S < 1 || reps < 1) {
    std::fprintf(stderr, "bench_conv: sizes must be positive and --hw at least --k\n");
    return 2;
  }
  cpu::set_num_threads(threads);
  std::printf("%s\n%s\n", cpu::thread_policy(), cpu::blas_description().c_str());

  const int64_t P = K / 2, Ho = (HW + 2 * P - K) / S + 1;
  Generator g(1);
  Tensor x = Tensor::normal({N, Cin, HW, HW}, 0, 1, g);
  Tensor w = Tensor::normal({Cout, Cin, K, K}, 0, 0.05, g);
  Tensor out = Tensor::empty({N, Cout, Ho, Ho}), dx = Tensor::empty(x.shape());
  Tensor dw = Tensor::empty(w.shape()), dout = Tensor::normal({N, Cout, Ho, Ho}, 0, 1, g);
  Conv2dArgs a{N, Cin, HW, HW, Cout, K, K, S, P, Ho, Ho};
  Backend& be = backend(Device::cpu);
  const double conv_flop = 2.0 * N * Cout * Ho * Ho * Cin * K * K;

  const double t_fwd = median_seconds(reps, [&] { be.conv2d_forward(a, x, w, Tensor(), out); });
  const double t_bwd =
      median_seconds(reps, [&] { be.conv2d_backward(a, x, w, dout, &dx, &dw, nullptr); });

  double gemm_gf = 0;
  if (gemm) {
    const int n = 4096;
    std::vector<float> A(size_t(n) * n, 1.f), B(size_t(n) * n, 0.5f), Cm(size_t(n) * n);
    const double t_gemm = median_seconds(reps, [&] {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.f, A.data(), n, B.data(), n,
                  0.f, Cm.data(), n);
    });
    gemm_gf = 2.0 * n * n * double(n) / t_gemm / 1e9;
    std::printf("sgemm %dx%dx%d  %8.2f ms  %7.1f GFLOP/s\n", n, n, n, t_gemm * 1e3, gemm_gf);
  }
  const double fwd_gf = conv_flop / t_fwd / 1e9, bwd_gf = 2 * conv_flop / t_bwd / 1e9;
  std::printf("conv2d N=%lld, %lld->%lld, %lldx%lld, %lldx%lld stride %lld\n", (long long)N,
              (long long)Cin, (long long)Cout, (long long)HW, (long long)HW, (long long)K,
              (long long)K, (long long)S);
  const auto line = [&](const char* what, double t, double gf) {
    std::printf("  %-36s %8.2f ms  %7.1f GFLOP/s", what, t * 1e3, gf);
    if (gemm) std::printf("  %5.1f%% of sgemm", 100 * gf / gemm_gf);
    std::printf("\n");
  };
  line("forward", t_fwd, fwd_gf);
  line("backward (input + weight gradients)", t_bwd, bwd_gf);
  return 0;
}
