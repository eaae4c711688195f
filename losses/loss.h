// The loss interface and the registry that builds a loss by name from a parameter map.
//
// Every loss takes the embeddings of one batch as a [K*N, D] matrix in view-major order (row
// k*N + n is view k of image n) together with K, derives N from the rows, and returns a scalar
// loss on the autograd tape plus a few diagnostics computed off the tape.
//
//   ss::LossPtr loss = ss::make_loss("du", {{"t", 2.0}});
//   ss::LossOutput out = loss->forward(z, 2);
//   out.loss.backward();
//   double unif = out.diagnostics.at("unif");
//
// Contrastive losses (InfoNCE) and the uniformity terms are not sums over images: the loss of a
// batch is not the mean of the losses of its micro-batches (case B11; 0.478333 for a batch of
// four pairs against 0.251980 for each half). selfsup therefore offers no gradient accumulation
// for these losses; a larger effective batch needs all K*N embeddings in one forward call.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace ss {

// Named numeric parameters, as read from a config file; booleans are 0 or 1.
using LossParams = std::map<std::string, double>;

struct LossOutput {
  Tensor loss;                                // shape [], on the tape
  std::map<std::string, double> diagnostics;  // computed without recording, plain numbers
};

class Loss {
 public:
  virtual ~Loss() = default;
  // z [K*N, D] view-major -> loss []; throws std::invalid_argument "[<name>] ..." on bad shapes.
  virtual LossOutput forward(const Tensor& z, int64_t K) const = 0;
  // The registered name, e.g. "infonce".
  virtual std::string name() const = 0;
  // Every parameter with its resolved value (defaults filled in), for logging the config.
  virtual LossParams params() const = 0;
};

using LossPtr = std::unique_ptr<Loss>;
using LossFactory = std::function<LossPtr(const LossParams&)>;

// Adds a factory under `name`; throws if the name is empty or already taken. The built-in
// losses are listed in losses/registry.cpp and are present before the first lookup.
void register_loss(const std::string& name, LossFactory factory);
// Builds the loss `name`; throws std::invalid_argument for an unknown name (listing the known
// ones), an unknown parameter or an out-of-range value (naming the parameter).
LossPtr make_loss(const std::string& name, const LossParams& params = {});
// Names of every registered loss, sorted.
std::vector<std::string> registered_losses();

// ---- helpers shared by the loss implementations -------------------------------------------

// z [K*N, D] -> N. Checks that z is 2-D and non-empty, K >= 2 and that K divides the rows.
int64_t views_batch(const char* loss, const Tensor& z, int64_t K);

// Throws "[<loss>] parameter '<key>' must be > 0, got <value>" unless value is finite and > 0.
void check_positive(const std::string& loss, const std::string& key, double value);

// Reads parameters for one loss, fills in defaults, and rejects names it was not asked about.
class ParamReader {
 public:
  ParamReader(std::string loss, const LossParams& params);
  // The value of `key`, or `fallback` when absent.
  double get(const std::string& key, double fallback);
  // As get(), and the value must be > 0 (finite).
  double positive(const std::string& key, double fallback);
  // As get(), and the value must be >= 0 (finite).
  double non_negative(const std::string& key, double fallback);
  // As get(), and the value must be 0 or 1.
  bool flag(const std::string& key, bool fallback);
  // Throws when a parameter was given that no get() asked for.
  void finish() const;

 private:
  std::string loss_;
  LossParams params_;
  std::vector<std::string> known_;
};

// Wang & Isola's metrics of the normalised embeddings u [K*N, D], at alpha = 2 and t = 2, in
// float64 and off the tape:
//   "align" = mean over n and k < l of ||u_n^(k) - u_n^(l)||^2
//   "unif"  = mean over k of log( mean_{n < m} exp(-2 ||u_n^(k) - u_m^(k)||^2) )
// "unif" is left out when N < 2 (no pairs). Every loss adds these to its diagnostics.
void add_wang_isola_metrics(const Tensor& u, int64_t K, std::map<std::string, double>& diag);

// log( mean of exp(v_i) ) over the values, max-shifted; v must be non-empty.
double log_mean_exp(const std::vector<double>& v);

}  // namespace ss
