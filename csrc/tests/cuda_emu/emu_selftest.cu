// Checks of the host emulation of CUDA itself (cuda_emu.h), written as CUDA: CMake translates this
// file with translate.py, as the tests do with kt_kernel.cu, and ctest runs it. Each check is a
// kernel whose result, or whose error, is known: barriers that hold, barriers some thread skips,
// warp exchanges, atomics under contention, checked shared memory, launch limits.
#include <c10/cuda/CUDAException.h>  // C10_CUDA_KERNEL_LAUNCH_CHECK, as the kernels use it
#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

static int failures = 0;
static int passed = 0;

#define CHECK(cond)                                                                  \
  do {                                                                               \
    if (cond) {                                                                      \
      ++passed;                                                                      \
    } else {                                                                         \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                                    \
    }                                                                                \
  } while (0)

// The error the launch check reports ("" when the launch succeeded).
static std::string launch_error() {
  try {
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

static bool contains(const std::string& text, const char* part) { return text.find(part) != std::string::npos; }

// ---- kernels

// Each thread writes its slot, waits, then reads its neighbour's: wrong without a real barrier.
__global__ void rotate_through_shared(int* out) {
  __shared__ int slots[256];
  slots[threadIdx.x] = static_cast<int>(threadIdx.x + blockIdx.x * 1000);
  __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] = slots[(threadIdx.x + 1) % blockDim.x];
}

__global__ void one_thread_skips_barrier(int* out) {
  if (threadIdx.x != 5) __syncthreads();
  out[threadIdx.x] = 1;
}

__global__ void two_barrier_sites(int* out) {
  if (threadIdx.x < 64) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1;
}

__global__ void warp_sums(float* out) {
  float v = static_cast<float>(threadIdx.x % 32);
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  if (threadIdx.x % 32 == 0) out[threadIdx.x / 32] = v;
}

// Lanes 16-31 exchange among themselves: a legal partial mask (lane 31 reads past the warp and
// keeps its own value).
__global__ void half_warp_exchange(int* out) {
  if (threadIdx.x >= 16) out[threadIdx.x] = __shfl_down_sync(0xffff0000u, static_cast<int>(threadIdx.x), 1);
}

__global__ void lane_missing_from_exchange(int* out) {
  if (threadIdx.x != 7) out[threadIdx.x] = __shfl_down_sync(0xffffffffu, static_cast<int>(threadIdx.x), 1);
}

__global__ void caller_outside_mask(int* out) {
  out[threadIdx.x] = __shfl_down_sync(0x0000ffffu, static_cast<int>(threadIdx.x), 1);
}

// Lane 0 waits at the block barrier while lanes 1-31 of its warp wait for it in an exchange.
__global__ void barrier_against_exchange(int* out) {
  if (threadIdx.x == 0) {
    __syncthreads();
  } else {
    out[threadIdx.x] = __shfl_down_sync(0xffffffffu, 1, 1);
    __syncthreads();
  }
}

template <typename T>
__global__ void hammer_one_counter(T* counter, int adds) {
  for (int k = 0; k < adds; ++k) atomicAdd(counter, T(1));
}

__global__ void read_shared_before_write(float* out) {
  __shared__ float never_written[4];
  out[threadIdx.x] = never_written[threadIdx.x % 4];
}

// rotate_through_shared without its barrier: a read-after-write (or read-before-write) race.
__global__ void rotate_without_barrier(int* out) {
  __shared__ int slots[64];
  slots[threadIdx.x] = static_cast<int>(threadIdx.x);
  out[threadIdx.x] = slots[(threadIdx.x + 1) % blockDim.x];
}

// Thread 0 sums what the others wrote, after a barrier; then all write again without a second
// barrier while thread 0 may still be reading: a write-after-read race (the kernels' second
// __syncthreads() exists for this).
__global__ void reuse_without_second_barrier(int* out) {
  __shared__ int totals[32];
  for (int round = 0; round < 2; ++round) {
    totals[threadIdx.x] = round;
    __syncthreads();
    if (threadIdx.x == 0) {
      int sum = 0;
      for (int k = 0; k < 32; ++k) sum += totals[k];
      out[round] = sum;
    }
  }
}

__global__ void shared_out_of_bounds(int* out) {
  __shared__ int small[8];
  small[threadIdx.x] = 1;
  out[threadIdx.x] = 0;
}

// Every (block, thread) of a 3-D grid records its global index once.
__global__ void cover_grid(float* hits) {
  const unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  atomicAdd(hits + block * (blockDim.x * blockDim.y * blockDim.z) + thread, 1.0f);
}

// ---- checks

static void barrier_holds_across_the_block() {
  std::vector<int> out(3 * 256, -1);
  rotate_through_shared<<<3, 256>>>(out.data());
  CHECK(launch_error().empty());
  bool right = true;
  for (int b = 0; b < 3; ++b) {
    for (int t = 0; t < 256; ++t) right &= out[b * 256 + t] == (t + 1) % 256 + b * 1000;
  }
  CHECK(right);
}

static void skipped_barrier_is_caught() {
  std::vector<int> out(64, 0);
  one_thread_skips_barrier<<<1, 64>>>(out.data());
  const std::string e = launch_error();
  CHECK(contains(e, "barrier divergence"));
  CHECK(contains(e, "one_thread_skips_barrier"));
  CHECK(launch_error().empty());  // the error is reported once, then cleared
  two_barrier_sites<<<1, 128>>>(out.data());
  CHECK(contains(launch_error(), "barrier divergence"));
}

static void warp_exchange() {
  std::vector<float> sums(8, 0.0f);
  warp_sums<<<1, 256>>>(sums.data());
  CHECK(launch_error().empty());
  bool right = true;
  for (float s : sums) right &= s == 496.0f;  // 0 + 1 + ... + 31
  CHECK(right);
  std::vector<int> out(32, -1);
  half_warp_exchange<<<1, 32>>>(out.data());
  CHECK(launch_error().empty());
  CHECK(out[0] == -1 && out[16] == 17 && out[30] == 31 && out[31] == 31);
}

static void exchange_errors_are_caught() {
  std::vector<int> out(64, 0);
  lane_missing_from_exchange<<<1, 32>>>(out.data());
  CHECK(contains(launch_error(), "left the kernel"));
  caller_outside_mask<<<1, 32>>>(out.data());
  CHECK(contains(launch_error(), "not in the mask"));
  warp_sums<<<1, 48>>>(reinterpret_cast<float*>(out.data()));  // the second warp has 16 lanes
  CHECK(contains(launch_error(), "do not exist"));
  barrier_against_exchange<<<1, 32>>>(out.data());
  CHECK(contains(launch_error(), "deadlock"));
}

static void atomics_are_atomic() {
  float f = 0.0f;
  hammer_one_counter<float><<<2, 256>>>(&f, 1000);
  CHECK(launch_error().empty());
  CHECK(f == 512000.0f);  // exact in float (below 2^24)
  double d = 0.0;
  hammer_one_counter<double><<<1, 512>>>(&d, 2000);
  CHECK(launch_error().empty());
  CHECK(d == 1024000.0);
}

static void shared_memory_is_checked() {
  std::vector<float> out(32, 0.0f);
  read_shared_before_write<<<1, 32>>>(out.data());
  CHECK(contains(launch_error(), "read before any write"));
  std::vector<int> ints(64, 0);
  rotate_without_barrier<<<1, 64>>>(ints.data());
  const std::string race = launch_error();
  CHECK(contains(race, "slots[") && (contains(race, "race") || contains(race, "before any write")));
  reuse_without_second_barrier<<<1, 32>>>(ints.data());
  CHECK(contains(launch_error(), "race"));
  shared_out_of_bounds<<<1, 16>>>(ints.data());
  CHECK(contains(launch_error(), "out of bounds"));
}

static void grid_and_launch_limits() {
  const dim3 grid(3, 2, 2), block(8, 4, 2);
  std::vector<float> hits(3 * 2 * 2 * 8 * 4 * 2, 0.0f);
  cover_grid<<<grid, block>>>(hits.data());
  CHECK(launch_error().empty());
  bool once = true;
  for (float h : hits) once &= h == 1.0f;
  CHECK(once);
  cover_grid<<<1, 2048>>>(hits.data());
  CHECK(contains(launch_error(), "invalid configuration"));
  cover_grid<<<dim3(1, 70000), 32>>>(hits.data());
  CHECK(contains(launch_error(), "invalid configuration"));
}

int main() {
  barrier_holds_across_the_block();
  skipped_barrier_is_caught();
  warp_exchange();
  exchange_errors_are_caught();
  atomics_are_atomic();
  shared_memory_is_checked();
  grid_and_launch_limits();
  std::printf("cuda_emu self-test: %d passed, %d failed\n", passed, failures);
  return failures ? EXIT_FAILURE : EXIT_SUCCESS;
}
