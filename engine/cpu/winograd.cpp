// Winograd F(2x2, 3x3): see winograd.h for the algebra. The transforms below use the matrices
//   B^T = [1  0 -1  0]    G = [1    0    0 ]    A^T = [1  1  1  0]
//         [0  1  1  0]        [1/2  1/2  1/2]          [0  1 -1 -1]
//         [0 -1  1  0]        [1/2 -1/2  1/2]
//         [0  1  0 -1]        [0    0    1 ]
// applied first along rows and then along columns of each tile.
//
// Work is split like the im2col path: the images are cut into one group per thread, each group
// transforms a chunk of images at a time into its own buffers and runs its 16 GEMMs
// single-threaded (parallel_for_gemm). Weight-gradient partials are summed in group order, so
// results depend only on the thread count.
#include "engine/cpu/winograd.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>
#include <vector>

#include "engine/cpu/thread_pool.h"
#include "engine/tensor.h"

namespace ss::cpu {

namespace {

// SELFSUP_WINOGRAD=0 turns the path off (to compare with im2col in a benchmark).
bool enabled_from_env() {
  const char* v = std::getenv("SELFSUP_WINOGRAD");
  return !(v && std::string(v) == "0");
}
std::atomic<bool> g_enabled{enabled_from_env()};

// Transformed values per chunk and group: about 1 MiB of float32, so that the GEMMs' inputs and
// outputs stay near the core's L2 between the transforms (2 and 4 MiB were slower on the 3x3
// conv of bench_conv).
constexpr int64_t kBudget = int64_t(1) << 18;
constexpr int64_t kMinChannels = 16;

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

// Tiles of 2x2 outputs per image, and the split of the images into groups and chunks.
struct Plan {
  int64_t th, tw, per_image, parts, chunk;
  explicit Plan(const Conv2dArgs& a) {
    th = (a.Ho + 1) / 2;
    tw = (a.Wo + 1) / 2;
    per_image = th * tw;
    parts = std::min<int64_t>(num_threads(), a.N);
    const int64_t per_image_values = 16 * std::max(a.Cin, a.Cout) * per_image;
    chunk = std::clamp<int64_t>(kBudget / per_image_values, 1, a.N);
  }
  int64_t first(const Conv2dArgs& a, int64_t p) const { return a.N * p / parts; }
  // Distance between the 16 matrices of a buffer with `rows` rows of nb * per_image tiles. The
  // extra 16 elements keep the 16 streams a transform writes or reads at once off the same
  // cache sets (a power-of-two distance made the transforms slower than the GEMMs).
  int64_t xi_stride(int64_t rows, int64_t nb) const { return rows * nb * per_image + 16; }
  int64_t buffer_size(int64_t rows) const { return 16 * xi_stride(rows, chunk); }
};

// V[xi][c][t] = (B^T d B)[xi] for the 4x4 patch d of tile t = (b, ty, tx) of images
// [n0, n0 + nb), zero outside the image. One row of tiles at a time: its four input rows are
// copied into zero-padded buffers, so the loop over tiles has no bounds checks and vectorises.
template <class T>
void input_transform(const Conv2dArgs& a, const Plan& pl, const T* x, int64_t n0, int64_t nb,
                     T* V) {
  const int64_t ld = nb * pl.per_image, xi_stride = pl.xi_stride(a.Cin, nb);
  const int64_t width = 2 * pl.tw + 2;  // input columns under one row of tiles
  std::vector<T> buf(size_t(4 * width));
  for (int64_t c = 0; c < a.Cin; ++c)
    for (int64_t b = 0; b < nb; ++b) {
      const T* plane = x + ((n0 + b) * a.Cin + c) * a.H * a.W;
      T* dst = V + c * ld + b * pl.per_image;
      for (int64_t ty = 0; ty < pl.th; ++ty) {
        T* rows[4];
        for (int r = 0; r < 4; ++r) {
          rows[r] = buf.data() + r * width;
          const int64_t ih = 2 * ty - a.pad + r;
          std::fill(rows[r], rows[r] + width, T(0));
          if (ih < 0 || ih >= a.H) continue;
          // Column iw lands at iw + pad; columns past the buffer are never read.
          const int64_t n = std::min<int64_t>(a.W, width - a.pad);
          std::copy(plane + ih * a.W, plane + ih * a.W + n, rows[r] + a.pad);
        }
        T* o = dst + ty * pl.tw;
        const T *d0 = rows[0], *d1 = rows[1], *d2 = rows[2], *d3 = rows[3];
        for (int64_t tx = 0; tx < pl.tw; ++tx) {
          T u[4][4];  // B^T d, column s of the patch at input column 2 tx + s
          for (int k = 0; k < 4; ++k) {
            const int64_t q = 2 * tx + k;
            u[0][k] = d0[q] - d2[q];
            u[1][k] = d1[q] + d2[q];
            u[2][k] = d2[q] - d1[q];
            u[3][k] = d1[q] - d3[q];
          }
          for (int r = 0; r < 4; ++r) {  // (B^T d) B
            o[(4 * r + 0) * xi_stride + tx] = u[r][0] - u[r][2];
            o[(4 * r + 1) * xi_stride + tx] = u[r][1] + u[r][2];
            o[(4 * r + 2) * xi_stride + tx] = u[r][2] - u[r][1];
            o[(4 * r + 3) * xi_stride + tx] = u[r][1] - u[r][3];
          }
        }
      }
    }
}

// out tiles of images [n0, n0 + nb) = A^T M A (+ bias), cut at the output's edge. One row of
// tiles at a time into two full-width row buffers, then copied to the output.
template <class T>
void output_transform(const Conv2dArgs& a, const Plan& pl, const T* M, const T* bias, int64_t n0,
                      int64_t nb, T* out) {
  const int64_t ld = nb * pl.per_image, xi_stride = pl.xi_stride(a.Cout, nb);
  std::vector<T> buf(size_t(4 * pl.tw));
  T *y0 = buf.data(), *y1 = buf.data() + 2 * pl.tw;
  for (int64_t co = 0; co < a.Cout; ++co) {
    const T bv = bias ? bias[co] : T(0);
    for (int64_t b = 0; b < nb; ++b) {
      const T* src = M + co * ld + b * pl.per_image;
      T* plane = out + ((n0 + b) * a.Cout + co) * a.Ho * a.Wo;
      for (int64_t ty = 0; ty < pl.th; ++ty) {
        const T* m = src + ty * pl.tw;
        for (int64_t tx = 0; tx < pl.tw; ++tx) {
          T s[2][4];  // A^T M
          for (int j = 0; j < 4; ++j) {
            const T m0 = m[j * xi_stride + tx], m1 = m[(4 + j) * xi_stride + tx],
                    m2 = m[(8 + j) * xi_stride + tx], m3 = m[(12 + j) * xi_stride + tx];
            s[0][j] = m0 + m1 + m2;
            s[1][j] = m1 - m2 - m3;
          }
          y0[2 * tx] = s[0][0] + s[0][1] + s[0][2] + bv;
          y0[2 * tx + 1] = s[0][1] - s[0][2] - s[0][3] + bv;
          y1[2 * tx] = s[1][0] + s[1][1] + s[1][2] + bv;
          y1[2 * tx + 1] = s[1][1] - s[1][2] - s[1][3] + bv;
        }
        const int64_t oh = 2 * ty;
        std::copy(y0, y0 + a.Wo, plane + oh * a.Wo);
        if (oh + 1 < a.Ho) std::copy(y1, y1 + a.Wo, plane + (oh + 1) * a.Wo);
      }
    }
  }
}

// dM[xi][co][t] = (A dY A^T)[xi]: the adjoint of output_transform (dY zero past the edge).
template <class T>
void output_transform_adjoint(const Conv2dArgs& a, const Plan& pl, const T* dout, int64_t n0,
                              int64_t nb, T* dM) {
  const int64_t ld = nb * pl.per_image, xi_stride = pl.xi_stride(a.Cout, nb);
  for (int64_t co = 0; co < a.Cout; ++co)
    for (int64_t b = 0; b < nb; ++b) {
      const T* plane = dout + ((n0 + b) * a.Cout + co) * a.Ho * a.Wo;
      T* dst = dM + co * ld + b * pl.per_image;
      for (int64_t ty = 0; ty < pl.th; ++ty)
        for (int64_t tx = 0; tx < pl.tw; ++tx) {
          const int64_t oh = 2 * ty, ow = 2 * tx;
          T y[2][2];
          for (int k = 0; k < 2; ++k)
            for (int l = 0; l < 2; ++l)
              y[k][l] = (oh + k < a.Ho && ow + l < a.Wo) ? plane[(oh + k) * a.Wo + ow + l] : T(0);
          const T r[4][2] = {{y[0][0], y[0][1]},
                             {y[0][0] + y[1][0], y[0][1] + y[1][1]},
                             {y[0][0] - y[1][0], y[0][1] - y[1][1]},
                             {-y[1][0], -y[1][1]}};
          T* o = dst + ty * pl.tw + tx;
          for (int i = 0; i < 4; ++i) {
            o[(4 * i + 0) * xi_stride] = r[i][0];
            o[(4 * i + 1) * xi_stride] = r[i][0] + r[i][1];
            o[(4 * i + 2) * xi_stride] = r[i][0] - r[i][1];
            o[(4 * i + 3) * xi_stride] = -r[i][1];
          }
        }
    }
}

// U[xi][co][ci] = (G g G^T)[xi] for each 3x3 kernel g = w[co, ci].
template <class T>
void weight_transform(const Conv2dArgs& a, const T* w, T* U) {
  const int64_t xi_stride = a.Cout * a.Cin;
  parallel_for(a.Cout, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t co = c0; co < c1; ++co)
      for (int64_t ci = 0; ci < a.Cin; ++ci) {
        const T* g = w + (co * a.Cin + ci) * 9;
        T h[4][3];  // G g
        for (int j = 0; j < 3; ++j) {
          h[0][j] = g[j];
          h[1][j] = T(0.5) * (g[j] + g[3 + j] + g[6 + j]);
          h[2][j] = T(0.5) * (g[j] - g[3 + j] + g[6 + j]);
          h[3][j] = g[6 + j];
        }
        T* o = U + co * a.Cin + ci;
        for (int i = 0; i < 4; ++i) {  // (G g) G^T
          o[(4 * i + 0) * xi_stride] = h[i][0];
          o[(4 * i + 1) * xi_stride] = T(0.5) * (h[i][0] + h[i][1] + h[i][2]);
          o[(4 * i + 2) * xi_stride] = T(0.5) * (h[i][0] - h[i][1] + h[i][2]);
          o[(4 * i + 3) * xi_stride] = h[i][2];
        }
      }
  });
}

// dw[co, ci] = G^T dU[.][co][ci] G: the adjoint of weight_transform.
template <class T>
void weight_transform_adjoint(const Conv2dArgs& a, const T* dU, T* dw) {
  const int64_t xi_stride = a.Cout * a.Cin;
  parallel_for(a.Cout, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t co = c0; co < c1; ++co)
      for (int64_t ci = 0; ci < a.Cin; ++ci) {
        const T* u = dU + co * a.Cin + ci;
        T h[3][4];  // G^T dU
        for (int j = 0; j < 4; ++j) {
          const T u0 = u[j * xi_stride], u1 = u[(4 + j) * xi_stride], u2 = u[(8 + j) * xi_stride],
                  u3 = u[(12 + j) * xi_stride];
          h[0][j] = u0 + T(0.5) * (u1 + u2);
          h[1][j] = T(0.5) * (u1 - u2);
          h[2][j] = T(0.5) * (u1 + u2) + u3;
        }
        T* g = dw + (co * a.Cin + ci) * 9;
        for (int i = 0; i < 3; ++i) {  // (G^T dU) G
          g[3 * i + 0] = h[i][0] + T(0.5) * (h[i][1] + h[i][2]);
          g[3 * i + 1] = T(0.5) * (h[i][1] - h[i][2]);
          g[3 * i + 2] = T(0.5) * (h[i][1] + h[i][2]) + h[i][3];
        }
      }
  });
}

template <class T>
T* data_of(Tensor& t) {
  return static_cast<T*>(t.raw_data());
}

}  // namespace

bool winograd_applies(const Conv2dArgs& a) {
  return g_enabled.load() && a.kh == 3 && a.kw == 3 && a.stride == 1 && a.pad <= 2 &&
         a.Cin >= kMinChannels && a.Cout >= kMinChannels;
}

void set_winograd_enabled(bool on) {
  g_enabled.store(on);
}
bool winograd_enabled() {
  return g_enabled.load();
}

template <class T>
void winograd_forward(const Conv2dArgs& a, const T* x, const T* w, const T* bias, T* out) {
  const Plan pl(a);
  const DType dt = sizeof(T) == 4 ? DType::f32 : DType::f64;
  Tensor U = Tensor::empty({16 * a.Cout * a.Cin}, dt);
  weight_transform(a, w, data_of<T>(U));
  std::vector<Tensor> V(size_t(pl.parts)), M(size_t(pl.parts));
  for (int64_t p = 0; p < pl.parts; ++p) {
    V[size_t(p)] = Tensor::empty({pl.buffer_size(a.Cin)}, dt);
    M[size_t(p)] = Tensor::empty({pl.buffer_size(a.Cout)}, dt);
  }
  const T* pu = data_of<T>(U);
  parallel_for_gemm(pl.parts, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      T* pv = data_of<T>(V[size_t(p)]);
      T* pm = data_of<T>(M[size_t(p)]);
      for (int64_t n0 = pl.first(a, p); n0 < pl.first(a, p + 1); n0 += pl.chunk) {
        const int64_t nb = std::min(pl.chunk, pl.first(a, p + 1) - n0), t = nb * pl.per_image;
        input_transform(a, pl, x, n0, nb, pv);
        for (int64_t xi = 0; xi < 16; ++xi)
          gemm_rm(false, a.Cout, t, a.Cin, pu + xi * a.Cout * a.Cin,
                  pv + xi * pl.xi_stride(a.Cin, nb), T(0), pm + xi * pl.xi_stride(a.Cout, nb));
        output_transform(a, pl, pm, bias, n0, nb, out);
      }
    }
  });
}

template <class T>
void winograd_weight_grad(const Conv2dArgs& a, const T* x, const T* dout, T* dw) {
  const Plan pl(a);
  const DType dt = sizeof(T) == 4 ? DType::f32 : DType::f64;
  const int64_t nU = 16 * a.Cout * a.Cin;
  std::vector<Tensor> V(size_t(pl.parts)), dM(size_t(pl.parts)), dU(size_t(pl.parts));
  for (int64_t p = 0; p < pl.parts; ++p) {
    V[size_t(p)] = Tensor::empty({pl.buffer_size(a.Cin)}, dt);
    dM[size_t(p)] = Tensor::empty({pl.buffer_size(a.Cout)}, dt);
    dU[size_t(p)] = Tensor::zeros({nU}, dt);
  }
  parallel_for_gemm(pl.parts, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      T* pv = data_of<T>(V[size_t(p)]);
      T* pm = data_of<T>(dM[size_t(p)]);
      T* pu = data_of<T>(dU[size_t(p)]);
      for (int64_t n0 = pl.first(a, p); n0 < pl.first(a, p + 1); n0 += pl.chunk) {
        const int64_t nb = std::min(pl.chunk, pl.first(a, p + 1) - n0), t = nb * pl.per_image;
        input_transform(a, pl, x, n0, nb, pv);
        output_transform_adjoint(a, pl, dout, n0, nb, pm);
        // dU[xi] [Cout, Cin] += dM[xi] [Cout, t] x V[xi]^T
        for (int64_t xi = 0; xi < 16; ++xi)
          gemm_rm(true, a.Cout, a.Cin, t, pm + xi * pl.xi_stride(a.Cout, nb),
                  pv + xi * pl.xi_stride(a.Cin, nb), T(1), pu + xi * a.Cout * a.Cin);
      }
    }
  });
  // Partials summed in group order: deterministic for a given thread count.
  T* total = data_of<T>(dU[0]);
  for (int64_t p = 1; p < pl.parts; ++p) {
    const T* s = data_of<T>(dU[size_t(p)]);
    for (int64_t i = 0; i < nU; ++i) total[i] += s[i];
  }
  weight_transform_adjoint(a, total, dw);
}

template void winograd_forward<float>(const Conv2dArgs&, const float*, const float*, const float*,
                                      float*);
template void winograd_forward<double>(const Conv2dArgs&, const double*, const double*,
                                       const double*, double*);
template void winograd_weight_grad<float>(const Conv2dArgs&, const float*, const float*, float*);
template void winograd_weight_grad<double>(const Conv2dArgs&, const double*, const double*,
                                           double*);

}  // namespace ss::cpu
