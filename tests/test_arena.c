/* The explicit arena API, against the public header only.
 *
 * One binary, one subtest per argument (no argument: all of them), so that
 * meson lists each property of the API as a test of its own:
 *   options   create/destroy with each option, and what each one does
 *   invalid   options that create must refuse
 *   malloc calloc realloc aligned free   the operations inside one arena
 *   threads   four threads sharing one arena, blocks freed across threads
 *   limit     the hard limit: ENOMEM, the arena intact, room after a free
 *   reset     reset under load, repeated, with threads
 *   reset_keep  the pages a reset keeps: committed, the limit, mappings
 *   reset_time  reset costs the same with 1,000 or 200,000 live blocks
 *   destroy   mapped and resident memory return to where they were
 *   stats_remote limit_remote   statistics and the limit after frees from
 *             another thread or through mapalloc_free
 * The misuse aborts are in test_arena_death.c. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mapalloc.h"
#include "rng.h"
#include "sys.h"

static int failures;
#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
            failures++;                                                                \
        }                                                                              \
    } while (0)

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

/* ---- helpers ---- */

/* Fills a block with bytes derived from seed; check_fill says whether they
 * are still there (every byte up to 4 KiB; beyond, the first and last 64
 * bytes and a stride in between: enough to see a block that moved,
 * overlapped or was handed out twice). */
static void fill(void *p, size_t n, uint64_t seed)
{
    unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        c[i] = (unsigned char)(seed * 31 + i * 7 + (i >> 8));
}

static int check_fill(const void *p, size_t n, uint64_t seed)
{
    const unsigned char *c = p;
    if (n <= 4096) {
        for (size_t i = 0; i < n; i++)
            if (c[i] != (unsigned char)(seed * 31 + i * 7 + (i >> 8)))
                return 0;
        return 1;
    }
    for (size_t i = 0; i < n; i += (i < 64 || i + 64 >= n) ? 1 : 509)
        if (c[i] != (unsigned char)(seed * 31 + i * 7 + (i >> 8)))
            return 0;
    return 1;
}

static int all_zero(const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i])
            return 0;
    return 1;
}

/* Writes every 4 KiB page of the range, so it becomes resident. */
static void touch(void *p, size_t n)
{
    for (size_t i = 0; i < n; i += 4096)
        ((volatile char *)p)[i] = 1;
    if (n)
        ((volatile char *)p)[n - 1] = 1;
}

static struct mapalloc_arena_stats astats(mapalloc_arena *a)
{
    struct mapalloc_arena_stats s;
    mapalloc_arena_stats(a, &s);
    return s;
}

/* The live-block count after frees, some of them remote (mapalloc_free,
 * or another thread): a remote free reaches the count only when the owning
 * heap collects its page, so the count may be high by up to that many,
 * never low. The exact count is checked by the stats_remote subtest. */
#define CHECK_BLOCKS(a, expect, remote) check_blocks(a, expect, remote, __LINE__)
static void check_blocks(mapalloc_arena *a, size_t expect, size_t remote, int line)
{
    size_t b = astats(a).blocks;
    if (b < expect || b > expect + remote) {
        fprintf(stderr, "%s:%d: CHECK failed: %zu live blocks, expected %zu (+%zu remote)\n", __FILE__,
                line, b, expect, remote);
        failures++;
    }
}

static struct mapalloc_stats pstats(void)
{
    struct mapalloc_stats s;
    mapalloc_stats_get(&s);
    return s;
}

/* ---- create, destroy, and what each option does ---- */

static const size_t mixed_sizes[] = {1, 24, 100, 1000, 5000, 70000, 300000, 600000, 3 * MiB};
#define NMIXED (sizeof mixed_sizes / sizeof mixed_sizes[0])

/* Allocates the mixed sizes, checks them, frees half with each free, then
 * allocates again and resets. */
static void exercise(mapalloc_arena *a)
{
    void *p[NMIXED];
    size_t sum = 0;
    for (size_t i = 0; i < NMIXED; i++) {
        p[i] = mapalloc_arena_malloc(a, mixed_sizes[i]);
        CHECK(p[i] != NULL);
        if (p[i] == NULL)
            return;
        CHECK(mapalloc_usable_size(p[i]) >= mixed_sizes[i]);
        fill(p[i], mixed_sizes[i], i);
        sum += mixed_sizes[i];
    }
    struct mapalloc_arena_stats s = astats(a);
    CHECK(s.blocks == NMIXED);
    CHECK(s.live >= sum);
    CHECK(s.committed >= sum && s.mapped >= s.committed);
    CHECK(s.peak >= s.committed);
    for (size_t i = 0; i < NMIXED; i++) {
        CHECK(check_fill(p[i], mixed_sizes[i], i));
        if (i & 1)
            mapalloc_arena_free(a, p[i]);
        else
            mapalloc_free(p[i]);
    }
    CHECK_BLOCKS(a, 0, NMIXED / 2 + 1);
    for (size_t i = 0; i < NMIXED; i++) {
        p[i] = mapalloc_arena_malloc(a, mixed_sizes[i]);
        CHECK(p[i] != NULL);
        if (p[i])
            fill(p[i], mixed_sizes[i], i + 100);
    }
    for (size_t i = 0; i < NMIXED; i++)
        CHECK(p[i] == NULL || check_fill(p[i], mixed_sizes[i], i + 100));
    mapalloc_arena_reset(a);
    s = astats(a);
    CHECK(s.blocks == 0 && s.live == 0 && s.committed == 0);
    void *q = mapalloc_arena_malloc(a, 48);
    CHECK(q != NULL);
    mapalloc_arena_free(a, q);
}

static void test_options(void)
{
    const long overcommit = wl_proc_number("/proc/sys/vm/overcommit_memory");
    const long hugepages = wl_proc_number("/proc/sys/vm/nr_hugepages");

    /* NULL options and zero options: the defaults. Where every mapping
     * comes from /dev/zero anyway (the no_map_anonymous build, or the
     * devzero option), the flag cannot be told apart. */
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    CHECK(a != NULL);
    struct mapalloc_arena_stats s = astats(a);
    CHECK(s.live == 0 && s.blocks == 0 && s.committed == 0 && s.mapped == 0 && s.peak == 0);
    int devzero_always = 0;
    {
        void *p = mapalloc_arena_malloc(a, 100);
        char line[512] = "";
        CHECK(wl_maps_line(p, line, sizeof line));
        devzero_always = strstr(line, "/dev/zero") != NULL;
        mapalloc_arena_free(a, p);
    }
    exercise(a);
    mapalloc_arena_destroy(a);
    struct mapalloc_arena_options o = {0, 0, 0};
    a = mapalloc_arena_create(&o);
    CHECK(a != NULL);
    exercise(a);
    mapalloc_arena_destroy(a);

    /* Each flag alone, then all together with a limit and a reservation. */
    const unsigned flag_sets[] = {
        MAPALLOC_ARENA_HUGE, MAPALLOC_ARENA_NORESERVE, MAPALLOC_ARENA_DEVZERO,
        MAPALLOC_ARENA_RESET_RETURNS,
        MAPALLOC_ARENA_HUGE | MAPALLOC_ARENA_NORESERVE | MAPALLOC_ARENA_DEVZERO |
            MAPALLOC_ARENA_RESET_RETURNS,
    };
    for (size_t k = 0; k < sizeof flag_sets / sizeof flag_sets[0]; k++) {
        unsigned f = flag_sets[k];
        for (int with_limits = 0; with_limits < 2; with_limits++) {
            o = (struct mapalloc_arena_options){f, with_limits ? 64 * MiB : 0, with_limits ? 8 * MiB : 0};
            uint64_t fallbacks = pstats().huge_fallbacks;
            a = mapalloc_arena_create(&o);
            CHECK(a != NULL);
            if (a == NULL)
                continue;
            void *small = mapalloc_arena_malloc(a, 200);
            void *large = mapalloc_arena_malloc(a, 4 * MiB);
            CHECK(small && large);
            if (small && large) {
                touch(small, 200);
                touch(large, 4 * MiB);
                /* Each block's line of /proc/self/maps and its VmFlags. */
                char line_s[512] = "", flags_s[512] = "", line_l[512] = "", flags_l[512] = "";
                uintptr_t lo, hi;
                CHECK(wl_maps_line(small, line_s, sizeof line_s));
                CHECK(wl_maps_line(large, line_l, sizeof line_l));
                CHECK(wl_smaps_field(small, "VmFlags", &lo, &hi, flags_s, sizeof flags_s));
                CHECK(wl_smaps_field(large, "VmFlags", &lo, &hi, flags_l, sizeof flags_l));
                if (f & MAPALLOC_ARENA_DEVZERO) {
                    CHECK(strstr(line_s, "/dev/zero") != NULL);
                    CHECK(strstr(line_l, "/dev/zero") != NULL);
                } else if (!devzero_always) {
                    CHECK(strstr(line_s, "/dev/zero") == NULL);
                    CHECK(strstr(line_l, "/dev/zero") == NULL);
                }
                /* MAP_NORESERVE shows as "nr" unless overcommit is off, in
                 * which case the kernel ignores it. A huge try drops it. */
                int huge_mapped = wl_vmflag(flags_s, "ht");
                if ((f & MAPALLOC_ARENA_NORESERVE) && overcommit != 2 && !huge_mapped) {
                    CHECK(wl_vmflag(flags_s, "nr"));
                    CHECK(wl_vmflag(flags_l, "nr"));
                }
                if (!(f & MAPALLOC_ARENA_NORESERVE)) {
                    CHECK(!wl_vmflag(flags_s, "nr"));
                    CHECK(!wl_vmflag(flags_l, "nr"));
                }
                if (f & MAPALLOC_ARENA_HUGE) {
                    if (hugepages == 0 || (f & MAPALLOC_ARENA_DEVZERO))
                        CHECK(pstats().huge_fallbacks > fallbacks); /* refused, and counted */
                    else
                        CHECK(huge_mapped || pstats().huge_fallbacks > fallbacks);
                } else {
                    CHECK(!huge_mapped);
                }
            }
            if (with_limits) {
                s = astats(a);
                CHECK(s.mapped >= 8 * MiB + 4 * MiB); /* the reservation, and the large block */
            }
            mapalloc_arena_free(a, small);
            mapalloc_arena_free(a, large);
            exercise(a);
            mapalloc_arena_destroy(a);
        }
    }

    /* reserve: mapped at creation, enough for blocks up to it without a new
     * mapping, and kept by a reset that returns memory. */
    o = (struct mapalloc_arena_options){MAPALLOC_ARENA_RESET_RETURNS, 0, 16 * MiB};
    a = mapalloc_arena_create(&o);
    CHECK(a != NULL);
    s = astats(a);
    CHECK(s.mapped >= 16 * MiB && s.committed == 0 && s.blocks == 0);
    size_t mapped0 = s.mapped;
    uint64_t mmaps0 = pstats().mmap_calls;
    for (int i = 0; i < 10000; i++) { /* 10 MiB of 1 KiB blocks */
        void *p = mapalloc_arena_malloc(a, 1000);
        CHECK(p != NULL);
    }
    s = astats(a);
    CHECK(s.mapped == mapped0);
    CHECK(pstats().mmap_calls == mmaps0);
    for (int i = 0; i < 12000; i++) /* past the reservation */
        CHECK(mapalloc_arena_malloc(a, 1000) != NULL);
    CHECK(astats(a).mapped > mapped0);
    mapalloc_arena_reset(a);
    s = astats(a);
    CHECK(s.mapped == mapped0 && s.committed == 0 && s.blocks == 0);
    mapalloc_arena_destroy(a);

    /* reset-returns: a reset gives the pages back (resident falls) and the
     * mappings beyond the reservation; without it, a reset keeps them, and
     * the same blocks again need no new mapping. */
    for (int returns = 0; returns < 2; returns++) {
        o = (struct mapalloc_arena_options){returns ? MAPALLOC_ARENA_RESET_RETURNS : 0, 0, 0};
        a = mapalloc_arena_create(&o);
        CHECK(a != NULL);
        for (int round = 0; round < 3; round++) {
            for (int i = 0; i < 32 * 1024; i++) { /* 32 MiB */
                void *p = mapalloc_arena_malloc(a, 1024);
                CHECK(p != NULL);
                if (p)
                    memset(p, 0x5a, 1024);
            }
            struct mapalloc_arena_stats before = astats(a);
            size_t resident_before = pstats().resident;
            mapalloc_arena_reset(a);
            struct mapalloc_arena_stats after = astats(a);
            size_t resident_after = pstats().resident;
            CHECK(before.mapped >= 32 * MiB);
            CHECK(after.blocks == 0 && after.committed == 0);
            if (returns) {
                CHECK(after.mapped == 0);
                CHECK(resident_after + 24 * MiB <= resident_before);
            } else {
                CHECK(after.mapped == before.mapped);
                if (round > 0)
                    CHECK(before.mapped == mapped0); /* the second round reused the pages */
                mapped0 = before.mapped;
            }
        }
        mapalloc_arena_destroy(a);
    }
}

static void test_invalid(void)
{
    struct mapalloc_arena_options o = {1u << 20, 0, 0};
    errno = 0;
    CHECK(mapalloc_arena_create(&o) == NULL && errno == EINVAL);
    o = (struct mapalloc_arena_options){0, 4 * MiB, 8 * MiB};
    errno = 0;
    CHECK(mapalloc_arena_create(&o) == NULL && errno == EINVAL);
    o = (struct mapalloc_arena_options){0, 0, SIZE_MAX};
    errno = 0;
    CHECK(mapalloc_arena_create(&o) == NULL && (errno == EINVAL || errno == ENOMEM));
    /* destroy(NULL) does nothing, like free(NULL). */
    mapalloc_arena_destroy(NULL);
}

/* ---- the operations inside one arena ---- */

static void test_malloc(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    CHECK(a != NULL);
    const size_t sizes[] = {0, 1, 15, 16, 17, 128, 129, 1024, 1025, 4096, 65536, 100000,
                            512 * KiB, 512 * KiB + 1, 2 * MiB, 9 * MiB + 123};
    enum { N = sizeof sizes / sizeof sizes[0] };
    void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = mapalloc_arena_malloc(a, sizes[i]);
        CHECK(p[i] != NULL);
        CHECK(((uintptr_t)p[i] & 15) == 0);
        CHECK(mapalloc_usable_size(p[i]) >= sizes[i]);
        fill(p[i], sizes[i], (uint64_t)i);
        for (int j = 0; j < i; j++)
            CHECK(p[j] != p[i]);
        CHECK(astats(a).blocks == (size_t)i + 1);
    }
    for (int i = 0; i < N; i++)
        CHECK(check_fill(p[i], sizes[i], (uint64_t)i));
    /* The arena's blocks are not the ordinary heap's: its live count does
     * not see them, the arena's does. */
    for (int i = 0; i < N; i++)
        mapalloc_arena_free(a, p[i]);
    CHECK(astats(a).blocks == 0 && astats(a).live == 0);
    mapalloc_arena_free(a, NULL);
    errno = 0;
    CHECK(mapalloc_arena_malloc(a, SIZE_MAX) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(mapalloc_arena_malloc(a, (size_t)PTRDIFF_MAX + 1) == NULL && errno == ENOMEM);
    /* Many blocks of one size: all distinct, all intact. */
    enum { M = 20000 };
    static void *many[M];
    for (int i = 0; i < M; i++) {
        many[i] = mapalloc_arena_malloc(a, 40);
        CHECK(many[i] != NULL);
        fill(many[i], 40, (uint64_t)i);
    }
    for (int i = 0; i < M; i++)
        CHECK(check_fill(many[i], 40, (uint64_t)i));
    CHECK(astats(a).blocks == M);
    mapalloc_arena_destroy(a);
}

static void test_calloc(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    CHECK(a != NULL);
    const size_t sizes[] = {1, 16, 100, 1000, 4000, 60000, 400000, 600000, 3 * MiB};
    enum { N = sizeof sizes / sizeof sizes[0], R = 64 };
    static void *p[N][R];
    /* Dirty blocks, freed one by one: calloc hands them out zeroed. */
    for (int i = 0; i < N; i++)
        for (int r = 0; r < R; r++) {
            p[i][r] = mapalloc_arena_malloc(a, sizes[i]);
            CHECK(p[i][r] != NULL);
            memset(p[i][r], 0xa5, sizes[i]);
        }
    for (int i = 0; i < N; i++)
        for (int r = 0; r < R; r++)
            mapalloc_arena_free(a, p[i][r]);
    for (int i = 0; i < N; i++)
        for (int r = 0; r < R; r++) {
            void *q = mapalloc_arena_calloc(a, 1, sizes[i]);
            CHECK(q != NULL && all_zero(q, sizes[i]));
            memset(q, 0xa5, sizes[i]);
            p[i][r] = q;
        }
    /* After a reset the same memory is reused (no new mapping), and calloc
     * still zeroes it. */
    size_t mapped_before = astats(a).mapped;
    mapalloc_arena_reset(a);
    size_t reused = 0;
    for (int i = 0; i < N; i++)
        for (int r = 0; r < R; r++) {
            void *q = mapalloc_arena_calloc(a, sizes[i], 1);
            CHECK(q != NULL && all_zero(q, sizes[i]));
            for (int j = 0; j < N && sizes[i] <= 512 * KiB; j++)
                for (int k = 0; k < R; k++)
                    reused += q == p[j][k];
            memset(q, 0x3c, sizes[i]);
        }
    CHECK(reused > 0);
    CHECK(astats(a).mapped <= mapped_before + 4 * MiB); /* may pack one region differently */
    /* count * size overflows: ENOMEM. */
    errno = 0;
    CHECK(mapalloc_arena_calloc(a, SIZE_MAX / 2, 4) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(mapalloc_arena_calloc(a, (size_t)1 << 32, (size_t)1 << 32) == NULL && errno == ENOMEM);
    void *z = mapalloc_arena_calloc(a, 0, 0);
    CHECK(z != NULL);
    mapalloc_arena_free(a, z);
    mapalloc_arena_destroy(a);
}

static void test_realloc(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    mapalloc_arena *other = mapalloc_arena_create(NULL);
    CHECK(a && other);
    /* One block through a chain of sizes, small <-> large: the contents up
     * to the smaller size survive, and the block stays in the arena. */
    const size_t chain[] = {10, 100, 1000, 70000, 600000, 5 * MiB, 300000, 48, 2 * MiB, 24, 0};
    for (int via_public = 0; via_public < 2; via_public++) {
        void *p = mapalloc_arena_realloc(a, NULL, 10); /* realloc(NULL) is malloc */
        CHECK(p != NULL);
        fill(p, 10, 77);
        size_t have = 10;
        for (size_t i = 1; chain[i]; i++) {
            void *q = via_public ? mapalloc_realloc(p, chain[i]) : mapalloc_arena_realloc(a, p, chain[i]);
            CHECK(q != NULL);
            if (q == NULL)
                break;
            size_t keep = have < chain[i] ? have : chain[i];
            unsigned char *c = q;
            int ok = 1;
            for (size_t j = 0; j < keep; j += keep > 8192 ? 61 : 1)
                ok &= c[j] == (unsigned char)(77 * 31 + j * 7 + (j >> 8));
            CHECK(ok);
            fill(q, chain[i], 77);
            have = chain[i];
            p = q;
            struct mapalloc_arena_stats s = astats(a);
            CHECK_BLOCKS(a, 1, via_public ? i : 0);
            CHECK(s.live >= chain[i]);
            CHECK(astats(other).blocks == 0);
        }
        /* realloc(p, 0) frees. */
        void *r = via_public ? mapalloc_realloc(p, 0) : mapalloc_arena_realloc(a, p, 0);
        CHECK(r == NULL);
        CHECK_BLOCKS(a, 0, via_public ? 16 : 0);
        mapalloc_arena_reset(a);
    }
    /* A realloc the arena cannot grant leaves the block as it was. */
    void *p = mapalloc_arena_malloc(a, 100);
    fill(p, 100, 5);
    errno = 0;
    CHECK(mapalloc_arena_realloc(a, p, SIZE_MAX) == NULL && errno == ENOMEM);
    CHECK(check_fill(p, 100, 5));
    CHECK(astats(a).blocks == 1);
    mapalloc_arena_free(a, p);
    mapalloc_arena_destroy(other);
    mapalloc_arena_destroy(a);
}

static void test_aligned(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    CHECK(a != NULL);
    size_t count = 0, remote = 0;
    for (size_t align = 16; align <= 2 * MiB; align <<= 1) {
        const size_t sizes[] = {1, align / 2 + 1, align, align + 1, 3 * align, 1000, 700 * KiB};
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            void *p[3];
            for (int k = 0; k < 3; k++) {
                p[k] = mapalloc_arena_aligned_alloc(a, align, sizes[i]);
                CHECK(p[k] != NULL);
                CHECK(((uintptr_t)p[k] & (align - 1)) == 0);
                CHECK(mapalloc_usable_size(p[k]) >= sizes[i]);
                fill(p[k], sizes[i], align + i + (size_t)k);
                count++;
            }
            CHECK_BLOCKS(a, count, remote);
            for (int k = 0; k < 3; k++)
                CHECK(check_fill(p[k], sizes[i], align + i + (size_t)k));
            mapalloc_arena_free(a, p[0]);
            mapalloc_free(p[1]);
            count -= 2;
            remote++;
        }
    }
    errno = 0;
    CHECK(mapalloc_arena_aligned_alloc(a, 3, 10) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(mapalloc_arena_aligned_alloc(a, 0, 10) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(mapalloc_arena_aligned_alloc(a, 64, SIZE_MAX) == NULL && errno == ENOMEM);
    mapalloc_arena_reset(a);
    CHECK(astats(a).blocks == 0);
    void *p = mapalloc_arena_aligned_alloc(a, 4096, 4096);
    CHECK(p && ((uintptr_t)p & 4095) == 0);
    mapalloc_arena_destroy(a);
}

/* Both frees, in both orders, for small and large blocks; the ordinary
 * heap's count does not move. */
static void test_free(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    CHECK(a != NULL);
    enum { N = 4000 };
    static void *p[N];
    static size_t sz[N];
    uint64_t s = 42;
    size_t heap_blocks = pstats().live_blocks;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            sz[i] = (i % 97 == 0) ? 600 * KiB + wl_rand(&s) % MiB : 1 + wl_rand(&s) % 3000;
            p[i] = mapalloc_arena_malloc(a, sz[i]);
            CHECK(p[i] != NULL);
            fill(p[i], sz[i], (uint64_t)i);
        }
        CHECK_BLOCKS(a, N, round * N / 2);
        for (int i = 0; i < N; i++) {
            CHECK(check_fill(p[i], sz[i], (uint64_t)i));
            if ((i + round) % 2)
                mapalloc_free(p[i]);
            else
                mapalloc_arena_free(a, p[i]);
        }
        CHECK_BLOCKS(a, 0, (round + 1) * N / 2);
    }
    mapalloc_arena_reset(a);
    CHECK(pstats().live_blocks >= heap_blocks); /* the arena's blocks never went through it */
    /* Blocks of two arenas and of the ordinary heap side by side. */
    mapalloc_arena *b = mapalloc_arena_create(NULL);
    void *x = mapalloc_arena_malloc(a, 64), *y = mapalloc_arena_malloc(b, 64), *z = mapalloc_malloc(64);
    CHECK(x && y && z);
    CHECK(astats(a).blocks == 1 && astats(b).blocks == 1);
    mapalloc_arena_free(b, y);
    CHECK(astats(a).blocks == 1 && astats(b).blocks == 0);
    mapalloc_arena_free(a, x);
    mapalloc_free(z);
    CHECK(astats(a).blocks == 0);
    mapalloc_arena_destroy(b);
    mapalloc_arena_destroy(a);
}

/* ---- threads sharing one arena ---- */

/* Each thread allocates blocks whose contents name it, its round and its
 * index; half of them it frees itself, half go through a shared mailbox to
 * be checked and freed by whichever thread takes them. */
#define T_THREADS 4
#define T_ROUNDS 40
#define T_BLOCKS 2000
#define T_BOX 4096

struct mail {
    void *p;
    size_t size;
    uint64_t seed;
};
static struct {
    pthread_mutex_t lock;
    struct mail box[T_BOX];
    size_t count;
} mailbox = {PTHREAD_MUTEX_INITIALIZER, {{0, 0, 0}}, 0};

static mapalloc_arena *shared_arena;
static _Atomic long thread_errors;
static _Atomic long cross_frees;

static void take_and_free(int tid, int all)
{
    for (;;) {
        pthread_mutex_lock(&mailbox.lock);
        if (mailbox.count == 0 || (!all && mailbox.count < T_BOX / 2)) {
            pthread_mutex_unlock(&mailbox.lock);
            return;
        }
        struct mail m = mailbox.box[--mailbox.count];
        pthread_mutex_unlock(&mailbox.lock);
        if (!check_fill(m.p, m.size, m.seed))
            thread_errors++;
        if ((int)(m.seed >> 56) != tid)
            cross_frees++;
        if (m.seed & 1)
            mapalloc_free(m.p);
        else
            mapalloc_arena_free(shared_arena, m.p);
    }
}

static void post(void *p, size_t size, uint64_t seed, int tid)
{
    for (;;) {
        pthread_mutex_lock(&mailbox.lock);
        if (mailbox.count < T_BOX) {
            mailbox.box[mailbox.count++] = (struct mail){p, size, seed};
            pthread_mutex_unlock(&mailbox.lock);
            return;
        }
        pthread_mutex_unlock(&mailbox.lock);
        take_and_free(tid, 0);
    }
}

static void *sharer(void *arg)
{
    int tid = (int)(intptr_t)arg;
    uint64_t s = wl_seed(0x1234567ull, (uint64_t)tid);
    static __thread void *mine[T_BLOCKS];
    static __thread size_t mine_size[T_BLOCKS];
    for (int round = 0; round < T_ROUNDS; round++) {
        for (int i = 0; i < T_BLOCKS; i++) {
            uint64_t r = wl_rand(&s);
            size_t size = (r % 200 == 0) ? 520 * KiB + r % (256 * KiB) : 1 + (r >> 8) % 2048;
            uint64_t seed = ((uint64_t)tid << 56) | ((uint64_t)round << 32) | (uint64_t)i;
            void *p = (r % 7 == 0) ? mapalloc_arena_calloc(shared_arena, 1, size)
                                   : mapalloc_arena_malloc(shared_arena, size);
            if (p == NULL) {
                thread_errors++;
                continue;
            }
            if (r % 7 == 0 && !all_zero(p, size))
                thread_errors++;
            fill(p, size, seed);
            if (i & 1) {
                post(p, size, seed, tid);
                mine[i] = NULL;
            } else {
                mine[i] = p;
                mine_size[i] = size;
            }
        }
        for (int i = 0; i < T_BLOCKS; i += 2) {
            uint64_t seed = ((uint64_t)tid << 56) | ((uint64_t)round << 32) | (uint64_t)i;
            if (mine[i] && !check_fill(mine[i], mine_size[i], seed))
                thread_errors++;
            if (mine[i] && i % 4 == 0) {
                /* A realloc in the shared arena, then the free. */
                void *q = mapalloc_arena_realloc(shared_arena, mine[i], mine_size[i] + 100);
                if (q == NULL || !check_fill(q, mine_size[i], seed))
                    thread_errors++;
                mine[i] = q;
            }
            mapalloc_arena_free(shared_arena, mine[i]);
        }
        take_and_free(tid, 0);
    }
    return NULL;
}

/* Threads that leave blocks behind when they exit: the main thread checks
 * and frees them after the join. */
static void *leaver(void *arg)
{
    struct mail *out = arg;
    for (int i = 0; i < 1000; i++) {
        size_t size = 16 + (size_t)i % 500;
        void *p = mapalloc_arena_malloc(shared_arena, size);
        if (p == NULL) {
            thread_errors++;
            continue;
        }
        fill(p, size, (uint64_t)i);
        out[i] = (struct mail){p, size, (uint64_t)i};
    }
    return NULL;
}

static void test_threads(void)
{
    shared_arena = mapalloc_arena_create(NULL);
    CHECK(shared_arena != NULL);
    pthread_t t[T_THREADS];
    for (int i = 0; i < T_THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, sharer, (void *)(intptr_t)i) == 0);
    for (int i = 0; i < T_THREADS; i++)
        pthread_join(t[i], NULL);
    take_and_free(-1, 1);
    CHECK(thread_errors == 0);
    CHECK(cross_frees > 0);
    CHECK_BLOCKS(shared_arena, 0, (size_t)T_THREADS * T_ROUNDS * T_BLOCKS);
    mapalloc_arena_reset(shared_arena);
    struct mapalloc_arena_stats s = astats(shared_arena);
    CHECK(s.blocks == 0 && s.live == 0 && s.committed == 0);

    /* Blocks of exited threads: still intact, freeable here, then reset. */
    static struct mail left[T_THREADS][1000];
    for (int i = 0; i < T_THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, leaver, left[i]) == 0);
    for (int i = 0; i < T_THREADS; i++)
        pthread_join(t[i], NULL);
    CHECK(astats(shared_arena).blocks == T_THREADS * 1000);
    for (int i = 0; i < T_THREADS; i++)
        for (int k = 0; k < 1000; k += 2) {
            CHECK(check_fill(left[i][k].p, left[i][k].size, left[i][k].seed));
            mapalloc_arena_free(shared_arena, left[i][k].p);
        }
    CHECK_BLOCKS(shared_arena, T_THREADS * 500, T_THREADS * 500);
    mapalloc_arena_reset(shared_arena);
    CHECK(astats(shared_arena).blocks == 0);
    /* A second run of sharers on the reset arena. */
    for (int i = 0; i < T_THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, sharer, (void *)(intptr_t)i) == 0);
    for (int i = 0; i < T_THREADS; i++)
        pthread_join(t[i], NULL);
    take_and_free(-1, 1);
    CHECK(thread_errors == 0);
    CHECK_BLOCKS(shared_arena, 0, (size_t)T_THREADS * T_ROUNDS * T_BLOCKS);
    mapalloc_arena_destroy(shared_arena);
}

/* ---- the limit ---- */

static void test_limit(void)
{
    const size_t limit = 8 * MiB;
    struct mapalloc_arena_options o = {0, limit, 0};
    mapalloc_arena *a = mapalloc_arena_create(&o);
    CHECK(a != NULL);
    /* Fill with small blocks until the limit refuses. */
    enum { MAXB = 20000 };
    static void *p[MAXB];
    int n = 0;
    errno = 0;
    while (n < MAXB && (p[n] = mapalloc_arena_malloc(a, 1000)) != NULL) {
        fill(p[n], 1000, (uint64_t)n);
        n++;
    }
    CHECK(n < MAXB && n > 1000);
    CHECK(errno == ENOMEM);
    struct mapalloc_arena_stats s = astats(a);
    CHECK(s.committed <= limit && s.peak <= limit);
    CHECK(s.blocks == (size_t)n);
    /* Refused again, by every call; nothing changed. */
    errno = 0;
    CHECK(mapalloc_arena_malloc(a, 1000) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(mapalloc_arena_calloc(a, 1, 1000) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(mapalloc_arena_aligned_alloc(a, 4096, 1000) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(mapalloc_arena_malloc(a, 600 * KiB) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(mapalloc_arena_realloc(a, p[0], 600 * KiB) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(mapalloc_arena_malloc(a, limit + 1) == NULL && errno == ENOMEM);
    CHECK(astats(a).blocks == (size_t)n);
    CHECK(astats(a).committed == s.committed);
    for (int i = 0; i < n; i++)
        CHECK(check_fill(p[i], 1000, (uint64_t)i));
    /* Freeing makes room: one block for one block. */
    mapalloc_arena_free(a, p[n - 1]);
    p[n - 1] = mapalloc_arena_malloc(a, 1000);
    CHECK(p[n - 1] != NULL);
    if (p[n - 1])
        fill(p[n - 1], 1000, (uint64_t)n - 1);
    /* Freeing everything makes room for large blocks too. */
    for (int i = 0; i < n; i++)
        mapalloc_arena_free(a, p[i]);
    CHECK(astats(a).blocks == 0);
    void *big = mapalloc_arena_malloc(a, 600 * KiB);
    CHECK(big != NULL);
    mapalloc_arena_free(a, big);
    mapalloc_arena_destroy(a);

    /* Large blocks count against the limit as well. */
    a = mapalloc_arena_create(&o);
    void *l1 = mapalloc_arena_malloc(a, 3 * MiB), *l2 = mapalloc_arena_malloc(a, 3 * MiB);
    CHECK(l1 && l2);
    fill(l1, 3 * MiB, 1);
    fill(l2, 3 * MiB, 2);
    CHECK(astats(a).committed >= 6 * MiB);
    errno = 0;
    CHECK(mapalloc_arena_malloc(a, 3 * MiB) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(mapalloc_arena_realloc(a, l1, 6 * MiB) == NULL && errno == ENOMEM); /* 3 + 3 + 3 > 8 */
    CHECK(check_fill(l1, 3 * MiB, 1) && check_fill(l2, 3 * MiB, 2));
    /* Small blocks still fit in what is left. */
    void *sm = mapalloc_arena_malloc(a, 100);
    CHECK(sm != NULL);
    mapalloc_free(l2); /* room again */
    void *l3 = mapalloc_arena_malloc(a, 3 * MiB);
    CHECK(l3 != NULL);
    CHECK(astats(a).committed <= limit);
    CHECK(check_fill(l1, 3 * MiB, 1));
    /* A reset gives the whole limit back. */
    mapalloc_arena_reset(a);
    void *l4 = mapalloc_arena_malloc(a, 7 * MiB);
    CHECK(l4 != NULL);
    mapalloc_arena_destroy(a);

    /* Four threads against one limit: the sum never passes it. */
    o.limit = 16 * MiB;
    shared_arena = mapalloc_arena_create(&o);
    pthread_t t[T_THREADS];
    static struct mail left[T_THREADS][1000];
    for (int i = 0; i < T_THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, leaver, left[i]) == 0);
    for (int i = 0; i < T_THREADS; i++)
        pthread_join(t[i], NULL);
    CHECK(thread_errors == 0);
    s = astats(shared_arena);
    CHECK(s.committed <= o.limit && s.peak <= o.limit);
    int got = 0;
    while (mapalloc_arena_malloc(shared_arena, 4000) != NULL)
        got++;
    CHECK(errno == ENOMEM);
    CHECK(astats(shared_arena).committed <= o.limit);
    CHECK(got > 100);
    for (int i = 0; i < T_THREADS; i++)
        for (int k = 0; k < 1000; k++)
            CHECK(check_fill(left[i][k].p, left[i][k].size, left[i][k].seed));
    mapalloc_arena_destroy(shared_arena);
}

/* ---- reset under load ---- */

static void *filler(void *arg)
{
    mapalloc_arena *a = arg;
    uint64_t s = (uint64_t)(uintptr_t)&s;
    for (int i = 0; i < 50000; i++) {
        size_t size = 1 + wl_rand(&s) % 700;
        void *p = mapalloc_arena_malloc(a, size);
        if (p == NULL) {
            thread_errors++;
            continue;
        }
        memset(p, 0xee, size);
    }
    return NULL;
}

static void test_reset(void)
{
    for (int returns = 0; returns < 2; returns++) {
        struct mapalloc_arena_options o = {returns ? MAPALLOC_ARENA_RESET_RETURNS : 0, 0, 0};
        mapalloc_arena *a = mapalloc_arena_create(&o);
        CHECK(a != NULL);
        enum { N = 200000 };
        void **p = malloc(N * sizeof *p);
        size_t *sz = malloc(N * sizeof *sz);
        size_t mapped_first = 0;
        for (int round = 0; round < 6; round++) {
            uint64_t s = 99; /* the same blocks every round */
            for (int i = 0; i < N; i++) {
                uint64_t r = wl_rand(&s);
                sz[i] = (r % 5000 == 0) ? 520 * KiB + r % MiB : 1 + (r >> 10) % 512;
                p[i] = mapalloc_arena_malloc(a, sz[i]);
                CHECK(p[i] != NULL);
                fill(p[i], sz[i], (uint64_t)i + (uint64_t)round);
            }
            for (int i = 0; i < N; i++)
                CHECK(check_fill(p[i], sz[i], (uint64_t)i + (uint64_t)round));
            struct mapalloc_arena_stats before = astats(a);
            CHECK(before.blocks == N);
            if (round == 0)
                mapped_first = before.mapped;
            else if (!returns)
                CHECK(before.mapped <= mapped_first); /* the same blocks fit in the kept pages */
            mapalloc_arena_reset(a);
            struct mapalloc_arena_stats after = astats(a);
            CHECK(after.blocks == 0 && after.live == 0 && after.committed == 0 && after.peak == 0);
        }
        /* Threads fill it, exit, main resets; three times. */
        for (int round = 0; round < 3; round++) {
            pthread_t t[T_THREADS];
            for (int i = 0; i < T_THREADS; i++)
                CHECK(pthread_create(&t[i], NULL, filler, a) == 0);
            for (int i = 0; i < T_THREADS; i++)
                pthread_join(t[i], NULL);
            CHECK(astats(a).blocks == T_THREADS * 50000);
            mapalloc_arena_reset(a);
            struct mapalloc_arena_stats after = astats(a);
            CHECK(after.blocks == 0 && after.live == 0 && after.committed == 0);
            void *q = mapalloc_arena_malloc(a, 100);
            CHECK(q != NULL);
            mapalloc_arena_free(a, q);
        }
        CHECK(thread_errors == 0);
        free(p);
        free(sz);
        mapalloc_arena_destroy(a);
    }
}

/* ---- reset time does not grow with the number of blocks ----
 *
 * Both cases have the same mappings and pages: 200,000 blocks of 16..64
 * bytes are allocated, and in the sparse case all but every 200th are freed
 * before the reset. A reset that walked the blocks would take 200 times
 * longer in the dense case; one that walks the mappings takes the same time.
 * The best of 15 tries is compared, with a factor 20 and 200 us of slack for
 * a noisy machine. */
static double timed_reset(mapalloc_arena *a, void **p, int n, int keep_every)
{
    uint64_t s = 7;
    for (int i = 0; i < n; i++)
        p[i] = mapalloc_arena_malloc(a, 16 + wl_rand(&s) % 49);
    if (keep_every > 1)
        for (int i = 0; i < n; i++)
            if (i % keep_every)
                mapalloc_arena_free(a, p[i]);
    size_t blocks = astats(a).blocks;
    CHECK(blocks == (size_t)(keep_every > 1 ? (n + keep_every - 1) / keep_every : n));
    double t0 = wl_now();
    mapalloc_arena_reset(a);
    double t = (wl_now() - t0) * 1e9;
    CHECK(astats(a).blocks == 0);
    return t;
}

static void test_reset_time(void)
{
    enum { N = 200000, TRIES = 15 };
    void **p = malloc(N * sizeof *p);
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    CHECK(a != NULL);
    double dense = 1e18, sparse = 1e18;
    for (int t = 0; t < TRIES; t++) {
        double d = timed_reset(a, p, N, 1), s = timed_reset(a, p, N, 200);
        dense = d < dense ? d : dense;
        sparse = s < sparse ? s : sparse;
    }
    /* For scale: freeing the same blocks one by one. */
    for (int i = 0; i < N; i++)
        p[i] = mapalloc_arena_malloc(a, 16 + (size_t)i % 49);
    double t1 = wl_now();
    for (int i = 0; i < N; i++)
        mapalloc_arena_free(a, p[i]);
    double one_by_one = (wl_now() - t1) * 1e9;
    printf("reset with %d live blocks: %.1f us; with %d: %.1f us; freeing %d one by one: %.1f us\n",
           N, dense / 1e3, N / 200, sparse / 1e3, N, one_by_one / 1e3);
    CHECK(dense <= 20 * sparse + 200e3);
    CHECK(dense < one_by_one);
    mapalloc_arena_destroy(a);
    free(p);
}

/* ---- destroy returns memory ---- */

static void fill_arena(mapalloc_arena *a, size_t small_bytes, size_t large_bytes)
{
    for (size_t done = 0; done < small_bytes; done += 2048) {
        void *p = mapalloc_arena_malloc(a, 2048);
        CHECK(p != NULL);
        if (p == NULL)
            return;
        memset(p, 0x77, 2048);
    }
    for (size_t done = 0; done < large_bytes; done += 4 * MiB) {
        void *p = mapalloc_arena_malloc(a, 4 * MiB);
        CHECK(p != NULL);
        if (p == NULL)
            return;
        touch(p, 4 * MiB);
    }
}

static void *destroy_worker(void *arg)
{
    fill_arena(arg, 8 * MiB, 8 * MiB);
    return NULL;
}

static void test_destroy(void)
{
    const size_t slack = 512 * KiB;
    /* Warm up: the first arena maps the pool of arena structures, the first
     * thread its heaps; those stay, by design. */
    mapalloc_arena *w = mapalloc_arena_create(NULL);
    fill_arena(w, MiB, 4 * MiB);
    mapalloc_arena_destroy(w);
    pthread_t t[T_THREADS];
    w = mapalloc_arena_create(NULL);
    for (int i = 0; i < T_THREADS; i++)
        pthread_create(&t[i], NULL, destroy_worker, w);
    for (int i = 0; i < T_THREADS; i++)
        pthread_join(t[i], NULL);
    mapalloc_arena_destroy(w);

    const unsigned flag_sets[] = {0, MAPALLOC_ARENA_NORESERVE, MAPALLOC_ARENA_DEVZERO,
                                  MAPALLOC_ARENA_RESET_RETURNS, MAPALLOC_ARENA_HUGE};
    for (size_t k = 0; k < sizeof flag_sets / sizeof flag_sets[0]; k++)
        for (int threads = 0; threads < 2; threads++) {
            struct mapalloc_stats before = pstats();
            struct mapalloc_arena_options o = {flag_sets[k], 0, k == 3 ? 8 * MiB : 0};
            mapalloc_arena *a = mapalloc_arena_create(&o);
            CHECK(a != NULL);
            if (threads) {
                for (int i = 0; i < T_THREADS; i++)
                    pthread_create(&t[i], NULL, destroy_worker, a);
                for (int i = 0; i < T_THREADS; i++)
                    pthread_join(t[i], NULL);
            } else {
                fill_arena(a, 64 * MiB, 32 * MiB);
            }
            mapalloc_arena_reset(a); /* a reset in between changes nothing */
            fill_arena(a, 16 * MiB, 16 * MiB);
            struct mapalloc_stats full = pstats();
            CHECK(full.mapped >= before.mapped + 32 * MiB);
            CHECK(full.resident >= before.resident + 24 * MiB);
            mapalloc_arena_destroy(a);
            struct mapalloc_stats after = pstats();
            if (after.mapped > before.mapped + slack || after.resident > before.resident + slack)
                fprintf(stderr, "flags %#x threads %d: mapped %zu -> %zu -> %zu, resident %zu -> %zu -> %zu\n",
                        flag_sets[k], threads, before.mapped, full.mapped, after.mapped, before.resident,
                        full.resident, after.resident);
            CHECK(after.mapped <= before.mapped + slack);
            CHECK(after.resident <= before.resident + slack);
        }

    /* Many create/destroy cycles leak nothing. */
    struct mapalloc_stats before = pstats();
    for (int i = 0; i < 300; i++) {
        mapalloc_arena *a = mapalloc_arena_create(NULL);
        CHECK(a != NULL);
        fill_arena(a, 64 * KiB, i % 10 == 0 ? 4 * MiB : 0);
        mapalloc_arena_destroy(a);
    }
    struct mapalloc_stats after = pstats();
    CHECK(after.mapped <= before.mapped + slack);
    CHECK(after.resident <= before.resident + slack);
}


/* ---- frees that do not go through the owning heap ----
 *
 * stats_remote: a block freed with mapalloc_free, or from a thread other
 * than the one whose heap in the arena holds its page, leaves
 * mapalloc_arena_stats (blocks, live) at once, without waiting for that
 * heap to collect the page.
 * limit_remote: once every block is freed that way, the limit has room for
 * a large request again. */
static void *free_all_of(void *arg)
{
    void **p = arg;
    for (int i = 0; p[i]; i++)
        mapalloc_arena_free(shared_arena, p[i]);
    return NULL;
}

/* 100 blocks of 100 bytes of a, freed by another thread: remote frees, left
 * for the heap that owns their page to collect. */
static void remote_free_100(mapalloc_arena *a)
{
    static void *list[101];
    shared_arena = a;
    for (int i = 0; i < 100; i++)
        list[i] = mapalloc_arena_malloc(a, 100);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, free_all_of, list) == 0);
    pthread_join(t, NULL);
}

static void test_stats_remote(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    void *p = mapalloc_arena_malloc(a, 64);
    mapalloc_free(p);
    struct mapalloc_arena_stats s = astats(a);
    if (s.blocks != 0 || s.live != 0)
        fprintf(stderr, "after mapalloc_free of its only block: blocks %zu live %zu\n", s.blocks, s.live);
    CHECK(s.blocks == 0 && s.live == 0);
    remote_free_100(a);
    s = astats(a);
    if (s.blocks != 0)
        fprintf(stderr, "after another thread freed its 100 blocks: blocks %zu\n", s.blocks);
    CHECK(s.blocks == 0 && s.live == 0);
    mapalloc_arena_destroy(a);
}

/* Statistics walk every arena while other arenas are made and destroyed:
 * an arena being made again out of a destroyed one's structure must not cut
 * the walk short, so the live blocks of an arena made after it are always
 * counted. (Under ThreadSanitizer the walk and the remaking race at once if
 * they are not both under the pool lock.) */
enum { W_BLOCKS = 256, W_SIZE = 1024 };
static _Atomic int walk_stop;
static _Atomic long walk_cycles;

static void *arena_cycler(void *arg)
{
    (void)arg;
    while (!atomic_load(&walk_stop)) {
        mapalloc_arena *a = mapalloc_arena_create(NULL);
        CHECK(a != NULL);
        mapalloc_arena_free(a, mapalloc_arena_malloc(a, 64));
        mapalloc_arena_destroy(a);
        atomic_fetch_add(&walk_cycles, 1);
    }
    return NULL;
}

static void test_create_walk(void)
{
    pthread_t cycler;
    CHECK(pthread_create(&cycler, NULL, arena_cycler, NULL) == 0);
    /* Past the destroyed arenas that wait before reuse: from now on the
     * cycler remakes structures that the walk meets before the one below. */
    while (atomic_load(&walk_cycles) < 200)
        sched_yield();
    mapalloc_arena *kept = mapalloc_arena_create(NULL);
    CHECK(kept != NULL);
    void *blocks[W_BLOCKS];
    for (int i = 0; i < W_BLOCKS; i++)
        CHECK((blocks[i] = mapalloc_arena_malloc(kept, W_SIZE)) != NULL);
    long walks = 0, short_walks = 0;
    double end = wl_now() + 2.0;
    while (wl_now() < end) {
        struct mapalloc_stats st;
        mapalloc_stats_get(&st);
        short_walks += st.live < (size_t)W_BLOCKS * W_SIZE;
        walks++;
    }
    atomic_store(&walk_stop, 1);
    pthread_join(cycler, NULL);
    fprintf(stderr, "create_walk: %ld walks, %ld arenas made and destroyed meanwhile, %ld walks short\n",
            walks, atomic_load(&walk_cycles), short_walks);
    CHECK(short_walks == 0);
    CHECK(atomic_load(&walk_cycles) > 300);
    for (int i = 0; i < W_BLOCKS; i++)
        mapalloc_arena_free(kept, blocks[i]);
    mapalloc_arena_destroy(kept);
}

static void test_limit_remote(void)
{
    struct mapalloc_arena_options o = {0, 8 * MiB, 0};
    for (int other_thread = 0; other_thread < 2; other_thread++) {
        mapalloc_arena *a = shared_arena = mapalloc_arena_create(&o);
        enum { MAXB = 20000 };
        static void *p[MAXB + 1];
        int n = 0;
        while (n < MAXB && (p[n] = mapalloc_arena_malloc(a, 1000)) != NULL)
            n++;
        p[n] = NULL;
        if (other_thread) {
            pthread_t t;
            CHECK(pthread_create(&t, NULL, free_all_of, p) == 0);
            pthread_join(t, NULL);
        } else {
            for (int i = 0; i < n; i++)
                mapalloc_free(p[i]);
        }
        errno = 0;
        void *big = mapalloc_arena_malloc(a, MiB);
        if (big == NULL)
            fprintf(stderr, "all %d blocks freed (%s): malloc(1 MiB) = NULL, errno %d\n", n,
                    other_thread ? "by another thread" : "with mapalloc_free", errno);
        CHECK(big != NULL);
        mapalloc_arena_destroy(a);
    }
}

/* ---- what a reset keeps ----
 *
 * A reset (without RESET_RETURNS) keeps each thread's pages in place,
 * emptied, for the next request. Kept pages count as committed only once
 * used again; they give way before the arena maps more; a thread's pages
 * unused from one reset to the next go back to the arena for any thread. */

/* Blocks of size until the arena refuses (or max of them); returns how many. */
static int fill_until_refused(mapalloc_arena *a, size_t size, int max)
{
    int n = 0;
    while (n < max && mapalloc_arena_malloc(a, size) != NULL)
        n++;
    return n;
}

static void *idle_holder(void *arg)
{
    pthread_barrier_t *barrier = arg;
    for (int i = 0; i < 20000; i++) /* 2 MiB of pages */
        if (mapalloc_arena_malloc(shared_arena, 100) == NULL)
            thread_errors++;
    pthread_barrier_wait(barrier); /* main resets, twice, and allocates */
    pthread_barrier_wait(barrier);
    void *p = mapalloc_arena_malloc(shared_arena, 100); /* a heap with no page left works on */
    if (p == NULL)
        thread_errors++;
    return NULL;
}

static void test_reset_keep(void)
{
    /* Kept pages are committed again as they are used: the same blocks fit
     * under the limit, to the byte. */
    struct mapalloc_arena_options o = {0, 2 * MiB, 0};
    mapalloc_arena *a = mapalloc_arena_create(&o);
    int n1 = fill_until_refused(a, 1000, 100000);
    struct mapalloc_arena_stats s1 = astats(a);
    CHECK(n1 > 1000 && s1.committed <= o.limit);
    mapalloc_arena_reset(a);
    CHECK(astats(a).committed == 0);
    int n2 = fill_until_refused(a, 1000, 100000);
    struct mapalloc_arena_stats s2 = astats(a);
    CHECK(n2 == n1 && s2.committed == s1.committed && s2.mapped == s1.mapped);
    /* Unused kept pages do not count: other blocks get the whole limit. */
    mapalloc_arena_reset(a);
    CHECK(fill_until_refused(a, 3000, 100000) > (int)(o.limit / 4096));
    CHECK(astats(a).committed <= o.limit);
    mapalloc_arena_destroy(a);

    /* Kept pages give way to other classes before a new region is mapped. */
    a = mapalloc_arena_create(NULL);
    CHECK(fill_until_refused(a, 100, 3 * MiB / 100) == (int)(3 * MiB / 100));
    size_t mapped = astats(a).mapped;
    CHECK(mapped == 4 * MiB);
    mapalloc_arena_reset(a);
    CHECK(fill_until_refused(a, 3000, 3 * MiB / 3000) == (int)(3 * MiB / 3000));
    CHECK(astats(a).mapped == mapped);
    mapalloc_arena_destroy(a);

    /* Once every kept page is in use again, a class with no room still gets
     * a new region: the kept pages' turn to give way is over. */
    a = mapalloc_arena_create(NULL);
    CHECK(fill_until_refused(a, 100, 3 * MiB / 100) == (int)(3 * MiB / 100));
    mapalloc_arena_reset(a);
    CHECK(fill_until_refused(a, 100, 3 * MiB / 100) == (int)(3 * MiB / 100));
    CHECK(fill_until_refused(a, 3000, 3 * MiB / 3000) == (int)(3 * MiB / 3000));
    CHECK(astats(a).mapped > 4 * MiB);
    mapalloc_arena_destroy(a);

    /* Remote frees still pending at a reset are dropped with the rest: the
     * counts start again from zero. */
    a = mapalloc_arena_create(NULL);
    remote_free_100(a);
    mapalloc_arena_reset(a);
    CHECK(astats(a).blocks == 0 && astats(a).live == 0);
    for (int i = 0; i < 100; i++)
        CHECK(mapalloc_arena_malloc(a, 100) != NULL);
    CHECK(astats(a).blocks == 100);
    mapalloc_arena_destroy(a);

    /* A thread that stops using the arena: after a whole period unused its
     * pages, and its region, go back to the arena, and another thread's
     * blocks fit without a new mapping. */
    shared_arena = a = mapalloc_arena_create(NULL);
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, 2);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, idle_holder, &barrier) == 0);
    pthread_barrier_wait(&barrier);
    CHECK(astats(a).mapped == 4 * MiB);
    mapalloc_arena_reset(a);
    mapalloc_arena_reset(a);
    CHECK(fill_until_refused(a, 100, 3 * MiB / 100) == (int)(3 * MiB / 100));
    CHECK(astats(a).mapped == 4 * MiB);
    pthread_barrier_wait(&barrier);
    pthread_join(t, NULL);
    pthread_barrier_destroy(&barrier);
    CHECK(thread_errors == 0);
    mapalloc_arena_destroy(a);
}

/* ---- driver ---- */

static const struct {
    const char *name;
    void (*fn)(void);
} tests[] = {
    {"options", test_options}, {"invalid", test_invalid}, {"malloc", test_malloc},
    {"calloc", test_calloc},   {"realloc", test_realloc}, {"aligned", test_aligned},
    {"free", test_free},       {"threads", test_threads}, {"limit", test_limit},
    {"reset", test_reset},     {"reset_keep", test_reset_keep}, {"reset_time", test_reset_time},
    {"destroy", test_destroy}, {"stats_remote", test_stats_remote},
    {"limit_remote", test_limit_remote}, {"create_walk", test_create_walk},
};

int main(int argc, char **argv)
{
    int ran = 0;
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        int wanted = argc < 2;
        for (int k = 1; k < argc; k++)
            wanted |= strcmp(argv[k], tests[i].name) == 0;
        if (!wanted)
            continue;
        int before = failures;
        tests[i].fn();
        printf("%s: %s\n", tests[i].name, failures == before ? "ok" : "FAILED");
        fflush(stdout);
        ran++;
    }
    if (ran == 0) {
        fprintf(stderr, "no such test\n");
        return 2;
    }
    return failures ? 1 : 0;
}
