// The CPU backend's memory pool: a best-fit allocator over chunks taken from the system once.
//
// Training repeats the same allocations every step. Handing freed activations back to the
// system costs a page fault per 4 KiB when they are touched again (glibc does this for every
// block above its mmap threshold), and a cache keyed by exact size cannot lend a freed 64 MiB
// stage-1 activation to two 32 MiB stage-2 gradients, so it ends up holding a copy of every size's
// high-water mark. Here a freed block goes back to its chunk, merges with free neighbours, and
// any later request that fits reuses it, split if larger: after the first steps the pool holds
// about the most that was ever live at once, and no step touches fresh pages.
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <set>
#include <utility>
#include <vector>

namespace ss::cpu {

class MemoryPool {
 public:
  struct Stats {
    size_t live = 0;      // bytes handed out and not yet returned
    size_t reserved = 0;  // bytes taken from the system (live + free inside chunks)
    size_t peak_live = 0;
    size_t peak_reserved = 0;
    size_t chunks = 0;  // system allocations made so far (a steady run stops adding)
  };

  // cache = false: every block comes from and goes straight back to the system (used under
  // AddressSanitizer, so that every use after free is seen).
  explicit MemoryPool(bool cache = true) : cache_(cache) {}
  MemoryPool(const MemoryPool&) = delete;
  MemoryPool& operator=(const MemoryPool&) = delete;
  ~MemoryPool();

  void* allocate(size_t bytes);  // 64-byte aligned; throws std::bad_alloc
  void deallocate(void* ptr);
  Stats stats() const;
  void release_free_chunks();  // gives wholly free chunks back to the system

  static constexpr size_t kAlign = 64;

 private:
  struct Segment {
    size_t size;
    size_t chunk;  // segments merge only within one chunk
    bool free;
  };
  void* take_locked(std::map<char*, Segment>::iterator it, size_t size);
  void release_free_chunks_locked();

  bool cache_;
  mutable std::mutex mu_;
  std::map<char*, Segment> segments_;        // every segment of every chunk, by address
  std::set<std::pair<size_t, char*>> free_;  // free segments by (size, address): best fit
  std::vector<std::pair<char*, size_t>>
      chunk_;                       // chunk id -> (base, size); base null if given back
  std::map<void*, size_t> direct_;  // cache = false: block -> size
  Stats stats_;
};

}  // namespace ss::cpu
