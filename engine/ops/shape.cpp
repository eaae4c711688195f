// Shape ops: flatten, concat, transpose.
#include "engine/ops/common.h"

namespace ss {

using detail::fail;

Tensor flatten(const Tensor& x) {
  if (x.dim() < 1) fail("flatten", "needs at least one dimension, got " + x.str());
  return x.reshape({x.size(0), x.size(0) ? x.numel() / x.size(0) : 0});
}

Tensor concat(const std::vector<Tensor>& parts) {
  prof::Scope ps("concat");
  if (parts.empty()) fail("concat", "no tensors given");
  Shape shape = parts[0].shape();
  if (shape.empty()) fail("concat", "cannot concatenate rank-0 tensors along dimension 0");
  shape[0] = 0;
  for (const Tensor& p : parts) {
    detail::check_compatible("concat", parts[0], p);
    Shape s = p.shape();
    if (s.size() != shape.size() || !std::equal(s.begin() + 1, s.end(), shape.begin() + 1))
      fail("concat", "shapes " + shape_str(parts[0].shape()) + " and " + shape_str(s) +
                         " differ beyond dimension 0");
    shape[0] += s[0];
  }
  Tensor out = Tensor::empty(shape, parts[0].dtype(), parts[0].device());
  std::vector<int64_t> begins;
  {
    NoGradGuard ng;
    int64_t row = 0;
    for (const Tensor& p : parts) {
      begins.push_back(row);
      Tensor dst = out.slice(row, row + p.size(0));
      dst.copy_(p);
      row += p.size(0);
    }
    begins.push_back(row);
  }
  return record("concat", out, parts, [begins](const Tensor& dout) {
    std::vector<Tensor> d;
    for (size_t i = 0; i + 1 < begins.size(); ++i)
      d.push_back(dout.slice(begins[i], begins[i + 1]));
    return d;
  });
}

Tensor transpose(const Tensor& x) {
  detail::check_rank("transpose", x, 2, "input");
  const int64_t A = x.size(0), B = x.size(1);
  Tensor host = x.to(Device::cpu).detach();
  Tensor t = Tensor::empty({B, A}, x.dtype());
  if (x.dtype() == DType::f32) {
    const float* p = host.data<float>();
    float* q = t.data<float>();
    for (int64_t i = 0; i < A; ++i)
      for (int64_t j = 0; j < B; ++j) q[j * A + i] = p[i * B + j];
  } else {
    const double* p = host.data<double>();
    double* q = t.data<double>();
    for (int64_t i = 0; i < A; ++i)
      for (int64_t j = 0; j < B; ++j) q[j * A + i] = p[i * B + j];
  }
  Tensor out = t.to(x.device());
  return record("transpose", out, {x},
                [](const Tensor& dout) { return std::vector<Tensor>{transpose(dout)}; });
}

}  // namespace ss
