// stdint.h for NVRTC only (it ships no C library headers): the LP64 types of the Linux targets NVRTC
// compiles for, spelled as glibc spells them so host and device agree on every overload.
#ifndef GPU_URING_NVRTC_STDINT_H
#define GPU_URING_NVRTC_STDINT_H
typedef signed char int8_t;
typedef short int16_t;
typedef int int32_t;
typedef long int64_t;
typedef unsigned char uint8_t;
typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
typedef unsigned long uint64_t;
typedef long intptr_t;
typedef unsigned long uintptr_t;
static_assert(sizeof(int64_t) == 8 && sizeof(uintptr_t) == sizeof(void *), "NVRTC target is not LP64");
#endif
