// stddef.h for NVRTC only (it ships no C library headers). `offsetof` must be a constant expression for
// the ABI header's static_asserts; NVRTC's front end spells that `__INTADDR__` (it has no
// __builtin_offsetof).
#ifndef GPU_URING_NVRTC_STDDEF_H
#define GPU_URING_NVRTC_STDDEF_H
typedef decltype(sizeof(0)) size_t;
typedef decltype((char *)0 - (char *)0) ptrdiff_t;
#undef offsetof
#define offsetof(type, member) ((size_t)__INTADDR__(&(((type *)0)->member)))
#endif
