// Row-wise stable sort and top-k of (N, C) with int32 indices; NaN sorts as the largest value.
// top-k uses partial_sort on an index array, so k << C costs O(C log k).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>
#include "kernels.h"

namespace temper {

void sort_rows_f32(const float* x, float* values, int32_t* indices, int64_t N, int64_t C, int64_t k, int desc) {
#pragma omp parallel for if (N > 1 && N * C > (1 << 14)) schedule(dynamic)
  for (int64_t n = 0; n < N; n++) {
    const float* row = x + n * C;
    std::vector<int32_t> order(C);
    std::iota(order.begin(), order.end(), 0);
    // Ties break by index so the order is the same as a stable sort.
    auto less = [&](int32_t a, int32_t b) {
      float va = row[a], vb = row[b];
      bool na = va != va, nb = vb != vb;
      if (na || nb) {
        if (na && nb) return a < b;
        return desc ? na : nb;  // NaN is the largest
      }
      if (va != vb) return desc ? va > vb : va < vb;
      return a < b;
    };
    if (k < C) std::partial_sort(order.begin(), order.begin() + k, order.end(), less);
    else std::sort(order.begin(), order.end(), less);
    for (int64_t j = 0; j < k; j++) {
      values[n * k + j] = row[order[j]];
      indices[n * k + j] = order[j];
    }
  }
}

}  // namespace temper
