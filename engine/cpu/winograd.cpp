// Winograd F(m x m, 3 x 3) for m = 2 and m = 4: see winograd.h for the algebra. Each tile size is
// a struct of three 1-D maps (their 2-D forms apply the map along the columns of a tile, then
// along its rows) and their adjoints:
//   in:  the n = m + 2 input values of a patch row -> B^T d
//   ker: the 3 kernel taps                          -> G g
//   out: n transformed products                     -> A^T M (m outputs)
// F(2, 3) is exact in float32 up to rounding of a few additions; F(4, 3) multiplies by up to 8
// and 5 and so loses a little more (tests bound both against im2col). F(4, 3) needs 36
// multiplies per 16 outputs (2.25 per output, 4x fewer than direct), F(2, 3) 16 per 4 (2.25x).
//
// Work is split like the im2col path: the images are cut into one group per thread, each group
// transforms a chunk of images at a time into its own buffers and runs its n^2 GEMMs
// single-threaded (parallel_for_gemm). Weight-gradient partials are summed in group order, so
// results depend only on the thread count.
#include "engine/cpu/winograd.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "engine/cpu/thread_pool.h"
#include "engine/tensor.h"

namespace ss::cpu {

namespace {

// SELFSUP_WINOGRAD=0 turns the path off, =2 keeps it to F(2x2, 3x3) (to compare in benchmarks).
int mode_from_env() {
  const char* v = std::getenv("SELFSUP_WINOGRAD");
  if (!v) return 4;
  const std::string s(v);
  if (s == "0" || s == "2" || s == "4") return s[0] - '0';
  std::fprintf(stderr, "selfsup: SELFSUP_WINOGRAD='%s' is not 0, 2 or 4; using 4\n", v);
  return 4;
}
std::atomic<int> g_mode{mode_from_env()};

// Transformed values per chunk and group: about 1 MiB of float32, so that the GEMMs' inputs and
// outputs stay near the core's L2 between the transforms (2 and 4 MiB were slower on the 3x3
// conv of bench_conv).
constexpr int64_t kBudget = int64_t(1) << 18;
constexpr int64_t kMinChannels = 16;

// F(2, 3):  B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
//           G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1],   A^T = [1 1 1 0; 0 1 -1 -1]
struct F2 {
  static constexpr int m = 2, n = 4;
  template <class T>
  static void in(const T* d, T* r) {
    r[0] = d[0] - d[2];
    r[1] = d[1] + d[2];
    r[2] = d[2] - d[1];
    r[3] = d[1] - d[3];
  }
  template <class T>
  static void ker(const T* g, T* u) {
    u[0] = g[0];
    u[1] = T(0.5) * (g[0] + g[1] + g[2]);
    u[2] = T(0.5) * (g[0] - g[1] + g[2]);
    u[3] = g[2];
  }
  template <class T>
  static void ker_adjoint(const T* u, T* g) {  // G^T u
    g[0] = u[0] + T(0.5) * (u[1] + u[2]);
    g[1] = T(0.5) * (u[1] - u[2]);
    g[2] = T(0.5) * (u[1] + u[2]) + u[3];
  }
  template <class T>
  static void out(const T* M, T* y) {
    y[0] = M[0] + M[1] + M[2];
    y[1] = M[1] - M[2] - M[3];
  }
  template <class T>
  static void out_adjoint(const T* y, T* M) {  // A y
    M[0] = y[0];
    M[1] = y[0] + y[1];
    M[2] = y[0] - y[1];
    M[3] = -y[1];
  }
};

// F(4, 3) with interpolation points 0, 1, -1, 2, -2 (Lavin & Gray):
//   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
//   G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
//   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
struct F4 {
  static constexpr int m = 4, n = 6;
  template <class T>
  static void in(const T* d, T* r) {
    r[0] = T(4) * d[0] - T(5) * d[2] + d[4];
    r[1] = -T(4) * (d[1] + d[2]) + d[3] + d[4];
    r[2] = T(4) * (d[1] - d[2]) - d[3] + d[4];
    r[3] = T(2) * (d[3] - d[1]) - d[2] + d[4];
    r[4] = T(2) * (d[1] - d[3]) - d[2] + d[4];
    r[5] = T(4) * d[1] - T(5) * d[3] + d[5];
  }
  template <class T>
  static void ker(const T* g, T* u) {
    u[0] = g[0] / T(4);
    u[1] = -(g[0] + g[1] + g[2]) / T(6);
    u[2] = -(g[0] - g[1] + g[2]) / T(6);
    u[3] = g[0] / T(24) + g[1] / T(12) + g[2] / T(6);
    u[4] = g[0] / T(24) - g[1] / T(12) + g[2] / T(6);
    u[5] = g[2];
  }
  template <class T>
  static void ker_adjoint(const T* u, T* g) {  // G^T u
    g[0] = u[0] / T(4) - (u[1] + u[2]) / T(6) + (u[3] + u[4]) / T(24);
    g[1] = (u[2] - u[1]) / T(6) + (u[3] - u[4]) / T(12);
    g[2] = (u[3] + u[4] - u[1] - u[2]) / T(6) + u[5];
  }
  template <class T>
  static void out(const T* M, T* y) {
    const T p1 = M[1] + M[2], m1 = M[1] - M[2], p2 = M[3] + M[4], m2 = M[3] - M[4];
    y[0] = M[0] + p1 + p2;
    y[1] = m1 + T(2) * m2;
    y[2] = p1 + T(4) * p2;
    y[3] = m1 + T(8) * m2 + M[5];
  }
  template <class T>
  static void out_adjoint(const T* y, T* M) {  // A y
    const T e = y[0] + y[2], o = y[1] + y[3], e4 = y[0] + T(4) * y[2],
            o8 = T(2) * y[1] + T(8) * y[3];
    M[0] = y[0];
    M[1] = e + o;
    M[2] = e - o;
    M[3] = e4 + o8;
    M[4] = e4 - o8;
    M[5] = y[3];
  }
};

// Applies a 1-D map f (k values -> r values) along both axes of a k x k block: first to each
// column (rows -> r), then to each row of the result. Element (i, j) of the block is
// src[i * rs + j * cs]. Used on the weights, a few thousand 3x3 kernels per layer.
template <int k, int r, class T, class Fn>
void apply_2d(const T* src, int64_t rs, int64_t cs, T (&dst)[r][r], Fn f) {
  T col_in[k], col_out[r], mid[r][k];
  for (int j = 0; j < k; ++j) {
    for (int i = 0; i < k; ++i) col_in[i] = src[i * rs + j * cs];
    f(col_in, col_out);
    for (int i = 0; i < r; ++i) mid[i][j] = col_out[i];
  }
  for (int i = 0; i < r; ++i) f(mid[i], dst[i]);
}

// The activations' transforms run as two passes of a 1-D map over one row of tiles at a time,
// each a loop the compiler vectorizes (the loops read and write distinct buffers, which the
// pragma tells it):
//   map_columns:    down the columns of k rows -> r rows (contiguous in the column);
//   map_windows:    along one row, a window of k values at each multiple of `step` -> r streams
//                   with one value per window;
//   map_to_windows: the reverse, k streams -> r values side by side per entry.
#if defined(__GNUC__) && !defined(__clang__)
#define SS_NO_ALIAS _Pragma("GCC ivdep")
#elif defined(__clang__)
#define SS_NO_ALIAS _Pragma("clang loop vectorize(assume_safety)")
#else
#define SS_NO_ALIAS
#endif

// dst[q][c] = f(src[0][c], ..., src[k - 1][c])[q] for c in [0, count).
template <int k, int r, class T, class Fn>
void map_columns(const T* const* src, T* const* dst, int64_t count, Fn f) {
  SS_NO_ALIAS
  for (int64_t c = 0; c < count; ++c) {
    T in[k], out[r];
    for (int q = 0; q < k; ++q) in[q] = src[q][c];
    f(in, out);
    for (int q = 0; q < r; ++q) dst[q][c] = out[q];
  }
}

// dst[q * dst_stride + t] = f(src[step t], ..., src[step t + k - 1])[q] for t in [0, count).
template <int k, int r, int step, class T, class Fn>
void map_windows(const T* src, T* dst, int64_t dst_stride, int64_t count, Fn f) {
  SS_NO_ALIAS
  for (int64_t t = 0; t < count; ++t) {
    T in[k], out[r];
    for (int q = 0; q < k; ++q) in[q] = src[step * t + q];
    f(in, out);
    for (int q = 0; q < r; ++q) dst[q * dst_stride + t] = out[q];
  }
}

// dst[r t + q] = f(src[t], src[src_stride + t], ..., src[(k - 1) src_stride + t])[q].
template <int k, int r, class T, class Fn>
void map_to_windows(const T* src, int64_t src_stride, T* dst, int64_t count, Fn f) {
  SS_NO_ALIAS
  for (int64_t t = 0; t < count; ++t) {
    T in[k], out[r];
    for (int q = 0; q < k; ++q) in[q] = src[q * src_stride + t];
    f(in, out);
    for (int q = 0; q < r; ++q) dst[r * t + q] = out[q];
  }
}

void gemm_rm(bool tb, int64_t M, int64_t N, int64_t K, const float* A, const float* B, float beta,
             float* C) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(M), int(N), int(K),
              1.f, A, int(K), B, int(tb ? K : N), beta, C, int(N));
}
void gemm_rm(bool tb, int64_t M, int64_t N, int64_t K, const double* A, const double* B,
             double beta, double* C) {
  cblas_dgemm(CblasRowMajor, CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(M), int(N), int(K),
              1.0, A, int(K), B, int(tb ? K : N), beta, C, int(N));
}

// Tiles of m x m outputs per image, and the split of the images into groups and chunks.
template <class W>
struct Plan {
  static constexpr int64_t nn = W::n * W::n;  // transformed values per tile
  int64_t th, tw, per_image, parts, chunk;
  explicit Plan(const Conv2dArgs& a) {
    th = (a.Ho + W::m - 1) / W::m;
    tw = (a.Wo + W::m - 1) / W::m;
    per_image = th * tw;
    parts = std::min<int64_t>(num_threads(), a.N);
    const int64_t per_image_values = nn * std::max(a.Cin, a.Cout) * per_image;
    // One tile per image (the deepest layers): the budget would leave GEMMs a few dozen columns
    // wide against weight matrices of 256 x 256 and more, which then dominate the traffic; a
    // whole group at once ran about 20% faster on the 256-channel 4x4 layer of bench_conv.
    chunk = false ? a.N : std::clamp<int64_t>(kBudget / per_image_values, 1, a.N);
  }
  int64_t first(const Conv2dArgs& a, int64_t p) const { return a.N * p / parts; }
  // Distance between the nn matrices of a buffer with `rows` rows of nb * per_image tiles. The
  // extra 16 elements keep the streams a transform writes or reads at once off the same cache
  // sets (a power-of-two distance made the transforms slower than the GEMMs).
  int64_t xi_stride(int64_t rows, int64_t nb) const { return rows * nb * per_image + 16; }
  int64_t buffer_size(int64_t rows) const { return nn * xi_stride(rows, chunk); }
  // Calls fn(p, n0, nb) for each chunk [n0, n0 + nb) of group p's images, one group per thread;
  // GEMMs inside fn run single-threaded (parallel_for_gemm).
  template <class Fn>
  void for_each_chunk(const Conv2dArgs& a, Fn fn) const {
    parallel_for_gemm(parts, 1, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p)
        for (int64_t n0 = first(a, p); n0 < first(a, p + 1); n0 += chunk)
          fn(p, n0, std::min(chunk, first(a, p + 1) - n0));
    });
  }
};

// The transforms of one channel go through n full-width rows per row of tiles ("mid"; row i of
// tile row r = b th + ty, over the chunk's images b, at mid + i * mid_stride + r * m * tw). Tile
// t = (b, ty, tx) of the chunk then starts at column m t of row i, so the pass along the rows
// runs over all the chunk's tiles of the channel in one loop, the same order as V and M.

// V[xi][c][t] = (B^T d B)[xi] for the n x n patch d of tile t = (b, ty, tx) of images
// [n0, n0 + nb), zero outside the image. Per tile row: B^T down the columns of its n input rows
// (rows outside the image read as zeros); then B along the rows, over all tiles at once. A
// tile's window is n = m + 2 columns wide, so the last tile of a row reads 2 columns past its
// row's m * tw, where mid holds the next row. Those two columns go down their own B^T into
// "tail", and the last tile of each row is redone with them. Where a tile row is a single tile
// (the deepest layers) the rows are n wide instead and the windows n apart: nothing to redo.
template <class W, class T>
void input_transform(const Conv2dArgs& a, const Plan<W>& pl, const T* x, int64_t n0, int64_t nb,
                     T* V) {
  constexpr int m = W::m, n = W::n, extra = n - m;
  const bool single = pl.tw == 1;
  const int64_t ld = nb * pl.per_image, xi_stride = pl.xi_stride(a.Cin, nb);
  const int64_t row = single ? n : m * pl.tw, rows = nb * pl.th, mid_stride = rows * row + extra;
  // Input columns [0, cols) land on mid columns [pad, pad + cols) of a tile row; the columns
  // left and right of them are padding and stay zero.
  const int64_t cols = std::min<int64_t>(a.W, row - a.pad);
  std::vector<T> mid(size_t(n * mid_stride), T(0)), tail(size_t(n * rows * extra));
  const std::vector<T> zeros(size_t(a.W), T(0));
  const T* src[n];
  T* dst[n];
  for (int64_t c = 0; c < a.Cin; ++c) {
    for (int64_t b = 0; b < nb; ++b) {
      const T* plane = x + ((n0 + b) * a.Cin + c) * a.H * a.W;
      for (int64_t ty = 0; ty < pl.th; ++ty) {
        const int64_t r0 = b * pl.th + ty;
        for (int r = 0; r < n; ++r) {
          const int64_t ih = m * ty - a.pad + r;
          src[r] = ih < 0 || ih >= a.H ? zeros.data() : plane + ih * a.W;
          dst[r] = mid.data() + r * mid_stride + r0 * row + a.pad;
        }
        map_columns<n, n>(src, dst, cols, [](const T* s, T* d) { W::in(s, d); });
        for (int q = 0; q < extra && !single; ++q) {
          const int64_t iw = row + q - a.pad;
          T d[n], v[n];
          for (int r = 0; r < n; ++r) d[r] = iw < a.W ? src[r][iw] : T(0);
          W::in(d, v);
          for (int i = 0; i < n; ++i) tail[size_t((i * rows + r0) * extra + q)] = v[i];
        }
      }
    }
    T* out = V + c * ld;
    const auto in = [](const T* s, T* d) { W::in(s, d); };
    for (int i = 0; i < n; ++i) {
      const T* mi = mid.data() + i * mid_stride;
      T* oi = out + i * n * xi_stride;
      if (single)
        map_windows<n, n, n>(mi, oi, xi_stride, ld, in);
      else
        map_windows<n, n, m>(mi, oi, xi_stride, ld, in);
    }
    for (int64_t r0 = 0; r0 < rows && !single; ++r0)
      for (int i = 0; i < n; ++i) {
        T window[n], v[n];
        const T* last = mid.data() + i * mid_stride + r0 * row + row - m;
        std::copy(last, last + m, window);
        std::copy_n(tail.data() + (i * rows + r0) * extra, extra, window + m);
        W::in(window, v);
        for (int j = 0; j < n; ++j) out[(i * n + j) * xi_stride + r0 * pl.tw + pl.tw - 1] = v[j];
      }
  }
}

// out tiles of images [n0, n0 + nb) = A^T M A (+ bias), cut at the output's edge. A^T along the
// rows of each tile's n x n products, over all tiles of the channel at once; then, per tile row,
// A^T down the columns into its m output rows (those past the edge into a scratch row).
template <class W, class T>
void output_transform(const Conv2dArgs& a, const Plan<W>& pl, const T* M, const T* bias, int64_t n0,
                      int64_t nb, T* out) {
  constexpr int m = W::m, n = W::n;
  const int64_t ld = nb * pl.per_image, xi_stride = pl.xi_stride(a.Cout, nb);
  const int64_t row = m * pl.tw, rows = nb * pl.th, mid_stride = rows * row;
  std::vector<T> mid(size_t(n * mid_stride)), spill(static_cast<size_t>(row));
  const T* src[n];
  T* dst[m];
  for (int64_t co = 0; co < a.Cout; ++co) {
    const T bv = bias ? bias[co] : T(0);
    for (int i = 0; i < n; ++i)
      map_to_windows<n, m>(M + co * ld + i * n * xi_stride, xi_stride, mid.data() + i * mid_stride,
                           ld, [](const T* s, T* d) { W::out(s, d); });
    for (int64_t b = 0; b < nb; ++b) {
      T* plane = out + ((n0 + b) * a.Cout + co) * a.Ho * a.Wo;
      for (int64_t ty = 0; ty < pl.th; ++ty) {
        for (int i = 0; i < n; ++i) src[i] = mid.data() + i * mid_stride + (b * pl.th + ty) * row;
        for (int k = 0; k < m; ++k)
          dst[k] = m * ty + k < a.Ho ? plane + (m * ty + k) * a.Wo : spill.data();
        map_columns<n, m>(src, dst, a.Wo, [bv](const T* s, T* d) {
          W::out(s, d);
          for (int k = 0; k < m; ++k) d[k] += bv;
        });
      }
    }
  }
}

// dM[xi][co][t] = (A dY A^T)[xi]: the adjoint of output_transform (dY zero past the edge). Per
// tile row, A down the columns of its m output rows; then A along the rows, over all tiles of
// the channel at once.
template <class W, class T>
void output_transform_adjoint(const Conv2dArgs& a, const Plan<W>& pl, const T* dout, int64_t n0,
                              int64_t nb, T* dM) {
  constexpr int m = W::m, n = W::n;
  const int64_t ld = nb * pl.per_image, xi_stride = pl.xi_stride(a.Cout, nb);
  const int64_t row = m * pl.tw, rows = nb * pl.th, mid_stride = rows * row;
  // Columns past the output's edge stay zero: only [0, Wo) of each tile row is written.
  std::vector<T> mid(size_t(n * mid_stride), T(0));
  const std::vector<T> zeros(size_t(a.Wo), T(0));
  const T* src[m];
  T* dst[n];
  for (int64_t co = 0; co < a.Cout; ++co) {
    for (int64_t b = 0; b < nb; ++b) {
      const T* plane = dout + ((n0 + b) * a.Cout + co) * a.Ho * a.Wo;
      for (int64_t ty = 0; ty < pl.th; ++ty) {
        for (int k = 0; k < m; ++k)
          src[k] = m * ty + k < a.Ho ? plane + (m * ty + k) * a.Wo : zeros.data();
        for (int i = 0; i < n; ++i) dst[i] = mid.data() + i * mid_stride + (b * pl.th + ty) * row;
        map_columns<m, n>(src, dst, a.Wo, [](const T* s, T* d) { W::out_adjoint(s, d); });
      }
    }
    for (int i = 0; i < n; ++i)
      map_windows<m, n, m>(mid.data() + i * mid_stride, dM + co * ld + i * n * xi_stride, xi_stride,
                           ld, [](const T* s, T* d) { W::out_adjoint(s, d); });
  }
}

// U[xi][co][ci] = (G g G^T)[xi] for each 3x3 kernel g = w[co, ci].
template <class W, class T>
void weight_transform(const Conv2dArgs& a, const T* w, T* U) {
  constexpr int n = W::n;
  const int64_t xi_stride = a.Cout * a.Cin;
  parallel_for(a.Cout, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t co = c0; co < c1; ++co)
      for (int64_t ci = 0; ci < a.Cin; ++ci) {
        T u[n][n];
        apply_2d<3, n>(w + (co * a.Cin + ci) * 9, 3, 1, u, [](const T* s, T* d) { W::ker(s, d); });
        for (int i = 0; i < n; ++i)
          for (int j = 0; j < n; ++j) U[(i * n + j) * xi_stride + co * a.Cin + ci] = u[i][j];
      }
  });
}

// dw[co, ci] = G^T dU[.][co][ci] G: the adjoint of weight_transform.
template <class W, class T>
void weight_transform_adjoint(const Conv2dArgs& a, const T* dU, T* dw) {
  constexpr int n = W::n;
  const int64_t xi_stride = a.Cout * a.Cin;
  parallel_for(a.Cout, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t co = c0; co < c1; ++co)
      for (int64_t ci = 0; ci < a.Cin; ++ci) {
        T g[3][3];
        apply_2d<n, 3>(dU + co * a.Cin + ci, xi_stride * n, xi_stride, g,
                       [](const T* s, T* d) { W::ker_adjoint(s, d); });
        for (int i = 0; i < 3; ++i)
          for (int j = 0; j < 3; ++j) dw[(co * a.Cin + ci) * 9 + i * 3 + j] = g[i][j];
      }
  });
}

template <class T>
T* data_of(Tensor& t) {
  return static_cast<T*>(t.raw_data());
}

template <class T>
DType dtype_of() {
  return sizeof(T) == 4 ? DType::f32 : DType::f64;
}

template <class W, class T>
void forward(const Conv2dArgs& a, const T* x, const T* w, const T* bias, T* out) {
  constexpr int64_t nn = Plan<W>::nn;
  const Plan<W> pl(a);
  Tensor U = Tensor::empty({nn * a.Cout * a.Cin}, dtype_of<T>());
  weight_transform<W>(a, w, data_of<T>(U));
  std::vector<Tensor> V(size_t(pl.parts)), M(size_t(pl.parts));
  for (int64_t p = 0; p < pl.parts; ++p) {
    V[size_t(p)] = Tensor::empty({pl.buffer_size(a.Cin)}, dtype_of<T>());
    M[size_t(p)] = Tensor::empty({pl.buffer_size(a.Cout)}, dtype_of<T>());
  }
  const T* pu = data_of<T>(U);
  pl.for_each_chunk(a, [&](int64_t p, int64_t n0, int64_t nb) {
    T* pv = data_of<T>(V[size_t(p)]);
    T* pm = data_of<T>(M[size_t(p)]);
    input_transform(a, pl, x, n0, nb, pv);
    // M[xi] [Cout, t] = U[xi] [Cout, Cin] x V[xi] [Cin, t]
    for (int64_t xi = 0; xi < nn; ++xi)
      gemm_rm(false, a.Cout, nb * pl.per_image, a.Cin, pu + xi * a.Cout * a.Cin,
              pv + xi * pl.xi_stride(a.Cin, nb), T(0), pm + xi * pl.xi_stride(a.Cout, nb));
    output_transform(a, pl, pm, bias, n0, nb, out);
  });
}

template <class W, class T>
void weight_grad(const Conv2dArgs& a, const T* x, const T* dout, T* dw) {
  constexpr int64_t nn = Plan<W>::nn;
  const Plan<W> pl(a);
  const int64_t nU = nn * a.Cout * a.Cin;
  std::vector<Tensor> V(size_t(pl.parts)), dM(size_t(pl.parts)), dU(size_t(pl.parts));
  for (int64_t p = 0; p < pl.parts; ++p) {
    V[size_t(p)] = Tensor::empty({pl.buffer_size(a.Cin)}, dtype_of<T>());
    dM[size_t(p)] = Tensor::empty({pl.buffer_size(a.Cout)}, dtype_of<T>());
    dU[size_t(p)] = Tensor::zeros({nU}, dtype_of<T>());
  }
  pl.for_each_chunk(a, [&](int64_t p, int64_t n0, int64_t nb) {
    T* pv = data_of<T>(V[size_t(p)]);
    T* pm = data_of<T>(dM[size_t(p)]);
    input_transform(a, pl, x, n0, nb, pv);
    output_transform_adjoint(a, pl, dout, n0, nb, pm);
    // dU[xi] [Cout, Cin] += dM[xi] [Cout, t] x V[xi]^T
    T* pu = data_of<T>(dU[size_t(p)]);
    for (int64_t xi = 0; xi < nn; ++xi)
      gemm_rm(true, a.Cout, a.Cin, nb * pl.per_image, pm + xi * pl.xi_stride(a.Cout, nb),
              pv + xi * pl.xi_stride(a.Cin, nb), T(1), pu + xi * a.Cout * a.Cin);
  });
  // Partials summed in group order: deterministic for a given thread count.
  T* total = data_of<T>(dU[0]);
  for (int64_t p = 1; p < pl.parts; ++p) {
    const T* s = data_of<T>(dU[size_t(p)]);
    for (int64_t i = 0; i < nU; ++i) total[i] += s[i];
  }
  weight_transform_adjoint<W>(a, total, dw);
}

}  // namespace

bool winograd_applies(const Conv2dArgs& a) {
  return g_mode.load() != 0 && a.kh == 3 && a.kw == 3 && a.stride == 1 && a.pad <= 2 &&
         a.Cin >= kMinChannels && a.Cout >= kMinChannels;
}

int winograd_tile(const Conv2dArgs& a) {
  if (!winograd_applies(a)) return 0;
  // 4x4 tiles where the output has room for one: 36 multiplies per 16 outputs against 4 x 16
  // for 2x2 tiles. On 2x2 and 3x3 outputs the larger tile would transform mostly padding.
  return g_mode.load() == 4 && a.Ho >= 4 && a.Wo >= 4 ? 4 : 2;
}

int winograd_mode() {
  return g_mode.load();
}

void set_winograd_mode(int tile) {
  g_mode.store(tile == 0 || tile == 2 ? tile : 4);
}

template <class T>
void winograd_forward(const Conv2dArgs& a, const T* x, const T* w, const T* bias, T* out) {
  if (winograd_tile(a) == 4)
    forward<F4>(a, x, w, bias, out);
  else
    forward<F2>(a, x, w, bias, out);
}

template <class T>
void winograd_weight_grad(const Conv2dArgs& a, const T* x, const T* dout, T* dw) {
  if (winograd_tile(a) == 4)
    weight_grad<F4>(a, x, dout, dw);
  else
    weight_grad<F2>(a, x, dout, dw);
}

template void winograd_forward<float>(const Conv2dArgs&, const float*, const float*, const float*,
                                      float*);
template void winograd_forward<double>(const Conv2dArgs&, const double*, const double*,
                                       const double*, double*);
template void winograd_weight_grad<float>(const Conv2dArgs&, const float*, const float*, float*);
template void winograd_weight_grad<double>(const Conv2dArgs&, const double*, const double*,
                                           double*);

}  // namespace ss::cpu
