// The CUDA/HIP kernels of the gpu-uring device library, compiled by kernels/build.sh into PTX (compute_75),
// an sm_90 cubin and AMD code objects. Every body lives in programs.h and is shared with the host C++ target.
#include "programs.h"

namespace {
GU_FN uint32_t global_id() { return blockIdx.x * blockDim.x + threadIdx.x; }
} // namespace

// Ring kernels take (arena, device-local block, RingLayout by value, the program's arguments…, budget, status,
// report): one lane per thread below layout.lanes (below `lanes` where the program takes it), `status[lane]`
// the lane's final GU_STATUS_* (or programs::program_refused), `report[lane]` its programs::lane_report (the
// backend's LaneReport: done, failed, checksum, bytes). Every bounded wait polls at most `budget` times.

// One lane per case of the §7 format probe (programs.h: format_case).
extern "C" __global__ void gu_format_probe(uint8_t *records, uint32_t count) {
    uint32_t id = global_id();
    if (id < count) {
        gu::programs::format_case(records, id);
    }
}

// Each of `lanes` lanes formats its `lines` print-program lines into `out` (`line_bytes` per line, lane-major)
// with the library's formatter: the device side of the comparison with the Rust formatter and with
// gu_vendor_printf.
extern "C" __global__ void gu_print_lines(char *out, uint32_t lanes, uint32_t lines, uint32_t line_bytes) {
    uint32_t lane = global_id();
    if (lane >= lanes) {
        return;
    }
    for (uint32_t seq = 0; seq < lines; seq++) {
        gu::line l(out + ((uint64_t)lane * lines + seq) * line_bytes, line_bytes);
        gu::programs::print_line(l, lane, seq);
    }
}

// The same lines through the vendor's printf, for the latency/throughput comparison. Its float digits follow
// printf's rules (exact decimal expansion), which can differ from §7 in the last digit on ties.
extern "C" __global__ void gu_vendor_printf(uint32_t lanes, uint32_t lines) {
    uint32_t lane = global_id();
    if (lane >= lanes) {
        return;
    }
    for (uint32_t seq = 0; seq < lines; seq++) {
        unsigned long long x = (unsigned long long)lane << 32 | seq;
        double v = (double)((float)seq / 8.0f - (float)lane);
        printf("lane=%u seq=%u d=%lld x=%llx v=%.3f gpu-uring\n", lane, seq, (long long)seq - (long long)lane, x,
               v);
    }
}

// Ticket aggregation through the portability layer (programs.h: ticket_lane).
extern "C" __global__ void gu_ticket_probe(uint32_t *local, uint32_t *shared, uint32_t n) {
    uint32_t lane = global_id();
    if (lane < n) {
        gu::programs::ticket_lane(local, shared, n, lane);
    }
}

// Lane 0 waits (bounded, with backoff) for a host-shared flag (programs.h: wait_flag).
extern "C" __global__ void gu_wait_probe(uint32_t *flag, uint32_t budget, uint32_t *polls_out) {
    if (global_id() == 0) {
        gu::programs::wait_flag(flag, budget, polls_out);
    }
}

// The nop program (programs.h: nop_lane): lane `global id` < layout.lanes makes `count` NOPs in completion mode
// `mode` through the ring; `status[lane]` its final status, `ready[lane]` how many completed (waited) or were
// submitted (fire-and-forget, skip-success).
extern "C" __global__ void gu_nop(uint8_t *arena, uint8_t *local, gpu_uring::RingLayout layout, uint32_t mode,
                                  uint32_t count, uint32_t budget, uint32_t *status, uint32_t *ready) {
    uint32_t lane = global_id();
    if (lane < layout.lanes) {
        status[lane] = gu::programs::nop_lane(arena, local, &layout, lane, mode, count, budget, &ready[lane]);
    }
}

// The print program (programs.h: print_lane): each lane prints its `lines` lines through the ring (§7 line
// mode: offset or stream, as the host set the target); `status[lane]` its final status, `report[lane]`: done =
// the lines printed READY, failed = the others (a lane that stops half-way, or lines too long for the ring).
extern "C" __global__ void gu_print(uint8_t *arena, uint8_t *local, gpu_uring::RingLayout layout, uint32_t lines,
                                    uint32_t budget, uint32_t *status, gu::programs::lane_report *report) {
    uint32_t lane = global_id();
    if (lane < layout.lanes) {
        uint32_t printed = 0;
        status[lane] = gu::programs::print_lane(arena, local, &layout, lane, lines, budget, &printed);
        report[lane] = gu::programs::lane_report{printed, lines - printed, 0, 0};
    }
}

// The format probe on a ring (`Programs::format_probe`): the records at the arena's fixed region (fixed + 128 i,
// as the backend writes them), one lane per case below `count`.
extern "C" __global__ void gu_format(uint8_t *arena, uint8_t *local, gpu_uring::RingLayout layout, uint32_t count) {
    (void)local;
    uint32_t id = global_id();
    if (id < count && (uint64_t)(id + 1ull) * gu::programs::format_record_bytes <= layout.fixed_size) {
        gu::programs::format_case(arena + layout.fixed, id);
    }
}

// The write program (`Program::Write`; programs.h: write_lane): `ops` fire-and-forget writes of `len` bytes of
// the lane's first staging line to registered file `file`.
extern "C" __global__ void gu_write(uint8_t *arena, uint8_t *local, gpu_uring::RingLayout layout, uint32_t file,
                                    uint32_t ops, uint32_t len, uint32_t budget, uint32_t *status,
                                    gu::programs::lane_report *report) {
    uint32_t lane = global_id();
    if (lane < layout.lanes) {
        status[lane] = gu::programs::write_lane(arena, local, &layout, lane, file, ops, len, budget, &report[lane]);
    }
}

// The read program (`Program::Read`; programs.h: read_lane): `lanes` lanes read [0, total) of registered file
// `file` in `chunk`-byte pieces, `depth` reads in flight each, and checksum them.
extern "C" __global__ void gu_read(uint8_t *arena, uint8_t *local, gpu_uring::RingLayout layout, uint32_t lanes,
                                   uint32_t file, uint32_t chunk, uint64_t total, uint32_t depth, uint32_t budget,
                                   uint32_t *status, gu::programs::lane_report *report) {
    uint32_t lane = global_id();
    if (lane < lanes && lane < layout.lanes) {
        status[lane] = gu::programs::read_lane(arena, local, &layout, lane, lanes, file, chunk, total, depth, budget,
                                               &report[lane]);
    }
}

// The lane_stress program (`Program::LaneStress`; programs.h: lane_stress_lane).
extern "C" __global__ void gu_lane_stress(uint8_t *arena, uint8_t *local, gpu_uring::RingLayout layout, uint32_t ops,
                                          uint32_t budget, uint32_t *status, gu::programs::lane_report *report) {
    uint32_t lane = global_id();
    if (lane < layout.lanes) {
        status[lane] = gu::programs::lane_stress_lane(arena, local, &layout, lane, ops, budget, &report[lane]);
    }
}

// The edit_buffer program (`Program::EditBuffer`; programs.h: edit_buffer_lane): needs a host thread
// acknowledging (`backend::edit_buffer_host`) while it runs.
extern "C" __global__ void gu_edit_buffer(uint8_t *arena, uint8_t *local, gpu_uring::RingLayout layout,
                                          uint32_t steps, uint32_t budget, uint32_t *status,
                                          gu::programs::lane_report *report) {
    (void)local;
    uint32_t lane = global_id();
    if (lane < layout.lanes) {
        status[lane] = gu::programs::edit_buffer_lane(arena, &layout, lane, steps, budget, &report[lane]);
    }
}

// The layout program (`Program::Layout`; programs.h: layout_lane).
extern "C" __global__ void gu_layout(uint8_t *arena, uint8_t *local, gpu_uring::RingLayout layout, uint32_t *status,
                                     gu::programs::lane_report *report) {
    uint32_t lane = global_id();
    if (lane < layout.lanes) {
        status[lane] = gu::programs::layout_lane(arena, local, &layout, lane, &report[lane]);
    }
}

// The exact program (`Program::Exact`; programs.h: exact_lane): lane 0 publishes `count` SQE images as given.
extern "C" __global__ void gu_exact(uint8_t *arena, uint8_t *local, gpu_uring::RingLayout layout, uint32_t count,
                                    uint32_t budget, uint32_t *status, gu::programs::lane_report *report) {
    uint32_t lane = global_id();
    if (lane < layout.lanes) {
        status[lane] = gu::programs::exact_lane(arena, local, &layout, lane, count, budget, &report[lane]);
    }
}

// The hostile program (`Program::Hostile`; programs.h: hostile_lane): lane 0 runs row `which` (`HostileCase`
// code); report = {1, 0, status, result as u32}.
extern "C" __global__ void gu_hostile(uint8_t *arena, uint8_t *local, gpu_uring::RingLayout layout, uint32_t which,
                                      uint32_t budget, uint32_t *status, gu::programs::lane_report *report) {
    uint32_t lane = global_id();
    if (lane < layout.lanes) {
        status[lane] = gu::programs::hostile_lane(arena, local, &layout, lane, which, budget, &report[lane]);
    }
}

// The RPC print client (programs.h: rpc_print_lane): `lanes` lanes, mailboxes in host memory (experiments/src/
// rpc.rs), at most `budget` loop iterations per launch; relaunch until every mailbox's `finished` is set.
extern "C" __global__ void gu_rpc_print(uint8_t *mailboxes, uint32_t lanes, uint32_t lines, uint32_t budget,
                                        uint32_t *status) {
    uint32_t lane = global_id();
    if (lane < lanes) {
        status[lane] = gu::programs::rpc_print_lane(mailboxes, lanes, lines, budget, lane);
    }
}

// The memory-placement probe (programs.h: memory_placement_lane): the shader's push constants as arguments.
extern "C" __global__ void gu_memory_placement(uint32_t *buf, uint32_t mode, uint32_t n, uint32_t mask,
                                               uint32_t seed) {
    gu::programs::memory_placement_lane(buf, mode, n, mask, seed, global_id(), gridDim.x * blockDim.x);
}

// The megakernel stream kernel on the io_queue (programs.h: stream_lane): `lanes` lanes stream pump file `file`
// through double buffers in pump region `region` and checksum it. Takes the pump arena, its device-local block
// (the slot ownership words) and the PumpLayout by value; `report[lane]`: done = chunks, failed, checksum = the
// sum of the chunks' checksums, bytes. `status[lane]`: GU_QUEUE_STATUS_* (or programs::program_refused).
extern "C" __global__ void gu_pump_stream(uint8_t *arena, uint8_t *local, gpu_uring::PumpLayout layout, uint32_t lanes,
                                          uint32_t file, uint32_t region, uint32_t chunk, uint64_t total,
                                          uint32_t budget, uint32_t *status, gu::programs::lane_report *report) {
    uint32_t lane = global_id();
    if (lane < lanes) {
        status[lane] = gu::programs::stream_lane(arena, local, &layout, lane, lanes, file, region, chunk, total, budget,
                                                 &report[lane]);
    }
}

// The pump probe (programs.h: pump_probe_lane; `PumpProgram::PROBE`'s modes), with `run_pump`'s argument scheme:
// the pump arena, the run buffer (PumpRunParams, then one PumpLaneState per lane), the device-local block and
// the PumpLayout by value. One dispatch: each lane below params.lanes runs at most params.iter_budget loop
// rounds and stores its progress; the host dispatches again until every lane has PUMP_LANE_FINISHED.
extern "C" __global__ void gu_pump_probe(uint8_t *arena, uint8_t *run, uint8_t *local, gpu_uring::PumpLayout layout) {
    gu::programs::pump_probe_lane(arena, run, local, &layout, global_id());
}

// Exactly-once READs through the io_queue with the allocation aggregated per warp/wavefront (programs.h:
// group_read_lane; gpu_uring/queue_group.h): lane `global id` < `lanes` reads `count` chunks of `chunk` bytes of
// pump file `file` ((lane · count + k) · chunk) into pump region `region` at lane · chunk, one at a time, and
// checksums them. `report[lane]`: done = chunks, failed, checksum = their sum, bytes; `status[lane]`:
// GU_QUEUE_STATUS_* (or programs::program_refused).
extern "C" __global__ void gu_pump_read(uint8_t *arena, uint8_t *local, gpu_uring::PumpLayout layout, uint32_t lanes,
                                        uint32_t file, uint32_t region, uint32_t chunk, uint32_t count,
                                        uint32_t budget, uint32_t *status, gu::programs::lane_report *report) {
    uint32_t lane = global_id();
    if (lane < lanes) {
        status[lane] = gu::programs::group_read_lane(arena, local, &layout, lane, file, region, chunk, count, budget,
                                                     &report[lane]);
    }
}
