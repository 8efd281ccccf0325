// kernels/src/programs.h: the per-lane bodies of the kernels in gpu_uring_kernels.cu, written once for every
// target. The CUDA/HIP kernels call them with their global thread index; the host C++ target
// (kernels/host/host_target.cpp) calls them with a lane index from its threads, so the Rust tests run exactly
// this code.
#ifndef GPU_URING_KERNELS_PROGRAMS_H
#define GPU_URING_KERNELS_PROGRAMS_H

#include "../include/gpu_uring.h"

namespace gu {
namespace programs {

// format_probe records: 128 bytes per case: kind (u32: 0 u64, 1 i64, 2 hex, 3 f32 bits in the low word),
// precision (u32), value (u64), then the formatted length (u32) at +16 and its bytes (at most 108) at +20.
// The layout of the device suite's format probe, so the backends can hand this kernel the same buffer.
// (Enumerators, not constexpr variables: NVRTC emits a `.global` for every namespace-scope constexpr.)
enum : uint32_t { format_record_bytes = 128, format_record_text = 20, format_record_max = 108 };

GU_FN void format_case(uint8_t *records, uint32_t id) {
    uint8_t *r = records + (uint64_t)id * format_record_bytes;
    const uint32_t *w = reinterpret_cast<const uint32_t *>(r);
    uint32_t kind = w[0];
    uint32_t precision = w[1];
    uint64_t value = (uint64_t)w[2] | (uint64_t)w[3] << 32;
    // Formatted in place (a private array would be promoted to LDS on AMD); §7 numbers are at most 30 bytes.
    char *text = reinterpret_cast<char *>(r + format_record_text);
    line l(text, format_record_max + 1);
    switch (kind) {
    case 0: l.u64(value); break;
    case 1: l.i64((int64_t)value); break;
    case 2: l.hex(value); break;
    default: {
        uint32_t bits = (uint32_t)value;
        float x;
        static_assert(sizeof x == sizeof bits, "f32");
#if defined(GU_CUDA) || defined(GU_HIP)
        x = __uint_as_float(bits);
#else
        std::memcpy(&x, &bits, sizeof x);
#endif
        l.f32(x, precision);
    }
    }
    *reinterpret_cast<uint32_t *>(r + 16) = l.size();
}

// The line lane `lane` prints as its `seq`-th line in the built-in print program (the Rust
// `format_print_line`, newline included).
GU_FN uint32_t print_line(line &l, uint32_t lane, uint32_t seq) {
    return format(l, "lane=", lane, " seq=", seq, " d=", (int64_t)seq - (int64_t)lane,
                  " x=", hex((uint64_t)lane << 32 | seq), " v=", fixed((float)seq / 8.0f - (float)lane, 3),
                  " gpu-uring");
}

// Ticket aggregation through the portability layer: each subgroup's elected lane takes `size` tickets with
// one device-scope RMW and hands them out; each lane stores its id + 1 into its ticket's host-shared word
// (one writer per word), sets its bit in a device-local bitmap, and the last lane to finish (device-scope
// acq_rel count) publishes `done` to the host after a system fence.
// local: [0] ticket counter, [1] finished count, [2] bitmap of (lane % 32). shared: n words, then `done`.
GU_FN void ticket_lane(uint32_t *local, uint32_t *shared, uint32_t n, uint32_t lane) {
    subgroup sg = subgroup::active();
    uint32_t base = 0;
    if (sg.elect()) {
        // Relaxed: the tickets only need to be distinct; nothing is published through this counter.
        base = local_word<uint32_t>(&local[0]).fetch_add(sg.size(), mo::relaxed);
    }
    uint32_t ticket = sg.broadcast_first(base) + sg.rank();
    if (ticket < n) {
        // Relaxed: ordered for the host by the release fence below.
        shared_word<uint32_t>(&shared[ticket]).store(lane + 1, mo::relaxed);
    }
    local_word<uint32_t>(&local[2]).fetch_or(1u << (lane & 31), mo::relaxed);
    // Release (system): this lane's ticket store is visible to the host before its finished count is.
    fence_system(mo::release);
    // Acq_rel: the last lane acquires every other lane's release (the RMWs on `finished` form a release
    // sequence), so all their ticket stores happen-before its `done` store.
    uint32_t finished = local_word<uint32_t>(&local[1]).fetch_add(1, mo::acq_rel);
    if (finished + 1 == n) {
        // Release (system): the host's acquire load of `done` sees every ticket word.
        shared_word<uint32_t>(&shared[n]).store(1, mo::release);
    }
}

// A bounded wait (PROTOCOL.md §6) on a host-shared word: polls with acquire loads (each one a bus round trip
// on a GPU) and backoff until the word is nonzero or `budget` polls are spent. Returns the polls used
// (`budget` + 1 means it gave up), and stores that count into `*polls_out` (device-local).
GU_FN uint32_t wait_flag(uint32_t *flag, uint32_t budget, uint32_t *polls_out) {
    backoff b;
    uint32_t polls = 0;
    for (;;) {
        polls++;
        // Acquire: what the writer released before setting the flag is visible once the flag is seen.
        if (shared_word<uint32_t>(flag).load(mo::acquire) != 0) {
            break;
        }
        if (polls > budget) {
            break;
        }
        b.pause();
    }
    local_word<uint32_t>(polls_out).store(polls, mo::relaxed);
    return polls;
}


// ---- ring programs (PROTOCOL.md §3–§7), one lane each; `lane_id` < layout.lanes

// The nop program: `count` NOPs in completion mode `mode` (0: waited on slot 0, one after another; 1:
// fire-and-forget; 2: skip-success), then a flush. Returns the first status that is not READY (or READY);
// `*ready` counts the waited NOPs that completed READY with result 0, or the other modes' NOPs submitted.
enum : uint32_t { nop_waited = 0, nop_ff = 1, nop_skip = 2 };

GU_FN uint32_t nop_lane(uint8_t *arena, uint8_t *local, const gpu_uring::RingLayout *layout, uint32_t lane_id,
                        uint32_t mode, uint32_t count, uint32_t budget, uint32_t *ready) {
    lane ln(arena, local, layout, lane_id);
    completion c = mode == nop_ff ? fire_and_forget() : mode == nop_skip ? skip_success() : in_slot(0);
    uint32_t ok = 0;
    uint32_t st = GU_STATUS_READY;
    for (uint32_t i = 0; i < count && st == GU_STATUS_READY; i++) {
        st = ln.nop(c, budget);
        if (st == GU_STATUS_READY && c.kind != complete_slot) {
            ok++;
        } else if (st == GU_STATUS_READY) {
            int32_t res = -1;
            st = ln.wait(0, budget, res);
            if (st == GU_STATUS_READY && res == 0) {
                ok++;
            }
        }
    }
    uint32_t fl = ln.flush(budget);
    local_word<uint32_t>(ready).store(ok, mo::relaxed);
    return st != GU_STATUS_READY ? st : fl;
}

// The print program: the lane's `lines` lines of `print_line` through the ring (§7), then a flush. Returns the
// first status that is not READY (or READY).
GU_FN uint32_t print_lane(uint8_t *arena, uint8_t *local, const gpu_uring::RingLayout *layout, uint32_t lane_id,
                          uint32_t lines, uint32_t budget) {
    lane ln(arena, local, layout, lane_id);
    uint32_t st = GU_STATUS_READY;
    for (uint32_t seq = 0; seq < lines && st == GU_STATUS_READY; seq++) {
        st = ln.print(budget, "lane=", lane_id, " seq=", seq, " d=", (int64_t)seq - (int64_t)lane_id,
                      " x=", hex((uint64_t)lane_id << 32 | seq), " v=",
                      fixed((float)seq / 8.0f - (float)lane_id, 3), " gpu-uring");
    }
    uint32_t fl = ln.flush(budget);
    return st != GU_STATUS_READY ? st : fl;
}

// Rows of the hostile-input table, run by one lane that corrupts the ring itself (as the Rust lane's
// `Program::Hostile` does; the numbers are `HostileCase`'s). Returns the status of the row's last library call;
// `*res` the CQE result it waited for (0 if none).
enum : uint32_t { hostile_sq_window_at_publish = 0, hostile_sq_window_at_reserve = 1, hostile_stale_completion = 9 };

GU_FN uint32_t hostile_lane(uint8_t *arena, uint8_t *local, const gpu_uring::RingLayout *layout, uint32_t lane_id,
                            uint32_t which, uint32_t budget, int32_t *res) {
    lane ln(arena, local, layout, lane_id);
    // Relaxed throughout: the corrupting stores stand for device code that ignores the protocol.
    local_word<uint64_t> sq_pub = ln.r.l64(GU_LOCAL_CONTROL_SQ_PUB);
    *res = 0;
    uint32_t ticket = 0;
    uint32_t st;
    switch (which) {
    case hostile_sq_window_at_publish:
        st = ln.reserve(budget, ticket);
        if (st != GU_STATUS_READY) {
            return st;
        }
        sq_pub.store((uint32_t)(sq_pub.load(mo::relaxed) - 1000u), mo::relaxed);
        return ln.commit(ticket, sqe::nop(), fire_and_forget());
    case hostile_sq_window_at_reserve:
        sq_pub.store((uint32_t)(sq_pub.load(mo::relaxed) - 1000u), mo::relaxed);
        st = ln.try_reserve(ticket);
        if (st == GU_STATUS_READY) {
            ln.commit_exact(ticket, sqe::nop());
        }
        return st;
    case hostile_stale_completion: {
        int32_t r = 0;
        st = ln.nop(in_slot(0), budget);
        if (st == GU_STATUS_READY) {
            st = ln.wait(0, budget, r);
        }
        if (st != GU_STATUS_READY) {
            return st;
        }
        uint32_t g = 0;
        ln.global_slot(0, g);
        uint32_t stale = proto::slot_generation(ln.r.l32(ln.r.slot_off(g)).load(mo::relaxed));
        sqe forged = sqe::nop();
        forged.set_flags(ln.base_flags);
        forged.set_user_data(proto::slot_user_data(g, stale));
        st = ln.reserve(budget, ticket);
        if (st != GU_STATUS_READY) {
            return st;
        }
        ln.commit_exact(ticket, forged);
        st = ln.nop(in_slot(0), budget);
        if (st == GU_STATUS_READY) {
            st = ln.wait(0, budget, r);
        }
        *res = r;
        ln.flush(budget);
        return st;
    }
    default: return GU_STATUS_BAD_FLAGS;
    }
}

} // namespace programs
} // namespace gu

#endif // GPU_URING_KERNELS_PROGRAMS_H
