/* A small spin lock for the slow paths (regions, abandonment, large blocks).
 * Critical sections are a few list or table operations and never a system
 * call, so spinning (with a yield when contended) beats a futex here, and it
 * needs no initialisation, which matters before any constructor has run. */
#ifndef MA_LOCK_H
#define MA_LOCK_H

#include <sched.h>
#include <stdatomic.h>

#if defined(__x86_64__) || defined(__i386__)
#define ma_cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define ma_cpu_relax() __asm__ volatile("yield")
#else
#define ma_cpu_relax() ((void)0)
#endif

typedef struct {
    atomic_int held;
} ma_spinlock;

#define MA_SPINLOCK_INIT {0}

static inline void ma_lock(ma_spinlock *l)
{
    for (unsigned spins = 0;; spins++) {
        if (!atomic_exchange_explicit(&l->held, 1, memory_order_acquire))
            return;
        while (atomic_load_explicit(&l->held, memory_order_relaxed)) {
            if (++spins > 64) {
                sched_yield();
                spins = 0;
            } else {
                ma_cpu_relax();
            }
        }
    }
}

static inline void ma_unlock(ma_spinlock *l)
{
    atomic_store_explicit(&l->held, 0, memory_order_release);
}

#endif
