/* Request-scoped allocation: an arena that is reset after each request,
 * against malloc/free of the same blocks, jemalloc's explicit arenas and
 * mimalloc's heaps.
 *
 * A request allocates N blocks (mixed sizes: 98% of 16..512 bytes, 2% of
 * 513..8192), writes one word in every 64 bytes of each, reads the first
 * word of each back, then ends: the whole arena is reset (or the heap
 * destroyed), or, for the malloc/free baselines, every block is freed. The
 * size sequence is the same for every allocator. R requests make one
 * repetition; the median of the repetitions is reported, as ns per block
 * (allocation, its share of the reset or its free, the touches) in CPU time
 * of the threads (steady on a busy machine) and in wall time, and requests
 * per second (wall). The 2-thread runs give each thread its own arena
 * (heap); CPU time is summed over the threads, wall time covers both.
 *
 * One source, one binary per allocator, since jemalloc and mimalloc replace
 * malloc in the binary that links them:
 *   arena_bench_mapalloc   glibc malloc/free, mapalloc malloc/free, mapalloc arena
 *   arena_bench_jemalloc   jemalloc malloc/free, explicit arenas (arenas.create,
 *                          mallocx(MALLOCX_ARENA), arena.<i>.reset), without and
 *                          with an explicit tcache
 *   arena_bench_mimalloc   mi_malloc/mi_free, heaps (mi_heap_new, mi_heap_malloc,
 *                          mi_heap_destroy)
 * Each checks once, before timing, that its arena really holds the blocks
 * and that the reset or destroy really empties it.
 *
 *   arena_bench_X [requests [blocks [repetitions]]]   (defaults: 2000 1000 7)
 * Output: one line per variant and thread count, tab-separated, after a
 * comment line: "variant threads cpu_ns_per_block wall_ns_per_block
 * requests_per_s". */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rng.h"

#if defined(BENCH_JEMALLOC)
#include <jemalloc/jemalloc.h>
#elif defined(BENCH_MIMALLOC)
#include <mimalloc.h>
#elif defined(BENCH_MAPALLOC)
#include "mapalloc.h"
#else
#error "define BENCH_MAPALLOC, BENCH_JEMALLOC or BENCH_MIMALLOC"
#endif

#define ALWAYS_INLINE static inline __attribute__((always_inline))

static size_t requests = 2000, blocks = 1000, repetitions = 7;

/* ---- the workload ---- */

#define SIZE_TABLE 65536 /* a power of two */
static uint32_t size_table[SIZE_TABLE];

static void make_sizes(void)
{
    wl_rng rng;
    wl_rng_init(&rng, 0x2545f4914f6cdd1dull, 0);
    for (size_t i = 0; i < SIZE_TABLE; i++) {
        uint64_t s = wl_next(&rng);
        size_table[i] = (s % 100 < 98) ? 16 + (uint32_t)((s >> 16) % 497)
                                      : 513 + (uint32_t)((s >> 16) % (8192 - 512));
    }
}

static double clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}
#define now_ns() clock_ns(CLOCK_MONOTONIC)

static void die(const char *what, int err)
{
    fprintf(stderr, "arena_bench: %s failed (%d: %s)\n", what, err, strerror(err));
    exit(2);
}

/* One allocator under test. Every function takes the thread's context:
 * begin() makes it, alloc() serves one block, release() frees one block
 * (NULL for arenas), end_request() drops the request's blocks (NULL for
 * malloc/free), finish() takes the context apart. */
struct ctx {
    void *arena; /* the arena, heap or NULL */
    unsigned index; /* jemalloc: arena index */
    int flags;      /* jemalloc: mallocx flags */
};

typedef void (*begin_fn)(struct ctx *);
typedef void *(*alloc_fn)(struct ctx *, size_t);
typedef void (*release_fn)(struct ctx *, void *);
typedef void (*end_fn)(struct ctx *);

/* One thread's requests. Inlined into each variant's runner, so that the
 * allocator calls are direct calls there. Returns a checksum of the reads. */
ALWAYS_INLINE uint64_t run_requests(struct ctx *c, void **ptrs, size_t first_size, size_t nreq,
                                    alloc_fn alloc, release_fn release, end_fn end_request)
{
    uint64_t sum = 0;
    size_t k = first_size;
    for (size_t r = 0; r < nreq; r++) {
        for (size_t i = 0; i < blocks; i++) {
            size_t size = size_table[k++ & (SIZE_TABLE - 1)];
            uint64_t *p = alloc(c, size);
            if (p == NULL)
                die("allocation", errno);
            for (size_t w = 0; w < size / 8; w += 8)
                p[w] = i;
            ptrs[i] = p;
        }
        for (size_t i = 0; i < blocks; i++)
            sum += *(uint64_t *)ptrs[i];
        if (release)
            for (size_t i = 0; i < blocks; i++)
                release(c, ptrs[i]);
        if (end_request)
            end_request(c);
    }
    return sum;
}

struct variant {
    const char *name;
    begin_fn begin;
    end_fn finish;
    uint64_t (*run)(struct ctx *, void **, size_t first, size_t nreq);
    void (*verify)(void); /* checks, once, that the arena does what it says */
};

#define RUNNER(name, alloc, release, end_request)                                      \
    __attribute__((unused)) static uint64_t name(struct ctx *c, void **ptrs, size_t first, size_t nreq)        \
    {                                                                                  \
        return run_requests(c, ptrs, first, nreq, alloc, release, end_request);        \
    }

static void no_begin(struct ctx *c)
{
    (void)c;
}
#define no_finish no_begin

/* ---- glibc (or whichever malloc the binary has) ---- */

static void *sys_alloc(struct ctx *c, size_t n)
{
    (void)c;
    return malloc(n);
}
static void sys_release(struct ctx *c, void *p)
{
    (void)c;
    free(p);
}
RUNNER(run_sys, sys_alloc, sys_release, NULL)

/* ---- mapalloc ---- */
#if defined(BENCH_MAPALLOC)
static void *ma_alloc(struct ctx *c, size_t n)
{
    (void)c;
    return mapalloc_malloc(n);
}
static void ma_release(struct ctx *c, void *p)
{
    (void)c;
    mapalloc_free(p);
}
RUNNER(run_ma, ma_alloc, ma_release, NULL)

static void ma_arena_begin(struct ctx *c)
{
    c->arena = mapalloc_arena_create(NULL);
    if (c->arena == NULL)
        die("mapalloc_arena_create", errno);
}
static void ma_arena_finish(struct ctx *c)
{
    mapalloc_arena_destroy(c->arena);
}
static void *ma_arena_alloc(struct ctx *c, size_t n)
{
    return mapalloc_arena_malloc(c->arena, n);
}
static void ma_arena_reset(struct ctx *c)
{
    mapalloc_arena_reset(c->arena);
}
RUNNER(run_ma_arena, ma_arena_alloc, NULL, ma_arena_reset)

/* A new arena for every request, destroyed at its end. */
static void ma_arena_renew(struct ctx *c)
{
    mapalloc_arena_destroy(c->arena);
    ma_arena_begin(c);
}
RUNNER(run_ma_arena_renew, ma_arena_alloc, NULL, ma_arena_renew)

static void ma_verify(void)
{
    struct ctx c;
    ma_arena_begin(&c);
    for (size_t i = 0; i < blocks; i++)
        if (ma_arena_alloc(&c, size_table[i]) == NULL)
            die("mapalloc_arena_malloc", errno);
    struct mapalloc_arena_stats s;
    mapalloc_arena_stats(c.arena, &s);
    if (s.blocks != blocks)
        die("mapalloc arena: block count", EINVAL);
    ma_arena_reset(&c);
    mapalloc_arena_stats(c.arena, &s);
    if (s.blocks != 0 || s.live != 0)
        die("mapalloc arena: reset", EINVAL);
    ma_arena_finish(&c);
}

static const struct variant variants[] = {
    {"glibc malloc/free", no_begin, no_finish, run_sys, NULL},
    {"mapalloc malloc/free", no_begin, no_finish, run_ma, NULL},
    {"mapalloc arena+reset", ma_arena_begin, ma_arena_finish, run_ma_arena, ma_verify},
    {"mapalloc arena create/destroy", ma_arena_begin, ma_arena_finish, run_ma_arena_renew, NULL},
};
#endif

/* ---- jemalloc ---- */
#if defined(BENCH_JEMALLOC)
static void je_ctl(const char *name, void *old, size_t *oldlen, void *new, size_t newlen)
{
    int err = mallctl(name, old, oldlen, new, newlen);
    if (err != 0) {
        fprintf(stderr, "arena_bench: mallctl(\"%s\") failed (%d: %s)\n", name, err, strerror(err));
        exit(2);
    }
}

static void je_begin_common(struct ctx *c, int tcache)
{
    unsigned index;
    size_t len = sizeof index;
    je_ctl("arenas.create", &index, &len, NULL, 0);
    c->index = index;
    c->flags = MALLOCX_ARENA(index);
    if (tcache) {
        unsigned tc;
        len = sizeof tc;
        je_ctl("tcache.create", &tc, &len, NULL, 0);
        c->flags |= MALLOCX_TCACHE(tc);
        c->arena = (void *)(uintptr_t)(tc + 1);
    } else {
        c->flags |= MALLOCX_TCACHE_NONE;
        c->arena = NULL;
    }
}
static void je_begin(struct ctx *c)
{
    je_begin_common(c, 0);
}
static void je_begin_tcache(struct ctx *c)
{
    je_begin_common(c, 1);
}

static void je_reset(struct ctx *c)
{
    char name[64];
    if (c->arena) { /* the explicit tcache holds blocks of the arena: flush it first */
        unsigned tc = (unsigned)((uintptr_t)c->arena - 1);
        je_ctl("tcache.flush", NULL, NULL, &tc, sizeof tc);
    }
    snprintf(name, sizeof name, "arena.%u.reset", c->index);
    je_ctl(name, NULL, NULL, NULL, 0);
}

static void je_finish(struct ctx *c)
{
    char name[64];
    if (c->arena) {
        unsigned tc = (unsigned)((uintptr_t)c->arena - 1);
        je_ctl("tcache.destroy", NULL, NULL, &tc, sizeof tc);
        c->arena = NULL;
    }
    snprintf(name, sizeof name, "arena.%u.destroy", c->index);
    je_ctl(name, NULL, NULL, NULL, 0);
}

static void *je_alloc(struct ctx *c, size_t n)
{
    return mallocx(n, c->flags);
}
RUNNER(run_je_arena, je_alloc, NULL, je_reset)

/* The arena index of a block, from jemalloc itself. */
static unsigned je_lookup(void *p)
{
    unsigned index;
    size_t len = sizeof index;
    je_ctl("arenas.lookup", &index, &len, &p, sizeof p);
    return index;
}

static size_t je_small_allocated(unsigned index)
{
    uint64_t epoch = 1;
    size_t len = sizeof epoch;
    je_ctl("epoch", &epoch, &len, &epoch, sizeof epoch);
    char name[96];
    size_t allocated;
    len = sizeof allocated;
    snprintf(name, sizeof name, "stats.arenas.%u.small.allocated", index);
    je_ctl(name, &allocated, &len, NULL, 0);
    return allocated;
}

static void je_verify_one(begin_fn begin)
{
    struct ctx c;
    begin(&c);
    void *first = NULL;
    for (size_t i = 0; i < blocks; i++) {
        void *p = je_alloc(&c, size_table[i]);
        if (p == NULL)
            die("mallocx", ENOMEM);
        if (je_lookup(p) != c.index)
            die("mallocx(MALLOCX_ARENA): block in another arena", EINVAL);
        first = first ? first : p;
    }
    if (c.arena) { /* with a tcache the arena's count lags until a flush */
        unsigned tc = (unsigned)((uintptr_t)c.arena - 1);
        je_ctl("tcache.flush", NULL, NULL, &tc, sizeof tc);
    }
    size_t before = je_small_allocated(c.index);
    je_reset(&c);
    size_t after = je_small_allocated(c.index);
    if (before < blocks * 16 || after != 0) {
        fprintf(stderr, "arena_bench: jemalloc arena %u: %zu bytes before reset, %zu after\n", c.index,
                before, after);
        exit(2);
    }
    je_finish(&c);
}

static void je_verify(void)
{
    je_verify_one(je_begin);
}
static void je_verify_tcache(void)
{
    je_verify_one(je_begin_tcache);
}

static const struct variant variants[] = {
    {"jemalloc malloc/free", no_begin, no_finish, run_sys, NULL},
    {"jemalloc arena+reset", je_begin, je_finish, run_je_arena, je_verify},
    {"jemalloc arena+tcache+reset", je_begin_tcache, je_finish, run_je_arena, je_verify_tcache},
};
#endif

/* ---- mimalloc ---- */
#if defined(BENCH_MIMALLOC)
static void mi_begin(struct ctx *c)
{
    c->arena = mi_heap_new();
    if (c->arena == NULL)
        die("mi_heap_new", ENOMEM);
}
static void mi_finish(struct ctx *c)
{
    mi_heap_destroy(c->arena);
}
static void *mi_alloc(struct ctx *c, size_t n)
{
    return mi_heap_malloc(c->arena, n);
}
/* mimalloc has no reset: the request's heap is destroyed and a new one made. */
static void mi_renew(struct ctx *c)
{
    mi_heap_destroy(c->arena);
    mi_begin(c);
}
RUNNER(run_mi_heap, mi_alloc, NULL, mi_renew)

static void *mi_plain_alloc(struct ctx *c, size_t n)
{
    (void)c;
    return mi_malloc(n);
}
static void mi_plain_release(struct ctx *c, void *p)
{
    (void)c;
    mi_free(p);
}
RUNNER(run_mi_plain, mi_plain_alloc, mi_plain_release, NULL)

static void mi_verify(void)
{
    struct ctx c;
    mi_begin(&c);
    void **p = malloc(blocks * sizeof *p);
    for (size_t i = 0; i < blocks; i++) {
        p[i] = mi_alloc(&c, size_table[i]);
        if (p[i] == NULL || !mi_heap_check_owned(c.arena, p[i]))
            die("mi_heap_malloc: block not in the heap", EINVAL);
    }
    mi_renew(&c); /* the new heap owns none of the old blocks */
    for (size_t i = 0; i < blocks; i++)
        if (mi_heap_check_owned(c.arena, p[i]))
            die("mi_heap_destroy: block survived", EINVAL);
    free(p);
    mi_finish(&c);
}

static const struct variant variants[] = {
    {"mimalloc malloc/free", no_begin, no_finish, run_mi_plain, NULL},
    {"mimalloc heap new/destroy", mi_begin, mi_finish, run_mi_heap, mi_verify},
};
#endif

/* ---- the driver ---- */

struct job {
    const struct variant *v;
    size_t first;
    pthread_barrier_t *barrier;
    uint64_t sum;
    double cpu_ns; /* the thread's CPU time in the timed requests */
};

static void *thread_main(void *arg)
{
    struct job *j = arg;
    struct ctx c = {NULL, 0, 0};
    void **ptrs = malloc(blocks * sizeof *ptrs);
    j->v->begin(&c);
    /* One warm-up request, outside the timing. */
    j->sum = j->v->run(&c, ptrs, j->first, 1);
    pthread_barrier_wait(j->barrier);
    double t0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    j->sum += j->v->run(&c, ptrs, j->first, requests);
    j->cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID) - t0;
    j->v->finish(&c);
    free(ptrs);
    return NULL;
}

/* Wall time of one repetition with n threads, in ns; *cpu: the threads'
 * CPU time, summed. */
static double one_run(const struct variant *v, int nthreads, uint64_t *sum, double *cpu)
{
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, (unsigned)nthreads + 1);
    pthread_t t[8];
    struct job jobs[8];
    for (int i = 0; i < nthreads; i++) {
        jobs[i] = (struct job){v, (size_t)i * 7919, &barrier, 0, 0};
        if (pthread_create(&t[i], NULL, thread_main, &jobs[i]) != 0)
            die("pthread_create", errno);
    }
    pthread_barrier_wait(&barrier);
    double t0 = now_ns();
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    double ns = now_ns() - t0;
    pthread_barrier_destroy(&barrier);
    *cpu = 0;
    for (int i = 0; i < nthreads; i++) {
        *sum += jobs[i].sum;
        *cpu += jobs[i].cpu_ns;
    }
    return ns;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        requests = strtoul(argv[1], NULL, 10);
    if (argc > 2)
        blocks = strtoul(argv[2], NULL, 10);
    if (argc > 3)
        repetitions = strtoul(argv[3], NULL, 10);
    if (requests == 0 || blocks == 0 || repetitions == 0 || repetitions > 100) {
        fprintf(stderr, "usage: %s [requests [blocks [repetitions]]]\n", argv[0]);
        return 2;
    }
    make_sizes();
    size_t nvariants = sizeof variants / sizeof variants[0];
    for (size_t i = 0; i < nvariants; i++)
        if (variants[i].verify)
            variants[i].verify();
    printf("# variant threads cpu_ns_per_block wall_ns_per_block requests_per_s"
           "  (%zu requests of %zu blocks, median of %zu)\n",
           requests, blocks, repetitions);
    uint64_t sum = 0;
    for (int nthreads = 1; nthreads <= 2; nthreads++) {
        double ns[100][8], cpu[100][8];
        /* Repetitions interleave the variants, so that a slow moment of the
         * machine hits all of them alike. */
        for (size_t rep = 0; rep < repetitions; rep++)
            for (size_t i = 0; i < nvariants; i++)
                ns[rep][i] = one_run(&variants[i], nthreads, &sum, &cpu[rep][i]);
        for (size_t i = 0; i < nvariants; i++) {
            double col[100], ccol[100];
            for (size_t rep = 0; rep < repetitions; rep++) {
                col[rep] = ns[rep][i];
                ccol[rep] = cpu[rep][i];
            }
            qsort(col, repetitions, sizeof col[0], cmp_double);
            qsort(ccol, repetitions, sizeof ccol[0], cmp_double);
            double med = col[repetitions / 2], cmed = ccol[repetitions / 2];
            double total_blocks = (double)requests * (double)blocks * nthreads;
            printf("%s\t%d\t%.2f\t%.2f\t%.0f\n", variants[i].name, nthreads, cmed / total_blocks,
                   med / total_blocks, (double)requests * nthreads / (med / 1e9));
        }
    }
    /* Printed so that the reads cannot be optimised away. */
    printf("# checksum %llu\n", (unsigned long long)sum);
    return 0;
}
