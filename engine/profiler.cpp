#include "engine/profiler.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>

namespace ss::prof {

namespace {
std::atomic<bool> g_enabled{false};
std::mutex g_mu;
std::map<std::string, Entry>& table() {
  static auto* t = new std::map<std::string, Entry>();
  return *t;
}
thread_local int t_depth = 0;
thread_local bool t_backward = false;
}  // namespace

bool enabled() {
  return g_enabled.load(std::memory_order_relaxed);
}
void set_enabled(bool on) {
  g_enabled.store(on);
}

void reset() {
  std::lock_guard<std::mutex> lk(g_mu);
  table().clear();
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void add(const char* op, bool backward, double seconds) {
  std::lock_guard<std::mutex> lk(g_mu);
  Entry& e = table()[op];
  e.op = op;
  (backward ? e.backward_seconds : e.forward_seconds) += seconds;
  ++(backward ? e.backward_calls : e.forward_calls);
}

std::vector<Entry> snapshot() {
  std::lock_guard<std::mutex> lk(g_mu);
  std::vector<Entry> v;
  for (auto& [k, e] : table()) v.push_back(e);
  std::sort(v.begin(), v.end(), [](const Entry& a, const Entry& b) {
    return a.forward_seconds + a.backward_seconds > b.forward_seconds + b.backward_seconds;
  });
  return v;
}

Scope::Scope(const char* op) : op_(op) {
  if (!enabled() || t_backward) return;
  counted_ = true;
  if (t_depth++ == 0) t0_ = now_seconds();
}

Scope::~Scope() {
  if (!counted_) return;
  if (--t_depth == 0 && t0_ >= 0) add(op_, false, now_seconds() - t0_);
}

BackwardRegion::BackwardRegion() : prev_(t_backward) {
  t_backward = true;
}
BackwardRegion::~BackwardRegion() {
  t_backward = prev_;
}

}  // namespace ss::prof
