// The CUDA/HIP kernels of the gpu-uring device library, compiled by kernels/build.sh into PTX (compute_75),
// an sm_90 cubin and AMD code objects. Every body lives in programs.h and is shared with the host C++ target.
#include "programs.h"

namespace {
GU_FN uint32_t global_id() { return blockIdx.x * blockDim.x + threadIdx.x; }
} // namespace

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
