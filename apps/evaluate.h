// Evaluation of a frozen encoder the way the SSL literature does it: weighted k-NN on cosine
// similarity, a linear probe on fixed features, and Wang & Isola's alignment and uniformity.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "data/dataset.h"
#include "data/loader.h"
#include "engine/tensor.h"

namespace ss {

// Maps a batch of images [B, C, H, W] to features [B, D]. Called under no_grad; the caller
// puts the model in evaluation mode first (batch norm uses running statistics, case B23).
using EncodeFn = std::function<Tensor(const Tensor& images)>;

struct FeatureSet {
  Tensor features;              // [N, D] float32 on the CPU
  std::vector<int64_t> labels;  // N
  int64_t num_classes = 0;
};

// Features of the first `limit` images (0: all) of ds, un-augmented (the "eval" preset), in
// dataset order, in batches of batch_size.
FeatureSet extract_features(const Dataset& ds, const EncodeFn& encode, int64_t limit,
                            int64_t batch_size, Device device);

struct KnnResult {
  double top1 = 0, top5 = 0;  // fractions in [0, 1]
};

// Weighted k-NN (Wu et al. 2018, as in the SimCLR / DU evaluation code): cosine similarity of
// L2-normalised features, the k most similar bank entries vote with weight exp(sim / t).
KnnResult knn_evaluate(const FeatureSet& bank, const FeatureSet& queries, int64_t k, double t);

struct LinearProbeOptions {
  int64_t epochs = 30;
  double lr = 0.1;
  int64_t batch_size = 256;
  double weight_decay = 0.0;
  uint64_t seed = 0;
};

// A linear classifier trained with SGD (momentum 0.9, cosine decay) and cross-entropy on fixed,
// standardised features of `train`; returns top-1 accuracy on `test`.
double linear_probe(const FeatureSet& train, const FeatureSet& test, const LinearProbeOptions& opt);

// Wang & Isola (2020) on L2-normalised rows: alignment E||u - v||^2 over positive pairs
// (rows i of a and b), uniformity log E exp(-2 ||u_i - u_j||^2) over pairs i < j of a.
double alignment_metric(const Tensor& a, const Tensor& b);
double uniformity_metric(const Tensor& a);

}  // namespace ss
