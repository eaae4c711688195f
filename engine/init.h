// Weight initialisation: fans from a weight's shape, gains, Kaiming (He) normal and uniform.
//
// Weights are stored as PyTorch stores them: a linear weight [out, in], a convolution weight
// [out, in, kh, kw]. The receptive field is the product of the dimensions after the first two,
// so fan_in = in * kh * kw and fan_out = out * kh * kw (case B28: reading fan_in from the first
// dimension of an [out, in] weight gets the scale wrong by sqrt(out / in)).
#pragma once
#include <cstdint>
#include <string>

#include "engine/random.h"
#include "engine/tensor.h"

namespace ss {

struct Fans {
  int64_t fan_in = 0;
  int64_t fan_out = 0;
};

enum class FanMode : uint8_t { fan_in, fan_out };

// Fans of a weight of at least 2 dimensions; throws "[init] ..." otherwise.
Fans compute_fans(const Shape& weight_shape);
int64_t fan_of(const Shape& weight_shape, FanMode mode);

// Gain for a nonlinearity: "linear" / "conv" / "sigmoid" 1, "tanh" 5/3, "relu" sqrt(2),
// "leaky_relu" sqrt(2 / (1 + slope^2)) (slope defaults to 0.01 as in PyTorch).
double calculate_gain(const std::string& nonlinearity, double slope = 0.01);
constexpr double kReluGain = 1.4142135623730951;  // sqrt(2)

// std = gain / sqrt(fan); the uniform bound with the same std is sqrt(3) * std.
double kaiming_std(const Shape& weight_shape, FanMode mode, double gain = kReluGain);
double kaiming_bound(const Shape& weight_shape, FanMode mode, double gain = kReluGain);

// In place (any dtype, any device): w ~ N(0, std^2) or U(-bound, bound).
void kaiming_normal_(Tensor& w, Generator& gen, FanMode mode = FanMode::fan_in,
                     double gain = kReluGain);
void kaiming_uniform_(Tensor& w, Generator& gen, FanMode mode = FanMode::fan_in,
                      double gain = kReluGain);
void uniform_(Tensor& w, double lo, double hi, Generator& gen);
void normal_(Tensor& w, double mean, double std, Generator& gen);

}  // namespace ss
