#version 450
// memory_placement (experiments/src/bin/memory_placement.rs): how long one shader load or store takes in
// whatever memory backs binding 0 (device-local, driver-allocated host-visible, or imported host memory).
// Words 0..mask hold a chain: w[i] = next(i), next(i) = (1664525 i + 1013904223) & mask, a full-period LCG
// over the power-of-two length, so chasing it visits the buffer in scattered order and each load depends on
// the one before (no overlap, no prefetch pattern). Word mask + 1 is the sink that keeps the chase live.
//   mode 0: init — invocation g writes the chain words g, g + total, ... (at most `n` each)
//   mode 1: chase — invocation 0 performs `n` dependent loads from `seed`, stores the last index in the sink
//   mode 2: store — invocation 0 performs `n` stores along the same sequence (the index is computed, not loaded)
// `n` stays below lavapipe's 65535 loop iterations per invocation (the host checks).
layout(local_size_x = 64) in;
layout(std430, binding = 0) coherent buffer Buf { uint w[]; } b;
layout(push_constant) uniform Params { uint mode; uint n; uint mask; uint seed; } p;

uint next(uint i) { return (1664525u * i + 1013904223u) & p.mask; }

void main() {
    uint gid = gl_GlobalInvocationID.x;
    if (p.mode == 0u) {
        uint total = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
        uint i = gid;
        for (uint k = 0u; k < p.n && i <= p.mask; k++) {
            b.w[i] = next(i);
            i += total;
        }
        return;
    }
    if (gid != 0u) return;
    uint idx = p.seed & p.mask;
    if (p.mode == 1u) {
        for (uint k = 0u; k < p.n; k++) idx = b.w[idx];
        b.w[p.mask + 1u] = idx;
    } else {
        for (uint k = 0u; k < p.n; k++) {
            b.w[idx] = k;
            idx = next(idx);
        }
    }
}
