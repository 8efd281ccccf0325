#version 460
#pragma use_vulkan_memory_model
#extension GL_GOOGLE_include_directive : require
// print: each lane prints params.count lines (print_line.glsl), one write per line (PROTOCOL.md §7.2; the print
// log's program is print_log.comp). Offset mode (regular files) and stream mode (pipes) as PROTOCOL.md §7.2.
// Resumable: the lane's next seq, staging-line rotation, a formatted-but-unsubmitted line and a pending stream
// print live in its GuLaneState.
#include "../include/gpu_uring.glsl"
#include "print_line.glsl"

const uint PH_IDLE = 0u, PH_FORMATTED = 1u;

// Stream mode: consume the previous line's completion (§7). Returns false while it is still in flight.
bool finish_stream_print(uint lane) {
    if (gu_st.pending_len == 0u) return true;
    int r;
    uint s = gu_poll(lane, 0u, r);
    if (s == GU_STATUS_WOULD_BLOCK) return false;
    if (s == GU_STATUS_READY && r != int(gu_st.pending_len)) {
        // A failed or short line write: counted where host and device read it.
        gu_local_add_rlx(gu_lctl(GU_LOCAL_CONTROL_PRINT_ERRORS), 1u);
        if (r < 0) gu_local_st_rlx(gu_lctl(GU_LOCAL_CONTROL_FF_LAST_ERROR), uint(r));
    }
    gu_st.pending_len = 0u;
    return true;
}

void main() {
    if (!gu_begin()) return;
    uint lane = gu_lane_id;
    uint lines = gu_run.params.count;
    uint pflags = gu_host_ld_acq(gu_sctl(GU_SHARED_CONTROL_PRINT_FLAGS));
    if (pflags == 0u) {
        gu_st.failed = lines - gu_st.seq;
        gu_st.flags |= GU_LANE_FINISHED | GU_LANE_NO_TARGET;
        gu_end(GU_STATUS_READY);
        return;
    }
    bool offset_mode = (pflags & GU_PRINT_OFFSET_MODE) != 0u;
    bool fixed_file = (pflags & GU_PRINT_FIXED_FILE) != 0u;
    int fd = int(gu_host_ld_rlx(gu_sctl(GU_SHARED_CONTROL_PRINT_FD)));
    uint status = GU_STATUS_TIMED_OUT;
    // Every reap of the loop happens at its top (the shader compiler inlines each call site; one site keeps the
    // shader small): a branch that needs one sets `reap` and continues.
    bool reap = false;
    while (gu_can_start()) {
        gu_iters++;
        if (reap) { gu_reap(16u); reap = false; }
        if (gu_st.seq >= lines) {
            // §7 flush: the last stream print, then every fire-and-forget write of this lane.
            if (!finish_stream_print(lane)) continue;
            if (gu_in_flight(lane) == 0u) { gu_st.flags |= GU_LANE_FINISHED; status = GU_STATUS_READY; break; }
            reap = true;
            continue;
        }
        uint j = gu_st.next_line % gu_l.staging_lines;
        uint line_off = gu_line_off(lane, j);
        if (gu_st.phase == PH_IDLE) {
            if (offset_mode) {
                // Acquire: pairs with the reaper's release once the kernel is done reading the line.
                if (gu_local_ld_acq(gu_lane_word(lane, j)) != 0u) { reap = true; continue; }
            } else if (!finish_stream_print(lane)) {
                continue;
            }
            format_line(lane, gu_st.seq);
            if (gu_cut) {
                // Longer than the ring's lines: not printed, counted (LINE_TOO_LONG, as the Rust lane).
                gu_st.failed++;
                gu_st.seq++;
                continue;
            }
            gu_line_store(line_off);
            gu_st.line_len = gu_len;
            gu_st.phase = PH_FORMATTED;
        }
        uint t;
        if (!gu_try_reserve(t)) { reap = true; continue; }
        // Reservation held: straight-line code until the publication.
        uint len = gu_st.line_len;
        uint64_t off = ~uint64_t(0);
        if (offset_mode) off = gu_local_add64_rlx(gu_lctl(GU_LOCAL_CONTROL_PRINT_OFFSET), uint64_t(len));
        gu_sqe_write(fixed_file, fd, line_off, len, off);
        gu_commit(lane, t, offset_mode ? GU_FF : GU_SLOT, 0u, offset_mode ? j + 1u : 0u);
        if (!offset_mode) gu_st.pending_len = len;
        gu_st.next_line++;
        gu_st.seq++;
        gu_st.done++;
        gu_st.bytes += uint64_t(len);
        gu_st.phase = PH_IDLE;
        gu_local_add_rlx(gu_lctl(GU_LOCAL_CONTROL_LINES_PRINTED), 1u);
    }
    gu_end(status);
}
