// Where the time goes: per-op wall time, forward and backward, when enabled (off by default;
// a disabled scope costs one relaxed load). Only the outermost op of a nested call counts, so
// `linear` is timed as linear, not as its matmul and add.
#pragma once
#include <string>
#include <vector>

namespace ss::prof {

bool enabled();
void set_enabled(bool on);
void reset();

struct Entry {
  std::string op;
  double forward_seconds = 0, backward_seconds = 0;
  int64_t forward_calls = 0, backward_calls = 0;
};
// Accumulated totals, largest first.
std::vector<Entry> snapshot();

void add(const char* op, bool backward, double seconds);

// Times the enclosing op's forward pass.
class Scope {
 public:
  explicit Scope(const char* op);
  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  const char* op_;
  double t0_ = -1;
  bool counted_ = false;
};

// Marks the backward pass on this thread (forward scopes inside it do not count).
class BackwardRegion {
 public:
  BackwardRegion();
  ~BackwardRegion();

 private:
  bool prev_;
};

double now_seconds();

}  // namespace ss::prof
