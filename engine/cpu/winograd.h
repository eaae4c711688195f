// Winograd convolution F(m x m, 3 x 3), m = 2 or 4 (Lavin & Gray, "Fast Algorithms for
// Convolutional Neural Networks", CVPR 2016), for 3x3 stride-1 layers, the bulk of a ResNet's
// FLOPs.
//
// Each m x m block of outputs ("tile") is computed from the (m + 2) x (m + 2) input patch d under
// it:
//   Y = A^T [ (G g G^T) . (B^T d B) ] A          (. is the elementwise product)
// so a tile costs (m + 2)^2 multiplies per (input, output) channel pair instead of 9 m^2: 2.25x
// fewer for m = 2, 4x fewer for m = 4. With the transformed weights U = G g G^T and inputs
// V = B^T d B laid out as (m + 2)^2 matrices (one per position xi of the transform), the products
// are GEMMs:
//   M[xi] [Cout, tiles] = U[xi] [Cout, Cin] x V[xi] [Cin, tiles].
// The weight gradient is the adjoint of the same linear maps: with dM = A dY A^T per tile,
//   dU[xi] [Cout, Cin] = dM[xi] [Cout, tiles] x V[xi]^T,   dg = G^T dU G,
// again one GEMM per xi, now with the long dimension (tiles) as the reduction. The input gradient
// of a stride-1 3x3 conv is itself such a conv (conv2d.cpp), so it takes this path too.
#pragma once
#include "engine/backend.h"

namespace ss::cpu {

// True where conv2d uses Winograd: 3x3 kernel, stride 1, padding at most 2, and enough channels
// on both sides for the 16 GEMMs to run near the BLAS rate (the stem keeps im2col).
bool winograd_applies(const Conv2dArgs& a);

// The tile size a conv takes: 4 (F(4x4, 3x3)) on outputs of at least 4x4, else 2
// (F(2x2, 3x3)); 0 where winograd_applies is false.
int winograd_tile(const Conv2dArgs& a);

// Largest tile used: 4 by default; 2 keeps every layer on F(2x2, 3x3); 0 turns Winograd off
// (im2col everywhere). The environment variable SELFSUP_WINOGRAD sets the initial value; tests
// and benchmarks compare the paths with it.
void set_winograd_mode(int tile);
int winograd_mode();

// out [N, Cout, Ho, Wo] = conv(x [N, Cin, H, W], w [Cout, Cin, 3, 3]) + bias (may be null).
template <class T>
void winograd_forward(const Conv2dArgs& a, const T* x, const T* w, const T* bias, T* out);

// dw [Cout, Cin, 3, 3] = the weight gradient of winograd_forward for dout [N, Cout, Ho, Wo].
template <class T>
void winograd_weight_grad(const Conv2dArgs& a, const T* x, const T* dout, T* dw);

}  // namespace ss::cpu
