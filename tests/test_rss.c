/* Memory goes back: a program that allocates 1 GiB in small and medium blocks
 * (every size up to the large threshold), touches it all and frees it all
 * ends with its resident memory within a few MiB of where it started; and
 * mapalloc_trim(0) gives back at once what is left, also for the blocks of a
 * thread that has exited; and the blocks of an exited thread go back
 * without a trim when a thread that never allocated frees them.
 *
 * The blocks are obs/burst.h's: half of the bytes in small blocks (1 B to
 * 1 KiB), half in medium ones (up to the large threshold), interleaved,
 * every byte written, and freed in a shuffled order. Resident memory is
 * read from /proc/self/statm (wl_resident). Not run in parallel with other
 * tests (its figure is its own, but it needs the memory). Skipped under
 * AddressSanitizer, whose shadow memory moves the figures.
 */
#include "check.h"
#include "mapalloc.h"
#include "obs/burst.h"
#include "sys.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SLACK (8 * MiB)             /* "within a few MiB" */

static size_t page;
static int failures; /* soft failures, reported as they happen */

/* Resident memory after freeing: within SLACK of the baseline, allowing the
 * allocator its decay (a few hundred milliseconds, kept alive by a little
 * allocation as a program would). Returns the seconds it took. */
static double wait_for_return(size_t base, const char *what)
{
    double t0 = wl_now();
    size_t rss = wl_resident();
    while (rss > base + SLACK && wl_now() - t0 < 3.0) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
        mapalloc_free(mapalloc_malloc(64));
        mapalloc_free(mapalloc_malloc(64 * KiB));
        rss = wl_resident();
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
                wl_now() - t0, s.mapped / KiB, (unsigned long long)s.regions, s.live_blocks);
        failures++;
    }
    return wl_now() - t0;
}

struct thread_arg {
    struct burst *b;
    size_t total;
};

static void *allocating_thread(void *arg)
{
    struct thread_arg *a = arg;
    burst_allocate(a->b, a->total, 0xabcdef);
    return NULL;
}

/* Frees every block and never allocates; returns resident memory right
 * after its last free. */
static void *freeing_thread(void *arg)
{
    struct thread_arg *a = arg;
    burst_free(a->b, 10);
    return (void *)(uintptr_t)wl_resident();
}

int main(void)
{
    if (TEST_ASAN) {
        printf("rss: skipped under AddressSanitizer\n");
        return TEST_SKIP;
    }
    page = (size_t)sysconf(_SC_PAGESIZE);
    /* The allocator's start-up, the first call of the process: it makes
     * resident what one thread needs (its heap, a region's header, a page
     * of blocks), not the structures of threads that may never come. */
    (void)wl_resident_anon(); /* its own first call's stack and buffers */
    size_t before = wl_resident_anon();
    mapalloc_free(mapalloc_malloc(16));
    size_t start_cost = wl_resident_anon() - before;
    printf("rss: the first malloc and free made %zu KiB of anonymous memory resident\n", start_cost / KiB);
    /* Where every mapping gets transparent huge pages, the region's first
     * touch makes 2 MiB resident whatever the allocator does. */
    char thp[128] = "";
    bool thp_always = wl_proc_head("/sys/kernel/mm/transparent_hugepage/enabled", thp, sizeof thp) &&
                      strstr(thp, "[always]") != NULL;
    if (thp_always)
        printf("rss: transparent huge pages for every mapping: the start-up's bound is not checked\n");
    else
        CHECKF(start_cost <= 160 * KiB, "the first malloc and free made %zu KiB of anonymous memory resident",
               start_cost / KiB);
    /* The first explicit arena and its first block: its structure, its
     * heap, the header of its region and a page of blocks, not the other
     * structures of the chunk that arenas are made from. */
    before = wl_resident_anon();
    mapalloc_arena *arena = mapalloc_arena_create(NULL);
    CHECK(arena != NULL);
    void *ablock = mapalloc_arena_malloc(arena, 64);
    CHECK(ablock != NULL);
    size_t arena_cost = wl_resident_anon() - before;
    printf("rss: the first arena and its first block made %zu KiB of anonymous memory resident\n",
           arena_cost / KiB);
    if (!thp_always)
        CHECKF(arena_cost <= 48 * KiB, "the first arena and its first block made %zu KiB of anonymous memory resident",
               arena_cost / KiB);
    mapalloc_arena_free(arena, ablock);
    mapalloc_arena_destroy(arena);
    struct burst b;
    burst_init(&b, 4 * 1024 * 1024);
    size_t base = wl_resident();

    /* 1. Allocate 1 GiB, free it all: memory goes back by itself. */
    double t0 = wl_now();
    burst_allocate(&b, GiB, 42);
    size_t peak = wl_resident();
    CHECKF(peak >= base + GiB - 64 * MiB, "1 GiB allocated and written, resident only %zu MiB",
           (peak - base) / MiB);
    size_t nblocks = b.count;
    burst_free(&b, 7);
    size_t right_after = wl_resident();
    double waited = wait_for_return(base, "after freeing 1 GiB");
    struct mapalloc_stats s;
    mapalloc_stats_get(&s);
    printf("rss: %zu blocks, %zu MiB; resident at start %zu KiB, at peak %zu MiB, right after "
           "free %+ld KiB, %+ld KiB %.2f s later; mapped %zu MiB (%.1f s)\n",
           nblocks, (size_t)(GiB / MiB), base / KiB, peak / MiB,
           ((long)right_after - (long)base) / 1024, ((long)wl_resident() - (long)base) / 1024,
           waited, s.mapped / MiB, wl_now() - t0);
    CHECKF(s.live_blocks == 0, "live_blocks %zu after freeing everything", s.live_blocks);

    /* 2. Again, and mapalloc_trim(0) gives back everything at once. */
    burst_allocate(&b, GiB, 43);
    burst_free(&b, 8);
    size_t before_trim = wl_resident();
    int r = mapalloc_trim(0);
    size_t after_trim = wl_resident();
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
    size_t with_thread = wl_resident();
    burst_free(&b, 9);
    r = mapalloc_trim(0);
    size_t after_thread = wl_resident();
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
    with_thread = wl_resident();
    void *freer_rss;
    CHECK(pthread_create(&t, NULL, freeing_thread, &a) == 0);
    CHECK(pthread_join(t, &freer_rss) == 0);
    size_t after_freer = wl_resident();
    waited = wait_for_return(base, "blocks of an exited thread freed by one that never allocated");
    printf("rss: blocks of an exited thread freed by a thread that never allocated: %+ld KiB while "
           "live, %+ld KiB after its last free, %+ld KiB after it exited, %+ld KiB %.2f s later\n",
           ((long)with_thread - (long)base) / 1024, ((long)(uintptr_t)freer_rss - (long)base) / 1024,
           ((long)after_freer - (long)base) / 1024, ((long)wl_resident() - (long)base) / 1024, waited);
    CHECKF((uintptr_t)freer_rss <= base + 8 * SLACK,
           "the freeing thread did not take the pages over: %zu KiB resident after its frees, "
           "%zu KiB at start", (size_t)(uintptr_t)freer_rss / KiB, base / KiB);
    burst_done(&b);
    return failures == 0 ? 0 : 1;
}
