/* Soak: several threads allocate, check, reallocate and free blocks of
 * mixed sizes, hand blocks to each other to free, and come and go; the main
 * thread forks now and then (the child uses the allocator, including blocks
 * the parent made, and _exits) and watches resident memory.
 *
 *   soak [--seconds N] [--threads T] [--seed S]     (default 10 s, 4 threads)
 *
 * Checked: every block's contents, every time it is touched and before it
 * is freed; every fork child exits 0 within 10 s (a lock held across fork
 * would hang it); resident memory stays below a bound derived from the live
 * set: 2 x the most bytes ever live + 96 MiB above the start, sampled every
 * 50 ms; and after everything is freed and trimmed it comes back to within
 * 64 MiB of the start. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mapalloc.h>

#include "rng.h"
#include "sys.h"

#define SLOTS 1024
#define MiB ((size_t)1 << 20)

struct block {
    unsigned char *p;
    size_t size;
    uint64_t id;
};

static atomic_bool stop;
static atomic_size_t live_bytes, peak_live;
static atomic_ullong ops_done, forks_done, threads_done, handed;
static uint64_t seed = 1;

static void fail(const char *what, const struct block *b)
{
    fprintf(stderr, "soak: FAILED: %s (block %p, size %zu, id %llu; seed %llu)\n", what,
            b ? (void *)b->p : NULL, b ? b->size : 0, b ? (unsigned long long)b->id : 0ull,
            (unsigned long long)seed);
    abort();
}

static size_t pick_size(uint64_t r)
{
    unsigned k = (unsigned)(r % 100);
    r >>= 8;
    if (k < 70)
        return 1 + r % 256;
    if (k < 90)
        return 257 + r % 8000;
    if (k < 99)
        return 8192 + r % (256 * 1024);
    return 256 * 1024 + r % (2 * MiB);
}

/* Contents: one byte derived from the id, all through the block (the same
 * after realloc, so the part that is kept can be checked). */
static unsigned char fill_byte(uint64_t id)
{
    return (unsigned char)(id * 131 + 7);
}

static void fill(struct block *b, size_t from)
{
    if (from < b->size)
        memset(b->p + from, fill_byte(b->id), b->size - from);
}

static void check(const struct block *b, size_t upto)
{
    unsigned char c = fill_byte(b->id);
    for (size_t i = 0; i < upto; i++)
        if (b->p[i] != c)
            fail("a block's contents changed", b);
}

static void account(ptrdiff_t delta)
{
    size_t now = atomic_fetch_add(&live_bytes, (size_t)delta) + (size_t)delta;
    size_t peak = atomic_load(&peak_live);
    while (now > peak && !atomic_compare_exchange_weak(&peak_live, &peak, now))
        ;
}

static void release(struct block *b)
{
    check(b, b->size);
    account(-(ptrdiff_t)b->size);
    mapalloc_free(b->p);
    b->p = NULL;
}

/* ---- blocks handed between threads ---- */

#define QUEUE 4096
static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static struct block queue[QUEUE];
static unsigned queue_len;

static bool give(const struct block *b)
{
    pthread_mutex_lock(&queue_lock);
    bool ok = queue_len < QUEUE;
    if (ok)
        queue[queue_len++] = *b;
    pthread_mutex_unlock(&queue_lock);
    return ok;
}

static bool take(struct block *out, uint64_t r)
{
    pthread_mutex_lock(&queue_lock);
    bool ok = queue_len > 0;
    if (ok) {
        unsigned i = (unsigned)(r % queue_len);
        *out = queue[i];
        queue[i] = queue[--queue_len];
    }
    pthread_mutex_unlock(&queue_lock);
    return ok;
}

/* ---- workers ---- */

static atomic_ullong next_id;

static void *worker(void *arg)
{
    uint64_t rng = wl_seed(seed, (uint64_t)(uintptr_t)arg);
    struct block *slots = calloc(SLOTS, sizeof *slots);
    if (slots == NULL)
        fail("calloc of the worker's slots", NULL);
    uint64_t life = 20000 + wl_rand(&rng) % 200000, n;
    for (n = 0; n < life && !atomic_load_explicit(&stop, memory_order_relaxed); n++) {
        uint64_t r = wl_rand(&rng);
        struct block *b = &slots[r % SLOTS];
        unsigned what = (unsigned)(r >> 16) % 16;
        if (b->p == NULL) {
            if (what < 2 && take(b, r >> 24)) { /* adopt a block another thread made */
                check(b, b->size);
                continue;
            }
            b->size = pick_size(wl_rand(&rng));
            b->id = atomic_fetch_add(&next_id, 1);
            b->p = mapalloc_malloc(b->size);
            if (b->p == NULL)
                fail("malloc returned NULL", b);
            account((ptrdiff_t)b->size);
            fill(b, 0);
        } else if (what < 8) {
            release(b);
        } else if (what < 11) {
            size_t size = pick_size(wl_rand(&rng));
            check(b, b->size);
            unsigned char *q = mapalloc_realloc(b->p, size);
            if (q == NULL)
                fail("realloc returned NULL", b);
            size_t old = b->size;
            b->p = q;
            b->size = size;
            account((ptrdiff_t)size - (ptrdiff_t)old);
            check(b, old < size ? old : size);
            fill(b, old < size ? old : size);
        } else if (what < 13) {
            if (give(b)) {
                b->p = NULL;
                atomic_fetch_add(&handed, 1);
            }
        } else {
            check(b, b->size);
        }
    }
    /* Leaving: half to the others, the rest freed. */
    for (unsigned i = 0; i < SLOTS; i++)
        if (slots[i].p && !((i & 1) && give(&slots[i])))
            release(&slots[i]);
    free(slots);
    atomic_fetch_add(&ops_done, n);
    atomic_fetch_add(&threads_done, 1);
    return NULL;
}

/* ---- fork and resident memory ---- */

/* The child checks and frees the parent's blocks, makes its own, exits. */
static void fork_once(struct block *mine, unsigned n)
{
    pid_t pid = fork();
    if (pid < 0)
        fail("fork", NULL);
    if (pid == 0) {
        for (unsigned i = 0; i < n; i++) {
            check(&mine[i], mine[i].size);
            mapalloc_free(mine[i].p);
        }
        for (unsigned i = 0; i < 2000; i++) {
            struct block b = {.size = pick_size(wl_mix(i)), .id = i};
            b.p = mapalloc_malloc(b.size);
            if (b.p == NULL)
                _exit(3);
            fill(&b, 0);
            check(&b, b.size);
            mapalloc_free(b.p);
        }
        _exit(0);
    }
    int status = 0;
    double give_up = wl_now() + 10;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (wl_now() > give_up) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail("a fork child did not finish in 10 s (a lock held across fork?)", NULL);
        }
        usleep(1000);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail("a fork child failed", NULL);
    atomic_fetch_add(&forks_done, 1);
}

int main(int argc, char **argv)
{
    double seconds = 10;
    int nthreads = 4;
    bool bad = argc % 2 == 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--seconds") == 0)
            seconds = strtod(argv[i + 1], NULL);
        else if (strcmp(argv[i], "--threads") == 0)
            nthreads = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--seed") == 0)
            seed = strtoull(argv[i + 1], NULL, 0);
        else
            bad = true;
    }
    if (bad || nthreads < 1 || nthreads > 64 || !(seconds > 0)) {
        fprintf(stderr, "usage: soak [--seconds N] [--threads T] [--seed S]\n");
        return 2;
    }
    printf("soak: %g s, %d threads, seed %llu\n", seconds, nthreads, (unsigned long long)seed);
    fflush(stdout);
    mapalloc_free(mapalloc_malloc(1));
    size_t base = wl_resident(), max_res = base, worst_margin = 0;

    pthread_t *t = calloc((size_t)nthreads, sizeof *t);
    bool *running = calloc((size_t)nthreads, sizeof *running);
    struct block mine[64];
    if (t == NULL || running == NULL)
        return 1;
    unsigned long spawned = 0;
    double start = wl_now(), end = start + seconds, next_fork = start + 0.2;
    while (wl_now() < end) {
        /* Thread churn: a thread that has finished is replaced. */
        for (int i = 0; i < nthreads; i++) {
            if (running[i] && pthread_tryjoin_np(t[i], NULL) != 0)
                continue;
            if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)++spawned) != 0)
                fail("pthread_create", NULL);
            running[i] = true;
        }
        if (wl_now() > next_fork) {
            unsigned n = 0;
            for (; n < 64; n++) {
                mine[n] = (struct block){.size = pick_size(wl_mix(seed + n)),
                                         .id = n + 1000000000ull};
                mine[n].p = mapalloc_malloc(mine[n].size);
                if (mine[n].p == NULL)
                    fail("malloc in the main thread", &mine[n]);
                fill(&mine[n], 0);
            }
            fork_once(mine, n);
            for (unsigned i = 0; i < n; i++) {
                check(&mine[i], mine[i].size);
                mapalloc_free(mine[i].p);
            }
            next_fork = wl_now() + 0.3;
        }
        size_t res = wl_resident();
        size_t bound = base + 2 * atomic_load(&peak_live) + 96 * MiB;
        if (res > max_res)
            max_res = res;
        if (res > bound) {
            fprintf(stderr, "soak: resident %zu MiB above the bound %zu MiB (start %zu MiB, most "
                    "ever live %zu MiB)\n", res >> 20, bound >> 20, base >> 20,
                    atomic_load(&peak_live) >> 20);
            fail("resident memory out of bounds", NULL);
        }
        if (bound - res > worst_margin)
            worst_margin = bound - res;
        usleep(50000);
    }
    atomic_store(&stop, true);
    for (int i = 0; i < nthreads; i++)
        if (running[i])
            pthread_join(t[i], NULL);
    for (struct block b; take(&b, 0);)
        release(&b);
    if (atomic_load(&live_bytes) != 0)
        fail("bytes still counted live at the end", NULL);
    mapalloc_trim(0);
    size_t final = wl_resident();
    printf("soak: %llu operations, %lu threads, %llu forks, %llu blocks handed over; most live "
           "%zu MiB; resident: start %zu MiB, highest %zu MiB, end %zu MiB\n",
           (unsigned long long)atomic_load(&ops_done), spawned,
           (unsigned long long)atomic_load(&forks_done), (unsigned long long)atomic_load(&handed),
           atomic_load(&peak_live) >> 20, base >> 20, max_res >> 20, final >> 20);
    if (final > base + 64 * MiB)
        fail("resident memory did not come back after everything was freed", NULL);
    free(t);
    free(running);
    printf("soak: ok\n");
    return 0;
}
