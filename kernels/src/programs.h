// kernels/src/programs.h: the per-lane bodies of the kernels in gpu_uring_kernels.cu, written once for every
// target. The CUDA/HIP kernels call them with their global thread index; the host C++ target
// (kernels/host/host_target.cpp) calls them with a lane index from its threads, so the Rust tests run exactly
// this code.
//
//   programs/probes.h         the §7 format probe, the print program's line, ticket aggregation, a bounded wait
//   programs/ring_programs.h  the built-in ring programs: nop, print, write, read, lane_stress, edit_buffer,
//                             layout, exact (and `lane_report`, what a lane reports)
//   programs/hostile.h        the hostile-input table's ring rows
//   programs/baselines.h      the RPC print client and the memory-placement probe
//   programs/pump_programs.h  the io_queue's megakernel stream kernel
//   programs/pump_probe.h     the io_queue's test program (layout echo, exactly-once READs, validation errors,
//                             withdrawal, WRITE then FENCE, the hostile table's re-published slot)
#ifndef GPU_URING_KERNELS_PROGRAMS_H
#define GPU_URING_KERNELS_PROGRAMS_H

#include "programs/probes.h"
#include "programs/ring_programs.h"
#include "programs/hostile.h"
#include "programs/baselines.h"
#include "programs/pump_programs.h"
#include "programs/pump_probe.h"

#endif // GPU_URING_KERNELS_PROGRAMS_H
