// bf16 <-> f32 on the host: round to nearest even; a NaN stays NaN (quiet, with its sign and top
// payload bits). The one definition every CPU kernel and the CUDA kernels' from_f32 follow.
#pragma once
#include <cstdint>
#include <cstring>

namespace temper {

inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
  return (uint16_t)(u >> 16);
}

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace temper
