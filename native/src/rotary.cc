// Rotary position embedding in the HF rotate_half convention on x (B, T, H, D), forward or inverse.
// cos/sin come from libm cosf/sinf of the f32 angle, exactly as HF builds them; this file does not
// cache tables across calls, interleave pairs (GPT-J style), or scale the frequencies itself.
#include <cmath>
#include <vector>
#include "kernels.h"
#include "simd.h"

namespace temper {

// Each (b, t) row builds its (D/2) cos and sin table once and applies it to all H heads.
// inverse=1 negates sin: the transpose of the rotation, i.e. the backward of the forward.
// out may alias x exactly: element pair (i, i + D/2) is read in full before either is written.
TEMPER_CLONES void rotary_f32(const float* x, const int32_t* positions, const float* inv_freq, float* out, int64_t B,
                              int64_t T, int64_t H, int64_t D, float scaling, int inverse) {
  const int64_t half = D / 2, rows = B * T, row_len = H * D;
#pragma omp parallel if (rows * row_len > (1 << 15))
  {
    std::vector<float> table(2 * half);  // per-thread: cos (D/2) then sin (D/2) of the current row
    float* cs = table.data();
    float* sn = cs + half;
#pragma omp for schedule(static)
    for (int64_t bt = 0; bt < rows; bt++) {
      const float pos = (float)positions[bt];
      for (int64_t i = 0; i < half; i++) {
        const float a = pos * inv_freq[i];  // f32 angle, like HF's inv_freq @ position_ids
        cs[i] = std::cos(a) * scaling;
        const float s = std::sin(a) * scaling;
        sn[i] = inverse ? -s : s;
      }
      const float* xr = x + bt * row_len;
      float* yr = out + bt * row_len;
      for (int64_t h = 0; h < H; h++) {
        const float* xh = xr + h * D;
        float* yh = yr + h * D;
#pragma omp simd
        for (int64_t i = 0; i < half; i++) {
          const float x1 = xh[i], x2 = xh[i + half];
          yh[i] = x1 * cs[i] - x2 * sn[i];
          yh[i + half] = x2 * cs[i] + x1 * sn[i];
        }
      }
    }
  }
}

}  // namespace temper
