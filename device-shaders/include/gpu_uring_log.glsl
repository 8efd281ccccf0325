// gpu_uring_log.glsl — §7.1 group-commit prints through the print log (PROTOCOL.md), step by step as the Rust
// reference (host/src/protocol/print_log.rs) does them. Include it after gpu_uring.glsl.
//
// A subgroup prints together: each active lane asks for the bytes of its next lines, up to GU_LOG_LANE_LINES of
// them (gu_log_begin); the elected lane reserves the bytes of as many lanes as fit, in lane order, and one ticket
// with one CAS on log_reserve (each lane's place comes from ballots: no subgroup arithmetic needed); each lane
// writes its lines into the log with plain stores (gu_log_byte / gu_log_word); the elected lane completes the
// ticket with one CAS on log_pub and counts the lines (gu_log_end), and if the CAS advanced the completed prefix
// the subgroup rings the log's duty word log_bell (the §3 combining doorbell, gu_log_ring_if).
//
// The duty (the holder) belongs to the subgroup: gu_log_holding is the same in every lane of it, and the
// functions that change it (gu_log_take_pending, gu_log_ring_if, gu_log_hold, gu_log_leave) are called by every
// lane of the subgroup together, from subgroup-uniform control flow; the elected lane makes the RMWs. A GLSL
// print never loops in the duty: gu_log_hold makes ONE holder round — (a) clear DIRTY, (b) take in a completed
// write (a write still in flight: return, the caller reaps and comes back), (c) submit one write of the completed
// prefix, (d) release — and the program calls it once per iteration of its loop, after a reap, so the holder
// polls its write between its own prints instead of waiting. It hands the duty on (DIRTY set, LOCK cleared)
// after GU_LOG_DUTY_WRITES writes and when it leaves its loop (budget spent, or done): the next subgroup that
// touches the log takes it; after the run the host's finish_print_log does.
//
// The log bytes are host-shared and written by the lane that reserved them, with byte stores where a line starts
// or ends inside a word (the rest of that word belongs to the neighbouring line, another lane's) and word stores
// in between: this needs storageBuffer8BitAccess. No RMW touches the arena.
//
// Budget: gu_log_begin's, gu_log_reserve's and gu_log_complete's loops count in gu_iters; the completing CAS loop
// is lock-free and ignores the soft budget (§0 rule 2: a reservation is always completed).

#ifndef GPU_URING_LOG_GLSL
#define GPU_URING_LOG_GLSL

#extension GL_EXT_shader_8bit_storage : require

// The arena (binding 0) as bytes, for the edges of log lines.
layout(std430, set = 0, binding = 0) coherent buffer GuArena8 { uint8_t b[]; } gu_a8;

// ---- the target (LogTarget::read) -----------------------------------------------------------------------------
const uint GU_LOG_TARGET_OK = 0u, GU_LOG_TARGET_NONE = 1u, GU_LOG_TARGET_UNUSABLE = 2u;
uint gu_log_base = 0u;  // arena offset of the log bytes
uint gu_log_size = 0u;  // a power of two
uint gu_log_flags = 0u; // PRINT_* flags
int gu_log_fd = 0;      // fixed-file index or raw fd

// Reads the print target and the log's place from SharedControl (host-written before the run; device code could
// rewrite them, so they are checked): GU_LOG_TARGET_OK, _NONE (no target: print_flags 0) or _UNUSABLE (prints are
// not in log mode, or the log lies outside the arena: counted as a violation).
uint gu_log_target() {
    // Acquire: pairs with the host's release store of the flags after the target and the log's place.
    uint flags = gu_host_ld_acq(gu_sctl(GU_SHARED_CONTROL_PRINT_FLAGS));
    if (flags == 0u) return GU_LOG_TARGET_NONE;
    if ((flags & GU_PRINT_LOG) == 0u) return GU_LOG_TARGET_UNUSABLE;
    uint base = gu_host_ld_rlx(gu_sctl(GU_SHARED_CONTROL_PRINT_LOG));
    uint size = gu_host_ld_rlx(gu_sctl(GU_SHARED_CONTROL_PRINT_LOG_BYTES));
    // The word stores below need a 4-aligned base (the host puts the log on a page boundary).
    if (bitCount(size) != 1 || size < 4096u || base < gu_l.staging || (base & 3u) != 0u
        || uint64_t(base) + uint64_t(size) > gu_l.arena_size) {
        gu_violation();
        return GU_LOG_TARGET_UNUSABLE;
    }
    gu_log_base = base;
    gu_log_size = size;
    gu_log_flags = flags;
    gu_log_fd = int(gu_host_ld_rlx(gu_sctl(GU_SHARED_CONTROL_PRINT_FD)));
    return GU_LOG_TARGET_OK;
}

// ---- ballots -----------------------------------------------------------------------------------------------------
// Whether `b` holds in any / every active lane (ballots: the vote operations are not required of the device).
bool gu_any(bool b) { return subgroupBallot(b) != uvec4(0u); }
bool gu_all(bool b) { return subgroupBallot(!b) == uvec4(0u); }

// The sum of `v` over the active lanes below this one (returned) and over every active lane (`total`), for
// v < 1024 (a lane's lines in one reservation: up to GU_LOG_LANE_LINES lines of at most 256 bytes): one ballot per
// bit, straight-line (no loop, no subgroup arithmetic).
#define GU_SUM_BIT(k) m = subgroupBallot((v & (1u << k)) != 0u); \
    p += subgroupBallotExclusiveBitCount(m) << k; t += subgroupBallotBitCount(m) << k;
uint gu_subgroup_prefix(uint v, out uint total) {
    uvec4 m;
    uint p = 0u, t = 0u;
    GU_SUM_BIT(0) GU_SUM_BIT(1) GU_SUM_BIT(2) GU_SUM_BIT(3) GU_SUM_BIT(4) GU_SUM_BIT(5) GU_SUM_BIT(6)
    GU_SUM_BIT(7) GU_SUM_BIT(8) GU_SUM_BIT(9)
    total = t;
    return p;
}
// The sum of `n` < 8 over every active lane in which `b` holds (three ballots).
uint gu_subgroup_count(bool b, uint n) {
    return subgroupBallotBitCount(subgroupBallot(b && (n & 1u) != 0u))
         + (subgroupBallotBitCount(subgroupBallot(b && (n & 2u) != 0u)) << 1)
         + (subgroupBallotBitCount(subgroupBallot(b && (n & 4u) != 0u)) << 2);
}

// ---- step 1: reserve (elected lane) ----------------------------------------------------------------------------
const uint GU_LOG_OK = 0u, GU_LOG_NO_BYTES = 1u, GU_LOG_NO_TICKETS = 2u, GU_LOG_CONTENDED = 3u, GU_LOG_VIOLATION = 4u;
uint gu_log_tix(uint t) { return (t % GU_LOG_TICKETS) * 4u; }

// Reserves `len` bytes and one ticket with one CAS on log_reserve: GU_LOG_OK with `ticket` and `start`;
// GU_LOG_NO_BYTES with the bytes that are `free`; GU_LOG_NO_TICKETS; GU_LOG_CONTENDED (every CAS lost to another
// lane's progress); GU_LOG_VIOLATION (counted).
uint gu_log_reserve(uint len, out uint ticket, out uint start, out uint free) {
    ticket = 0u;
    start = 0u;
    free = 0u;
    uint roff = gu_lctl(GU_LOCAL_CONTROL_LOG_RESERVE);
    for (uint i = 0u; i < GU_RESERVE_TRIES; i++) {
        gu_iters++;
        // The three words are read one at a time while the other two move: (R, N) first and, before a violation
        // is concluded, again (PROTOCOL.md §7.1 step 1). Acquire: pairs with the previous reserver's release CAS,
        // so the loads below see at least the `written` and C that reserver checked against.
        uint64_t cur = gu_local_ld64_acq(roff);
        // Acquire: pairs with the holder's release of log_written (the kernel is done with the bytes before it).
        uint written = gu_local_ld_acq(gu_lctl(GU_LOCAL_CONTROL_LOG_WRITTEN));
        // Acquire: every ticket below C was reserved before the completing CAS this reads.
        uint c = uint(gu_local_ld64_acq(gu_lctl(GU_LOCAL_CONTROL_LOG_PUB)) >> 32) & 0xffffu;
        uint r = uint(cur);
        uint n = uint(cur >> 32) & 0xffffu;
        uint used = r - written;
        uint outstanding = (n - c) & 0xffffu;
        if (used > gu_log_size || outstanding > GU_LOG_TICKETS) {
            // Relaxed: coherence orders it after the acquire loads above. Moved: read at different points, retry.
            if (gu_local_ld64_rlx(roff) != cur) continue;
            // (R, N) held while `written` and C were read: device code rewrote a word.
            gu_violation();
            return GU_LOG_VIOLATION;
        }
        if (outstanding == GU_LOG_TICKETS) return GU_LOG_NO_TICKETS;
        if (gu_log_size - used < len) { free = gu_log_size - used; return GU_LOG_NO_BYTES; }
        uint64_t nw = uint64_t(r + len) | (uint64_t((n + 1u) & 0xffffu) << 32);
        // Release on success (acq_rel here): the next reserver's acquire sees what this check used; success also
        // shows (R, N) unchanged since its load, so a stale `written` or C only understated the room.
        if (gu_local_cas64_acqrel(roff, cur, nw) == cur) {
            // Relaxed: released by this ticket's completing CAS on log_pub.
            gu_local_st_rlx(gu_lctl(GU_LOCAL_CONTROL_LOG_STARTS) + gu_log_tix(n), r);
            // Release: the lane that advances the prefix over this ticket reads the end (acquire) before its CAS.
            gu_local_st_rel(gu_lctl(GU_LOCAL_CONTROL_LOG_ENDS) + gu_log_tix(n), r + len);
            ticket = n;
            start = r;
            return GU_LOG_OK;
        }
    }
    return GU_LOG_CONTENDED;
}

// ---- step 2: the lane's bytes ------------------------------------------------------------------------------------
// Between gu_log_begin and gu_log_end each lane writes its reserved bytes with plain stores (byte position `pos`
// wraps at the log's end): gu_log_byte, and gu_log_word for 4 bytes at a position that is a multiple of 4 (the
// log's size is, so no word straddles its end).
void gu_log_byte(uint pos, uint v) { gu_a8.b[gu_log_base + (pos & (gu_log_size - 1u))] = uint8_t(v); }
void gu_log_word(uint pos, uint v) { gu_a.w[(gu_log_base + (pos & (gu_log_size - 1u))) >> 2] = v; }

// Step 2 for a line built in the library's line buffer (gu_line, gu_len bytes, gpu_uring.glsl): its bytes from
// position `pos`, one word store for each word of the log it fills alone, byte stores in its first and last
// words (which it may share with the neighbouring lines).
void gu_log_put_line(uint pos) {
    uint head = pos & 3u;
    uint base = pos - head;
    uint span = head + gu_len;
    uint sh = head * 8u;
    // Log word k (from `base`) holds the line's bytes 4k - head … 4k - head + 3.
    uint k1 = span >> 2;
    for (uint k = head != 0u ? 1u : 0u; k < k1; k++) {
        gu_iters++;
        uint lo = gu_line[min(k, GU_MAX_LINE_WORDS - 1u)];
        uint v = head == 0u ? lo : (gu_line[k - 1u] >> (32u - sh)) | (lo << sh);
        gu_log_word(base + 4u * k, v);
    }
    for (uint j = 0u; j < 8u; j++) {
        gu_iters++;
        uint k = j < 4u ? 0u : k1;
        uint off = 4u * k + (j & 3u);
        bool own = (j < 4u && head != 0u) || (j >= 4u && (span & 3u) != 0u && (k1 != 0u || head == 0u));
        if (own && off >= head && off < span) {
            uint b = off - head;
            gu_log_byte(base + off, (gu_line[b >> 2] >> ((b & 3u) * 8u)) & 0xffu);
        }
    }
}

// ---- step 3: complete (elected lane) ------------------------------------------------------------------------------
// Marks ticket `ticket` (bytes up to `end`) complete in log_pub — D (low 32), C (bits 32–47), done bitmap of
// C … C+15 (bits 48–63) — and advances C over the done prefix, D to the last such ticket's end. True if this CAS
// advanced the prefix (the caller rings log_bell). Lock-free: every failed CAS is another lane's progress.
bool gu_log_complete(uint ticket, uint end) {
    uint off = gu_lctl(GU_LOCAL_CONTROL_LOG_PUB);
    // Acquire: the ends of tickets other lanes marked (released by their CASes).
    uint64_t old = gu_local_ld64_acq(off);
    for (uint i = 0u; i < 4u * GU_RESERVE_TRIES; i++) {
        gu_iters++;
        uint d = uint(old);
        uint c = uint(old >> 32) & 0xffffu;
        uint bits = uint(old >> 48);
        uint o = (ticket - c) & 0xffffu;
        if (o >= GU_LOG_TICKETS) { gu_violation(); return false; }
        uint b = bits | (1u << o);
        uint m = uint(findLSB(~b)); // trailing ones of a 16-bit bitmap: 0 … 16
        uint64_t nw;
        if (m == 0u) {
            nw = uint64_t(d) | (uint64_t(c) << 32) | (uint64_t(b) << 48);
        } else {
            uint last = (c + m - 1u) & 0xffffu;
            // Acquire: pairs with the reserver's release store of its end. Never a later ticket's end (the one that
            // reuses the index): that one is reserved only after a CAS moved C past `last`, so this CAS fails.
            uint nd = last == ticket ? end : gu_local_ld_acq(gu_lctl(GU_LOCAL_CONTROL_LOG_ENDS) + gu_log_tix(last));
            uint nb = m >= 16u ? 0u : b >> m;
            nw = uint64_t(nd) | (uint64_t((c + m) & 0xffffu) << 32) | (uint64_t(nb) << 48);
        }
        // AcqRel: release publishes this subgroup's log bytes (and end); acquire takes in the marks it consumes.
        uint64_t cur = gu_local_cas64_acqrel(off, old, nw);
        if (cur == old) return m > 0u;
        old = cur;
    }
    // Only a word rewritten over and over by device code gets here.
    gu_violation();
    return false;
}

// ---- the print: steps 1–3 for the active lanes --------------------------------------------------------------
// A lane reserves up to GU_LOG_LANE_LINES of its lines at once (its next lines, contiguous in the log: one
// reservation and one completion for all of them), and the subgroup's lanes reserve together: one CAS on
// log_reserve and one on log_pub for up to GU_LOG_LANE_LINES × subgroup size lines.
const uint GU_LOG_LANE_LINES = 4u;

// A subgroup's reservation, from gu_log_begin to gu_log_end (the same in every active lane but `status`, `pos`).
struct GuLogBatch {
    uint status; // this lane: GU_STATUS_READY (its bytes are reserved at `pos`), GU_STATUS_WOULD_BLOCK (no room for
                 // them now: nothing of its lines is in the log; retry after a reap), GU_STATUS_PROTOCOL_VIOLATION
    uint pos;    // where this lane writes its bytes (its lines one after the other)
    uint st;     // the reservation's GU_LOG_* result
    uint ticket; // the batch's ticket
    uint end;    // the batch's end position
    uint lines;  // lines in the batch
};

// Step 1 for the active lanes, each asking for `len` (< 1024) bytes holding its next `nlines` (≤ GU_LOG_LANE_LINES)
// lines: the elected lane reserves the bytes of every lane with one CAS, or, if fewer bytes are free, of the lanes
// that fit, in lane order (a prefix of them); a lane's lines are reserved all or none. Every lane then writes its
// bytes (if READY) and every active lane calls gu_log_end with the batch: from here to the completing CAS the
// code is straight-line (PROTOCOL.md §0.2).
GuLogBatch gu_log_begin(uint len, uint nlines) {
    GuLogBatch b;
    b.st = GU_LOG_CONTENDED;
    b.ticket = 0u;
    b.end = 0u;
    uint start = 0u, free = 0u, prefix = 0u, total = 0u;
    bool take = len != 0u;
    for (uint attempt = 0u; attempt < 2u; attempt++) {
        gu_iters++;
        prefix = gu_subgroup_prefix(take ? len : 0u, total);
        if (total == 0u) { b.st = GU_LOG_NO_BYTES; break; }
        if (subgroupElect()) b.st = gu_log_reserve(total, b.ticket, start, free);
        b.st = subgroupBroadcastFirst(b.st);
        if (b.st != GU_LOG_NO_BYTES) break;
        free = subgroupBroadcastFirst(free);
        take = take && prefix + len <= free;
    }
    b.ticket = subgroupBroadcastFirst(b.ticket);
    start = subgroupBroadcastFirst(start);
    b.end = start + total;
    b.pos = start + prefix;
    b.lines = gu_subgroup_count(take, nlines);
    b.status = b.st == GU_LOG_VIOLATION ? GU_STATUS_PROTOCOL_VIOLATION
             : (b.st == GU_LOG_OK && take) ? GU_STATUS_READY : GU_STATUS_WOULD_BLOCK;
    return b;
}

// Step 3 (and the line count) for the batch gu_log_begin returned, called by the same active lanes after they
// wrote their bytes. Returns (in every active lane) whether the completing CAS advanced the prefix: then log_bell
// must be rung (gu_log_ring_if).
bool gu_log_end(GuLogBatch b) {
    if (b.st != GU_LOG_OK) return false;
    // Every lane's log stores happen-before the elected lane's completing CAS (release).
    gu_subgroup_sync();
    bool adv = false;
    if (subgroupElect()) {
        // Relaxed: a statistic.
        gu_local_add_rlx(gu_lctl(GU_LOCAL_CONTROL_LINES_PRINTED), b.lines);
        adv = gu_log_complete(b.ticket, b.end);
    }
    return subgroupBroadcastFirst(adv);
}

// ---- the duty (the holder), the subgroup's ----------------------------------------------------------------
bool gu_log_holding = false; // this subgroup holds LOCK on log_bell
bool gu_log_waiting = false; // the holder's write is in flight (or it found no SQ room): reap before its next round
uint gu_log_writes = 0u;     // writes this holding submitted (GU_LOG_DUTY_WRITES, then hand on)

// Step 4 / D1 on log_bell (elected lane): true if this lane is now the holder; otherwise it left DIRTY for the
// holder and waits for nobody. AcqRel: release carries the prefix advance to the holder whose DIRTY clear reads
// it; acquire takes in the previous holder's holder-only words.
bool gu_log_ring() {
    uint bell = gu_lctl(GU_LOCAL_CONTROL_LOG_BELL);
    if (gu_local_cas_acqrel(bell, 0u, GU_BELL_LOCK) == 0u) return true;
    return (gu_local_or_acqrel(bell, GU_BELL_LOCK | GU_BELL_DIRTY) & GU_BELL_LOCK) == 0u;
}

// Leaves the duty in the DIRTY bit for the next lane that touches the log (elected lane). Release: the next
// holder's acquire sees the holder-only words.
void gu_log_hand_off() {
    uint bell = gu_lctl(GU_LOCAL_CONTROL_LOG_BELL);
    gu_local_or_rlx(bell, GU_BELL_DIRTY);
    gu_local_and_rel(bell, ~GU_BELL_LOCK);
}

// Takes in the completed log write (state word `sw`, DONE; holder only): log_written advances by what the kernel
// wrote; a short write's remainder is unsubmitted again (the next write starts with it); a failed write is counted
// and its bytes dropped (the log must not stall on a target that refuses them).
void gu_log_finish_write(uint sw) {
    int res = int(gu_local_ld_rlx(gu_lctl(GU_LOCAL_CONTROL_LOG_WRES)));
    // Holder-only words: relaxed (the bell's release/acquire chain orders them between holders).
    uint written = gu_local_ld_rlx(gu_lctl(GU_LOCAL_CONTROL_LOG_WRITTEN));
    uint sub = gu_local_ld_rlx(gu_lctl(GU_LOCAL_CONTROL_LOG_SUB));
    uint len = min(sub - written, gu_log_size);
    uint n = len;
    if (res > 0) {
        n = min(uint(res), len);
        if (n < len) {
            uint s = gu_lctl(GU_LOCAL_CONTROL_LOG_SHORT_WRITES);
            gu_local_st_rlx(s, gu_local_ld_rlx(s) + 1u);
        }
    } else {
        // Relaxed: statistics, mirrored by the CQ-bell holder.
        gu_local_add_rlx(gu_lctl(GU_LOCAL_CONTROL_PRINT_ERRORS), 1u);
        gu_local_st_rlx(gu_lctl(GU_LOCAL_CONTROL_FF_LAST_ERROR), uint(res));
    }
    uint now = written + n;
    if ((gu_log_flags & GU_PRINT_OFFSET_MODE) != 0u) {
        // In log mode print_offset is holder-only: the file offset of log_written.
        uint po = gu_lctl(GU_LOCAL_CONTROL_PRINT_OFFSET);
        gu_local_st64_rlx(po, gu_local_ld64_rlx(po) + uint64_t(n));
    }
    gu_local_st_rlx(gu_lctl(GU_LOCAL_CONTROL_LOG_SUB), now);
    // Release: reservers that acquire it may overwrite the bytes before it (the kernel is done with them).
    gu_local_st_rel(gu_lctl(GU_LOCAL_CONTROL_LOG_WRITTEN), now);
    gu_local_st_rlx(gu_lctl(GU_LOCAL_CONTROL_LOG_WSTATE), sw & ~GU_RING_SLOT_STATE_MASK); // FREE, generation kept
}

// Submits one write of the completed, unsubmitted bytes [sub, d) cut at the log's end (holder, elected lane
// alone): one credit and one SQ ticket, the log's slot armed, WRITE_FIXED from the staging registration at
// print_offset (offset mode) or the file position, published. False: no SQ room or credit now (nothing done), or
// sq_pub rewritten (counted; undone).
bool gu_log_submit(uint sub, uint d) {
    uint off = sub & (gu_log_size - 1u);
    uint len = min(d - sub, gu_log_size - off);
    uint t;
    if (!gu_try_reserve(t)) return false;
    uint ws = gu_lctl(GU_LOCAL_CONTROL_LOG_WSTATE);
    // Relaxed: only the holder arms the slot; the publication release orders it before any completion.
    uint gen = ((gu_local_ld_rlx(ws) >> GU_RING_SLOT_GEN_SHIFT) + 1u) & GU_RING_SLOT_GEN_MASK;
    if (gen == 0u) gen = 1u;
    gu_local_st_rlx(ws, (gen << GU_RING_SLOT_GEN_SHIFT) | GU_RING_SLOT_PENDING);
    gu_local_st_rlx(gu_lctl(GU_LOCAL_CONTROL_LOG_SUB), sub + len);
    uint64_t file_off = ~uint64_t(0);
    if ((gu_log_flags & GU_PRINT_OFFSET_MODE) != 0u) file_off = gu_local_ld64_rlx(gu_lctl(GU_LOCAL_CONTROL_PRINT_OFFSET));
    gu_sqe_rw(GU_IORING_OP_WRITE_FIXED, (gu_log_flags & GU_PRINT_FIXED_FILE) != 0u ? GU_IOSQE_FIXED_FILE : 0u,
              gu_log_fd, file_off, gu_host_addr(gu_log_base + off), len, gu_l.staging_buf_index);
    // user_data = TAG_SLOT | generation << 32 | LOG_SLOT
    gu_sqe[GU_SQE_W_USER_DATA] = GU_LOG_SLOT;
    gu_sqe[GU_SQE_W_USER_DATA + 1u] = GU_TAG_SLOT_HI | gen;
    if (!gu_publish(t)) {
        gu_local_st_rlx(ws, gen << GU_RING_SLOT_GEN_SHIFT); // FREE
        gu_local_st_rlx(gu_lctl(GU_LOCAL_CONTROL_LOG_SUB), sub);
        gu_local_add_rlx(gu_lctl(GU_LOCAL_CONTROL_CQ_CREDITS), 1u);
        return false;
    }
    uint w = gu_lctl(GU_LOCAL_CONTROL_LOG_WRITES);
    gu_local_st_rlx(w, gu_local_ld_rlx(w) + 1u);
    return true;
}

// One holder round (elected lane): what the holding becomes.
const uint GU_LOG_HOLD = 0u, GU_LOG_WAIT = 1u, GU_LOG_RELEASED = 2u, GU_LOG_HANDED_ON = 3u;
uint gu_log_round() {
    uint bell = gu_lctl(GU_LOCAL_CONTROL_LOG_BELL);
    // (a) Acquire: synchronises with every lane whose DIRTY this clears: their prefix advances are visible to (c).
    gu_local_and_acq(bell, ~GU_BELL_DIRTY);
    // (b) The write in flight, if any: the holder is its committed reaper; it comes back after a reap.
    // Acquire: pairs with the reaper's release of DONE (the result is written).
    uint sw = gu_local_ld_acq(gu_lctl(GU_LOCAL_CONTROL_LOG_WSTATE));
    uint s = sw & GU_RING_SLOT_STATE_MASK;
    if (s == GU_RING_SLOT_PENDING || s == GU_RING_SLOT_REAPING) return GU_LOG_WAIT;
    if (s == GU_RING_SLOT_DONE) gu_log_finish_write(sw);
    // (c) Acquire: the log bytes below D, released by the completing CASes.
    uint d = uint(gu_local_ld64_acq(gu_lctl(GU_LOCAL_CONTROL_LOG_PUB)));
    uint sub = gu_local_ld_rlx(gu_lctl(GU_LOCAL_CONTROL_LOG_SUB));
    if (d != sub) {
        if (d - sub > gu_log_size) {
            // The prefix moved backwards or past the log: device code rewrote it. Counted; nothing is submitted
            // from it, and the duty stays pending for the host.
            gu_violation();
            gu_log_hand_off();
            return GU_LOG_HANDED_ON;
        }
        // No SQ room or credit now: reap and come back.
        if (!gu_log_submit(sub, d)) return GU_LOG_WAIT;
        gu_log_writes++;
        if (gu_log_writes >= GU_LOG_DUTY_WRITES) {
            // Bounded duty: the write is in flight; the next lane that touches the log takes it over.
            gu_log_hand_off();
            return GU_LOG_HANDED_ON;
        }
        return GU_LOG_WAIT;
    }
    // (d) Nothing in flight, nothing completed and unsubmitted. Release: the next holder's acquire sees the
    // holder-only words. Fails only if DIRTY was set again meanwhile: the next round looks again.
    if (gu_local_cas_rel(bell, GU_BELL_LOCK, 0u) == GU_BELL_LOCK) return GU_LOG_RELEASED;
    return GU_LOG_HOLD;
}

// The subgroup's duty after a round, or after taking it.
void gu_log_became(bool holder) {
    gu_log_holding = holder;
    gu_log_waiting = false;
    gu_log_writes = 0u;
}

// A duty a holder handed on (DIRTY without LOCK) is taken by the next subgroup that touches the log: one relaxed
// load of log_bell (a hint; the ring's RMW orders). Call from subgroup-uniform control flow.
void gu_log_take_pending() {
    if (gu_log_holding) return;
    bool h = false;
    if (subgroupElect()) {
        uint w = gu_local_ld_rlx(gu_lctl(GU_LOCAL_CONTROL_LOG_BELL));
        if ((w & (GU_BELL_LOCK | GU_BELL_DIRTY)) == GU_BELL_DIRTY) h = gu_log_ring();
    }
    if (subgroupBroadcastFirst(h)) gu_log_became(true);
}

// Step 4 after gu_log_end: rings log_bell if the batch's CAS advanced the prefix (a holding subgroup's next
// round sees the advance anyway). Call from subgroup-uniform control flow.
void gu_log_ring_if(bool advanced) {
    if (gu_log_holding || !gu_any(advanced)) return;
    bool h = false;
    if (subgroupElect()) h = gu_log_ring();
    if (subgroupBroadcastFirst(h)) gu_log_became(true);
}

// One holder round if the subgroup holds the duty. Call from subgroup-uniform control flow, after a reap when
// gu_log_waiting is set.
void gu_log_hold() {
    if (!gu_log_holding) return;
    uint r = GU_LOG_HOLD;
    if (subgroupElect()) r = gu_log_round();
    r = subgroupBroadcastFirst(r);
    gu_log_writes = subgroupBroadcastFirst(gu_log_writes);
    gu_log_waiting = r == GU_LOG_WAIT;
    if (r == GU_LOG_RELEASED || r == GU_LOG_HANDED_ON) gu_log_became(false);
}

// Before the subgroup leaves its loop (budget spent, or done): a held duty is handed on (a write may be in
// flight; the state is all in the device-local words). Call from subgroup-uniform control flow.
void gu_log_leave() {
    if (!gu_log_holding) return;
    if (subgroupElect()) gu_log_hand_off();
    gu_log_became(false);
}

#endif
