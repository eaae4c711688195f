#include "engine/init.h"

#include <cmath>
#include <stdexcept>

#include "engine/ops.h"

namespace ss {

Fans compute_fans(const Shape& s) {
  if (s.size() < 2)
    throw std::invalid_argument(
        "[init] fans need a weight of at least 2 dimensions ([out, in] "
        "or [out, in, kh, kw]), got " +
        shape_str(s));
  int64_t receptive = 1;
  for (size_t d = 2; d < s.size(); ++d) receptive *= s[d];
  // s[0] is the output dimension, s[1] the input one, for linear and convolution weights alike.
  return Fans{s[1] * receptive, s[0] * receptive};
}

int64_t fan_of(const Shape& s, FanMode mode) {
  const Fans f = compute_fans(s);
  return mode == FanMode::fan_in ? f.fan_in : f.fan_out;
}

double calculate_gain(const std::string& nonlinearity, double slope) {
  if (nonlinearity == "linear" || nonlinearity == "conv" || nonlinearity == "sigmoid") return 1.0;
  if (nonlinearity == "tanh") return 5.0 / 3.0;
  if (nonlinearity == "relu") return std::sqrt(2.0);
  if (nonlinearity == "leaky_relu") return std::sqrt(2.0 / (1.0 + slope * slope));
  throw std::invalid_argument("[init] unknown nonlinearity '" + nonlinearity +
                              "' (linear, conv, sigmoid, tanh, relu, leaky_relu)");
}

double kaiming_std(const Shape& s, FanMode mode, double gain) {
  const int64_t fan = fan_of(s, mode);
  if (fan <= 0) throw std::invalid_argument("[init] zero fan for weight " + shape_str(s));
  return gain / std::sqrt(double(fan));
}

double kaiming_bound(const Shape& s, FanMode mode, double gain) {
  return std::sqrt(3.0) * kaiming_std(s, mode, gain);
}

void uniform_(Tensor& w, double lo, double hi, Generator& gen) {
  w.copy_(Tensor::uniform(w.shape(), lo, hi, gen, w.dtype()));
}

void normal_(Tensor& w, double mean, double std, Generator& gen) {
  w.copy_(Tensor::normal(w.shape(), mean, std, gen, w.dtype()));
}

void kaiming_normal_(Tensor& w, Generator& gen, FanMode mode, double gain) {
  normal_(w, 0.0, kaiming_std(w.shape(), mode, gain), gen);
}

void kaiming_uniform_(Tensor& w, Generator& gen, FanMode mode, double gain) {
  const double bound = kaiming_bound(w.shape(), mode, gain);
  uniform_(w, -bound, bound, gen);
}

}  // namespace ss
