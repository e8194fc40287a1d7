// Device control the CUDA build adds to the Node-API surface (addon.cc, TEMPER_CUDA).
#pragma once
#include <string>

namespace temper::cuda {
int device_count();               // 0 when there is no device or driver
void set_device(int device);      // the device this thread's calls run on
void synchronize();               // waits for the current device's stream
std::string device_name();        // "NVIDIA H100 80GB HBM3 (sm_90, 81008 MiB)"
void set_allow_tf32(bool on);     // f32 GEMMs on tensor cores (tf32 inputs, f32 accumulate)
bool allow_tf32();                // off unless set, or TEMPER_CUDA_TF32=1
}  // namespace temper::cuda
