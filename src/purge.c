/* The background purger. See purge.h.
 *
 * It exists only while something is held: it starts when a slow path
 * finds MA_PURGER_MIN bytes held and no purger (a program that never frees
 * never sees it), wakes every half decay, gives back what has waited
 * decay_ms (so what is freed is back with the kernel within 1.5 decay_ms,
 * or a little more than decay_ms + 5 ms for a very short decay), and exits
 * after a pass that leaves nothing held. It makes its system calls
 * without an allocator lock (the arena's purge and the large cache's expiry
 * drop their locks around them), never allocates, and blocks every signal,
 * so that none meant for the program's threads lands on it. Its work is the
 * same as the slow paths' purging, which goes on as before: whichever comes
 * first does it.
 *
 * A fork child starts with none, and starts its own when it needs one.
 * background=0 turns it off (for a program that must stay single-threaded);
 * if the kernel or a sandbox refuses the thread, the next try is a second
 * later, and the slow paths purge meanwhile. */
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <time.h>

#include "purge.h"

enum { IDLE, RUNNING };
static _Atomic int state = IDLE;
static _Atomic uint64_t next_try_ms; /* after a refused thread */

#define REFUSED_WAIT_MS 1000
#define MIN_SLEEP_MS 5

/* The bytes held for reuse that the purger gives back. */
static size_t held(void)
{
    return ma_count_get(&ma_default_arena.dirty_bytes) + ma_large_cached_bytes();
}

static void sleep_ms(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* One pass: what has waited decay_ms goes back. */
static void purge_pass(uint32_t decay)
{
    ma_arena_purge(&ma_default_arena, decay, false);
    ma_large_trim(false);
}

static void *purger_main(void *arg)
{
    (void)arg;
    prctl(PR_SET_NAME, "mapalloc-purge", 0, 0, 0);
    for (;;) {
        uint64_t decay = (uint64_t)ma_option(MA_OPT_DECAY_MS);
        sleep_ms(decay / 2 > MIN_SLEEP_MS ? decay / 2 : MIN_SLEEP_MS);
        bool on = ma_option(MA_OPT_BACKGROUND) != 0;
        if (on)
            purge_pass((uint32_t)decay);
        if (on && held() != 0)
            continue;
        /* Done. A slow path that added memory meanwhile saw RUNNING and
         * did not start another: look once more after saying so. */
        atomic_store(&state, IDLE);
        int idle = IDLE;
        if (!on || held() == 0 || !atomic_compare_exchange_strong(&state, &idle, RUNNING))
            return NULL;
    }
}

static void purger_start(void)
{
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the new thread inherits it */
    pthread_t t;
    int rc = pthread_create(&t, &attr, purger_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        atomic_store(&next_try_ms, ma_clock_ms() + REFUSED_WAIT_MS);
        atomic_store(&state, IDLE);
    }
}

void ma_purger_kick(void)
{
    if (ma_likely(atomic_load_explicit(&state, memory_order_relaxed) != IDLE) ||
        ma_option(MA_OPT_BACKGROUND) == 0 || held() < MA_PURGER_MIN)
        return;
    uint64_t wait = atomic_load_explicit(&next_try_ms, memory_order_relaxed);
    if (wait != 0 && ma_clock_ms() < wait)
        return;
    int idle = IDLE;
    if (atomic_compare_exchange_strong(&state, &idle, RUNNING))
        purger_start();
}

void ma_purger_fork_child(void)
{
    atomic_store(&state, IDLE);
}
