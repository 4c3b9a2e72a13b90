// CUDA kernels of the fused pair-head op. pairing.cpp checks the inputs, allocates the outputs, dispatches on
// the dtype and calls forward_cuda / backward_cuda below; the per-pair math is pairing.h's, shared with the
// CPU kernel. Inputs may be float, double, half or bfloat16; sums are kept in acc_t (float, or double for
// double). No kernel ever holds a [pairs, H] tensor: all-pairs work is tiled over (i, j) blocks in shared
// memory and reduced on chip.
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <cuda_runtime.h>

#include "pairing.h"

namespace tgan_pairing {
namespace {

// ---------------------------------------------------------------- forward, all pairs
// A block scores a kTile x kTile tile of (i, j) pairs; 16 x 16 threads, each owning kRegs x kRegs pairs in
// registers. Hidden units are streamed through shared memory kChunk at a time.
constexpr int kTile = 64;
constexpr int kThreads2d = 16;
constexpr int kRegs = kTile / kThreads2d;
constexpr int kChunk = 16;

template <typename scalar_t, typename acc_t>
__global__ void forward_all_kernel(Problem prob, const scalar_t* __restrict__ a, const scalar_t* __restrict__ c,
                                   const acc_t* __restrict__ b1, const acc_t* __restrict__ w2,
                                   scalar_t* __restrict__ s_pos, scalar_t* __restrict__ s_neg) {
  __shared__ acc_t a_tile[kChunk][kTile + 1];
  __shared__ acc_t c_tile[kChunk][kTile + 1];
  __shared__ acc_t b1_tile[kChunk];
  __shared__ acc_t w2_tile[kChunk];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int tid = ty * kThreads2d + tx;
  const int64_t i0 = static_cast<int64_t>(blockIdx.y) * kTile;
  const int64_t j0 = static_cast<int64_t>(blockIdx.x) * kTile;
  const int64_t hidden = prob.hidden;
  const acc_t slope = static_cast<acc_t>(prob.slope);
  acc_t pos[kRegs][kRegs], neg[kRegs][kRegs];
#pragma unroll
  for (int r = 0; r < kRegs; ++r)
#pragma unroll
    for (int q = 0; q < kRegs; ++q) pos[r][q] = neg[r][q] = acc_t(0);

  for (int64_t k0 = 0; k0 < hidden; k0 += kChunk) {
    for (int e = tid; e < kTile * kChunk; e += kThreads2d * kThreads2d) {
      const int row = e / kChunk, kk = e % kChunk;
      const int64_t k = k0 + kk;
      const bool in_k = k < hidden;
      a_tile[kk][row] = (in_k && i0 + row < prob.rows_a) ? static_cast<acc_t>(a[(i0 + row) * hidden + k]) : acc_t(0);
      c_tile[kk][row] = (in_k && j0 + row < prob.rows_c) ? static_cast<acc_t>(c[(j0 + row) * hidden + k]) : acc_t(0);
    }
    if (tid < kChunk) {  // padding units get w2 = 0: they add nothing
      const int64_t k = k0 + tid;
      b1_tile[tid] = k < hidden ? b1[k] : acc_t(0);
      w2_tile[tid] = k < hidden ? w2[k] : acc_t(0);
    }
    __syncthreads();
#pragma unroll 4
    for (int kk = 0; kk < kChunk; ++kk) {
      const acc_t bias = b1_tile[kk], weight = w2_tile[kk];
      acc_t av[kRegs], cv[kRegs];
#pragma unroll
      for (int r = 0; r < kRegs; ++r) {
        av[r] = a_tile[kk][ty + kThreads2d * r];
        cv[r] = c_tile[kk][tx + kThreads2d * r];
      }
#pragma unroll
      for (int r = 0; r < kRegs; ++r)
#pragma unroll
        for (int q = 0; q < kRegs; ++q) forward_unit(av[r], cv[q], bias, weight, slope, pos[r][q], neg[r][q]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int r = 0; r < kRegs; ++r)
#pragma unroll
    for (int q = 0; q < kRegs; ++q) {
      const int64_t i = i0 + ty + kThreads2d * r, j = j0 + tx + kThreads2d * q;
      if (i < prob.rows_a && j < prob.rows_c) {
        s_pos[i * prob.rows_c + j] = static_cast<scalar_t>(pos[r][q]);
        s_neg[i * prob.rows_c + j] = static_cast<scalar_t>(neg[r][q]);
      }
    }
}

// ---------------------------------------------------------------- forward, index pairs and pair lists
// One warp per pair: lanes stride over the hidden units, then a shuffle reduction.
constexpr int kWarp = 32;
constexpr int kPairBlock = 256;

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

template <typename scalar_t, typename acc_t>
__global__ void forward_pairs_kernel(Problem prob, const scalar_t* __restrict__ a, const scalar_t* __restrict__ c,
                                     const acc_t* __restrict__ b1, const acc_t* __restrict__ w2,
                                     const int64_t* __restrict__ pairs, scalar_t* __restrict__ s_pos,
                                     scalar_t* __restrict__ s_neg) {
  const int64_t p = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (p >= prob.num_pairs) return;  // the whole warp leaves together
  int64_t i, j;
  pair_rows(prob.mode, pairs, p, i, j);
  const acc_t slope = static_cast<acc_t>(prob.slope);
  acc_t pos = 0, neg = 0;
  for (int64_t k = lane; k < prob.hidden; k += kWarp)
    forward_unit(static_cast<acc_t>(a[i * prob.hidden + k]), static_cast<acc_t>(c[j * prob.hidden + k]), b1[k], w2[k],
                 slope, pos, neg);
  pos = warp_sum(pos);
  neg = warp_sum(neg);
  if (lane == 0) {
    s_pos[p] = static_cast<scalar_t>(pos);
    s_neg[p] = static_cast<scalar_t>(neg);
  }
}

// ---------------------------------------------------------------- backward, all pairs
// Two launches of one kernel: OWN_A = true owns kOwnRows rows i of A x kUnits hidden units and loops over all
// j (writes raw_a, and the db1 / dw2 partial sums of its row block); OWN_A = false owns rows j of C and loops
// over all i (writes raw_c). Every output element has one owner thread: no atomics, deterministic. Thread
// (x, y) = (hidden unit, row group); each thread owns kRowsPerThread rows; the other side is staged in
// shared memory kOther rows at a time, with the matching g+ / g- tiles.
constexpr int kRowGroups = 8;
constexpr int kRowsPerThread = kOwnRows / kRowGroups;
constexpr int kOther = 32;

template <typename scalar_t, typename acc_t, bool OWN_A>
__global__ void backward_all_kernel(Problem prob, const scalar_t* __restrict__ a, const scalar_t* __restrict__ c,
                                    const acc_t* __restrict__ b1, const scalar_t* __restrict__ g_pos,
                                    const scalar_t* __restrict__ g_neg, acc_t* __restrict__ raw_own,
                                    acc_t* __restrict__ part_both, acc_t* __restrict__ part_act) {
  __shared__ acc_t other_tile[kOther][kUnits];
  __shared__ acc_t gp_tile[kOwnRows][kOther + 1];
  __shared__ acc_t gn_tile[kOwnRows][kOther + 1];
  __shared__ acc_t red_both[kRowGroups][kUnits];
  __shared__ acc_t red_act[kRowGroups][kUnits];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int tid = ty * kUnits + tx;
  const int64_t hidden = prob.hidden;
  const int64_t k = static_cast<int64_t>(blockIdx.x) * kUnits + tx;
  const bool in_k = k < hidden;
  const int64_t own0 = static_cast<int64_t>(blockIdx.y) * kOwnRows;
  const int64_t own_rows = OWN_A ? prob.rows_a : prob.rows_c;
  const int64_t other_rows = OWN_A ? prob.rows_c : prob.rows_a;
  const scalar_t* own = OWN_A ? a : c;
  const scalar_t* other = OWN_A ? c : a;
  const acc_t slope = static_cast<acc_t>(prob.slope);
  const acc_t bias = in_k ? b1[k] : acc_t(0);

  acc_t x[kRowsPerThread], raw[kRowsPerThread];
#pragma unroll
  for (int m = 0; m < kRowsPerThread; ++m) {
    const int64_t row = own0 + ty + kRowGroups * m;
    x[m] = (in_k && row < own_rows) ? static_cast<acc_t>(own[row * hidden + k]) : acc_t(0);
    raw[m] = acc_t(0);
  }
  acc_t both_sum = 0, act_sum = 0;

  for (int64_t o0 = 0; o0 < other_rows; o0 += kOther) {
    for (int e = tid; e < kOther * kUnits; e += kUnits * kRowGroups) {
      const int r = e / kUnits, kk = e % kUnits;
      const int64_t kg = static_cast<int64_t>(blockIdx.x) * kUnits + kk;
      other_tile[r][kk] = (o0 + r < other_rows && kg < hidden) ? static_cast<acc_t>(other[(o0 + r) * hidden + kg])
                                                                 : acc_t(0);
    }
    for (int e = tid; e < kOwnRows * kOther; e += kUnits * kRowGroups) {
      const int r = e / kOther, q = e % kOther;  // own row r, other row q
      const int64_t own_row = own0 + r, other_row = o0 + q;
      acc_t gp = 0, gn = 0;  // pairs outside the problem get g = 0: they add nothing
      if (own_row < own_rows && other_row < other_rows) {
        const int64_t p = OWN_A ? own_row * prob.rows_c + other_row : other_row * prob.rows_c + own_row;
        gp = static_cast<acc_t>(g_pos[p]);
        gn = static_cast<acc_t>(g_neg[p]);
      }
      gp_tile[r][q] = gp;
      gn_tile[r][q] = gn;
    }
    __syncthreads();
#pragma unroll 4
    for (int q = 0; q < kOther; ++q) {
      const acc_t o = other_tile[q][tx];
#pragma unroll
      for (int m = 0; m < kRowsPerThread; ++m) {
        const int r = ty + kRowGroups * m;
        acc_t diff, both, act;
        if constexpr (OWN_A) {
          backward_unit(x[m], o, bias, gp_tile[r][q], gn_tile[r][q], slope, diff, both, act);
          both_sum += both;
          act_sum += act;
        } else {
          backward_unit(o, x[m], bias, gp_tile[r][q], gn_tile[r][q], slope, diff, both, act);
        }
        raw[m] += diff;
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int m = 0; m < kRowsPerThread; ++m) {
    const int64_t row = own0 + ty + kRowGroups * m;
    if (in_k && row < own_rows) raw_own[row * hidden + k] = raw[m];
  }
  if constexpr (OWN_A) {  // this row block's db1 / dw2 partial sums: reduce over the row groups in shared memory
    red_both[ty][tx] = both_sum;
    red_act[ty][tx] = act_sum;
    __syncthreads();
    if (ty == 0 && in_k) {
      acc_t sb = 0, sa = 0;
#pragma unroll
      for (int g = 0; g < kRowGroups; ++g) {
        sb += red_both[g][tx];
        sa += red_act[g][tx];
      }
      part_both[static_cast<int64_t>(blockIdx.y) * hidden + k] = sb;
      part_act[static_cast<int64_t>(blockIdx.y) * hidden + k] = sa;
    }
  }
}

// ---------------------------------------------------------------- backward, index pairs and pair lists
// Thread x owns hidden unit k; a block walks kListPairsPerBlock consecutive pairs. Index pairs own their
// rows (plain stores); list pairs may share rows (atomicAdd into the zero-initialised raw sums). Grid:
// x = chunks of pairs, y = blocks of hidden units.
template <typename scalar_t, typename acc_t>
__global__ void backward_pairs_kernel(Problem prob, const scalar_t* __restrict__ a, const scalar_t* __restrict__ c,
                                      const acc_t* __restrict__ b1, const int64_t* __restrict__ pairs,
                                      const scalar_t* __restrict__ g_pos, const scalar_t* __restrict__ g_neg,
                                      acc_t* __restrict__ raw_a, acc_t* __restrict__ raw_c,
                                      acc_t* __restrict__ part_both, acc_t* __restrict__ part_act) {
  const int64_t hidden = prob.hidden;
  const int64_t k = static_cast<int64_t>(blockIdx.y) * kListUnits + threadIdx.x;
  const int64_t p0 = static_cast<int64_t>(blockIdx.x) * kListPairsPerBlock;
  const int64_t p1 = p0 + kListPairsPerBlock < prob.num_pairs ? p0 + kListPairsPerBlock : prob.num_pairs;
  if (k >= hidden) return;
  const acc_t slope = static_cast<acc_t>(prob.slope);
  const acc_t bias = b1[k];
  acc_t both_sum = 0, act_sum = 0;
  for (int64_t p = p0; p < p1; ++p) {
    int64_t i, j;
    pair_rows(prob.mode, pairs, p, i, j);
    acc_t diff, both, act;
    backward_unit(static_cast<acc_t>(a[i * hidden + k]), static_cast<acc_t>(c[j * hidden + k]), bias,
                  static_cast<acc_t>(g_pos[p]), static_cast<acc_t>(g_neg[p]), slope, diff, both, act);
    if (prob.mode == kList) {
      atomicAdd(raw_a + i * hidden + k, diff);
      atomicAdd(raw_c + j * hidden + k, diff);
    } else {
      raw_a[i * hidden + k] = diff;
      raw_c[j * hidden + k] = diff;
    }
    both_sum += both;
    act_sum += act;
  }
  part_both[static_cast<int64_t>(blockIdx.x) * hidden + k] = both_sum;
  part_act[static_cast<int64_t>(blockIdx.x) * hidden + k] = act_sum;
}

unsigned grid_dim(int64_t n) {
  TORCH_CHECK(n > 0 && n < (int64_t(1) << 31), "pairing: problem too large for one CUDA launch");
  return static_cast<unsigned>(n);
}

}  // namespace

template <typename scalar_t>
void forward_cuda(const Problem& prob, const Pointers& ptr, cudaStream_t stream) {
  using acc_t = at::opmath_type<scalar_t>;
  const auto* a = static_cast<const scalar_t*>(ptr.a);
  const auto* c = static_cast<const scalar_t*>(ptr.c);
  const auto* b1 = static_cast<const acc_t*>(ptr.b1);
  const auto* w2 = static_cast<const acc_t*>(ptr.w2);
  auto* s_pos = static_cast<scalar_t*>(ptr.s_pos);
  auto* s_neg = static_cast<scalar_t*>(ptr.s_neg);
  if (prob.mode == kAll) {
    const dim3 grid(grid_dim(ceil_div(prob.rows_c, kTile)), grid_dim(ceil_div(prob.rows_a, kTile)));
    TORCH_CHECK(grid.y <= 65535, "pairing: too many real rows for one CUDA launch");
    forward_all_kernel<scalar_t, acc_t><<<grid, dim3(kThreads2d, kThreads2d), 0, stream>>>(prob, a, c, b1, w2, s_pos,
                                                                                            s_neg);
  } else {
    const unsigned blocks = grid_dim(ceil_div(prob.num_pairs * kWarp, kPairBlock));
    forward_pairs_kernel<scalar_t, acc_t><<<blocks, kPairBlock, 0, stream>>>(prob, a, c, b1, w2, ptr.pairs, s_pos,
                                                                             s_neg);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename scalar_t>
void backward_cuda(const Problem& prob, const Pointers& ptr, cudaStream_t stream) {
  using acc_t = at::opmath_type<scalar_t>;
  const auto* a = static_cast<const scalar_t*>(ptr.a);
  const auto* c = static_cast<const scalar_t*>(ptr.c);
  const auto* b1 = static_cast<const acc_t*>(ptr.b1);
  const auto* g_pos = static_cast<const scalar_t*>(ptr.g_pos);
  const auto* g_neg = static_cast<const scalar_t*>(ptr.g_neg);
  auto* raw_a = static_cast<acc_t*>(ptr.raw_a);
  auto* raw_c = static_cast<acc_t*>(ptr.raw_c);
  auto* part_both = static_cast<acc_t*>(ptr.part_both);
  auto* part_act = static_cast<acc_t*>(ptr.part_act);
  if (prob.mode == kAll) {
    const dim3 block(kUnits, kRowGroups);
    const unsigned units = grid_dim(ceil_div(prob.hidden, kUnits));
    const dim3 grid_a(units, grid_dim(ceil_div(prob.rows_a, kOwnRows)));
    const dim3 grid_c(units, grid_dim(ceil_div(prob.rows_c, kOwnRows)));
    TORCH_CHECK(grid_a.y <= 65535 && grid_c.y <= 65535, "pairing: too many rows for one CUDA launch");
    backward_all_kernel<scalar_t, acc_t, true>
        <<<grid_a, block, 0, stream>>>(prob, a, c, b1, g_pos, g_neg, raw_a, part_both, part_act);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    backward_all_kernel<scalar_t, acc_t, false>
        <<<grid_c, block, 0, stream>>>(prob, a, c, b1, g_pos, g_neg, raw_c, nullptr, nullptr);
  } else {
    // Pair chunks on x (up to 2^31 - 1 blocks), hidden-unit blocks on y.
    const dim3 grid(grid_dim(cuda_partial_rows(prob.mode, prob.rows_a, prob.num_pairs)),
                    grid_dim(ceil_div(prob.hidden, kListUnits)));
    TORCH_CHECK(grid.y <= 65535, "pairing: hidden size too large for one CUDA launch");
    backward_pairs_kernel<scalar_t, acc_t><<<grid, kListUnits, 0, stream>>>(prob, a, c, b1, ptr.pairs, g_pos, g_neg,
                                                                             raw_a, raw_c, part_both, part_act);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

#define PAIRING_INSTANTIATE(T)                                                 \
  template void forward_cuda<T>(const Problem&, const Pointers&, cudaStream_t); \
  template void backward_cuda<T>(const Problem&, const Pointers&, cudaStream_t);
PAIRING_INSTANTIATE(float)
PAIRING_INSTANTIATE(double)
PAIRING_INSTANTIATE(c10::Half)
PAIRING_INSTANTIATE(c10::BFloat16)
#undef PAIRING_INSTANTIATE

}  // namespace tgan_pairing
