#include "engine/gradcheck.h"

#include <cmath>
#include <sstream>
#include <stdexcept>

#include "engine/ops.h"

namespace ss {

GradcheckResult gradcheck(const GradcheckFn& fn, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& opt) {
  GradcheckResult res;
  for (const Tensor& t : inputs)
    if (t.defined() && (t.dtype() != DType::f64 || t.device() != Device::cpu || !t.is_leaf()))
      throw std::invalid_argument("[gradcheck] inputs must be float64 CPU leaf tensors, got " +
                                  t.str());

  Tensor out0;
  {
    NoGradGuard ng;
    out0 = fn(inputs);
  }
  const int64_t m = out0.numel();
  int64_t total = 0;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) total += t.numel();
  if (m * total > opt.max_elements)
    throw std::invalid_argument("[gradcheck] Jacobian of " + std::to_string(m) + " x " +
                                std::to_string(total) +
                                " entries is too large; use smaller inputs");

  // Analytical Jacobian: row i from one backward pass seeded with the i-th unit vector.
  std::vector<std::vector<double>> analytic(inputs.size());
  for (size_t k = 0; k < inputs.size(); ++k)
    if (inputs[k].defined() && inputs[k].requires_grad())
      analytic[k].assign(size_t(m * inputs[k].numel()), 0.0);
  for (int64_t i = 0; i < m; ++i) {
    for (const Tensor& t : inputs)
      if (t.defined()) const_cast<Tensor&>(t).zero_grad();
    Tensor out = fn(inputs);
    if (out.shape() != out0.shape())
      throw std::invalid_argument("[gradcheck] output shape changed between calls");
    if (!out.requires_grad()) continue;  // the output does not depend on any input
    Tensor seed = Tensor::zeros(out.shape(), DType::f64);
    seed.data<double>()[i] = 1.0;
    out.backward(seed);
    for (size_t k = 0; k < inputs.size(); ++k) {
      if (analytic[k].empty()) continue;
      Tensor g = inputs[k].grad();
      if (!g.defined()) continue;
      std::vector<double> gv = g.to_vector();
      for (size_t j = 0; j < gv.size(); ++j) analytic[k][size_t(i) * gv.size() + j] = gv[j];
    }
  }
  for (const Tensor& t : inputs)
    if (t.defined()) const_cast<Tensor&>(t).zero_grad();

  // Numerical Jacobian, column by column, and the comparison.
  NoGradGuard ng;
  for (size_t k = 0; k < inputs.size(); ++k) {
    if (analytic[k].empty()) continue;
    Tensor x = inputs[k];
    double* p = x.data<double>();
    const int64_t n = x.numel();
    for (int64_t j = 0; j < n; ++j) {
      const double orig = p[j];
      p[j] = orig + opt.eps;
      std::vector<double> fp = fn(inputs).to_vector();
      p[j] = orig - opt.eps;
      std::vector<double> fm = fn(inputs).to_vector();
      p[j] = orig;
      for (int64_t i = 0; i < m; ++i) {
        const double num = (fp[size_t(i)] - fm[size_t(i)]) / (2 * opt.eps);
        const double ana = analytic[k][size_t(i * n + j)];
        const double err = std::abs(ana - num);
        const bool bad = !(err <= opt.atol + opt.rtol * std::abs(num)) || !std::isfinite(ana);
        // Report the first failing entry; while all pass, the worst one.
        if ((bad && res.ok) || (res.ok && err >= res.max_abs_error)) {
          std::ostringstream os;
          os << "input " << k << " " << x.str() << " element " << j << ", output element " << i
             << ": analytical " << ana << " vs numerical " << num << " (|diff| " << err << ")";
          res.report = os.str();
        }
        res.max_abs_error = std::max(res.max_abs_error, err);
        if (bad) res.ok = false;
      }
    }
  }
  return res;
}

}  // namespace ss
