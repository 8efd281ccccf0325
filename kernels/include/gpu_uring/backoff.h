// gpu_uring/backoff.h: the pause between two polls of a bounded wait (PROTOCOL.md §6). Exponential, capped,
// so a waiting lane gives its issue slots (and the bus) to lanes doing work.
#ifndef GPU_URING_BACKOFF_H
#define GPU_URING_BACKOFF_H

#include "config.h"

namespace gu {

class backoff {
    uint32_t step_ = 0;

  public:
    // Largest step: CUDA 64 ns << 7 = 8 µs; AMD 2^7 × s_sleep 2 (≈ 128 clocks each) ≈ 16 k clocks.
    enum : uint32_t { max_step = 7 };

    GU_FN void reset() { step_ = 0; }
    GU_FN uint32_t step() const { return step_; }

    GU_FN void pause() {
#if defined(GU_CUDA) && defined(GU_DEVICE_CODE)
        __nanosleep(64u << step_);
#elif defined(GU_HIP) && defined(GU_DEVICE_CODE)
        // s_sleep takes a constant (units of 64 clocks): repeat it instead.
        for (uint32_t i = 0; i < (1u << step_); i++) {
            __builtin_amdgcn_s_sleep(2);
        }
#elif defined(GU_HOST)
        std::this_thread::yield();
#endif
        if (step_ < max_step) {
            step_++;
        }
    }
};

} // namespace gu

#endif // GPU_URING_BACKOFF_H
