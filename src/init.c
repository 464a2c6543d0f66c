/* Process-wide set-up: options, the per-process secrets, fork handlers.
 *
 * The first allocation can come from the dynamic loader, from dlsym or from
 * thread-local-storage set-up, before any constructor: so set-up runs lazily
 * on the first slow path, allocates nothing, and calls nothing that could
 * call malloc while the state says "running". */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

uintptr_t ma_secret[4];
_Atomic int ma_init_state;
int ma_stats_fd = 2;
static MA_THREAD_LOCAL bool in_init;

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

/* Set when our fork handlers run: proof, in a child, that they were
 * registered before that fork. */
static bool fork_handlers_ran;

static void fork_prepare(void)
{
    ma_locks_acquire_all();
    fork_handlers_ran = true;
}

static void fork_parent(void)
{
    ma_locks_release_all();
}

static void finish_notices(ma_region *r, void *arg)
{
    (void)arg;
    for (unsigned i = 1; i < MA_REGION_SLICES; i++) {
        ma_page *page = &r->pages[i];
        if (page->slices != 0 && page->first_slice == i)
            ma_page_fork_child(page);
    }
}

/* The child has only the thread that forked: whatever another thread was
 * doing between two steps of a lock-free protocol, nobody will finish it.
 * Locks were all held across the fork, so no locked state is half done. */
static void fork_child(void)
{
    ma_locks_reset_all();
    ma_heap_fork_child();
    if (ma_page_notices_in_flight()) {
        ma_regions_foreach(finish_notices, NULL);
        ma_page_fork_child_done();
    }
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
    if (!fork_handlers_ran)
        pthread_atfork(fork_prepare, fork_parent, fork_child);
    atomic_store_explicit(&ma_init_state, 2, memory_order_release);
    in_init = false;
    /* atexit may allocate, so it comes after the state says "done";
     * the handler checks the option, which code may still change. Some
     * programs (coreutils) close stderr before exit handlers run: with
     * stats on from the start, the report goes to a copy taken now. */
    if (ma_option(MA_OPT_STATS))
        ma_stats_fd = fcntl(2, F_DUPFD_CLOEXEC, 3);
    atexit(ma_stats_at_exit);
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

/* fork: every allocator lock, always in this order. */
void ma_locks_acquire_all(void)
{
    ma_arenas_lock_all();
    ma_lock(&ma_heap_lock);
    ma_lock(&ma_region_lock);
    ma_lock(&ma_large_lock);
}

void ma_locks_release_all(void)
{
    ma_unlock(&ma_large_lock);
    ma_unlock(&ma_region_lock);
    ma_unlock(&ma_heap_lock);
    ma_arenas_unlock_all();
}

void ma_locks_reset_all(void)
{
    ma_locks_release_all();
}
