// Host emulation of CUDA's execution model, so that csrc/cuda/*.cu runs on a CPU in the tests.
//
// translate.py turns a .cu file into a C++ file that includes this header first, rewrites each
// `kernel<<<grid, block, smem, stream>>>(args)` into `cuda_emu::launch_kernel(...)` and each
// `__shared__ T name[n];` into a reference to a checked per-block array; nothing else in the kernel file
// changes, and `#line` keeps every diagnostic (and coverage line) on the .cu file itself.
//
// Emulated faithfully:
// - every block of the grid runs with blockDim truly concurrent threads (OS threads), each with
//   its own threadIdx/blockIdx, and blockDim/gridDim as launched;
// - __syncthreads() is a real barrier of the block. A thread that leaves the kernel while others
//   wait at a barrier, threads waiting at two different __syncthreads() calls, and any state where
//   every live thread waits and none can be released are reported as errors of the launch;
// - __shfl_down_sync is a real exchange among the lanes of a warp: every lane named in the mask must
//   reach the same call with the same mask, a calling lane must be in the mask, the mask may only
//   name lanes that exist, and reading a lane outside the mask is an error;
// - __shared__ arrays are per block, and every access is checked: out of bounds, read before any
//   write, and races between threads of the block within one barrier interval (as racecheck);
// - atomicAdd on float, double and unsigned long long, and atomicMax on unsigned int and unsigned
//   long long, are atomic;
// - launch configuration limits (block <= 1024 threads, grid y and z <= 65535, no zero dimension)
//   and the sticky "last error" that C10_CUDA_KERNEL_LAUNCH_CHECK() reads.
// Not emulated (what only a GPU or compute-sanitizer shows):
// - scheduling: blocks run one at a time, in a scrambled but fixed order (or, after
//   set_schedule(seed), in a random order drawn per launch from that seed: the order in which blocks'
//   atomics land then changes with the seed), so races between blocks never happen here; within a
//   block, the OS decides the interleaving (no warp lockstep, as with Volta's independent thread
//   scheduling);
// - the memory model of global memory: out-of-bounds accesses, races and missing __threadfence()
//   there are not detected (memcheck on a GPU does; racecheck covers shared memory only, as here);
// - device arithmetic: the host compiler's float code runs, not nvcc's (FMA contraction may differ,
//   and device intrinsics such as __expf are not provided); launches are synchronous; occupancy,
//   registers and timing mean nothing here.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

// ---- the types and qualifiers of cuda_runtime_api.h and of the CUDA C++ dialect
struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};
typedef struct CUstream_st* cudaStream_t;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)

// The built-in variables: one copy per emulated thread.
inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;

namespace cuda_emu {

constexpr unsigned kWarpSize = 32;

// Thrown inside an emulated thread to unwind it out of the kernel once the launch has failed.
struct KernelAbort {};

struct Warp {
  std::condition_variable cv;
  unsigned lanes = kWarpSize;  // lanes that exist (the last warp of an odd-sized block has fewer)
  unsigned arrived = 0;        // lanes waiting in the exchange under way
  unsigned mask = 0;           // its mask
  int line = 0;                // its source line
  uint64_t generation = 0;
  uint64_t values[kWarpSize] = {};
  uint64_t result[kWarpSize] = {};
};

// Synchronisation state of the block being run. One mutex guards all of it, so that "every live
// thread waits" can be decided exactly.
struct Block {
  explicit Block(unsigned n) : threads(n), left(n, false) {
    for (unsigned w = 0; w * kWarpSize < n; ++w) {
      warps.emplace_back(new Warp);
      warps.back()->lanes = std::min(kWarpSize, n - w * kWarpSize);
    }
  }
  std::mutex mu;
  const unsigned threads;
  unsigned exited = 0;   // threads that have left the kernel
  unsigned blocked = 0;  // threads waiting at a barrier or an exchange that has not completed
  std::vector<bool> left;
  // __syncthreads()
  std::condition_variable barrier_cv;
  unsigned barrier_arrived = 0;
  int barrier_line = 0;
  uint64_t barrier_generation = 0;
  std::vector<std::unique_ptr<Warp>> warps;
  std::map<const void*, std::shared_ptr<void>> shared;  // __shared__ arrays, by declaration
  bool aborted = false;
  std::string error;
};

inline thread_local Block* tl_block = nullptr;
inline thread_local unsigned tl_thread = 0;  // linear thread index within the block

inline std::string thread_name() {
  return "thread (" + std::to_string(threadIdx.x) + "," + std::to_string(threadIdx.y) + "," +
         std::to_string(threadIdx.z) + ")";
}

// Records the launch's first error and wakes every waiting thread so that it unwinds. Lock held.
inline void abort_locked(Block& b, const std::string& message) {
  if (!b.aborted) {
    b.aborted = true;
    b.error = message;
  }
  b.barrier_cv.notify_all();
  for (auto& w : b.warps) w->cv.notify_all();
}

[[noreturn]] inline void fail_locked(Block& b, const std::string& message) {
  abort_locked(b, message);
  throw KernelAbort{};
}

inline std::string wait_summary(const Block& b) {
  std::string s = std::to_string(b.barrier_arrived) + " at __syncthreads()";
  if (b.barrier_arrived) s += " (line " + std::to_string(b.barrier_line) + ")";
  for (size_t w = 0; w < b.warps.size(); ++w) {
    if (b.warps[w]->arrived) {
      s += ", " + std::to_string(b.warps[w]->arrived) + " lanes of warp " + std::to_string(w) +
           " at __shfl_down_sync (line " + std::to_string(b.warps[w]->line) + ")";
    }
  }
  return s + ", " + std::to_string(b.exited) + " exited";
}

// Every live thread waits and none of the waits can complete: on a GPU this hangs. Lock held.
inline void check_deadlock_locked(Block& b) {
  if (b.blocked > 0 && b.blocked + b.exited == b.threads) {
    abort_locked(b, "deadlock: every live thread of the block waits (" + wait_summary(b) + ")");
  }
}

inline void syncthreads(int line) {
  Block& b = *tl_block;
  std::unique_lock<std::mutex> lock(b.mu);
  if (b.aborted) throw KernelAbort{};
  if (b.barrier_arrived > 0 && b.barrier_line != line) {
    fail_locked(b, "barrier divergence: " + thread_name() + " waits at __syncthreads() on line " +
                       std::to_string(line) + " while others wait on line " + std::to_string(b.barrier_line));
  }
  if (b.exited > 0) {
    fail_locked(b, "barrier divergence: " + thread_name() + " waits at __syncthreads() on line " +
                       std::to_string(line) + " after " + std::to_string(b.exited) +
                       " thread(s) of the block left the kernel without reaching it");
  }
  b.barrier_line = line;
  if (++b.barrier_arrived == b.threads) {
    b.barrier_arrived = 0;
    ++b.barrier_generation;
    b.blocked -= b.threads - 1;
    b.barrier_cv.notify_all();
    return;
  }
  ++b.blocked;
  check_deadlock_locked(b);
  const uint64_t generation = b.barrier_generation;
  b.barrier_cv.wait(lock, [&] { return b.barrier_generation != generation || b.aborted; });
  if (b.barrier_generation == generation) throw KernelAbort{};
}

template <typename T>
T shfl_down_sync(int line, unsigned mask, T var, unsigned delta, int width = kWarpSize) {
  static_assert(std::is_trivially_copyable<T>::value && sizeof(T) <= sizeof(uint64_t),
                "__shfl_down_sync: emulated for types of up to 8 bytes");
  Block& b = *tl_block;
  const unsigned lane = tl_thread % kWarpSize;
  std::unique_lock<std::mutex> lock(b.mu);
  if (b.aborted) throw KernelAbort{};
  Warp& w = *b.warps[tl_thread / kWarpSize];
  auto fail = [&](const std::string& what) {  // the message is built only for an error
    fail_locked(b, "__shfl_down_sync on line " + std::to_string(line) + " (" + thread_name() + ", lane " +
                       std::to_string(lane) + "): " + what);
  };
  if (width != static_cast<int>(kWarpSize)) fail("only width 32 is emulated");
  const unsigned existing = w.lanes == kWarpSize ? 0xffffffffu : (1u << w.lanes) - 1u;
  if (!((mask >> lane) & 1u)) fail("the calling lane is not in the mask");
  if (mask & ~existing) fail("the mask names lanes that do not exist in this warp");
  const unsigned src = lane + delta;
  if (src < kWarpSize && !((mask >> src) & 1u)) fail("reads lane " + std::to_string(src) + ", which is not in the mask");
  if (w.arrived > 0 && (w.mask != mask || w.line != line)) {
    fail("lanes of one warp are in different exchanges (the other: line " + std::to_string(w.line) + ", mask " +
         std::to_string(w.mask) + ")");
  }
  for (unsigned l = 0; l < w.lanes; ++l) {
    if (((mask >> l) & 1u) && b.left[tl_thread - lane + l]) {
      fail("lane " + std::to_string(l) + " named in the mask has left the kernel");
    }
  }
  w.mask = mask;
  w.line = line;
  uint64_t bits = 0;
  std::memcpy(&bits, &var, sizeof(T));
  w.values[lane] = bits;
  const unsigned members = static_cast<unsigned>(__builtin_popcount(mask));
  if (++w.arrived == members) {
    std::copy(w.values, w.values + kWarpSize, w.result);
    w.arrived = 0;
    ++w.generation;
    b.blocked -= members - 1;
    w.cv.notify_all();
  } else {
    ++b.blocked;
    check_deadlock_locked(b);
    const uint64_t generation = w.generation;
    w.cv.wait(lock, [&] { return w.generation != generation || b.aborted; });
    if (w.generation == generation) throw KernelAbort{};
  }
  T out = var;  // source lane past the warp: the caller's own value, as on the GPU
  if (src < kWarpSize) std::memcpy(&out, &w.result[src], sizeof(T));
  return out;
}

// A thread has left the kernel (returned, or unwound after an error).
inline void thread_exit(Block& b, unsigned thread) {
  std::lock_guard<std::mutex> lock(b.mu);
  ++b.exited;
  b.left[thread] = true;
  if (b.aborted) return;
  if (b.barrier_arrived > 0) {
    abort_locked(b, "barrier divergence: " + thread_name() + " left the kernel while " +
                        std::to_string(b.barrier_arrived) + " thread(s) wait at __syncthreads() on line " +
                        std::to_string(b.barrier_line));
    return;
  }
  const Warp& w = *b.warps[thread / kWarpSize];
  if (w.arrived > 0 && ((w.mask >> (thread % kWarpSize)) & 1u)) {
    abort_locked(b, "warp divergence: " + thread_name() + " left the kernel while its warp waits at "
                        "__shfl_down_sync on line " + std::to_string(w.line) + " with it in the mask");
    return;
  }
  check_deadlock_locked(b);
}

// ---- __shared__ arrays: per block, with every access checked, as compute-sanitizer's racecheck and
// memcheck do on a GPU: an index out of bounds, a read of an element never written in this block,
// and two threads touching one element between the same two barriers with at least one write
// (read-after-write, write-after-read, write-after-write) are errors of the launch. Accesses go
// through SharedRef, so the kernel's own `a[i] = v` and `v = a[i]` are what gets checked.
struct SharedAccess {
  int writer = -1;       // last writing thread
  uint64_t write_epoch = 0;
  int reader = -1;       // a thread that read in read_epoch; -2: several did
  uint64_t read_epoch = 0;
};

inline std::string shared_where(const char* name, size_t i) {
  return std::string("__shared__ ") + name + "[" + std::to_string(i) + "] (" + thread_name() + "): ";
}

template <typename T>
class SharedRef {
 public:
  SharedRef(T* value, SharedAccess* access, const char* name, size_t index)
      : value_(value), access_(access), name_(name), index_(index) {}
  operator T() const {
    Block& b = *tl_block;
    std::lock_guard<std::mutex> lock(b.mu);
    const int me = static_cast<int>(tl_thread);
    const uint64_t epoch = b.barrier_generation + 1;  // 0 means "never"
    if (access_->writer < 0) fail_locked(b, shared_where(name_, index_) + "read before any write in this block");
    if (access_->write_epoch == epoch && access_->writer != me) {
      fail_locked(b, shared_where(name_, index_) + "read-after-write race: thread " + std::to_string(access_->writer) +
                         " wrote it since the last __syncthreads()");
    }
    if (access_->read_epoch != epoch) {
      access_->read_epoch = epoch;
      access_->reader = me;
    } else if (access_->reader != me) {
      access_->reader = -2;
    }
    return *value_;
  }
  SharedRef& operator=(T v) {
    Block& b = *tl_block;
    std::lock_guard<std::mutex> lock(b.mu);
    const int me = static_cast<int>(tl_thread);
    const uint64_t epoch = b.barrier_generation + 1;
    if (access_->write_epoch == epoch && access_->writer != me) {
      fail_locked(b, shared_where(name_, index_) + "write-after-write race with thread " +
                         std::to_string(access_->writer) + " since the last __syncthreads()");
    }
    if (access_->read_epoch == epoch && access_->reader != me) {
      fail_locked(b, shared_where(name_, index_) + "write-after-read race: another thread read it since the last "
                                                  "__syncthreads()");
    }
    access_->writer = me;
    access_->write_epoch = epoch;
    *value_ = v;
    return *this;
  }
  SharedRef& operator=(const SharedRef& other) { return *this = static_cast<T>(other); }
  SharedRef& operator+=(T v) { return *this = static_cast<T>(*this) + v; }

 private:
  T* value_;
  SharedAccess* access_;
  const char* name_;
  size_t index_;
};

template <typename T, size_t N>
class SharedArray {
 public:
  explicit SharedArray(const char* name) : name_(name) { std::memset(values_, 0xff, sizeof values_); }
  SharedRef<T> operator[](size_t i) {
    if (i >= N) {
      Block& b = *tl_block;
      std::lock_guard<std::mutex> lock(b.mu);
      fail_locked(b, shared_where(name_, i) + "index out of bounds (size " + std::to_string(N) + ")");
    }
    return SharedRef<T>(&values_[i], &access_[i], name_, i);
  }

 private:
  const char* name_;
  T values_[N];  // 0xff bytes at the start of each block (NaN for floats)
  SharedAccess access_[N];
};

// `__shared__ T name[N];` (rewritten by translate.py): the block's array for this declaration
// (Key is a lambda type, unique to the declaration).
template <typename T, size_t N, typename Key>
SharedArray<T, N>& block_shared(const char* name, Key) {
  static const char key = 0;
  Block& b = *tl_block;
  std::lock_guard<std::mutex> lock(b.mu);
  std::shared_ptr<void>& slot = b.shared[&key];
  if (!slot) slot = std::make_shared<SharedArray<T, N>>(name);
  return *static_cast<SharedArray<T, N>*>(slot.get());
}

// ---- atomics: compare-and-swap loops on the bit patterns
template <typename F, typename U>
F atomic_add_bits(F* address, F value) {
  static_assert(sizeof(F) == sizeof(U), "bit width");
  U* raw = reinterpret_cast<U*>(address);
  U expected = __atomic_load_n(raw, __ATOMIC_RELAXED);
  for (;;) {
    F old;
    std::memcpy(&old, &expected, sizeof(F));
    const F sum = old + value;
    U desired;
    std::memcpy(&desired, &sum, sizeof(F));
    if (__atomic_compare_exchange_n(raw, &expected, desired, true, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) return old;
  }
}

template <typename U>
U atomic_max_bits(U* address, U value) {
  U expected = __atomic_load_n(address, __ATOMIC_RELAXED);
  while (expected < value &&
         !__atomic_compare_exchange_n(address, &expected, value, true, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
  }
  return expected;
}

// ---- grid limits the kernels may make smaller for the tests (KALEIDO_GRID_LIMIT below). The y
// limit also becomes the emulated device's (check_config): a kernel file that ignores it fails.
inline int64_t& grid_limit_override(int axis) {
  static int64_t limits[3] = {0, 0, 0};
  return limits[axis];
}
inline int64_t grid_limit(int axis, int64_t production) {
  const int64_t o = grid_limit_override(axis);
  return o > 0 && o < production ? o : production;
}

// ---- launches
struct LaunchConfig {
  dim3 grid, block;
  size_t shared_bytes;
  LaunchConfig(dim3 g, dim3 b, size_t smem = 0, cudaStream_t = nullptr) : grid(g), block(b), shared_bytes(smem) {}
};

struct Stats {
  uint64_t launches = 0, blocks = 0;
};
inline Stats& stats() {
  static Stats s;
  return s;
}

inline std::string& last_error() {
  static std::string e;
  return e;
}

// C10_CUDA_KERNEL_LAUNCH_CHECK(): throws the first error since the last check, and clears it.
inline void check_last_launch(const char* file, int line) {
  if (last_error().empty()) return;
  const std::string message = last_error();
  last_error().clear();
  throw std::runtime_error("CUDA error (host emulation): " + message + " [launch checked at " + file + ":" +
                           std::to_string(line) + "]");
}

// A pool of persistent worker threads; block b's thread t runs on worker t.
class ThreadPool {
 public:
  void run_block(Block& block, const std::function<void()>& body, dim3 grid, dim3 threads, uint3 block_index) {
    std::unique_lock<std::mutex> lock(mu_);
    while (workers_.size() < block.threads) {
      workers_.emplace_back(&ThreadPool::work, this, static_cast<unsigned>(workers_.size()));
    }
    block_ = &block;
    body_ = &body;
    grid_ = grid;
    threads_ = threads;
    block_index_ = block_index;
    active_ = block.threads;
    done_ = 0;
    ++generation_;
    start_cv_.notify_all();
    done_cv_.wait(lock, [&] { return done_ == active_; });
  }

 private:
  void work(unsigned id) {
    uint64_t seen = 0;
    for (;;) {
      std::unique_lock<std::mutex> lock(mu_);
      start_cv_.wait(lock, [&] { return generation_ != seen; });
      seen = generation_;
      if (id >= active_) continue;
      Block& block = *block_;
      const std::function<void()>& body = *body_;
      gridDim = grid_;
      blockDim = threads_;
      blockIdx = block_index_;
      lock.unlock();
      threadIdx = uint3{id % blockDim.x, (id / blockDim.x) % blockDim.y, id / (blockDim.x * blockDim.y)};
      tl_block = &block;
      tl_thread = id;
      try {
        body();
      } catch (const KernelAbort&) {
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> block_lock(block.mu);
        abort_locked(block, std::string("exception in kernel: ") + e.what());
      }
      thread_exit(block, id);
      tl_block = nullptr;
      lock.lock();
      if (++done_ == active_) done_cv_.notify_one();
    }
  }

  std::mutex mu_;
  std::condition_variable start_cv_, done_cv_;
  std::vector<std::thread> workers_;
  uint64_t generation_ = 0;
  unsigned active_ = 0, done_ = 0;
  Block* block_ = nullptr;
  const std::function<void()>* body_ = nullptr;
  dim3 grid_, threads_;
  uint3 block_index_{0, 0, 0};
};

inline ThreadPool& pool() {
  static ThreadPool* p = new ThreadPool;  // never destroyed: its threads wait until the process ends
  return *p;
}

inline std::mutex& launch_mutex() {
  static std::mutex m;
  return m;
}

inline std::string check_config(const LaunchConfig& c) {
  const uint64_t threads = uint64_t(c.block.x) * c.block.y * c.block.z;
  if (c.grid.x == 0 || c.grid.y == 0 || c.grid.z == 0 || threads == 0) return "invalid configuration argument (a zero dimension)";
  if (threads > 1024 || c.block.z > 64) return "invalid configuration argument (more than 1024 threads per block)";
  if (c.grid.y > 65535 || c.grid.z > 65535 || c.grid.x > 2147483647u) return "invalid configuration argument (grid too large)";
  // A lowered y limit stands for a device whose grid y extent is that small: a launch beyond it
  // fails, as one beyond 65535 does on a GPU.
  if (grid_limit_override(1) > 0 && c.grid.y > grid_limit_override(1)) {
    return "invalid configuration argument (grid y " + std::to_string(c.grid.y) + " above the emulated device's " +
           std::to_string(grid_limit_override(1)) + ")";
  }
  if (c.shared_bytes != 0) return "dynamic shared memory is not emulated";
  return "";
}

// The block schedule: 0 for the fixed scrambled order, otherwise the seed of a random order per launch.
inline uint64_t& schedule_seed() {
  static uint64_t seed = 0;
  return seed;
}

// The order in which a launch's `total` blocks run (linear block ids).
inline std::vector<uint64_t> block_order(uint64_t total) {
  std::vector<uint64_t> order(total);
  if (schedule_seed() == 0) {
    uint64_t step = 7919;  // a prime: coprime with total unless it divides it
    while (std::gcd(step, total) != 1) step += 2;
    for (uint64_t k = 0; k < total; ++k) order[k] = (k * step + 3) % total;
    return order;
  }
  std::iota(order.begin(), order.end(), uint64_t(0));
  std::mt19937_64 draw(schedule_seed() * 0x9e3779b97f4a7c15ull + stats().launches);
  std::shuffle(order.begin(), order.end(), draw);
  return order;
}

// Runs every block, in a scrambled order (block order must not matter).
inline void run_grid(const char* kernel, int line, const LaunchConfig& c, const std::function<void()>& body) {
  std::lock_guard<std::mutex> launch_lock(launch_mutex());
  ++stats().launches;
  const std::string bad = check_config(c);
  if (!bad.empty()) {
    if (last_error().empty()) last_error() = std::string(kernel) + ": " + bad;
    return;
  }
  const uint64_t total = uint64_t(c.grid.x) * c.grid.y * c.grid.z;
  for (const uint64_t id : block_order(total)) {
    const uint3 index{static_cast<unsigned>(id % c.grid.x), static_cast<unsigned>((id / c.grid.x) % c.grid.y),
                      static_cast<unsigned>(id / (uint64_t(c.grid.x) * c.grid.y))};
    Block block(c.block.x * c.block.y * c.block.z);
    pool().run_block(block, body, c.grid, c.block, index);
    ++stats().blocks;
    if (block.aborted) {
      if (last_error().empty()) {
        last_error() = std::string(kernel) + " (launched on line " + std::to_string(line) + "), block (" +
                       std::to_string(index.x) + "," + std::to_string(index.y) + "," + std::to_string(index.z) +
                       "): " + block.error;
      }
      return;
    }
  }
}

// kernel<<<grid, block, smem, stream>>>(args...): the arguments are copied into the kernel's
// parameter types once, as a launch does, and every thread reads them.
template <typename... Params, typename... Args>
void launch_kernel(const char* name, int line, void (*kernel)(Params...), const LaunchConfig& config, Args&&... args) {
  static_assert(sizeof...(Params) == sizeof...(Args), "kernel launched with the wrong number of arguments");
  const std::tuple<std::decay_t<Params>...> packed(static_cast<std::decay_t<Params>>(std::forward<Args>(args))...);
  run_grid(name, line, config, [&] { std::apply(kernel, packed); });
}

}  // namespace cuda_emu

// ---- the CUDA intrinsics, under their CUDA names
inline float atomicAdd(float* address, float value) { return cuda_emu::atomic_add_bits<float, uint32_t>(address, value); }
inline double atomicAdd(double* address, double value) { return cuda_emu::atomic_add_bits<double, uint64_t>(address, value); }
inline unsigned long long atomicAdd(unsigned long long* address, unsigned long long value) {
  return __atomic_fetch_add(address, value, __ATOMIC_ACQ_REL);
}
inline unsigned int atomicMax(unsigned int* address, unsigned int value) {
  return cuda_emu::atomic_max_bits(address, value);
}
inline unsigned long long atomicMax(unsigned long long* address, unsigned long long value) {
  return cuda_emu::atomic_max_bits(address, value);
}
#define __syncthreads() ::cuda_emu::syncthreads(__LINE__)
#define __shfl_down_sync(...) ::cuda_emu::shfl_down_sync(__LINE__, __VA_ARGS__)

// Grid limits: the emulated tests shrink them at run time so that small tensors take every
// grid-stride loop more than once (the production limits stay the kernel file's).
#define KALEIDO_GRID_LIMIT(axis, production) ::cuda_emu::grid_limit(axis, production)
