// gpu_uring/config.h: which of the three targets this translation unit compiles for, and the function
// qualifiers every header of the library uses. One header set serves CUDA (NVRTC or nvcc), HIP (hipcc) and
// host C++ (the CPU target the Rust tests call through `extern "C"`).
#ifndef GPU_URING_CONFIG_H
#define GPU_URING_CONFIG_H

#if defined(__HIP__) || defined(__HIPCC__)
#define GU_HIP 1
#elif defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define GU_CUDA 1
#else
#define GU_HOST 1
#endif

#if defined(GU_HIP) && !defined(__HIPCC_RTC__)
#include <hip/hip_runtime.h>
#endif

// Device code of HIP and CUDA reaches the device half of each function; host C++ compiles the host half.
// GU_DEVICE_CODE is set only while compiling for a GPU.
#if defined(GU_CUDA) && defined(__CUDA_ARCH__)
#define GU_DEVICE_CODE 1
#elif defined(GU_HIP) && defined(__HIP_DEVICE_COMPILE__)
#define GU_DEVICE_CODE 1
#endif

#if defined(GU_CUDA) || defined(GU_HIP)
#define GU_FN __device__ __forceinline__
#define GU_DECL __device__
// The protocol's larger steps (reaping, the doorbell, reserving) are called from many places: one copy each
// keeps the kernels small. The attribute is spelled out: under hipcc 5.2 the `__noinline__` macro reaches
// clang as nothing, and everything would be inlined into one function per call graph.
#define GU_OUTLINE __device__ __attribute__((noinline))
#else
#define GU_FN inline
#define GU_DECL
#define GU_OUTLINE inline
#endif

// NVRTC has no C library headers: kernels/include/gpu_uring/nvrtc/ provides the two the ABI header needs
// (build.sh puts it on NVRTC's include path only).
#include <stddef.h>
#include <stdint.h>

#if defined(GU_HOST)
#include <atomic>
#include <cstring>
#include <thread>
#endif

#endif // GPU_URING_CONFIG_H
