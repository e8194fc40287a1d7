// Host allocation with exact live/peak accounting and a size-class cache of freed blocks.
// Why cache on CPU: a fresh large block is an mmap whose every page faults on first touch
// (and munmap on free); training allocates the same sizes every step, so reuse removes
// that cost. Not a general-purpose allocator: blocks are never split or merged.
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>
#include "kernels.h"

namespace temper {

static std::mutex g_mu;
static size_t g_live = 0, g_peak = 0, g_cached = 0;
static std::unordered_map<size_t, std::vector<void*>> g_bins;

static size_t cache_limit() {
  static size_t limit = [] {
    const char* env = std::getenv("TEMPER_CPU_CACHE_BYTES");
    return env ? (size_t)std::strtoull(env, nullptr, 10) : (size_t)4 << 30;
  }();
  return limit;
}

// Size classes: 64 B steps up to 4 KiB, 4 KiB steps up to 1 MiB, then 8 steps per
// power of two (at most 12.5% slack).
static size_t size_class(size_t n) {
  if (n <= 4096) return n <= 64 ? 64 : (n + 63) & ~size_t(63);
  if (n <= (1u << 20)) return (n + 4095) & ~size_t(4095);
  size_t top = size_t(1) << (63 - __builtin_clzll(n - 1));
  size_t step = top / 8;
  return (n + step - 1) / step * step;
}

void* buffer_alloc(size_t nbytes) {
  size_t cls = size_class(nbytes);
  std::lock_guard<std::mutex> lock(g_mu);
  void* p = nullptr;
  auto it = g_bins.find(cls);
  if (it != g_bins.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
    g_cached -= cls;
  } else {
    p = std::aligned_alloc(64, cls);
    if (!p && g_cached) {  // out of memory: give the cache back and try once more
      for (auto& [c, v] : g_bins)
        for (void* q : v) std::free(q);
      g_bins.clear();
      g_cached = 0;
      p = std::aligned_alloc(64, cls);
    }
    if (!p) throw std::bad_alloc();
  }
  g_live += nbytes;
  if (g_live > g_peak) g_peak = g_live;
  return p;
}

void buffer_free(void* p, size_t nbytes) {
  size_t cls = size_class(nbytes);
  std::lock_guard<std::mutex> lock(g_mu);
  g_live -= nbytes;
  if (g_cached + cls <= cache_limit()) {
    g_bins[cls].push_back(p);
    g_cached += cls;
  } else {
    std::free(p);
  }
}

void empty_cache() {
  std::lock_guard<std::mutex> lock(g_mu);
  for (auto& [c, v] : g_bins)
    for (void* q : v) std::free(q);
  g_bins.clear();
  g_cached = 0;
}

size_t live_bytes() { std::lock_guard<std::mutex> l(g_mu); return g_live; }
size_t peak_bytes() { std::lock_guard<std::mutex> l(g_mu); return g_peak; }
size_t cached_bytes() { std::lock_guard<std::mutex> l(g_mu); return g_cached; }
void reset_peak_bytes() { std::lock_guard<std::mutex> l(g_mu); g_peak = g_live; }

void copy_to_buffer(void* dst, const void* src, size_t nbytes) { std::memcpy(dst, src, nbytes); }
void copy_from_buffer(void* dst, const void* src, size_t nbytes) { std::memcpy(dst, src, nbytes); }

}  // namespace temper
