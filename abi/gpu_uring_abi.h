// gpu_uring_abi.h: the memory host and device code of gpu-uring share (PROTOCOL.md).
// GENERATED from host/src/abi/ by `cargo run -p gpu-uring --example gen-abi-header`: do not edit; CI checks
// it is current. Outside C++: #defines only (byte offsets GU_<STRUCT>_<FIELD>, sizes GU_SIZEOF_<STRUCT>,
// enum values and constants, all unsigned; GLSL member lists GU_<STRUCT>_MEMBERS), so GLSL
// (GL_GOOGLE_include_directive), HIP and CUDA include it.
#ifndef GPU_URING_ABI_H
#define GPU_URING_ABI_H

// ---- RingLayout: the ring layout descriptor (push constants / kernel argument)
#define GU_SIZEOF_RING_LAYOUT 128u
#define GU_RING_LAYOUT_ARENA_HOST_BASE 0u
#define GU_RING_LAYOUT_ARENA_SIZE 8u
#define GU_RING_LAYOUT_SQ_HEAD 16u
#define GU_RING_LAYOUT_SQ_TAIL 20u
#define GU_RING_LAYOUT_SQ_FLAGS 24u
#define GU_RING_LAYOUT_SQ_MASK 0x0000001cu
#define GU_RING_LAYOUT_SQ_ENTRIES 32u
#define GU_RING_LAYOUT_SQ_ARRAY 36u
#define GU_RING_LAYOUT_CQ_HEAD 40u
#define GU_RING_LAYOUT_CQ_TAIL 44u
#define GU_RING_LAYOUT_CQ_MASK 0x00000030u
#define GU_RING_LAYOUT_CQ_ENTRIES 52u
#define GU_RING_LAYOUT_CQES 56u
#define GU_RING_LAYOUT_SQES 60u
#define GU_RING_LAYOUT_CONTROL 64u
#define GU_RING_LAYOUT_SLOTS 68u
#define GU_RING_LAYOUT_SLOTS_PER_LANE 72u
#define GU_RING_LAYOUT_LANES 76u
#define GU_RING_LAYOUT_STAGING 80u
#define GU_RING_LAYOUT_STAGING_LINES 84u
#define GU_RING_LAYOUT_LINE_BYTES 88u
#define GU_RING_LAYOUT_STAGING_BUF_INDEX 92u
#define GU_RING_LAYOUT_FIXED 96u
#define GU_RING_LAYOUT_FIXED_SIZE 100u
#define GU_RING_LAYOUT_FIXED_BUF_INDEX 104u
#define GU_RING_LAYOUT_W_SQ 108u
#define GU_RING_LAYOUT_W_CQ 112u
#define GU_RING_LAYOUT_CREDIT_POOL 116u
#define GU_RING_LAYOUT_RING_FLAGS 120u
#define GU_RING_LAYOUT_LANE_WORDS 124u
#define GU_RING_FLAG_NO_SQARRAY 1u
#define GU_RING_FLAG_CONFINED 2u
#define GU_RING_FLAG_SQPOLL 4u

// ---- LocalControl: the device-local control block (offset 0 of the device-local block)
#define GU_SIZEOF_LOCAL_CONTROL 384u
#define GU_LOCAL_CONTROL_SQ_PUB 0u
#define GU_LOCAL_CONTROL_CQ_PUB 8u
#define GU_LOCAL_CONTROL_PRINT_OFFSET 16u
#define GU_LOCAL_CONTROL_FF_LAST_USER_DATA 24u
#define GU_LOCAL_CONTROL_SQ_RESERVE 32u
#define GU_LOCAL_CONTROL_CQ_CREDITS 36u
#define GU_LOCAL_CONTROL_CQ_CLAIM 40u
#define GU_LOCAL_CONTROL_SQ_BELL 44u
#define GU_LOCAL_CONTROL_CQ_BELL 48u
#define GU_LOCAL_CONTROL_SQ_TAIL_STORED 52u
#define GU_LOCAL_CONTROL_CQ_HEAD_STORED 56u
#define GU_LOCAL_CONTROL_FF_ERRORS 60u
#define GU_LOCAL_CONTROL_FF_LAST_ERROR 64u
#define GU_LOCAL_CONTROL_SKIP_FAILURES 68u
#define GU_LOCAL_CONTROL_LINES_PRINTED 72u
#define GU_LOCAL_CONTROL_PRINT_ERRORS 76u
#define GU_LOCAL_CONTROL_FOREIGN_CQES 80u
#define GU_LOCAL_CONTROL_PROTOCOL_VIOLATIONS 84u
#define GU_LOCAL_CONTROL_MIRROR_SUM 88u
#define GU_LOCAL_CONTROL_LOG_BELL 92u
#define GU_LOCAL_CONTROL_LOG_PUB 96u
#define GU_LOCAL_CONTROL_LOG_RESERVE 104u
#define GU_LOCAL_CONTROL_LOG_SUB 112u
#define GU_LOCAL_CONTROL_LOG_WRITTEN 116u
#define GU_LOCAL_CONTROL_LOG_WSTATE 120u
#define GU_LOCAL_CONTROL_LOG_WRES 124u
#define GU_LOCAL_CONTROL_LOG_WRITES 128u
#define GU_LOCAL_CONTROL_LOG_SHORT_WRITES 132u
#define GU_LOCAL_CONTROL_LOG_STARTS 136u
#define GU_LOCAL_CONTROL_LOG_ENDS 200u
#define GU_LOCAL_CONTROL_RESERVED 264u
#define GU_BELL_LOCK 1u
#define GU_BELL_DIRTY 2u
#define GU_BELL_ROUNDS 16u
#define GU_CQ_HEAD_LAG_DIVISOR 2u

// ---- SharedControl: the host-shared control block (offsets from RingLayout.control, in the arena)
#define GU_SIZEOF_SHARED_CONTROL 128u
#define GU_SHARED_CONTROL_FF_LAST_USER_DATA 0u
#define GU_SHARED_CONTROL_PRINT_FD 8u
#define GU_SHARED_CONTROL_PRINT_FLAGS 12u
#define GU_SHARED_CONTROL_FF_ERRORS 16u
#define GU_SHARED_CONTROL_FF_LAST_ERROR 20u
#define GU_SHARED_CONTROL_SKIP_FAILURES 24u
#define GU_SHARED_CONTROL_LINES_PRINTED 28u
#define GU_SHARED_CONTROL_PRINT_ERRORS 32u
#define GU_SHARED_CONTROL_FOREIGN_CQES 36u
#define GU_SHARED_CONTROL_PROTOCOL_VIOLATIONS 40u
#define GU_SHARED_CONTROL_CREDITS_FREE 44u
#define GU_SHARED_CONTROL_SQ_CREDITS_FREE 48u
#define GU_SHARED_CONTROL_PRINT_LOG 52u
#define GU_SHARED_CONTROL_PRINT_LOG_BYTES 56u
#define GU_SHARED_CONTROL_CQ_RELEASED 60u
#define GU_SHARED_CONTROL_RESERVED 64u
#define GU_PRINT_FIXED_FILE 1u
#define GU_PRINT_OFFSET_MODE 2u
#define GU_PRINT_FIXED_BUF 4u
#define GU_PRINT_LOG 8u
#define GU_LOG_TICKETS 16u
#define GU_LOG_DUTY_WRITES 8u
#define GU_LOG_PRINT_POLLS 4u
#define GU_LOG_SLOT 0xffffffffu
#define GU_RESERVE_TRIES 64u
#define GU_MAX_LINE 4096u

// ---- CompletionSlot: a ring completion slot; state word = generation << 8 | RingSlotState
#define GU_SIZEOF_COMPLETION_SLOT 16u
#define GU_COMPLETION_SLOT_STATE 0u
#define GU_COMPLETION_SLOT_RESULT 4u
#define GU_COMPLETION_SLOT_FLAGS 8u
#define GU_COMPLETION_SLOT_OWNER 12u
#define GU_RING_SLOT_FREE 0u
#define GU_RING_SLOT_PENDING 1u
#define GU_RING_SLOT_DONE 2u
#define GU_RING_SLOT_REAPING 3u
#define GU_RING_SLOT_STATE_MASK 0x000000ffu
#define GU_RING_SLOT_GEN_SHIFT 8u
#define GU_RING_SLOT_GEN_MASK 0x00ffffffu

// ---- user_data tags (bits 62-63): GU_TAG_<X> is the 2-bit tag, _HI the high word, _UD the 64-bit value
#define GU_TAG_SHIFT 62u
#define GU_TAG_SLOT 1u
#define GU_TAG_SLOT_HI 0x40000000u
#define GU_TAG_SLOT_UD 0x4000000000000000UL
#define GU_TAG_FF 2u
#define GU_TAG_FF_HI 0x80000000u
#define GU_TAG_FF_UD 0x8000000000000000UL
#define GU_TAG_SKIP 3u
#define GU_TAG_SKIP_HI 0xc0000000u
#define GU_TAG_SKIP_UD 0xc000000000000000UL

// ---- WaitStatus: what device-side ring protocol calls return
#define GU_STATUS_READY 0u
#define GU_STATUS_WOULD_BLOCK 1u
#define GU_STATUS_TIMED_OUT 2u
#define GU_STATUS_NOT_PENDING 3u
#define GU_STATUS_BAD_FLAGS 4u
#define GU_STATUS_BAD_SLOT 5u
#define GU_STATUS_PROTOCOL_VIOLATION 6u
#define GU_STATUS_LINE_TOO_LONG 7u

// ---- io_uring: the kernel's SQE and CQE, and the opcodes and SQE flags device code writes
#define GU_SIZEOF_SQE 64u
#define GU_SQE_OPCODE 0u
#define GU_SQE_FLAGS 1u
#define GU_SQE_IOPRIO 2u
#define GU_SQE_FD 4u
#define GU_SQE_OFF 8u
#define GU_SQE_ADDR 16u
#define GU_SQE_LEN 24u
#define GU_SQE_OP_FLAGS 28u
#define GU_SQE_USER_DATA 32u
#define GU_SQE_BUF_INDEX 40u
#define GU_SQE_PERSONALITY 42u
#define GU_SQE_FILE_INDEX 44u
#define GU_SQE_ADDR3 48u
#define GU_SQE_PAD2 56u
#define GU_SIZEOF_CQE 16u
#define GU_CQE_USER_DATA 0u
#define GU_CQE_RES 8u
#define GU_CQE_FLAGS 12u
#define GU_IORING_OP_NOP 0u
#define GU_IORING_OP_READ_FIXED 4u
#define GU_IORING_OP_WRITE_FIXED 5u
#define GU_IORING_OP_READ 22u
#define GU_IORING_OP_WRITE 23u
#define GU_IOSQE_FIXED_FILE 1u
#define GU_IOSQE_IO_LINK 4u
#define GU_IOSQE_IO_HARDLINK 8u
#define GU_IOSQE_CQE_SKIP_SUCCESS 64u

// ---- Ring programs' run buffer: RunHeader, then one LaneState per lane
#define GU_SIZEOF_RUN_PARAMS 64u
#define GU_RUN_PARAMS_PROGRAM 0u
#define GU_RUN_PARAMS_LANES 4u
#define GU_RUN_PARAMS_COUNT 8u
#define GU_RUN_PARAMS_ARG0 12u
#define GU_RUN_PARAMS_ARG1 16u
#define GU_RUN_PARAMS_ARG2 20u
#define GU_RUN_PARAMS_ITER_BUDGET 24u
#define GU_RUN_PARAMS_DISPATCH 28u
#define GU_RUN_PARAMS_TOTAL 32u
#define GU_RUN_PARAMS_RESERVED 40u
#define GU_SIZEOF_RUN_HEADER 768u
#define GU_RUN_HEADER_PARAMS 0u
#define GU_RUN_HEADER_TEXT_INDEX 64u
#define GU_RUN_HEADER_TEXT_BYTES 192u
#define GU_RUN_HEADER_RESERVED 704u
#define GU_SIZEOF_LANE_STATE 72u
#define GU_LANE_STATE_SEQ 0u
#define GU_LANE_STATE_PHASE 4u
#define GU_LANE_STATE_DONE 8u
#define GU_LANE_STATE_FAILED 12u
#define GU_LANE_STATE_FLAGS 16u
#define GU_LANE_STATE_NEXT_LINE 20u
#define GU_LANE_STATE_PENDING_LEN 24u
#define GU_LANE_STATE_LINE_LEN 28u
#define GU_LANE_STATE_CHECKSUM 32u
#define GU_LANE_STATE_BYTES 40u
#define GU_LANE_STATE_DISPATCHES 48u
#define GU_LANE_STATE_WAITS 52u
#define GU_LANE_STATE_ITERS 56u
#define GU_LANE_STATE_LAST_STATUS 60u
#define GU_LANE_STATE_LOG_END 64u
#define GU_LANE_STATE_RESERVED 68u
#define GU_TEXT_ENTRIES 16u
#define GU_TEXT_BYTES 512u
#define GU_LANE_FINISHED 1u
#define GU_LANE_NO_TARGET 2u
#define GU_PROGRAM_PRINT 1u
#define GU_PROGRAM_NOP 2u
#define GU_PROGRAM_READ 3u
#define GU_PROGRAM_LANE_STRESS 4u
#define GU_PROGRAM_EDIT_BUFFER 5u
#define GU_PROGRAM_LAYOUT 6u
#define GU_PROGRAM_EXACT 7u
#define GU_PROGRAM_FORMAT 8u
#define GU_PROGRAM_HOSTILE 9u

// ---- io_queue: QueueHeader at arena offset 0, request sequences, RegionDesc table, IoSlots; device-local slot words; PumpLayout (push constants)
#define GU_SIZEOF_QUEUE_HEADER 64u
#define GU_QUEUE_HEADER_MAGIC 0u
#define GU_QUEUE_HEADER_VERSION 4u
#define GU_QUEUE_HEADER_NSLOTS 8u
#define GU_QUEUE_HEADER_PUMP_STATE 12u
#define GU_QUEUE_HEADER_NREGIONS 16u
#define GU_QUEUE_HEADER_NFILES 20u
#define GU_QUEUE_HEADER_RESERVED 24u
#define GU_SIZEOF_REGION_DESC 8u
#define GU_REGION_DESC_OFFSET 0u
#define GU_REGION_DESC_SIZE 4u
#define GU_SIZEOF_IO_SLOT 64u
#define GU_IO_SLOT_DONE_SEQ 0u
#define GU_IO_SLOT_OP 4u
#define GU_IO_SLOT_FILE 8u
#define GU_IO_SLOT_BUF 12u
#define GU_IO_SLOT_FILE_OFFSET 16u
#define GU_IO_SLOT_BUF_OFFSET 24u
#define GU_IO_SLOT_LEN 32u
#define GU_IO_SLOT_OWNER 36u
#define GU_IO_SLOT_TAG 40u
#define GU_IO_SLOT_RESULT 48u
#define GU_IO_SLOT_ERROR 52u
#define GU_IO_SLOT_RESERVED 56u
#define GU_SIZEOF_PUMP_LAYOUT 64u
#define GU_PUMP_LAYOUT_ARENA_SIZE 0u
#define GU_PUMP_LAYOUT_HEADER 8u
#define GU_PUMP_LAYOUT_REQ_SEQ 12u
#define GU_PUMP_LAYOUT_LOCAL_SIZE 16u
#define GU_PUMP_LAYOUT_SLOTS 20u
#define GU_PUMP_LAYOUT_NSLOTS 24u
#define GU_PUMP_LAYOUT_REGIONS 28u
#define GU_PUMP_LAYOUT_NREGIONS 32u
#define GU_PUMP_LAYOUT_NFILES 36u
#define GU_PUMP_LAYOUT_VERSION 40u
#define GU_PUMP_LAYOUT_RESERVED 44u
#define GU_QUEUE_MAGIC 0x51495547u
#define GU_QUEUE_VERSION 2u
#define GU_QUEUE_GUARD_BYTE 165u
#define GU_QUEUE_MAX_SLOTS 0x00010000u
#define GU_QUEUE_MAX_REGION 0x40000000u
#define GU_QUEUE_SLOT_FREE 0u
#define GU_QUEUE_SLOT_ALLOCATED 1u
#define GU_QUEUE_SLOT_PUBLISHED 2u
#define GU_QUEUE_SLOT_STATE_MASK 0x00000003u
#define GU_QUEUE_SEQ_SHIFT 2u
#define GU_QUEUE_SEQ_MASK 0x3fffffffu
#define GU_QUEUE_OP_NOP 0u
#define GU_QUEUE_OP_READ 1u
#define GU_QUEUE_OP_WRITE 2u
#define GU_QUEUE_OP_FENCE 3u
#define GU_QUEUE_ERR_NONE 0u
#define GU_QUEUE_ERR_BAD_OP 1u
#define GU_QUEUE_ERR_RESERVED 2u
#define GU_QUEUE_ERR_BAD_FILE 3u
#define GU_QUEUE_ERR_BAD_BUFFER 4u
#define GU_QUEUE_ERR_BAD_LENGTH 5u
#define GU_QUEUE_ERR_READ_ONLY 6u
#define GU_QUEUE_ERR_BUFFER_RANGE 7u
#define GU_QUEUE_ERR_FILE_RANGE 8u
#define GU_QUEUE_ERR_IO 9u
#define GU_QUEUE_ERR_SUBMIT 10u
#define GU_QUEUE_ERR_STOPPED 11u
#define GU_QUEUE_ERR_COUNT 12u
#define GU_PUMP_NOT_STARTED 0u
#define GU_PUMP_RUNNING 1u
#define GU_PUMP_STOPPING 2u
#define GU_PUMP_STOPPED 3u
#define GU_PUMP_FAILED 4u

// ---- io_queue programs' run buffer: PumpRunParams, then one PumpLaneState per lane
#define GU_SIZEOF_PUMP_RUN_PARAMS 64u
#define GU_PUMP_RUN_PARAMS_PROGRAM 0u
#define GU_PUMP_RUN_PARAMS_LANES 4u
#define GU_PUMP_RUN_PARAMS_ITER_BUDGET 8u
#define GU_PUMP_RUN_PARAMS_DISPATCH 12u
#define GU_PUMP_RUN_PARAMS_FILE 16u
#define GU_PUMP_RUN_PARAMS_REGION 20u
#define GU_PUMP_RUN_PARAMS_CHUNK 24u
#define GU_PUMP_RUN_PARAMS_COUNT 28u
#define GU_PUMP_RUN_PARAMS_TOTAL 32u
#define GU_PUMP_RUN_PARAMS_ARG0 40u
#define GU_PUMP_RUN_PARAMS_ARG1 44u
#define GU_PUMP_RUN_PARAMS_ARG2 48u
#define GU_PUMP_RUN_PARAMS_ARG3 52u
#define GU_PUMP_RUN_PARAMS_RESERVED 56u
#define GU_SIZEOF_PUMP_LANE_STATE 128u
#define GU_PUMP_LANE_STATE_FLAGS 0u
#define GU_PUMP_LANE_STATE_PHASE 4u
#define GU_PUMP_LANE_STATE_SEQ 8u
#define GU_PUMP_LANE_STATE_DONE 12u
#define GU_PUMP_LANE_STATE_FAILED 16u
#define GU_PUMP_LANE_STATE_ISSUED 20u
#define GU_PUMP_LANE_STATE_CONSUMED 24u
#define GU_PUMP_LANE_STATE_NEXT_ALLOC 28u
#define GU_PUMP_LANE_STATE_SLOT0 32u
#define GU_PUMP_LANE_STATE_SLOT1 36u
#define GU_PUMP_LANE_STATE_HPOS 40u
#define GU_PUMP_LANE_STATE_LAST_STATUS 44u
#define GU_PUMP_LANE_STATE_LAST_ERROR 48u
#define GU_PUMP_LANE_STATE_LAST_RESULT 52u
#define GU_PUMP_LANE_STATE_DISPATCHES 56u
#define GU_PUMP_LANE_STATE_WAITS 60u
#define GU_PUMP_LANE_STATE_ITERS 64u
#define GU_PUMP_LANE_STATE_WOULD_BLOCK 68u
#define GU_PUMP_LANE_STATE_RESERVED0 72u
#define GU_PUMP_LANE_STATE_RESERVED1 76u
#define GU_PUMP_LANE_STATE_HASH 80u
#define GU_PUMP_LANE_STATE_SUM 88u
#define GU_PUMP_LANE_STATE_BYTES 96u
#define GU_PUMP_LANE_STATE_LAST_TAG 104u
#define GU_PUMP_LANE_STATE_RESERVED2 112u
#define GU_PUMP_LANE_FINISHED 1u
#define GU_PUMP_NO_SLOT 0xffffffffu
#define GU_QUEUE_STATUS_READY 0u
#define GU_QUEUE_STATUS_WOULD_BLOCK 1u
#define GU_QUEUE_STATUS_TIMED_OUT 2u
#define GU_QUEUE_STATUS_PUMP_STOPPED 3u
#define GU_QUEUE_STATUS_NOT_PUBLISHED 4u

#ifndef __cplusplus
// GLSL member lists of the structs GLSL declares, each expanded as `struct <GlslType> { GU_<STRUCT>_MEMBERS };`
// or inside a push-constant / buffer block. Members keep the Rust names (GLSL-reserved names renamed);
// nested structs are named by their GLSL type. std430 places every member at the offset defined above.
// RingLayout as GLSL's GuRingLayout
#define GU_RING_LAYOUT_MEMBERS \
    uint64_t arena_host_base; \
    uint64_t arena_size; \
    uint sq_head; \
    uint sq_tail; \
    uint sq_flags; \
    uint sq_mask; \
    uint sq_entries; \
    uint sq_array; \
    uint cq_head; \
    uint cq_tail; \
    uint cq_mask; \
    uint cq_entries; \
    uint cqes; \
    uint sqes; \
    uint control; \
    uint slots; \
    uint slots_per_lane; \
    uint lanes; \
    uint staging; \
    uint staging_lines; \
    uint line_bytes; \
    uint staging_buf_index; \
    uint fixed_off; \
    uint fixed_size; \
    uint fixed_buf_index; \
    uint w_sq; \
    uint w_cq; \
    uint credit_pool; \
    uint ring_flags; \
    uint lane_words;
// RunParams as GLSL's GuRunParams
#define GU_RUN_PARAMS_MEMBERS \
    uint program; \
    uint lanes; \
    uint count; \
    uint arg0; \
    uint arg1; \
    uint arg2; \
    uint iter_budget; \
    uint dispatch; \
    uint64_t total; \
    uint reserved[6];
// RunHeader as GLSL's GuRunBuffer
#define GU_RUN_HEADER_MEMBERS \
    GuRunParams params; \
    uint text_index[32]; \
    uint text_bytes[128]; \
    uint reserved[16];
// LaneState as GLSL's GuLaneState
#define GU_LANE_STATE_MEMBERS \
    uint seq; \
    uint phase; \
    uint done; \
    uint failed; \
    uint flags; \
    uint next_line; \
    uint pending_len; \
    uint line_len; \
    uint64_t checksum; \
    uint64_t bytes; \
    uint dispatches; \
    uint waits; \
    uint iters; \
    uint last_status; \
    uint log_end; \
    uint reserved;
// PumpLayout as GLSL's GqPumpLayout
#define GU_PUMP_LAYOUT_MEMBERS \
    uint64_t arena_size; \
    uint header; \
    uint req_seq; \
    uint local_size; \
    uint slots; \
    uint nslots; \
    uint regions; \
    uint nregions; \
    uint nfiles; \
    uint version; \
    uint reserved[5];
// PumpRunParams as GLSL's GqRunParams
#define GU_PUMP_RUN_PARAMS_MEMBERS \
    uint program; \
    uint lanes; \
    uint iter_budget; \
    uint dispatch; \
    uint file; \
    uint region; \
    uint chunk; \
    uint count; \
    uint64_t total; \
    uint arg0; \
    uint arg1; \
    uint arg2; \
    uint arg3; \
    uint reserved[2];
// PumpLaneState as GLSL's GqLaneState
#define GU_PUMP_LANE_STATE_MEMBERS \
    uint flags; \
    uint phase; \
    uint seq; \
    uint done; \
    uint failed; \
    uint issued; \
    uint consumed; \
    uint next_alloc; \
    uint slot0; \
    uint slot1; \
    uint hpos; \
    uint last_status; \
    uint last_error; \
    int last_result; \
    uint dispatches; \
    uint waits; \
    uint iters; \
    uint would_block; \
    uint reserved0; \
    uint reserved1; \
    uint64_t hash; \
    uint64_t sum; \
    uint64_t bytes; \
    uint64_t last_tag; \
    uint reserved2[4];
#endif // !__cplusplus

#ifdef __cplusplus
// C++ views (HIP, CUDA, host C++): plain structs, checked against the defines above.
#include <stddef.h>
#include <stdint.h>
namespace gpu_uring {
struct RingLayout {
    uint64_t arena_host_base;
    uint64_t arena_size;
    uint32_t sq_head;
    uint32_t sq_tail;
    uint32_t sq_flags;
    uint32_t sq_mask;
    uint32_t sq_entries;
    uint32_t sq_array;
    uint32_t cq_head;
    uint32_t cq_tail;
    uint32_t cq_mask;
    uint32_t cq_entries;
    uint32_t cqes;
    uint32_t sqes;
    uint32_t control;
    uint32_t slots;
    uint32_t slots_per_lane;
    uint32_t lanes;
    uint32_t staging;
    uint32_t staging_lines;
    uint32_t line_bytes;
    uint32_t staging_buf_index;
    uint32_t fixed;
    uint32_t fixed_size;
    uint32_t fixed_buf_index;
    uint32_t w_sq;
    uint32_t w_cq;
    uint32_t credit_pool;
    uint32_t ring_flags;
    uint32_t lane_words;
};
static_assert(sizeof(RingLayout) == GU_SIZEOF_RING_LAYOUT, "RingLayout size");
static_assert(alignof(RingLayout) == 8u, "RingLayout alignment");
static_assert(offsetof(RingLayout, arena_host_base) == GU_RING_LAYOUT_ARENA_HOST_BASE, "RingLayout::arena_host_base");
static_assert(offsetof(RingLayout, arena_size) == GU_RING_LAYOUT_ARENA_SIZE, "RingLayout::arena_size");
static_assert(offsetof(RingLayout, sq_head) == GU_RING_LAYOUT_SQ_HEAD, "RingLayout::sq_head");
static_assert(offsetof(RingLayout, sq_tail) == GU_RING_LAYOUT_SQ_TAIL, "RingLayout::sq_tail");
static_assert(offsetof(RingLayout, sq_flags) == GU_RING_LAYOUT_SQ_FLAGS, "RingLayout::sq_flags");
static_assert(offsetof(RingLayout, sq_mask) == GU_RING_LAYOUT_SQ_MASK, "RingLayout::sq_mask");
static_assert(offsetof(RingLayout, sq_entries) == GU_RING_LAYOUT_SQ_ENTRIES, "RingLayout::sq_entries");
static_assert(offsetof(RingLayout, sq_array) == GU_RING_LAYOUT_SQ_ARRAY, "RingLayout::sq_array");
static_assert(offsetof(RingLayout, cq_head) == GU_RING_LAYOUT_CQ_HEAD, "RingLayout::cq_head");
static_assert(offsetof(RingLayout, cq_tail) == GU_RING_LAYOUT_CQ_TAIL, "RingLayout::cq_tail");
static_assert(offsetof(RingLayout, cq_mask) == GU_RING_LAYOUT_CQ_MASK, "RingLayout::cq_mask");
static_assert(offsetof(RingLayout, cq_entries) == GU_RING_LAYOUT_CQ_ENTRIES, "RingLayout::cq_entries");
static_assert(offsetof(RingLayout, cqes) == GU_RING_LAYOUT_CQES, "RingLayout::cqes");
static_assert(offsetof(RingLayout, sqes) == GU_RING_LAYOUT_SQES, "RingLayout::sqes");
static_assert(offsetof(RingLayout, control) == GU_RING_LAYOUT_CONTROL, "RingLayout::control");
static_assert(offsetof(RingLayout, slots) == GU_RING_LAYOUT_SLOTS, "RingLayout::slots");
static_assert(offsetof(RingLayout, slots_per_lane) == GU_RING_LAYOUT_SLOTS_PER_LANE, "RingLayout::slots_per_lane");
static_assert(offsetof(RingLayout, lanes) == GU_RING_LAYOUT_LANES, "RingLayout::lanes");
static_assert(offsetof(RingLayout, staging) == GU_RING_LAYOUT_STAGING, "RingLayout::staging");
static_assert(offsetof(RingLayout, staging_lines) == GU_RING_LAYOUT_STAGING_LINES, "RingLayout::staging_lines");
static_assert(offsetof(RingLayout, line_bytes) == GU_RING_LAYOUT_LINE_BYTES, "RingLayout::line_bytes");
static_assert(offsetof(RingLayout, staging_buf_index) == GU_RING_LAYOUT_STAGING_BUF_INDEX, "RingLayout::staging_buf_index");
static_assert(offsetof(RingLayout, fixed) == GU_RING_LAYOUT_FIXED, "RingLayout::fixed");
static_assert(offsetof(RingLayout, fixed_size) == GU_RING_LAYOUT_FIXED_SIZE, "RingLayout::fixed_size");
static_assert(offsetof(RingLayout, fixed_buf_index) == GU_RING_LAYOUT_FIXED_BUF_INDEX, "RingLayout::fixed_buf_index");
static_assert(offsetof(RingLayout, w_sq) == GU_RING_LAYOUT_W_SQ, "RingLayout::w_sq");
static_assert(offsetof(RingLayout, w_cq) == GU_RING_LAYOUT_W_CQ, "RingLayout::w_cq");
static_assert(offsetof(RingLayout, credit_pool) == GU_RING_LAYOUT_CREDIT_POOL, "RingLayout::credit_pool");
static_assert(offsetof(RingLayout, ring_flags) == GU_RING_LAYOUT_RING_FLAGS, "RingLayout::ring_flags");
static_assert(offsetof(RingLayout, lane_words) == GU_RING_LAYOUT_LANE_WORDS, "RingLayout::lane_words");
struct LocalControl {
    uint64_t sq_pub;
    uint64_t cq_pub;
    uint64_t print_offset;
    uint64_t ff_last_user_data;
    uint32_t sq_reserve;
    uint32_t cq_credits;
    uint32_t cq_claim;
    uint32_t sq_bell;
    uint32_t cq_bell;
    uint32_t sq_tail_stored;
    uint32_t cq_head_stored;
    uint32_t ff_errors;
    int32_t ff_last_error;
    uint32_t skip_failures;
    uint32_t lines_printed;
    uint32_t print_errors;
    uint32_t foreign_cqes;
    uint32_t protocol_violations;
    uint32_t mirror_sum;
    uint32_t log_bell;
    uint64_t log_pub;
    uint64_t log_reserve;
    uint32_t log_sub;
    uint32_t log_written;
    uint32_t log_wstate;
    int32_t log_wres;
    uint32_t log_writes;
    uint32_t log_short_writes;
    uint32_t log_starts[16];
    uint32_t log_ends[16];
    uint32_t _reserved[30];
};
static_assert(sizeof(LocalControl) == GU_SIZEOF_LOCAL_CONTROL, "LocalControl size");
static_assert(alignof(LocalControl) == 8u, "LocalControl alignment");
static_assert(offsetof(LocalControl, sq_pub) == GU_LOCAL_CONTROL_SQ_PUB, "LocalControl::sq_pub");
static_assert(offsetof(LocalControl, cq_pub) == GU_LOCAL_CONTROL_CQ_PUB, "LocalControl::cq_pub");
static_assert(offsetof(LocalControl, print_offset) == GU_LOCAL_CONTROL_PRINT_OFFSET, "LocalControl::print_offset");
static_assert(offsetof(LocalControl, ff_last_user_data) == GU_LOCAL_CONTROL_FF_LAST_USER_DATA, "LocalControl::ff_last_user_data");
static_assert(offsetof(LocalControl, sq_reserve) == GU_LOCAL_CONTROL_SQ_RESERVE, "LocalControl::sq_reserve");
static_assert(offsetof(LocalControl, cq_credits) == GU_LOCAL_CONTROL_CQ_CREDITS, "LocalControl::cq_credits");
static_assert(offsetof(LocalControl, cq_claim) == GU_LOCAL_CONTROL_CQ_CLAIM, "LocalControl::cq_claim");
static_assert(offsetof(LocalControl, sq_bell) == GU_LOCAL_CONTROL_SQ_BELL, "LocalControl::sq_bell");
static_assert(offsetof(LocalControl, cq_bell) == GU_LOCAL_CONTROL_CQ_BELL, "LocalControl::cq_bell");
static_assert(offsetof(LocalControl, sq_tail_stored) == GU_LOCAL_CONTROL_SQ_TAIL_STORED, "LocalControl::sq_tail_stored");
static_assert(offsetof(LocalControl, cq_head_stored) == GU_LOCAL_CONTROL_CQ_HEAD_STORED, "LocalControl::cq_head_stored");
static_assert(offsetof(LocalControl, ff_errors) == GU_LOCAL_CONTROL_FF_ERRORS, "LocalControl::ff_errors");
static_assert(offsetof(LocalControl, ff_last_error) == GU_LOCAL_CONTROL_FF_LAST_ERROR, "LocalControl::ff_last_error");
static_assert(offsetof(LocalControl, skip_failures) == GU_LOCAL_CONTROL_SKIP_FAILURES, "LocalControl::skip_failures");
static_assert(offsetof(LocalControl, lines_printed) == GU_LOCAL_CONTROL_LINES_PRINTED, "LocalControl::lines_printed");
static_assert(offsetof(LocalControl, print_errors) == GU_LOCAL_CONTROL_PRINT_ERRORS, "LocalControl::print_errors");
static_assert(offsetof(LocalControl, foreign_cqes) == GU_LOCAL_CONTROL_FOREIGN_CQES, "LocalControl::foreign_cqes");
static_assert(offsetof(LocalControl, protocol_violations) == GU_LOCAL_CONTROL_PROTOCOL_VIOLATIONS, "LocalControl::protocol_violations");
static_assert(offsetof(LocalControl, mirror_sum) == GU_LOCAL_CONTROL_MIRROR_SUM, "LocalControl::mirror_sum");
static_assert(offsetof(LocalControl, log_bell) == GU_LOCAL_CONTROL_LOG_BELL, "LocalControl::log_bell");
static_assert(offsetof(LocalControl, log_pub) == GU_LOCAL_CONTROL_LOG_PUB, "LocalControl::log_pub");
static_assert(offsetof(LocalControl, log_reserve) == GU_LOCAL_CONTROL_LOG_RESERVE, "LocalControl::log_reserve");
static_assert(offsetof(LocalControl, log_sub) == GU_LOCAL_CONTROL_LOG_SUB, "LocalControl::log_sub");
static_assert(offsetof(LocalControl, log_written) == GU_LOCAL_CONTROL_LOG_WRITTEN, "LocalControl::log_written");
static_assert(offsetof(LocalControl, log_wstate) == GU_LOCAL_CONTROL_LOG_WSTATE, "LocalControl::log_wstate");
static_assert(offsetof(LocalControl, log_wres) == GU_LOCAL_CONTROL_LOG_WRES, "LocalControl::log_wres");
static_assert(offsetof(LocalControl, log_writes) == GU_LOCAL_CONTROL_LOG_WRITES, "LocalControl::log_writes");
static_assert(offsetof(LocalControl, log_short_writes) == GU_LOCAL_CONTROL_LOG_SHORT_WRITES, "LocalControl::log_short_writes");
static_assert(offsetof(LocalControl, log_starts) == GU_LOCAL_CONTROL_LOG_STARTS, "LocalControl::log_starts");
static_assert(offsetof(LocalControl, log_ends) == GU_LOCAL_CONTROL_LOG_ENDS, "LocalControl::log_ends");
static_assert(offsetof(LocalControl, _reserved) == GU_LOCAL_CONTROL_RESERVED, "LocalControl::_reserved");
struct SharedControl {
    uint64_t ff_last_user_data;
    int32_t print_fd;
    uint32_t print_flags;
    uint32_t ff_errors;
    int32_t ff_last_error;
    uint32_t skip_failures;
    uint32_t lines_printed;
    uint32_t print_errors;
    uint32_t foreign_cqes;
    uint32_t protocol_violations;
    uint32_t credits_free;
    uint32_t sq_credits_free;
    uint32_t print_log;
    uint32_t print_log_bytes;
    uint32_t cq_released;
    uint32_t _reserved[16];
};
static_assert(sizeof(SharedControl) == GU_SIZEOF_SHARED_CONTROL, "SharedControl size");
static_assert(alignof(SharedControl) == 8u, "SharedControl alignment");
static_assert(offsetof(SharedControl, ff_last_user_data) == GU_SHARED_CONTROL_FF_LAST_USER_DATA, "SharedControl::ff_last_user_data");
static_assert(offsetof(SharedControl, print_fd) == GU_SHARED_CONTROL_PRINT_FD, "SharedControl::print_fd");
static_assert(offsetof(SharedControl, print_flags) == GU_SHARED_CONTROL_PRINT_FLAGS, "SharedControl::print_flags");
static_assert(offsetof(SharedControl, ff_errors) == GU_SHARED_CONTROL_FF_ERRORS, "SharedControl::ff_errors");
static_assert(offsetof(SharedControl, ff_last_error) == GU_SHARED_CONTROL_FF_LAST_ERROR, "SharedControl::ff_last_error");
static_assert(offsetof(SharedControl, skip_failures) == GU_SHARED_CONTROL_SKIP_FAILURES, "SharedControl::skip_failures");
static_assert(offsetof(SharedControl, lines_printed) == GU_SHARED_CONTROL_LINES_PRINTED, "SharedControl::lines_printed");
static_assert(offsetof(SharedControl, print_errors) == GU_SHARED_CONTROL_PRINT_ERRORS, "SharedControl::print_errors");
static_assert(offsetof(SharedControl, foreign_cqes) == GU_SHARED_CONTROL_FOREIGN_CQES, "SharedControl::foreign_cqes");
static_assert(offsetof(SharedControl, protocol_violations) == GU_SHARED_CONTROL_PROTOCOL_VIOLATIONS, "SharedControl::protocol_violations");
static_assert(offsetof(SharedControl, credits_free) == GU_SHARED_CONTROL_CREDITS_FREE, "SharedControl::credits_free");
static_assert(offsetof(SharedControl, sq_credits_free) == GU_SHARED_CONTROL_SQ_CREDITS_FREE, "SharedControl::sq_credits_free");
static_assert(offsetof(SharedControl, print_log) == GU_SHARED_CONTROL_PRINT_LOG, "SharedControl::print_log");
static_assert(offsetof(SharedControl, print_log_bytes) == GU_SHARED_CONTROL_PRINT_LOG_BYTES, "SharedControl::print_log_bytes");
static_assert(offsetof(SharedControl, cq_released) == GU_SHARED_CONTROL_CQ_RELEASED, "SharedControl::cq_released");
static_assert(offsetof(SharedControl, _reserved) == GU_SHARED_CONTROL_RESERVED, "SharedControl::_reserved");
struct CompletionSlot {
    uint32_t state;
    int32_t result;
    uint32_t flags;
    uint32_t owner;
};
static_assert(sizeof(CompletionSlot) == GU_SIZEOF_COMPLETION_SLOT, "CompletionSlot size");
static_assert(alignof(CompletionSlot) == 4u, "CompletionSlot alignment");
static_assert(offsetof(CompletionSlot, state) == GU_COMPLETION_SLOT_STATE, "CompletionSlot::state");
static_assert(offsetof(CompletionSlot, result) == GU_COMPLETION_SLOT_RESULT, "CompletionSlot::result");
static_assert(offsetof(CompletionSlot, flags) == GU_COMPLETION_SLOT_FLAGS, "CompletionSlot::flags");
static_assert(offsetof(CompletionSlot, owner) == GU_COMPLETION_SLOT_OWNER, "CompletionSlot::owner");
struct Sqe {
    uint8_t opcode;
    uint8_t flags;
    uint16_t ioprio;
    int32_t fd;
    uint64_t off;
    uint64_t addr;
    uint32_t len;
    uint32_t op_flags;
    uint64_t user_data;
    uint16_t buf_index;
    uint16_t personality;
    int32_t file_index;
    uint64_t addr3;
    uint64_t _pad2;
};
static_assert(sizeof(Sqe) == GU_SIZEOF_SQE, "Sqe size");
static_assert(alignof(Sqe) == 8u, "Sqe alignment");
static_assert(offsetof(Sqe, opcode) == GU_SQE_OPCODE, "Sqe::opcode");
static_assert(offsetof(Sqe, flags) == GU_SQE_FLAGS, "Sqe::flags");
static_assert(offsetof(Sqe, ioprio) == GU_SQE_IOPRIO, "Sqe::ioprio");
static_assert(offsetof(Sqe, fd) == GU_SQE_FD, "Sqe::fd");
static_assert(offsetof(Sqe, off) == GU_SQE_OFF, "Sqe::off");
static_assert(offsetof(Sqe, addr) == GU_SQE_ADDR, "Sqe::addr");
static_assert(offsetof(Sqe, len) == GU_SQE_LEN, "Sqe::len");
static_assert(offsetof(Sqe, op_flags) == GU_SQE_OP_FLAGS, "Sqe::op_flags");
static_assert(offsetof(Sqe, user_data) == GU_SQE_USER_DATA, "Sqe::user_data");
static_assert(offsetof(Sqe, buf_index) == GU_SQE_BUF_INDEX, "Sqe::buf_index");
static_assert(offsetof(Sqe, personality) == GU_SQE_PERSONALITY, "Sqe::personality");
static_assert(offsetof(Sqe, file_index) == GU_SQE_FILE_INDEX, "Sqe::file_index");
static_assert(offsetof(Sqe, addr3) == GU_SQE_ADDR3, "Sqe::addr3");
static_assert(offsetof(Sqe, _pad2) == GU_SQE_PAD2, "Sqe::_pad2");
struct Cqe {
    uint64_t user_data;
    int32_t res;
    uint32_t flags;
};
static_assert(sizeof(Cqe) == GU_SIZEOF_CQE, "Cqe size");
static_assert(alignof(Cqe) == 8u, "Cqe alignment");
static_assert(offsetof(Cqe, user_data) == GU_CQE_USER_DATA, "Cqe::user_data");
static_assert(offsetof(Cqe, res) == GU_CQE_RES, "Cqe::res");
static_assert(offsetof(Cqe, flags) == GU_CQE_FLAGS, "Cqe::flags");
struct RunParams {
    uint32_t program;
    uint32_t lanes;
    uint32_t count;
    uint32_t arg0;
    uint32_t arg1;
    uint32_t arg2;
    uint32_t iter_budget;
    uint32_t dispatch;
    uint64_t total;
    uint32_t reserved[6];
};
static_assert(sizeof(RunParams) == GU_SIZEOF_RUN_PARAMS, "RunParams size");
static_assert(alignof(RunParams) == 8u, "RunParams alignment");
static_assert(offsetof(RunParams, program) == GU_RUN_PARAMS_PROGRAM, "RunParams::program");
static_assert(offsetof(RunParams, lanes) == GU_RUN_PARAMS_LANES, "RunParams::lanes");
static_assert(offsetof(RunParams, count) == GU_RUN_PARAMS_COUNT, "RunParams::count");
static_assert(offsetof(RunParams, arg0) == GU_RUN_PARAMS_ARG0, "RunParams::arg0");
static_assert(offsetof(RunParams, arg1) == GU_RUN_PARAMS_ARG1, "RunParams::arg1");
static_assert(offsetof(RunParams, arg2) == GU_RUN_PARAMS_ARG2, "RunParams::arg2");
static_assert(offsetof(RunParams, iter_budget) == GU_RUN_PARAMS_ITER_BUDGET, "RunParams::iter_budget");
static_assert(offsetof(RunParams, dispatch) == GU_RUN_PARAMS_DISPATCH, "RunParams::dispatch");
static_assert(offsetof(RunParams, total) == GU_RUN_PARAMS_TOTAL, "RunParams::total");
static_assert(offsetof(RunParams, reserved) == GU_RUN_PARAMS_RESERVED, "RunParams::reserved");
struct RunHeader {
    RunParams params;
    uint32_t text_index[32];
    uint32_t text_bytes[128];
    uint32_t reserved[16];
};
static_assert(sizeof(RunHeader) == GU_SIZEOF_RUN_HEADER, "RunHeader size");
static_assert(alignof(RunHeader) == 8u, "RunHeader alignment");
static_assert(offsetof(RunHeader, params) == GU_RUN_HEADER_PARAMS, "RunHeader::params");
static_assert(offsetof(RunHeader, text_index) == GU_RUN_HEADER_TEXT_INDEX, "RunHeader::text_index");
static_assert(offsetof(RunHeader, text_bytes) == GU_RUN_HEADER_TEXT_BYTES, "RunHeader::text_bytes");
static_assert(offsetof(RunHeader, reserved) == GU_RUN_HEADER_RESERVED, "RunHeader::reserved");
struct LaneState {
    uint32_t seq;
    uint32_t phase;
    uint32_t done;
    uint32_t failed;
    uint32_t flags;
    uint32_t next_line;
    uint32_t pending_len;
    uint32_t line_len;
    uint64_t checksum;
    uint64_t bytes;
    uint32_t dispatches;
    uint32_t waits;
    uint32_t iters;
    uint32_t last_status;
    uint32_t log_end;
    uint32_t reserved;
};
static_assert(sizeof(LaneState) == GU_SIZEOF_LANE_STATE, "LaneState size");
static_assert(alignof(LaneState) == 8u, "LaneState alignment");
static_assert(offsetof(LaneState, seq) == GU_LANE_STATE_SEQ, "LaneState::seq");
static_assert(offsetof(LaneState, phase) == GU_LANE_STATE_PHASE, "LaneState::phase");
static_assert(offsetof(LaneState, done) == GU_LANE_STATE_DONE, "LaneState::done");
static_assert(offsetof(LaneState, failed) == GU_LANE_STATE_FAILED, "LaneState::failed");
static_assert(offsetof(LaneState, flags) == GU_LANE_STATE_FLAGS, "LaneState::flags");
static_assert(offsetof(LaneState, next_line) == GU_LANE_STATE_NEXT_LINE, "LaneState::next_line");
static_assert(offsetof(LaneState, pending_len) == GU_LANE_STATE_PENDING_LEN, "LaneState::pending_len");
static_assert(offsetof(LaneState, line_len) == GU_LANE_STATE_LINE_LEN, "LaneState::line_len");
static_assert(offsetof(LaneState, checksum) == GU_LANE_STATE_CHECKSUM, "LaneState::checksum");
static_assert(offsetof(LaneState, bytes) == GU_LANE_STATE_BYTES, "LaneState::bytes");
static_assert(offsetof(LaneState, dispatches) == GU_LANE_STATE_DISPATCHES, "LaneState::dispatches");
static_assert(offsetof(LaneState, waits) == GU_LANE_STATE_WAITS, "LaneState::waits");
static_assert(offsetof(LaneState, iters) == GU_LANE_STATE_ITERS, "LaneState::iters");
static_assert(offsetof(LaneState, last_status) == GU_LANE_STATE_LAST_STATUS, "LaneState::last_status");
static_assert(offsetof(LaneState, log_end) == GU_LANE_STATE_LOG_END, "LaneState::log_end");
static_assert(offsetof(LaneState, reserved) == GU_LANE_STATE_RESERVED, "LaneState::reserved");
struct QueueHeader {
    uint32_t magic;
    uint32_t version;
    uint32_t nslots;
    uint32_t pump_state;
    uint32_t nregions;
    uint32_t nfiles;
    uint32_t reserved[10];
};
static_assert(sizeof(QueueHeader) == GU_SIZEOF_QUEUE_HEADER, "QueueHeader size");
static_assert(alignof(QueueHeader) == 4u, "QueueHeader alignment");
static_assert(offsetof(QueueHeader, magic) == GU_QUEUE_HEADER_MAGIC, "QueueHeader::magic");
static_assert(offsetof(QueueHeader, version) == GU_QUEUE_HEADER_VERSION, "QueueHeader::version");
static_assert(offsetof(QueueHeader, nslots) == GU_QUEUE_HEADER_NSLOTS, "QueueHeader::nslots");
static_assert(offsetof(QueueHeader, pump_state) == GU_QUEUE_HEADER_PUMP_STATE, "QueueHeader::pump_state");
static_assert(offsetof(QueueHeader, nregions) == GU_QUEUE_HEADER_NREGIONS, "QueueHeader::nregions");
static_assert(offsetof(QueueHeader, nfiles) == GU_QUEUE_HEADER_NFILES, "QueueHeader::nfiles");
static_assert(offsetof(QueueHeader, reserved) == GU_QUEUE_HEADER_RESERVED, "QueueHeader::reserved");
struct RegionDesc {
    uint32_t offset;
    uint32_t size;
};
static_assert(sizeof(RegionDesc) == GU_SIZEOF_REGION_DESC, "RegionDesc size");
static_assert(alignof(RegionDesc) == 4u, "RegionDesc alignment");
static_assert(offsetof(RegionDesc, offset) == GU_REGION_DESC_OFFSET, "RegionDesc::offset");
static_assert(offsetof(RegionDesc, size) == GU_REGION_DESC_SIZE, "RegionDesc::size");
struct IoSlot {
    uint32_t done_seq;
    uint32_t op;
    uint32_t file;
    uint32_t buf;
    uint64_t file_offset;
    uint64_t buf_offset;
    uint32_t len;
    uint32_t owner;
    uint64_t tag;
    int32_t result;
    uint32_t error;
    uint32_t reserved[2];
};
static_assert(sizeof(IoSlot) == GU_SIZEOF_IO_SLOT, "IoSlot size");
static_assert(alignof(IoSlot) == 8u, "IoSlot alignment");
static_assert(offsetof(IoSlot, done_seq) == GU_IO_SLOT_DONE_SEQ, "IoSlot::done_seq");
static_assert(offsetof(IoSlot, op) == GU_IO_SLOT_OP, "IoSlot::op");
static_assert(offsetof(IoSlot, file) == GU_IO_SLOT_FILE, "IoSlot::file");
static_assert(offsetof(IoSlot, buf) == GU_IO_SLOT_BUF, "IoSlot::buf");
static_assert(offsetof(IoSlot, file_offset) == GU_IO_SLOT_FILE_OFFSET, "IoSlot::file_offset");
static_assert(offsetof(IoSlot, buf_offset) == GU_IO_SLOT_BUF_OFFSET, "IoSlot::buf_offset");
static_assert(offsetof(IoSlot, len) == GU_IO_SLOT_LEN, "IoSlot::len");
static_assert(offsetof(IoSlot, owner) == GU_IO_SLOT_OWNER, "IoSlot::owner");
static_assert(offsetof(IoSlot, tag) == GU_IO_SLOT_TAG, "IoSlot::tag");
static_assert(offsetof(IoSlot, result) == GU_IO_SLOT_RESULT, "IoSlot::result");
static_assert(offsetof(IoSlot, error) == GU_IO_SLOT_ERROR, "IoSlot::error");
static_assert(offsetof(IoSlot, reserved) == GU_IO_SLOT_RESERVED, "IoSlot::reserved");
struct PumpLayout {
    uint64_t arena_size;
    uint32_t header;
    uint32_t req_seq;
    uint32_t local_size;
    uint32_t slots;
    uint32_t nslots;
    uint32_t regions;
    uint32_t nregions;
    uint32_t nfiles;
    uint32_t version;
    uint32_t reserved[5];
};
static_assert(sizeof(PumpLayout) == GU_SIZEOF_PUMP_LAYOUT, "PumpLayout size");
static_assert(alignof(PumpLayout) == 8u, "PumpLayout alignment");
static_assert(offsetof(PumpLayout, arena_size) == GU_PUMP_LAYOUT_ARENA_SIZE, "PumpLayout::arena_size");
static_assert(offsetof(PumpLayout, header) == GU_PUMP_LAYOUT_HEADER, "PumpLayout::header");
static_assert(offsetof(PumpLayout, req_seq) == GU_PUMP_LAYOUT_REQ_SEQ, "PumpLayout::req_seq");
static_assert(offsetof(PumpLayout, local_size) == GU_PUMP_LAYOUT_LOCAL_SIZE, "PumpLayout::local_size");
static_assert(offsetof(PumpLayout, slots) == GU_PUMP_LAYOUT_SLOTS, "PumpLayout::slots");
static_assert(offsetof(PumpLayout, nslots) == GU_PUMP_LAYOUT_NSLOTS, "PumpLayout::nslots");
static_assert(offsetof(PumpLayout, regions) == GU_PUMP_LAYOUT_REGIONS, "PumpLayout::regions");
static_assert(offsetof(PumpLayout, nregions) == GU_PUMP_LAYOUT_NREGIONS, "PumpLayout::nregions");
static_assert(offsetof(PumpLayout, nfiles) == GU_PUMP_LAYOUT_NFILES, "PumpLayout::nfiles");
static_assert(offsetof(PumpLayout, version) == GU_PUMP_LAYOUT_VERSION, "PumpLayout::version");
static_assert(offsetof(PumpLayout, reserved) == GU_PUMP_LAYOUT_RESERVED, "PumpLayout::reserved");
struct PumpRunParams {
    uint32_t program;
    uint32_t lanes;
    uint32_t iter_budget;
    uint32_t dispatch;
    uint32_t file;
    uint32_t region;
    uint32_t chunk;
    uint32_t count;
    uint64_t total;
    uint32_t arg0;
    uint32_t arg1;
    uint32_t arg2;
    uint32_t arg3;
    uint32_t reserved[2];
};
static_assert(sizeof(PumpRunParams) == GU_SIZEOF_PUMP_RUN_PARAMS, "PumpRunParams size");
static_assert(alignof(PumpRunParams) == 8u, "PumpRunParams alignment");
static_assert(offsetof(PumpRunParams, program) == GU_PUMP_RUN_PARAMS_PROGRAM, "PumpRunParams::program");
static_assert(offsetof(PumpRunParams, lanes) == GU_PUMP_RUN_PARAMS_LANES, "PumpRunParams::lanes");
static_assert(offsetof(PumpRunParams, iter_budget) == GU_PUMP_RUN_PARAMS_ITER_BUDGET, "PumpRunParams::iter_budget");
static_assert(offsetof(PumpRunParams, dispatch) == GU_PUMP_RUN_PARAMS_DISPATCH, "PumpRunParams::dispatch");
static_assert(offsetof(PumpRunParams, file) == GU_PUMP_RUN_PARAMS_FILE, "PumpRunParams::file");
static_assert(offsetof(PumpRunParams, region) == GU_PUMP_RUN_PARAMS_REGION, "PumpRunParams::region");
static_assert(offsetof(PumpRunParams, chunk) == GU_PUMP_RUN_PARAMS_CHUNK, "PumpRunParams::chunk");
static_assert(offsetof(PumpRunParams, count) == GU_PUMP_RUN_PARAMS_COUNT, "PumpRunParams::count");
static_assert(offsetof(PumpRunParams, total) == GU_PUMP_RUN_PARAMS_TOTAL, "PumpRunParams::total");
static_assert(offsetof(PumpRunParams, arg0) == GU_PUMP_RUN_PARAMS_ARG0, "PumpRunParams::arg0");
static_assert(offsetof(PumpRunParams, arg1) == GU_PUMP_RUN_PARAMS_ARG1, "PumpRunParams::arg1");
static_assert(offsetof(PumpRunParams, arg2) == GU_PUMP_RUN_PARAMS_ARG2, "PumpRunParams::arg2");
static_assert(offsetof(PumpRunParams, arg3) == GU_PUMP_RUN_PARAMS_ARG3, "PumpRunParams::arg3");
static_assert(offsetof(PumpRunParams, reserved) == GU_PUMP_RUN_PARAMS_RESERVED, "PumpRunParams::reserved");
struct PumpLaneState {
    uint32_t flags;
    uint32_t phase;
    uint32_t seq;
    uint32_t done;
    uint32_t failed;
    uint32_t issued;
    uint32_t consumed;
    uint32_t next_alloc;
    uint32_t slot0;
    uint32_t slot1;
    uint32_t hpos;
    uint32_t last_status;
    uint32_t last_error;
    int32_t last_result;
    uint32_t dispatches;
    uint32_t waits;
    uint32_t iters;
    uint32_t would_block;
    uint32_t reserved0;
    uint32_t reserved1;
    uint64_t hash;
    uint64_t sum;
    uint64_t bytes;
    uint64_t last_tag;
    uint32_t reserved2[4];
};
static_assert(sizeof(PumpLaneState) == GU_SIZEOF_PUMP_LANE_STATE, "PumpLaneState size");
static_assert(alignof(PumpLaneState) == 8u, "PumpLaneState alignment");
static_assert(offsetof(PumpLaneState, flags) == GU_PUMP_LANE_STATE_FLAGS, "PumpLaneState::flags");
static_assert(offsetof(PumpLaneState, phase) == GU_PUMP_LANE_STATE_PHASE, "PumpLaneState::phase");
static_assert(offsetof(PumpLaneState, seq) == GU_PUMP_LANE_STATE_SEQ, "PumpLaneState::seq");
static_assert(offsetof(PumpLaneState, done) == GU_PUMP_LANE_STATE_DONE, "PumpLaneState::done");
static_assert(offsetof(PumpLaneState, failed) == GU_PUMP_LANE_STATE_FAILED, "PumpLaneState::failed");
static_assert(offsetof(PumpLaneState, issued) == GU_PUMP_LANE_STATE_ISSUED, "PumpLaneState::issued");
static_assert(offsetof(PumpLaneState, consumed) == GU_PUMP_LANE_STATE_CONSUMED, "PumpLaneState::consumed");
static_assert(offsetof(PumpLaneState, next_alloc) == GU_PUMP_LANE_STATE_NEXT_ALLOC, "PumpLaneState::next_alloc");
static_assert(offsetof(PumpLaneState, slot0) == GU_PUMP_LANE_STATE_SLOT0, "PumpLaneState::slot0");
static_assert(offsetof(PumpLaneState, slot1) == GU_PUMP_LANE_STATE_SLOT1, "PumpLaneState::slot1");
static_assert(offsetof(PumpLaneState, hpos) == GU_PUMP_LANE_STATE_HPOS, "PumpLaneState::hpos");
static_assert(offsetof(PumpLaneState, last_status) == GU_PUMP_LANE_STATE_LAST_STATUS, "PumpLaneState::last_status");
static_assert(offsetof(PumpLaneState, last_error) == GU_PUMP_LANE_STATE_LAST_ERROR, "PumpLaneState::last_error");
static_assert(offsetof(PumpLaneState, last_result) == GU_PUMP_LANE_STATE_LAST_RESULT, "PumpLaneState::last_result");
static_assert(offsetof(PumpLaneState, dispatches) == GU_PUMP_LANE_STATE_DISPATCHES, "PumpLaneState::dispatches");
static_assert(offsetof(PumpLaneState, waits) == GU_PUMP_LANE_STATE_WAITS, "PumpLaneState::waits");
static_assert(offsetof(PumpLaneState, iters) == GU_PUMP_LANE_STATE_ITERS, "PumpLaneState::iters");
static_assert(offsetof(PumpLaneState, would_block) == GU_PUMP_LANE_STATE_WOULD_BLOCK, "PumpLaneState::would_block");
static_assert(offsetof(PumpLaneState, reserved0) == GU_PUMP_LANE_STATE_RESERVED0, "PumpLaneState::reserved0");
static_assert(offsetof(PumpLaneState, reserved1) == GU_PUMP_LANE_STATE_RESERVED1, "PumpLaneState::reserved1");
static_assert(offsetof(PumpLaneState, hash) == GU_PUMP_LANE_STATE_HASH, "PumpLaneState::hash");
static_assert(offsetof(PumpLaneState, sum) == GU_PUMP_LANE_STATE_SUM, "PumpLaneState::sum");
static_assert(offsetof(PumpLaneState, bytes) == GU_PUMP_LANE_STATE_BYTES, "PumpLaneState::bytes");
static_assert(offsetof(PumpLaneState, last_tag) == GU_PUMP_LANE_STATE_LAST_TAG, "PumpLaneState::last_tag");
static_assert(offsetof(PumpLaneState, reserved2) == GU_PUMP_LANE_STATE_RESERVED2, "PumpLaneState::reserved2");
} // namespace gpu_uring
#endif // __cplusplus

#endif // GPU_URING_ABI_H
