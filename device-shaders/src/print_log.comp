#version 460
#pragma use_vulkan_memory_model
#extension GL_GOOGLE_include_directive : require
// print_log: each lane prints params.count lines (print_line.glsl's line) through the print log (PROTOCOL.md
// §7.1, gpu_uring_log.glsl): the next lines of the subgroup's lanes, up to GU_LOG_LANE_LINES (4) per lane, are
// reserved with one CAS, written straight into the log by their lanes (print_line_log.glsl), completed with one
// CAS, and the holder of the log's duty submits one write of everything completed. The program print.comp prints one write per line instead (PrintMode::LinePerWrite).
//
// The outer loop is subgroup-uniform — its lanes enter and leave it together, and a lane with nothing to do
// idles along — because the duty is the subgroup's. Each outer iteration: a reap (when the holder's write is in
// flight, a print found no room, or a lane waits for its flush), a handed-on duty taken, up to PRINTS_PER_ROUND
// prints of up to GU_LOG_LANE_LINES lines each (the inner loop), the log's bell rung if a print advanced the
// prefix, one holder round; a lane whose lines are all in the log flushes: it is finished once log_written has passed its last line.
// The inner loop holds only the print itself: on a device that runs both sides of every branch (lavapipe
// executes untaken code masked), the reap and the holder's code cost every iteration they are in.
// Resumable: the next seq and the end of the lane's last line live in its GuLaneState; the duty is handed on
// whenever the subgroup leaves the outer loop.
#include "../include/gpu_uring.glsl"
#include "../include/gpu_uring_log.glsl"
#include "print_line.glsl"
#include "print_line_log.glsl"

// Prints per outer iteration, each of up to GU_LOG_LANE_LINES lines of every lane with one reservation: the
// holder's rounds, and the rings of prints that advanced the prefix, come this many prints apart at most.
const uint PRINTS_PER_ROUND = 8u;
// Rounds without a line printed (the log full, or flushes waiting for the kernel) before the subgroup leaves the
// dispatch.
const uint STALL_ROUNDS = 4u;

void main() {
    if (!gu_begin()) return;
    uint lane = gu_lane_id;
    uint lines = gu_run.params.count;
    uint target = gu_log_target();
    if (target != GU_LOG_TARGET_OK) {
        // No target, or a log this program cannot use: the lines are not printed, and say so.
        gu_st.failed = lines - gu_st.seq;
        gu_st.flags |= GU_LANE_FINISHED | (target == GU_LOG_TARGET_NONE ? GU_LANE_NO_TARGET : 0u);
        gu_end(GU_STATUS_READY);
        return;
    }
    pl_load_texts();
    uint status = GU_STATUS_TIMED_OUT;
    bool finished = false;
    bool reap = false; // this lane wants a reap before the next round
    uint stalled = 0u; // rounds in a row in which the subgroup printed nothing
    for (;;) {
        // Leave together: once any lane has spent its budget, or every lane is finished.
        if (gu_any(!gu_can_start()) || gu_all(finished)) break;
        gu_iters++;
        // One reap site (the compiler inlines every call).
        if (gu_any(reap) || gu_log_waiting) gu_reap(16u);
        reap = false;
        gu_log_take_pending();
        bool advanced = false;
        uint printed = 0u;
        for (uint k = 0u; k < PRINTS_PER_ROUND; k++) {
            if (finished || gu_st.seq >= lines || !gu_can_start()) break;
            gu_iters++;
            // The lane's next lines, up to GU_LOG_LANE_LINES of them, before the first one too long to print.
            PlLine ls[GU_LOG_LANE_LINES];
            uint n = 0u, len = 0u;
            for (uint j = 0u; j < GU_LOG_LANE_LINES; j++) {
                gu_iters++;
                if (gu_st.seq + j >= lines) break;
                ls[j] = pl_line(lane, gu_st.seq + j);
                if (ls[j].too_long) break;
                n++;
                len += ls[j].len;
            }
            if (n == 0u) {
                // Longer than the ring's lines: not printed, counted (LINE_TOO_LONG, as the Rust lane).
                gu_st.failed++;
                gu_st.seq++;
                continue;
            }
            // One reservation for the lane's n lines (and the subgroup's), one completion.
            GuLogBatch b = gu_log_begin(len, n);
            if (b.status == GU_STATUS_READY) {
                uint pos = b.pos;
                for (uint j = 0u; j < n; j++) {
                    gu_iters++;
                    pl_write(ls[j], pos);
                    pos += ls[j].len;
                }
            }
            advanced = gu_log_end(b) || advanced;
            if (b.status == GU_STATUS_READY) {
                gu_st.log_end = b.pos + len;
                gu_st.bytes += uint64_t(len);
                gu_st.seq += n;
                gu_st.done += n;
                printed += n;
            } else if (b.status == GU_STATUS_PROTOCOL_VIOLATION) {
                // A corrupted log word (counted): this lane's remaining lines are not printed.
                gu_st.failed += lines - gu_st.seq;
                gu_st.seq = lines;
            } else {
                // No room now: reap (and maybe take the duty) before trying again.
                reap = true;
                break;
            }
        }
        gu_log_ring_if(advanced);
        gu_log_hold();
        if (!finished && gu_st.seq >= lines) {
            // §7 flush: the kernel has written this lane's last line. Acquire: pairs with the holder's release.
            if (gu_st.done == 0u || int(gu_local_ld_acq(gu_lctl(GU_LOCAL_CONTROL_LOG_WRITTEN)) - gu_st.log_end) >= 0) {
                finished = true;
                gu_st.flags |= GU_LANE_FINISHED;
                status = GU_STATUS_READY;
            } else {
                reap = true;
            }
        }
        // Waiting for room or for the kernel (every lane found the log full, or waits for its flush): after
        // STALL_ROUNDS such rounds the subgroup leaves the dispatch, handing any duty on, and is resumed by the
        // next one. On a device whose invocations are CPU threads this gives the CPU back to the threads that
        // write the log (the SQPOLL thread), which spinning would keep from it.
        stalled = (gu_any(printed != 0u) || !gu_any(reap)) ? 0u : stalled + 1u;
        if (stalled >= STALL_ROUNDS) break;
    }
    gu_log_leave();
    gu_end(status);
}
