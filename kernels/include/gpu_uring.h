// gpu_uring.h: the gpu-uring device library for CUDA, HIP and host C++ (kernels/README.md).
// The shared memory layout comes from the generated ABI header (abi/gpu_uring_abi.h): never retype an offset.
#ifndef GPU_URING_H
#define GPU_URING_H

#include "gpu_uring/config.h"

#include "../../abi/gpu_uring_abi.h"

#include "gpu_uring/atomic.h"
#include "gpu_uring/backoff.h"
#include "gpu_uring/format.h"
#include "gpu_uring/group.h"
#include "gpu_uring/lane.h"
#include "gpu_uring/print.h"
#include "gpu_uring/queue.h"
#include "gpu_uring/queue_group.h"
#include "gpu_uring/ring.h"
#include "gpu_uring/subgroup.h"

#endif // GPU_URING_H
