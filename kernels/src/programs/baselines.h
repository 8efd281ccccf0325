// kernels/src/programs/baselines.h: the programs the experiments compare the ring with, no ring involved:
// the RPC print client (experiments/src/rpc.rs, the way LLVM libc for GPUs prints; the GLSL version is
// device-shaders/src/rpc_print.comp) and the memory-placement probe (experiments/src/bin/memory_placement.rs;
// device-shaders/src/memory_placement.comp).
#ifndef GPU_URING_KERNELS_BASELINES_H
#define GPU_URING_KERNELS_BASELINES_H

#include "probes.h"

namespace gu {
namespace programs {

// ---- rpc_print -------------------------------------------------------------------------------------------

// A mailbox (experiments/src/rpc.rs `MB_*`): 512 bytes per lane in host memory; the server thread is the
// other side.
enum : uint32_t {
    mb_bytes = 512,
    mb_state = 0,
    mb_len = 4,
    mb_result = 8,
    mb_seq = 12,
    mb_done = 16,
    mb_failed = 20,
    mb_finished = 24,
    mb_data = 64,
    mb_max_line = mb_bytes - mb_data,
    mb_empty = 0,
    mb_request = 1,
    mb_reply = 2,
};

// The RPC client: lane `lane` (< `lanes`) owns mailbox `lane`. While its state is EMPTY it formats its next
// print-program line (`print_line`, newline included) into the mailbox's data, stores the length and publishes
// state = REQUEST (release); the server writes the line with write(2), stores the result and replies with
// REPLY (release); the lane reads the result (acquire), counts it (done if it was the line's length, else
// failed) and takes the mailbox back (EMPTY). At most `budget` loop iterations per launch; the lane's next line
// and counters live in the mailbox's own words (`seq`, `done`, `failed`, and `finished` once every line is
// answered), so a launch that ran out of budget is resumed by the next one, exactly like the shader's
// dispatches. Returns READY once finished, else TIMED_OUT.
GU_FN uint32_t rpc_print_lane(uint8_t *mailboxes, uint32_t lanes, uint32_t lines, uint32_t budget, uint32_t lane) {
    if (lane >= lanes) {
        return GU_STATUS_READY;
    }
    uint8_t *mb = mailboxes + (uint64_t)lane * mb_bytes;
    // The mailbox is host memory the server thread reads: system-scope loads and stores, no RMW.
    shared_word<uint32_t> state(reinterpret_cast<uint32_t *>(mb + mb_state));
    shared_word<uint32_t> finished(reinterpret_cast<uint32_t *>(mb + mb_finished));
    // Relaxed: these words are this lane's alone (the server never touches them).
    if (finished.load(mo::relaxed) != 0) {
        return GU_STATUS_READY;
    }
    shared_word<uint32_t> seq_w(reinterpret_cast<uint32_t *>(mb + mb_seq));
    shared_word<uint32_t> done_w(reinterpret_cast<uint32_t *>(mb + mb_done));
    shared_word<uint32_t> failed_w(reinterpret_cast<uint32_t *>(mb + mb_failed));
    uint32_t seq = seq_w.load(mo::relaxed);
    uint32_t done = done_w.load(mo::relaxed);
    uint32_t failed = failed_w.load(mo::relaxed);
    uint32_t st = GU_STATUS_TIMED_OUT;
    backoff b;
    for (uint32_t iters = 0; iters < budget; iters++) {
        // Acquire: pairs with the server's release store of REPLY (the result is visible).
        uint32_t s = state.load(mo::acquire);
        if (s == mb_request) {
            // The server has not replied yet.
            b.pause();
            continue;
        }
        if (s == mb_reply) {
            int32_t res = (int32_t)shared_word<uint32_t>(reinterpret_cast<uint32_t *>(mb + mb_result)).load(mo::relaxed);
            uint32_t len = shared_word<uint32_t>(reinterpret_cast<uint32_t *>(mb + mb_len)).load(mo::relaxed);
            if (res == (int32_t)len) {
                done++;
            } else {
                failed++;
            }
            seq++;
            // The mailbox is the lane's again (the server never touches a REPLY mailbox); the next release store
            // of REQUEST orders this store before the server's next look.
            state.store(mb_empty, mo::relaxed);
            b.reset();
            continue;
        }
        if (seq >= lines) {
            st = GU_STATUS_READY;
            break;
        }
        // EMPTY: the data bytes are the lane's (plain stores, published by the REQUEST release).
        line l(reinterpret_cast<char *>(mb + mb_data), mb_max_line);
        uint32_t n = print_line(l, lane, seq);
        shared_word<uint32_t>(reinterpret_cast<uint32_t *>(mb + mb_len)).store(n, mo::relaxed);
        // Release (system scope): the server's acquire load of REQUEST sees the line's bytes and its length.
        state.store(mb_request, mo::release);
    }
    seq_w.store(seq, mo::relaxed);
    done_w.store(done, mo::relaxed);
    failed_w.store(failed, mo::relaxed);
    if (st == GU_STATUS_READY) {
        // Release: the host's acquire of `finished` sees the counters above.
        finished.store(1, mo::release);
    }
    return st;
}

// ---- memory_placement ------------------------------------------------------------------------------------

// How long one load or store takes in whatever memory backs `buf`. Words 0..=mask hold a chain
// w[i] = next(i), next(i) = (1664525 i + 1013904223) & mask (a full-period LCG over the power-of-two length),
// so chasing it visits the buffer in scattered order and each load depends on the one before; word mask + 1 is
// the sink that keeps the chase live.
//   mode 0: init — invocation `gid` of `total` writes the chain words gid, gid + total, … (at most `n` each)
//   mode 1: chase — invocation 0 makes `n` dependent loads from `seed` and stores the last index in the sink
//   mode 2: store — invocation 0 makes `n` stores along the same sequence (the index computed, not loaded)
// Volatile accesses: each is one access to `buf`'s memory (as the shader's `coherent` buffer), none cached in
// registers or merged.
GU_FN uint32_t placement_next(uint32_t i, uint32_t mask) { return (1664525u * i + 1013904223u) & mask; }

GU_FN void memory_placement_lane(uint32_t *buf, uint32_t mode, uint32_t n, uint32_t mask, uint32_t seed, uint32_t gid,
                                 uint32_t total) {
    volatile uint32_t *w = buf;
    if (mode == 0) {
        uint32_t i = gid;
        for (uint32_t k = 0; k < n && i <= mask; k++) {
            w[i] = placement_next(i, mask);
            if (i + total < i) {
                break;
            }
            i += total;
        }
        return;
    }
    if (gid != 0) {
        return;
    }
    uint32_t idx = seed & mask;
    if (mode == 1) {
        for (uint32_t k = 0; k < n; k++) {
            idx = w[idx] & mask;
        }
        w[mask + 1] = idx;
    } else {
        for (uint32_t k = 0; k < n; k++) {
            w[idx] = k;
            idx = placement_next(idx, mask);
        }
    }
}

} // namespace programs
} // namespace gu

#endif // GPU_URING_KERNELS_BASELINES_H
