// gpu_uring/ring.h: the device protocol (PROTOCOL.md §3–§7), the steps every lane shares, on CUDA, HIP and host
// C++ (`gu::ring`; one lane's calls are `gu::lane` in lane.h). It follows the Rust lane
// (host/src/protocol/{reserve,window,publish,doorbell,reap}.rs) step by step; the comments name the section
// and the ordering of each access.
//
// Memory (PROTOCOL.md §1): the arena is host-shared and reached only through `shared_word` (system-scope loads
// and stores, no RMW: the type has none); the device-local block (LocalControl, completion slots, lane words)
// through `local_word` (device-scope atomics). Every wait is bounded and returns a `GU_STATUS_*`. Every word
// device code can write is range-checked before it indexes anything; one outside the protocol is counted in
// `protocol_violations` and not acted on.
//
// Aggregation: this is the lane-by-lane path. Warp/wavefront aggregation of credits, tickets, publication,
// claims and print offsets (PROTOCOL.md §5 "Subgroups") is gpu_uring/group.h, on top of the same steps.
#ifndef GPU_URING_RING_H
#define GPU_URING_RING_H

#include "atomic.h"
#include "backoff.h"
#include "print.h"

namespace gu {

// How an operation completes (PROTOCOL.md §4).
enum completion_kind : uint32_t { complete_ff = 0, complete_skip = 1, complete_slot = 2 };
struct completion {
    uint32_t kind;
    uint32_t slot; // lane-relative, for complete_slot
};
GU_FN completion fire_and_forget() { return completion{complete_ff, 0}; }
GU_FN completion skip_success() { return completion{complete_skip, 0}; }
GU_FN completion in_slot(uint32_t k) { return completion{complete_slot, k}; }

// A file an SQE acts on: a registered (fixed) file by index, or a raw descriptor (refused by a confined ring).
struct file_ref {
    int32_t fd;
    uint32_t fixed;
};
GU_FN file_ref fixed_file(uint32_t index) { return file_ref{(int32_t)index, 1}; }
GU_FN file_ref raw_fd(int32_t fd) { return file_ref{fd, 0}; }

// One 64-byte SQE image, built in registers and stored with eight 64-bit stores (§3 fill).
struct sqe {
    uint64_t w[8];

    GU_FN static sqe rw(uint32_t opcode, uint32_t flags, int32_t fd, uint64_t off, uint64_t addr, uint32_t len,
                        uint32_t buf_index) {
        sqe s;
        s.w[0] = (uint64_t)(opcode & 0xffu) | (uint64_t)(flags & 0xffu) << 8 | (uint64_t)(uint32_t)fd << 32;
        s.w[1] = off;
        s.w[2] = addr;
        s.w[3] = len; // rw_flags 0
        s.w[4] = 0;   // user_data: set at commit
        s.w[5] = buf_index & 0xffffu;
        s.w[6] = 0;
        s.w[7] = 0;
        return s;
    }
    GU_FN static sqe nop() { return rw(GU_IORING_OP_NOP, 0, -1, 0, 0, 0, 0); }
    // An SQE on file `f`: IOSQE_FIXED_FILE for a registered file (as the io-uring crate's `types::Fixed`).
    GU_FN static sqe on_file(uint32_t opcode, file_ref f, uint64_t off, uint64_t addr, uint32_t len,
                             uint32_t buf_index) {
        return rw(opcode, f.fixed != 0 ? GU_IOSQE_FIXED_FILE : 0, f.fd, off, addr, len, buf_index);
    }
    GU_FN uint32_t flags() const { return (uint32_t)(w[0] >> 8) & 0xffu; }
    GU_FN void set_flags(uint32_t f) { w[0] = (w[0] & ~(uint64_t)0xff00u) | (uint64_t)(f & 0xffu) << 8; }
    GU_FN uint64_t user_data() const { return w[4]; }
    GU_FN void set_user_data(uint64_t ud) { w[4] = ud; }
};

namespace proto {
enum : uint32_t {
    no_stream = 0xffffffffu,
    tag_mask_hi = 0xc0000000u,
    // The filler NOP's user_data: TAG_FF, lane 0xffff (none), no line.
    hole_lane = 0xffffu,
};
enum bell : uint32_t { sq_bell = 0, cq_bell = 1 };

GU_FN uint32_t slot_word(uint32_t gen, uint32_t st) {
    return (gen & GU_RING_SLOT_GEN_MASK) << GU_RING_SLOT_GEN_SHIFT | (st & GU_RING_SLOT_STATE_MASK);
}
GU_FN uint32_t slot_generation(uint32_t word) { return word >> GU_RING_SLOT_GEN_SHIFT; }
GU_FN uint32_t slot_state(uint32_t word) { return word & GU_RING_SLOT_STATE_MASK; }
// One more generation, skipping 0 (generation 0 never names an armed slot).
GU_FN uint32_t next_generation(uint32_t g) {
    uint32_t n = (g + 1) & GU_RING_SLOT_GEN_MASK;
    return n == 0 ? 1 : n;
}
GU_FN uint64_t slot_user_data(uint32_t g, uint32_t gen) {
    return GU_TAG_SLOT_UD | (uint64_t)(gen & GU_RING_SLOT_GEN_MASK) << 32 | g;
}
// Fire-and-forget payload: lane in bits 16–31 (0xffff: none), staging line + 1 in bits 0–15 (0: none).
GU_FN uint64_t ff_user_data(uint32_t lane, uint32_t line_plus_1) {
    return (uint64_t)((lane & 0xffffu) << 16 | (line_plus_1 & 0xffffu));
}
GU_FN uint32_t trailing_ones(uint32_t b) {
    uint32_t n = 0;
    while (n < 32 && (b >> n & 1u) != 0) {
        n++;
    }
    return n;
}
} // namespace proto

// The print log's place and target (§7.1), read from SharedControl (gpu_uring/print_log.h).
struct log_target {
    uint32_t base;  // arena offset of the log bytes
    uint32_t size;  // a power of two
    uint32_t flags; // PRINT_*
    int32_t fd;     // fixed-file index or raw fd
};
// Why log bytes could not be reserved now (besides GU_STATUS_PROTOCOL_VIOLATION).
enum log_room : uint32_t { log_no_bytes = 0x200, log_no_ticket = 0x201, log_contended = 0x202 };

// The memory of one ring as a lane sees it: the arena (host-shared), the device-local block and the layout.
class ring {
  public:
    uint8_t *arena;
    uint8_t *local;
    const gpu_uring::RingLayout *l;

    GU_FN local_word<uint32_t> l32(uint32_t off) const {
        return local_word<uint32_t>(reinterpret_cast<uint32_t *>(local + off));
    }
    GU_FN local_word<int32_t> li32(uint32_t off) const {
        return local_word<int32_t>(reinterpret_cast<int32_t *>(local + off));
    }
    GU_FN local_word<uint64_t> l64(uint32_t off) const {
        return local_word<uint64_t>(reinterpret_cast<uint64_t *>(local + off));
    }
    // A word of the arena: the kernel's ring header, SharedControl, SQEs, CQEs.
    GU_FN shared_word<uint32_t> s32(uint32_t off) const {
        return shared_word<uint32_t>(reinterpret_cast<uint32_t *>(arena + off));
    }
    GU_FN shared_word<int32_t> si32(uint32_t off) const {
        return shared_word<int32_t>(reinterpret_cast<int32_t *>(arena + off));
    }
    GU_FN shared_word<uint64_t> s64(uint32_t off) const {
        return shared_word<uint64_t>(reinterpret_cast<uint64_t *>(arena + off));
    }
    // SharedControl field at `off` (GU_SHARED_CONTROL_*).
    GU_FN uint32_t ctl(uint32_t off) const { return l->control + off; }
    GU_FN uint32_t nslots() const { return l->lanes * l->slots_per_lane; }
    // Completion slot `g` (device-local): state, result, flags, owner.
    GU_FN uint32_t slot_off(uint32_t g) const { return l->slots + g * GU_SIZEOF_COMPLETION_SLOT; }
    // Lane word `line` of `lane` (`line == staging_lines`: its in-flight count). Callers range-check.
    GU_FN local_word<uint32_t> lane_word(uint32_t lane, uint32_t line) const {
        return l32(l->lane_words + (lane * (l->staging_lines + 1) + line) * 4u);
    }
    GU_FN uint32_t line_off(uint32_t lane, uint32_t line) const {
        return l->staging + (lane * l->staging_lines + line) * l->line_bytes;
    }

    // §3 fill: the ticket's SQE, all 64 bytes, with plain (relaxed, system-scope) stores. The publishing CAS's
    // release (and the SQ-bell holder's system fence) orders them before the kernel's read.
    GU_FN void write_sqe(uint32_t ticket, const sqe &s) const {
        uint32_t off = l->sqes + (ticket & l->sq_mask) * GU_SIZEOF_SQE;
        for (uint32_t i = 0; i < 8; i++) {
            s64(off + i * 8u).store(s.w[i], mo::relaxed);
        }
    }
    // §5: a claimed CQE (relaxed loads: the CQ tail acquire made it visible).
    GU_FN void read_cqe(uint32_t pos, uint64_t &ud, int32_t &res, uint32_t &flags) const {
        uint32_t off = l->cqes + (pos & l->cq_mask) * GU_SIZEOF_CQE;
        ud = s64(off + GU_CQE_USER_DATA).load(mo::relaxed);
        res = si32(off + GU_CQE_RES).load(mo::relaxed);
        flags = s32(off + GU_CQE_FLAGS).load(mo::relaxed);
    }

    // Which registered buffer holds arena bytes [off, off + len): the staging lines or the fixed region. The
    // end is computed in 64 bits, so a length whose end wraps 2^32 lies in neither (the Rust `buf_index`).
    GU_FN bool buf_index(uint32_t off, uint32_t len, uint32_t &index) const {
        uint64_t end = (uint64_t)off + len;
        uint64_t staging_end = (uint64_t)l->staging + (uint64_t)l->lanes * l->staging_lines * l->line_bytes;
        if (off >= l->staging && end <= staging_end) {
            index = l->staging_buf_index;
            return true;
        }
        if (l->fixed_size > 0 && off >= l->fixed && end <= (uint64_t)l->fixed + l->fixed_size) {
            index = l->fixed_buf_index;
            return true;
        }
        return false;
    }

    // A write of arena bytes [arena_off, arena_off + len) to `f` at `file_off` (all ones: at the file position):
    // WRITE_FIXED when the bytes lie in a registered buffer, a plain WRITE otherwise (which a confined ring
    // refuses). The SQE the Rust `Lane::write_sqe` builds, byte for byte.
    GU_FN sqe write_sqe(file_ref f, uint32_t arena_off, uint32_t len, uint64_t file_off) const {
        uint32_t index = 0;
        bool registered = buf_index(arena_off, len, index);
        return sqe::on_file(registered ? GU_IORING_OP_WRITE_FIXED : GU_IORING_OP_WRITE, f, file_off,
                            l->arena_host_base + arena_off, len, registered ? index : 0);
    }
    // A READ_FIXED of `len` bytes of `f` at `file_off` into the fixed region at `fixed_off` (the Rust
    // `Lane::read_fixed_sqe`; an address outside the registered region completes -EFAULT).
    GU_FN sqe read_fixed_sqe(file_ref f, uint32_t fixed_off, uint32_t len, uint64_t file_off) const {
        return sqe::on_file(GU_IORING_OP_READ_FIXED, f, file_off,
                            l->arena_host_base + (uint64_t)l->fixed + fixed_off, len, l->fixed_buf_index);
    }

    // Counts a device-written word found outside the protocol (relaxed: a statistic).
    GU_FN void violation() const { l32(GU_LOCAL_CONTROL_PROTOCOL_VIOLATIONS).fetch_add(1, mo::relaxed); }

    // ---- §4 credits -------------------------------------------------------------------------------------

    // Takes up to `n` CQ credits with one CAS; how many (0: none free, or the word is corrupted).
    GU_FN uint32_t take_credits(uint32_t n) const {
        local_word<uint32_t> c = l32(GU_LOCAL_CONTROL_CQ_CREDITS);
        for (uint32_t i = 0; i < GU_RESERVE_TRIES; i++) {
            uint32_t cur = c.load(mo::relaxed);
            if (cur == 0) {
                break;
            }
            if (cur > l->credit_pool) {
                // More credits than the pool holds: device code rewrote the word.
                violation();
                break;
            }
            uint32_t k = cur < n ? cur : n;
            // Relaxed: a credit orders nothing; the CQ it stands for is bounded by the counts alone.
            if (c.compare_exchange(cur, cur - k, mo::relaxed)) {
                return k;
            }
        }
        return 0;
    }
    GU_FN void return_credits(uint32_t n) const {
        if (n > 0) {
            // Relaxed: see take_credits.
            l32(GU_LOCAL_CONTROL_CQ_CREDITS).fetch_add(n, mo::relaxed);
        }
    }

    // ---- §3 tickets -------------------------------------------------------------------------------------

    // Takes up to `n` contiguous SQ tickets with one CAS. READY with `first`/`k`; WOULD_BLOCK (full, contended)
    // or PROTOCOL_VIOLATION (counted). `head_seen`: the caller's cached kernel SQ head.
    GU_OUTLINE uint32_t take_tickets(uint32_t n, uint32_t &head_seen, uint32_t &first, uint32_t &k) const {
        local_word<uint32_t> reserve = l32(GU_LOCAL_CONTROL_SQ_RESERVE);
        uint32_t entries = l->sq_entries;
        uint32_t far = entries > 0x7fffffffu ? 0xffffffffu : entries * 2u;
        for (uint32_t i = 0; i < GU_RESERVE_TRIES; i++) {
            // 1. Acquire, paired with the release of the CAS below: the head and prefix the lane that reserved
            // up to `r` had read happen before this lane's loads of them.
            uint32_t r = reserve.load(mo::acquire);
            // 2. Acquire: the SQE stores of every published ticket.
            uint32_t published = (uint32_t)l64(GU_LOCAL_CONTROL_SQ_PUB).load(mo::acquire);
            uint32_t sq_room = head_seen + entries - r;
            if (sq_room == 0 || sq_room > far) {
                // 3. Acquire (system scope, a waited load of host memory): the kernel has read every SQE before
                // the head, so those slots may be overwritten.
                head_seen = s32(l->sq_head).load(mo::acquire);
                sq_room = head_seen + entries - r;
            }
            // `r` was read first; head and published tail never pass a reservation: further ahead means a
            // rewritten word (signed differences; a stale `r` is behind).
            if ((int32_t)(r - head_seen) > (int32_t)entries || (int32_t)(r - published) > (int32_t)l->w_sq) {
                violation();
                return GU_STATUS_PROTOCOL_VIOLATION;
            }
            uint32_t w_room = published + l->w_sq - r;
            if (sq_room == 0 || sq_room > far || w_room == 0 || w_room > l->w_sq) {
                return GU_STATUS_WOULD_BLOCK;
            }
            uint32_t take = n < sq_room ? n : sq_room;
            take = take < w_room ? take : w_room;
            // 5. Release on success: carries the head and prefix this lane read to the next reserver.
            if (reserve.compare_exchange(r, r + take, mo::release)) {
                first = r;
                k = take;
                return GU_STATUS_READY;
            }
        }
        return GU_STATUS_WOULD_BLOCK;
    }

    // ---- §3 publication windows (sq_pub, cq_pub) --------------------------------------------------------

    // Marks `pos … pos+k−1` (1 ≤ k ≤ 32) in a (low: base, high: bitmap) word and advances the base over the
    // prefix of set bits. READY (`moved`: the base advanced) or PROTOCOL_VIOLATION (outside the window;
    // counted, nothing marked — never masked).
    GU_OUTLINE uint32_t mark_and_advance(uint32_t word_off, uint32_t pos, uint32_t k, bool &moved) const {
        local_word<uint64_t> word = l64(word_off);
        k = k < 1 ? 1 : k > 32 ? 32 : k;
        uint32_t mask = k == 32 ? 0xffffffffu : (1u << k) - 1u;
        uint64_t old = word.load(mo::relaxed);
        for (;;) {
            uint32_t base = (uint32_t)old;
            uint32_t o = pos - base;
            if (o >= 32 || o + k > 32) {
                violation();
                return GU_STATUS_PROTOCOL_VIOLATION;
            }
            uint32_t bits = (uint32_t)(old >> 32) | mask << o;
            uint32_t m = proto::trailing_ones(bits);
            uint32_t nbits = m == 32 ? 0 : bits >> m;
            uint64_t next = (uint64_t)(base + m) | (uint64_t)nbits << 32;
            // AcqRel: release publishes this lane's SQE stores (CQE reads); acquire takes in those of the lanes
            // whose bits this CAS consumes, so the doorbell holder that acquires this word sees them all. A
            // failure (which loads `old`) is a retry whose every failure means another lane made progress.
            if (word.compare_exchange(old, next, mo::acq_rel)) {
                moved = m > 0;
                return GU_STATUS_READY;
            }
        }
    }

    // ---- the combining doorbell (§3 D1/D2, §5.5) --------------------------------------------------------

    GU_FN uint32_t bell_word(uint32_t b) const {
        return b == proto::sq_bell ? GU_LOCAL_CONTROL_SQ_BELL : GU_LOCAL_CONTROL_CQ_BELL;
    }

    // D1, by a lane whose CAS advanced the published prefix (or that found a left-over duty).
    GU_OUTLINE void ring_bell(uint32_t b) const {
        local_word<uint32_t> bw = l32(bell_word(b));
        // Fast path: an idle bell is taken with LOCK alone; the first round needs no DIRTY to clear (the CAS's
        // acquire takes in the previous holder's release). AcqRel as below.
        uint32_t idle = 0;
        if (bw.compare_exchange(idle, GU_BELL_LOCK, mo::acq_rel)) {
            hold(b, false);
            return;
        }
        // AcqRel: the release carries this lane's prefix advance to the holder whose DIRTY-clearing acquire
        // reads this RMW; the acquire, should this lane become the holder, takes in the previous holder's
        // release. LOCK already set: another lane holds the duty and DIRTY tells it to look again.
        uint32_t old = bw.fetch_or(GU_BELL_LOCK | GU_BELL_DIRTY, mo::acq_rel);
        if ((old & GU_BELL_LOCK) == 0) {
            hold(b, true);
        }
    }

    // A duty a holder left after its rounds ran out: DIRTY without LOCK. Relaxed: only a hint; ring_bell's RMW
    // orders.
    GU_FN void take_pending(uint32_t b) const {
        uint32_t w = l32(bell_word(b)).load(mo::relaxed);
        if ((w & GU_BELL_DIRTY) != 0 && (w & GU_BELL_LOCK) == 0) {
            ring_bell(b);
        }
    }

    // D2: at most GU_BELL_ROUNDS rounds of constant work; waits for nobody.
    GU_OUTLINE void hold(uint32_t b, bool dirty) const {
        local_word<uint32_t> bw = l32(bell_word(b));
        bool sq = b == proto::sq_bell;
        local_word<uint32_t> stored = l32(sq ? GU_LOCAL_CONTROL_SQ_TAIL_STORED : GU_LOCAL_CONTROL_CQ_HEAD_STORED);
        uint32_t prefix = sq ? GU_LOCAL_CONTROL_SQ_PUB : GU_LOCAL_CONTROL_CQ_PUB;
        uint32_t kernel = sq ? l->sq_tail : l->cq_head;
        uint32_t entries = sq ? l->sq_entries : l->cq_entries;
        // The CQ head is stored once it is the lag ahead (PROTOCOL.md §5 step 5); the SQ tail at once.
        uint32_t lag = sq ? 1u : l->w_cq / GU_CQ_HEAD_LAG_DIVISOR;
        lag = lag == 0 ? 1u : lag;
        for (uint32_t round = 0; round < GU_BELL_ROUNDS; round++) {
            // (a) Acquire: synchronises with the release RMW of every lane whose DIRTY this clears, so their
            // prefix advances are visible to (b).
            if (dirty) {
                bw.fetch_and(~(uint32_t)GU_BELL_DIRTY, mo::acquire);
            }
            dirty = true;
            // (b) Acquire: the SQE stores (CQE reads) below the prefix, released by the publishing CASes.
            uint32_t t = (uint32_t)l64(prefix).load(mo::acquire);
            // Holder-only word: relaxed (the lock's release/acquire chain orders it between holders).
            uint32_t last = stored.load(mo::relaxed);
            if (t != last) {
                if (t - last <= entries) {
                    if (t - last >= lag) {
                        // (c) System-scope release fence (CUDA fence.acq_rel.sys = __threadfence_system; HIP
                        // system-scope fence): the SQE stores this holder acquired at device scope become
                        // visible to the kernel before the index; then the one writer's release store of the
                        // kernel word.
                        fence_system(mo::release);
                        s32(kernel).store(t, mo::release);
                        stored.store(t, mo::relaxed);
                    }
                    mirrors(sq, t);
                } else {
                    // The prefix moved backwards or past the ring: rewritten. Counted; the kernel word keeps
                    // its last good value.
                    violation();
                }
            }
            // (d) Release: the next holder's acquire sees `stored`. Fails only if DIRTY was set again.
            uint32_t locked = GU_BELL_LOCK;
            if (bw.compare_exchange(locked, 0, mo::release)) {
                return;
            }
        }
        // Out of rounds: leave DIRTY for the next lane that touches the ring. Release: as (d).
        bw.fetch_and(~(uint32_t)GU_BELL_LOCK, mo::release);
    }

    // The holder's mirror stores (host-shared words whose one writer it is, §9) at each advance of the prefix
    // `t`: relaxed loads of device-local words (the bell's chain orders what matters), release stores.
    GU_OUTLINE void mirrors(bool sq, uint32_t t) const {
        uint32_t credits = l32(GU_LOCAL_CONTROL_CQ_CREDITS).load(mo::relaxed);
        if (sq) {
            s32(ctl(GU_SHARED_CONTROL_SQ_CREDITS_FREE)).store(credits, mo::release);
            return;
        }
        s32(ctl(GU_SHARED_CONTROL_CREDITS_FREE)).store(credits, mo::release);
        s32(ctl(GU_SHARED_CONTROL_CQ_RELEASED)).store(t, mo::release);
        uint32_t ff = l32(GU_LOCAL_CONTROL_FF_ERRORS).load(mo::relaxed);
        uint32_t skip = l32(GU_LOCAL_CONTROL_SKIP_FAILURES).load(mo::relaxed);
        uint32_t lines = l32(GU_LOCAL_CONTROL_LINES_PRINTED).load(mo::relaxed);
        uint32_t perr = l32(GU_LOCAL_CONTROL_PRINT_ERRORS).load(mo::relaxed);
        uint32_t foreign = l32(GU_LOCAL_CONTROL_FOREIGN_CQES).load(mo::relaxed);
        uint32_t viol = l32(GU_LOCAL_CONTROL_PROTOCOL_VIOLATIONS).load(mo::relaxed);
        uint32_t sum = ff + skip + lines + perr + foreign + viol;
        local_word<uint32_t> shadow = l32(GU_LOCAL_CONTROL_MIRROR_SUM);
        if (shadow.load(mo::relaxed) == sum) {
            return;
        }
        shadow.store(sum, mo::relaxed);
        s32(ctl(GU_SHARED_CONTROL_FF_ERRORS)).store(ff, mo::release);
        s32(ctl(GU_SHARED_CONTROL_SKIP_FAILURES)).store(skip, mo::release);
        s32(ctl(GU_SHARED_CONTROL_LINES_PRINTED)).store(lines, mo::release);
        s32(ctl(GU_SHARED_CONTROL_PRINT_ERRORS)).store(perr, mo::release);
        s32(ctl(GU_SHARED_CONTROL_FOREIGN_CQES)).store(foreign, mo::release);
        s32(ctl(GU_SHARED_CONTROL_PROTOCOL_VIOLATIONS)).store(viol, mo::release);
        si32(ctl(GU_SHARED_CONTROL_FF_LAST_ERROR))
            .store(li32(GU_LOCAL_CONTROL_FF_LAST_ERROR).load(mo::relaxed), mo::release);
        s64(ctl(GU_SHARED_CONTROL_FF_LAST_USER_DATA))
            .store(l64(GU_LOCAL_CONTROL_FF_LAST_USER_DATA).load(mo::relaxed), mo::release);
    }

    // §3 publish of filled tickets `first … first+k−1`; rings the SQ bell if the published prefix moved.
    GU_FN uint32_t publish_tickets(uint32_t first, uint32_t k) const {
        bool moved = false;
        uint32_t st = mark_and_advance(GU_LOCAL_CONTROL_SQ_PUB, first, k, moved);
        if (st == GU_STATUS_READY && moved) {
            ring_bell(proto::sq_bell);
        }
        return st;
    }
    GU_OUTLINE uint32_t publish_sqe(uint32_t ticket, const sqe &s) const {
        write_sqe(ticket, s);
        return publish_tickets(ticket, 1);
    }

    // ---- §5 reaping -------------------------------------------------------------------------------------

    GU_FN void record_failure(uint64_t ud, int32_t res) const {
        // Relaxed: statistics, mirrored by the CQ-bell holder after the cq_pub release that follows.
        l32(GU_LOCAL_CONTROL_FF_ERRORS).fetch_add(1, mo::relaxed);
        li32(GU_LOCAL_CONTROL_FF_LAST_ERROR).store(res, mo::relaxed);
        l64(GU_LOCAL_CONTROL_FF_LAST_USER_DATA).store(ud, mo::relaxed);
    }

    // §5.4: one CQE into its slot or the counters; the credits it frees.
    GU_OUTLINE uint32_t dispatch(uint64_t ud, int32_t res, uint32_t flags) const {
        uint32_t tag = (uint32_t)(ud >> GU_TAG_SHIFT);
        if (tag == GU_TAG_SLOT) {
            uint32_t g = (uint32_t)ud;
            uint32_t gen = (uint32_t)(ud >> 32) & GU_RING_SLOT_GEN_MASK;
            bool delivered = false;
            if (g == GU_LOG_SLOT) {
                // The print log's write (§7.1): the same claim on the log's own slot.
                local_word<uint32_t> state = l32(GU_LOCAL_CONTROL_LOG_WSTATE);
                uint32_t pending = proto::slot_word(gen, GU_RING_SLOT_PENDING);
                if (state.compare_exchange(pending, proto::slot_word(gen, GU_RING_SLOT_REAPING), mo::relaxed)) {
                    li32(GU_LOCAL_CONTROL_LOG_WRES).store(res, mo::relaxed);
                    // Release: the holder's acquire of DONE sees the result.
                    state.store(proto::slot_word(gen, GU_RING_SLOT_DONE), mo::release);
                    delivered = true;
                }
            } else if (g < nslots()) {
                uint32_t so = slot_off(g);
                local_word<uint32_t> state = l32(so + GU_COMPLETION_SLOT_STATE);
                // Only a PENDING slot of the same generation takes the CQE, once. Relaxed: the owner's PENDING
                // store reached us through the kernel (SQ tail release, CQ tail acquire).
                uint32_t pending = proto::slot_word(gen, GU_RING_SLOT_PENDING);
                if (state.compare_exchange(pending, proto::slot_word(gen, GU_RING_SLOT_REAPING), mo::relaxed)) {
                    li32(so + GU_COMPLETION_SLOT_RESULT).store(res, mo::relaxed);
                    l32(so + GU_COMPLETION_SLOT_FLAGS).store(flags, mo::relaxed);
                    // Release: the owner's acquire of DONE sees result and flags.
                    state.store(proto::slot_word(gen, GU_RING_SLOT_DONE), mo::release);
                    delivered = true;
                }
            }
            if (!delivered) {
                // Stale or forged (another generation, no such slot): counted and recorded, never delivered.
                l32(GU_LOCAL_CONTROL_FOREIGN_CQES).fetch_add(1, mo::relaxed);
                record_failure(ud, res);
            }
            // Every TAG_SLOT CQE was paid for by a reservation's credit, delivered or not.
            return 1;
        }
        if (tag == GU_TAG_FF) {
            uint32_t lane = (uint32_t)ud >> 16;
            uint32_t line = (uint32_t)ud & 0xffffu;
            if (res < 0) {
                record_failure(ud, res);
                if (line != 0) {
                    l32(GU_LOCAL_CONTROL_PRINT_ERRORS).fetch_add(1, mo::relaxed);
                }
            }
            if (lane < l->lanes) {
                if (line != 0 && line <= l->staging_lines) {
                    // Release: the kernel is done with the line; its owner may refill it.
                    lane_word(lane, line - 1).store(0, mo::release);
                }
                lane_word(lane, l->staging_lines).fetch_add(0xffffffffu, mo::release);
            }
            return 1;
        }
        if (tag == GU_TAG_SKIP) {
            // Only failures of skip-success ops post; they hold no credit.
            l32(GU_LOCAL_CONTROL_SKIP_FAILURES).fetch_add(1, mo::relaxed);
            record_failure(ud, res);
            return 0;
        }
        // A CQE no lane recognises: counted and recorded, never dropped silently.
        l32(GU_LOCAL_CONTROL_FOREIGN_CQES).fetch_add(1, mo::relaxed);
        record_failure(ud, res);
        return 0;
    }

    // §5.1–3: claims up to `max` posted CQEs with one CAS. 0: nothing now (or a violation, counted: `stop`).
    GU_FN uint32_t claim(uint32_t max, uint32_t &tail_seen, uint32_t &first, bool &stop) const {
        local_word<uint32_t> cl = l32(GU_LOCAL_CONTROL_CQ_CLAIM);
        for (uint32_t i = 0; i < GU_RESERVE_TRIES; i++) {
            // Acquire, paired with the claiming CAS's release (as for tickets).
            uint32_t c = cl.load(mo::acquire);
            uint32_t ahead = tail_seen - c;
            if (ahead == 0 || ahead > l->cq_entries) {
                // Acquire (system scope, waited): every CQE before the tail is written.
                tail_seen = s32(l->cq_tail).load(mo::acquire);
            }
            uint32_t tail = tail_seen;
            if (c == tail) {
                return 0;
            }
            uint32_t released = (uint32_t)l64(GU_LOCAL_CONTROL_CQ_PUB).load(mo::relaxed);
            if ((int32_t)(c - tail) > 0 || (int32_t)(c - released) > (int32_t)l->w_cq) {
                violation();
                stop = true;
                return 0;
            }
            // The window counts from the head last stored into the kernel's cq.head (relaxed: holder-written;
            // a stale value only narrows it).
            uint32_t stored_head = l32(GU_LOCAL_CONTROL_CQ_HEAD_STORED).load(mo::relaxed);
            uint32_t window = stored_head + l->w_cq - c;
            uint32_t posted = tail - c;
            if (window == 0 || window > l->w_cq || posted > l->cq_entries) {
                return 0;
            }
            uint32_t k = max < window ? max : window;
            k = k < posted ? k : posted;
            k = k < 32 ? k : 32;
            if (k == 0) {
                return 0;
            }
            // Release on success: see the acquire load above.
            if (cl.compare_exchange(c, c + k, mo::release)) {
                first = c;
                return k;
            }
        }
        return 0;
    }

    // ---- §7.1 the print log (defined in gpu_uring/print_log.h) -----------------------------------------------
    GU_OUTLINE bool read_log_target(log_target &t) const;
    GU_OUTLINE uint32_t reserve_log(const log_target &t, uint32_t len, uint32_t &ticket, uint32_t &start,
                                    uint32_t &free_bytes) const;
    GU_FN void copy_into_log(const log_target &t, uint32_t pos, uint32_t src, uint32_t len) const;
    GU_OUTLINE bool complete_log(uint32_t ticket, uint32_t end) const;
    GU_FN void hand_off_log() const;
    GU_OUTLINE void finish_log_write(const log_target &t, uint32_t sw) const;
    GU_OUTLINE bool submit_log_write(const log_target &t, uint32_t sub, uint32_t d, uint32_t &sq_head) const;
    GU_OUTLINE void hold_log(const log_target &t, uint32_t &cq_tail, uint32_t &sq_head, uint32_t budget) const;
    GU_OUTLINE void ring_log(const log_target &t, uint32_t &cq_tail, uint32_t &sq_head, uint32_t budget) const;
    GU_OUTLINE void take_pending_log(uint32_t &cq_tail, uint32_t &sq_head, uint32_t budget) const;

    // Left-over SQ/CQ bell duty, then claims, dispatches and releases up to `max` CQEs; how many. A lane's reap
    // pass (`lane::reap`) takes a handed-on print-log duty first; the print-log holder reaps with this alone (it
    // holds that duty already).
    GU_OUTLINE uint32_t reap(uint32_t max, uint32_t &tail_seen) const {
        take_pending(proto::sq_bell);
        take_pending(proto::cq_bell);
        uint32_t n = 0;
        uint32_t rounds = 0;
        uint32_t limit = max + GU_RESERVE_TRIES < max ? 0xffffffffu : max + GU_RESERVE_TRIES;
        while (n < max && rounds < limit) {
            rounds++;
            uint32_t first = 0;
            bool stop = false;
            uint32_t k = claim(max - n, tail_seen, first, stop);
            if (k == 0) {
                break;
            }
            uint32_t credits = 0;
            for (uint32_t i = 0; i < k; i++) {
                uint64_t ud;
                int32_t res;
                uint32_t flags;
                read_cqe(first + i, ud, res, flags);
                credits += dispatch(ud, res, flags);
            }
            // One relaxed add for the batch.
            return_credits(credits);
            n += k;
            // §5.5 release: this lane is done reading those CQEs; the CQ bell if the head moved.
            bool moved = false;
            if (mark_and_advance(GU_LOCAL_CONTROL_CQ_PUB, first, k, moved) != GU_STATUS_READY) {
                break;
            }
            if (moved) {
                ring_bell(proto::cq_bell);
            }
        }
        return n;
    }
};

} // namespace gu

#include "print_log.h"

#endif // GPU_URING_RING_H
