// kernels/src/programs/ring_programs.h: the built-in ring programs (host/src/backend/program.rs `Program`), one
// lane each, written as the Rust native kernels (host/src/backend/native.rs) run them: nop, print, write, read,
// lane_stress, edit_buffer, layout and exact. Every program ends with the lane's flush (bounded), as a native
// invocation does. `lane_id` < layout.lanes; `budget` bounds every wait (PROTOCOL.md §6).
#ifndef GPU_URING_KERNELS_RING_PROGRAMS_H
#define GPU_URING_KERNELS_RING_PROGRAMS_H

#include "../../include/gpu_uring.h"
#include "probes.h"

namespace gu {
namespace programs {

// What a lane reports: the backend's `LaneReport` (host/src/backend/report.rs), 32 bytes, one per lane. Stored
// with plain stores at the lane's end; the host reads it after the launch.
struct lane_report {
    uint64_t done;     // operations completed (NOPs, writes, chunks read, steps, SQEs, lines printed)
    uint64_t failed;   // operations that failed or could not be submitted within the budget
    uint64_t checksum; // read: the sum of the chunks' checksums; hostile: the row's status
    uint64_t bytes;    // bytes moved; hostile: the CQE result the row waited for (as u32)
};

// A program's status besides GU_STATUS_*: the ring lacks what the program needs (a fixed region too small for
// this lane, a lane outside the layout). Nothing was done.
enum : uint32_t { program_refused = 0x100u };

// The completion slot the Rust programs wait on: min(slots_per_lane − 1, 1) (wrapping, as in Rust release).
GU_FN uint32_t wait_slot(const gpu_uring::RingLayout *l) {
    uint32_t last = l->slots_per_lane - 1u;
    return last < 1u ? last : 1u;
}

// The first status that is not READY, else `next`.
GU_FN uint32_t first_failure(uint32_t st, uint32_t next) { return st != GU_STATUS_READY ? st : next; }

// ---- nop, print ----------------------------------------------------------------------------------------------

// The nop program: `count` NOPs in completion mode `mode` (0: waited on the wait slot, one after another; 1:
// fire-and-forget; 2: skip-success), aggregated per subgroup (gpu_uring/group.h: one credit CAS, one ticket
// CAS, one publication per subgroup and round), then a flush. Every lane makes all `count` rounds (uniform
// control flow); returns the first status that is not READY (or READY); `*ready` counts the waited NOPs that
// completed READY with a result ≥ 0, or the other modes' NOPs submitted.
enum : uint32_t { nop_waited = 0, nop_ff = 1, nop_skip = 2 };

GU_FN uint32_t nop_lane(uint8_t *arena, uint8_t *local, const gpu_uring::RingLayout *layout, uint32_t lane_id,
                        uint32_t mode, uint32_t count, uint32_t budget, uint32_t *ready) {
    lane ln(arena, local, layout, lane_id);
    subgroup sg = subgroup::active();
    uint32_t ws = wait_slot(layout);
    completion c = mode == nop_ff ? fire_and_forget() : mode == nop_skip ? skip_success() : in_slot(ws);
    uint32_t ok = 0;
    uint32_t st = GU_STATUS_READY;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t s = group::nop(ln, sg, true, c, budget);
        int32_t res = 0;
        if (c.kind == complete_slot) {
            res = -1;
            uint32_t w = group::wait(ln, sg, s == GU_STATUS_READY, ws, budget, res);
            s = s == GU_STATUS_READY ? w : s;
        }
        if (s == GU_STATUS_READY && res >= 0) {
            ok++;
        } else if (st == GU_STATUS_READY) {
            st = s;
        }
    }
    uint32_t fl = ln.flush(budget);
    local_word<uint32_t>(ready).store(ok, mo::relaxed);
    return first_failure(st, fl);
}

// The print program: the lane's `lines` lines of `print_line` through the ring (§7: the print log or line mode,
// as the host set the target), aggregated per subgroup (gpu_uring/group.h `print`), then a flush. Every lane
// makes all `lines` rounds (uniform control flow); returns the first status that is not READY (or READY). A
// line longer than the ring's lines is not printed (LINE_TOO_LONG), the later ones still are. `*printed` (when
// not null) counts the lines printed READY.
GU_FN uint32_t print_lane(uint8_t *arena, uint8_t *local, const gpu_uring::RingLayout *layout, uint32_t lane_id,
                          uint32_t lines, uint32_t budget, uint32_t *printed = nullptr) {
    lane ln(arena, local, layout, lane_id);
    subgroup sg = subgroup::active();
    uint32_t st = GU_STATUS_READY;
    uint32_t ok = 0;
    for (uint32_t seq = 0; seq < lines; seq++) {
        uint32_t s = group::print(ln, sg, true, budget, "lane=", lane_id, " seq=", seq, " d=",
                                  (int64_t)seq - (int64_t)lane_id, " x=", hex((uint64_t)lane_id << 32 | seq),
                                  " v=", fixed((float)seq / 8.0f - (float)lane_id, 3), " gpu-uring");
        ok += s == GU_STATUS_READY ? 1u : 0u;
        st = first_failure(st, s);
    }
    uint32_t fl = ln.flush(budget);
    if (printed != nullptr) {
        *printed = ok;
    }
    return first_failure(st, fl);
}

// ---- write, read ---------------------------------------------------------------------------------------------

// The write program (`Program::Write`): the lane fills the first `len` bytes (at most line_bytes) of its first
// staging line with 'a' + i mod 26, then makes `ops` fire-and-forget writes of them to registered file `file`
// at the file position (WRITE_FIXED from the staging buffer), then flushes. `done`/`bytes` count the writes
// submitted. Returns the last status that was not READY (or READY).
GU_FN uint32_t write_lane(uint8_t *arena, uint8_t *local, const gpu_uring::RingLayout *layout, uint32_t lane_id,
                          uint32_t file, uint32_t ops, uint32_t len, uint32_t budget, lane_report *out) {
    lane_report rep = {0, 0, 0, 0};
    if (lane_id >= layout->lanes || layout->staging_lines == 0) {
        rep.failed = ops;
        *out = rep;
        return program_refused;
    }
    lane ln(arena, local, layout, lane_id);
    uint32_t off = ln.r.line_off(lane_id, 0);
    uint32_t n = len < layout->line_bytes ? len : layout->line_bytes;
    // The lane's own staging line (no write of it is in flight): plain stores, published with the SQEs.
    for (uint32_t i = 0; i < n; i++) {
        arena[off + i] = (uint8_t)('a' + i % 26u);
    }
    uint32_t st = GU_STATUS_READY;
    for (uint32_t i = 0; i < ops; i++) {
        uint32_t s = ln.write(fixed_file(file), off, n, ~(uint64_t)0, fire_and_forget(), budget);
        if (s == GU_STATUS_READY) {
            rep.done++;
            rep.bytes += n;
        } else {
            rep.failed++;
            st = s;
        }
    }
    st = first_failure(st, ln.flush(budget));
    *out = rep;
    return st;
}

// The read program (`Program::Read`): lanes read [0, total) of registered file `file` in `chunk`-byte pieces
// (lane l takes chunks l, l + lanes, …) with READ_FIXED into the fixed region, keeping up to `depth` reads in
// flight: read j of the lane goes into buffer j mod depth at fixed + (lane · depth + j mod depth) · chunk,
// completing in slot min(slots_per_lane − depth, 1) + j mod depth; the lane checksums them in submission order.
// A read that does not complete within `budget` polls ends the lane (its remaining chunks count failed).
GU_FN uint32_t read_lane(uint8_t *arena, uint8_t *local, const gpu_uring::RingLayout *layout, uint32_t lane_id,
                         uint32_t lanes, uint32_t file, uint32_t chunk, uint64_t total, uint32_t depth,
                         uint32_t budget, lane_report *out) {
    lane_report rep = {0, 0, 0, 0};
    uint32_t spl = layout->slots_per_lane;
    depth = depth < 1 ? 1 : depth > 32 ? 32 : depth;
    if (chunk == 0 || depth > spl || lanes == 0 || lane_id >= layout->lanes) {
        rep.failed = 1;
        *out = rep;
        return program_refused;
    }
    lane ln(arena, local, layout, lane_id);
    uint32_t base_slot = spl - depth < 1u ? spl - depth : 1u;
    uint64_t nchunks = total / chunk + (total % chunk != 0 ? 1 : 0);
    uint64_t sent = 0;
    uint64_t seen = 0;
    uint32_t unsent = 0; // reads whose submission failed, by buffer index
    uint32_t polls = 0;
    uint32_t st = GU_STATUS_READY;
    backoff b;
    for (;;) {
        // Keep `depth` reads in flight while chunks remain.
        uint64_t next_chunk = lane_id + sent * lanes;
        if (sent - seen < depth && next_chunk < nchunks) {
            uint64_t off = next_chunk * chunk;
            uint32_t len = total - off < chunk ? (uint32_t)(total - off) : chunk;
            uint32_t j = (uint32_t)(sent % depth);
            uint32_t s = ln.read_fixed(fixed_file(file), (lane_id * depth + j) * chunk, len, off, base_slot + j,
                                       budget);
            if (s != GU_STATUS_READY) {
                // Not submitted: counted failed when its turn comes.
                unsent |= 1u << j;
                st = s;
            }
            sent++;
            continue;
        }
        if (sent == seen) {
            break;
        }
        // The oldest read in flight.
        uint64_t chunk_index = lane_id + seen * lanes;
        uint64_t off = chunk_index * chunk;
        uint32_t len = total - off < chunk ? (uint32_t)(total - off) : chunk;
        uint32_t j = (uint32_t)(seen % depth);
        if ((unsent & (1u << j)) != 0) {
            unsent &= ~(1u << j);
            rep.failed++;
            seen++;
            continue;
        }
        int32_t res = 0;
        uint32_t s = ln.poll(base_slot + j, res);
        if (s == GU_STATUS_WOULD_BLOCK) {
            if (polls >= budget) {
                uint64_t left = nchunks > chunk_index ? nchunks - chunk_index : 0;
                rep.failed += left / lanes + (left % lanes != 0 ? 1 : 0);
                st = GU_STATUS_TIMED_OUT;
                break;
            }
            b.pause();
            polls++;
            continue;
        }
        if (s == GU_STATUS_READY && res == (int32_t)len) {
            rep.checksum += chunk_checksum(arena, layout->fixed + (lane_id * depth + j) * chunk, off, len);
            rep.done++;
            rep.bytes += len;
        } else {
            rep.failed++;
            st = s != GU_STATUS_READY ? s : st;
        }
        seen++;
        polls = 0;
        b.reset();
    }
    st = first_failure(st, ln.flush(budget));
    *out = rep;
    return st;
}

// ---- lane_stress ---------------------------------------------------------------------------------------------

// The lane_stress program (`Program::LaneStress`): `ops` NOPs, a waited one (on the wait slot) for even `seq`,
// a fire-and-forget one for odd, aggregated per subgroup as the nop program; `done` counts the completed ones
// (waited: result ≥ 0).
GU_FN uint32_t lane_stress_lane(uint8_t *arena, uint8_t *local, const gpu_uring::RingLayout *layout,
                                uint32_t lane_id, uint32_t ops, uint32_t budget, lane_report *out) {
    lane_report rep = {0, 0, 0, 0};
    lane ln(arena, local, layout, lane_id);
    subgroup sg = subgroup::active();
    uint32_t ws = wait_slot(layout);
    uint32_t st = GU_STATUS_READY;
    for (uint32_t seq = 0; seq < ops; seq++) {
        uint32_t s;
        int32_t res = 0;
        if (seq % 2 == 0) {
            s = group::nop(ln, sg, true, in_slot(ws), budget);
            uint32_t w = group::wait(ln, sg, s == GU_STATUS_READY, ws, budget, res);
            s = s == GU_STATUS_READY ? w : s;
        } else {
            s = group::nop(ln, sg, true, fire_and_forget(), budget);
        }
        if (s == GU_STATUS_READY && res >= 0) {
            rep.done++;
        } else {
            rep.failed++;
            st = s;
        }
    }
    st = first_failure(st, ln.flush(budget));
    *out = rep;
    return st;
}

// ---- edit_buffer, layout, exact ------------------------------------------------------------------------------

// The edit_buffer program (`Program::EditBuffer`): lane l owns the host-shared words at fixed + 8 l (`value`,
// `ack`); for step k in 1..=steps it stores value = k (release, system scope: the host polls it) and waits,
// bounded by `budget` polls, until the host stores ack ≥ k (acquire). A step the host does not acknowledge in
// time ends the lane (it and the rest count failed).
GU_FN uint32_t edit_buffer_lane(uint8_t *arena, const gpu_uring::RingLayout *layout, uint32_t lane_id,
                                uint32_t steps, uint32_t budget, lane_report *out) {
    lane_report rep = {0, 0, 0, 0};
    if ((uint64_t)8 * (lane_id + 1ull) > layout->fixed_size) {
        rep.failed = steps;
        *out = rep;
        return program_refused;
    }
    uint32_t base = layout->fixed + 8u * lane_id;
    shared_word<uint32_t> value(reinterpret_cast<uint32_t *>(arena + base));
    shared_word<uint32_t> ack(reinterpret_cast<uint32_t *>(arena + base + 4));
    uint32_t st = GU_STATUS_READY;
    for (uint32_t k = 1; k <= steps; k++) {
        // Release: the host's acquire of the value sees this lane's earlier stores.
        value.store(k, mo::release);
        backoff b;
        uint32_t i = 0;
        // Acquire: pairs with the host's release store of the ack.
        while (ack.load(mo::acquire) < k) {
            if (i >= budget) {
                break;
            }
            b.pause();
            i++;
        }
        if (i >= budget && ack.load(mo::acquire) < k) {
            rep.failed += steps - k + 1;
            st = GU_STATUS_TIMED_OUT;
            break;
        }
        rep.done++;
    }
    *out = rep;
    return st;
}

// The layout program (`Program::Layout`): lane l writes, at fixed + 256 l, the SQE `layout_sqe_expected`
// describes — a WRITE_FIXED of 17 + l bytes from its first staging line to registered file l at offset
// 0x1000 + l, tagged fire-and-forget for staging line 0, built by this library's SQE code — then the
// RingLayout it was given (128 bytes). Nothing is submitted.
GU_FN uint32_t layout_lane(uint8_t *arena, uint8_t *local, const gpu_uring::RingLayout *layout, uint32_t lane_id,
                           lane_report *out) {
    lane_report rep = {0, 0, 0, 0};
    if ((uint64_t)256 * (lane_id + 1ull) > layout->fixed_size || lane_id >= layout->lanes) {
        rep.failed = 1;
        *out = rep;
        return program_refused;
    }
    ring r{arena, local, layout};
    sqe s = r.write_sqe(fixed_file(lane_id), r.line_off(lane_id, 0), 17 + lane_id, 0x1000ull + lane_id);
    s.set_user_data(GU_TAG_FF_UD | proto::ff_user_data(lane_id, 1));
    uint32_t base = layout->fixed + 256u * lane_id;
    for (uint32_t i = 0; i < 8; i++) {
        r.s64(base + 8u * i).store(s.w[i], mo::relaxed);
    }
    // The RingLayout as received (the kernel argument), 16 words; the host reads them after the launch.
    const uint64_t *words = reinterpret_cast<const uint64_t *>(layout);
    for (uint32_t i = 0; i < GU_SIZEOF_RING_LAYOUT / 8u; i++) {
        r.s64(base + 64u + 8u * i).store(words[i], mo::relaxed);
    }
    rep.done = 1;
    *out = rep;
    return GU_STATUS_READY;
}

// The exact program (`Program::Exact`): lane 0 publishes the `count` SQE images the host wrote at fixed + 64 i
// exactly as given (commit_exact: no flags added), except user_data, which names its slot 0 with generation 0
// (armed at commit); it waits for each and stores the CQE's result (i32) at fixed + 64 count + 4 i. Other
// lanes do nothing.
GU_FN uint32_t exact_lane(uint8_t *arena, uint8_t *local, const gpu_uring::RingLayout *layout, uint32_t lane_id,
                          uint32_t count, uint32_t budget, lane_report *out) {
    lane_report rep = {0, 0, 0, 0};
    if (lane_id != 0) {
        *out = rep;
        return GU_STATUS_READY;
    }
    if ((uint64_t)68 * count > layout->fixed_size) {
        rep.failed = count;
        *out = rep;
        return program_refused;
    }
    lane ln(arena, local, layout, lane_id);
    uint32_t g = 0;
    ln.global_slot(0, g);
    uint32_t st = GU_STATUS_READY;
    for (uint32_t i = 0; i < count; i++) {
        sqe s;
        for (uint32_t w = 0; w < 8; w++) {
            s.w[w] = ln.r.s64(layout->fixed + 64u * i + 8u * w).load(mo::relaxed);
        }
        s.set_user_data(proto::slot_user_data(g, 0));
        uint32_t ticket = 0;
        int32_t res = 0;
        uint32_t s1 = ln.reserve(budget, ticket);
        if (s1 == GU_STATUS_READY) {
            ln.commit_exact(ticket, s);
            s1 = ln.wait(0, budget, res);
        }
        if (s1 == GU_STATUS_READY) {
            ln.r.si32(layout->fixed + 64u * count + 4u * i).store(res, mo::relaxed);
            rep.done++;
        } else {
            rep.failed++;
            st = s1;
        }
    }
    st = first_failure(st, ln.flush(budget));
    *out = rep;
    return st;
}

} // namespace programs
} // namespace gu

#endif // GPU_URING_KERNELS_RING_PROGRAMS_H
