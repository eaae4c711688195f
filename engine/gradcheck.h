// Finite-difference gradient checking in float64, for ops and for user-written losses.
//
//   auto r = ss::gradcheck([](const std::vector<Tensor>& in) { return my_loss(in[0]); }, {z});
//   CHECK_MESSAGE(r.ok, r.report);
//
// The full Jacobian of every output element with respect to every input element is compared:
// the analytical one by one backward pass per output element, the numerical one by central
// differences, (f(x + eps) - f(x - eps)) / (2 eps). An entry passes when
// |analytical - numerical| <= atol + rtol * |numerical|.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace ss {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-3;
  int64_t max_elements = 20000;  // refuse Jacobians larger than outputs x inputs
};

struct GradcheckResult {
  bool ok = true;
  double max_abs_error = 0;  // largest |analytical - numerical|
  std::string report;        // the worst entry, or what went wrong
};

using GradcheckFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Inputs must be float64 CPU leaves; each one that requires grad is checked.
GradcheckResult gradcheck(const GradcheckFn& fn, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& opt = {});

}  // namespace ss
