/* Huge pages.
 *
 * huge=1 asks for MAP_HUGETLB regions; where the kernel has no huge pages
 * reserved (HugePages_Free 0) it must fall back to ordinary pages, count it
 * (huge_fallbacks), and work. thp=1 madvises regions MADV_HUGEPAGE: their
 * mappings carry the "hg" flag and are 2 MiB aligned (regions are 4 MiB
 * aligned); where the kernel's THP mode allows it, smaps says THPeligible 1.
 * Whether huge pages are actually used (AnonHugePages) depends on the
 * kernel's mood (defrag, fragmentation): printed, not required.
 *
 * large_thp=1, the default, madvises large blocks of 2 MiB and more (and
 * maps them 2 MiB aligned), and those that grow to that size.
 *
 * thp_purge: with thp=1 a purge splits no huge page of a half in use until
 * its empty pages have waited four decays (mincore).
 *
 * Usage: test_huge huge|thp|arena_huge|large_thp|thp_purge   with MAPALLOC_OPTIONS from meson
 */
#include "burst.h"
#include "mapalloc.h"
#include "obs.h"

static struct mapalloc_stats stats(void)
{
    struct mapalloc_stats s;
    mapalloc_stats_get(&s);
    return s;
}

/* The kernel's THP mode: "always", "madvise", "never", or "" if unknown. */
static void thp_mode(char *mode, size_t size)
{
    mode[0] = '\0';
    char line[128];
    if (!wl_proc_head("/sys/kernel/mm/transparent_hugepage/enabled", line, sizeof line))
        return;
    char *open = strchr(line, '['), *close = open ? strchr(open, ']') : NULL;
    if (open && close) {
        *close = '\0';
        snprintf(mode, size, "%s", open + 1);
    }
}

static void part_huge(void)
{
    mapalloc_free(mapalloc_malloc(1));
    CHECK(mapalloc_option_get("huge") == 1);
    long free_huge = wl_proc_field("/proc/meminfo", "HugePages_Free");
    struct burst b;
    burst_init(&b, 1u << 20);
    burst_allocate(&b, 64 * MiB, 21);
    void *big = mapalloc_malloc(16 * MiB);
    CHECK(big != NULL);
    memset(big, 3, 16 * MiB);
    struct mapalloc_stats s = stats();
    printf("huge: HugePages_Free %ld, regions %llu, huge_fallbacks %llu, mmap_calls %llu\n",
           free_huge, (unsigned long long)s.regions, (unsigned long long)s.huge_fallbacks,
           (unsigned long long)s.mmap_calls);
    if (free_huge == 0)
        CHECKF(s.huge_fallbacks >= s.regions && s.huge_fallbacks > 0,
               "no huge pages free: %llu regions, %llu fallbacks",
               (unsigned long long)s.regions, (unsigned long long)s.huge_fallbacks);
    CHECK(((unsigned char *)big)[16 * MiB - 1] == 3);
    burst_free(&b, 22);
    mapalloc_free(big);
    /* Still works after the memory went back and came again. */
    burst_allocate(&b, 16 * MiB, 23);
    burst_free(&b, 24);
    burst_done(&b);
}

/* An arena created with MAPALLOC_ARENA_HUGE falls back the same way. */
static void part_arena_huge(void)
{
    struct mapalloc_stats s0 = stats();
    struct mapalloc_arena_options o = {MAPALLOC_ARENA_HUGE, 0, 0};
    mapalloc_arena *a = mapalloc_arena_create(&o);
    CHECK(a != NULL);
    for (int i = 0; i < 2000; i++) {
        unsigned char *p = mapalloc_arena_malloc(a, 1000 + (size_t)i * 17);
        CHECK(p != NULL);
        p[0] = 1;
    }
    struct mapalloc_stats s1 = stats();
    printf("arena_huge: huge_fallbacks %llu -> %llu\n", (unsigned long long)s0.huge_fallbacks,
           (unsigned long long)s1.huge_fallbacks);
    if (wl_proc_field("/proc/meminfo", "HugePages_Free") == 0)
        CHECK(s1.huge_fallbacks > s0.huge_fallbacks);
    mapalloc_arena_destroy(a);
}

static void part_thp(void)
{
    mapalloc_free(mapalloc_malloc(1));
    long on = mapalloc_option_get("thp");
    char mode[32];
    thp_mode(mode, sizeof mode);
    struct burst b;
    burst_init(&b, 1u << 20);
    burst_allocate(&b, 64 * MiB, 31);
    struct mapalloc_stats s = stats();
    if (on)
        CHECKF(s.madvise_calls >= s.regions, "thp=1: %llu regions, %llu madvise calls",
               (unsigned long long)s.regions, (unsigned long long)s.madvise_calls);
    /* Every mapping that holds a block: its bounds and flags. */
    unsigned checked = 0;
    long anon_huge_max = 0;
    for (size_t i = 0; i < b.count; i += b.count / 64 + 1) {
        char flags[512], eligible[64], anon[64];
        uintptr_t lo = 0, hi = 0;
        CHECK(wl_smaps_field(b.p[i], "VmFlags", &lo, &hi, flags, sizeof flags));
        /* The 4 MiB-aligned window around the block is all in this one
         * mapping: the region is aligned, so each of its 2 MiB halves can
         * be a huge page. (Its bounds may be wider: the kernel merges
         * neighbouring mappings with the same flags.) */
        uintptr_t window = (uintptr_t)b.p[i] & ~(uintptr_t)(REGION - 1);
        CHECKF(lo <= window && window + REGION <= hi,
               "block %p: mapping %#lx-%#lx does not hold the aligned region %#lx-%#lx",
               (void *)b.p[i], (unsigned long)lo, (unsigned long)hi, (unsigned long)window,
               (unsigned long)(window + REGION));
        CHECKF(wl_vmflag(flags, "hg") == (on != 0), "thp=%ld: mapping %#lx-%#lx VmFlags %s", on,
               (unsigned long)lo, (unsigned long)hi, flags);
        if (wl_smaps_field(b.p[i], "THPeligible", &lo, &hi, eligible, sizeof eligible)) {
            /* 1 when the mode and the mapping allow huge pages. */
            if (strcmp(mode, "never") == 0)
                CHECK(eligible[0] == '0');
            else if (strcmp(mode, "madvise") == 0)
                CHECKF((eligible[0] == '1') == (on != 0),
                       "THP mode madvise, thp=%ld, THPeligible %s", on, eligible);
            else if (strcmp(mode, "always") == 0)
                CHECKF(eligible[0] == '1', "THP mode always, THPeligible %s", eligible);
        }
        if (wl_smaps_field(b.p[i], "AnonHugePages", &lo, &hi, anon, sizeof anon)) {
            long kb = strtol(anon, NULL, 10);
            if (kb > anon_huge_max)
                anon_huge_max = kb;
        }
        checked++;
    }
    printf("thp=%ld (kernel mode %s): %u block mappings checked, regions 4 MiB aligned; the largest "
           "AnonHugePages of one %ld kB, process AnonHugePages %ld kB\n",
           on, mode[0] ? mode : "unknown", checked, anon_huge_max,
           wl_proc_field("/proc/self/smaps_rollup", "AnonHugePages"));
    if (!on || strcmp(mode, "never") == 0)
        CHECK(anon_huge_max == 0 || strcmp(mode, "always") == 0);
    burst_free(&b, 32);
    burst_done(&b);
}

/* thp=1: a purge does not split a huge page of a region while the program
 * may use it again. A region full of 1 KiB blocks is freed but for one
 * block in its first 2 MiB half: after the decay the background purger
 * gives back the second half (wholly free: its huge page goes back whole),
 * but the first, where the header and that block live, stays resident
 * until its free pages have waited four decays. With thp=0 both go after
 * the decay. */
static void part_thp_purge(void)
{
    enum { DECAY_MS = 200, BLOCK = 1024 };
    mapalloc_free(mapalloc_malloc(1));
    long on = mapalloc_option_get("thp");
    CHECK(mapalloc_option_set("decay_ms", DECAY_MS) == 0);
    size_t count = 12 * MiB / BLOCK;
    uint8_t **p = mmap(NULL, count * sizeof *p, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED);
    for (size_t i = 0; i < count; i++) {
        p[i] = mapalloc_malloc(BLOCK);
        CHECK(p[i] != NULL);
        memset(p[i], 7, BLOCK);
    }
    /* A region that the blocks fill from its first page to its end. */
    uintptr_t r = 0;
    for (size_t i = count / 3; i < count && r == 0; i++) {
        uintptr_t base = (uintptr_t)p[i] & ~(uintptr_t)(REGION - 1);
        if ((uintptr_t)p[i] == base + 64 * KiB && i + REGION / BLOCK < count &&
            (uintptr_t)p[i + REGION / BLOCK - 64 - 1] == base + REGION - BLOCK)
            r = base;
    }
    CHECKF(r != 0, "no region filled by %zu blocks of %d B in order", count, BLOCK);
    uint8_t *keep = (uint8_t *)r + MiB; /* a block of the first half */
    for (size_t i = 0; i < count; i++)
        if (p[i] != keep)
            mapalloc_free(p[i]);
    /* The first half past the header slice and the kept block's page. */
    const uint8_t *first = (const uint8_t *)r + 64 * KiB;
    size_t first_len = MiB - 64 * KiB, half = 2 * MiB;
    double t0 = wl_now();
    obs_sleep_ms(DECAY_MS * 3 / 2);
    size_t second;
    for (int i = 0; i < 60 && (second = wl_resident_pages((uint8_t *)r + half, half)) > 16; i++)
        obs_sleep_ms(DECAY_MS / 4);
    size_t kept = wl_resident_pages(first, first_len);
    double t1 = wl_now() - t0;
    printf("thp_purge: thp=%ld: %.0f ms after the free, resident OS pages: first half %zu of %zu, "
           "second half %zu of %zu\n", on, t1 * 1000, kept, first_len / 4096, second, half / 4096);
    CHECKF(second <= 16, "thp=%ld: the wholly free half holds %zu resident OS pages after %.0f ms",
           on, second, t1 * 1000);
    if (t1 * 1000 < 7 * DECAY_MS / 2) { /* else too late to tell on a busy machine */
        if (on)
            CHECKF(kept >= first_len / 4096 * 3 / 4,
                   "thp=1: the half with a live block was purged (%zu of %zu OS pages resident)", kept,
                   first_len / 4096);
        else
            CHECKF(kept <= first_len / 4096 / 4, "thp=0: %zu of %zu OS pages still resident", kept,
                   first_len / 4096);
    }
    /* Idle long enough, the huge page is split and the free pages go. */
    for (int i = 0; i < 40 && (kept = wl_resident_pages(first, first_len)) > first_len / 4096 / 4; i++)
        obs_sleep_ms(DECAY_MS / 2);
    printf("thp_purge: thp=%ld: %.0f ms after the free, first half %zu OS pages resident\n", on,
           (wl_now() - t0) * 1000, kept);
    CHECKF(kept <= first_len / 4096 / 4, "thp=%ld: %zu of %zu OS pages resident after %.1f s", on, kept,
           first_len / 4096, wl_now() - t0);
    CHECK(keep[0] == 7 && keep[BLOCK - 1] == 7);
    mapalloc_free(keep);
    munmap(p, count * sizeof *p);
}

/* Whether the mapping that holds p carries MADV_HUGEPAGE ("hg"). */
static bool advised_huge(const void *p)
{
    char flags[512];
    uintptr_t lo = 0, hi = 0;
    CHECK(wl_smaps_field(p, "VmFlags", &lo, &hi, flags, sizeof flags));
    return wl_vmflag(flags, "hg");
}

/* large_thp (on by default): a large block of 2 MiB or more is mapped 2 MiB
 * aligned, its mapping rounded up to 2 MiB (usable to its end) where that
 * adds at most 1 MiB, and madvised MADV_HUGEPAGE; one under 2 MiB is not; one that grows past 2 MiB
 * gets the advice then, its contents kept, and lands 2 MiB aligned where it
 * must move (a 1 MiB block is placed by the kernel, top down, just below
 * the one mapped before it, so it cannot grow in place). */
static void part_large_thp(void)
{
    mapalloc_free(mapalloc_malloc(1)); /* the options are read */
    long on = mapalloc_option_get("large_thp");
    uint8_t *big = mapalloc_malloc(9 * MiB + 100);
    uint8_t *table = mapalloc_malloc(8 * MiB + 100); /* rounding would add 2 MiB less a page */
    uint8_t *small = mapalloc_malloc(MiB);
    uint8_t *grown = mapalloc_malloc(MiB);
    CHECK(big != NULL && table != NULL && small != NULL && grown != NULL);
    memset(grown, 0x5a, MiB);
    grown = mapalloc_realloc(grown, 16 * MiB);
    CHECK(grown != NULL);
    for (size_t i = 0; i < MiB; i += 4096)
        CHECK(grown[i] == 0x5a && grown[i + 4095] == 0x5a);
    memset(big, 1, 9 * MiB + 100);
    CHECKF(!on || ((uintptr_t)big & (2 * MiB - 1)) == 0, "large_thp=1: block %p not 2 MiB aligned",
           (void *)big);
    CHECKF(advised_huge(big) == (on != 0), "large_thp=%ld: 9 MiB block %p", on, (void *)big);
    size_t usable = mapalloc_usable_size(big);
    CHECKF(on ? usable == 10 * MiB : usable == 9 * MiB + 4096, "large_thp=%ld: 9 MiB + 100 block usable to %zu",
           on, usable);
    usable = mapalloc_usable_size(table);
    CHECKF(usable == 8 * MiB + 4096, "large_thp=%ld: 8 MiB + 100 block usable to %zu", on, usable);
    CHECKF(!on || ((uintptr_t)grown & (2 * MiB - 1)) == 0, "large_thp=1: grown block %p not 2 MiB aligned",
           (void *)grown);
    CHECKF(advised_huge(grown) == (on != 0), "large_thp=%ld: block grown to 16 MiB %p", on,
           (void *)grown);
    CHECKF(!advised_huge(small), "large_thp=%ld: 1 MiB block %p advised", on, (void *)small);
    printf("large_thp=%ld: 9 MiB block at %p, grown block at %p, 1 MiB block at %p; "
           "process AnonHugePages %ld kB\n", on, (void *)big, (void *)grown, (void *)small,
           wl_proc_field("/proc/self/smaps_rollup", "AnonHugePages"));
    mapalloc_free(big);
    mapalloc_free(table);
    mapalloc_free(small);
    mapalloc_free(grown);
}

int main(int argc, char **argv)
{
    CHECKF(argc == 2, "usage: %s huge|arena_huge|thp|large_thp|thp_purge", argv[0]);
    if (strcmp(argv[1], "huge") == 0)
        part_huge();
    else if (strcmp(argv[1], "arena_huge") == 0)
        part_arena_huge();
    else if (strcmp(argv[1], "thp") == 0)
        part_thp();
    else if (strcmp(argv[1], "large_thp") == 0)
        part_large_thp();
    else if (strcmp(argv[1], "thp_purge") == 0)
        part_thp_purge();
    else
        CHECKF(false, "no part %s", argv[1]);
    return 0;
}
