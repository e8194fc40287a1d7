// Aligned host allocation with exact live/peak byte accounting.
// Not a caching allocator: on CPU, malloc is fast enough and returns memory to the OS.
#include <atomic>
#include <cstdlib>
#include <new>
#include "kernels.h"

namespace temper {

static std::atomic<size_t> g_live{0};
static std::atomic<size_t> g_peak{0};

void* buffer_alloc(size_t nbytes) {
  size_t padded = (nbytes + 63) & ~size_t(63);
  if (padded == 0) padded = 64;
  void* p = std::aligned_alloc(64, padded);
  if (!p) throw std::bad_alloc();
  size_t live = g_live.fetch_add(nbytes) + nbytes;
  size_t peak = g_peak.load();
  while (live > peak && !g_peak.compare_exchange_weak(peak, live)) {
  }
  return p;
}

void buffer_free(void* p, size_t nbytes) {
  std::free(p);
  g_live.fetch_sub(nbytes);
}

size_t live_bytes() { return g_live.load(); }
size_t peak_bytes() { return g_peak.load(); }
void reset_peak_bytes() { g_peak.store(g_live.load()); }

}  // namespace temper
