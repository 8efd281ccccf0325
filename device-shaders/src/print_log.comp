#version 460
#pragma use_vulkan_memory_model
#extension GL_GOOGLE_include_directive : require
// print_log: each lane prints params.count lines (print_line.glsl) through the print log (PROTOCOL.md §7.1,
// gpu_uring_log.glsl): the subgroup's lines are reserved with one CAS, copied by their lanes, completed with one
// CAS, and the holder of the log's duty submits one write of everything completed. The program print.comp
// prints one write per line instead (PrintMode::LinePerWrite).
//
// The loop is subgroup-uniform — its lanes enter and leave it together, and a lane with nothing to do idles
// along — because the duty is the subgroup's. Each iteration: a reap (when the holder's write is in flight or a
// print found no room), a handed-on duty taken, this lane's next line printed, the prefix's bell rung, one holder
// round; a lane whose lines are all in the log flushes: it is finished once log_written has passed its last line.
// Resumable: the next seq and the end of the lane's last line live in its GuLaneState; a line that found no room
// is formatted again in the next dispatch (the holder's duty is handed on whenever the subgroup leaves the loop).
#include "../include/gpu_uring.glsl"
#include "../include/gpu_uring_log.glsl"
#include "print_line.glsl"

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
    uint status = GU_STATUS_TIMED_OUT;
    bool finished = false;
    bool formatted = false; // gu_line holds line gu_st.seq (it found no room last time)
    bool reap = false;      // this lane wants a reap before the next iteration
    for (;;) {
        // Leave together: once any lane has spent its budget, or every lane is finished.
        if (gu_any(!gu_can_start()) || gu_all(finished)) break;
        gu_iters++;
        // One reap site (the compiler inlines every call): the holder's write in flight, no room for a line, a
        // flush waiting for the kernel.
        if (gu_any(reap) || gu_log_waiting) gu_reap(16u);
        reap = false;
        gu_log_take_pending();
        bool advanced = false;
        if (!finished && gu_st.seq < lines) {
            if (!formatted) { format_line(lane, gu_st.seq); formatted = true; }
            uint end;
            uint s = gu_log_print(end, advanced);
            if (s == GU_STATUS_READY) {
                gu_st.log_end = end;
                gu_st.bytes += uint64_t(gu_len);
                gu_st.seq++;
                gu_st.done++;
                formatted = false;
            } else if (s == GU_STATUS_PROTOCOL_VIOLATION) {
                // A corrupted log word (counted): this lane's remaining lines are not printed.
                gu_st.failed += lines - gu_st.seq;
                gu_st.seq = lines;
            } else {
                reap = true;
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
    }
    gu_log_leave();
    gu_end(status);
}
