// A stand-in for libcuda.so for host/tests/cuda_mock.rs: the CUDA driver API entry points the CUDA backend
// calls, with the CPU as the "device". Device pointers are host pointers; a launch runs on host threads, one
// per lane, and the device library's ring kernels (gu_nop, gu_print, gu_write, gu_read, gu_lane_stress,
// gu_edit_buffer, gu_layout, gu_exact, gu_hostile), the pump kernels (gu_pump_stream, gu_pump_probe,
// gu_pump_read), gu_format_probe and gu_memory_placement run the very program bodies the CUDA/HIP kernels compile (kernels/src/programs.h, host C++ target) against the real ring. Launches are
// asynchronous and complete an event, so the backend's bounded waits, timeouts and parking run for real.
//
// What it checks on its own and counts for the test (mock_stats): frees of memory a running launch uses,
// host memory registered twice, device pointers asked for unregistered memory, modules loaded (PTX / cubin).
//
// Environment: MOCK_CUDA_NATIVE_ATOMICS=1 reports host-native atomics (so the backend places the device-local
// block on the host copy); MOCK_CUDA_CC=<major*10+minor> the compute capability (default 90);
// MOCK_CUDA_REFUSE_LIBRARY=1 refuses every module but the test's own ("// mock" PTX), as a driver whose JIT
// cannot load the device library would.
#include "../../../kernels/include/gpu_uring.h"
#include "../../../kernels/src/programs.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

typedef int CUresult;
enum : CUresult {
    OK = 0,
    INVALID_VALUE = 1,
    NOT_INITIALIZED = 3,
    INVALID_IMAGE = 200,
    NOT_FOUND = 500,
    NOT_READY = 600,
    ILLEGAL_ADDRESS = 700,
    ALREADY_REGISTERED = 712,
    NOT_REGISTERED = 713,
};

struct Job {
    std::atomic<bool> done{false};
    std::atomic<CUresult> result{OK};
    std::vector<uint8_t *> uses; // device pointers the launch uses
};

struct Event {
    std::shared_ptr<Job> job;
};

struct Stream {
    std::shared_ptr<Job> last;
};

struct Function {
    std::string name;
};

struct Module {
    std::vector<Function *> functions;
};

std::mutex mu;
bool initialised = false;
std::map<uint8_t *, size_t> device_allocs; // cuMemAlloc / cuMemHostAlloc
std::map<uint8_t *, size_t> registered;    // cuMemHostRegister
std::vector<std::shared_ptr<Job>> running;

struct Stats {
    uint32_t freed_in_use;
    uint32_t double_registrations;
    uint32_t unmapped_pointers;
    uint32_t ptx_modules;
    uint32_t cubin_modules;
    uint32_t launches;
    uint32_t live_registrations;
    uint32_t live_allocations;
};
Stats stats{};

int env_int(const char *name, int dflt) {
    const char *v = std::getenv(name);
    return v ? std::atoi(v) : dflt;
}

// Whether `p` is memory a launch that has not ended uses.
bool in_use(uint8_t *p) {
    for (auto &j : running) {
        if (!j->done.load(std::memory_order_acquire)) {
            for (auto *u : j->uses) {
                if (u == p) {
                    return true;
                }
            }
        }
    }
    return false;
}

bool mapped(uint8_t *p) {
    auto in = [p](const std::map<uint8_t *, size_t> &m) {
        auto it = m.upper_bound(p);
        if (it == m.begin()) {
            return false;
        }
        --it;
        return p < it->first + it->second;
    };
    return in(device_allocs) || in(registered);
}

// A launch's kernel parameters, read in order (each through its own pointer, as cuLaunchKernel reads them).
struct Params {
    void **p;
    int i = 0;
    template <class T> T next() {
        T v;
        std::memcpy(&v, p[i++], sizeof v);
        return v;
    }
};

typedef gu::programs::lane_report Report;

// The ring kernels (arena, local block, RingLayout, …, status[, report | ready]).
bool ring_kernel(const std::string &n) {
    for (const char *k : {"gu_nop", "gu_print", "gu_write", "gu_read", "gu_lane_stress", "gu_edit_buffer", "gu_layout",
                          "gu_exact", "gu_hostile"}) {
        if (n == k) {
            return true;
        }
    }
    return false;
}

// How many parameters a ring kernel takes (kernels/src/gpu_uring_kernels.cu).
int in_count(const std::string &n) {
    if (n == "gu_layout") {
        return 5;
    }
    if (n == "gu_nop") {
        return 8;
    }
    if (n == "gu_write") {
        return 9;
    }
    if (n == "gu_read") {
        return 11;
    }
    return 7;
}

} // namespace

extern "C" {

struct MockStats {
    uint32_t freed_in_use, double_registrations, unmapped_pointers, ptx_modules, cubin_modules, launches,
        live_registrations, live_allocations;
};

void mock_stats(MockStats *out) {
    std::lock_guard<std::mutex> g(mu);
    stats.live_registrations = (uint32_t)registered.size();
    stats.live_allocations = (uint32_t)device_allocs.size();
    std::memcpy(out, &stats, sizeof *out);
}

CUresult cuInit(unsigned) {
    initialised = true;
    return OK;
}
CUresult cuDriverGetVersion(int *v) {
    *v = 12060;
    return OK;
}
CUresult cuDeviceGetCount(int *n) {
    *n = initialised ? 1 : 0;
    return initialised ? OK : NOT_INITIALIZED;
}
CUresult cuDeviceGet(int *d, int ordinal) {
    if (ordinal != 0) {
        return INVALID_VALUE;
    }
    *d = 0;
    return OK;
}
CUresult cuDeviceGetName(char *name, int len, int) {
    std::snprintf(name, (size_t)len, "Mock CUDA Device");
    return OK;
}
CUresult cuDeviceGetAttribute(int *v, int attr, int) {
    int cc = env_int("MOCK_CUDA_CC", 90);
    switch (attr) {
    case 1: *v = 1024; break;                                         // MAX_THREADS_PER_BLOCK
    case 10: *v = 32; break;                                          // WARP_SIZE
    case 18: *v = 0; break;                                           // INTEGRATED
    case 19: *v = 1; break;                                           // CAN_MAP_HOST_MEMORY
    case 41: *v = 1; break;                                           // UNIFIED_ADDRESSING
    case 75: *v = cc / 10; break;                                     // COMPUTE_CAPABILITY_MAJOR
    case 76: *v = cc % 10; break;                                     // COMPUTE_CAPABILITY_MINOR
    case 86: *v = env_int("MOCK_CUDA_NATIVE_ATOMICS", 0); break;      // HOST_NATIVE_ATOMIC_SUPPORTED
    case 91: *v = 1; break;                                           // CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM
    default: return INVALID_VALUE;
    }
    return OK;
}
CUresult cuDeviceGetHostAtomicCapabilities(unsigned *caps, const unsigned *, unsigned n, int) {
    for (unsigned i = 0; i < n; i++) {
        caps[i] = env_int("MOCK_CUDA_NATIVE_ATOMICS", 0) ? (8u | 16u) : 0u;
    }
    return OK;
}
CUresult cuDeviceTotalMem_v2(size_t *b, int) {
    *b = (size_t)1 << 30;
    return OK;
}

static int primary_context;
CUresult cuDevicePrimaryCtxRetain(void **ctx, int) {
    *ctx = &primary_context;
    return OK;
}
CUresult cuDevicePrimaryCtxRelease_v2(int) { return OK; }
CUresult cuCtxSetCurrent(void *ctx) { return ctx == &primary_context ? OK : INVALID_VALUE; }

static CUresult alloc(uint8_t **p, size_t n) {
    *p = static_cast<uint8_t *>(std::aligned_alloc(4096, (n + 4095) / 4096 * 4096));
    std::lock_guard<std::mutex> g(mu);
    device_allocs[*p] = n;
    return OK;
}
static CUresult release(uint8_t *p) {
    std::lock_guard<std::mutex> g(mu);
    if (!device_allocs.erase(p)) {
        return INVALID_VALUE;
    }
    if (in_use(p)) {
        stats.freed_in_use++;
        return OK; // leaked: the "device" may still write it
    }
    std::free(p);
    return OK;
}
CUresult cuMemAlloc_v2(unsigned long long *dptr, size_t n) {
    uint8_t *p;
    CUresult r = alloc(&p, n);
    *dptr = (unsigned long long)p;
    return r;
}
CUresult cuMemFree_v2(unsigned long long dptr) { return release((uint8_t *)dptr); }
CUresult cuMemHostAlloc(void **pp, size_t n, unsigned) { return alloc((uint8_t **)pp, n); }
CUresult cuMemFreeHost(void *p) { return release((uint8_t *)p); }
CUresult cuMemHostRegister_v2(void *p, size_t n, unsigned) {
    std::lock_guard<std::mutex> g(mu);
    if (registered.count((uint8_t *)p)) {
        stats.double_registrations++;
        return ALREADY_REGISTERED;
    }
    registered[(uint8_t *)p] = n;
    return OK;
}
CUresult cuMemHostUnregister(void *p) {
    std::lock_guard<std::mutex> g(mu);
    if (in_use((uint8_t *)p)) {
        stats.freed_in_use++;
    }
    return registered.erase((uint8_t *)p) ? OK : NOT_REGISTERED;
}
CUresult cuMemHostGetDevicePointer_v2(unsigned long long *d, void *p, unsigned) {
    std::lock_guard<std::mutex> g(mu);
    if (!mapped((uint8_t *)p)) {
        stats.unmapped_pointers++;
        return INVALID_VALUE;
    }
    *d = (unsigned long long)p;
    return OK;
}
CUresult cuMemcpyHtoD_v2(unsigned long long dst, const void *src, size_t n) {
    std::memcpy((void *)dst, src, n);
    return OK;
}
CUresult cuStreamSynchronize(void *s) {
    // Only the legacy stream is synchronised by the backend; its copies are synchronous here.
    return s == nullptr ? OK : INVALID_VALUE;
}
CUresult cuMemcpyDtoH_v2(void *dst, unsigned long long src, size_t n) {
    std::memcpy(dst, (const void *)src, n);
    return OK;
}

CUresult cuModuleLoadDataEx(void **module, const void *image, unsigned, int *, void **) {
    const char *b = static_cast<const char *>(image);
    std::lock_guard<std::mutex> g(mu);
    if (env_int("MOCK_CUDA_REFUSE_LIBRARY", 0) && std::strncmp(b, "// mock", 7) != 0) {
        return INVALID_IMAGE;
    }
    if (std::memcmp(b, "\x7f" "ELF", 4) == 0) {
        stats.cubin_modules++;
    } else if (std::strstr(b, ".entry") != nullptr || std::strncmp(b, "// mock", 7) == 0) {
        stats.ptx_modules++;
    } else {
        return INVALID_IMAGE;
    }
    *module = new Module();
    return OK;
}
CUresult cuModuleUnload(void *module) {
    auto *m = static_cast<Module *>(module);
    for (auto *f : m->functions) {
        delete f;
    }
    delete m;
    return OK;
}
CUresult cuModuleGetFunction(void **f, void *module, const char *name) {
    static const char *known[] = {"gu_nop",         "gu_print",       "gu_write",        "gu_read",
                                  "gu_lane_stress", "gu_edit_buffer", "gu_layout",       "gu_exact",
                                  "gu_hostile",     "gu_pump_stream", "gu_format_probe", "gu_memory_placement",
                                  "gu_pump_probe",  "gu_pump_read",   "gu_rpc_print",    "mock_sleep",
                                  "mock_fault",     "mock_pair"};
    for (const char *k : known) {
        if (std::strcmp(k, name) == 0) {
            auto *fn = new Function{name};
            static_cast<Module *>(module)->functions.push_back(fn);
            *f = fn;
            return OK;
        }
    }
    return NOT_FOUND;
}

CUresult cuStreamCreate(void **s, unsigned) {
    *s = new Stream();
    return OK;
}
CUresult cuStreamDestroy_v2(void *s) {
    delete static_cast<Stream *>(s);
    return OK;
}
CUresult cuEventCreate(void **e, unsigned) {
    *e = new Event();
    return OK;
}
CUresult cuEventDestroy_v2(void *e) {
    delete static_cast<Event *>(e);
    return OK;
}
CUresult cuEventRecord(void *e, void *s) {
    static_cast<Event *>(e)->job = static_cast<Stream *>(s)->last;
    return OK;
}
CUresult cuEventQuery(void *e) {
    auto &j = static_cast<Event *>(e)->job;
    if (!j) {
        return OK;
    }
    if (!j->done.load(std::memory_order_acquire)) {
        return NOT_READY;
    }
    return j->result.load();
}

CUresult cuLaunchKernel(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                        unsigned, void *s, void **params, void **) {
    if (gy != 1 || gz != 1 || by != 1 || bz != 1 || params == nullptr) {
        return INVALID_VALUE;
    }
    std::string name = static_cast<Function *>(f)->name;
    uint32_t threads = gx * bx;
    auto job = std::make_shared<Job>();
    auto *stream = static_cast<Stream *>(s);
    std::shared_ptr<Job> before = stream->last;
    std::function<void()> body;
    // Parameters are copied now, as the driver does.
    Params in{params};
    if (ring_kernel(name)) {
        auto *arena = in.next<uint8_t *>();
        auto *local = in.next<uint8_t *>();
        auto layout = in.next<gpu_uring::RingLayout>();
        // The kernel's own parameters, then `status` and `report`/`ready`.
        std::function<uint32_t(uint32_t, const gpu_uring::RingLayout *, Report *)> lane;
        uint32_t lanes = threads;
        if (name == "gu_nop") {
            uint32_t mode = in.next<uint32_t>(), count = in.next<uint32_t>(), budget = in.next<uint32_t>();
            lane = [=](uint32_t i, const gpu_uring::RingLayout *l, Report *r) {
                return gu::programs::nop_lane(arena, local, l, i, mode, count, budget,
                                              reinterpret_cast<uint32_t *>(r) + i);
            };
        } else if (name == "gu_print") {
            uint32_t lines = in.next<uint32_t>(), budget = in.next<uint32_t>();
            lane = [=](uint32_t i, const gpu_uring::RingLayout *l, Report *r) {
                uint32_t printed = 0;
                uint32_t st = gu::programs::print_lane(arena, local, l, i, lines, budget, &printed);
                r[i] = Report{printed, lines - printed, 0, 0};
                return st;
            };
        } else if (name == "gu_write") {
            uint32_t file = in.next<uint32_t>(), ops = in.next<uint32_t>(), len = in.next<uint32_t>(),
                     budget = in.next<uint32_t>();
            lane = [=](uint32_t i, const gpu_uring::RingLayout *l, Report *r) {
                return gu::programs::write_lane(arena, local, l, i, file, ops, len, budget, &r[i]);
            };
        } else if (name == "gu_read") {
            lanes = in.next<uint32_t>();
            uint32_t file = in.next<uint32_t>(), chunk = in.next<uint32_t>();
            uint64_t total = in.next<uint64_t>();
            uint32_t depth = in.next<uint32_t>(), budget = in.next<uint32_t>();
            lane = [=](uint32_t i, const gpu_uring::RingLayout *l, Report *r) {
                return gu::programs::read_lane(arena, local, l, i, lanes, file, chunk, total, depth, budget, &r[i]);
            };
        } else if (name == "gu_lane_stress") {
            uint32_t ops = in.next<uint32_t>(), budget = in.next<uint32_t>();
            lane = [=](uint32_t i, const gpu_uring::RingLayout *l, Report *r) {
                return gu::programs::lane_stress_lane(arena, local, l, i, ops, budget, &r[i]);
            };
        } else if (name == "gu_edit_buffer") {
            uint32_t steps = in.next<uint32_t>(), budget = in.next<uint32_t>();
            lane = [=](uint32_t i, const gpu_uring::RingLayout *l, Report *r) {
                return gu::programs::edit_buffer_lane(arena, l, i, steps, budget, &r[i]);
            };
        } else if (name == "gu_layout") {
            lane = [=](uint32_t i, const gpu_uring::RingLayout *l, Report *r) {
                return gu::programs::layout_lane(arena, local, l, i, &r[i]);
            };
        } else if (name == "gu_exact") {
            uint32_t count = in.next<uint32_t>(), budget = in.next<uint32_t>();
            lane = [=](uint32_t i, const gpu_uring::RingLayout *l, Report *r) {
                return gu::programs::exact_lane(arena, local, l, i, count, budget, &r[i]);
            };
        } else if (name == "gu_hostile") {
            uint32_t which = in.next<uint32_t>(), budget = in.next<uint32_t>();
            lane = [=](uint32_t i, const gpu_uring::RingLayout *l, Report *r) {
                return gu::programs::hostile_lane(arena, local, l, i, which, budget, &r[i]);
            };
        }
        auto *status = in.next<uint32_t *>();
        // gu_nop's per-lane output is `ready` (u32 per lane), the others' a `report`.
        auto *out = in.next<Report *>();
        if (in.i != in_count(name)) {
            return INVALID_VALUE;
        }
        job->uses = {arena, local, (uint8_t *)status, (uint8_t *)out};
        body = [=]() {
            std::vector<std::thread> ts;
            for (uint32_t i = 0; i < threads; i++) {
                ts.emplace_back([=, &layout]() {
                    if (i < layout.lanes && i < lanes) {
                        status[i] = lane(i, &layout, out);
                    }
                });
            }
            for (auto &t : ts) {
                t.join();
            }
        };
    } else if (name == "gu_pump_stream") {
        auto *arena = in.next<uint8_t *>();
        auto *local = in.next<uint8_t *>();
        auto layout = in.next<gpu_uring::PumpLayout>();
        uint32_t lanes = in.next<uint32_t>(), file = in.next<uint32_t>(), region = in.next<uint32_t>(),
                 chunk = in.next<uint32_t>();
        uint64_t total = in.next<uint64_t>();
        uint32_t budget = in.next<uint32_t>();
        auto *status = in.next<uint32_t *>();
        auto *report = in.next<Report *>();
        job->uses = {arena, local, (uint8_t *)status, (uint8_t *)report};
        body = [=]() {
            std::vector<std::thread> ts;
            for (uint32_t i = 0; i < threads && i < lanes; i++) {
                ts.emplace_back([=, &layout]() {
                    status[i] = gu::programs::stream_lane(arena, local, &layout, i, lanes, file, region, chunk, total,
                                                          budget, &report[i]);
                });
            }
            for (auto &t : ts) {
                t.join();
            }
        };
    } else if (name == "gu_pump_probe") {
        // (arena, run, local, PumpLayout): one dispatch of the resumable pump probe, a thread per lane (lanes
        // past the run's count return at once, as on the device).
        auto *arena = in.next<uint8_t *>();
        auto *run = in.next<uint8_t *>();
        auto *local = in.next<uint8_t *>();
        auto layout = in.next<gpu_uring::PumpLayout>();
        job->uses = {arena, run, local};
        body = [=]() {
            std::vector<std::thread> ts;
            for (uint32_t i = 0; i < threads; i++) {
                ts.emplace_back([=, &layout]() { gu::programs::pump_probe_lane(arena, run, local, &layout, i); });
            }
            for (auto &t : ts) {
                t.join();
            }
        };
    } else if (name == "gu_pump_read") {
        auto *arena = in.next<uint8_t *>();
        auto *local = in.next<uint8_t *>();
        auto layout = in.next<gpu_uring::PumpLayout>();
        uint32_t lanes = in.next<uint32_t>(), file = in.next<uint32_t>(), region = in.next<uint32_t>(),
                 chunk = in.next<uint32_t>(), count = in.next<uint32_t>(), budget = in.next<uint32_t>();
        auto *status = in.next<uint32_t *>();
        auto *report = in.next<Report *>();
        job->uses = {arena, local, (uint8_t *)status, (uint8_t *)report};
        body = [=]() {
            // Each thread a subgroup of one (the host target's default): the aggregated allocation's
            // single-lane steps.
            std::vector<std::thread> ts;
            for (uint32_t i = 0; i < threads && i < lanes; i++) {
                ts.emplace_back([=, &layout]() {
                    status[i] = gu::programs::group_read_lane(arena, local, &layout, i, file, region, chunk, count,
                                                              budget, &report[i]);
                });
            }
            for (auto &t : ts) {
                t.join();
            }
        };
    } else if (name == "gu_rpc_print") {
        auto *mailboxes = in.next<uint8_t *>();
        uint32_t lanes = in.next<uint32_t>(), lines = in.next<uint32_t>(), budget = in.next<uint32_t>();
        auto *status = in.next<uint32_t *>();
        job->uses = {mailboxes, (uint8_t *)status};
        body = [=]() {
            // One thread per lane: each waits on the RPC server's reply in its own mailbox.
            std::vector<std::thread> ts;
            for (uint32_t i = 0; i < threads && i < lanes; i++) {
                ts.emplace_back([=]() { status[i] = gu::programs::rpc_print_lane(mailboxes, lanes, lines, budget, i); });
            }
            for (auto &t : ts) {
                t.join();
            }
        };
    } else if (name == "gu_memory_placement") {
        auto *buf = in.next<uint32_t *>();
        uint32_t mode = in.next<uint32_t>(), n = in.next<uint32_t>(), mask = in.next<uint32_t>(),
                 seed = in.next<uint32_t>();
        job->uses = {(uint8_t *)buf};
        body = [=]() {
            // Invocations one after another (mode 0's writes are disjoint; modes 1 and 2 run in invocation 0).
            for (uint32_t gid = 0; gid < threads; gid++) {
                gu::programs::memory_placement_lane(buf, mode, n, mask, seed, gid, threads);
            }
        };
    } else if (name == "gu_format_probe") {
        auto *records = in.next<uint8_t *>();
        uint32_t count = in.next<uint32_t>();
        job->uses = {records};
        body = [=]() {
            for (uint32_t id = 0; id < count && id < threads; id++) {
                gu::programs::format_case(records, id);
            }
        };
    } else if (name == "mock_sleep") {
        // (uint32_t *flag, uint32_t ms): sleeps, then sets flag[0] if the memory is still allocated.
        auto *flag = in.next<uint32_t *>();
        uint32_t ms = in.next<uint32_t>();
        job->uses = {(uint8_t *)flag};
        body = [=]() {
            std::this_thread::sleep_for(std::chrono::milliseconds(ms));
            std::lock_guard<std::mutex> g(mu);
            if (mapped((uint8_t *)flag)) {
                *flag = 1;
            }
        };
    } else if (name == "mock_pair") {
        // (uint8_t *a, uint8_t *b): touches nothing; the launch checks both are device-mapped.
        job->uses = {in.next<uint8_t *>(), in.next<uint8_t *>()};
        body = []() {};
    } else if (name == "mock_fault") {
        body = [job]() { job->result.store(ILLEGAL_ADDRESS); };
    } else {
        return INVALID_VALUE;
    }
    {
        std::lock_guard<std::mutex> g(mu);
        for (auto *p : job->uses) {
            if (!mapped(p)) {
                stats.unmapped_pointers++;
                return ILLEGAL_ADDRESS;
            }
        }
        stats.launches++;
        running.push_back(job);
    }
    stream->last = job;
    std::thread([job, before, body]() {
        while (before && !before->done.load(std::memory_order_acquire)) {
            std::this_thread::yield();
        }
        body();
        job->done.store(true, std::memory_order_release);
    }).detach();
    return OK;
}

CUresult cuGetErrorName(CUresult r, const char **s) {
    *s = r == NOT_READY ? "CUDA_ERROR_NOT_READY" : r == ILLEGAL_ADDRESS ? "CUDA_ERROR_ILLEGAL_ADDRESS" : "CUDA_ERROR";
    return OK;
}
CUresult cuGetErrorString(CUresult r, const char **s) {
    *s = r == ILLEGAL_ADDRESS ? "an illegal memory access was encountered" : "mock error";
    return OK;
}

} // extern "C"
