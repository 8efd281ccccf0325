// gpu_uring/subgroup.h: the lanes that run together (a CUDA warp, an AMD wavefront), for aggregation: one
// elected lane does the RMWs for all of them and hands out the results (PROTOCOL.md, subgroup aggregation).
//
// `gu::subgroup sg = gu::subgroup::active();` records the lanes active at that point (a 64-bit mask: CUDA
// warps have 32 lanes, AMD wavefronts 64 on gfx9 (gfx90a, gfx940) and 32 on gfx10+ (gfx1030…) as HIP builds
// them). Every member lane must then make the same calls on `sg` (they are collective, like CUDA's *_sync
// functions); no lane ever waits for a lane outside the mask, so this stays correct under CUDA's independent
// thread scheduling, where a warp's lanes need not be converged.
//
// Host C++: a subgroup of one lane (the calling thread). The n-lane lockstep emulation of the CPU reference
// device (one thread stepping n lanes) drives this library's lanes one by one, each as its own subgroup.
#ifndef GPU_URING_SUBGROUP_H
#define GPU_URING_SUBGROUP_H

#include "config.h"

namespace gu {

namespace detail {
GU_FN uint32_t popcount64(uint64_t m) {
#if defined(GU_CUDA)
    return (uint32_t)__popcll(m);
#else
    return (uint32_t)__builtin_popcountll(m);
#endif
}
// Index of the lowest set bit; m != 0.
GU_FN uint32_t lowest64(uint64_t m) {
#if defined(GU_CUDA)
    return (uint32_t)(__ffsll((long long)m) - 1);
#else
    return (uint32_t)__builtin_ctzll(m);
#endif
}
} // namespace detail

class subgroup {
    uint64_t mask_;

    GU_FN explicit subgroup(uint64_t mask) : mask_(mask) {}

  public:
    // This lane's index in its warp/wavefront.
    GU_FN static uint32_t lane_id() {
#if defined(GU_CUDA)
        uint32_t l;
        asm("mov.u32 %0, %%laneid;" : "=r"(l));
        return l;
#elif defined(GU_HIP)
        return (uint32_t)__lane_id();
#else
        return 0;
#endif
    }

    // The lanes active here.
    GU_FN static subgroup active() {
#if defined(GU_CUDA)
        return subgroup((uint64_t)__activemask());
#elif defined(GU_HIP)
        return subgroup((uint64_t)__ballot(1));
#else
        return subgroup(1);
#endif
    }

    GU_FN uint64_t mask() const { return mask_; }
    // Number of member lanes.
    GU_FN uint32_t size() const { return detail::popcount64(mask_); }
    // The lowest member lane (the elected one).
    GU_FN uint32_t leader() const { return detail::lowest64(mask_); }
    GU_FN bool elect() const { return lane_id() == leader(); }
    // Members below this lane: this lane's index among the members (0 for the leader).
    GU_FN uint32_t rank() const { return detail::popcount64(mask_ & ((1ull << lane_id()) - 1ull)); }
    // Members below this lane in `m` (an exclusive bit count, e.g. of a ballot).
    GU_FN uint32_t rank_in(uint64_t m) const { return detail::popcount64(m & ((1ull << lane_id()) - 1ull)); }

    // The members whose `pred` is true.
    GU_FN uint64_t ballot(bool pred) const {
#if defined(GU_CUDA)
        return (uint64_t)__ballot_sync((unsigned)mask_, pred);
#elif defined(GU_HIP)
        // Inactive lanes contribute nothing to a wavefront ballot; the mask drops none of the members.
        return (uint64_t)__ballot(pred ? 1 : 0) & mask_;
#else
        return pred ? mask_ : 0;
#endif
    }

    // The leader's `v`, in every member.
    GU_FN uint32_t broadcast_first(uint32_t v) const {
#if defined(GU_CUDA)
        return __shfl_sync((unsigned)mask_, v, (int)leader());
#elif defined(GU_HIP)
        return (uint32_t)__shfl((int)v, (int)leader());
#else
        return v;
#endif
    }
    GU_FN uint64_t broadcast_first(uint64_t v) const {
        uint32_t lo = broadcast_first((uint32_t)v);
        uint32_t hi = broadcast_first((uint32_t)(v >> 32));
        return (uint64_t)hi << 32 | lo;
    }
};

} // namespace gu

#endif // GPU_URING_SUBGROUP_H
