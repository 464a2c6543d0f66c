/* Memory goes back: a program that allocates 1 GiB in small and medium blocks
 * (every size up to the large threshold), touches it all and frees it all
 * ends with its resident memory within a few MiB of where it started; and
 * mapalloc_trim(0) gives back at once what is left, also for the blocks of a
 * thread that has exited; and the blocks of an exited thread go back
 * without a trim when a thread that never allocated frees them.
 *
 * Resident memory is read from /proc/self/statm. Not run in parallel with
 * other tests (its figure is its own, but it needs the memory). Skipped under
 * AddressSanitizer, whose shadow memory moves the figures.
 */
#include "check.h"
#include "mapalloc.h"
#include "size_class.h" /* MA_LARGE_THRESHOLD */

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define GiB ((size_t)1 << 30)
#define LARGE_THRESHOLD MA_LARGE_THRESHOLD
#define SLACK (8 * MiB)             /* "within a few MiB" */

static size_t page;
static int failures; /* soft failures, reported as they happen */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Resident bytes of the process (stdio here is glibc's, not mapalloc). */
static size_t resident(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    CHECK(f != NULL);
    unsigned long size, res;
    CHECK(fscanf(f, "%lu %lu", &size, &res) == 2);
    fclose(f);
    return (size_t)res * page;
}

static uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

struct blocks {
    void **p;
    size_t count, cap, bytes;
};

/* The pointer table lives in a mapping of its own, so that it is not in the
 * allocator's figures and leaves no trace once unmapped. */
static void blocks_init(struct blocks *b, size_t cap)
{
    b->p = mmap(NULL, cap * sizeof(void *), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                -1, 0);
    CHECK(b->p != MAP_FAILED);
    b->count = 0;
    b->cap = cap;
    b->bytes = 0;
}

static void blocks_done(struct blocks *b)
{
    munmap(b->p, b->cap * sizeof(void *));
    b->p = NULL;
}

/* Half of the bytes in small blocks (1 B to 1 KiB), half in medium ones (up
 * to the large threshold), interleaved, every page written. */
static void allocate(struct blocks *b, size_t total, uint64_t seed)
{
    uint64_t rs = seed;
    size_t small_bytes = 0, medium_bytes = 0;
    while (small_bytes + medium_bytes < total) {
        size_t n;
        if (small_bytes <= medium_bytes) {
            n = 1 + (size_t)(rnd(&rs) % KiB);
            small_bytes += n;
        } else {
            n = KiB + 1 + (size_t)(rnd(&rs) % (LARGE_THRESHOLD - KiB));
            medium_bytes += n;
        }
        CHECK(b->count < b->cap);
        void *p = mapalloc_malloc(n);
        CHECKF(p != NULL, "malloc(%zu) after %zu MiB", n, b->bytes / MiB);
        memset(p, (int)(b->count & 0xff) | 1, n);
        b->p[b->count++] = p;
        b->bytes += n;
    }
}

/* Frees every block, in a shuffled order, checking a byte of each. */
static void free_all(struct blocks *b, uint64_t seed)
{
    uint64_t rs = seed;
    for (size_t i = b->count; i > 1; i--) {
        size_t j = (size_t)(rnd(&rs) % i);
        void *t = b->p[i - 1];
        b->p[i - 1] = b->p[j];
        b->p[j] = t;
    }
    for (size_t i = 0; i < b->count; i++) {
        CHECK(*(unsigned char *)b->p[i] & 1);
        mapalloc_free(b->p[i]);
    }
    b->count = 0;
    /* The table's own pages are not the allocator's: drop them. */
    CHECK(madvise(b->p, b->cap * sizeof(void *), MADV_DONTNEED) == 0);
}

/* Resident memory after freeing: within SLACK of the baseline, allowing the
 * allocator its decay (a few hundred milliseconds, kept alive by a little
 * allocation as a program would). Returns the seconds it took. */
static double wait_for_return(size_t base, const char *what)
{
    double t0 = now();
    size_t rss = resident();
    while (rss > base + SLACK && now() - t0 < 3.0) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
        mapalloc_free(mapalloc_malloc(64));
        mapalloc_free(mapalloc_malloc(64 * KiB));
        rss = resident();
    }
    if (rss > base + SLACK) {
        /* Reported, and the other parts still run: exit status 1 at the end. */
        struct mapalloc_stats s;
        mapalloc_stats_get(&s);
        fprintf(stderr,
                "%s:%d: %s: resident %zu KiB, %zu KiB at the start (+%zu KiB, more than %zu KiB) "
                "%.1f s after the last free; mapalloc: mapped %zu KiB in %llu regions, "
                "live_blocks %zu\n",
                __FILE__, __LINE__, what, rss / KiB, base / KiB, (rss - base) / KiB, SLACK / KiB,
                now() - t0, s.mapped / KiB, (unsigned long long)s.regions, s.live_blocks);
        failures++;
    }
    return now() - t0;
}

struct thread_arg {
    struct blocks *b;
    size_t total;
};

static void *allocating_thread(void *arg)
{
    struct thread_arg *a = arg;
    allocate(a->b, a->total, 0xabcdef);
    return NULL;
}

/* Frees every block and never allocates; returns resident memory right
 * after its last free. */
static void *freeing_thread(void *arg)
{
    struct thread_arg *a = arg;
    free_all(a->b, 10);
    return (void *)(uintptr_t)resident();
}

int main(void)
{
    if (TEST_ASAN) {
        printf("rss: skipped under AddressSanitizer\n");
        return TEST_SKIP;
    }
    page = (size_t)sysconf(_SC_PAGESIZE);
    /* Warm up: the allocator's own start-up is not what is measured. */
    mapalloc_free(mapalloc_malloc(16));
    struct blocks b;
    blocks_init(&b, 4 * 1024 * 1024);
    size_t base = resident();

    /* 1. Allocate 1 GiB, free it all: memory goes back by itself. */
    double t0 = now();
    allocate(&b, GiB, 42);
    size_t peak = resident();
    CHECKF(peak >= base + GiB - 64 * MiB, "1 GiB allocated and written, resident only %zu MiB",
           (peak - base) / MiB);
    size_t nblocks = b.count;
    free_all(&b, 7);
    size_t right_after = resident();
    double waited = wait_for_return(base, "after freeing 1 GiB");
    struct mapalloc_stats s;
    mapalloc_stats_get(&s);
    printf("rss: %zu blocks, %zu MiB; resident at start %zu KiB, at peak %zu MiB, right after "
           "free %+ld KiB, %+ld KiB %.2f s later; mapped %zu MiB (%.1f s)\n",
           nblocks, (size_t)(GiB / MiB), base / KiB, peak / MiB,
           ((long)right_after - (long)base) / 1024, ((long)resident() - (long)base) / 1024,
           waited, s.mapped / MiB, now() - t0);
    CHECKF(s.live_blocks == 0, "live_blocks %zu after freeing everything", s.live_blocks);

    /* 2. Again, and mapalloc_trim(0) gives back everything at once. */
    allocate(&b, GiB, 43);
    free_all(&b, 8);
    size_t before_trim = resident();
    int r = mapalloc_trim(0);
    size_t after_trim = resident();
    printf("rss: trim returned %d; resident %+ld KiB before trim, %+ld KiB after\n", r,
           ((long)before_trim - (long)base) / 1024, ((long)after_trim - (long)base) / 1024);
    CHECKF(after_trim <= base + SLACK, "after trim: resident %zu KiB, %zu KiB at the start",
           after_trim / KiB, base / KiB);
    CHECKF(r == 1 || before_trim <= base + page * 16,
           "trim returned %d with %zu KiB more resident than at the start", r,
           (before_trim - base) / KiB);
    /* Nothing is left for a second trim. */
    r = mapalloc_trim(0);
    CHECKF(r == 0, "a second trim in a row returned %d", r);

    /* 3. A thread allocates 256 MiB and exits; this thread frees it all;
     *    trim gives back the pages of the abandoned heap too. */
    struct thread_arg a = {&b, GiB / 4};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, allocating_thread, &a) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    size_t with_thread = resident();
    free_all(&b, 9);
    r = mapalloc_trim(0);
    size_t after_thread = resident();
    printf("rss: blocks of an exited thread: %+ld KiB while live, %+ld KiB after free and trim "
           "(%d)\n",
           ((long)with_thread - (long)base) / 1024, ((long)after_thread - (long)base) / 1024, r);
    CHECKF(after_thread <= base + SLACK,
           "blocks of an exited thread, freed and trimmed: resident %zu KiB, %zu KiB at start",
           after_thread / KiB, base / KiB);

    /* 4. The same, but the blocks are freed by a thread that never
     *    allocated: it takes the exited thread's pages over as it frees
     *    into them, so they go back as they empty, without a trim. */
    CHECK(pthread_create(&t, NULL, allocating_thread, &a) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    with_thread = resident();
    void *freer_rss;
    CHECK(pthread_create(&t, NULL, freeing_thread, &a) == 0);
    CHECK(pthread_join(t, &freer_rss) == 0);
    size_t after_freer = resident();
    waited = wait_for_return(base, "blocks of an exited thread freed by one that never allocated");
    printf("rss: blocks of an exited thread freed by a thread that never allocated: %+ld KiB while "
           "live, %+ld KiB after its last free, %+ld KiB after it exited, %+ld KiB %.2f s later\n",
           ((long)with_thread - (long)base) / 1024, ((long)(uintptr_t)freer_rss - (long)base) / 1024,
           ((long)after_freer - (long)base) / 1024, ((long)resident() - (long)base) / 1024, waited);
    CHECKF((uintptr_t)freer_rss <= base + 8 * SLACK,
           "the freeing thread did not take the pages over: %zu KiB resident after its frees, "
           "%zu KiB at start", (size_t)(uintptr_t)freer_rss / KiB, base / KiB);
    blocks_done(&b);
    return failures == 0 ? 0 : 1;
}
