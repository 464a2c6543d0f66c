/* Micro-benchmark bodies: the standard C allocation calls, one pattern per
 * case. The binary calls plain malloc/free; the allocator under test comes
 * in through LD_PRELOAD (bench/run.py --micro runs it once per allocator).
 * See cases.h for the shim and register.cc for the registration.
 */
#include "cases.h"
#include "rng.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define KIB ((int64_t)1 << 10)
#define MIB ((int64_t)1 << 20)

/* Block sizes 16 B .. 1 MiB, a factor of 4 apart. */
static const int64_t sizes[][2] = {
    {16}, {64}, {256}, {1 * KIB}, {4 * KIB}, {16 * KIB}, {64 * KIB}, {256 * KIB}, {1 * MIB},
};
#define NSIZES ((int)(sizeof sizes / sizeof sizes[0]))

/* ---- malloc/free pairs ------------------------------------------------ */

static void pairs(mb_state *st, const int64_t *arg)
{
    size_t size = (size_t)arg[0];
    while (mb_running(st)) {
        char *p = malloc(size);
        if (!p) {
            mb_error(st, "malloc returned NULL");
            break;
        }
        p[0] = 1; /* touch it, as a program would */
        mb_escape(p);
        free(p);
    }
}

static void calloc_free(mb_state *st, const int64_t *arg)
{
    size_t size = (size_t)arg[0];
    while (mb_running(st)) {
        char *p = calloc(1, size);
        if (!p) {
            mb_error(st, "calloc returned NULL");
            break;
        }
        mb_escape(p);
        free(p);
    }
}

/* ---- batches: allocate n blocks, then free them in some order -------- */

enum order { SAME, REVERSE, RANDOM };

/* Blocks per batch: 1000, fewer for big blocks so a batch stays <= 16 MiB. */
static size_t batch_len(size_t size)
{
    size_t n = (size_t)(16 * MIB) / size;
    return n > 1000 ? 1000 : n < 16 ? 16 : n;
}

static void batch(mb_state *st, size_t size, enum order order)
{
    size_t n = batch_len(size);
    void **ptrs = malloc(n * sizeof *ptrs);
    size_t *perm = malloc(n * sizeof *perm);
    if (!ptrs || !perm) {
        mb_error(st, "malloc returned NULL");
        free(ptrs);
        free(perm);
        return;
    }
    /* The free order, fixed before timing. */
    for (size_t i = 0; i < n; i++)
        perm[i] = order == REVERSE ? n - 1 - i : i;
    if (order == RANDOM) {
        wl_rng rng;
        wl_rng_init(&rng, 42, 0);
        wl_shuffle(&rng, perm, n, sizeof *perm);
    }
    mb_set_ops(st, (int64_t)n);
    while (mb_running(st)) {
        for (size_t i = 0; i < n; i++) {
            char *p = malloc(size);
            if (!p) {
                mb_error(st, "malloc returned NULL");
                n = i;
                break;
            }
            p[0] = 1;
            ptrs[i] = p;
        }
        mb_escape(ptrs);
        for (size_t i = 0; i < n; i++)
            free(ptrs[perm[i]]);
    }
    free(ptrs);
    free(perm);
}

static void batch_same(mb_state *st, const int64_t *arg) { batch(st, (size_t)arg[0], SAME); }
static void batch_reverse(mb_state *st, const int64_t *arg) { batch(st, (size_t)arg[0], REVERSE); }
static void batch_random(mb_state *st, const int64_t *arg) { batch(st, (size_t)arg[0], RANDOM); }

/* ---- realloc growth chain: 16 B to 64 MiB ----------------------------- */

static const int64_t growth[][2] = {{100}, {13}}; /* percent per step */

static void realloc_chain(mb_state *st, const int64_t *arg)
{
    int64_t pct = arg[0], steps = 0;
    for (int64_t n = 16; n < 64 * MIB; n += n * pct / 100 > 16 ? n * pct / 100 : 16)
        steps++;
    mb_set_ops(st, steps + 1);
    while (mb_running(st)) {
        size_t n = 16;
        char *p = malloc(n);
        if (!p) {
            mb_error(st, "malloc returned NULL");
            break;
        }
        p[0] = 42;
        while (n < (size_t)(64 * MIB)) {
            size_t step = n * (size_t)pct / 100;
            n += step > 16 ? step : 16;
            char *q = realloc(p, n);
            if (!q || q[0] != 42) {
                mb_error(st, q ? "realloc lost the contents" : "realloc returned NULL");
                break;
            }
            p = q;
            p[n - 1] = 1; /* touch the new end, as an appending program would */
        }
        free(p);
    }
}

/* ---- aligned_alloc ----------------------------------------------------- */

static const int64_t aligned_args[][2] = {
    {64, 64},          {64, 1 * KIB},     {64, 64 * KIB},
    {4 * KIB, 4 * KIB}, {4 * KIB, 64 * KIB},
    {2 * MIB, 2 * MIB}, {2 * MIB, 4 * MIB},
};

static void aligned(mb_state *st, const int64_t *arg)
{
    size_t align = (size_t)arg[0], size = (size_t)arg[1];
    while (mb_running(st)) {
        char *p = aligned_alloc(align, size);
        if (!p || ((uintptr_t)p & (align - 1))) {
            mb_error(st, p ? "aligned_alloc misaligned" : "aligned_alloc returned NULL");
            break;
        }
        p[0] = 1;
        mb_escape(p);
        free(p);
    }
}

/* ---- cross-thread free: this thread allocates, another frees ---------- */

#define RING 1024 /* power of two */

struct ring {
    _Alignas(64) _Atomic size_t head; /* next slot the consumer reads */
    _Alignas(64) _Atomic size_t tail; /* next slot the producer writes */
    _Alignas(64) _Atomic int done;
    void *slot[RING];
};

static void *consumer(void *arg)
{
    struct ring *r = arg;
    size_t head = 0;
    for (;;) {
        size_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
        if (head == tail) {
            if (atomic_load_explicit(&r->done, memory_order_acquire) &&
                head == atomic_load_explicit(&r->tail, memory_order_acquire))
                return NULL;
            sched_yield();
            continue;
        }
        for (; head != tail; head++)
            free(r->slot[head & (RING - 1)]);
        /* release: the producer may reuse the slots we have read */
        atomic_store_explicit(&r->head, head, memory_order_release);
    }
}

static void cross_thread(mb_state *st, const int64_t *arg)
{
    size_t size = (size_t)arg[0];
    struct ring *r = aligned_alloc(64, sizeof *r);
    pthread_t tid;
    if (!r) {
        mb_error(st, "aligned_alloc returned NULL");
        return;
    }
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    atomic_init(&r->done, 0);
    if (pthread_create(&tid, NULL, consumer, r)) {
        mb_error(st, "pthread_create failed");
        free(r);
        return;
    }
    size_t tail = 0;
    while (mb_running(st)) {
        while (tail - atomic_load_explicit(&r->head, memory_order_acquire) == RING)
            sched_yield(); /* ring full: the freeing thread is behind */
        char *p = malloc(size);
        if (!p) {
            mb_error(st, "malloc returned NULL");
            break;
        }
        p[0] = 1;
        r->slot[tail & (RING - 1)] = p;
        tail++;
        atomic_store_explicit(&r->tail, tail, memory_order_release);
    }
    atomic_store_explicit(&r->done, 1, memory_order_release);
    pthread_join(tid, NULL);
    free(r);
}

/* ---- the table ----------------------------------------------------------
 * The explicit-arena cases are not here: they call each allocator's own API,
 * so each allocator has a binary of its own linked to it, with the same case
 * names (micro/arena_mapalloc.c, arena_jemalloc.c, arena_mimalloc.c);
 * run.py --micro runs them alongside this one.
 */
const struct mb_case mb_cases[] = {
    {"pairs", pairs, 1, {"size"}, sizes, NSIZES, 0},
    {"calloc", calloc_free, 1, {"size"}, sizes, NSIZES, 0},
    {"batch_same", batch_same, 1, {"size"}, sizes, NSIZES, 0},
    {"batch_reverse", batch_reverse, 1, {"size"}, sizes, NSIZES, 0},
    {"batch_random", batch_random, 1, {"size"}, sizes, NSIZES, 0},
    {"realloc_chain", realloc_chain, 1, {"growth_pct"}, growth, 2, 0},
    {"aligned_alloc", aligned, 2, {"align", "size"}, aligned_args, 7, 0},
    {"cross_thread", cross_thread, 1, {"size"}, sizes, 5, 1},
};
const int mb_ncases = sizeof mb_cases / sizeof mb_cases[0];
