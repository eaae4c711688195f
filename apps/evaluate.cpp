#include "apps/evaluate.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

#include "engine/ops.h"

namespace ss {

FeatureSet extract_features(const Dataset& ds, const EncodeFn& encode, int64_t limit,
                            int64_t batch_size, Device device) {
  const int64_t n = limit > 0 ? std::min(limit, ds.size()) : ds.size();
  LoaderOptions lo;
  lo.batch_size = batch_size;
  lo.views = 1;
  lo.shuffle = false;
  lo.drop_last = false;
  Loader loader(ds, augment_preset("eval", ds), lo);
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t(0));

  FeatureSet out;
  out.num_classes = ds.num_classes();
  std::vector<Tensor> parts;
  NoGradGuard ng;
  for (int64_t first = 0, number = 0; first < n; first += batch_size, ++number) {
    const int64_t count = std::min(batch_size, n - first);
    std::vector<int64_t> idx(order.begin() + first, order.begin() + first + count);
    Batch b;
    loader.make_batch(idx, 0, number, b);
    Tensor images = Tensor::from_buffer(b.images.data(), {b.N, b.C, b.H, b.W}, DType::f32, device);
    parts.push_back(encode(images).to(Device::cpu));
    out.labels.insert(out.labels.end(), b.labels.begin(), b.labels.end());
  }
  out.features = parts.empty() ? Tensor::zeros({0, 0}) : concat(parts);
  return out;
}

namespace {
void check_labels(const char* op, const FeatureSet& s) {
  for (size_t i = 0; i < s.labels.size(); ++i)
    if (s.labels[i] < 0 || s.labels[i] >= s.num_classes)
      throw std::invalid_argument(std::string("[") + op + "] label " + std::to_string(s.labels[i]) +
                                  " at row " + std::to_string(i) + " is outside [0, " +
                                  std::to_string(s.num_classes) + ")");
}
}  // namespace

KnnResult knn_evaluate(const FeatureSet& bank, const FeatureSet& queries, int64_t k, double t) {
  check_labels("knn", bank);
  check_labels("knn", queries);
  if (bank.features.size(0) == 0 || queries.features.size(0) == 0)
    throw std::invalid_argument("[knn] empty bank or query set");
  if (bank.features.size(1) != queries.features.size(1))
    throw std::invalid_argument("[knn] bank features " + bank.features.str() +
                                " and query features " + queries.features.str() + " differ in D");
  const int64_t C = std::max(bank.num_classes, queries.num_classes);
  k = std::min(k, bank.features.size(0));
  NoGradGuard ng;
  Tensor nb = normalize(bank.features, 1);
  Tensor nq = normalize(queries.features, 1);
  const int64_t Q = nq.size(0), chunk = 256;
  int64_t hit1 = 0, hit5 = 0;
  std::vector<int64_t> idx;
  std::vector<double> votes(static_cast<size_t>(C));
  for (int64_t q0 = 0; q0 < Q; q0 += chunk) {
    const int64_t qn = std::min(chunk, Q - q0);
    Tensor sim = matmul(nq.slice(q0, q0 + qn), nb, false, true);  // [qn, M] cosine similarities
    const float* s = sim.data<float>();
    const int64_t M = sim.size(1);
    for (int64_t i = 0; i < qn; ++i) {
      const float* row = s + i * M;
      idx.resize(static_cast<size_t>(M));
      std::iota(idx.begin(), idx.end(), int64_t(0));
      std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int64_t a, int64_t b) {
        return row[a] > row[b] || (row[a] == row[b] && a < b);
      });
      // Each neighbour votes exp(sim / t) for its class.
      std::fill(votes.begin(), votes.end(), 0.0);
      for (int64_t j = 0; j < k; ++j)
        votes[static_cast<size_t>(bank.labels[static_cast<size_t>(idx[size_t(j)])])] +=
            std::exp(double(row[idx[size_t(j)]]) / t);
      std::vector<int64_t> cls(static_cast<size_t>(C));
      std::iota(cls.begin(), cls.end(), int64_t(0));
      const int64_t top = std::min<int64_t>(5, C);
      std::partial_sort(cls.begin(), cls.begin() + top, cls.end(), [&](int64_t a, int64_t b) {
        return votes[size_t(a)] > votes[size_t(b)] ||
               (votes[size_t(a)] == votes[size_t(b)] && a < b);
      });
      const int64_t y = queries.labels[static_cast<size_t>(q0 + i)];
      if (cls[0] == y) ++hit1;
      if (std::find(cls.begin(), cls.begin() + top, y) != cls.begin() + top) ++hit5;
    }
  }
  return {double(hit1) / double(Q), double(hit5) / double(Q)};
}

double linear_probe(const FeatureSet& train, const FeatureSet& test,
                    const LinearProbeOptions& opt) {
  check_labels("linear_probe", train);
  check_labels("linear_probe", test);
  const int64_t N = train.features.size(0), D = train.features.size(1), C = train.num_classes;
  if (N == 0) throw std::invalid_argument("[linear_probe] no training features");

  // Standardise with the training statistics: x' = (x - mean) / (std + 1e-6).
  Tensor mu, sd;
  {
    NoGradGuard ng;
    mu = mean(train.features, 0, true);
    Tensor c = sub(train.features, mu);
    sd = add(sqrt(mean(mul(c, c), 0, true)), 1e-6);
  }
  auto standardise = [&](const Tensor& x) {
    NoGradGuard ng;
    return div(sub(x, mu), sd);
  };
  Tensor xtr = standardise(train.features), xte = standardise(test.features);

  Generator gen(opt.seed);
  const double bound = 1.0 / std::sqrt(double(D));
  Tensor w = Tensor::uniform({C, D}, -bound, bound, gen), b = Tensor::zeros({C});
  w.set_requires_grad(true);
  b.set_requires_grad(true);
  Tensor vw = Tensor::zeros({C, D}), vb = Tensor::zeros({C});
  const int64_t steps_per_epoch = (N + opt.batch_size - 1) / opt.batch_size;
  const int64_t total = std::max<int64_t>(1, opt.epochs * steps_per_epoch);
  int64_t step = 0;
  std::vector<int64_t> order(static_cast<size_t>(N));
  for (int64_t e = 0; e < opt.epochs; ++e) {
    std::iota(order.begin(), order.end(), int64_t(0));
    Generator shuffle = Generator::derive(opt.seed, {uint64_t(e)});
    for (int64_t i = N - 1; i > 0; --i)
      std::swap(order[size_t(i)], order[size_t(shuffle.below(uint64_t(i + 1)))]);
    for (int64_t s = 0; s < steps_per_epoch; ++s, ++step) {
      const int64_t b0 = s * opt.batch_size, bn = std::min(opt.batch_size, N - b0);
      std::vector<float> xb(static_cast<size_t>(bn * D));
      std::vector<int64_t> yb(static_cast<size_t>(bn));
      const float* px = xtr.data<float>();
      for (int64_t r = 0; r < bn; ++r) {
        const int64_t src = order[size_t(b0 + r)];
        std::copy(px + src * D, px + (src + 1) * D, xb.begin() + r * D);
        yb[size_t(r)] = train.labels[size_t(src)];
      }
      Tensor logits = linear(Tensor::from_vector(xb, {bn, D}), w, b);
      w.zero_grad();
      b.zero_grad();
      cross_entropy(logits, yb).backward();
      // SGD with momentum 0.9 and cosine decay: lr_s = lr (1 + cos(pi s / total)) / 2.
      const double lr = opt.lr * 0.5 * (1 + std::cos(M_PI * double(step) / double(total)));
      NoGradGuard ng;
      for (auto [p, v] : {std::pair<Tensor*, Tensor*>{&w, &vw}, {&b, &vb}}) {
        Tensor g = p->grad();
        if (opt.weight_decay > 0 && p == &w) g = add(g, mul(p->detach(), opt.weight_decay));
        v->copy_(add(mul(*v, 0.9), g));
        p->copy_(sub(p->detach(), mul(*v, lr)));
      }
    }
  }
  NoGradGuard ng;
  Tensor logits = linear(xte, w, b);
  const float* pl = logits.data<float>();
  int64_t hits = 0;
  for (int64_t i = 0; i < logits.size(0); ++i) {
    const float* row = pl + i * C;
    if (std::max_element(row, row + C) - row == test.labels[size_t(i)]) ++hits;
  }
  return logits.size(0) ? double(hits) / double(logits.size(0)) : 0.0;
}

double alignment_metric(const Tensor& a, const Tensor& b) {
  NoGradGuard ng;
  Tensor d = sub(normalize(a, 1), normalize(b, 1));
  return mean(sum(mul(d, d), 1)).item();
}

double uniformity_metric(const Tensor& a) {
  NoGradGuard ng;
  const int64_t n = a.size(0);
  if (n < 2) throw std::invalid_argument("[uniformity] needs at least two rows, got " + a.str());
  Tensor u = normalize(a, 1);
  Tensor d = pairwise_sqdist(u);
  // log mean_{i<j} exp(-2 d_ij) = logsumexp over i != j of -2 d_ij - log(n (n - 1)), max-shifted.
  Tensor s = fill_diagonal(mul(d, -2.0), -INFINITY);
  Tensor lse = logsumexp(s.reshape({1, n * n}), 1);
  return lse.item() - std::log(double(n) * double(n - 1));
}

}  // namespace ss
