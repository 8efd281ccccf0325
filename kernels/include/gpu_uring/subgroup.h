// gpu_uring/subgroup.h: the lanes that run together (a CUDA warp, an AMD wavefront), for aggregation: one
// elected lane does the RMWs for all of them and hands out the results (PROTOCOL.md, subgroup aggregation).
//
// `gu::subgroup sg = gu::subgroup::active();` records the lanes active at that point (a 64-bit mask: CUDA
// warps have 32 lanes, AMD wavefronts 64 on gfx9 (gfx90a, gfx940) and 32 on gfx10+ (gfx1030…) as HIP builds
// them). Every member lane must then make the same calls on `sg` (they are collective, like CUDA's *_sync
// functions); no lane ever waits for a lane outside the mask, so this stays correct under CUDA's independent
// thread scheduling, where a warp's lanes need not be converged.
//
// `sync()` is the subgroup's memory barrier (GLSL's gu_subgroup_sync): every member's accesses before it
// happen-before every member's accesses after it, at device scope — what makes the members' SQE stores
// visible to the elected lane's publishing CAS, and the elected lane's acquire of a kernel index to the members'
// SQE overwrites.
//
// Host C++: by default a subgroup of one lane (the calling thread). A thread that joined a `gu::host_team`
// (n threads, one per lane) is a member of an emulated subgroup of n lanes: every collective (ballot,
// broadcast, sync) meets the team's other threads at a barrier, so the aggregated protocol paths run on
// the CPU with real concurrency between the team's lanes and the rest of the device. The emulation's rule:
// the team's lanes stay converged — each makes the same collective calls in the same order (uniform control
// flow, as the aggregated programs are written) until it leaves the team.
#ifndef GPU_URING_SUBGROUP_H
#define GPU_URING_SUBGROUP_H

#include "atomic.h"
#include "config.h"

#if defined(GU_HOST)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#endif

namespace gu {

#if defined(GU_HOST)
// n ≤ 64 host threads emulating one subgroup in lockstep (see above).
struct host_team {
    std::atomic<uint32_t> arrived{0};
    std::atomic<uint32_t> phase{0};
    uint32_t n;
    uint64_t slot[64]; // each member's value of the current collective; written before, read after a meeting

    explicit host_team(uint32_t lanes) : n(lanes < 1 ? 1 : lanes > 64 ? 64 : lanes), slot{} {}

    // Every member meets here (a sense-reversing barrier): the members' accesses before it happen-before
    // everyone's after it — the arrivals' acq_rel adds form a release sequence the last arriver acquires, and
    // its release store of the next phase is what the others acquire. Bounded: a member still waiting after
    // 60 s means the team's lanes left lockstep (a program that is not uniform), a bug the emulation reports
    // by aborting the process rather than hanging it.
    void meet() {
        uint32_t p = phase.load(std::memory_order_acquire);
        if (arrived.fetch_add(1, std::memory_order_acq_rel) + 1 == n) {
            arrived.store(0, std::memory_order_relaxed);
            phase.store(p + 1, std::memory_order_release);
            return;
        }
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        for (uint32_t i = 0; phase.load(std::memory_order_acquire) == p; i++) {
            std::this_thread::yield();
            if ((i & 1023u) == 1023u && std::chrono::steady_clock::now() > deadline) {
                std::fprintf(stderr, "gu::host_team: a member waited 60 s at a collective; the team's lanes left "
                                     "lockstep (non-uniform control flow)\n");
                std::abort();
            }
        }
    }
};
namespace detail {
// The calling thread's team and lane in it (none: a subgroup of one).
inline thread_local host_team *team = nullptr;
inline thread_local uint32_t team_lane = 0;
} // namespace detail
// The calling thread becomes lane `lane` of `t` (nullptr: a subgroup of one again).
inline void host_team_join(host_team *t, uint32_t lane) {
    detail::team = t;
    detail::team_lane = lane;
}
#endif

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
        return detail::team != nullptr ? detail::team_lane : 0;
#endif
    }

    // The lanes active here.
    GU_FN static subgroup active() {
#if defined(GU_CUDA)
        return subgroup((uint64_t)__activemask());
#elif defined(GU_HIP)
        return subgroup((uint64_t)__ballot(1));
#else
        host_team *t = detail::team;
        return subgroup(t == nullptr ? 1 : t->n >= 64 ? ~0ull : (1ull << t->n) - 1ull);
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

    // Whether this subgroup is more than the calling lane.
    GU_FN bool several() const { return (mask_ & (mask_ - 1ull)) != 0; }

    // The members whose `pred` is true.
    GU_FN uint64_t ballot(bool pred) const {
#if defined(GU_CUDA)
        return (uint64_t)__ballot_sync((unsigned)mask_, pred);
#elif defined(GU_HIP)
        // Inactive lanes contribute nothing to a wavefront ballot; the mask drops none of the members.
        return (uint64_t)__ballot(pred ? 1 : 0) & mask_;
#else
        if (!several()) {
            return pred ? mask_ : 0;
        }
        host_team *t = detail::team;
        t->slot[detail::team_lane] = pred ? 1 : 0;
        t->meet();
        uint64_t m = 0;
        for (uint32_t i = 0; i < t->n && i < 64; i++) {
            m |= (t->slot[i] != 0 ? 1ull : 0ull) << i;
        }
        t->meet();
        return m & mask_;
#endif
    }

    // The leader's `v`, in every member.
    GU_FN uint32_t broadcast_first(uint32_t v) const {
#if defined(GU_CUDA)
        return __shfl_sync((unsigned)mask_, v, (int)leader());
#elif defined(GU_HIP)
        return (uint32_t)__shfl((int)v, (int)leader());
#else
        if (!several()) {
            return v;
        }
        host_team *t = detail::team;
        if (elect()) {
            t->slot[0] = v;
        }
        t->meet();
        uint32_t r = (uint32_t)t->slot[0];
        t->meet();
        return r;
#endif
    }

    // The sum of the members' `v` below this lane (an exclusive prefix sum in rank order), and of all members'
    // in `total`: one shuffle per member on a GPU (masks need not be contiguous).
    GU_FN uint32_t exclusive_sum(uint32_t v, uint32_t &total) const {
        uint32_t below = 0;
        uint32_t all = 0;
#if defined(GU_CUDA) || defined(GU_HIP)
        uint32_t me = lane_id();
        for (uint64_t m = mask_; m != 0; m &= m - 1ull) {
            uint32_t i = detail::lowest64(m);
#if defined(GU_CUDA)
            uint32_t vi = __shfl_sync((unsigned)mask_, v, (int)i);
#else
            uint32_t vi = (uint32_t)__shfl((int)v, (int)i);
#endif
            all += vi;
            below += i < me ? vi : 0u;
        }
#else
        if (!several()) {
            total = v;
            return 0;
        }
        host_team *t = detail::team;
        t->slot[detail::team_lane] = v;
        t->meet();
        for (uint32_t i = 0; i < t->n && i < 64; i++) {
            if ((mask_ >> i & 1ull) != 0) {
                all += (uint32_t)t->slot[i];
                below += i < detail::team_lane ? (uint32_t)t->slot[i] : 0u;
            }
        }
        t->meet();
#endif
        total = all;
        return below;
    }

    // The subgroup's memory barrier (see the top): a device-scope acq_rel fence in every member, then the
    // members meet (CUDA __syncwarp; an AMD wavefront executes in lockstep, so only the compiler is held back;
    // the host team's meeting, which orders memory as `host_team::meet` says).
    GU_FN void sync() const {
#if defined(GU_CUDA)
        fence_device(mo::acq_rel);
        __syncwarp((unsigned)mask_);
#elif defined(GU_HIP)
        fence_device(mo::acq_rel);
        __builtin_amdgcn_wave_barrier();
#else
        if (several()) {
            detail::team->meet();
        }
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
