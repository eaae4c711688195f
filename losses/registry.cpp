// The loss registry. The built-in losses are listed below, one line each: to add a loss, write
// losses/<name>.{h,cpp} with a factory `LossPtr make_<name>(const LossParams&)`, include its
// header here and add its line to builtin_losses() (docs/adding-a-loss.md walks through it).
// A central list, rather than static registrar objects in each file, because the linker drops
// unreferenced objects from a static library and a registrar there would silently never run.
#include <algorithm>
#include <mutex>
#include <stdexcept>
#include <utility>

#include "losses/align_uniform.h"
#include "losses/decoupled_uniformity.h"
#include "losses/infonce.h"
#include "losses/loss.h"
#include "losses/spectral.h"

namespace ss {

namespace {
std::vector<std::pair<std::string, LossFactory>> builtin_losses() {
  return {
      {"infonce", make_infonce},              // losses/infonce.cpp
      {"align_uniform", make_align_uniform},  // losses/align_uniform.cpp
      {"du", make_du},                        // losses/decoupled_uniformity.cpp
      {"spectral", make_spectral},            // losses/spectral.cpp
  };
}

struct Registry {
  std::mutex mutex;
  std::map<std::string, LossFactory> factories;
};

Registry& registry() {
  static Registry* r = [] {
    auto* reg = new Registry;  // never destroyed: losses may be built during static teardown
    for (auto& [name, factory] : builtin_losses()) reg->factories[name] = std::move(factory);
    return reg;
  }();
  return *r;
}

std::string known_names(const std::map<std::string, LossFactory>& factories) {
  std::string names;
  for (const auto& kv : factories) names += (names.empty() ? "" : ", ") + kv.first;
  return names;
}
}  // namespace

void register_loss(const std::string& name, LossFactory factory) {
  if (name.empty()) throw std::invalid_argument("[register_loss] the loss name is empty");
  if (!factory)
    throw std::invalid_argument("[register_loss] no factory given for loss '" + name + "'");
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  if (r.factories.count(name))
    throw std::invalid_argument("[register_loss] a loss named '" + name +
                                "' is already registered");
  r.factories[name] = std::move(factory);
}

LossPtr make_loss(const std::string& name, const LossParams& params) {
  Registry& r = registry();
  LossFactory factory;
  {
    std::lock_guard<std::mutex> lock(r.mutex);
    const auto it = r.factories.find(name);
    if (it == r.factories.end())
      throw std::invalid_argument("[make_loss] unknown loss '" + name +
                                  "'; registered losses: " + known_names(r.factories));
    factory = it->second;
  }
  return factory(params);
}

std::vector<std::string> registered_losses() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::vector<std::string> names;
  for (const auto& kv : r.factories) names.push_back(kv.first);
  return names;
}

}  // namespace ss
