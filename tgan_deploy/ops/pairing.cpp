// Fused pair-head op: input checks, dtype dispatch, the CPU kernel and the Python bindings.
// Built lazily by build.py: CPU-only (this file) or with -DPAIRING_WITH_CUDA together with pairing.cu.
// The per-pair math lives in pairing.h, shared with the CUDA kernels.
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <tuple>
#include <vector>

#include "pairing.h"

#if defined(PAIRING_WITH_CUDA)
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

namespace tgan_pairing {
// Defined in pairing.cu (explicit instantiations for float, double, c10::Half, c10::BFloat16).
template <typename scalar_t>
void forward_cuda(const Problem& prob, const Pointers& ptr, cudaStream_t stream);
template <typename scalar_t>
void backward_cuda(const Problem& prob, const Pointers& ptr, cudaStream_t stream);
}  // namespace tgan_pairing
#endif

namespace tgan_pairing {
namespace {

// ---------------------------------------------------------------- CPU kernel (OpenMP via at::parallel_for)

template <typename T>
void forward_cpu(const Problem& prob, const T* a, const T* c, const T* b1, const T* w2, const int64_t* pairs,
                 T* s_pos, T* s_neg) {
  const int64_t hidden = prob.hidden;
  const T slope = static_cast<T>(prob.slope);
  auto score = [&](int64_t i, int64_t j, int64_t p) {
    const T* ai = a + i * hidden;
    const T* cj = c + j * hidden;
    T pos = 0;
    T neg = 0;
#pragma omp simd reduction(+ : pos, neg)
    for (int64_t k = 0; k < hidden; ++k) forward_unit(ai[k], cj[k], b1[k], w2[k], slope, pos, neg);
    s_pos[p] = pos;
    s_neg[p] = neg;
  };
  if (prob.mode == kAll) {  // parallel over real rows i: each thread writes its own rows of the score matrix
    at::parallel_for(0, prob.rows_a, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i)
        for (int64_t j = 0; j < prob.rows_c; ++j) score(i, j, i * prob.rows_c + j);
    });
  } else {
    const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, hidden));
    at::parallel_for(0, prob.num_pairs, grain, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        int64_t i, j;
        pair_rows(prob.mode, pairs, p, i, j);
        score(i, j, p);
      }
    });
  }
}

// Adds one pair's backward terms to the raw sums of its A row, its C row and the thread's db1 / dw2 sums.
template <typename T>
inline void accumulate_pair(int64_t hidden, const T* ai, const T* cj, const T* b1, T g_pos, T g_neg, T slope,
                            T* raw_ai, T* raw_cj, T* both_sum, T* act_sum) {
#pragma omp simd
  for (int64_t k = 0; k < hidden; ++k) {
    T diff, both, act;
    backward_unit(ai[k], cj[k], b1[k], g_pos, g_neg, slope, diff, both, act);
    raw_ai[k] += diff;
    raw_cj[k] += diff;
    both_sum[k] += both;
    act_sum[k] += act;
  }
}

// raw_a / raw_c: zero-initialised [B_r, H] / [B_f, H] sums of `diff`; db1_sum / dw2_sum: [H] sums of both / act.
// Races are avoided by ownership where pairs own rows, by per-thread partial sums elsewhere.
template <typename T>
void backward_cpu(const Problem& prob, const T* a, const T* c, const T* b1, const int64_t* pairs, const T* g_pos,
                  const T* g_neg, T* raw_a, T* raw_c, T* db1_sum, T* dw2_sum) {
  const int64_t hidden = prob.hidden;
  const T slope = static_cast<T>(prob.slope);
  const int64_t threads = at::get_num_threads();
  // Per-thread [H] sums for db1 and dw2 (and, where pairs share rows, per-thread [B, H] row sums).
  std::vector<T> both(threads * hidden, T(0)), act(threads * hidden, T(0));
  const bool shared_c = prob.mode != kIndex;  // all-pairs / lists: many pairs write the same C row
  const bool shared_a = prob.mode == kList;  // lists: many pairs write the same A row
  std::vector<T> part_c(shared_c ? threads * prob.rows_c * hidden : 0, T(0));
  std::vector<T> part_a(shared_a ? threads * prob.rows_a * hidden : 0, T(0));

  if (prob.mode == kAll) {  // thread owns rows i: dA_i directly; dC_j into the thread's partial rows
    at::parallel_for(0, prob.rows_a, 1, [&](int64_t begin, int64_t end) {
      const int64_t t = at::get_thread_num();
      for (int64_t i = begin; i < end; ++i)
        for (int64_t j = 0; j < prob.rows_c; ++j) {
          const int64_t p = i * prob.rows_c + j;
          accumulate_pair(hidden, a + i * hidden, c + j * hidden, b1, g_pos[p], g_neg[p], slope, raw_a + i * hidden,
                          part_c.data() + (t * prob.rows_c + j) * hidden, both.data() + t * hidden,
                          act.data() + t * hidden);
        }
    });
  } else {
    const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, hidden));
    at::parallel_for(0, prob.num_pairs, grain, [&](int64_t begin, int64_t end) {
      const int64_t t = at::get_thread_num();
      for (int64_t p = begin; p < end; ++p) {
        int64_t i, j;
        pair_rows(prob.mode, pairs, p, i, j);
        T* ra = shared_a ? part_a.data() + (t * prob.rows_a + i) * hidden : raw_a + i * hidden;
        T* rc = shared_c ? part_c.data() + (t * prob.rows_c + j) * hidden : raw_c + j * hidden;
        accumulate_pair(hidden, a + i * hidden, c + j * hidden, b1, g_pos[p], g_neg[p], slope, ra, rc,
                        both.data() + t * hidden, act.data() + t * hidden);
      }
    });
  }
  // Reduce the per-thread partial sums (parallel over rows, fixed thread order: deterministic).
  auto reduce_rows = [&](const std::vector<T>& part, T* out, int64_t rows) {
    at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
      for (int64_t t = 0; t < threads; ++t)
        for (int64_t r = begin; r < end; ++r) {
          const T* src = part.data() + (t * rows + r) * hidden;
          T* dst = out + r * hidden;
#pragma omp simd
          for (int64_t k = 0; k < hidden; ++k) dst[k] += src[k];
        }
    });
  };
  if (shared_c) reduce_rows(part_c, raw_c, prob.rows_c);
  if (shared_a) reduce_rows(part_a, raw_a, prob.rows_a);
  for (int64_t t = 0; t < threads; ++t)
    for (int64_t k = 0; k < hidden; ++k) {
      db1_sum[k] += both[t * hidden + k];
      dw2_sum[k] += act[t * hidden + k];
    }
}

// ---------------------------------------------------------------- checks shared by both devices

Problem check_inputs(const at::Tensor& a, const at::Tensor& c, const at::Tensor& b1, const at::Tensor& w2,
                     const at::Tensor& pairs, int64_t mode, double slope) {
  TORCH_CHECK(a.dim() == 2 && c.dim() == 2 && a.size(1) == c.size(1), "pairing: A and C must be [B, H] with the same H");
  TORCH_CHECK(a.scalar_type() == c.scalar_type(), "pairing: A and C must have the same dtype");
  TORCH_CHECK(b1.dim() == 1 && w2.dim() == 1 && b1.size(0) == a.size(1) && w2.size(0) == a.size(1),
              "pairing: b1 and w2 must be [H]");
  TORCH_CHECK(c.device() == a.device() && b1.device() == a.device() && w2.device() == a.device(),
              "pairing: all tensors must be on one device");
  TORCH_CHECK(mode == kIndex || mode == kAll || mode == kList, "pairing: mode must be 0 (index), 1 (all) or 2 (list)");
  Problem prob{mode, a.size(0), c.size(0), a.size(1), 0, slope};
  if (mode == kIndex) {
    TORCH_CHECK(a.size(0) == c.size(0), "pairing: index pairing needs B_r == B_f");
    prob.num_pairs = a.size(0);
  } else if (mode == kAll) {
    prob.num_pairs = a.size(0) * c.size(0);
  } else {
    TORCH_CHECK(pairs.dim() == 2 && pairs.size(1) == 2 && pairs.scalar_type() == at::kLong,
                "pairing: a pair list must be int64 [P, 2]");
    TORCH_CHECK(pairs.device() == a.device(), "pairing: the pair list must be on the device of A");
    prob.num_pairs = pairs.size(0);
  }
  return prob;
}

// ---------------------------------------------------------------- entry points

std::tuple<at::Tensor, at::Tensor> pair_forward(const at::Tensor& a_in, const at::Tensor& c_in, const at::Tensor& b1_in,
                                                const at::Tensor& w2_in, const at::Tensor& pairs_in, int64_t mode,
                                                double slope) {
  const Problem prob = check_inputs(a_in, c_in, b1_in, w2_in, pairs_in, mode, slope);
  const at::Tensor a = a_in.contiguous(), c = c_in.contiguous();
  const at::Tensor pairs = mode == kList ? pairs_in.contiguous() : pairs_in;
  at::Tensor s_pos = at::empty({prob.num_pairs}, a.options());
  at::Tensor s_neg = at::empty({prob.num_pairs}, a.options());
  if (prob.num_pairs == 0) return {s_pos, s_neg};
  if (a.is_cuda()) {
#if defined(PAIRING_WITH_CUDA)
    const c10::cuda::CUDAGuard guard(a.device());
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, a.scalar_type(), "pair_forward_cuda", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const at::Tensor b1 = b1_in.to(c10::CppTypeToScalarType<acc_t>::value).contiguous();
      const at::Tensor w2 = w2_in.to(c10::CppTypeToScalarType<acc_t>::value).contiguous();
      Pointers ptr;
      ptr.a = a.data_ptr();
      ptr.c = c.data_ptr();
      ptr.b1 = b1.data_ptr();
      ptr.w2 = w2.data_ptr();
      ptr.pairs = mode == kList ? pairs.data_ptr<int64_t>() : nullptr;
      ptr.s_pos = s_pos.data_ptr();
      ptr.s_neg = s_neg.data_ptr();
      forward_cuda<scalar_t>(prob, ptr, c10::cuda::getCurrentCUDAStream().stream());
    });
    return {s_pos, s_neg};
#else
    TORCH_CHECK(false, "pairing: this build of the extension has no CUDA kernels (CPU-only build)");
#endif
  }
  TORCH_CHECK(a.device().is_cpu(), "pairing: tensors must be on the CPU or a CUDA device");
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "pair_forward_cpu", [&] {
    const at::Tensor b1 = b1_in.to(a.scalar_type()).contiguous();
    const at::Tensor w2 = w2_in.to(a.scalar_type()).contiguous();
    forward_cpu<scalar_t>(prob, a.data_ptr<scalar_t>(), c.data_ptr<scalar_t>(), b1.data_ptr<scalar_t>(),
                          w2.data_ptr<scalar_t>(), mode == kList ? pairs.data_ptr<int64_t>() : nullptr,
                          s_pos.data_ptr<scalar_t>(), s_neg.data_ptr<scalar_t>());
  });
  return {s_pos, s_neg};
}

// Returns (dA, dC, db1, dw2) with the dtypes of (A, C, b1, w2).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> pair_backward(
    const at::Tensor& g_pos_in, const at::Tensor& g_neg_in, const at::Tensor& a_in, const at::Tensor& c_in,
    const at::Tensor& b1_in, const at::Tensor& w2_in, const at::Tensor& pairs_in, int64_t mode, double slope) {
  const Problem prob = check_inputs(a_in, c_in, b1_in, w2_in, pairs_in, mode, slope);
  TORCH_CHECK(g_pos_in.numel() == prob.num_pairs && g_neg_in.numel() == prob.num_pairs,
              "pairing: gradients must have one value per pair");
  const at::Tensor a = a_in.contiguous(), c = c_in.contiguous();
  const at::Tensor g_pos = g_pos_in.to(a.scalar_type()).contiguous(), g_neg = g_neg_in.to(a.scalar_type()).contiguous();
  const at::Tensor pairs = mode == kList ? pairs_in.contiguous() : pairs_in;
  // Accumulation dtype: float for half / bfloat16 / float, double for double.
  const at::ScalarType acc = a.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const at::TensorOptions acc_opts = a.options().dtype(acc);
  const at::Tensor b1 = b1_in.to(acc).contiguous();
  const at::Tensor w2 = w2_in.to(acc).contiguous();
  at::Tensor raw_a = at::zeros({prob.rows_a, prob.hidden}, acc_opts);
  at::Tensor raw_c = at::zeros({prob.rows_c, prob.hidden}, acc_opts);
  at::Tensor db1, dw2;
  if (prob.num_pairs > 0 && a.is_cuda()) {
#if defined(PAIRING_WITH_CUDA)
    const c10::cuda::CUDAGuard guard(a.device());
    const int64_t rows = cuda_partial_rows(mode, prob.rows_a, prob.num_pairs);
    at::Tensor part_both = at::empty({rows, prob.hidden}, acc_opts);
    at::Tensor part_act = at::empty({rows, prob.hidden}, acc_opts);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, a.scalar_type(), "pair_backward_cuda", [&] {
      Pointers ptr;
      ptr.a = a.data_ptr();
      ptr.c = c.data_ptr();
      ptr.b1 = b1.data_ptr();
      ptr.w2 = w2.data_ptr();
      ptr.pairs = mode == kList ? pairs.data_ptr<int64_t>() : nullptr;
      ptr.g_pos = g_pos.data_ptr();
      ptr.g_neg = g_neg.data_ptr();
      ptr.raw_a = raw_a.data_ptr();
      ptr.raw_c = raw_c.data_ptr();
      ptr.part_both = part_both.data_ptr();
      ptr.part_act = part_act.data_ptr();
      backward_cuda<scalar_t>(prob, ptr, c10::cuda::getCurrentCUDAStream().stream());
    });
    db1 = part_both.sum(0);
    dw2 = part_act.sum(0);
#else
    TORCH_CHECK(false, "pairing: this build of the extension has no CUDA kernels (CPU-only build)");
#endif
  } else {
    TORCH_CHECK(a.device().is_cpu(), "pairing: tensors must be on the CPU or a CUDA device");
    db1 = at::zeros({prob.hidden}, acc_opts);
    dw2 = at::zeros({prob.hidden}, acc_opts);
    if (prob.num_pairs > 0) {
      AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "pair_backward_cpu", [&] {
        backward_cpu<scalar_t>(prob, a.data_ptr<scalar_t>(), c.data_ptr<scalar_t>(), b1.data_ptr<scalar_t>(),
                               mode == kList ? pairs.data_ptr<int64_t>() : nullptr, g_pos.data_ptr<scalar_t>(),
                               g_neg.data_ptr<scalar_t>(), raw_a.data_ptr<scalar_t>(), raw_c.data_ptr<scalar_t>(),
                               db1.data_ptr<scalar_t>(), dw2.data_ptr<scalar_t>());
      });
    }
  }
  // Apply the factored-out w2 (pairing.h, backward_unit): dA = w2 * raw_a, dC = -w2 * raw_c, db1 = w2 * sum both.
  at::Tensor da = (raw_a * w2).to(a_in.scalar_type());
  at::Tensor dc = (raw_c * w2).neg_().to(c_in.scalar_type());
  return {da, dc, (db1 * w2).to(b1_in.scalar_type()), dw2.to(w2_in.scalar_type())};
}

}  // namespace
}  // namespace tgan_pairing

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "tgan_deploy fused pair-head op (see tgan_deploy/ops/pairing.py)";
  m.def("forward", &tgan_pairing::pair_forward, "(s_pos, s_neg) per pair", py::arg("a"), py::arg("c"), py::arg("b1"),
        py::arg("w2"), py::arg("pairs"), py::arg("mode"), py::arg("negative_slope"));
  m.def("backward", &tgan_pairing::pair_backward, "(dA, dC, db1, dw2) from (g_pos, g_neg)", py::arg("g_pos"),
        py::arg("g_neg"), py::arg("a"), py::arg("c"), py::arg("b1"), py::arg("w2"), py::arg("pairs"), py::arg("mode"),
        py::arg("negative_slope"));
#if defined(PAIRING_WITH_CUDA)
  m.attr("with_cuda") = true;
#else
  m.attr("with_cuda") = false;
#endif
}
