/* Multi-threaded stress of the allocator, deterministic in what each thread
 * does (a stream of the common generator, rng.h, each) and checking every
 * byte it wrote:
 *
 *  handoff  threads allocate blocks of 1 B to 1 MiB, fill them with a pattern
 *           derived from the block's address and id, and pass them through
 *           mutex-protected queues to other threads, which check the
 *           pattern, sometimes realloc, and free them;
 *  churn    many short-lived threads allocate, free some of their blocks and
 *           leave the rest in a shared pool for later threads to free; the
 *           mapped memory must not keep growing from round to round;
 *  fork     while threads allocate and free, the main thread forks again and
 *           again; each child allocates, frees (including blocks inherited
 *           from the parent) and exits; a child that does not exit within a
 *           timeout is a deadlock and fails the test.
 *  notices  the main thread fills pages, another frees every block, twenty
 *           times: the full pages come back through notices, so nothing
 *           more is mapped after the first round;
 *  fork_remote  the main thread allocates 64-byte blocks and hands them to
 *           three threads that free them, so that the pages it fills get
 *           their first remote free (and send it a notice) all the time; it
 *           forks 20,000 times meanwhile, and each child ends with
 *           pthread_exit, whose thread-exit handler abandons the heap
 *           whatever state the fork caught its pages in. A child still
 *           running after a few seconds has hung.
 *
 *  large    threads allocate blocks of 512 KiB to 2.5 MiB, move them with
 *           realloc (mremap), pass half of them to other threads, check the
 *           pattern and free them;
 *
 * Usage: test_stress [handoff|large|churn|fork|fork_remote|notices]... (all when none is
 * named). Each part is bounded to a few seconds on two cores, fork_remote to
 * about twenty.
 */
#include "asan_fork.h"
#include "check.h"
#include "mapalloc.h"
#include "rng.h"
#include "sys.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

/* Mixed sizes from 1 B to 1 MiB, most of them small, as programs do. */
static size_t random_size(uint64_t *s)
{
    uint64_t r = wl_rand(s);
    unsigned pick = (unsigned)(r % 100);
    r >>= 8;
    if (pick < 60)
        return 1 + (size_t)(r % 256);                 /* small */
    if (pick < 85)
        return 257 + (size_t)(r % (16 * KiB - 257));  /* up to 16 KiB */
    if (pick < 97)
        return 16 * KiB + (size_t)(r % (240 * KiB)); /* medium, to 256 KiB */
    return 256 * KiB + (size_t)(r % (768 * KiB + 1)); /* large, to 1 MiB */
}

/* A block and what was written in it. */
struct block {
    unsigned char *p;
    size_t n;
    uint64_t id;
};

/* The pattern of a block depends on its address and its id: a block given
 * to two owners, or written by someone else, or moved without its contents,
 * fails the check. Words of 8 bytes where the block allows (fast for the
 * 1 MiB ones), bytes at the tail. */
static uint64_t word_at(uint64_t seed, size_t i)
{
    return seed ^ (i * 0x9E3779B97F4A7C15ULL);
}

static uint64_t seed_of(const struct block *b)
{
    return b->id * 0xD6E8FEB86659FD93ULL ^ (uint64_t)(uintptr_t)b->p;
}

static void fill_words(unsigned char *p, size_t n, uint64_t seed)
{
    size_t words = n / 8;
    for (size_t i = 0; i < words; i++) {
        uint64_t w = word_at(seed, i);
        memcpy(p + 8 * i, &w, 8);
    }
    for (size_t i = words * 8; i < n; i++)
        p[i] = (unsigned char)(word_at(seed, i) >> 56);
}

/* The byte offset of the first difference in [0, upto), or SIZE_MAX. */
static size_t check_words(const unsigned char *p, size_t n, size_t upto, uint64_t seed)
{
    size_t words = upto / 8;
    for (size_t i = 0; i < words; i++) {
        uint64_t w;
        memcpy(&w, p + 8 * i, 8);
        if (w != word_at(seed, i))
            return 8 * i;
    }
    for (size_t i = words * 8; i < upto; i++) {
        /* A tail byte was written as part of a word when n > upto. */
        unsigned char want;
        if (i < (n / 8) * 8) {
            uint64_t w = word_at(seed, i / 8);
            memcpy(&want, (const unsigned char *)&w + i % 8, 1);
        } else {
            want = (unsigned char)(word_at(seed, i) >> 56);
        }
        if (p[i] != want)
            return i;
    }
    return SIZE_MAX;
}

static void block_fill(struct block *b)
{
    fill_words(b->p, b->n, seed_of(b));
}

static void block_check(const struct block *b, const char *where)
{
    size_t bad = check_words(b->p, b->n, b->n, seed_of(b));
    CHECKF(bad == SIZE_MAX, "%s: block id %llu at %p of %zu bytes differs at offset %zu", where,
           (unsigned long long)b->id, (void *)b->p, b->n, bad);
}

static void block_new(struct block *b, size_t n, uint64_t id)
{
    b->p = mapalloc_malloc(n);
    CHECKF(b->p != NULL, "malloc(%zu) failed", n);
    CHECKF(((uintptr_t)b->p & 15) == 0, "malloc(%zu) = %p", n, (void *)b->p);
    CHECK(mapalloc_usable_size(b->p) >= n);
    b->n = n;
    b->id = id;
    block_fill(b);
}

static void block_free(struct block *b, const char *where)
{
    block_check(b, where);
    mapalloc_free(b->p);
    b->p = NULL;
}

/* Realloc keeps the contents (under the old address's pattern); then the
 * block is refilled for its new address and size. */
static void block_realloc(struct block *b, size_t n)
{
    uint64_t old_seed = seed_of(b);
    size_t keep = n < b->n ? n : b->n;
    unsigned char *q = mapalloc_realloc(b->p, n);
    CHECKF(q != NULL, "realloc(%zu -> %zu) failed", b->n, n);
    size_t bad = check_words(q, b->n, keep, old_seed);
    CHECKF(bad == SIZE_MAX, "realloc(%zu -> %zu) of block id %llu lost byte %zu", b->n, n,
           (unsigned long long)b->id, bad);
    b->p = q;
    b->n = n;
    block_fill(b);
}

/* ---- queues: a bounded ring under a mutex ---- */

#define QCAP 256
struct queue {
    pthread_mutex_t mu;
    struct block items[QCAP];
    unsigned head, count;
};

static void queue_init(struct queue *q)
{
    CHECK(pthread_mutex_init(&q->mu, NULL) == 0);
    q->head = q->count = 0;
}

static bool queue_push(struct queue *q, const struct block *b)
{
    pthread_mutex_lock(&q->mu);
    bool ok = q->count < QCAP;
    if (ok) {
        q->items[(q->head + q->count) % QCAP] = *b;
        q->count++;
    }
    pthread_mutex_unlock(&q->mu);
    return ok;
}

static bool queue_pop(struct queue *q, struct block *out)
{
    pthread_mutex_lock(&q->mu);
    bool ok = q->count > 0;
    if (ok) {
        *out = q->items[q->head];
        q->head = (q->head + 1) % QCAP;
        q->count--;
    }
    pthread_mutex_unlock(&q->mu);
    return ok;
}

/* ---- handoff ---- */

#define HANDOFF_THREADS 4
#define HANDOFF_ITERS 40000
#define LOCAL_KEEP 128

static struct queue inbox[HANDOFF_THREADS];
static atomic_long in_flight;     /* blocks sitting in queues */
static atomic_int producers_left; /* threads still allocating */

struct handoff_arg {
    unsigned index;
    uint64_t remote_freed, local_freed, reallocs;
};

/* Checks, sometimes reallocs, and frees a block that another thread made. */
static void handle_remote(struct handoff_arg *a, struct block *b, uint64_t *rs)
{
    block_check(b, "handoff (received)");
    if (wl_rand(rs) % 8 == 0) {
        block_realloc(b, random_size(rs));
        a->reallocs++;
    }
    block_free(b, "handoff (remote free)");
    a->remote_freed++;
}

static void *handoff_thread(void *arg)
{
    struct handoff_arg *a = arg;
    uint64_t rs = wl_seed(0x1234567ULL, a->index);
    struct block keep[LOCAL_KEEP];
    memset(keep, 0, sizeof keep);
    uint64_t next_id = (uint64_t)a->index << 48;
    struct block b;

    for (int it = 0; it < HANDOFF_ITERS; it++) {
        block_new(&b, random_size(&rs), next_id++);
        uint64_t r = wl_rand(&rs);
        if (r % 3 != 0) {
            /* To another thread. */
            unsigned to = (a->index + 1 + (unsigned)(r >> 8) % (HANDOFF_THREADS - 1)) % HANDOFF_THREADS;
            atomic_fetch_add(&in_flight, 1);
            if (!queue_push(&inbox[to], &b)) {
                atomic_fetch_sub(&in_flight, 1);
                block_free(&b, "handoff (queue full)");
                a->local_freed++;
            }
        } else {
            /* Kept a while, freed by this thread later. */
            struct block *slot = &keep[(r >> 16) % LOCAL_KEEP];
            if (slot->p != NULL) {
                block_free(slot, "handoff (local free)");
                a->local_freed++;
            }
            *slot = b;
        }
        /* Take what others sent. */
        for (int k = 0; k < 2 && queue_pop(&inbox[a->index], &b); k++) {
            atomic_fetch_sub(&in_flight, 1);
            handle_remote(a, &b, &rs);
        }
    }
    for (int i = 0; i < LOCAL_KEEP; i++)
        if (keep[i].p != NULL) {
            block_free(&keep[i], "handoff (local, at end)");
            a->local_freed++;
        }
    atomic_fetch_sub(&producers_left, 1);
    /* Drain until nobody produces and nothing is in flight. */
    double drain_start = 0.0;
    for (;;) {
        if (queue_pop(&inbox[a->index], &b)) {
            atomic_fetch_sub(&in_flight, 1);
            handle_remote(a, &b, &rs);
            continue;
        }
        if (atomic_load(&producers_left) == 0 && atomic_load(&in_flight) == 0)
            break;
        if (atomic_load(&producers_left) == 0) {
            if (drain_start == 0.0)
                drain_start = wl_now();
            CHECKF(wl_now() - drain_start < 20.0, "%ld blocks still in flight after 20 s",
                   atomic_load(&in_flight));
        }
        sched_yield();
    }
    return NULL;
}

static void test_handoff(void)
{
    struct mapalloc_stats s0;
    mapalloc_stats_get(&s0);
    atomic_store(&in_flight, 0);
    atomic_store(&producers_left, HANDOFF_THREADS);
    pthread_t t[HANDOFF_THREADS];
    struct handoff_arg args[HANDOFF_THREADS];
    /* Every queue is ready before any thread may push into it. */
    for (unsigned i = 0; i < HANDOFF_THREADS; i++)
        queue_init(&inbox[i]);
    for (unsigned i = 0; i < HANDOFF_THREADS; i++) {
        args[i] = (struct handoff_arg){.index = i};
        CHECK(pthread_create(&t[i], NULL, handoff_thread, &args[i]) == 0);
    }
    uint64_t remote = 0, local = 0, reallocs = 0;
    for (unsigned i = 0; i < HANDOFF_THREADS; i++) {
        CHECK(pthread_join(t[i], NULL) == 0);
        remote += args[i].remote_freed;
        local += args[i].local_freed;
        reallocs += args[i].reallocs;
    }
    CHECK(remote + local == (uint64_t)HANDOFF_THREADS * HANDOFF_ITERS);
    CHECK(remote > 0);
    for (unsigned i = 0; i < HANDOFF_THREADS; i++)
        CHECK(inbox[i].count == 0);
    /* Every block is back: what stays mapped is what the threads' empty
     * pages and the large cache may keep, not what they used. The regions
     * their exits emptied go within the decay (the purger's, the README's
     * bound: decay_ms and half of it), not at once; a region that is never
     * given back stays past it. */
    struct mapalloc_stats s1;
    double t0 = wl_now(), decay = (double)mapalloc_option_get("decay_ms") / 1000;
    for (;;) {
        mapalloc_stats_get(&s1);
        if (s1.mapped <= s0.mapped + 64 * MiB || wl_now() - t0 > 1.5 * decay + 0.5)
            break;
        usleep(5000);
    }
    printf("handoff: %llu blocks freed by another thread, %llu by their own, %llu reallocs; "
           "mapped %zu MiB at the start, %zu MiB at the end, %.0f ms after the last exit (peak %zu MiB)\n",
           (unsigned long long)remote, (unsigned long long)local, (unsigned long long)reallocs,
           s0.mapped / MiB, s1.mapped / MiB, (wl_now() - t0) * 1000, s1.peak_mapped / MiB);
    CHECKF(s1.live_blocks == s0.live_blocks, "live blocks %zu at the start, %zu at the end",
           s0.live_blocks, s1.live_blocks);
    CHECKF(s1.mapped <= s0.mapped + 64 * MiB, "mapped %zu MiB at the start, %zu MiB at the end",
           s0.mapped / MiB, s1.mapped / MiB);
}

/* ---- notices: full pages come back when another thread frees into them ---- */

#define NOTICE_ROUNDS 20
#define NOTICE_BLOCKS 20000 /* 64-byte blocks: about twenty pages */

static void *notice_blocks[NOTICE_BLOCKS];
static atomic_int notice_round_ready, notice_round_done;

/* Frees each round's blocks, all of them remote frees into full pages. */
static void *notice_round_freer(void *arg)
{
    (void)arg;
    for (int round = 1; round <= NOTICE_ROUNDS; round++) {
        while (atomic_load(&notice_round_ready) < round)
            sched_yield();
        for (int i = 0; i < NOTICE_BLOCKS; i++)
            mapalloc_free(notice_blocks[i]);
        atomic_store(&notice_round_done, round);
    }
    return NULL;
}

/* The main thread fills its pages, another thread frees every block, and
 * the main thread fills them again, twenty times: the pages come back
 * through the notices of the first remote free into each, so the same
 * pages serve every round and nothing more is mapped. Without notices the
 * full pages would stay out of their queue and each round take new ones. */
static void test_notices(void)
{
    atomic_store(&notice_round_ready, 0);
    atomic_store(&notice_round_done, 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, notice_round_freer, NULL) == 0);
    size_t mapped_first = 0;
    struct mapalloc_stats s;
    for (int round = 1; round <= NOTICE_ROUNDS; round++) {
        for (int i = 0; i < NOTICE_BLOCKS; i++) {
            notice_blocks[i] = mapalloc_malloc(64);
            CHECK(notice_blocks[i] != NULL);
            memset(notice_blocks[i], round, 64);
        }
        mapalloc_stats_get(&s);
        if (round == 1)
            mapped_first = s.mapped;
        atomic_store(&notice_round_ready, round);
        while (atomic_load(&notice_round_done) < round)
            sched_yield();
    }
    CHECK(pthread_join(t, NULL) == 0);
    printf("notices: %d rounds of %d blocks freed by another thread; mapped %zu KiB after the "
           "first, %zu KiB after the last\n",
           NOTICE_ROUNDS, NOTICE_BLOCKS, mapped_first / KiB, s.mapped / KiB);
    CHECKF(s.mapped <= mapped_first + 4 * MiB,
           "mapped %zu KiB after the first round, %zu KiB after the last: full pages did not come "
           "back", mapped_first / KiB, s.mapped / KiB);
}

/* ---- large: mappings of their own, moved by mremap, from many threads ---- */

#define LARGE_THREADS 4
#define LARGE_ITERS 6000
/* Most blocks carry only their first and last words (tight loops of
 * malloc, realloc, free find races); one in LARGE_FULL_EVERY gets a word on
 * every page (finds pages moved wrong). */
#define LARGE_FULL_EVERY 16
#define LARGE_LIGHT ((uint64_t)1 << 31) /* in the block id */

static size_t large_stride(const struct block *b)
{
    return (b->id & LARGE_LIGHT) ? SIZE_MAX / 2 : 4096;
}

/* A large block gets its pattern on one word per 4 KiB page and on its last
 * word: enough to see a page that moved wrong, cheap enough for megabytes. */
static void large_fill(const struct block *b)
{
    uint64_t seed = seed_of(b);
    for (size_t off = 0; off + 8 <= b->n; off += large_stride(b)) {
        uint64_t w = word_at(seed, off);
        memcpy(b->p + off, &w, 8);
    }
    uint64_t w = word_at(seed, b->n);
    memcpy(b->p + b->n - 8, &w, 8);
}

/* Checks the words of [0, upto) of a block filled with the pattern of seed
 * and size n; returns the bad offset or SIZE_MAX. */
static size_t large_bad(const unsigned char *p, size_t n, size_t upto, uint64_t seed,
                        size_t stride)
{
    for (size_t off = 0; off + 8 <= upto && off + 8 <= n - 8; off += stride) {
        uint64_t w;
        memcpy(&w, p + off, 8);
        if (w != word_at(seed, off))
            return off;
    }
    if (n <= upto) {
        uint64_t w;
        memcpy(&w, p + n - 8, 8);
        if (w != word_at(seed, n))
            return n - 8;
    }
    return SIZE_MAX;
}

static size_t large_size(uint64_t *rs)
{
    return MiB / 2 + 1 + (size_t)(wl_rand(rs) % (2 * MiB));
}

static struct queue large_inbox[LARGE_THREADS];
static atomic_int large_left;

static void large_check_free(struct block *b, const char *where)
{
    size_t bad = large_bad(b->p, b->n, b->n, seed_of(b), large_stride(b));
    CHECKF(bad == SIZE_MAX, "%s: large block id %llu at %p of %zu bytes differs at %zu", where,
           (unsigned long long)b->id, (void *)b->p, b->n, bad);
    mapalloc_free(b->p);
    b->p = NULL;
}

static void *large_thread(void *arg)
{
    unsigned index = (unsigned)(uintptr_t)arg;
    uint64_t rs = wl_seed(0xB16B00B5ULL, index);
    struct block b;
    for (int it = 0; it < LARGE_ITERS; it++) {
        b.n = large_size(&rs);
        b.p = mapalloc_malloc(b.n);
        CHECKF(b.p != NULL, "malloc(%zu)", b.n);
        b.id = ((uint64_t)index << 32) | (uint64_t)it | (it % LARGE_FULL_EVERY ? LARGE_LIGHT : 0);
        large_fill(&b);
        /* Grow or shrink it, a move most of the time. */
        size_t n = (wl_rand(&rs) % 2) ? b.n * 2 + 4097 : b.n / 3 + 1;
        if (n <= MiB / 2)
            n = MiB / 2 + 4096;
        uint64_t old_seed = seed_of(&b);
        unsigned char *q = mapalloc_realloc(b.p, n);
        CHECKF(q != NULL, "realloc(%zu -> %zu)", b.n, n);
        size_t keep = n < b.n ? n : b.n;
        size_t bad = large_bad(q, b.n, keep, old_seed, large_stride(&b));
        CHECKF(bad == SIZE_MAX, "realloc(%zu -> %zu) of a large block lost the word at %zu", b.n,
               n, bad);
        b.p = q;
        b.n = n;
        large_fill(&b);
        if (wl_rand(&rs) % 2) {
            unsigned to = (index + 1 + (unsigned)(wl_rand(&rs) % (LARGE_THREADS - 1))) % LARGE_THREADS;
            if (queue_push(&large_inbox[to], &b))
                b.p = NULL;
        }
        if (b.p != NULL)
            large_check_free(&b, "large (own)");
        while (queue_pop(&large_inbox[index], &b))
            large_check_free(&b, "large (from another thread)");
    }
    atomic_fetch_sub(&large_left, 1);
    while (atomic_load(&large_left) > 0) {
        while (queue_pop(&large_inbox[index], &b))
            large_check_free(&b, "large (from another thread)");
        sched_yield();
    }
    while (queue_pop(&large_inbox[index], &b))
        large_check_free(&b, "large (from another thread)");
    return NULL;
}

static void test_large(void)
{
    for (unsigned i = 0; i < LARGE_THREADS; i++)
        queue_init(&large_inbox[i]);
    atomic_store(&large_left, LARGE_THREADS);
    pthread_t t[LARGE_THREADS];
    for (uintptr_t i = 0; i < LARGE_THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, large_thread, (void *)i) == 0);
    for (unsigned i = 0; i < LARGE_THREADS; i++)
        CHECK(pthread_join(t[i], NULL) == 0);
    struct mapalloc_stats s;
    mapalloc_stats_get(&s);
    CHECKF(s.large_blocks == 0, "%zu large blocks still live", s.large_blocks);
    printf("large: %d blocks allocated, moved by realloc and freed across %d threads; "
           "mremap calls %llu\n",
           LARGE_THREADS * LARGE_ITERS, LARGE_THREADS, (unsigned long long)s.mremap_calls);
}

/* ---- churn ---- */

#define CHURN_ROUNDS 40
#define CHURN_THREADS 8
#define CHURN_BLOCKS 300
#define POOL_CAP (CHURN_ROUNDS * CHURN_THREADS * CHURN_BLOCKS)

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static struct block *pool;
static size_t pool_count;

static atomic_int churn_running; /* threads that have not finished with the pool */

static void *churn_thread(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg;
    uint64_t rs = wl_seed(1, seed);
    struct block mine[CHURN_BLOCKS];
    for (int i = 0; i < CHURN_BLOCKS; i++) {
        size_t n = random_size(&rs);
        if (n > 64 * KiB)
            n = 1 + n % (64 * KiB); /* keep the rounds quick */
        block_new(&mine[i], n, (seed << 32) | (uint64_t)i);
    }
    /* Free about half, leave the rest to whoever comes next. */
    for (int i = 0; i < CHURN_BLOCKS; i++) {
        if (wl_rand(&rs) % 2) {
            block_free(&mine[i], "churn (own)");
        } else {
            pthread_mutex_lock(&pool_mu);
            CHECK(pool_count < POOL_CAP);
            pool[pool_count++] = mine[i];
            pthread_mutex_unlock(&pool_mu);
        }
    }
    /* Free some of what earlier threads left. */
    for (int i = 0; i < CHURN_BLOCKS / 2; i++) {
        struct block b;
        pthread_mutex_lock(&pool_mu);
        bool got = pool_count > 0;
        if (got) {
            size_t k = (size_t)(wl_rand(&rs) % pool_count);
            b = pool[k];
            pool[k] = pool[--pool_count];
        }
        pthread_mutex_unlock(&pool_mu);
        if (!got)
            break;
        block_free(&b, "churn (left by another thread)");
    }
    atomic_fetch_sub(&churn_running, 1);
    return NULL;
}

static void test_churn(void)
{
    pool = mapalloc_malloc(POOL_CAP * sizeof *pool);
    CHECK(pool != NULL);
    pool_count = 0;
    size_t mapped_early = 0;
    for (unsigned round = 0; round < CHURN_ROUNDS; round++) {
        pthread_t t[CHURN_THREADS];
        atomic_fetch_add(&churn_running, CHURN_THREADS);
        for (unsigned i = 0; i < CHURN_THREADS; i++)
            CHECK(pthread_create(&t[i], NULL, churn_thread,
                                 (void *)(uintptr_t)(round * CHURN_THREADS + i + 1)) == 0);
        /* Odd rounds detach half of the threads: they exit on their own,
         * while the next round already runs. */
        for (unsigned i = 0; i < CHURN_THREADS; i++) {
            if (round % 2 == 1 && i % 2 == 1)
                CHECK(pthread_detach(t[i]) == 0);
            else
                CHECK(pthread_join(t[i], NULL) == 0);
        }
        if (round == 5) {
            struct mapalloc_stats s;
            mapalloc_stats_get(&s);
            mapped_early = s.mapped;
        }
    }
    /* Wait for the detached ones to be done with the pool. */
    double t0 = wl_now();
    while (atomic_load(&churn_running) != 0) {
        CHECKF(wl_now() - t0 < 30.0, "%d detached threads never finished", atomic_load(&churn_running));
        sched_yield();
    }
    struct mapalloc_stats s1;
    mapalloc_stats_get(&s1);
    /* The pool is still about as full as after a few rounds: what the exited
     * threads left must be reused, not mapped anew each round. */
    size_t left = pool_count;
    for (size_t i = 0; i < pool_count; i++)
        block_free(&pool[i], "churn (drained at end)");
    pool_count = 0;
    mapalloc_free(pool);
    printf("churn: %d threads, %zu blocks left in the pool at the end; mapped %zu MiB after "
           "round 5, %zu MiB after round %d; regions %llu, abandoned pages %llu\n",
           CHURN_ROUNDS * CHURN_THREADS, left, mapped_early / MiB, s1.mapped / MiB, CHURN_ROUNDS,
           (unsigned long long)s1.regions, (unsigned long long)s1.abandoned_pages);
    /* Live data grows a little from round to round (the pool), mapped memory
     * must follow it, not the number of threads that came and went. */
    size_t pool_bytes_bound = left * 64 * KiB;
    CHECKF(s1.mapped <= 2 * mapped_early + pool_bytes_bound / 4 + 64 * MiB,
           "mapped grew from %zu MiB to %zu MiB over the rounds (abandoned memory not reused?)",
           mapped_early / MiB, s1.mapped / MiB);
}

/* ---- fork under load ---- */

#define FORKS 60
#define FORK_CHILD_TIMEOUT 10.0 /* seconds: a child still running then is deadlocked */
#define FORK_LOAD_THREADS 2

static atomic_bool load_stop;
static atomic_int load_started;

static void *load_thread(void *arg)
{
    uint64_t rs = wl_seed(7, (uint64_t)(uintptr_t)arg);
    struct block ring[64];
    memset(ring, 0, sizeof ring);
    uint64_t id = 0;
    atomic_fetch_add(&load_started, 1);
    while (!atomic_load_explicit(&load_stop, memory_order_relaxed)) {
        struct block *slot = &ring[wl_rand(&rs) % 64];
        if (slot->p != NULL)
            block_free(slot, "fork load thread");
        size_t n = random_size(&rs);
        if (wl_rand(&rs) % 4 == 0)
            n = 1 + n % 64; /* plenty of tiny ones */
        block_new(slot, n, id++);
        if (wl_rand(&rs) % 16 == 0)
            block_realloc(slot, random_size(&rs));
    }
    for (int i = 0; i < 64; i++)
        if (ring[i].p != NULL)
            block_free(&ring[i], "fork load thread (end)");
    return NULL;
}

static void *child_thread(void *arg)
{
    struct block *b = arg;
    block_realloc(b, b->n * 2 + 1);
    return NULL;
}

/* The child: allocates, frees, frees what it inherited, starts a thread, and
 * exits without running atexit handlers. Any failed check exits with 1. */
static void child_work(struct block *inherited, int n_inherited, unsigned k)
{
    uint64_t rs = 0xC0FFEEULL + k;
    struct block b[200];
    for (int i = 0; i < 200; i++)
        block_new(&b[i], random_size(&rs), (uint64_t)i);
    for (int i = 0; i < n_inherited; i++)
        block_free(&inherited[i], "fork child (inherited)");
    for (int i = 0; i < 200; i += 2)
        block_free(&b[i], "fork child");
    pthread_t t;
    if (pthread_create(&t, NULL, child_thread, &b[1]) == 0)
        pthread_join(t, NULL);
    for (int i = 1; i < 200; i += 2)
        block_free(&b[i], "fork child");
    _exit(0);
}

static void test_fork(void)
{
    asan_fork_purger_off();
    atomic_store(&load_stop, false);
    atomic_store(&load_started, 0);
    pthread_t t[FORK_LOAD_THREADS];
    for (uintptr_t i = 0; i < FORK_LOAD_THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, load_thread, (void *)(i + 1)) == 0);
    /* The first fork waits until the load threads run our code: a thread that
     * is still starting calls the process's malloc, and under gcc 12's ASan,
     * whose allocator lock is not taken across fork, a child could inherit
     * that lock held and hang in pthread_create for a reason not ours. */
    while (atomic_load(&load_started) < FORK_LOAD_THREADS)
        sched_yield();

    double start = wl_now();
    unsigned forks = 0;
    for (unsigned k = 0; k < FORKS && wl_now() - start < 6.0; k++) {
        /* Blocks that both the parent and the child will free. */
        struct block inh[8];
        uint64_t rs = 99 + k;
        for (int i = 0; i < 8; i++)
            block_new(&inh[i], random_size(&rs), 1000 + (uint64_t)i);
        fflush(stdout);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0)
            child_work(inh, 8, k);
        forks++;
        /* Wait, polling, so that a deadlocked child fails the test instead of
         * hanging it. */
        double t0 = wl_now();
        int status = 0;
        for (;;) {
            pid_t w = waitpid(pid, &status, WNOHANG);
            CHECK(w >= 0);
            if (w == pid)
                break;
            if (wl_now() - t0 > FORK_CHILD_TIMEOUT) {
                kill(pid, SIGKILL);
                waitpid(pid, &status, 0);
                CHECKF(false, "fork %u: the child did not exit within %.0f s (deadlock)", k,
                       FORK_CHILD_TIMEOUT);
            }
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
        CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0,
               "fork %u: child ended with status %#x (signal %d)", k, status,
               WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        for (int i = 0; i < 8; i++)
            block_free(&inh[i], "fork parent (inherited)");
    }
    atomic_store(&load_stop, true);
    for (int i = 0; i < FORK_LOAD_THREADS; i++)
        CHECK(pthread_join(t[i], NULL) == 0);
    CHECK(forks >= 10);
    printf("fork: %u forks under load, every child allocated, freed and exited\n", forks);
}

/* ---- fork while remote frees send notices ---- */

#define NOTICE_FREERS 3
#define NOTICE_FORKS 20000
#define NOTICE_BATCH 1024       /* a page of 64-byte blocks */
/* Seconds: a loaded machine may need a few minutes for the 20,000 forks; a
 * sanitizer build forks far more slowly, and stops at its own cap. */
#define NOTICE_TIME_CAP (TEST_ASAN ? 60.0 : 240.0)
#define NOTICE_CHILD_ALARM 10   /* seconds: a child still alive then hangs */

/* Each freer takes whole batches from its mailbox, so that it frees in a
 * tight loop, as a consumer thread does. */
struct notice_mailbox {
    pthread_mutex_t mu;
    struct block *batch; /* NULL: empty */
};
static struct notice_mailbox notice_box[NOTICE_FREERS];
static struct block notice_batches[NOTICE_FREERS][3][NOTICE_BATCH];
static atomic_bool notice_stop;

static struct block *notice_take(struct notice_mailbox *m)
{
    pthread_mutex_lock(&m->mu);
    struct block *b = m->batch;
    m->batch = NULL;
    pthread_mutex_unlock(&m->mu);
    return b;
}

static bool notice_give(struct notice_mailbox *m, struct block *batch)
{
    pthread_mutex_lock(&m->mu);
    bool ok = m->batch == NULL;
    if (ok)
        m->batch = batch;
    pthread_mutex_unlock(&m->mu);
    return ok;
}

static void *notice_freer(void *arg)
{
    struct notice_mailbox *m = arg;
    for (;;) {
        struct block *batch = notice_take(m);
        if (batch != NULL) {
            for (int j = 0; j < NOTICE_BATCH; j++)
                block_free(&batch[j], "fork_remote freer");
            continue;
        }
        if (atomic_load_explicit(&notice_stop, memory_order_relaxed))
            return NULL;
        sched_yield();
    }
}

/* The child: a little allocation of its own, then the end of its only
 * thread; the process exits when that thread's exit handlers return. */
static void notice_child(void)
{
    alarm(NOTICE_CHILD_ALARM);
    for (int i = 0; i < 16; i++)
        mapalloc_free(mapalloc_malloc(64));
    pthread_exit(NULL);
}

static void test_fork_remote(void)
{
    asan_fork_purger_off();
    atomic_store(&notice_stop, false);
    pthread_t t[NOTICE_FREERS];
    for (int i = 0; i < NOTICE_FREERS; i++) {
        CHECK(pthread_mutex_init(&notice_box[i].mu, NULL) == 0);
        notice_box[i].batch = NULL;
        CHECK(pthread_create(&t[i], NULL, notice_freer, &notice_box[i]) == 0);
    }
    double start = wl_now();
    unsigned forks = 0, round = 0;
    uint64_t id = 0;
    while (forks < NOTICE_FORKS && wl_now() - start < NOTICE_TIME_CAP) {
        /* Three batches per freer, used in turn: one being freed, one in
         * the mailbox, one being filled. A batch is filled again only once
         * the freer has taken the next one, so it has finished with it. */
        for (int i = 0; i < NOTICE_FREERS; i++) {
            struct block *batch = notice_batches[i][round % 3];
            for (int j = 0; j < NOTICE_BATCH; j++)
                block_new(&batch[j], 64, id++);
            while (!notice_give(&notice_box[i], batch))
                sched_yield();
        }
        round++;
        fflush(stdout);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0)
            notice_child();
        forks++;
        int status;
        CHECK(waitpid(pid, &status, 0) == pid);
        CHECKF(!(WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM),
               "fork %u: the child did not exit within %d s (it hangs)", forks, NOTICE_CHILD_ALARM);
        CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0,
               "fork %u: child ended with status %#x (signal %d)", forks, status,
               WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    }
    atomic_store(&notice_stop, true);
    for (int i = 0; i < NOTICE_FREERS; i++)
        CHECK(pthread_join(t[i], NULL) == 0);
    CHECKF(forks >= (TEST_ASAN ? 1000u : NOTICE_FORKS), "only %u forks in %.0f s", forks,
           NOTICE_TIME_CAP);
    printf("fork_remote: %u forks during remote frees, every child exited (%llu blocks)\n", forks,
           (unsigned long long)id);
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        void (*run)(void);
    } parts[] = {
        {"handoff", test_handoff},
        {"large", test_large},
        {"churn", test_churn},
        {"fork", test_fork},
        {"fork_remote", test_fork_remote},
        {"notices", test_notices},
    };
    size_t nparts = sizeof parts / sizeof parts[0];
    for (int a = 1; a < argc; a++) {
        size_t k = 0;
        while (k < nparts && strcmp(parts[k].name, argv[a]) != 0)
            k++;
        CHECKF(k < nparts, "no part named %s", argv[a]);
    }
    for (size_t k = 0; k < nparts; k++) {
        bool run = argc == 1;
        for (int a = 1; a < argc; a++)
            run = run || strcmp(parts[k].name, argv[a]) == 0;
        if (!run)
            continue;
        double t0 = wl_now();
        parts[k].run();
        printf("%s: %.2f s\n", parts[k].name, wl_now() - t0);
    }
    return 0;
}
