// Winograd F(2x2, 3x3) convolution (Lavin & Gray, "Fast Algorithms for Convolutional Neural
// Networks", CVPR 2016) for 3x3 stride-1 layers, the bulk of a ResNet's FLOPs.
//
// Each 2x2 block of outputs ("tile") is computed from the 4x4 input patch d under it:
//   Y = A^T [ (G g G^T) . (B^T d B) ] A          (. is the elementwise product)
// so a tile costs 16 multiplies per (input, output) channel pair instead of 36. With the
// transformed weights U = G g G^T and inputs V = B^T d B laid out as 16 matrices (one per
// position xi of the 4x4 transform), the products are 16 GEMMs:
//   M[xi] [Cout, tiles] = U[xi] [Cout, Cin] x V[xi] [Cin, tiles].
// The weight gradient is the adjoint of the same linear maps: with dM = A dY A^T per tile,
//   dU[xi] [Cout, Cin] = dM[xi] [Cout, tiles] x V[xi]^T,   dg = G^T dU G,
// again 16 GEMMs, now with the long dimension (tiles) as the reduction. The input gradient of a
// stride-1 3x3 conv is itself such a conv (conv2d.cpp), so it takes this path too.
#pragma once
#include "engine/backend.h"

namespace ss::cpu {

// True where conv2d uses Winograd: 3x3 kernel, stride 1, padding at most 2, and enough channels
// on both sides for the 16 GEMMs to run near the BLAS rate (the stem keeps im2col).
bool winograd_applies(const Conv2dArgs& a);

// On by default; tests and benchmarks turn it off to compare with the im2col path.
void set_winograd_enabled(bool on);
bool winograd_enabled();

// out [N, Cout, Ho, Wo] = conv(x [N, Cin, H, W], w [Cout, Cin, 3, 3]) + bias (may be null).
template <class T>
void winograd_forward(const Conv2dArgs& a, const T* x, const T* w, const T* bias, T* out);

// dw [Cout, Cin, 3, 3] = the weight gradient of winograd_forward for dout [N, Cout, Ho, Wo].
template <class T>
void winograd_weight_grad(const Conv2dArgs& a, const T* x, const T* dout, T* dw);

}  // namespace ss::cpu
