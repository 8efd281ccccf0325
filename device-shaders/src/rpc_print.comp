#version 460
#pragma use_vulkan_memory_model
#extension GL_KHR_memory_scope_semantics : require
// rpc_print (experiments/src/bin/print_latency.rs, `rpc` path on Vulkan): the client side of the RPC baseline
// (experiments/src/rpc.rs), the way LLVM libc for GPUs prints. Lane l owns mailbox l (512 bytes at 512 l of
// binding 0, host memory imported into the device). While its state is EMPTY it formats its next line —
// exactly `backend::format_print_line` plus '\n' — into the mailbox's data, stores the length and publishes
// state = REQUEST (release); a host server thread writes the line with write(2), stores the result and
// replies with state = REPLY (release); the lane reads the result (acquire), counts it, and takes the mailbox
// back (EMPTY). Resumable: the lane's next line, counters and "finished" live in the mailbox's own header
// words, and a lane starts nothing new once `budget` loop iterations are spent in this dispatch (lavapipe
// stops every loop of an invocation after 65535 iterations); the host re-dispatches until every lane finished.
layout(local_size_x = 8) in;
layout(std430, binding = 0) coherent buffer Mailboxes { uint w[]; } m;
layout(push_constant) uniform Params { uint lanes; uint lines; uint budget; uint pad; } p;

// Word offsets in a mailbox (rpc.rs: MB_* / 4).
const uint MB_WORDS = 128u;
const uint W_STATE = 0u, W_LEN = 1u, W_RESULT = 2u, W_SEQ = 3u, W_DONE = 4u, W_FAILED = 5u, W_FINISHED = 6u;
const uint W_DATA = 16u;
const uint EMPTY = 0u, REQUEST = 1u, REPLY = 2u;

uint iters = 0u;
uint line[32];
uint len = 0u;

void putc(uint c) {
    uint i = len >> 2, sh = (len & 3u) * 8u;
    line[i] = (line[i] & ~(0xffu << sh)) | (c << sh);
    len++;
}

// Texts (GLSL has no strings): 0 "lane=", 1 " seq=", 2 " d=", 3 " x=", 4 " v=", 5 " gpu-uring\n".
void put_text(uint id) {
    uint t[11];
    uint n;
    if (id == 0u) { t[0] = 108u; t[1] = 97u; t[2] = 110u; t[3] = 101u; t[4] = 61u; n = 5u; }
    else if (id == 1u) { t[0] = 32u; t[1] = 115u; t[2] = 101u; t[3] = 113u; t[4] = 61u; n = 5u; }
    else if (id == 2u) { t[0] = 32u; t[1] = 100u; t[2] = 61u; n = 3u; }
    else if (id == 3u) { t[0] = 32u; t[1] = 120u; t[2] = 61u; n = 3u; }
    else if (id == 4u) { t[0] = 32u; t[1] = 118u; t[2] = 61u; n = 3u; }
    else {
        t[0] = 32u; t[1] = 103u; t[2] = 112u; t[3] = 117u; t[4] = 45u; t[5] = 117u; t[6] = 114u; t[7] = 105u;
        t[8] = 110u; t[9] = 103u; t[10] = 10u; n = 11u;
    }
    for (uint i = 0u; i < n; i++) { iters++; putc(t[i]); }
}

// Decimal digits of v, at least `min_digits` of them.
void put_dec(uint v, uint min_digits) {
    uint d[10];
    uint n = 0u;
    do { iters++; d[n] = v % 10u; v /= 10u; n++; } while ((v != 0u || n < min_digits) && n < 10u);
    while (n > 0u) { iters++; n--; putc(48u + d[n]); }
}

// Lowercase hex digits of v, at least `min_digits` of them.
void put_hex(uint v, uint min_digits) {
    uint d[8];
    uint n = 0u;
    do { iters++; d[n] = v & 15u; v >>= 4; n++; } while ((v != 0u || n < min_digits) && n < 8u);
    while (n > 0u) { iters++; n--; putc(d[n] < 10u ? 48u + d[n] : 87u + d[n]); }
}

// `lane=<L> seq=<K> d=<K-L> x=<hex (L<<32)|K> v=<K/8 - L, 3 decimals> gpu-uring\n` in 32-bit arithmetic:
// K/8 - L = (K - 8L)/8 is a multiple of 1/8, so its 3 decimals are exact: 125 × ((K - 8L) mod 8).
void format_line(uint lane, uint seq) {
    len = 0u;
    put_text(0u); put_dec(lane, 1u);
    put_text(1u); put_dec(seq, 1u);
    put_text(2u);
    int d = int(seq) - int(lane);
    if (d < 0) putc(45u);
    put_dec(uint(abs(d)), 1u);
    put_text(3u);
    if (lane != 0u) { put_hex(lane, 1u); put_hex(seq, 8u); } else { put_hex(seq, 1u); }
    put_text(4u);
    int v8 = int(seq) - 8 * int(lane);
    if (v8 < 0) putc(45u);
    uint a = uint(abs(v8));
    put_dec(a / 8u, 1u);
    putc(46u);
    put_dec((a % 8u) * 125u, 3u);
    put_text(5u);
}

uint ld_acq(uint i) {
    return atomicLoad(m.w[i], gl_ScopeDevice, gl_StorageSemanticsBuffer, gl_SemanticsAcquire);
}
void st_rel(uint i, uint v) {
    atomicStore(m.w[i], v, gl_ScopeDevice, gl_StorageSemanticsBuffer, gl_SemanticsRelease);
}

void main() {
    uint lane = gl_GlobalInvocationID.x;
    if (lane >= p.lanes) return;
    uint b = lane * MB_WORDS;
    if (m.w[b + W_FINISHED] != 0u) return;
    while (iters < p.budget) {
        iters++;
        // Acquire: pairs with the server's release store of REPLY (the result is visible).
        uint st = ld_acq(b + W_STATE);
        if (st == REQUEST) continue; // the server has not replied yet
        uint seq = m.w[b + W_SEQ];
        if (st == REPLY) {
            if (int(m.w[b + W_RESULT]) == int(m.w[b + W_LEN])) m.w[b + W_DONE]++; else m.w[b + W_FAILED]++;
            m.w[b + W_SEQ] = seq + 1u;
            // The mailbox is the lane's again (the server never touches a REPLY mailbox); the next release
            // store of REQUEST orders this store before the server's next look.
            m.w[b + W_STATE] = EMPTY;
            continue;
        }
        if (seq >= p.lines) { m.w[b + W_FINISHED] = 1u; return; }
        format_line(lane, seq);
        for (uint i = 0u; i < (len + 3u) / 4u; i++) { iters++; m.w[b + W_DATA + i] = line[i]; }
        m.w[b + W_LEN] = len;
        // Release: the server's acquire load of REQUEST sees the line's bytes and its length.
        st_rel(b + W_STATE, REQUEST);
    }
}
