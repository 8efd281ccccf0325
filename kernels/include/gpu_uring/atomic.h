// gpu_uring/atomic.h: the memory of PROTOCOL.md, by type (the same split as the Rust accessors).
//
// * `gu::local_word<T>`: a word of the device-local block (tickets, bitmaps, claims, credits, bells,
//   completion slots, lane words, counters). Device-scope atomics, RMW allowed: only lanes of this device touch
//   it while a run lasts.
// * `gu::shared_word<T>`: a word of host-shared memory (kernel ring words, SQEs, CQEs, staging lines,
//   SharedControl mirrors). System-scope loads and stores and NOTHING else: the type has no RMW methods, so the
//   "no RMW on host-shared memory, one writer per word" rule is checked by the compiler.
// * fences at device scope (`fence_device`) and system scope (`fence_system`).
//
// T is uint32_t, int32_t or uint64_t (64-bit words are naturally aligned in both blocks). Every operation
// takes its memory order explicitly; say at the call why that order is needed.
//
// Per target:
// * CUDA: PTX memory-model instructions (sm_70+; `ld/st/atom/fence` with `.relaxed/.acquire/.release/
//   .acq_rel` at `.gpu` or `.sys` scope), i.e. exactly what `cuda::atomic_ref<T, thread_scope_device|system>`
//   compiles to. libcu++'s atomic_ref itself is not used: under NVRTC it emits hundreds of unused
//   `.global` constants (static constexpr members of its type traits) into every module.
//   seq_cst follows libcu++'s mapping: `fence.sc` then the acquire (load, RMW) or relaxed (store) access.
// * HIP: clang's `__hip_atomic_*` builtins with `__HIP_MEMORY_SCOPE_AGENT` (device) or
//   `__HIP_MEMORY_SCOPE_SYSTEM` (host-shared), fences with `__builtin_amdgcn_fence`.
// * host C++: `std::atomic_ref` (C++20); one scope, so device and system are the same there.
#ifndef GPU_URING_ATOMIC_H
#define GPU_URING_ATOMIC_H

#include "config.h"

namespace gu {

// Memory orders. Loads take relaxed/acquire/seq_cst, stores relaxed/release/seq_cst, RMWs any.
enum class mo : int { relaxed = 0, acquire = 1, release = 2, acq_rel = 3, seq_cst = 4 };

namespace detail {

template <class T> struct word_bits;
template <> struct word_bits<uint32_t> { typedef uint32_t type; };
template <> struct word_bits<int32_t> { typedef uint32_t type; };
template <> struct word_bits<uint64_t> { typedef uint64_t type; };

template <class T> GU_FN typename word_bits<T>::type to_bits(T v) { return (typename word_bits<T>::type)v; }
template <class T> GU_FN T from_bits(typename word_bits<T>::type v) { return (T)v; }

#if defined(GU_HOST)

GU_FN std::memory_order std_order(mo o) {
    switch (o) {
    case mo::relaxed: return std::memory_order_relaxed;
    case mo::acquire: return std::memory_order_acquire;
    case mo::release: return std::memory_order_release;
    case mo::acq_rel: return std::memory_order_acq_rel;
    default: return std::memory_order_seq_cst;
    }
}
// A load may not be release/acq_rel in C++: those widen to the acquire half, stores to the release half.
GU_FN std::memory_order load_order(mo o) {
    return o == mo::release ? std::memory_order_relaxed : o == mo::acq_rel ? std::memory_order_acquire : std_order(o);
}
GU_FN std::memory_order store_order(mo o) {
    return o == mo::acquire ? std::memory_order_relaxed : o == mo::acq_rel ? std::memory_order_release : std_order(o);
}
GU_FN std::memory_order fail_order(mo o) {
    return (o == mo::seq_cst) ? std::memory_order_seq_cst
           : (o == mo::acquire || o == mo::acq_rel) ? std::memory_order_acquire
                                                     : std::memory_order_relaxed;
}

// Host: one scope. S is ignored. The calling thread's read-modify-writes are counted (`rmw_count`), so tests
// can measure what subgroup aggregation saves; on host-shared words there are none to count (no RMW method).
inline thread_local uint64_t rmw_count = 0;
template <int S, class B> GU_FN B ld(const B *p, mo o) {
    return std::atomic_ref<B>(*const_cast<B *>(p)).load(load_order(o));
}
template <int S, class B> GU_FN void st(B *p, B v, mo o) { std::atomic_ref<B>(*p).store(v, store_order(o)); }
template <int S, class B> GU_FN bool cas(B *p, B &expected, B desired, mo o) {
    rmw_count++;
    return std::atomic_ref<B>(*p).compare_exchange_strong(expected, desired, std_order(o), fail_order(o));
}
template <int S, class B> GU_FN B add(B *p, B v, mo o) {
    rmw_count++;
    return std::atomic_ref<B>(*p).fetch_add(v, std_order(o));
}
template <int S, class B> GU_FN B bor(B *p, B v, mo o) {
    rmw_count++;
    return std::atomic_ref<B>(*p).fetch_or(v, std_order(o));
}
template <int S, class B> GU_FN B band(B *p, B v, mo o) {
    rmw_count++;
    return std::atomic_ref<B>(*p).fetch_and(v, std_order(o));
}
template <int S, class B> GU_FN B xchg(B *p, B v, mo o) {
    rmw_count++;
    return std::atomic_ref<B>(*p).exchange(v, std_order(o));
}
template <int S> GU_FN void fence(mo o) { std::atomic_thread_fence(std_order(o)); }

#elif defined(GU_HIP)

// S is a __HIP_MEMORY_SCOPE_* value. The builtins need constant orders: each case names its own.
#define GU_HIP_ORDERED(CALL_WITH_ORDER)                                                                        \
    switch (o) {                                                                                               \
    case mo::relaxed: CALL_WITH_ORDER(__ATOMIC_RELAXED, __ATOMIC_RELAXED);                                     \
    case mo::acquire: CALL_WITH_ORDER(__ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE);                                     \
    case mo::release: CALL_WITH_ORDER(__ATOMIC_RELEASE, __ATOMIC_RELAXED);                                     \
    case mo::acq_rel: CALL_WITH_ORDER(__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);                                     \
    default: CALL_WITH_ORDER(__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                                              \
    }

template <int S, class B> GU_FN B ld(const B *p, mo o) {
    switch (o) {
    case mo::relaxed:
    case mo::release: return __hip_atomic_load(p, __ATOMIC_RELAXED, S);
    case mo::acquire:
    case mo::acq_rel: return __hip_atomic_load(p, __ATOMIC_ACQUIRE, S);
    default: return __hip_atomic_load(p, __ATOMIC_SEQ_CST, S);
    }
}
template <int S, class B> GU_FN void st(B *p, B v, mo o) {
    switch (o) {
    case mo::relaxed:
    case mo::acquire: __hip_atomic_store(p, v, __ATOMIC_RELAXED, S); return;
    case mo::release:
    case mo::acq_rel: __hip_atomic_store(p, v, __ATOMIC_RELEASE, S); return;
    default: __hip_atomic_store(p, v, __ATOMIC_SEQ_CST, S); return;
    }
}
template <int S, class B> GU_FN bool cas(B *p, B &expected, B desired, mo o) {
#define GU_CALL(OK, FAIL) return __hip_atomic_compare_exchange_strong(p, &expected, desired, OK, FAIL, S)
    GU_HIP_ORDERED(GU_CALL)
#undef GU_CALL
}
#define GU_HIP_RMW(NAME, BUILTIN)                                                                              \
    template <int S, class B> GU_FN B NAME(B *p, B v, mo o) {                                                  \
        switch (o) {                                                                                           \
        case mo::relaxed: return BUILTIN(p, v, __ATOMIC_RELAXED, S);                                           \
        case mo::acquire: return BUILTIN(p, v, __ATOMIC_ACQUIRE, S);                                           \
        case mo::release: return BUILTIN(p, v, __ATOMIC_RELEASE, S);                                           \
        case mo::acq_rel: return BUILTIN(p, v, __ATOMIC_ACQ_REL, S);                                           \
        default: return BUILTIN(p, v, __ATOMIC_SEQ_CST, S);                                                    \
        }                                                                                                      \
    }
GU_HIP_RMW(add, __hip_atomic_fetch_add)
GU_HIP_RMW(bor, __hip_atomic_fetch_or)
GU_HIP_RMW(band, __hip_atomic_fetch_and)
GU_HIP_RMW(xchg, __hip_atomic_exchange)
#undef GU_HIP_RMW
#undef GU_HIP_ORDERED

// Fence scopes are sync-scope names: "agent" = the device, "" = the system.
template <int S> GU_FN void fence(mo o) {
    if (S == __HIP_MEMORY_SCOPE_SYSTEM) {
        switch (o) {
        case mo::relaxed: return;
        case mo::acquire: __builtin_amdgcn_fence(__ATOMIC_ACQUIRE, ""); return;
        case mo::release: __builtin_amdgcn_fence(__ATOMIC_RELEASE, ""); return;
        case mo::acq_rel: __builtin_amdgcn_fence(__ATOMIC_ACQ_REL, ""); return;
        default: __builtin_amdgcn_fence(__ATOMIC_SEQ_CST, ""); return;
        }
    } else {
        switch (o) {
        case mo::relaxed: return;
        case mo::acquire: __builtin_amdgcn_fence(__ATOMIC_ACQUIRE, "agent"); return;
        case mo::release: __builtin_amdgcn_fence(__ATOMIC_RELEASE, "agent"); return;
        case mo::acq_rel: __builtin_amdgcn_fence(__ATOMIC_ACQ_REL, "agent"); return;
        default: __builtin_amdgcn_fence(__ATOMIC_SEQ_CST, "agent"); return;
        }
    }
}

#elif defined(GU_CUDA)

// S is 0 for `.gpu` (device) scope, 1 for `.sys` (system) scope. Operand widths: "r" 32-bit, "l" 64-bit.
#define GU_PTX_SCOPED(S, GPU_ASM, SYS_ASM)                                                                     \
    do {                                                                                                       \
        if (S) {                                                                                               \
            SYS_ASM;                                                                                           \
        } else {                                                                                               \
            GPU_ASM;                                                                                           \
        }                                                                                                      \
    } while (0)

template <int S> GU_FN void fence(mo o) {
    switch (o) {
    case mo::relaxed: return;
    case mo::seq_cst:
        GU_PTX_SCOPED(S, asm volatile("fence.sc.gpu;" ::: "memory"), asm volatile("fence.sc.sys;" ::: "memory"));
        return;
    default:
        GU_PTX_SCOPED(S, asm volatile("fence.acq_rel.gpu;" ::: "memory"),
                      asm volatile("fence.acq_rel.sys;" ::: "memory"));
        return;
    }
}

#define GU_PTX_LD(SEM, W, C)                                                                                   \
    GU_PTX_SCOPED(S, asm volatile("ld." SEM ".gpu.b" W " %0, [%1];" : "=" C(v) : "l"(p) : "memory"),          \
                  asm volatile("ld." SEM ".sys.b" W " %0, [%1];" : "=" C(v) : "l"(p) : "memory"))
#define GU_PTX_ST(SEM, W, C)                                                                                   \
    GU_PTX_SCOPED(S, asm volatile("st." SEM ".gpu.b" W " [%0], %1;" ::"l"(p), C(v) : "memory"),               \
                  asm volatile("st." SEM ".sys.b" W " [%0], %1;" ::"l"(p), C(v) : "memory"))
#define GU_PTX_CAS(SEM, W, C)                                                                                  \
    GU_PTX_SCOPED(S,                                                                                           \
                  asm volatile("atom." SEM ".gpu.cas.b" W " %0, [%1], %2, %3;"                                 \
                               : "=" C(old)                                                                    \
                               : "l"(p), C(expected), C(desired)                                               \
                               : "memory"),                                                                    \
                  asm volatile("atom." SEM ".sys.cas.b" W " %0, [%1], %2, %3;"                                 \
                               : "=" C(old)                                                                    \
                               : "l"(p), C(expected), C(desired)                                               \
                               : "memory"))
#define GU_PTX_RMW(OP, SEM, W, C)                                                                              \
    GU_PTX_SCOPED(S,                                                                                           \
                  asm volatile("atom." SEM ".gpu." OP " %0, [%1], %2;" : "=" C(old) : "l"(p), C(v) : "memory"), \
                  asm volatile("atom." SEM ".sys." OP " %0, [%1], %2;" : "=" C(old) : "l"(p), C(v) : "memory"))

// The ordered forms of one access. SEQ_CST: fence.sc first, then the access with the given semantics.
#define GU_PTX_ORDERED(ACCESS, RELAXED, ACQUIRE, RELEASE, ACQ_REL, SEQ)                                        \
    switch (o) {                                                                                               \
    case mo::relaxed: ACCESS(RELAXED); break;                                                                  \
    case mo::acquire: ACCESS(ACQUIRE); break;                                                                  \
    case mo::release: ACCESS(RELEASE); break;                                                                  \
    case mo::acq_rel: ACCESS(ACQ_REL); break;                                                                  \
    default:                                                                                                   \
        fence<S>(mo::seq_cst);                                                                                 \
        ACCESS(SEQ);                                                                                           \
        break;                                                                                                 \
    }

template <int S> GU_FN uint32_t ld(const uint32_t *p, mo o) {
    uint32_t v;
#define GU_A(SEM) GU_PTX_LD(SEM, "32", "r")
    GU_PTX_ORDERED(GU_A, "relaxed", "acquire", "relaxed", "acquire", "acquire")
#undef GU_A
    return v;
}
template <int S> GU_FN uint64_t ld(const uint64_t *p, mo o) {
    uint64_t v;
#define GU_A(SEM) GU_PTX_LD(SEM, "64", "l")
    GU_PTX_ORDERED(GU_A, "relaxed", "acquire", "relaxed", "acquire", "acquire")
#undef GU_A
    return v;
}
template <int S> GU_FN void st(uint32_t *p, uint32_t v, mo o) {
#define GU_A(SEM) GU_PTX_ST(SEM, "32", "r")
    GU_PTX_ORDERED(GU_A, "relaxed", "relaxed", "release", "release", "relaxed")
#undef GU_A
}
template <int S> GU_FN void st(uint64_t *p, uint64_t v, mo o) {
#define GU_A(SEM) GU_PTX_ST(SEM, "64", "l")
    GU_PTX_ORDERED(GU_A, "relaxed", "relaxed", "release", "release", "relaxed")
#undef GU_A
}
template <int S> GU_FN bool cas(uint32_t *p, uint32_t &expected, uint32_t desired, mo o) {
    uint32_t old;
#define GU_A(SEM) GU_PTX_CAS(SEM, "32", "r")
    GU_PTX_ORDERED(GU_A, "relaxed", "acquire", "release", "acq_rel", "acquire")
#undef GU_A
    bool ok = old == expected;
    expected = old;
    return ok;
}
template <int S> GU_FN bool cas(uint64_t *p, uint64_t &expected, uint64_t desired, mo o) {
    uint64_t old;
#define GU_A(SEM) GU_PTX_CAS(SEM, "64", "l")
    GU_PTX_ORDERED(GU_A, "relaxed", "acquire", "release", "acq_rel", "acquire")
#undef GU_A
    bool ok = old == expected;
    expected = old;
    return ok;
}
// RMW: ACCESS(OP, SEM) with the operation passed through.
#define GU_PTX_ORDERED_OP(ACCESS, OP)                                                                          \
    switch (o) {                                                                                               \
    case mo::relaxed: ACCESS(OP, "relaxed"); break;                                                            \
    case mo::acquire: ACCESS(OP, "acquire"); break;                                                            \
    case mo::release: ACCESS(OP, "release"); break;                                                            \
    case mo::acq_rel: ACCESS(OP, "acq_rel"); break;                                                            \
    default:                                                                                                   \
        fence<S>(mo::seq_cst);                                                                                 \
        ACCESS(OP, "acquire");                                                                                 \
        break;                                                                                                 \
    }
#define GU_A32(OP, SEM) GU_PTX_RMW(OP, SEM, "32", "r")
#define GU_A64(OP, SEM) GU_PTX_RMW(OP, SEM, "64", "l")
#define GU_PTX_RMW_FN(NAME, OP32, OP64)                                                                        \
    template <int S> GU_FN uint32_t NAME(uint32_t *p, uint32_t v, mo o) {                                      \
        uint32_t old;                                                                                          \
        GU_PTX_ORDERED_OP(GU_A32, OP32)                                                                        \
        return old;                                                                                            \
    }                                                                                                          \
    template <int S> GU_FN uint64_t NAME(uint64_t *p, uint64_t v, mo o) {                                      \
        uint64_t old;                                                                                          \
        GU_PTX_ORDERED_OP(GU_A64, OP64)                                                                        \
        return old;                                                                                            \
    }
GU_PTX_RMW_FN(add, "add.u32", "add.u64")
GU_PTX_RMW_FN(bor, "or.b32", "or.b64")
GU_PTX_RMW_FN(band, "and.b32", "and.b64")
GU_PTX_RMW_FN(xchg, "exch.b32", "exch.b64")
#undef GU_A32
#undef GU_A64
#undef GU_PTX_RMW_FN
#undef GU_PTX_ORDERED_OP
#undef GU_PTX_ORDERED
#undef GU_PTX_RMW
#undef GU_PTX_CAS
#undef GU_PTX_ST
#undef GU_PTX_LD
#undef GU_PTX_SCOPED

#endif

#if defined(GU_HIP)
enum : int { scope_device = __HIP_MEMORY_SCOPE_AGENT, scope_system = __HIP_MEMORY_SCOPE_SYSTEM };
#else
enum : int { scope_device = 0, scope_system = 1 };
#endif

} // namespace detail

// A device-local word: device-scope atomics, RMW allowed.
template <class T> class local_word {
    typedef typename detail::word_bits<T>::type B;
    B *p_;

  public:
    GU_FN explicit local_word(T *p) : p_(reinterpret_cast<B *>(p)) {}
    GU_FN T load(mo o) const { return detail::from_bits<T>(detail::ld<detail::scope_device>(p_, o)); }
    GU_FN void store(T v, mo o) const { detail::st<detail::scope_device>(p_, detail::to_bits(v), o); }
    // On failure `expected` receives the value found (as C++ compare_exchange_strong). The failure order is the
    // acquire part of `o`.
    GU_FN bool compare_exchange(T &expected, T desired, mo o) const {
        B e = detail::to_bits(expected);
        bool ok = detail::cas<detail::scope_device>(p_, e, detail::to_bits(desired), o);
        expected = detail::from_bits<T>(e);
        return ok;
    }
    GU_FN T fetch_add(T v, mo o) const {
        return detail::from_bits<T>(detail::add<detail::scope_device>(p_, detail::to_bits(v), o));
    }
    GU_FN T fetch_or(T v, mo o) const {
        return detail::from_bits<T>(detail::bor<detail::scope_device>(p_, detail::to_bits(v), o));
    }
    GU_FN T fetch_and(T v, mo o) const {
        return detail::from_bits<T>(detail::band<detail::scope_device>(p_, detail::to_bits(v), o));
    }
    GU_FN T exchange(T v, mo o) const {
        return detail::from_bits<T>(detail::xchg<detail::scope_device>(p_, detail::to_bits(v), o));
    }
};

// A host-shared word: system-scope loads and stores, no RMW (one writer per word, PROTOCOL.md).
template <class T> class shared_word {
    typedef typename detail::word_bits<T>::type B;
    B *p_;

  public:
    GU_FN explicit shared_word(T *p) : p_(reinterpret_cast<B *>(p)) {}
    GU_FN T load(mo o) const { return detail::from_bits<T>(detail::ld<detail::scope_system>(p_, o)); }
    GU_FN void store(T v, mo o) const { detail::st<detail::scope_system>(p_, detail::to_bits(v), o); }
};

// Orders this lane's earlier accesses before its later ones, for observers on the device (fence_device) or
// also the host and the kernel (fence_system; CUDA `fence.*.sys` = __threadfence_system()).
GU_FN void fence_device(mo o) { detail::fence<detail::scope_device>(o); }
GU_FN void fence_system(mo o) { detail::fence<detail::scope_system>(o); }

} // namespace gu

#endif // GPU_URING_ATOMIC_H
