// gpu_uring/queue_group.h: the io_queue's allocation aggregated per subgroup (PROTOCOL.md §Q8: "a subgroup may
// let one lane allocate and publish for all"; §Q3.1 step by step otherwise), as gpu_uring/group.h aggregates the
// ring. The members scan the ownership words together, one window of `size` consecutive slots at a time: the
// member of rank r loads slot start + base + r (one relaxed device-local load per member, coalesced on a GPU),
// a ballot shows the FREE ones, and the pending lanes take them in rank order — the lane of pending rank j CASes
// the window's j-th FREE slot. So no two members of a subgroup ever try the same word, a window serves up to
// `size` lanes, and a lane whose CAS lost to another subgroup stays pending for the next window. Each lane then
// publishes, polls and frees its own slot (gpu_uring/queue.h): each slot has its own request sequence, one
// writer per host-shared word.
//
// Collective: every member of `sg` calls `try_alloc` together in uniform control flow (the loop's condition is
// a ballot); a subgroup of one runs the lane-by-lane scan's steps. No lane waits on another lane: a pass is at
// most one look at each of the `nslots` words, and a lane still pending after it gets WOULD_BLOCK.
#ifndef GPU_URING_QUEUE_GROUP_H
#define GPU_URING_QUEUE_GROUP_H

#include "queue.h"
#include "subgroup.h"

namespace gu {
namespace queue_group {

// One pass of §Q3.1 for the subgroup: every member with `want` needs one slot. READY (`slot`: ALLOCATED, this
// lane's) or WOULD_BLOCK (every slot of the pass was taken or lost to another subgroup); members without `want`
// get READY and no slot. The scan starts at the elected lane's `q.next`; afterwards every member's `q.next` is
// just past the last window the pass looked at (so the next pass starts where this one stopped).
GU_OUTLINE uint32_t try_alloc(queue_lane &q, const subgroup &sg, bool want, uint32_t &slot) {
    uint32_t n = q.l->nslots;
    bool pending = want && n > 0;
    uint32_t st = want ? (uint32_t)GU_QUEUE_STATUS_WOULD_BLOCK : (uint32_t)GU_QUEUE_STATUS_READY;
    uint32_t start = sg.broadcast_first(n > 0 ? q.next % n : 0u);
    uint32_t size = sg.size();
    uint32_t r = sg.rank();
    uint64_t members = sg.mask();
    uint32_t base = 0;
    while (base < n && sg.ballot(pending) != 0) {
        // This member's look at the window.
        bool free = false;
        if (base + r < n) {
            uint32_t v = q.own((start + base + r) % n).load(mo::relaxed);
            free = (v & GU_QUEUE_SLOT_STATE_MASK) == GU_QUEUE_SLOT_FREE;
        }
        uint64_t frees = sg.ballot(free);
        uint64_t waiting = sg.ballot(pending);
        if (pending) {
            // The j-th FREE slot of the window for the pending lane of rank j.
            uint64_t f = frees;
            for (uint32_t j = sg.rank_in(waiting); j > 0 && f != 0; j--) {
                f &= f - 1ull;
            }
            if (f != 0) {
                // The member that saw it (its lane bit) → its rank → its slot.
                uint32_t bit = detail::lowest64(f);
                uint32_t k = detail::popcount64(members & ((1ull << bit) - 1ull));
                uint32_t i = (start + base + k) % n;
                local_word<uint32_t> w = q.own(i);
                uint32_t v = w.load(mo::relaxed);
                // Acquire, as in queue_lane::try_alloc: pairs with the previous owner's release store of FREE.
                // Contended only by other subgroups' lanes (never the host).
                if ((v & GU_QUEUE_SLOT_STATE_MASK) == GU_QUEUE_SLOT_FREE &&
                    w.compare_exchange(v, v | GU_QUEUE_SLOT_ALLOCATED, mo::acquire)) {
                    slot = i;
                    pending = false;
                    st = GU_QUEUE_STATUS_READY;
                }
            }
        }
        base += size;
    }
    if (n > 0) {
        q.next = (start + (base < n ? base : n)) % n;
    }
    return st;
}

} // namespace queue_group
} // namespace gu

#endif // GPU_URING_QUEUE_GROUP_H
