/* Options: every option of the table read from MAPALLOC_OPTIONS
 * and applied, seen both through mapalloc_option_get and, where the kernel
 * shows it, through its effect; the warning for an unknown name or a bad
 * value; mapalloc_option_set before and after start-up.
 *
 * Each case runs a copy of this program (/proc/self/exe) with its own
 * MAPALLOC_OPTIONS and checks its exit status, its standard output (the
 * options it read back) and its standard error (what mapalloc printed).
 *
 * Usage: test_options PART     (see parts[] at the end)
 */
#include "burst.h"
#include "mapalloc.h"
#include "obs.h"

#include <errno.h>

#ifndef TEST_SECURE_DEFAULT
#define TEST_SECURE_DEFAULT 0 /* 1 in a -Dsecure=true build (tests/obs/meson.build) */
#endif
#ifndef TEST_NO_MAP_ANONYMOUS
#define TEST_NO_MAP_ANONYMOUS 0 /* 1 with -Dno_map_anonymous=true: always /dev/zero */
#endif

/* What README.md documents, with the ranges of src/options.c. alt is a
 * valid value other than the default; runtime: may change after start-up. */
static const struct opt {
    const char *name;
    long def, max, alt;
    bool runtime;
} opts[] = {
    {"verbose", 0, 1, 1, true},
    {"huge", 0, 1, 1, false},
    {"thp", 0, 1, 1, false},
    {"noreserve", 0, 1, 1, false},
    {"devzero", 0, 1, 1, false},
    {"purge_free", 0, 1, 1, true},
    {"decay_ms", 100, 3600000, 250, true},
    {"dirty_max_kb", 4096, 1L << 30, 1024, true},
    {"large_cache", 8, 64, 3, true},
    {"large_cache_mb", 64, 1L << 20, 128, true},
    {"large_thp", 1, 1, 0, true},
    {"hollow_kb", 16, 512, 0, true},
    {"background", 1, 1, 0, true},
    {"stats", 0, 2, 1, true},
    {"secure", TEST_SECURE_DEFAULT, 1, !TEST_SECURE_DEFAULT, false},
};
#define NOPTS (sizeof opts / sizeof opts[0])


static struct mapalloc_stats stats(void)
{
    struct mapalloc_stats s;
    mapalloc_stats_get(&s);
    return s;
}

/* ---- the children ---- */

/* child dump: starts the allocator, prints every option as name=value. */
static int child_dump(void)
{
    mapalloc_free(mapalloc_malloc(1));
    for (size_t i = 0; i < NOPTS; i++)
        printf("%s=%ld\n", opts[i].name, mapalloc_option_get(opts[i].name));
    return 0;
}

/* A small block in a region: the region's mapping is the one to look at. */
static void *region_block(void)
{
    void *p = mapalloc_malloc(100);
    CHECK(p != NULL);
    memset(p, 7, 100);
    return p;
}

/* Resident memory right after a burst of 64 MiB is freed, and after 300 ms
 * more of activity: how far above the level before the burst. */
static void burst_and_watch(size_t *after_free, size_t *after_wait)
{
    struct burst b;
    burst_init(&b, 1u << 20);
    size_t base = wl_resident();
    burst_allocate(&b, 64 * MiB, 11);
    burst_free(&b, 12);
    uint64_t rs = 5;
    burst_activity(&rs);
    size_t r1 = wl_resident();
    double t0 = wl_now();
    while (wl_now() - t0 < 0.3) {
        burst_activity(&rs);
        obs_sleep_ms(2);
    }
    size_t r2 = wl_resident();
    *after_free = r1 > base ? r1 - base : 0;
    *after_wait = r2 > base ? r2 - base : 0;
    burst_done(&b);
}

/* child effect NAME VALUE: the option reads back as VALUE and does what it
 * says (or, for the default value, does not). */
static int child_effect(const char *name, long value)
{
    mapalloc_free(mapalloc_malloc(1));
    long v = mapalloc_option_get(name);
    CHECKF(v == value, "%s reads back %ld, expected %ld", name, v, value);
    char buf[512];
    uintptr_t lo = 0, hi = 0;

    if (strcmp(name, "huge") == 0) {
        void *p = region_block();
        void *big = mapalloc_malloc(8 * MiB);
        CHECK(big != NULL);
        memset(big, 1, 8 * MiB);
        struct mapalloc_stats s = stats();
        long free_huge = wl_proc_field("/proc/meminfo", "HugePages_Free");
        if (value && free_huge == 0)
            CHECKF(s.huge_fallbacks > 0, "huge=1, no huge pages free: huge_fallbacks %llu",
                   (unsigned long long)s.huge_fallbacks);
        if (!value)
            CHECK(s.huge_fallbacks == 0);
        CHECK(((unsigned char *)p)[99] == 7);
        mapalloc_free(p);
        mapalloc_free(big);
    } else if (strcmp(name, "thp") == 0 || strcmp(name, "noreserve") == 0 ||
               strcmp(name, "large_thp") == 0) {
        /* VmFlags "hg": MADV_HUGEPAGE, on a region (thp) or an 8 MiB block
         * (large_thp); "nr": MAP_NORESERVE (shown unless the kernel never
         * overcommits). */
        bool large = name[0] == 'l';
        void *p = large ? mapalloc_malloc(8 * MiB) : region_block();
        CHECK(p != NULL);
        CHECK(wl_smaps_field(p, "VmFlags", &lo, &hi, buf, sizeof buf));
        const char *flag = name[0] == 'n' ? "nr" : "hg";
        long overcommit = wl_proc_number("/proc/sys/vm/overcommit_memory");
        if (flag[0] == 'h' || overcommit != 2)
            CHECKF(wl_vmflag(buf, flag) == (value != 0), "%s=%ld, %s %#lx-%#lx VmFlags: %s", name,
                   value, large ? "8 MiB block" : "region", (unsigned long)lo, (unsigned long)hi, buf);
        mapalloc_free(p);
    } else if (strcmp(name, "devzero") == 0) {
        bool want = value != 0 || TEST_NO_MAP_ANONYMOUS;
        void *p = region_block();
        void *big = mapalloc_malloc(8 * MiB);
        CHECK(big != NULL);
        CHECK(wl_maps_line(p, buf, sizeof buf));
        CHECKF((strstr(buf, "/dev/zero") != NULL) == want, "devzero=%ld, region: %s", value, buf);
        CHECK(wl_maps_line(big, buf, sizeof buf));
        CHECKF((strstr(buf, "/dev/zero") != NULL) == want, "devzero=%ld, large: %s", value, buf);
        mapalloc_free(p);
        mapalloc_free(big);
    } else if (strcmp(name, "large_cache") == 0 || strcmp(name, "large_cache_mb") == 0) {
        /* A freed large block goes to the cache (no munmap) unless the cache
         * may hold none (large_cache=0) or it is bigger than half of
         * large_cache_mb. */
        void *big = mapalloc_malloc(4 * MiB);
        CHECK(big != NULL);
        memset(big, 1, 4 * MiB);
        struct mapalloc_stats s0 = stats();
        mapalloc_free(big);
        struct mapalloc_stats s1 = stats();
        bool cached = strcmp(name, "large_cache") == 0 ? value > 0 : value >= 8;
        CHECKF((s1.munmap_calls == s0.munmap_calls) == cached,
               "%s=%ld: munmap_calls %llu -> %llu on freeing a 4 MiB block", name, value,
               (unsigned long long)s0.munmap_calls, (unsigned long long)s1.munmap_calls);
        /* What the cache keeps comes back on the next request of the size. */
        void *again = mapalloc_malloc(4 * MiB);
        struct mapalloc_stats s2 = stats();
        CHECKF((s2.mmap_calls == s1.mmap_calls) == cached, "%s=%ld: mmap_calls %llu -> %llu",
               name, value, (unsigned long long)s1.mmap_calls, (unsigned long long)s2.mmap_calls);
        mapalloc_free(again);
    } else if (strcmp(name, "secure") == 0) {
        void *p = mapalloc_malloc(20);
        size_t u = mapalloc_usable_size(p);
        CHECKF(u == (value ? 20 : 32), "secure=%ld: usable size of malloc(20) is %zu", value, u);
        mapalloc_free(p);
    } else if (strcmp(name, "purge_free") == 0) {
        /* Run with dirty_max_kb=0: every page that empties is purged at
         * once. 16 MiB of 1000-byte blocks, each written; all freed but the
         * first of each region, which keeps the region mapped, so what goes
         * back goes by madvise, not by unmapping. */
        enum { N = 16 * 1024 };
        static void *blocks[N];
        long lazy0 = wl_proc_field("/proc/self/smaps_rollup", "LazyFree");
        for (size_t i = 0; i < N; i++) {
            blocks[i] = mapalloc_malloc(1000);
            CHECK(blocks[i] != NULL);
            memset(blocks[i], 7, 1000);
        }
        size_t r0 = wl_resident();
        struct mapalloc_stats s0 = stats();
        uintptr_t region = 0;
        size_t kept = 0;
        for (size_t i = 0; i < N; i++) {
            uintptr_t r = (uintptr_t)blocks[i] / REGION;
            if (r != region) {
                region = r;
                blocks[kept++] = blocks[i];
            } else {
                mapalloc_free(blocks[i]);
            }
        }
        struct mapalloc_stats s1 = stats();
        size_t r1 = wl_resident();
        long lazy1 = wl_proc_field("/proc/self/smaps_rollup", "LazyFree");
        CHECKF(s1.madvise_calls > s0.madvise_calls, "madvise_calls %llu -> %llu",
               (unsigned long long)s0.madvise_calls, (unsigned long long)s1.madvise_calls);
        CHECKF(s1.munmap_calls == s0.munmap_calls, "munmap_calls %llu -> %llu",
               (unsigned long long)s0.munmap_calls, (unsigned long long)s1.munmap_calls);
        printf("purge_free=%ld: LazyFree %ld -> %ld kB, resident %zu -> %zu KiB after free (%zu kept)\n",
               value, lazy0, lazy1, r0 / KiB, r1 / KiB, kept);
        if (!TEST_ASAN && lazy1 >= 0) {
            if (value) /* MADV_FREE: counted as LazyFree until the kernel needs it */
                CHECKF(lazy1 > lazy0 + 8 * 1024,
                       "purge_free=1: LazyFree %ld -> %ld kB (resident %zu -> %zu KiB): not MADV_FREE",
                       lazy0, lazy1, r0 / KiB, r1 / KiB);
            else
                CHECKF(lazy1 <= lazy0 && r1 + 8 * MiB < r0,
                       "purge_free=0: LazyFree %ld -> %ld kB, resident %zu -> %zu KiB", lazy0, lazy1,
                       r0 / KiB, r1 / KiB);
        }
        for (size_t i = 0; i < kept; i++)
            mapalloc_free(blocks[i]);
    } else if (strcmp(name, "dirty_max_kb") == 0 || strcmp(name, "decay_ms") == 0) {
        /* dirty_max_kb=0: purged at the free; decay_ms=0: at the next
         * allocator activity. Their large partners keep the pages. */
        if (TEST_ASAN)
            return 0;
        size_t after_free, after_wait;
        burst_and_watch(&after_free, &after_wait);
        long decay = mapalloc_option_get("decay_ms");
        long dirty = mapalloc_option_get("dirty_max_kb");
        printf("decay_ms=%ld dirty_max_kb=%ld: resident +%zu KiB after free, +%zu KiB 0.3 s "
               "later\n",
               decay, dirty, after_free / KiB, after_wait / KiB);
        if (dirty == 0)
            CHECKF(after_free < 8 * MiB, "dirty_max_kb=0: +%zu KiB after free", after_free / KiB);
        else if (decay == 0)
            CHECKF(after_wait < 8 * MiB, "decay_ms=0: +%zu KiB 0.3 s after", after_wait / KiB);
        else
            CHECKF(after_wait > 32 * MiB, "decay_ms=%ld, dirty_max_kb=%ld: +%zu KiB 0.3 s after",
                   decay, dirty, after_wait / KiB);
    } else {
        CHECKF(false, "no effect check for %s", name);
    }
    return 0;
}

/* child set-before: mapalloc_option_set before the first allocation. */
static int child_set_before(void)
{
    for (size_t i = 0; i < NOPTS; i++) {
        const struct opt *o = &opts[i];
        long v = strcmp(o->name, "large_cache") == 0 ? 0 : o->alt;
        errno = 0;
        CHECKF(mapalloc_option_set(o->name, v) == 0, "set %s=%ld before start: errno %d",
               o->name, v, errno);
        CHECK(mapalloc_option_get(o->name) == v);
        errno = 0;
        CHECK(mapalloc_option_set(o->name, o->max + 1) == -1 && errno == EINVAL);
        errno = 0;
        CHECK(mapalloc_option_set(o->name, -1) == -1 && errno == EINVAL);
        CHECK(mapalloc_option_get(o->name) == v);
    }
    errno = 0;
    CHECK(mapalloc_option_set("no_such_option", 1) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(mapalloc_option_set(NULL, 1) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(mapalloc_option_get("no_such_option") == -1 && errno == EINVAL);

    /* Start-up keeps them all, and they act. */
    void *p = mapalloc_malloc(20);
    for (size_t i = 0; i < NOPTS; i++) {
        long want = strcmp(opts[i].name, "large_cache") == 0 ? 0 : opts[i].alt;
        CHECKF(mapalloc_option_get(opts[i].name) == want, "%s = %ld after start, set %ld",
               opts[i].name, mapalloc_option_get(opts[i].name), want);
    }
    CHECK(mapalloc_usable_size(p) == (opts[NOPTS - 1].alt ? 20u : 32u));
    mapalloc_free(p);
    void *big = mapalloc_malloc(4 * MiB);
    struct mapalloc_stats s0 = stats();
    mapalloc_free(big);
    struct mapalloc_stats s1 = stats();
    CHECKF(s1.munmap_calls > s0.munmap_calls, "large_cache=0 set from code, but no munmap");
    char buf[512];
    uintptr_t lo = 0, hi = 0;
    p = region_block();
    CHECK(wl_smaps_field(p, "VmFlags", &lo, &hi, buf, sizeof buf));
    CHECKF(wl_vmflag(buf, "hg"), "thp=1 set from code, region VmFlags: %s", buf);
    CHECK(wl_maps_line(p, buf, sizeof buf));
    CHECKF(strstr(buf, "/dev/zero") != NULL, "devzero=1 set from code, region: %s", buf);
    mapalloc_free(p);
    return 0;
}

/* child set-after: mapalloc_option_set once the allocator runs. */
static int child_set_after(void)
{
    mapalloc_free(mapalloc_malloc(1));
    for (size_t i = 0; i < NOPTS; i++) {
        const struct opt *o = &opts[i];
        long before = mapalloc_option_get(o->name);
        errno = 0;
        int r = mapalloc_option_set(o->name, o->alt);
        if (o->runtime) {
            CHECKF(r == 0, "set %s=%ld after start: %d, errno %d", o->name, o->alt, r, errno);
            CHECK(mapalloc_option_get(o->name) == o->alt);
        } else {
            CHECKF(r == -1 && errno == EBUSY, "set %s=%ld after start: %d, errno %d (want EBUSY)",
                   o->name, o->alt, r, errno);
            CHECK(mapalloc_option_get(o->name) == before);
        }
        /* A bad value is EINVAL whether or not the option could change. */
        errno = 0;
        CHECK(mapalloc_option_set(o->name, o->max + 1) == -1 && errno == EINVAL);
        errno = 0;
        CHECK(mapalloc_option_set(o->name, -5) == -1 && errno == EINVAL);
    }
    errno = 0;
    CHECK(mapalloc_option_set("decay", 100) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(mapalloc_option_set("", 0) == -1 && errno == EINVAL);

    /* The secure profile stays as it started; a runtime change acts. */
    void *p = mapalloc_malloc(20);
    CHECK(mapalloc_usable_size(p) == (TEST_SECURE_DEFAULT ? 20u : 32u));
    mapalloc_free(p);
    CHECK(mapalloc_option_set("large_cache", 0) == 0);
    void *big = mapalloc_malloc(4 * MiB);
    struct mapalloc_stats s0 = stats();
    mapalloc_free(big);
    struct mapalloc_stats s1 = stats();
    CHECKF(s1.munmap_calls > s0.munmap_calls, "large_cache=0 at run time, but no munmap");
    CHECK(mapalloc_option_set("stats", 0) == 0); /* set above: no report at exit */
    return 0;
}

/* child env-wins: MAPALLOC_OPTIONS overrides what code set before start. */
static int child_env_wins(void)
{
    CHECK(mapalloc_option_set("decay_ms", 55) == 0);
    CHECK(mapalloc_option_set("large_cache", 2) == 0);
    mapalloc_free(mapalloc_malloc(1));
    CHECKF(mapalloc_option_get("decay_ms") == 77, "decay_ms %ld", mapalloc_option_get("decay_ms"));
    CHECK(mapalloc_option_get("large_cache") == 2);
    return 0;
}

/* child stats-runtime: stats turned on from code after start-up (the
 * option says it may change then) prints the report at exit. */
static int child_stats_runtime(void)
{
    mapalloc_free(mapalloc_malloc(1));
    CHECK(mapalloc_option_set("stats", 1) == 0);
    return 0;
}

/* child close-stderr: stats=1 reports even when the program closed fd 2
 * (as coreutils do at exit). */
static int child_close_stderr(void)
{
    mapalloc_free(mapalloc_malloc(1));
    close(2);
    return 0;
}

/* ---- the parent's checks ---- */

static void report(const char *what, const char *options, const struct obs_child *c)
{
    fprintf(stderr, "%s: MAPALLOC_OPTIONS=%s: exit %d\n--- stdout:\n%s--- stderr:\n%s---\n", what,
            options ? options : "(unset)", c->status, c->out, c->err);
}

/* The value of name in a child's dump, or LONG_MIN. */
static long dumped(const char *out, const char *name)
{
    size_t len = strlen(name);
    for (const char *line = out; *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : "")
        if (strncmp(line, name, len) == 0 && line[len] == '=')
            return strtol(line + len + 1, NULL, 10);
    return -2147483647L - 1;
}

/* Runs the dump child with options; expects every option at its default
 * but those listed in "name=value" pairs of want (NULL-terminated). */
static struct obs_child dump_expect(const char *options, const char *const want[])
{
    char *args[] = {"dump", NULL};
    struct obs_child c = obs_run_self(options, args);
    if (c.status != 0) {
        report("dump", options, &c);
        CHECK(c.status == 0);
    }
    for (size_t i = 0; i < NOPTS; i++) {
        long expect = opts[i].def;
        size_t len = strlen(opts[i].name);
        for (size_t k = 0; want && want[k]; k++)
            if (strncmp(want[k], opts[i].name, len) == 0 && want[k][len] == '=')
                expect = strtol(want[k] + len + 1, NULL, 10);
        long got = dumped(c.out, opts[i].name);
        if (got != expect) {
            report("dump", options, &c);
            CHECKF(got == expect, "%s = %ld, expected %ld", opts[i].name, got, expect);
        }
    }
    return c;
}

/* The mapalloc lines of a child's stderr that are not statistics. */
static size_t warning_lines(const char *err)
{
    size_t n = 0;
    for (const char *p = strstr(err, "mapalloc: warning:"); p; p = strstr(p + 1, "mapalloc: warning:"))
        n++;
    return n;
}

static void part_defaults(void)
{
    struct obs_child c = dump_expect(NULL, NULL);
    CHECKF(c.err[0] == '\0', "stderr with no options: %s", c.err);
    obs_child_free(&c);
    c = dump_expect("", NULL);
    CHECKF(c.err[0] == '\0', "stderr with empty options: %s", c.err);
    obs_child_free(&c);
}

/* Each option alone, at its other value and at both ends of its range. */
static void part_each(void)
{
    for (size_t i = 0; i < NOPTS; i++) {
        const long values[] = {opts[i].alt, 0, opts[i].max};
        for (size_t k = 0; k < 3; k++) {
            char item[64];
            snprintf(item, sizeof item, "%s=%ld", opts[i].name, values[k]);
            const char *want[] = {item, NULL};
            struct obs_child c = dump_expect(item, want);
            if (warning_lines(c.err) != 0) {
                report("each", item, &c);
                CHECKF(false, "a warning for %s", item);
            }
            obs_child_free(&c);
        }
    }
}

/* All at once, in one string, with empty items and a trailing comma. */
static void part_combined(void)
{
    char options[512] = "";
    const char *want[NOPTS + 1];
    static char items[NOPTS][64];
    for (size_t i = 0; i < NOPTS; i++) {
        snprintf(items[i], sizeof items[i], "%s=%ld", opts[i].name, opts[i].alt);
        want[i] = items[i];
        strcat(options, items[i]);
        strcat(options, i == 3 ? ",," : ",");
    }
    want[NOPTS] = NULL;
    struct obs_child c = dump_expect(options, want);
    if (warning_lines(c.err) != 0) {
        report("combined", options, &c);
        CHECK(warning_lines(c.err) == 0);
    }
    obs_child_free(&c);
}

/* One line: "mapalloc: warning: ..." that names what and lists every
 * accepted name (unknown) or the range (bad value). */
static void check_warning(const char *options, const struct obs_child *c, const char *names,
                          const char *accepted)
{
    bool ok = obs_lines(c->err) == 1 && strncmp(c->err, "mapalloc: warning: ", 19) == 0 &&
              strstr(c->err, names) != NULL;
    if (ok && accepted == NULL) /* every known name */
        for (size_t i = 0; i < NOPTS; i++) {
            char word[40];
            snprintf(word, sizeof word, " %s", opts[i].name);
            ok = ok && strstr(c->err, word) != NULL;
        }
    if (ok && accepted)
        ok = strstr(c->err, accepted) != NULL;
    if (!ok) {
        report("warning", options, c);
        CHECKF(false, "want one warning line naming %s and %s", names,
               accepted ? accepted : "every option");
    }
}

static void part_unknown(void)
{
    const char *want[] = {"decay_ms=77", "large_cache=5", NULL};
    const char *cases[][2] = {
        {"decay_ms=77,bogus=1,large_cache=5", "'bogus'"},
        {"decay_ms=77,large_cache=5,hugepages", "'hugepages'"},
        {"decay_ms=77,DECAY_MS=3,large_cache=5", "'DECAY_MS'"},
        {"decay_ms=77,large_cache=5,=4", "''"},
        {"decay_ms=77,large_cache=5,"
         "a_very_long_option_name_that_goes_on_and_on_and_on_and_on_and_on_and_on_and_on=1",
         "'a_very_long_option_name"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct obs_child c = dump_expect(cases[i][0], want);
        check_warning(cases[i][0], &c, cases[i][1], NULL);
        obs_child_free(&c);
    }
}

static void part_bad_value(void)
{
    const char *cases[][3] = {
        {"decay_ms=abc", "decay_ms", "0..3600000"},
        {"decay_ms=3600001", "decay_ms", "0..3600000"},
        {"decay_ms=-1", "decay_ms", "0..3600000"},
        {"decay_ms=99999999999999999999", "decay_ms", "0..3600000"},
        {"huge=2", "huge", "0..1"},
        {"thp=1x", "thp", "0..1"},
        {"stats=", "stats", "0..2"},
        {"large_cache=65", "large_cache", "0..64"},
        {"dirty_max_kb=0x10", "dirty_max_kb", "0..1073741824"},
        {"large_cache_mb=1048577", "large_cache_mb", "0..1048576"},
        {"secure=yes", "secure", "0..1"},
        {"verbose= 1", "verbose", "0..1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* The bad item between two good ones, which still apply. */
        char options[256];
        snprintf(options, sizeof options, "large_cache_mb=%s,%s,noreserve=1",
                 strcmp(cases[i][1], "large_cache_mb") == 0 ? "7,large_cache=6" : "7",
                 cases[i][0]);
        const char *want_a[] = {"large_cache_mb=7", "noreserve=1", NULL};
        /* For large_cache_mb the good item of the same name comes first. */
        const char *want_b[] = {"large_cache_mb=7", "large_cache=6", "noreserve=1", NULL};
        bool b = strcmp(cases[i][1], "large_cache_mb") == 0;
        struct obs_child c = dump_expect(options, b ? want_b : want_a);
        check_warning(options, &c, cases[i][1], cases[i][2]);
        obs_child_free(&c);
    }
    /* Two bad items: two lines; the good one between them applies. */
    const char *want[] = {"decay_ms=5", NULL};
    struct obs_child c = dump_expect("huge=3,decay_ms=5,nope=1", want);
    if (obs_lines(c.err) != 2 || warning_lines(c.err) != 2 || !strstr(c.err, "'huge=3'") ||
        !strstr(c.err, "'nope'")) {
        report("two warnings", "huge=3,decay_ms=5,nope=1", &c);
        CHECK(false);
    }
    obs_child_free(&c);
}

/* verbose=1: one line at start-up, before the program's own output, with
 * every name=value in force. */
static void part_verbose(void)
{
    const char *options = "verbose=1,decay_ms=123,large_cache=0";
    const char *want[] = {"verbose=1", "decay_ms=123", "large_cache=0", NULL};
    struct obs_child c = dump_expect(options, want);
    bool ok = strncmp(c.err, "mapalloc: options:", 18) == 0 && obs_lines(c.err) == 1;
    for (size_t i = 0; ok && i < NOPTS; i++) {
        char item[64];
        snprintf(item, sizeof item, " %s=%ld", opts[i].name, dumped(c.out, opts[i].name));
        ok = strstr(c.err, item) != NULL;
    }
    if (!ok) {
        report("verbose", options, &c);
        CHECK(ok);
    }
    obs_child_free(&c);
    /* verbose=0 (the default) prints nothing: part_defaults. */
}

/* stats=1: the text report at exit; stats=2: one JSON object (its full
 * validation is in test_stats.py); also when the program closed stderr. */
static void part_stats_exit(void)
{
    char *dump[] = {"dump", NULL};
    struct obs_child c = obs_run_self("stats=1", dump);
    if (c.status != 0 || strstr(c.err, "mapalloc: live ") == NULL ||
        strstr(c.err, "mapalloc: calls     mmap ") == NULL || strchr(c.err, '{') != NULL) {
        report("stats=1", "stats=1", &c);
        CHECK(false);
    }
    obs_child_free(&c);
    c = obs_run_self("stats=2", dump);
    size_t len = strlen(c.err);
    if (c.status != 0 || c.err[0] != '{' || len < 3 || strcmp(c.err + len - 2, "}\n") != 0 ||
        obs_lines(c.err) != 1 || strstr(c.err, "\"live\":") == NULL) {
        report("stats=2", "stats=2", &c);
        CHECK(false);
    }
    obs_child_free(&c);
    char *closer[] = {"close-stderr", NULL};
    c = obs_run_self("stats=1", closer);
    if (c.status != 0 || strstr(c.err, "mapalloc: live ") == NULL) {
        report("stats=1, stderr closed", "stats=1", &c);
        CHECK(false);
    }
    obs_child_free(&c);
}

static void run_child_ok(const char *what, const char *options, char *args[])
{
    struct obs_child c = obs_run_self(options, args);
    if (c.status != 0) {
        report(what, options, &c);
        CHECKF(false, "%s failed", what);
    }
    if (c.out[0])
        printf("%s", c.out);
    obs_child_free(&c);
}

/* The effect of each option that has one, at its other value and at its
 * default. */
static void part_effects(void)
{
    const struct {
        const char *name, *on, *off;
        long value_on, value_off;
    } cases[] = {
        {"huge", "huge=1", NULL, 1, 0},
        {"thp", "thp=1", NULL, 1, 0},
        {"noreserve", "noreserve=1", NULL, 1, 0},
        {"devzero", "devzero=1", NULL, 1, 0},
        {"large_cache", "large_cache=0", NULL, 0, 8},
        {"large_cache_mb", "large_cache_mb=1", NULL, 1, 64},
        {"secure", "secure=1", "secure=0", 1, 0},
        {"purge_free", "purge_free=1,dirty_max_kb=0", "dirty_max_kb=0", 1, 0},
        {"dirty_max_kb", "decay_ms=3600000,dirty_max_kb=0", "decay_ms=3600000,dirty_max_kb=1048576",
         0, 1048576},
        {"decay_ms", "decay_ms=0,dirty_max_kb=1048576", "decay_ms=3600000,dirty_max_kb=1048576", 0,
         3600000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char on[24], off[24];
        snprintf(on, sizeof on, "%ld", cases[i].value_on);
        snprintf(off, sizeof off, "%ld", cases[i].value_off);
        char *args_on[] = {"effect", (char *)cases[i].name, on, NULL};
        char *args_off[] = {"effect", (char *)cases[i].name, off, NULL};
        run_child_ok(cases[i].name, cases[i].on, args_on);
        run_child_ok(cases[i].name, cases[i].off, args_off);
    }
}

static void part_set_before(void)
{
    char *args[] = {"set-before", NULL};
    struct obs_child c = obs_run_self(NULL, args);
    /* verbose=1 and stats=1 were set from code: both print. */
    if (c.status != 0 || strncmp(c.err, "mapalloc: options:", 18) != 0 ||
        strstr(c.err, " large_cache=0") == NULL || strstr(c.err, " thp=1") == NULL ||
        strstr(c.err, "mapalloc: live ") == NULL) {
        report("set-before", NULL, &c);
        CHECK(false);
    }
    obs_child_free(&c);
}

static void part_set_after(void)
{
    char *args[] = {"set-after", NULL};
    run_child_ok("set-after", NULL, args);
}

static void part_env_wins(void)
{
    char *args[] = {"env-wins", NULL};
    run_child_ok("env-wins", "decay_ms=77", args);
}

/* stats=1 set from code after start-up: the report is printed at exit. */
static void part_stats_runtime(void)
{
    char *args[] = {"stats-runtime", NULL};
    struct obs_child c = obs_run_self(NULL, args);
    if (c.status != 0 || strstr(c.err, "mapalloc: live ") == NULL) {
        report("stats set at run time", NULL, &c);
        CHECKF(false, "mapalloc_option_set(\"stats\", 1) after start-up returned 0 but "
                      "nothing was printed at exit");
    }
    obs_child_free(&c);
}

static const struct {
    const char *name;
    void (*run)(void);
} parts[] = {
    {"defaults", part_defaults},     {"each", part_each},
    {"combined", part_combined},     {"unknown", part_unknown},
    {"bad_value", part_bad_value},   {"verbose", part_verbose},
    {"stats_exit", part_stats_exit}, {"effects", part_effects},
    {"set_before", part_set_before}, {"set_after", part_set_after},
    {"env_wins", part_env_wins},     {"stats_runtime", part_stats_runtime},
};

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "dump") == 0)
        return child_dump();
    if (argc >= 4 && strcmp(argv[1], "effect") == 0)
        return child_effect(argv[2], strtol(argv[3], NULL, 10));
    if (argc >= 2 && strcmp(argv[1], "set-before") == 0)
        return child_set_before();
    if (argc >= 2 && strcmp(argv[1], "set-after") == 0)
        return child_set_after();
    if (argc >= 2 && strcmp(argv[1], "env-wins") == 0)
        return child_env_wins();
    if (argc >= 2 && strcmp(argv[1], "stats-runtime") == 0)
        return child_stats_runtime();
    if (argc >= 2 && strcmp(argv[1], "close-stderr") == 0)
        return child_close_stderr();
    for (int a = 1; a < argc; a++) {
        size_t i = 0;
        while (i < sizeof parts / sizeof parts[0] && strcmp(parts[i].name, argv[a]) != 0)
            i++;
        CHECKF(i < sizeof parts / sizeof parts[0], "no part named %s", argv[a]);
        parts[i].run();
        printf("options %s: ok\n", argv[a]);
    }
    CHECKF(argc >= 2, "usage: %s PART...", argv[0]);
    return 0;
}
