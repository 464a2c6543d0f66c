/* Faults and limits.
 *
 *   test_limits rlimit  In a child, RLIMIT_AS is set to the current VmSize
 *                       plus 64 MiB. Each kind of call (malloc small, medium
 *                       and large, calloc, realloc growth in place and by
 *                       moving, aligned_alloc, posix_memalign, arena create
 *                       and arena malloc) is repeated until it fails: it must
 *                       fail with NULL (or ENOMEM returned) and errno ENOMEM,
 *                       never crash, and leave a block it was asked to grow
 *                       intact. Then everything is freed and the same
 *                       amount of memory must be usable again.
 *   test_limits phases  Freed memory is there for the next request: in a
 *                       child under RLIMIT_AS (VmSize plus 64 MiB), phases
 *                       of small, medium and large blocks, calloc and
 *                       aligned_alloc, each allocating until it fails and
 *                       then freeing everything, and an 8 MiB malloc right
 *                       after the last free. The same phases run in another
 *                       child with the C library's malloc; each phase must
 *                       get at least 90% of its bytes, but one: blocks of
 *                       100,000 and 300,000 bytes round up to 112 KiB and
 *                       320 KiB (13% and 8% more), and a mix with them
 *                       must get 85%.
 *   test_limits maps [BOUND]
 *                       One million live blocks of mixed sizes: the number
 *                       of lines in /proc/self/maps they add is reported and
 *                       must stay below BOUND (default 1000), far below
 *                       vm.max_map_count. The secure profile's guard pages
 *                       split the mappings (two per page): it gets a bound
 *                       of its own.
 *
 * The blocks of the rlimit test are kept on lists threaded through the
 * blocks themselves: once the limit is reached, libc's malloc (and so stdio)
 * may fail too, so the child reports only after it has freed everything. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mapalloc.h>

#include "../check.h"
#include "rng.h"
#include "sys.h"

#define MiB ((size_t)1 << 20)
#define MAPS_BOUND 1000

static int count_line(const char *line, void *count)
{
    (void)line;
    ++*(long *)count;
    return 0;
}

/* The number of lines of /proc/self/maps (mappings), or -1. */
static long count_maps(void)
{
    long lines = 0;
    return wl_proc_lines("/proc/self/maps", count_line, &lines) < 0 ? -1 : lines;
}

/* ---- rlimit ---- */

struct node { struct node *next; };

/* Failures found by the child, reported once memory is back. */
static char problems[4096];
static size_t problems_len;

static void problem(const char *what)
{
    size_t n = strlen(what);
    if (problems_len + n + 2 < sizeof problems) {
        memcpy(problems + problems_len, what, n);
        problems_len += n;
        problems[problems_len++] = '\n';
    }
}

enum kind {
    SMALL, MEDIUM, LARGE, CALLOC_SMALL, CALLOC_LARGE, ALIGNED_SMALL, ALIGNED_LARGE, POSIX_MEMALIGN,
    ARENA_MALLOC, KIND_COUNT
};
static const char *const kind_name[KIND_COUNT] = {
    "malloc(48)", "malloc(20000)", "malloc(1 MiB)", "calloc(1, 100)", "calloc(1, 2 MiB)",
    "aligned_alloc(256, 256)", "aligned_alloc(1 MiB, 1 MiB)", "posix_memalign(64, 300000)",
    "arena_malloc(3000)",
};

static mapalloc_arena *arena;

static void *allocate(enum kind k)
{
    void *p = NULL;
    switch (k) {
    case SMALL: return mapalloc_malloc(48);
    case MEDIUM: return mapalloc_malloc(20000);
    case LARGE: return mapalloc_malloc(MiB);
    case CALLOC_SMALL: return mapalloc_calloc(1, 100);
    case CALLOC_LARGE: return mapalloc_calloc(1, 2 * MiB);
    case ALIGNED_SMALL: return mapalloc_aligned_alloc(256, 256);
    case ALIGNED_LARGE: return mapalloc_aligned_alloc(MiB, MiB);
    case POSIX_MEMALIGN: {
        int saved = errno;
        int r = mapalloc_posix_memalign(&p, 64, 300000);
        if (errno != saved)
            problem("posix_memalign changed errno");
        if (r != 0 && r != ENOMEM)
            problem("posix_memalign failed with an error other than ENOMEM");
        if (r != 0) {
            errno = ENOMEM; /* what the caller checks */
            return NULL;
        }
        return p;
    }
    case ARENA_MALLOC: return mapalloc_arena_malloc(arena, 3000);
    default: return NULL;
    }
}

/* Allocates kind k until it fails; the blocks go on *list. Returns how many
 * succeeded, or -1 if the failure was not NULL with ENOMEM. */
static long exhaust(enum kind k, struct node **list, long cap)
{
    for (long n = 0; n < cap; n++) {
        errno = 0;
        struct node *b = allocate(k);
        if (b == NULL)
            return errno == ENOMEM ? n : -1;
        b->next = *list;
        *list = b;
    }
    return -2; /* never failed */
}

static void free_list(struct node **list)
{
    while (*list) {
        struct node *n = (*list)->next;
        mapalloc_free(*list);
        *list = n;
    }
}

/* Exhausts every kind, large blocks first: the number of blocks. */
static long fill(struct node **lists, long *counts)
{
    static const enum kind order[KIND_COUNT] = {LARGE, MEDIUM, SMALL, CALLOC_SMALL, CALLOC_LARGE,
                                                ALIGNED_SMALL, ALIGNED_LARGE, POSIX_MEMALIGN,
                                                ARENA_MALLOC};
    long total = 0;
    for (int i = 0; i < KIND_COUNT; i++) {
        enum kind k = order[i];
        counts[k] = exhaust(k, &lists[k], 10000000);
        total += counts[k] > 0 ? counts[k] : 0;
    }
    return total;
}

static int rlimit_child(void)
{
    /* AddressSanitizer aborts the process when it cannot map a new
     * thread's own memory (pthread_create would fail with EAGAIN without
     * it, which the purger takes): no purger thread under the limit here. */
    if (TEST_ASAN)
        mapalloc_option_set("background", 0);
    /* Warm up: the allocator and stdio initialised before the limit. */
    mapalloc_free(mapalloc_malloc(100));
    char *grow_small = mapalloc_malloc(200);
    char *grow_large = mapalloc_malloc(MiB);
    memset(grow_small, 0x5a, 200);
    memset(grow_large, 0xa5, MiB);
    arena = mapalloc_arena_create(NULL);
    long vm_kb = wl_proc_field("/proc/self/status", "VmSize");
    printf("rlimit: VmSize %ld KiB, limit %ld KiB\n", vm_kb, vm_kb + 64 * 1024);
    fflush(stdout);
    struct rlimit rl = {.rlim_cur = (rlim_t)(vm_kb * 1024 + 64 * MiB),
                        .rlim_max = (rlim_t)(vm_kb * 1024 + 64 * MiB)};
    if (arena == NULL || vm_kb < 0 || setrlimit(RLIMIT_AS, &rl) != 0) {
        perror("setrlimit");
        return 1;
    }

    /* Fill the space, large blocks first, then each kind in turn. */
    struct node *lists[KIND_COUNT] = {0};
    long counts[KIND_COUNT];
    long total_before = fill(lists, counts);
    long first_counts[KIND_COUNT];
    memcpy(first_counts, counts, sizeof counts);
    for (int k = 0; k < KIND_COUNT; k++) {
        if (counts[k] < 0)
            problem(counts[k] == -1 ? "a call failed without ENOMEM" : "a call never failed");
        /* Once full, a second attempt fails at once. */
        errno = 0;
        if (allocate((enum kind)k) != NULL || errno != ENOMEM)
            problem("a call succeeded right after failing, or failed without ENOMEM");
    }

    /* Growth: in place (mremap) and by moving; the block must survive. */
    errno = 0;
    if (mapalloc_realloc(grow_small, 8 * MiB) != NULL || errno != ENOMEM)
        problem("realloc(small, 8 MiB) did not fail with ENOMEM");
    errno = 0;
    if (mapalloc_realloc(grow_large, 200 * MiB) != NULL || errno != ENOMEM)
        problem("realloc(1 MiB, 200 MiB) did not fail with ENOMEM");
    errno = 0;
    if (mapalloc_reallocarray(grow_small, 1000, 1000) != NULL || errno != ENOMEM)
        problem("reallocarray growth did not fail with ENOMEM");
    for (size_t i = 0; i < 200; i++)
        if ((unsigned char)grow_small[i] != 0x5a) {
            problem("a failed realloc changed the small block");
            break;
        }
    for (size_t i = 0; i < MiB; i++)
        if ((unsigned char)grow_large[i] != 0xa5) {
            problem("a failed realloc changed the large block");
            break;
        }
    errno = 0;
    struct mapalloc_arena_options opt = {.reserve = 8 * MiB};
    if (mapalloc_arena_create(&opt) != NULL || errno != ENOMEM)
        problem("arena_create with an 8 MiB reservation did not fail with ENOMEM");

    /* Everything back; the same again must fit. */
    for (int k = 0; k < KIND_COUNT; k++)
        free_list(&lists[k]);
    mapalloc_arena_reset(arena);
    mapalloc_trim(0);
    long total_after = fill(lists, counts);
    long large_again = counts[LARGE];
    for (int k = 0; k < KIND_COUNT; k++)
        free_list(&lists[k]);
    mapalloc_trim(0);
    /* And the first fill again, now that the limit is the only constraint. */
    struct node *again = NULL;
    long large_third = exhaust(LARGE, &again, 10000000);
    free_list(&again);
    grow_small = mapalloc_realloc(grow_small, 8 * MiB);
    if (grow_small == NULL)
        problem("after freeing, realloc(small, 8 MiB) still fails");
    mapalloc_free(grow_small);
    mapalloc_free(grow_large);
    mapalloc_arena_destroy(arena);

    printf("rlimit: blocks until each call failed:");
    for (int k = 0; k < KIND_COUNT; k++)
        printf(" %s %ld;", kind_name[k], first_counts[k]);
    printf("\nrlimit: blocks before the first failure: %ld; after freeing all: %ld "
           "(1 MiB blocks: %ld, then %ld)\n", total_before, total_after, large_again, large_third);
    if (large_third < 32)
        problem("after freeing everything, fewer than 32 blocks of 1 MiB fit in 64 MiB");
    if (problems_len) {
        fwrite(problems, 1, problems_len, stderr);
        fflush(stdout);
        return 1;
    }
    printf("rlimit: ok\n");
    fflush(stdout); /* the child leaves by _exit */
    return 0;
}

static int run_rlimit(void)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0)
        _exit(rlimit_child());
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) {
        perror("fork");
        return 1;
    }
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "rlimit: the child died of signal %d\n", WTERMSIG(status));
        return 1;
    }
    return WEXITSTATUS(status);
}

/* ---- phases under RLIMIT_AS, against the C library's malloc ---- */

struct api {
    const char *name;
    void *(*malloc)(size_t);
    void *(*calloc)(size_t, size_t);
    void *(*aligned_alloc)(size_t, size_t);
    void (*free)(void *);
};

enum {
    PHASE_SMALL, PHASE_MEDIUM, PHASE_BIG_MEDIUM, PHASE_LARGE, PHASE_CALLOC, PHASE_CALLOC_MEDIUM,
    PHASE_ALIGNED, PHASE_COUNT
};
static const char *const phase_name[PHASE_COUNT] = {
    "malloc(64)", "malloc(1000..20000)", "malloc(3000..300000)", "malloc(1 MiB)",
    "calloc(1, 2 MiB)", "calloc(1, 20000)", "aligned_alloc(65536, 65536)",
};
/* In percent of the C library's bytes. */
static const int phase_share[PHASE_COUNT] = {90, 90, 85, 90, 90, 90, 90};

static void *phase_alloc(const struct api *a, int phase, long i, size_t *size)
{
    static const size_t medium[] = {1000, 3000, 8000, 20000};
    static const size_t big_medium[] = {3000, 20000, 100000, 300000};
    switch (phase) {
    case PHASE_SMALL: *size = 64; return a->malloc(64);
    case PHASE_MEDIUM: *size = medium[i % 4]; return a->malloc(*size);
    case PHASE_BIG_MEDIUM: *size = big_medium[i % 4]; return a->malloc(*size);
    case PHASE_LARGE: *size = MiB; return a->malloc(MiB);
    case PHASE_CALLOC: *size = 2 * MiB; return a->calloc(1, 2 * MiB);
    case PHASE_CALLOC_MEDIUM: *size = 20000; return a->calloc(1, 20000);
    default: *size = 65536; return a->aligned_alloc(65536, 65536);
    }
}

/* Runs in a child: the bytes each phase got, and whether malloc(8 MiB)
 * succeeded right after the last free, into out[] (shared with the
 * parent through a pipe). */
static void phases_child(const struct api *a, int fd)
{
    a->free(a->malloc(100));
    long vm_kb = wl_proc_field("/proc/self/status", "VmSize");
    struct rlimit rl = {.rlim_cur = (rlim_t)(vm_kb * 1024 + 64 * MiB),
                        .rlim_max = (rlim_t)(vm_kb * 1024 + 64 * MiB)};
    if (vm_kb < 0 || setrlimit(RLIMIT_AS, &rl) != 0)
        _exit(1);
    long out[PHASE_COUNT + 1];
    for (int phase = 0; phase < PHASE_COUNT; phase++) {
        struct node *list = NULL;
        size_t bytes = 0, size;
        for (long i = 0;; i++) {
            struct node *b = phase_alloc(a, phase, i, &size);
            if (b == NULL)
                break;
            b->next = list;
            list = b;
            bytes += size;
        }
        while (list) {
            struct node *n = list->next;
            a->free(list);
            list = n;
        }
        out[phase] = (long)bytes;
    }
    void *big = a->malloc(8 * MiB);
    out[PHASE_COUNT] = big != NULL;
    if (write(fd, out, sizeof out) != (ssize_t)sizeof out)
        _exit(1);
    _exit(0);
}

static bool run_phases_in_child(const struct api *a, long *out)
{
    int fds[2];
    if (pipe(fds) != 0)
        return false;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        phases_child(a, fds[1]);
    }
    close(fds[1]);
    bool ok = read(fds[0], out, (PHASE_COUNT + 1) * sizeof *out) ==
              (ssize_t)((PHASE_COUNT + 1) * sizeof *out);
    close(fds[0]);
    int status;
    ok = ok && pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
         WEXITSTATUS(status) == 0;
    if (!ok)
        fprintf(stderr, "phases: the %s child failed\n", a->name);
    return ok;
}

static int run_phases(void)
{
    if (TEST_ASAN) { /* the C library's malloc is the sanitizer's here */
        printf("phases: skipped under AddressSanitizer\n");
        return TEST_SKIP;
    }
    static const struct api libc = {"libc", malloc, calloc, aligned_alloc, free};
    static const struct api ours = {"mapalloc", mapalloc_malloc, mapalloc_calloc,
                                    mapalloc_aligned_alloc, mapalloc_free};
    long want[PHASE_COUNT + 1], got[PHASE_COUNT + 1];
    if (!run_phases_in_child(&libc, want) || !run_phases_in_child(&ours, got))
        return 1;
    int failed = 0;
    for (int phase = 0; phase < PHASE_COUNT; phase++) {
        bool ok = got[phase] >= want[phase] / 100 * phase_share[phase];
        printf("phases: %-28s mapalloc %6.1f MiB, libc %6.1f MiB (%.0f%%, at least %d%%)%s\n",
               phase_name[phase], (double)got[phase] / (double)MiB, (double)want[phase] / (double)MiB,
               100.0 * (double)got[phase] / (double)want[phase], phase_share[phase],
               ok ? "" : "  FAILED");
        failed += !ok;
    }
    printf("phases: malloc(8 MiB) right after the last free: mapalloc %s, libc %s\n",
           got[PHASE_COUNT] ? "ok" : "failed", want[PHASE_COUNT] ? "ok" : "failed");
    failed += want[PHASE_COUNT] && !got[PHASE_COUNT];
    return failed ? 1 : 0;
}

/* ---- maps ---- */

static int run_maps(long bound)
{
    enum { N = 1000000 };
    void **blocks = calloc(N, sizeof *blocks);
    if (blocks == NULL)
        return 1;
    mapalloc_free(mapalloc_malloc(1));
    long before = count_maps();
    uint64_t rs = 0x2545f4914f6cdd1dull;
    size_t bytes = 0;
    unsigned large = 0;
    for (long i = 0; i < N; i++) {
        uint64_t x = wl_rand(&rs);
        unsigned r = (unsigned)(x % 10000);
        size_t size = r < 8500 ? 8 + (size_t)(x >> 20) % 249        /* 85%: 8 to 256 */
                      : r < 9900 ? 257 + (size_t)(x >> 20) % 1792   /* 14%: to 2 KiB */
                      : r < 9999 ? 2049 + (size_t)(x >> 20) % 63488 /* 0.99%: to 64 KiB */
                                 : 600 * 1024 + (size_t)(x >> 20) % (1400 * 1024); /* large */
        large += r >= 9999;
        blocks[i] = mapalloc_malloc(size);
        if (blocks[i] == NULL) {
            fprintf(stderr, "maps: malloc(%zu) failed after %ld blocks\n", size, i);
            return 1;
        }
        ((char *)blocks[i])[0] = 1;
        ((char *)blocks[i])[size - 1] = 2;
        bytes += size;
    }
    long live = count_maps();
    struct mapalloc_stats st;
    mapalloc_stats_get(&st);
    for (long i = 0; i < N; i++)
        mapalloc_free(blocks[i]);
    mapalloc_trim(0);
    long after = count_maps();
    free(blocks);

    long max_map = wl_proc_number("/proc/sys/vm/max_map_count");
    printf("maps: %d live blocks (%u large, %zu MiB requested, %zu MiB mapped, %llu regions): "
           "%ld lines in /proc/self/maps, %ld before (+%ld), %ld after freeing and trim; "
           "vm.max_map_count %ld\n", N, large, bytes >> 20, st.mapped >> 20,
           (unsigned long long)st.regions, live, before, live - before, after, max_map);
    if (live - before >= bound) {
        fprintf(stderr, "maps: %ld mappings added, the bound is %ld\n", live - before, bound);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "rlimit") == 0)
        return run_rlimit();
    if (argc == 2 && strcmp(argv[1], "phases") == 0)
        return run_phases();
    if ((argc == 2 || argc == 3) && strcmp(argv[1], "maps") == 0)
        return run_maps(argc == 3 ? atol(argv[2]) : MAPS_BOUND);
    fprintf(stderr, "usage: test_limits rlimit | phases | maps [BOUND]\n");
    return 2;
}
