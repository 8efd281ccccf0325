// The host C++ target of the device library: the same headers and program bodies the CUDA/HIP kernels use,
// compiled by the system C++ compiler (kernels/build.rs) and called by the Rust tests through `extern "C"`.
// Here a lane is a CPU thread and a subgroup is one lane (gpu_uring/subgroup.h).
#include "../include/gpu_uring.h"
#include "../src/programs.h"

#include <type_traits>
#include <utility>

namespace {

// The type rule of PROTOCOL.md: host-shared words have no RMW; device-local words have them all.
template <class W, class = void> struct has_rmw : std::false_type {};
template <class W>
struct has_rmw<W, std::void_t<decltype(std::declval<W &>().fetch_add(0, gu::mo::relaxed)),
                              decltype(std::declval<W &>().fetch_or(0, gu::mo::relaxed)),
                              decltype(std::declval<W &>().fetch_and(0, gu::mo::relaxed)),
                              decltype(std::declval<W &>().exchange(0, gu::mo::relaxed))>> : std::true_type {};
template <class W, class = void> struct has_cas : std::false_type {};
template <class W>
struct has_cas<W, std::void_t<decltype(std::declval<W &>().compare_exchange(
                      std::declval<typename std::remove_reference<decltype(std::declval<W &>().load(
                          gu::mo::relaxed))>::type &>(),
                      0, gu::mo::relaxed))>> : std::true_type {};
static_assert(!has_rmw<gu::shared_word<uint32_t>>::value && !has_cas<gu::shared_word<uint32_t>>::value,
              "host-shared words must have no RMW");
static_assert(!has_rmw<gu::shared_word<uint64_t>>::value && !has_cas<gu::shared_word<uint64_t>>::value,
              "host-shared words must have no RMW");
static_assert(has_rmw<gu::local_word<uint32_t>>::value && has_cas<gu::local_word<uint32_t>>::value,
              "device-local words have RMW");
static_assert(has_rmw<gu::local_word<uint64_t>>::value && has_cas<gu::local_word<uint64_t>>::value,
              "device-local words have RMW");

gu::mo order(uint32_t o) { return o <= 4 ? static_cast<gu::mo>(o) : gu::mo::seq_cst; }

// What a lane reports, as the Rust side declares it (kernels/host/lib.rs `Report`).
typedef gu::programs::lane_report Report;
static_assert(sizeof(Report) == 32 && alignof(Report) == 8, "lane_report is four u64");

} // namespace

extern "C" {

// ---- §7 formatting
void gu_host_format_probe(uint8_t *records, uint32_t count) {
    for (uint32_t id = 0; id < count; id++) {
        gu::programs::format_case(records, id);
    }
}

uint32_t gu_host_print_line(uint32_t lane, uint32_t seq, char *out, uint32_t cap) {
    gu::line l(out, cap);
    return gu::programs::print_line(l, lane, seq);
}

// Every argument kind of gu::format, in one line.
uint32_t gu_host_format_args(char *out, uint32_t cap) {
    gu::line l(out, cap);
    return gu::format(l, "u8=", (uint8_t)255, " i16=", (int16_t)-7, " c=", 'z', " i32=", (int32_t)-2147483647 - 1,
                      " u32=", 4294967295u, " i64=", (int64_t)-9, " u64=", (uint64_t)18446744073709551615ull,
                      " f=", 1.5f, " h=", gu::hex(0xabcull), " p=", gu::fixed(2.5f, 0), " long=", -3L, " ul=", 4UL,
                      " ll=", -5LL, " ull=", 6ULL);
}

// `text` appended to a line of `cap` bytes, then finished; *truncated receives the flag.
uint32_t gu_host_line_str(const char *text, char *out, uint32_t cap, uint32_t *truncated) {
    gu::line l(out, cap);
    l.str(text).finish();
    *truncated = l.truncated() ? 1 : 0;
    return l.size();
}

// ---- atomics (orders: 0 relaxed, 1 acquire, 2 release, 3 acq_rel, 4 seq_cst)
uint32_t gu_local_u32_load(uint32_t *p, uint32_t o) { return gu::local_word<uint32_t>(p).load(order(o)); }
void gu_local_u32_store(uint32_t *p, uint32_t v, uint32_t o) { gu::local_word<uint32_t>(p).store(v, order(o)); }
uint32_t gu_local_u32_cas(uint32_t *p, uint32_t *expected, uint32_t desired, uint32_t o) {
    return gu::local_word<uint32_t>(p).compare_exchange(*expected, desired, order(o)) ? 1 : 0;
}
uint32_t gu_local_u32_fetch_add(uint32_t *p, uint32_t v, uint32_t o) {
    return gu::local_word<uint32_t>(p).fetch_add(v, order(o));
}
uint32_t gu_local_u32_fetch_or(uint32_t *p, uint32_t v, uint32_t o) {
    return gu::local_word<uint32_t>(p).fetch_or(v, order(o));
}
uint32_t gu_local_u32_fetch_and(uint32_t *p, uint32_t v, uint32_t o) {
    return gu::local_word<uint32_t>(p).fetch_and(v, order(o));
}
uint32_t gu_local_u32_exchange(uint32_t *p, uint32_t v, uint32_t o) {
    return gu::local_word<uint32_t>(p).exchange(v, order(o));
}
int32_t gu_local_i32_fetch_add(int32_t *p, int32_t v, uint32_t o) {
    return gu::local_word<int32_t>(p).fetch_add(v, order(o));
}
uint64_t gu_local_u64_load(uint64_t *p, uint32_t o) { return gu::local_word<uint64_t>(p).load(order(o)); }
void gu_local_u64_store(uint64_t *p, uint64_t v, uint32_t o) { gu::local_word<uint64_t>(p).store(v, order(o)); }
uint32_t gu_local_u64_cas(uint64_t *p, uint64_t *expected, uint64_t desired, uint32_t o) {
    return gu::local_word<uint64_t>(p).compare_exchange(*expected, desired, order(o)) ? 1 : 0;
}
uint64_t gu_local_u64_fetch_add(uint64_t *p, uint64_t v, uint32_t o) {
    return gu::local_word<uint64_t>(p).fetch_add(v, order(o));
}
uint64_t gu_local_u64_fetch_or(uint64_t *p, uint64_t v, uint32_t o) {
    return gu::local_word<uint64_t>(p).fetch_or(v, order(o));
}
uint64_t gu_local_u64_fetch_and(uint64_t *p, uint64_t v, uint32_t o) {
    return gu::local_word<uint64_t>(p).fetch_and(v, order(o));
}
uint32_t gu_shared_u32_load(uint32_t *p, uint32_t o) { return gu::shared_word<uint32_t>(p).load(order(o)); }
void gu_shared_u32_store(uint32_t *p, uint32_t v, uint32_t o) { gu::shared_word<uint32_t>(p).store(v, order(o)); }
uint64_t gu_shared_u64_load(uint64_t *p, uint32_t o) { return gu::shared_word<uint64_t>(p).load(order(o)); }
void gu_shared_u64_store(uint64_t *p, uint64_t v, uint32_t o) { gu::shared_word<uint64_t>(p).store(v, order(o)); }
void gu_fence_device(uint32_t o) { gu::fence_device(order(o)); }
void gu_fence_system(uint32_t o) { gu::fence_system(order(o)); }

// ---- subgroup and backoff on the host: a subgroup of one lane
// out: size, mask (low), leader, elect, rank, ballot(true) (low), ballot(false) (low), broadcast_first(v).
void gu_host_subgroup(uint32_t v, uint32_t *out) {
    gu::subgroup sg = gu::subgroup::active();
    out[0] = sg.size();
    out[1] = (uint32_t)sg.mask();
    out[2] = sg.leader();
    out[3] = sg.elect() ? 1 : 0;
    out[4] = sg.rank();
    out[5] = (uint32_t)sg.ballot(true);
    out[6] = (uint32_t)sg.ballot(false);
    out[7] = sg.broadcast_first(v);
}
// The collectives with per-lane values. out: ballot(lane odd) (low), exclusive_sum(v), its total,
// broadcast_first(v), the subgroup's memory barrier passed (1).
void gu_host_subgroup_collectives(uint32_t v, uint32_t *out) {
    gu::subgroup sg = gu::subgroup::active();
    out[0] = (uint32_t)sg.ballot((gu::subgroup::lane_id() & 1u) != 0);
    uint32_t total = 0;
    out[1] = sg.exclusive_sum(v, total);
    out[2] = total;
    out[3] = sg.broadcast_first(v);
    sg.sync();
    out[4] = 1;
}
uint32_t gu_host_backoff(uint32_t pauses) {
    gu::backoff b;
    for (uint32_t i = 0; i < pauses; i++) {
        b.pause();
    }
    return b.step();
}

// ---- emulated subgroups: n threads of a team run as one subgroup in lockstep (gpu_uring/subgroup.h)
void *gu_host_team_new(uint32_t lanes) { return new gu::host_team(lanes); }
void gu_host_team_free(void *team) { delete static_cast<gu::host_team *>(team); }
// The calling thread becomes lane `lane` of `team` (null: a subgroup of one again).
void gu_host_team_join(void *team, uint32_t lane) { gu::host_team_join(static_cast<gu::host_team *>(team), lane); }

// The calling thread's device-local read-modify-writes since its last call (gpu_uring/atomic.h, host target).
uint64_t gu_host_take_rmws() {
    uint64_t n = gu::detail::rmw_count;
    gu::detail::rmw_count = 0;
    return n;
}

// ---- the kernels' program bodies, one call per lane
void gu_host_ticket_lane(uint32_t *local, uint32_t *shared, uint32_t n, uint32_t lane) {
    gu::programs::ticket_lane(local, shared, n, lane);
}
uint32_t gu_host_wait_flag(uint32_t *flag, uint32_t budget, uint32_t *polls_out) {
    return gu::programs::wait_flag(flag, budget, polls_out);
}

// ---- ring programs, one call per lane (a thread of the caller), on a real ring's arena and device-local block
uint32_t gu_host_nop_lane(uint8_t *arena, uint8_t *local, const gpu_uring::RingLayout *layout, uint32_t lane,
                          uint32_t mode, uint32_t count, uint32_t budget, uint32_t *ready) {
    return gu::programs::nop_lane(arena, local, layout, lane, mode, count, budget, ready);
}
uint32_t gu_host_print_lane(uint8_t *arena, uint8_t *local, const gpu_uring::RingLayout *layout, uint32_t lane,
                            uint32_t lines, uint32_t budget, uint32_t *printed) {
    return gu::programs::print_lane(arena, local, layout, lane, lines, budget, printed);
}
uint32_t gu_host_write_lane(uint8_t *arena, uint8_t *local, const gpu_uring::RingLayout *layout, uint32_t lane,
                            uint32_t file, uint32_t ops, uint32_t len, uint32_t budget, Report *out) {
    return gu::programs::write_lane(arena, local, layout, lane, file, ops, len, budget, out);
}
uint32_t gu_host_read_lane(uint8_t *arena, uint8_t *local, const gpu_uring::RingLayout *layout, uint32_t lane,
                           uint32_t lanes, uint32_t file, uint32_t chunk, uint64_t total, uint32_t depth,
                           uint32_t budget, Report *out) {
    return gu::programs::read_lane(arena, local, layout, lane, lanes, file, chunk, total, depth, budget, out);
}
uint32_t gu_host_lane_stress_lane(uint8_t *arena, uint8_t *local, const gpu_uring::RingLayout *layout,
                                  uint32_t lane, uint32_t ops, uint32_t budget, Report *out) {
    return gu::programs::lane_stress_lane(arena, local, layout, lane, ops, budget, out);
}
uint32_t gu_host_edit_buffer_lane(uint8_t *arena, const gpu_uring::RingLayout *layout, uint32_t lane,
                                  uint32_t steps, uint32_t budget, Report *out) {
    return gu::programs::edit_buffer_lane(arena, layout, lane, steps, budget, out);
}
uint32_t gu_host_layout_lane(uint8_t *arena, uint8_t *local, const gpu_uring::RingLayout *layout, uint32_t lane,
                             Report *out) {
    return gu::programs::layout_lane(arena, local, layout, lane, out);
}
uint32_t gu_host_exact_lane(uint8_t *arena, uint8_t *local, const gpu_uring::RingLayout *layout, uint32_t lane,
                            uint32_t count, uint32_t budget, Report *out) {
    return gu::programs::exact_lane(arena, local, layout, lane, count, budget, out);
}
uint32_t gu_host_hostile_lane(uint8_t *arena, uint8_t *local, const gpu_uring::RingLayout *layout, uint32_t lane,
                              uint32_t which, uint32_t budget, Report *out) {
    return gu::programs::hostile_lane(arena, local, layout, lane, which, budget, out);
}
// The format program on a ring: case `id` at the arena's fixed region.
void gu_host_format_lane(uint8_t *arena, const gpu_uring::RingLayout *layout, uint32_t id) {
    gu::programs::format_case(arena + layout->fixed, id);
}

// ---- io_queue
uint32_t gu_host_stream_lane(uint8_t *arena, uint8_t *local, const gpu_uring::PumpLayout *layout, uint32_t lane,
                             uint32_t lanes, uint32_t file, uint32_t region, uint32_t chunk, uint64_t total,
                             uint32_t budget, Report *out) {
    return gu::programs::stream_lane(arena, local, layout, lane, lanes, file, region, chunk, total, budget, out);
}
uint32_t gu_host_group_read_lane(uint8_t *arena, uint8_t *local, const gpu_uring::PumpLayout *layout, uint32_t lane,
                                 uint32_t file, uint32_t region, uint32_t chunk, uint32_t count, uint32_t budget,
                                 Report *out) {
    return gu::programs::group_read_lane(arena, local, layout, lane, file, region, chunk, count, budget, out);
}
// One dispatch of the pump probe's lane `lane` (run: PumpRunParams, then the lanes' PumpLaneStates).
void gu_host_pump_probe_lane(uint8_t *arena, uint8_t *run, uint8_t *local, const gpu_uring::PumpLayout *layout,
                             uint32_t lane) {
    gu::programs::pump_probe_lane(arena, run, local, layout, lane);
}

// ---- baselines
uint32_t gu_host_rpc_print_lane(uint8_t *mailboxes, uint32_t lanes, uint32_t lines, uint32_t budget, uint32_t lane) {
    return gu::programs::rpc_print_lane(mailboxes, lanes, lines, budget, lane);
}
void gu_host_memory_placement_lane(uint32_t *buf, uint32_t mode, uint32_t n, uint32_t mask, uint32_t seed,
                                   uint32_t gid, uint32_t total) {
    gu::programs::memory_placement_lane(buf, mode, n, mask, seed, gid, total);
}

} // extern "C"

