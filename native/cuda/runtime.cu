// The CUDA runtime side of temper: devices and their streams, the caching device allocator,
// host <-> device copies through pinned staging, and the error helpers of common.cuh.
// Why a caching allocator: cudaMalloc/cudaFree synchronize the device and cost tens of
// microseconds; a training step allocates the same sizes every step. One stream per device
// orders all work, so a freed block can be handed to the next allocation without an event.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <stdexcept>
#include <unordered_map>
#include <vector>
#include "common.cuh"
#include "runtime.h"

namespace temper::cuda {
namespace {

constexpr size_t kStagingBytes = size_t(16) << 20;  // per pinned staging buffer (two, alternating)

struct DeviceState {
  bool ready = false;
  cudaStream_t stream = nullptr;
  int sms = 1;
  size_t live = 0, peak = 0, cached = 0;
  std::unordered_map<size_t, std::vector<void*>> bins;  // size class -> free blocks
  void* staging[2] = {nullptr, nullptr};
  cudaEvent_t staged[2] = {nullptr, nullptr};  // recorded after the copy that reads/writes staging[i]
};

std::mutex g_mu;
DeviceState g_dev[kMaxDevices];
thread_local int t_device = 0;

// Same classes as the CPU allocator: 512 B steps to 1 MiB, then 8 steps per power of two.
size_t size_class(size_t n) {
  if (n == 0) return 512;
  if (n <= (size_t(1) << 20)) return (n + 511) & ~size_t(511);
  size_t top = size_t(1) << (63 - __builtin_clzll(n - 1));
  size_t step = top / 8;
  return (n + step - 1) / step * step;
}

size_t cache_limit() {
  static size_t limit = [] {
    const char* env = std::getenv("TEMPER_CUDA_CACHE_BYTES");
    return env ? (size_t)std::strtoull(env, nullptr, 10) : SIZE_MAX;
  }();
  return limit;
}

bool sync_every_launch() {
  static bool on = [] {
    const char* env = std::getenv("TEMPER_CUDA_SYNC");
    return env && env[0] == '1';
  }();
  return on;
}

DeviceState& state() {
  DeviceState& d = g_dev[t_device];
  if (!d.ready) {
    check(cudaSetDevice(t_device), "init", dims({{"device", t_device}}));
    check(cudaStreamCreateWithFlags(&d.stream, cudaStreamNonBlocking), "init stream");
    check(cudaDeviceGetAttribute(&d.sms, cudaDevAttrMultiProcessorCount, t_device), "init");
    for (int i = 0; i < 2; i++) check(cudaEventCreateWithFlags(&d.staged[i], cudaEventDisableTiming), "init event");
    d.ready = true;
  }
  return d;
}

void release_cache(DeviceState& d) {
  check(cudaStreamSynchronize(d.stream), "empty_cache");
  for (auto& [cls, blocks] : d.bins)
    for (void* p : blocks) check(cudaFree(p), "empty_cache");
  d.bins.clear();
  d.cached = 0;
}

void* staging(DeviceState& d, int i) {
  if (!d.staging[i]) check(cudaMallocHost(&d.staging[i], kStagingBytes), "pinned staging", dims({{"bytes", (int64_t)kStagingBytes}}));
  return d.staging[i];
}

}  // namespace

cudaStream_t stream() { return state().stream; }
int current_device() { return t_device; }
int sm_count() { return state().sms; }

void fail(const char* op, const std::string& detail, cudaError_t err) {
  std::string msg = std::string("temper cuda: ") + op;
  if (!detail.empty()) msg += " (" + detail + ")";
  msg += ": " + std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
  throw std::runtime_error(msg);
}

void check_launch(const char* op, const std::string& detail) {
  check(cudaGetLastError(), op, detail);
  if (sync_every_launch()) check(cudaStreamSynchronize(stream()), op, detail);
}

void bad_dtype(const char* op, int dtype) {
  throw std::invalid_argument(std::string("temper cuda: ") + op + ": dtype code " + std::to_string(dtype) + " is not f32 or bf16");
}

std::string dims(std::initializer_list<std::pair<const char*, int64_t>> d) {
  std::string s;
  for (auto& [name, v] : d) {
    if (!s.empty()) s += ", ";
    s += name;
    s += "=" + std::to_string(v);
  }
  return s;
}

void* scratch_alloc(size_t nbytes) { return buffer_alloc(nbytes); }
void scratch_free(void* p, size_t nbytes) { buffer_free(p, nbytes); }

BadIndex::BadIndex() {
  flag_ = static_cast<unsigned long long*>(scratch_alloc(sizeof(unsigned long long)));
  check(cudaMemsetAsync(flag_, 0xff, sizeof(unsigned long long), stream()), "index check");
}
BadIndex::~BadIndex() { scratch_free(flag_, sizeof(unsigned long long)); }
int64_t BadIndex::result(const char* op, const std::string& detail) {
  unsigned long long pos = 0;
  check(cudaMemcpyAsync(&pos, flag_, sizeof pos, cudaMemcpyDeviceToHost, stream()), op, detail);
  check(cudaStreamSynchronize(stream()), op, detail);
  return pos == ~0ull ? 0 : -(int64_t)pos - 1;
}

int device_count() {
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver) {
    cudaGetLastError();
    return 0;
  }
  check(err, "device_count");
  return n;
}

void set_device(int device) {
  if (device < 0 || device >= kMaxDevices) throw std::invalid_argument("temper cuda: device index " + std::to_string(device) + " out of range");
  t_device = device;
  check(cudaSetDevice(device), "set_device", dims({{"device", device}}));
}

void synchronize() { check(cudaStreamSynchronize(stream()), "synchronize"); }

namespace {
bool g_allow_tf32 = [] {
  const char* env = std::getenv("TEMPER_CUDA_TF32");
  return env && env[0] == '1';
}();
}  // namespace
void set_allow_tf32(bool on) { g_allow_tf32 = on; }
bool allow_tf32() { return g_allow_tf32; }

std::string device_name() {
  cudaDeviceProp prop;
  check(cudaGetDeviceProperties(&prop, t_device), "device_name");
  return std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ", " +
         std::to_string(prop.totalGlobalMem >> 20) + " MiB)";
}

}  // namespace temper::cuda

namespace temper {
using namespace temper::cuda;

void set_num_threads(int) {}  // host threads do not drive device kernels
int num_threads() { return 1; }

void* buffer_alloc(size_t nbytes) {
  std::lock_guard<std::mutex> lock(g_mu);
  DeviceState& d = state();
  size_t cls = size_class(nbytes);
  void* p = nullptr;
  auto it = d.bins.find(cls);
  if (it != d.bins.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
    d.cached -= cls;
  } else {
    cudaError_t err = cudaMalloc(&p, cls);
    if (err == cudaErrorMemoryAllocation && d.cached) {  // give the cache back and try once more
      cudaGetLastError();
      release_cache(d);
      err = cudaMalloc(&p, cls);
    }
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      throw std::runtime_error("temper cuda: out of memory allocating " + std::to_string(nbytes) + " bytes on cuda:" +
                               std::to_string(t_device) + " (" + std::to_string(d.live >> 20) + " MiB live, " +
                               std::to_string(free_b >> 20) + " of " + std::to_string(total_b >> 20) + " MiB free)");
    }
    check(err, "alloc", dims({{"bytes", (int64_t)nbytes}}));
  }
  d.live += nbytes;
  if (d.live > d.peak) d.peak = d.live;
  return p;
}

void buffer_free(void* p, size_t nbytes) {
  if (!p) return;
  std::lock_guard<std::mutex> lock(g_mu);
  DeviceState& d = state();
  size_t cls = size_class(nbytes);
  d.live -= nbytes;
  if (d.cached + cls <= cache_limit()) {
    d.bins[cls].push_back(p);
    d.cached += cls;
  } else {
    check(cudaStreamSynchronize(d.stream), "free");  // the block may still be read by queued work
    check(cudaFree(p), "free");
  }
}

size_t live_bytes() { std::lock_guard<std::mutex> l(g_mu); return state().live; }
size_t peak_bytes() { std::lock_guard<std::mutex> l(g_mu); return state().peak; }
size_t cached_bytes() { std::lock_guard<std::mutex> l(g_mu); return state().cached; }
void reset_peak_bytes() { std::lock_guard<std::mutex> l(g_mu); DeviceState& d = state(); d.peak = d.live; }
void empty_cache() { std::lock_guard<std::mutex> l(g_mu); release_cache(state()); }

// Host -> device: chunks alternate between two pinned buffers, so the memcpy into one overlaps
// the DMA out of the other; an event guards each buffer until its DMA has finished.
void copy_to_buffer(void* dst, const void* src, size_t nbytes) {
  DeviceState& d = state();
  const char* s = static_cast<const char*>(src);
  char* t = static_cast<char*>(dst);
  for (size_t done = 0, i = 0; done < nbytes; i ^= 1) {
    size_t n = nbytes - done < kStagingBytes ? nbytes - done : kStagingBytes;
    check(cudaEventSynchronize(d.staged[i]), "write");
    std::memcpy(staging(d, (int)i), s + done, n);
    check(cudaMemcpyAsync(t + done, d.staging[i], n, cudaMemcpyHostToDevice, d.stream), "write",
          dims({{"bytes", (int64_t)nbytes}}));
    check(cudaEventRecord(d.staged[i], d.stream), "write");
    done += n;
  }
  // The source is the caller's memory: nothing to wait for once it is staged, but the last
  // chunks must land before staging is reused, which the events guarantee.
}

// Device -> host: waits for queued work (the read is a synchronization point by nature).
void copy_from_buffer(void* dst, const void* src, size_t nbytes) {
  DeviceState& d = state();
  const char* s = static_cast<const char*>(src);
  char* t = static_cast<char*>(dst);
  for (size_t done = 0; done < nbytes;) {
    size_t n = nbytes - done < kStagingBytes ? nbytes - done : kStagingBytes;
    check(cudaMemcpyAsync(staging(d, 0), s + done, n, cudaMemcpyDeviceToHost, d.stream), "read",
          dims({{"bytes", (int64_t)nbytes}}));
    check(cudaStreamSynchronize(d.stream), "read");
    std::memcpy(t + done, d.staging[0], n);
    done += n;
  }
}

}  // namespace temper
