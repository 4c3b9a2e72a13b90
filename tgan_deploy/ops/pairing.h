// Per-pair math of the fused pair-head op, shared by the CPU kernel (pairing.cpp) and the CUDA kernels
// (pairing.cu) so both compute every pair with the same code. See ../../docs/pairing.md and
// ../../docs/method.md §4: for a pair p = (i, j) and hidden unit k,
//   h+ = A_ik - C_jk + b1_k,  h- = C_jk - A_ik + b1_k,  s+_p = sum_k w2_k phi(h+),  s-_p = sum_k w2_k phi(h-).
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define PAIRING_HD __host__ __device__ __forceinline__
#else
#define PAIRING_HD inline
#endif

namespace tgan_pairing {

// How pairs are given: index (i with i), all (every (i, j), p = i * rows_c + j), or an int64 [P, 2] list.
enum Mode : int64_t { kIndex = 0, kAll = 1, kList = 2 };

// LeakyReLU and its derivative as selects (branch-free, so the CPU loops vectorise). phi'(0) = slope,
// as in torch.nn.functional.leaky_relu's backward.
template <typename T>
PAIRING_HD T leaky_grad(T h, T slope) {
  return h > T(0) ? T(1) : slope;
}

// Forward, one hidden unit of one pair: adds w2 phi(h+) and w2 phi(h-) to the pair's two scores.
template <typename T>
PAIRING_HD void forward_unit(T a, T c, T b1, T w2, T slope, T& s_pos, T& s_neg) {
  const T d = a - c;
  const T h_pos = d + b1;
  const T h_neg = b1 - d;
  s_pos += w2 * h_pos * leaky_grad(h_pos, slope);  // phi(h) = h phi'(h) for LeakyReLU
  s_neg += w2 * h_neg * leaky_grad(h_neg, slope);
}

// Backward, one hidden unit of one pair, given g+ = dL/ds+_p and g- = dL/ds-_p. w2 is factored out of the
// sums over pairs and applied once per output element after the reduction:
//   diff = g+ phi'(h+) - g- phi'(h-)   dA_i = w2 * sum_{p owns i} diff,   dC_j = -w2 * sum_{p owns j} diff
//   both = g+ phi'(h+) + g- phi'(h-)   db1  = w2 * sum_p both
//   act  = g+ phi(h+)  + g- phi(h-)    dw2  = sum_p act
template <typename T>
PAIRING_HD void backward_unit(T a, T c, T b1, T g_pos, T g_neg, T slope, T& diff, T& both, T& act) {
  const T d = a - c;
  const T h_pos = d + b1;
  const T h_neg = b1 - d;
  const T u_pos = g_pos * leaky_grad(h_pos, slope);
  const T u_neg = g_neg * leaky_grad(h_neg, slope);
  diff = u_pos - u_neg;
  both = u_pos + u_neg;
  act = u_pos * h_pos + u_neg * h_neg;
}

// Which real / fake row pair p uses.
PAIRING_HD void pair_rows(int64_t mode, const int64_t* pairs, int64_t p, int64_t& i, int64_t& j) {
  if (mode == kList) {
    i = pairs[2 * p];
    j = pairs[2 * p + 1];
  } else {
    i = p;
    j = p;
  }
}

// ---- Launch description shared by pairing.cpp (checks, allocation, dispatch) and pairing.cu (kernels) ----

// All-pairs backward on the GPU: a block owns kOwnRows rows x kUnits hidden units; pair-list backward: a
// block owns kListUnits hidden units of a chunk of pairs. Each block writes one row of db1 / dw2 partial
// sums, which the host sums (deterministic, no float atomics for those two).
constexpr int64_t kOwnRows = 32;
constexpr int64_t kUnits = 32;
constexpr int64_t kListUnits = 128;
constexpr int64_t kListPairsPerBlock = 64;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Rows of the [rows, H] db1 / dw2 partial-sum workspaces the CUDA backward writes.
inline int64_t cuda_partial_rows(int64_t mode, int64_t rows_a, int64_t num_pairs) {
  if (mode == kAll) return ceil_div(rows_a, kOwnRows);
  return ceil_div(num_pairs, kListPairsPerBlock);
}

struct Problem {
  int64_t mode;
  int64_t rows_a;  // B_r
  int64_t rows_c;  // B_f
  int64_t hidden;  // H
  int64_t num_pairs;  // P
  double slope;
};

// Raw pointers of one call. a, c, g_pos, g_neg, s_pos, s_neg have the input dtype (scalar_t); b1, w2 and
// every backward output / workspace have the accumulation dtype (float for half/bfloat16/float, double).
struct Pointers {
  const void* a = nullptr;
  const void* c = nullptr;
  const void* b1 = nullptr;
  const void* w2 = nullptr;
  const int64_t* pairs = nullptr;  // [P, 2] for kList, else unused
  const void* g_pos = nullptr;
  const void* g_neg = nullptr;
  void* s_pos = nullptr;
  void* s_neg = nullptr;
  void* raw_a = nullptr;  // [B_r, H] sum of diff (zero-initialised for the pair-list path)
  void* raw_c = nullptr;  // [B_f, H] sum of diff
  void* part_both = nullptr;  // [cuda_partial_rows, H]
  void* part_act = nullptr;  // [cuda_partial_rows, H]
};

}  // namespace tgan_pairing
