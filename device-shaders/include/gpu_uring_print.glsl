// gpu_uring_print.glsl — printf-like printing and file I/O for your own compute shaders, on top of the protocol
// library (gpu_uring.glsl). A lane builds a line with one call per piece and prints it with one call that
// returns a status; a file read or write goes the same way. Host side: `gpu_uring::backend::RingKernel` runs the
// compiled shader (it fills the run buffer, the push constants and re-dispatches); `gpu_uring::backend::glsl`
// compiles it (glslangValidator --target-env vulkan1.2 -V -Idevice-shaders/include).
//
// ---- A complete shader --------------------------------------------------------------------------------------
//
//     #version 460
//     #pragma use_vulkan_memory_model
//     #extension GL_GOOGLE_include_directive : require
//     #include "gpu_uring_print.glsl"
//
//     // Text pieces: the host's text table (RingKernel::with_texts(&["hello from lane ", " pi="])), by index.
//     const uint T_HELLO = 0u, T_PI = 1u;
//
//     void main() {
//         if (!gu_begin()) return;                 // no lane for this invocation, or it finished earlier
//         while (gup_running()) {                  // false once this dispatch's loop budget is spent
//             if (gu_st.seq == gu_run.params.count) {
//                 if (gup_finish() == GU_STATUS_READY) break;  // every line written: the lane is finished
//                 continue;
//             }
//             gup_line();
//             gup_text(T_HELLO); gup_uint(gu_lane_id); gup_text(T_PI); gup_float(3.14159, 3u);
//             if (gup_print() == GU_STATUS_READY) gu_st.seq++;  // else: not printed, build it again
//         }
//         gup_end();                               // saves the lane's state for the next dispatch
//     }
//
// It prints `count` lines "hello from lane 3 pi=3.142" per lane. host/examples/user_kernel/ is a longer one (a
// lane whose work takes many dispatches), compiled and run by the test suite.
//
// ---- The rules ------------------------------------------------------------------------------------------------
//
// Resumable lanes. A dispatch ends every lane after a loop budget (lavapipe stops every loop of an invocation
// after 65 535 iterations in total, silently; GPUs have watchdogs), and the host dispatches again until every lane
// has set GU_LANE_FINISHED. So a lane keeps its progress in `gu_st` (its GuLaneState, loaded by gu_begin and
// saved by gup_end) and nowhere else: GLSL globals and locals start over at every dispatch. Count every loop
// iteration of your own (`gup_running()` counts a pass; add `gu_iters++` to inner loops) so the library can stop
// the lane in time.
//
// The loop cap counts code your lanes skip. lavapipe runs a subgroup's lanes as one SIMD program and also runs
// the branches no lane takes: each loop of the ring code that an operation's call site brings into your loop
// runs once per pass even when nothing is printed, about 17 iterations of the cap per gup_print, gup_write or
// gup_read call site and 6 per gup_flush / gup_finish, which gu_iters does not see. When the cap is reached,
// every loop of the invocation stops at once, in the middle of whatever it was doing (a line half formatted, a
// submission half published). So gup_running() counts gup_pass_cost (8) iterations per pass, which keeps a lane
// below the cap with up to about six operation call sites in its loop; with more, raise gup_pass_cost (GPUs,
// which have no such cap, may lower it to 1). And do the work in an inner loop of many steps per pass, each
// counted (gu_iters++), not one step per pass: the skipped ring code also takes most of a pass's time.
// host/examples/user_kernel/pi.comp, with one step per pass, ran about 1 400 steps per lane in each 16–38 ms
// dispatch before the cap ended it. With up to 256 steps per pass it runs the budget's 3 000 in under a
// millisecond.
//
// The lane state. Your fields in gu_st: seq, phase, done, failed (u32), checksum, bytes (u64); the host reports
// done, failed, checksum and bytes per lane (LaneReport, each as a u64) and every field (RunReport::states). The library's: flags
// (GU_LANE_FINISHED, and the bits below), next_line, pending_len, line_len, dispatches, waits, iters, last_status.
//
// Text. GLSL has no strings: the host gives the kernel up to 16 pieces of text (512 bytes in all), and
// gup_text(k) appends piece k. gup_char(c) appends one byte.
//
// Statuses (every operation returns one):
//   GU_STATUS_READY        done: printed (submitted; the kernel writes it), written or read (`res` = the kernel's
//                          result: bytes, or -errno).
//   GU_STATUS_WOULD_BLOCK  not done yet: the ring, the lane's staging lines or its previous line are busy for
//                          now (or a file operation of the lane is in flight).
//   GU_STATUS_TIMED_OUT    not done, and this dispatch's loop budget is spent: end the dispatch (gup_end); the
//                          next one resumes the lane.
//   GUP_NO_TARGET          print only: the ring has no print target (DeviceRing::set_print_target); the host
//                          ends the run with an error after this dispatch.
//   GU_STATUS_BAD_SLOT     file operations only: the ring has fewer than 2 completion slots per lane.
//   GU_STATUS_LINE_TOO_LONG print and file write: the line does not fit (Lines, below); nothing of it was printed
//                          or written. Building it again gives the same line: make it shorter, or skip it.
// After WOULD_BLOCK or TIMED_OUT a print has printed nothing: build the line again and print it later. A file
// operation may be in flight: call the same function again, with the same arguments, until it returns READY
// (that call collects the result); meanwhile the lane's prints and flushes return WOULD_BLOCK. A status other
// than these comes from the library's commit (GU_STATUS_PROTOCOL_VIOLATION: device code corrupted the ring).
// No call waits on another lane; every wait is on the kernel and bounded (gup_tries rounds, each reaping).
//
// Lines. A line holds at most min(line_bytes, 256) - 1 bytes (RingConfig::line_bytes), or that many and its own
// '\n' last, and 32 pieces; a line that goes past either is never cut: its print or write returns
// GU_STATUS_LINE_TOO_LONG and submits nothing (as the Rust lane's LineTooLong). A print appends '\n' if the line
// does not end with one; a file write writes the bytes as built. The pieces are formatted when the operation is
// called (once per call, however many rounds it retries).
//
// JIT cost. A device compiles every call of a function inline. Each call site of gup_print, gup_write, gup_read
// and gup_flush / gup_finish carries a copy of the ring code (lavapipe, a CPU: about a second of compile time at
// the kernel's first dispatch, each); the line's pieces cost little (the operation formats them in one loop). A
// lane with several kinds of operation can funnel them through one call site: gup_op(GUP_OP_*, ...).
//
// Where output goes. Prints go to the ring's print target, never torn, each lane's lines in program order: one
// write per line (PROTOCOL.md §7.2) — a regular file gets each line at an offset the device assigns, a pipe or
// terminal gets each line whole — unless the shader defines GUP_PRINT_LOG before including this file and the
// ring's prints are in group-commit mode (PrintMode::GroupCommit, the default). Then prints go through the ring's
// print log (PROTOCOL.md §7.1, gpu_uring_log.glsl): the lanes that print together reserve their lines with one
// reservation and copy them into the log, and one write of the kernel takes many lines; the write is submitted by
// whichever lanes hold the log's duty during a call, or by the next print or flush of any lane, or by the host
// after the run (finish_prints); a lane's flush waits until the kernel has written its last line. The price is
// compile time: every operation call site then carries the log code as well (the device needs
// storageBuffer8BitAccess, which the Vulkan backend enables); on lavapipe a shader with one operation call site
// and gup_finish compiles in seconds, while print_api.comp's three call sites took minutes on a loaded 2-core
// machine, so it is opt-in. File operations name a registered file by index (RingConfig::fixed_files); reads land
// in the ring's fixed buffer (RingConfig::fixed_buffer_bytes), which gup_fixed_u32 / gup_put_fixed read. Every lane
// of the kernel may read and write any of it: give each lane its own range.

#ifndef GPU_URING_PRINT_GLSL
#define GPU_URING_PRINT_GLSL

#include "gpu_uring.glsl"
#ifdef GUP_PRINT_LOG
#include "gpu_uring_log.glsl"
#endif

// A status of gup_print only (not a protocol status): the ring has no print target.
const uint GUP_NO_TARGET = 0x100u;
// GuLaneState.flags bit: a file operation of the lane is in flight on its I/O slot (a library convention; the
// host's LANE_* flags use the low bits).
const uint GUP_LANE_FILE_OP = 0x80000000u;
// GuLaneState.flags bit: the lane printed through the print log; its flush waits until the kernel has written
// the log up to gu_st.log_end (a library convention, as GUP_LANE_FILE_OP).
const uint GUP_LANE_LOGGED = 0x40000000u;
// The completion slot of file operations (slot 0 is the lane's print slot).
const uint GUP_IO_SLOT = 1u;
// Rounds an operation tries (each one reaps completions) before it returns WOULD_BLOCK.
uint gup_tries = 64u;
// Loop iterations gup_running() counts per pass of the lane's main loop ("The loop cap counts code your lanes
// skip", above).
uint gup_pass_cost = 8u;
// Loop iterations each round of an operation counts, besides those the library counts itself: on lavapipe a
// round also runs the library's loops that no lane takes (the same rule).
uint gup_round_cost = 16u;

// ---- the lane's frame ---------------------------------------------------------------------------------------
// One pass of the lane's main loop: counts it, and returns false once the dispatch's budget is spent.
bool gup_running() {
    gu_iters += gup_pass_cost;
    return gu_can_start();
}
// Saves the lane's state (gu_st) for the host and the next dispatch. Call it once, last.
void gup_end() { gu_end((gu_st.flags & GU_LANE_FINISHED) != 0u ? GU_STATUS_READY : GU_STATUS_TIMED_OUT); }

// ---- building a line ----------------------------------------------------------------------------------------
// The calls below only record their piece; the operation that submits the line formats it, in one loop, so the
// formatters' code appears once per operation call site however many pieces a shader appends.
const uint GUP_MAX_PIECES = 32u; // pieces per line; later ones are dropped, like bytes past the line's end
const uint GUP_P_TEXT = 0u, GUP_P_CHAR = 1u, GUP_P_U64 = 2u, GUP_P_I32 = 3u, GUP_P_I64 = 4u, GUP_P_HEX = 5u,
           GUP_P_F32 = 6u, GUP_P_FIXED = 7u;
uint gup_kind[GUP_MAX_PIECES];
uint64_t gup_value[GUP_MAX_PIECES];
uint gup_pieces = 0u;
bool gup_dropped = false; // a piece past GUP_MAX_PIECES: the line is too long (LINE_TOO_LONG)

void gup_piece(uint kind, uint64_t value) {
    if (gup_pieces < GUP_MAX_PIECES) {
        gup_kind[gup_pieces] = kind;
        gup_value[gup_pieces] = value;
        gup_pieces++;
    } else {
        gup_dropped = true;
    }
}
// Starts a new line (the previous one is discarded).
void gup_line() { gup_pieces = 0u; gup_dropped = false; }
// Piece `k` of the host's text table (nothing for k >= GU_TEXT_ENTRIES).
void gup_text(uint k) { gup_piece(GUP_P_TEXT, uint64_t(k)); }
// One byte (e.g. 58u for ':', 10u for a newline).
void gup_char(uint c) { gup_piece(GUP_P_CHAR, uint64_t(c & 0xffu)); }
// Unsigned decimal.
void gup_uint(uint v) { gup_piece(GUP_P_U64, uint64_t(v)); }
void gup_uint(uint64_t v) { gup_piece(GUP_P_U64, v); }
// Signed decimal.
void gup_int(int v) { gup_piece(GUP_P_I32, uint64_t(uint(v))); }
void gup_int(int64_t v) { gup_piece(GUP_P_I64, uint64_t(v)); }
// Lowercase hex, no prefix, no leading zeros.
void gup_hex(uint v) { gup_piece(GUP_P_HEX, uint64_t(v)); }
void gup_hex(uint64_t v) { gup_piece(GUP_P_HEX, v); }
// A float with `digits` (0–9) digits after the point, rounded half to even (the same digits on every device
// and in Rust's LineBuf::f32).
void gup_float(float v, uint digits) { gup_piece(GUP_P_F32 | (min(digits, 9u) << 8), uint64_t(floatBitsToUint(v))); }
// `len` bytes of the ring's fixed buffer from byte `off` (e.g. what gup_read read), as they are when the line is
// submitted; nothing if the range leaves the buffer.
void gup_put_fixed(uint off, uint len) { gup_piece(GUP_P_FIXED, uint64_t(off) | (uint64_t(len) << 32)); }

// Formats the recorded pieces into the library's line buffer (gu_line, gu_len); gu_cut if the line does not fit.
void gup_format() {
    gu_line_begin();
    gu_cut = gup_dropped;
    for (uint i = 0u; i < gup_pieces; i++) {
        gu_iters++;
        uint kind = gup_kind[i] & 0xffu;
        uint64_t v = gup_value[i];
        if (kind == GUP_P_TEXT) {
            if (v < uint64_t(GU_TEXT_ENTRIES)) gu_put_text(uint(v));
        } else if (kind == GUP_P_CHAR) {
            gu_putc(uint(v));
        } else if (kind == GUP_P_U64) {
            gu_put_u64(v);
        } else if (kind == GUP_P_I32) {
            // The sign is tested on the 32-bit value: lavapipe (Mesa 22.3) evaluated `int64_t(x) < 0` as false
            // for a negative 32-bit x.
            int x = int(uint(v));
            if (x < 0) gu_putc(45u); // '-'
            gu_put_u64(x < 0 ? uint64_t(uint(-(x + 1))) + uint64_t(1) : uint64_t(uint(x))); // exact for INT_MIN
        } else if (kind == GUP_P_I64) {
            gu_put_i64(int64_t(v));
        } else if (kind == GUP_P_HEX) {
            gu_put_hex(v);
        } else if (kind == GUP_P_F32) {
            gu_put_f32(uintBitsToFloat(uint(v)), gup_kind[i] >> 8);
        } else if (kind == GUP_P_FIXED) {
            uint off = uint(v), len = uint(v >> 32);
            if (uint64_t(off) + uint64_t(len) <= uint64_t(gu_l.fixed_size)) {
                for (uint k = 0u; k < len && !gu_cut; k++) {
                    gu_iters++;
                    uint b = gu_l.fixed_off + off + k;
                    gu_putc((gu_a.w[b >> 2] >> ((b & 3u) * 8u)) & 0xffu);
                }
            }
        }
    }
}
// The 32-bit little-endian word at byte `off` (a multiple of 4) of the fixed buffer; 0 outside it.
uint gup_fixed_u32(uint off) {
    if (uint64_t(off) + 4u > uint64_t(gu_l.fixed_size) || (off & 3u) != 0u) return 0u;
    return gu_a.w[(gu_l.fixed_off + off) >> 2];
}

// ---- operations -----------------------------------------------------------------------------------------------
const uint GUP_OP_PRINT = 0u, GUP_OP_WRITE = 1u, GUP_OP_READ = 2u, GUP_OP_FLUSH = 3u;

#ifdef GUP_PRINT_LOG
// One round of a print (the line formatted in gu_line) or of the log part of a flush when the ring's prints go
// through the print log (PRINT_LOG, the default; PROTOCOL.md §7.1 and "The print log in GLSL"), after the round's
// reap. The lanes that call it together — the active lanes of the subgroup at this call — print together: one
// reservation (gu_log_begin), each lane its line's bytes, one completion. The log's duty is taken
// (gu_log_take_pending, gu_log_ring_if) and left (gu_log_leave) within the round, because the lanes that call next
// may be others: one holder round (the write in flight taken in, the completed prefix submitted), and no lane
// returns holding the duty, so no lane waits on another; a write still in flight is left in the DIRTY flag for the
// next round of any lane (a print or a flush) or the host's finish_print_log. Returns READY (printed: in the log,
// submitted or certain to be; flushed: the kernel has written the lane's last line), WOULD_BLOCK (no room in the
// log / not written yet; nothing of the line is in the log), or PROTOCOL_VIOLATION (a corrupted log word; counted).
uint gup_log_round(uint op) {
    uint status = GU_STATUS_WOULD_BLOCK;
    gu_log_take_pending();
    bool advanced = false;
    if (op == GUP_OP_PRINT) {
        GuLogBatch b = gu_log_begin(gu_len, 1u);
        if (b.status == GU_STATUS_READY) gu_log_put_line(b.pos);
        advanced = gu_log_end(b);
        if (b.status == GU_STATUS_READY) {
            gu_st.log_end = b.pos + gu_len;
            gu_st.flags |= GUP_LANE_LOGGED;
        }
        status = b.status;
    }
    gu_log_ring_if(advanced);
    gu_log_hold();
    gu_log_leave();
    // Acquire: pairs with the holder's release of log_written (the kernel wrote the bytes before it).
    if (op == GUP_OP_FLUSH && int(gu_local_ld_acq(gu_lctl(GU_LOCAL_CONTROL_LOG_WRITTEN)) - gu_st.log_end) >= 0) {
        status = GU_STATUS_READY;
    }
    return status;
}
#endif

// Every operation: gup_print, gup_write, gup_read and gup_flush are this function with `op` fixed. Each call site
// carries a copy of the ring code (a device inlines every call; "JIT cost" above), so a lane with several kinds of
// operation can call it from one site with `op` a variable: `file`, `file_off` for GUP_OP_WRITE and GUP_OP_READ,
// `fixed_off`, `len` for GUP_OP_READ (ignored otherwise), as the functions below take them.
uint gup_op(uint op, uint file, uint64_t file_off, uint fixed_off, uint len, out int res) {
    res = 0;
    uint lane = gu_lane_id;
    bool file_op = op == GUP_OP_WRITE || op == GUP_OP_READ;
    bool in_flight = (gu_st.flags & GUP_LANE_FILE_OP) != 0u;
    // One waited operation of a lane at a time: its result belongs to the call that submitted it.
    if (in_flight && !file_op) return GU_STATUS_WOULD_BLOCK;
    if (file_op && gu_l.slots_per_lane <= GUP_IO_SLOT) return GU_STATUS_BAD_SLOT;
    uint pflags = 0u;
    int fd = -1;
    if (op == GUP_OP_PRINT || op == GUP_OP_FLUSH) {
        // Acquire: pairs with the host's release store of the flags after the target (PROTOCOL.md §7).
        pflags = gu_host_ld_acq(gu_sctl(GU_SHARED_CONTROL_PRINT_FLAGS));
        if (pflags == 0u && op == GUP_OP_PRINT) {
            gu_st.flags |= GU_LANE_NO_TARGET;
            return GUP_NO_TARGET;
        }
        fd = int(gu_host_ld_rlx(gu_sctl(GU_SHARED_CONTROL_PRINT_FD)));
    }
    // The line, formatted once (the pieces as they are now): one copy of the formatters in the shader.
    if (op == GUP_OP_PRINT || op == GUP_OP_WRITE) {
        gup_format();
        // Longer than the lane's line: nothing of it is submitted (PROTOCOL.md §7), as the Rust lane.
        if (gu_cut) return GU_STATUS_LINE_TOO_LONG;
        if (op == GUP_OP_PRINT) gu_line_finish();
    }
    // Through the print log: a print, and a flush of a lane that printed through it (its log lines first).
    bool logged = false;
#ifdef GUP_PRINT_LOG
    logged = ((pflags & GU_PRINT_LOG) != 0u && op == GUP_OP_PRINT)
          || ((gu_st.flags & GUP_LANE_LOGGED) != 0u && op == GUP_OP_FLUSH);
    if (logged && gu_log_target() != GU_LOG_TARGET_OK) return GU_STATUS_PROTOCOL_VIOLATION;
#endif
    bool offset_mode = (pflags & GU_PRINT_OFFSET_MODE) != 0u;
    bool fixed_file = op != GUP_OP_PRINT || (pflags & GU_PRINT_FIXED_FILE) != 0u;
    bool staged = false;           // the line is in its staging line
    uint j = gu_st.next_line % gu_l.staging_lines;
    uint line_off = gu_line_off(lane, j);
    // Poll first when something is in flight that this call must collect or wait for.
    bool poll = in_flight || gu_st.pending_len != 0u || op == GUP_OP_FLUSH;
    for (uint i = 0u; i < gup_tries; i++) {
        gu_iters += gup_round_cost;
        if (!gu_can_start()) return GU_STATUS_TIMED_OUT;
        if (poll) {
            // One poll (it reaps first): the lane's stream print in flight (slot 0), else its I/O slot (with
            // nothing in flight there it is free, and the poll only reaps).
            uint k = (gu_st.pending_len != 0u || gu_l.slots_per_lane <= GUP_IO_SLOT) ? 0u : GUP_IO_SLOT;
            int r;
            uint s = gu_poll(lane, k, r);
            if (s == GU_STATUS_READY && k == 0u) {
                if (r != int(gu_st.pending_len)) {
                    // A failed or short line write: counted where host and device read it (as the print program).
                    gu_local_add_rlx(gu_lctl(GU_LOCAL_CONTROL_PRINT_ERRORS), 1u);
                    if (r < 0) gu_local_st_rlx(gu_lctl(GU_LOCAL_CONTROL_FF_LAST_ERROR), uint(r));
                }
                gu_st.pending_len = 0u;
            } else if (s == GU_STATUS_READY && in_flight) {
                gu_st.flags &= ~GUP_LANE_FILE_OP;
                res = r;
                return GU_STATUS_READY;
            }
            poll = false;
        }
#ifdef GUP_PRINT_LOG
        if (logged) {
            uint s = gup_log_round(op);
            if (op == GUP_OP_PRINT && s != GU_STATUS_WOULD_BLOCK) return s;
            if (s == GU_STATUS_WOULD_BLOCK) { poll = true; continue; }
            logged = false; // flushed: on to the lane's other operations
        }
#endif
        if (in_flight) { poll = true; continue; }   // submitted: wait for it
        if (op == GUP_OP_FLUSH) {
            // Acquire (inside gu_in_flight): the lane's fire-and-forget writes have completed.
            if (gu_st.pending_len == 0u && gu_in_flight(lane) == 0u) return GU_STATUS_READY;
            poll = true;
            continue;
        }
        // A stream print waits for the lane's previous line (its order); a file op for it too (one waited op).
        if (gu_st.pending_len != 0u) { poll = true; continue; }
        if (op != GUP_OP_READ && !staged) {
            // Acquire: pairs with the reaper's release once the kernel is done reading the staging line.
            if (gu_local_ld_acq(gu_lane_word(lane, j)) != 0u) { poll = true; continue; }
            gu_line_store(line_off);
            staged = true;
        }
        uint t;
        if (!gu_try_reserve(t)) { poll = true; continue; }
        // Reservation held: straight-line code until the publication.
        if (op == GUP_OP_READ) {
            gu_sqe_read_fixed(true, int(file), fixed_off, len, file_off);
        } else if (op == GUP_OP_WRITE) {
            gu_sqe_write(true, int(file), line_off, gu_len, file_off);
        } else {
            uint64_t off = ~uint64_t(0);
            if (offset_mode) off = gu_local_add64_rlx(gu_lctl(GU_LOCAL_CONTROL_PRINT_OFFSET), uint64_t(gu_len));
            gu_sqe_write(fixed_file, fd, line_off, gu_len, off);
        }
        bool ff = op == GUP_OP_PRINT && offset_mode;
        uint s = gu_commit(lane, t, ff ? GU_FF : GU_SLOT, op == GUP_OP_PRINT ? 0u : GUP_IO_SLOT, ff ? j + 1u : 0u);
        if (s != GU_STATUS_READY) return s;
        if (op != GUP_OP_READ) gu_st.next_line++;
        if (op != GUP_OP_PRINT) {
            gu_st.flags |= GUP_LANE_FILE_OP;
            in_flight = true;
            poll = true;
            continue;
        }
        if (!offset_mode) gu_st.pending_len = gu_len;
        gu_local_add_rlx(gu_lctl(GU_LOCAL_CONTROL_LINES_PRINTED), 1u);
        return GU_STATUS_READY;
    }
    return GU_STATUS_WOULD_BLOCK;
}

// Prints the line built since gup_line() (a '\n' is appended if missing) to the ring's print target.
uint gup_print() {
    int res;
    return gup_op(GUP_OP_PRINT, 0u, uint64_t(0), 0u, 0u, res);
}

// Writes the line built since gup_line(), as built, to registered file `file` at byte `offset` (~0: the file
// position). READY: `res` = bytes written, or -errno.
uint gup_write(uint file, uint64_t offset, out int res) {
    return gup_op(GUP_OP_WRITE, file, offset, 0u, 0u, res);
}

// Reads `len` bytes of registered file `file` at byte `offset` into the fixed buffer at byte `fixed_off`. READY:
// `res` = bytes read (0 at the end of the file), or -errno (-EFAULT: outside the fixed buffer).
uint gup_read(uint file, uint64_t offset, uint fixed_off, uint len, out int res) {
    return gup_op(GUP_OP_READ, file, offset, fixed_off, len, res);
}

// READY once every line this lane printed has been written (WOULD_BLOCK: not yet, or a file operation is in
// flight; TIMED_OUT: the dispatch's budget is spent).
uint gup_flush() {
    int res;
    return gup_op(GUP_OP_FLUSH, 0u, uint64_t(0), 0u, 0u, res);
}

// gup_flush, and on READY marks the lane finished (the host stops dispatching it once every lane is).
uint gup_finish() {
    uint s = gup_flush();
    if (s == GU_STATUS_READY) gu_st.flags |= GU_LANE_FINISHED;
    return s;
}

#endif
