#include "engine/cpu/memory_pool.h"

#include <algorithm>
#include <cstdlib>
#include <iterator>
#include <new>
#include <stdexcept>

namespace ss::cpu {

namespace {
constexpr size_t kSmallChunk = size_t(2) << 20;  // requests below 1 MiB share 2 MiB chunks

size_t round_up(size_t n, size_t to) {
  return (n + to - 1) / to * to;
}
}  // namespace

MemoryPool::~MemoryPool() {
  for (auto& [base, size] : chunk_)
    if (base) std::free(base);
  for (auto& [p, size] : direct_) std::free(p);
}

void* MemoryPool::allocate(size_t bytes) {
  const size_t size = round_up(std::max<size_t>(bytes, 1), kAlign);
  std::lock_guard<std::mutex> lk(mu_);
  auto count = [&](size_t reserved_now) {
    stats_.live += size;
    stats_.peak_live = std::max(stats_.peak_live, stats_.live);
    stats_.reserved = reserved_now;
    stats_.peak_reserved = std::max(stats_.peak_reserved, stats_.reserved);
  };
  if (!cache_) {
    void* p = std::aligned_alloc(kAlign, size);
    if (!p) throw std::bad_alloc();
    direct_.emplace(p, size);
    ++stats_.chunks;
    count(stats_.reserved + size);
    return p;
  }
  // Best fit: the smallest free segment that holds the request.
  auto fit = free_.lower_bound({size, nullptr});
  if (fit != free_.end()) {
    void* p = take_locked(segments_.find(fit->second), size);
    count(stats_.reserved);
    return p;
  }
  // Nothing fits: a new chunk, exactly the request rounded to 2 MiB (small requests share one).
  const size_t chunk_size = round_up(size, kSmallChunk);
  char* base = static_cast<char*>(std::aligned_alloc(kAlign, chunk_size));
  if (!base) {
    release_free_chunks_locked();
    base = static_cast<char*>(std::aligned_alloc(kAlign, chunk_size));
    if (!base) throw std::bad_alloc();
  }
  chunk_.push_back({base, chunk_size});
  ++stats_.chunks;
  auto it = segments_.emplace(base, Segment{chunk_size, chunk_.size() - 1, true}).first;
  free_.insert({chunk_size, base});
  void* p = take_locked(it, size);
  count(stats_.reserved + chunk_size);
  return p;
}

// Marks the free segment `it` used for `size` bytes; the rest, if any, stays free.
void* MemoryPool::take_locked(std::map<char*, Segment>::iterator it, size_t size) {
  char* p = it->first;
  Segment& seg = it->second;
  free_.erase({seg.size, p});
  if (seg.size > size) {
    segments_.emplace(p + size, Segment{seg.size - size, seg.chunk, true});
    free_.insert({seg.size - size, p + size});
    seg.size = size;
  }
  seg.free = false;
  return p;
}

void MemoryPool::deallocate(void* ptr) {
  if (!ptr) return;
  std::lock_guard<std::mutex> lk(mu_);
  if (!cache_) {
    auto d = direct_.find(ptr);
    if (d == direct_.end()) throw std::logic_error("[memory pool] freeing an unknown block");
    stats_.live -= d->second;
    stats_.reserved -= d->second;
    std::free(ptr);
    direct_.erase(d);
    return;
  }
  auto it = segments_.find(static_cast<char*>(ptr));
  if (it == segments_.end() || it->second.free)
    throw std::logic_error("[memory pool] freeing a block that is not in use");
  stats_.live -= it->second.size;
  it->second.free = true;
  // Merge with the next and the previous segment when they are free and in the same chunk.
  auto next = std::next(it);
  if (next != segments_.end() && next->second.free && next->second.chunk == it->second.chunk) {
    free_.erase({next->second.size, next->first});
    it->second.size += next->second.size;
    segments_.erase(next);
  }
  if (it != segments_.begin()) {
    auto prev = std::prev(it);
    if (prev->second.free && prev->second.chunk == it->second.chunk) {
      free_.erase({prev->second.size, prev->first});
      prev->second.size += it->second.size;
      segments_.erase(it);
      it = prev;
    }
  }
  free_.insert({it->second.size, it->first});
}

MemoryPool::Stats MemoryPool::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  return stats_;
}

void MemoryPool::release_free_chunks() {
  std::lock_guard<std::mutex> lk(mu_);
  release_free_chunks_locked();
}

void MemoryPool::release_free_chunks_locked() {
  for (size_t id = 0; id < chunk_.size(); ++id) {
    auto [base, size] = chunk_[id];
    if (!base) continue;
    auto it = segments_.find(base);
    if (it == segments_.end() || !it->second.free || it->second.size != size) continue;
    free_.erase({size, base});
    segments_.erase(it);
    std::free(base);
    chunk_[id] = {nullptr, 0};
    stats_.reserved -= size;
  }
}

}  // namespace ss::cpu
