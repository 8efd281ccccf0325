// kernels/src/programs/probes.h: the probes of the portability layer and the formatter (no ring): the §7
// format probe, the print program's line, ticket aggregation and a bounded wait on a host-shared flag.
#ifndef GPU_URING_KERNELS_PROBES_H
#define GPU_URING_KERNELS_PROBES_H

#include "../../include/gpu_uring.h"

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

// `backend::checksum` (what the read and stream programs compute over a chunk) of `len` bytes at `off` in
// host-shared memory at `base`, read from file offset `file_offset`: FNV-1a-style over little-endian u32 words,
// the last one zero-padded, seeded by the file offset. System-scope loads: the kernel (or the pump) wrote the
// bytes into host memory, and the caller's acquire of the completion ordered them before these loads. `off` is
// 4-byte aligned and the bytes up to the next multiple of 4 are inside the buffer.
GU_FN uint64_t chunk_checksum(uint8_t *base, uint32_t off, uint64_t file_offset, uint32_t len) {
    uint64_t h = 0xcbf29ce484222325ull ^ file_offset;
    for (uint32_t i = 0; i < len; i += 4) {
        uint32_t w = shared_word<uint32_t>(reinterpret_cast<uint32_t *>(base + off + i)).load(mo::relaxed);
        uint32_t left = len - i;
        if (left < 4) {
            w &= (1u << (8u * left)) - 1u;
        }
        h ^= w;
        h *= 0x00000100000001b3ull;
    }
    return h;
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

} // namespace programs
} // namespace gu

#endif // GPU_URING_KERNELS_PROBES_H
