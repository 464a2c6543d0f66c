/* Purging: after a burst of 200 MiB in small and medium blocks is
 * freed, resident memory (/proc/self/statm) goes back to where it was
 * within the decay time, driven only by the program's own allocator
 * activity; with a decay and a dirty limit too large to act, it stays until
 * malloc_trim(0); with purge_free=1 the pages are given back with
 * MADV_FREE, the statistics count them as lazily freed until they are used
 * again (the text form's "lazy free" line with them), their peak resident
 * figure is the kernel's, and the memory is reused correctly.
 *
 * Usage: test_purge PART, with MAPALLOC_OPTIONS set by tests/obs/meson.build:
 *   decay      falls within decay_ms + 1.5 s (any decay_ms, dirty_max_kb)
 *   no_decay   decay_ms=3600000,dirty_max_kb=1073741823: stays; trim drops it
 *   purge_free purge_free=1 (or 0, the control)
 *   idle       256 MiB in small, medium and large blocks, freed, then no
 *              allocator call: resident within 8 MiB of the start after
 *              2 x decay_ms (the background purger); with background=0 it
 *              stays (the control)
 *   thread     the purger: no thread in a program that never frees, one
 *              after a burst is freed, none again once all is given back;
 *              signals sent to the process never land on it
 *   large_unmap  a block grown from 8 to 64 MiB is unmapped by its free
 *   hollow     free 24 KiB blocks in pages that still hold live ones give
 *              back their OS pages past the first within 3 x decay_ms of
 *              allocator activity (a page is hollowed when a whole decay
 *              passed without a malloc or free in it); with hollow_kb=0
 *              they stay (the control)
 *   sparse     the same for 256-byte blocks, one in 256 kept: the OS pages
 *              that hold only free blocks go back (hollow_kb=0: they stay);
 *              every freed block comes back once, usable
 * Skipped (77) under AddressSanitizer, whose shadow memory moves the
 * figures.
 */
#include "burst.h"
#include "mapalloc.h"
#include "obs.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#define BURST (200 * MiB)
#define SLACK (8 * MiB) /* "back where it was": within a few MiB */

static struct mapalloc_stats stats(void)
{
    struct mapalloc_stats s;
    mapalloc_stats_get(&s);
    return s;
}

static long kib(size_t now, size_t base)
{
    return ((long)now - (long)base) / 1024;
}

/* Allocator activity until resident is within SLACK of base or the
 * deadline passes; returns the seconds it took (or -1). */
static double activity_until_back(size_t base, double deadline, uint64_t *rs)
{
    double t0 = wl_now();
    for (;;) {
        if (wl_resident() <= base + SLACK)
            return wl_now() - t0;
        if (wl_now() - t0 > deadline)
            return -1;
        burst_activity(rs);
        obs_sleep_ms(1);
    }
}

static void part_decay(void)
{
    mapalloc_free(mapalloc_malloc(16)); /* options are read at the first allocation */
    long decay = mapalloc_option_get("decay_ms");
    long dirty = mapalloc_option_get("dirty_max_kb");
    struct burst b;
    burst_init(&b, 1u << 20);
    size_t base = wl_resident();
    double t0 = wl_now();
    burst_allocate(&b, BURST, 1);
    size_t peak = wl_resident();
    CHECKF(peak >= base + BURST - 32 * MiB, "200 MiB written, resident +%ld KiB", kib(peak, base));
    burst_free(&b, 2);
    double freed_at = wl_now();
    size_t right_after = wl_resident();
    if ((size_t)dirty << 10 >= BURST && decay > 0)
        /* The dirty limit does not act: what goes back is the decay's doing. */
        CHECKF(right_after >= base + BURST / 2,
               "dirty_max_kb=%ld: resident +%ld KiB right after the free: purged before the decay",
               dirty, kib(right_after, base));
    uint64_t rs = 3;
    double took = activity_until_back(base, (double)decay / 1000 + 1.5, &rs);
    struct mapalloc_stats s = stats();
    printf("purge decay: decay_ms=%ld dirty_max_kb=%ld: resident at start %zu KiB, peak %+ld KiB, "
           "right after free %+ld KiB, back within %zu KiB %.3f s after the free (burst took "
           "%.2f s); madvise_calls %llu munmap_calls %llu\n",
           decay, dirty, base / KiB, kib(peak, base), kib(right_after, base), SLACK / KiB, took,
           freed_at - t0, (unsigned long long)s.madvise_calls,
           (unsigned long long)s.munmap_calls);
    CHECKF(took >= 0, "decay_ms=%ld: resident still %+ld KiB %.1f s after the free", decay,
           kib(wl_resident(), base), (double)decay / 1000 + 1.5);
    CHECK(s.live_blocks == 0);
    burst_done(&b);
}

static void part_no_decay(void)
{
    mapalloc_free(mapalloc_malloc(16));
    CHECK(mapalloc_option_get("decay_ms") == 3600000);
    CHECK(mapalloc_option_get("dirty_max_kb") == 1073741823);
    struct burst b;
    burst_init(&b, 1u << 20);
    size_t base = wl_resident();
    burst_allocate(&b, BURST, 4);
    burst_free(&b, 5);
    /* A second of activity: nothing goes back. */
    uint64_t rs = 6;
    double t0 = wl_now();
    while (wl_now() - t0 < 1.0) {
        burst_activity(&rs);
        obs_sleep_ms(1);
    }
    size_t kept = wl_resident();
    CHECKF(kept >= base + BURST - 32 * MiB,
           "decay and dirty limit off: resident +%ld KiB after 1 s, expected the burst's 200 MiB",
           kib(kept, base));
    int r = mapalloc_trim(0);
    size_t trimmed = wl_resident();
    printf("purge no_decay: resident %+ld KiB 1 s after the free, %+ld KiB after "
           "malloc_trim(0) (returned %d)\n",
           kib(kept, base), kib(trimmed, base), r);
    CHECK(r == 1);
    CHECKF(trimmed <= base + SLACK, "after trim: resident %+ld KiB", kib(trimmed, base));
    /* And the memory is there to use again. */
    burst_allocate(&b, BURST / 4, 7);
    burst_free(&b, 8);
    burst_done(&b);
}

/* The text statistics say it in one line: "mapalloc: lazy free   83.3 MiB
 * purged with MADV_FREE, ...", the figure of mapalloc_stats_get to the
 * tenth of its unit ("0 B" with MADV_DONTNEED). */
static void check_lazy_line(size_t lazy_free, long on)
{
    int fd = obs_tmpfile();
    mapalloc_stats_print(fd, MAPALLOC_STATS_TEXT);
    char *text = obs_read_fd(fd);
    close(fd);
    CHECKF(stats().lazy_free == lazy_free, "lazy_free moved while printing");
    const char *key = "\nmapalloc: lazy free ";
    const char *line = strstr(text, key);
    CHECKF(line != NULL, "no lazy free line in the text statistics:\n%s", text);
    const char *end = strchr(line + 1, '\n');
    printf("purge purge_free=%ld: \"%.*s\"\n", on, end ? (int)(end - line - 1) : 80, line + 1);
    double v = 0;
    char unit[8] = "";
    int used = 0;
    CHECKF(sscanf(line + strlen(key), " %lf %7s purged with MADV_FREE,%n", &v, unit, &used) == 2 && used > 0,
           "lazy free line: %.120s", line + 1);
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double scale = 0;
    for (unsigned k = 0; k < sizeof units / sizeof units[0]; k++)
        if (strcmp(unit, units[k]) == 0)
            scale = (double)((uint64_t)1 << (10 * k));
    CHECKF(scale > 0, "lazy free line: unit \"%s\"", unit);
    double off = v * scale - (double)lazy_free;
    CHECKF((off < 0 ? -off : off) <= 0.05 * scale + 0.5 && v < 1024,
           "lazy free line says %g %s, lazy_free is %zu bytes", v, unit, lazy_free);
    if (!on)
        CHECKF(strcmp(unit, "B") == 0 && v == 0, "purge_free=0: lazy free line says %g %s", v, unit);
    free(text);
}

/* MADV_FREE: the pages stay resident (LazyFree in smaps) until the kernel
 * needs them, so the check is the madvise count and LazyFree; then the
 * lazily freed memory must be reused correctly: calloc still zeroes it, and
 * contents written stay. One small block per 2 MiB stays live so that the
 * regions are not unmapped (purged pages, not whole regions). */
static void part_purge_free(void)
{
    mapalloc_free(mapalloc_malloc(16));
    long on = mapalloc_option_get("purge_free");
    struct burst b, pins;
    burst_init(&b, 1u << 20);
    burst_init(&pins, 1u << 12);
    size_t base = wl_resident();
    long lazy0 = wl_proc_field("/proc/self/smaps_rollup", "LazyFree");
    burst_allocate(&b, BURST, 9);
    size_t bytes = 0, next_pin = 0;
    for (size_t i = 0; i < b.count; i++) {
        bytes += mapalloc_usable_size(b.p[i]);
        /* A small block pins a page of 64 KiB; a medium one up to 2 MiB. */
        if (bytes >= next_pin && pins.count < pins.cap && mapalloc_usable_size(b.p[i]) <= KiB) {
            pins.p[pins.count++] = b.p[i];
            b.p[i] = mapalloc_malloc(1); /* freed with the others instead */
            memset(b.p[i], burst_tag(i), 1);
            next_pin = bytes + 2 * MiB;
        }
    }
    struct mapalloc_stats s0 = stats();
    burst_free(&b, 10);
    uint64_t rs = 11;
    double t0 = wl_now();
    while (wl_now() - t0 < (double)mapalloc_option_get("decay_ms") / 1000 + 0.3) {
        burst_activity(&rs);
        obs_sleep_ms(1);
    }
    mapalloc_trim(0);
    long hwm0 = wl_proc_field("/proc/self/status", "VmHWM");
    struct mapalloc_stats s1 = stats();
    long hwm1 = wl_proc_field("/proc/self/status", "VmHWM");
    size_t after = wl_resident();
    long lazy1 = wl_proc_field("/proc/self/smaps_rollup", "LazyFree");
    printf("purge purge_free=%ld: madvise_calls %llu -> %llu, munmap_calls %llu -> %llu, "
           "LazyFree %ld -> %ld kB, resident %+ld KiB after free and trim (%zu blocks kept)\n",
           on, (unsigned long long)s0.madvise_calls, (unsigned long long)s1.madvise_calls,
           (unsigned long long)s0.munmap_calls, (unsigned long long)s1.munmap_calls, lazy0, lazy1,
           kib(after, base), pins.count);
    CHECKF(s1.madvise_calls > s0.madvise_calls, "no madvise call");
    if (lazy1 >= 0) {
        if (on) /* lazily freed: the kernel takes them back only when it needs memory */
            CHECKF(lazy1 - lazy0 >= 64 * 1024,
                   "purge_free=1: LazyFree %ld -> %ld kB, resident %+ld KiB: not MADV_FREE", lazy0,
                   lazy1, kib(after, base));
        else
            CHECKF(lazy1 <= lazy0, "purge_free=0: LazyFree %ld -> %ld kB", lazy0, lazy1);
    }
    if (!on)
        CHECKF(after <= base + 16 * MiB, "purge_free=0: resident %+ld KiB", kib(after, base));

    /* The statistics say how much of resident is only lazily freed: most
     * of the burst with MADV_FREE, nothing with MADV_DONTNEED. The kernel's
     * LazyFree is what it has not taken back yet, at most ours (ours counts
     * whole slices, touched or not). */
    printf("purge purge_free=%ld: lazy_free %zu -> %zu KiB, purged %zu -> %zu KiB\n", on,
           s0.lazy_free / KiB, s1.lazy_free / KiB, s0.purged / KiB, s1.purged / KiB);
    CHECKF(s1.purged >= s0.purged + BURST / 2, "purged %zu -> %zu KiB after a free of %zu KiB",
           s0.purged / KiB, s1.purged / KiB, BURST / KiB);
    if (on) {
        CHECKF(s1.lazy_free >= s0.lazy_free + BURST / 2 && s1.lazy_free <= s1.purged,
               "purge_free=1: lazy_free %zu -> %zu KiB, purged %zu KiB", s0.lazy_free / KiB,
               s1.lazy_free / KiB, s1.purged / KiB);
        if (lazy1 >= 0)
            CHECKF((size_t)lazy1 * KiB <= s1.lazy_free + MiB,
                   "purge_free=1: the kernel's LazyFree %ld kB above lazy_free %zu KiB", lazy1,
                   s1.lazy_free / KiB);
    } else {
        CHECKF(s1.lazy_free == 0, "purge_free=0: lazy_free %zu KiB", s1.lazy_free / KiB);
    }
    check_lazy_line(s1.lazy_free, on);

    /* The peak is the kernel's (VmHWM): the burst was resident once, and
     * with MADV_DONTNEED it is not any more. */
    CHECKF(hwm0 >= 0 && (size_t)hwm0 * KiB <= s1.peak_resident + MiB &&
               s1.peak_resident <= (size_t)hwm1 * KiB + MiB,
           "peak_resident %zu KiB, VmHWM %ld then %ld kB", s1.peak_resident / KiB, hwm0, hwm1);
    CHECKF(s1.peak_resident >= base + BURST / 2,
           "peak_resident %zu KiB, %zu KiB resident before a burst of %zu KiB", s1.peak_resident / KiB,
           base / KiB, BURST / KiB);
    if (!on)
        CHECKF(s1.peak_resident >= s1.resident + BURST / 2,
               "purge_free=0: peak_resident %zu KiB, resident %zu KiB", s1.peak_resident / KiB,
               s1.resident / KiB);

    /* Reuse: calloc must zero lazily freed pages (their old contents may
     * still be there), and what is written stays. */
    uint64_t zs = 12;
    size_t zeroed = 0;
    while (zeroed < BURST / 2) {
        size_t n = 1 + (size_t)(wl_rand(&zs) % (64 * KiB));
        unsigned char *p = mapalloc_calloc(1, n);
        CHECK(p != NULL);
        for (size_t i = 0; i < n; i += 61)
            CHECKF(p[i] == 0, "calloc(1, %zu) after purge_free=%ld: byte %zu is %#x", n, on, i,
                   p[i]);
        CHECK(p[n - 1] == 0);
        b.p[b.count++] = p;
        memset(p, burst_tag(b.count - 1), n);
        zeroed += n;
    }
    /* The pages made for it came from the lazily freed slices (the
     * regions are full of them): no longer lazily freed. */
    struct mapalloc_stats s2 = stats();
    printf("purge purge_free=%ld: lazy_free %zu KiB after %zu KiB reused\n", on,
           s2.lazy_free / KiB, zeroed / KiB);
    if (on)
        CHECKF(s2.lazy_free + BURST / 4 <= s1.lazy_free,
               "purge_free=1: lazy_free %zu -> %zu KiB while %zu KiB were allocated again",
               s1.lazy_free / KiB, s2.lazy_free / KiB, zeroed / KiB);
    else
        CHECKF(s2.lazy_free == 0, "purge_free=0: lazy_free %zu KiB", s2.lazy_free / KiB);
    burst_free(&b, 13);
    for (size_t i = 0; i < pins.count; i++)
        mapalloc_free(pins.p[i]);
    burst_done(&b);
    burst_done(&pins);
}

/* Large blocks of 1 to 8 MiB, every page written, up to total bytes. */
static void large_allocate(struct burst *b, size_t total, uint64_t seed)
{
    uint64_t rs = seed;
    for (size_t done = 0; done < total;) {
        size_t n = MiB + (size_t)(wl_rand(&rs) % (7 * MiB));
        void *p = mapalloc_malloc(n);
        CHECK(p != NULL && b->count < b->cap);
        memset(p, burst_tag(b->count), n);
        b->p[b->count++] = p;
        done += n;
    }
}

static void part_idle(void)
{
    mapalloc_free(mapalloc_malloc(16));
    long decay = mapalloc_option_get("decay_ms");
    bool background = mapalloc_option_get("background") != 0;
    struct burst b;
    burst_init(&b, 1u << 20);
    size_t base = wl_resident();
    burst_allocate(&b, 192 * MiB, 21);
    large_allocate(&b, 64 * MiB, 22);
    size_t peak = wl_resident();
    burst_free(&b, 23);
    size_t right_after = wl_resident();
    obs_sleep_ms((unsigned)(2 * decay)); /* and no allocator call */
    size_t idle = wl_resident();
    struct mapalloc_stats s = stats();
    printf("purge idle: background=%d decay_ms=%ld: resident at start %zu KiB, peak %+ld KiB, "
           "right after the free %+ld KiB, after %ld ms without a call %+ld KiB; madvise_calls "
           "%llu munmap_calls %llu\n",
           background, decay, base / KiB, kib(peak, base), kib(right_after, base), 2 * decay,
           kib(idle, base), (unsigned long long)s.madvise_calls, (unsigned long long)s.munmap_calls);
    if (background)
        CHECKF(idle <= base + SLACK, "background=1: resident %+ld KiB %ld ms after the free",
               kib(idle, base), 2 * decay);
    else
        CHECKF(idle > base + 4 * SLACK, "background=0: resident %+ld KiB: who purged it?",
               kib(idle, base));
    burst_done(&b);
}

/* The threads of this process, from /proc/self/status. */
static long threads(void)
{
    return wl_proc_field("/proc/self/status", "Threads");
}

/* Waits up to ms for the process to have want threads. */
static bool threads_become(long want, unsigned ms)
{
    for (unsigned t = 0; t < ms; t += 5) {
        if (threads() == want)
            return true;
        obs_sleep_ms(5);
    }
    return threads() == want;
}

static _Atomic long signal_tid;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&signal_tid, (long)gettid());
}

static void part_thread(void)
{
    long decay = mapalloc_option_get("decay_ms");
    struct burst b;
    burst_init(&b, 1u << 20);
    burst_allocate(&b, 64 * MiB, 31); /* only allocation: no thread */
    CHECKF(threads() == 1, "%ld threads before any free", threads());
    burst_free(&b, 32);
    CHECKF(threads() == 2, "%ld threads after 64 MiB were freed: no purger", threads());
    /* A process-directed signal goes to a thread that does not block it:
     * while this one blocks it, none may take it (the purger blocks every
     * signal); it waits for this thread. */
    struct sigaction sa = {.sa_handler = on_signal};
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    CHECK(pthread_sigmask(SIG_BLOCK, &usr1, NULL) == 0);
    CHECK(kill(getpid(), SIGUSR1) == 0);
    obs_sleep_ms(20);
    CHECKF(atomic_load(&signal_tid) == 0, "SIGUSR1 ran on thread %ld, the purger",
           atomic_load(&signal_tid));
    CHECK(pthread_sigmask(SIG_UNBLOCK, &usr1, NULL) == 0);
    CHECKF(atomic_load(&signal_tid) == (long)gettid(), "SIGUSR1 ran on thread %ld",
           atomic_load(&signal_tid));
    /* A child forked while it runs has none, until it needs one. */
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        CHECKF(threads() == 1, "child: %ld threads at the start", threads());
        size_t base = wl_resident();
        burst_allocate(&b, 64 * MiB, 33);
        burst_free(&b, 34);
        CHECKF(threads() == 2, "child: %ld threads after its free", threads());
        obs_sleep_ms((unsigned)(2 * decay));
        CHECKF(wl_resident() <= base + SLACK, "child: resident %+ld KiB after twice the decay",
               kib(wl_resident(), base));
        _exit(0);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
    /* Everything given back: it exits. */
    CHECKF(threads_become(1, (unsigned)(4 * decay + 200)), "%ld threads %ld ms after the free",
           threads(), 4 * decay + 200);
    printf("purge thread: none before a free, one after, gone once all was given back\n");
    burst_done(&b);
}

/* The mapping that holds p, if any (a line of /proc/self/maps). */
static bool mapped(const void *p)
{
    char line[512];
    return wl_maps_line(p, line, sizeof line);
}

static void part_large_unmap(void)
{
    void *p = mapalloc_malloc(8 * MiB);
    CHECK(p != NULL);
    memset(p, 1, 8 * MiB);
    void *q = mapalloc_realloc(p, 64 * MiB);
    CHECK(q != NULL);
    memset(q, 2, 64 * MiB);
    struct mapalloc_stats s0 = stats();
    mapalloc_free(q);
    struct mapalloc_stats s1 = stats();
    CHECKF(!mapped(q), "a 64 MiB block is still mapped after its free");
    CHECKF(s1.munmap_calls == s0.munmap_calls + 1, "munmap_calls %llu -> %llu",
           (unsigned long long)s0.munmap_calls, (unsigned long long)s1.munmap_calls);
    /* A small one waits in the cache, and goes within the decay. */
    void *r = mapalloc_malloc(2 * MiB);
    CHECK(r != NULL);
    memset(r, 3, 2 * MiB);
    mapalloc_free(r);
    CHECKF(mapped(r), "a 2 MiB block was not kept");
    obs_sleep_ms((unsigned)(2 * mapalloc_option_get("decay_ms")));
    CHECKF(!mapped(r), "a cached 2 MiB block is still mapped after twice the decay");
    printf("purge large_unmap: 64 MiB unmapped at its free; 2 MiB kept, then gone\n");
}

/* n blocks of size bytes, each written with its index's low byte, then
 * all freed but one in keep, so that no page empties. */
static void write_and_thin(unsigned char **blocks, size_t n, size_t size, size_t keep)
{
    for (size_t i = 0; i < n; i++) {
        blocks[i] = mapalloc_malloc(size);
        CHECK(blocks[i] != NULL);
        memset(blocks[i], (int)(i & 0xff), size);
    }
    for (size_t i = 0; i < n; i++)
        if (i % keep != 0)
            mapalloc_free(blocks[i]);
}

/* Allocator activity for three times the decay: a page of another class
 * empties each time. */
static void activity_three_decays(void)
{
    double t0 = wl_now(), wait = 3.0 * (double)mapalloc_option_get("decay_ms") / 1000;
    while (wl_now() - t0 < wait) {
        void *q = mapalloc_malloc(100 * 1024);
        CHECK(q != NULL);
        memset(q, 1, 4096);
        mapalloc_free(q);
        obs_sleep_ms(1);
    }
}

/* The blocks write_and_thin kept still hold their bytes. */
static void check_kept(unsigned char **blocks, size_t n, size_t size, size_t keep)
{
    for (size_t i = 0; i < n; i += keep)
        for (size_t j = 0; j < size; j++)
            CHECKF(blocks[i][j] == (i & 0xff), "kept block %zu byte %zu is %d", i, j, blocks[i][j]);
}

/* The blocks write_and_thin freed are allocated again, every other one
 * with calloc, which must read zero. */
static void refill(unsigned char **blocks, size_t n, size_t size, size_t keep)
{
    for (size_t i = 0; i < n; i++) {
        if (i % keep == 0)
            continue;
        blocks[i] = i % 2 ? mapalloc_calloc(1, size) : mapalloc_malloc(size);
        CHECK(blocks[i] != NULL);
        if (i % 2)
            for (size_t j = 0; j < size; j++)
                CHECKF(blocks[i][j] == 0, "calloc'd block %zu byte %zu is %d", i, j, blocks[i][j]);
    }
}

/* 12 MiB of 24 KiB blocks (eight to a page), written; all freed but one in
 * eight, so that no page empties. After allocator activity for three times
 * the decay, whole OS pages of the free blocks are back with the kernel: all
 * but the first of each block's six, 8.75 MiB. The kept blocks keep their
 * contents, and the freed ones come back usable (calloc's zeroed). */
static void part_hollow(void)
{
    enum { N = 512, SIZE = 24 * 1024 };
    static unsigned char *blocks[N];
    mapalloc_free(mapalloc_malloc(16));
    bool on = mapalloc_option_get("hollow_kb") != 0;
    write_and_thin(blocks, N, SIZE, 8);
    size_t r0 = wl_resident();
    struct mapalloc_stats s0 = stats();
    activity_three_decays();
    size_t r1 = wl_resident();
    struct mapalloc_stats s1 = stats();
    printf("purge hollow (hollow_kb=%ld): resident %zu -> %zu KiB, purged %zu -> %zu KiB\n",
           mapalloc_option_get("hollow_kb"), r0 / KiB, r1 / KiB, s0.purged / KiB, s1.purged / KiB);
    if (on) { /* MADV_DONTNEED even with purge_free=1 */
        CHECKF(r1 + 7 * MiB < r0, "resident %zu -> %zu KiB: free blocks not hollowed", r0 / KiB, r1 / KiB);
        CHECKF(s1.purged >= s0.purged + 7 * MiB, "purged %zu -> %zu KiB", s0.purged / KiB, s1.purged / KiB);
    } else {
        CHECKF(r1 + MiB > r0, "hollow_kb=0: resident %zu -> %zu KiB", r0 / KiB, r1 / KiB);
    }
    check_kept(blocks, N, SIZE, 8);
    refill(blocks, N, SIZE, 8);
    for (size_t i = 0; i < N; i++)
        if (i % 8 != 0)
            memset(blocks[i], 0x5a, SIZE);
    for (size_t i = 0; i < N; i++)
        mapalloc_free(blocks[i]);
}

/* 12 MiB of 256-byte blocks, written; all freed but one in 256, so that
 * no page (256 blocks of one slice) empties. After allocator activity for
 * three times the decay, the OS pages holding only free blocks are back
 * with the kernel: 15 of each page's 16, about 11 MiB. The kept blocks
 * keep their contents, and every freed block comes back, each once (a
 * block handed out twice would hold another's mark), calloc's zeroed. */
static void part_sparse(void)
{
    enum { N = 48 * 1024, SIZE = 256, KEEP = 256 };
    static unsigned char *blocks[N];
    mapalloc_free(mapalloc_malloc(16));
    bool on = mapalloc_option_get("hollow_kb") != 0;
    write_and_thin(blocks, N, SIZE, KEEP);
    size_t r0 = wl_resident();
    activity_three_decays();
    size_t r1 = wl_resident();
    printf("purge sparse (hollow_kb=%ld): resident %zu -> %zu KiB\n", mapalloc_option_get("hollow_kb"),
           r0 / KiB, r1 / KiB);
    if (on)
        CHECKF(r1 + 9 * MiB < r0, "resident %zu -> %zu KiB: free OS pages not given back", r0 / KiB, r1 / KiB);
    else
        CHECKF(r1 + MiB > r0, "hollow_kb=0: resident %zu -> %zu KiB", r0 / KiB, r1 / KiB);
    check_kept(blocks, N, SIZE, KEEP);
    refill(blocks, N, SIZE, KEEP);
    for (size_t i = 0; i < N; i++)
        if (i % KEEP != 0)
            memcpy(blocks[i], &i, sizeof i);
    for (size_t i = 0; i < N; i++) {
        size_t mark;
        memcpy(&mark, blocks[i], sizeof mark);
        if (i % KEEP != 0)
            CHECKF(mark == i, "block %zu at %p holds block %zu's mark: handed out twice", i, (void *)blocks[i],
                   mark);
        mapalloc_free(blocks[i]);
    }
}

int main(int argc, char **argv)
{
    if (TEST_ASAN) {
        printf("purge: skipped under AddressSanitizer\n");
        return TEST_SKIP;
    }
    CHECKF(argc == 2, "usage: %s PART", argv[0]);
    if (strcmp(argv[1], "decay") == 0)
        part_decay();
    else if (strcmp(argv[1], "no_decay") == 0)
        part_no_decay();
    else if (strcmp(argv[1], "purge_free") == 0)
        part_purge_free();
    else if (strcmp(argv[1], "idle") == 0)
        part_idle();
    else if (strcmp(argv[1], "thread") == 0)
        part_thread();
    else if (strcmp(argv[1], "large_unmap") == 0)
        part_large_unmap();
    else if (strcmp(argv[1], "hollow") == 0)
        part_hollow();
    else if (strcmp(argv[1], "sparse") == 0)
        part_sparse();
    else
        CHECKF(false, "no part %s", argv[1]);
    return 0;
}
