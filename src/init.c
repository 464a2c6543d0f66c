/* Process-wide set-up: options and the per-process secrets.
 *
 * The first allocation can come from the dynamic loader, from dlsym or from
 * thread-local-storage set-up, before any constructor: so set-up runs lazily
 * on the first slow path, allocates nothing, and calls nothing that could
 * call malloc while the state says "running". */
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

uintptr_t ma_secret[4];
bool ma_secure;
bool ma_prof_on;
bool ma_prof_pages;
_Atomic int ma_init_state;
static MA_THREAD_LOCAL bool in_init;

#if !defined(__x86_64__) && !defined(__aarch64__)
const void *ma_thread_id(void)
{
    static MA_THREAD_LOCAL char id;
    return &id;
}
#endif

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ma_secret[0] is written last and is never zero: a child that a fork left
 * with set-up half done sees either every secret or none. */
static void init_secrets(void)
{
    uint64_t seed[4] = {0, 0, 0, 0};
#ifdef SYS_getrandom
    long got = syscall(SYS_getrandom, seed, sizeof seed, 1 /* GRND_NONBLOCK */);
    (void)got;
#endif
    /* The kernel's 16 random bytes for this process: not 8-byte aligned. */
    const void *aux = (const void *)getauxval(AT_RANDOM);
    uint64_t state = seed[0] ^ seed[1] ^ (uint64_t)(uintptr_t)&state ^ (uint64_t)getpid();
    if (aux) {
        uint64_t r[2];
        memcpy(r, aux, sizeof r);
        state ^= r[0] ^ (r[1] << 1);
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    state ^= (uint64_t)ts.tv_nsec * 0x2545f4914f6cdd1dull;
    uintptr_t secret[4];
    for (int i = 0; i < 4; i++)
        secret[i] = (uintptr_t)(splitmix64(&state) ^ seed[i]);
    for (int i = 3; i > 0; i--)
        ma_secret[i] = secret[i];
    atomic_store_explicit((_Atomic uintptr_t *)&ma_secret[0], secret[0] | 1, memory_order_release);
}

/* The process whose thread runs set-up: a waiter in another process (a
 * child forked meanwhile) knows that nobody will finish it there. */
static _Atomic int init_pid;

static void init_run(void)
{
    atomic_store(&init_pid, (int)getpid());
    in_init = true;
    if (atomic_load_explicit((_Atomic uintptr_t *)&ma_secret[0], memory_order_acquire) == 0)
        init_secrets();
    ma_options_init();
    ma_secure = ma_option(MA_OPT_SECURE) != 0;
    ma_prof_on = ma_option(MA_OPT_PROF) || ma_option(MA_OPT_LEAKS);
    ma_prof_pages = ma_prof_on && !ma_secure;
    if (ma_option(MA_OPT_STATS) || ma_prof_on)
        ma_report_keep_stderr();
    atomic_store_explicit(&ma_init_state, 2, memory_order_release);
    in_init = false;
}

void ma_init_slow(void)
{
    int expected = 0;
    if (atomic_compare_exchange_strong(&ma_init_state, &expected, 1)) {
        init_run();
        return;
    }
    /* A recursive call from inside set-up goes on with what is ready (the
     * secrets come first); another thread waits for set-up to finish. */
    if (in_init)
        return;
    for (unsigned spins = 1; atomic_load_explicit(&ma_init_state, memory_order_acquire) != 2; spins++) {
        ma_cpu_relax();
        if (spins % 4096 != 0)
            continue;
        /* A fork caught another thread in set-up: this child has nobody
         * to finish it, so one waiter here starts it again. */
        int me = (int)getpid(), owner = atomic_load(&init_pid);
        if (owner != me && atomic_compare_exchange_strong(&init_pid, &owner, me)) {
            init_run();
            return;
        }
    }
}

uint64_t ma_clock_ms(void)
{
    struct timespec ts;
#ifdef CLOCK_MONOTONIC_COARSE
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
#else
    clock_gettime(CLOCK_MONOTONIC, &ts);
#endif
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
