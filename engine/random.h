// Seeded random streams. Every stream is derived from integers only (seed, epoch, index, ...),
// so a result never depends on thread timing or worker count.
#pragma once
#include <cmath>
#include <cstdint>
#include <initializer_list>

namespace ss {

// SplitMix64 finaliser: a strong 64-bit mixing function.
inline uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// xoshiro256** generator with helpers for the distributions the project uses.
class Generator {
 public:
  explicit Generator(uint64_t seed = 0) { reseed(seed); }

  // A stream for (seed, k1, k2, ...): distinct keys give independent streams.
  static Generator derive(uint64_t seed, std::initializer_list<uint64_t> keys) {
    uint64_t h = mix64(seed);
    for (uint64_t k : keys) h = mix64(h ^ mix64(k + 0x632be59bd9b4e019ULL));
    return Generator(h);
  }

  void reseed(uint64_t seed) {
    uint64_t z = seed;
    for (auto& w : s_) {
      z = mix64(z);
      w = z;
    }
  }

  uint64_t next_u64() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return double(next_u64() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Uniform integer in [0, n).
  uint64_t below(uint64_t n) { return n ? next_u64() % n : 0; }
  bool bernoulli(double p) { return uniform() < p; }

  // Standard normal by Box-Muller (one value per call; the pair's second half is discarded so
  // the stream position depends only on the number of calls).
  double normal() {
    double u1 = uniform();
    while (u1 <= 0.0) u1 = uniform();
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

  // The full state, for checkpoints.
  const uint64_t* state() const { return s_; }
  void set_state(const uint64_t* s) {
    for (int i = 0; i < 4; ++i) s_[i] = s[i];
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace ss
