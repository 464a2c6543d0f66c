/* Unit test of the OS layer (src/os.h): aligned mappings, zeroed contents,
 * remap that keeps contents, purge, the /dev/zero path and the huge-page
 * fallback, the counters, and errno left alone on failure. */
#include "check.h"
#include "os.h"
#include "sys.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

static size_t page;

static bool aligned(const void *p, size_t a)
{
    return ((uintptr_t)p & (a - 1)) == 0;
}

/* Every byte of [p, p+n) is zero (reads every byte: the mapping must be
 * readable all through). */
static bool all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return false;
    return true;
}

static unsigned char pattern(size_t i)
{
    return (unsigned char)(i * 131u + (i >> 12) * 7u + 1u);
}

static void fill(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = pattern(i);
}

/* The first index where the pattern is wrong, or n. */
static size_t check_fill(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != pattern(i))
            return i;
    return n;
}

static bool is_unmapped(void *p, size_t n)
{
    unsigned char vec[1];
    for (size_t off = 0; off < n; off += page) {
        errno = 0;
        if (mincore((char *)p + off, page, vec) == 0 || errno != ENOMEM)
            return false;
    }
    return true;
}

static void test_page_size(void)
{
    CHECK(ma_os_page_size() == (size_t)sysconf(_SC_PAGESIZE));
}

/* Aligned mappings of many sizes and alignments: aligned, zeroed, writable,
 * and gone after unmap; the counters follow. */
static void test_map_aligned(void)
{
    static const struct {
        size_t size, align;
    } cases[] = {
        {4 * KiB, 4 * KiB},   {64 * KiB, 64 * KiB}, {64 * KiB, 1 * MiB},  {1 * MiB, 2 * MiB},
        {4 * MiB, 4 * MiB},   {8 * MiB, 4 * MiB},   {4 * MiB, 32 * MiB},  {12 * KiB, 4 * MiB},
        {32 * MiB, 32 * MiB}, {3 * MiB, 4 * KiB},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        size_t size = cases[k].size, align = cases[k].align;
        struct ma_os_counters before, after;
        ma_os_counters(&before);
        /* Several at once, so that they cannot all land on the same lucky
         * address. */
        enum { N = 6 };
        void *maps[N];
        for (int i = 0; i < N; i++) {
            errno = 4242;
            maps[i] = ma_os_map(size, align, 0);
            CHECKF(maps[i] != NULL, "map %zu align %zu", size, align);
            CHECK(errno == 4242);
            CHECKF(aligned(maps[i], align), "map %zu align %zu at %p", size, align, maps[i]);
            CHECKF(all_zero(maps[i], size), "map %zu not zero", size);
            fill(maps[i], size);
        }
        ma_os_counters(&after);
        CHECKF(after.mapped >= before.mapped + N * size, "mapped %zu -> %zu after %d x %zu",
               before.mapped, after.mapped, N, size);
        /* Trimming the over-map leaves nothing behind: no more than the
         * regions themselves are counted. */
        CHECKF(after.mapped - before.mapped == N * size, "mapped grew by %zu for %d x %zu",
               after.mapped - before.mapped, N, size);
        CHECK(after.peak_mapped >= after.mapped);
        CHECK(after.mmap_calls > before.mmap_calls);
        for (int i = 0; i < N; i++) {
            CHECK(check_fill(maps[i], size) == size);
            for (int j = 0; j < i; j++)
                CHECK((char *)maps[i] + size <= (char *)maps[j] ||
                      (char *)maps[j] + size <= (char *)maps[i]);
        }
        for (int i = 0; i < N; i++) {
            errno = 4242;
            CHECK(ma_os_unmap(maps[i], size));
            CHECK(errno == 4242);
            CHECK(is_unmapped(maps[i], size));
        }
        struct ma_os_counters end;
        ma_os_counters(&end);
        CHECKF(end.mapped == before.mapped, "mapped %zu before, %zu after unmapping", before.mapped,
               end.mapped);
        CHECK(end.munmap_calls > before.munmap_calls);
    }
}

/* A mapping whose pages are untouched costs no memory (lazily committed). */
static void test_map_lazy(void)
{
    size_t size = 64 * MiB;
    unsigned char *p = ma_os_map(size, 4 * MiB, 0);
    CHECK(p != NULL);
    CHECK(wl_resident_pages(p, size) == 0);
    p[0] = 1;
    p[size - 1] = 1;
    CHECK(wl_resident_pages(p, size) == 2);
    CHECK(ma_os_unmap(p, size));
}

/* Growing and shrinking keeps the contents; the new tail reads zero. */
/* A 1 MiB mapping that cannot grow in place: a page is mapped right after
 * it (*blocker). NULL where the kernel would not place the page there. */
static unsigned char *blocked_mib(unsigned char **blocker)
{
    unsigned char *a = ma_os_map(2 * MiB, 2 * MiB, 0);
    CHECK(a != NULL);
    CHECK(ma_os_unmap(a + MiB, MiB)); /* keep the first half */
    *blocker = mmap(a + MiB, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (*blocker == a + MiB)
        return a;
    if (*blocker != MAP_FAILED)
        munmap(*blocker, page);
    CHECK(ma_os_unmap(a, MiB));
    return NULL;
}

static void test_remap(void)
{
    size_t small = 1 * MiB, big = 16 * MiB, tiny = 256 * KiB;
    unsigned char *p = ma_os_map(small, page, 0);
    CHECK(p != NULL);
    fill(p, small);

    struct ma_os_counters before;
    ma_os_counters(&before);
    errno = 4242;
    unsigned char *q = ma_os_remap(p, small, big, page);
    CHECK(q != NULL);
    CHECK(errno == 4242);
    CHECKF(check_fill(q, small) == small, "grown block differs at %zu", check_fill(q, small));
    CHECK(all_zero(q + small, big - small));
    struct ma_os_counters mid;
    ma_os_counters(&mid);
    CHECK(mid.mremap_calls > before.mremap_calls);
    CHECKF(mid.mapped == before.mapped + (big - small), "mapped %zu -> %zu", before.mapped,
           mid.mapped);

    /* The grown tail is writable. */
    memset(q + small, 0x5a, big - small);

    /* Shrink in place: always possible. */
    unsigned char *r = ma_os_remap(q, big, tiny, 0);
    CHECK(r == q);
    CHECK(check_fill(r, tiny) == tiny);

    /* Grow without moving: may fail when the next pages are taken, and then
     * the old mapping is intact. */
    unsigned char *s = ma_os_remap(r, tiny, 2 * tiny, 0);
    if (s == NULL) {
        CHECK(check_fill(r, tiny) == tiny);
        s = r;
        CHECK(ma_os_unmap(s, tiny));
    } else {
        CHECK(s == r);
        CHECK(check_fill(s, tiny) == tiny);
        CHECK(all_zero(s + tiny, tiny));
        CHECK(ma_os_unmap(s, 2 * tiny));
    }

    /* Forced failure of an in-place grow: a mapping right after. */
    unsigned char *blocker;
    unsigned char *a = blocked_mib(&blocker);
    if (a != NULL) {
        fill(a, MiB);
        errno = 4242;
        CHECK(ma_os_remap(a, MiB, 2 * MiB, 0) == NULL);
        CHECK(errno == 4242);
        CHECK(check_fill(a, MiB) == MiB);
        /* Allowed to move, it moves, page tables and all. */
        unsigned char *moved = ma_os_remap(a, MiB, 4 * MiB, page);
        CHECK(moved != NULL && moved != a);
        CHECK(check_fill(moved, MiB) == MiB);
        CHECK(all_zero(moved + MiB, 3 * MiB));
        CHECK(ma_os_unmap(moved, 4 * MiB));
        munmap(blocker, page);
    }
    /* A move with an alignment lands on it, whatever the new size (the
     * kernel's own choice is page-aligned only). */
    a = blocked_mib(&blocker);
    if (a != NULL) {
        fill(a, MiB);
        unsigned char *moved = ma_os_remap(a, MiB, 3 * MiB + page, 2 * MiB);
        CHECKF(moved != NULL && moved != a && ((uintptr_t)moved & (2 * MiB - 1)) == 0,
               "moved to %p", (void *)moved);
        CHECK(check_fill(moved, MiB) == MiB);
        CHECK(all_zero(moved + MiB, 2 * MiB + page));
        CHECK(ma_os_unmap(moved, 3 * MiB + page));
        munmap(blocker, page);
    }
}

/* Purge gives the pages back: they are no longer resident and read zero. */
static void test_purge(void)
{
    size_t size = 8 * MiB;
    unsigned char *p = ma_os_map(size, 4 * MiB, 0);
    CHECK(p != NULL);
    fill(p, size);
    CHECK(wl_resident_pages(p, size) == size / page);

    struct ma_os_counters before, after;
    ma_os_counters(&before);
    /* Purge the middle, leave both ends. */
    errno = 4242;
    CHECK(ma_os_purge(p + MiB, size - 2 * MiB));
    CHECK(errno == 4242);
    ma_os_counters(&after);
    CHECK(after.madvise_calls > before.madvise_calls);
    CHECK(check_fill(p, MiB) == MiB);
    for (size_t i = size - MiB; i < size; i++)
        CHECK(p[i] == pattern(i));
    /* The default purge (no option set) is MADV_DONTNEED: zero at once. */
    CHECK(all_zero(p + MiB, size - 2 * MiB));
    /* Still mapped and writable. */
    memset(p + MiB, 0x11, page);

    CHECK(ma_os_unmap(p, size));
}

/* The /dev/zero path: same contract, and the mapping really comes from
 * /dev/zero; private, so two of them do not share pages. */
static void test_devzero(void)
{
    struct ma_os_counters before, after;
    ma_os_counters(&before);
    size_t size = 4 * MiB;
    unsigned char *a = ma_os_map(size, 4 * MiB, MA_MAP_DEVZERO);
    unsigned char *b = ma_os_map(size, 64 * KiB, MA_MAP_DEVZERO);
    CHECK(a != NULL && b != NULL);
    CHECK(aligned(a, 4 * MiB));
    CHECK(aligned(b, 64 * KiB));
    CHECK(all_zero(a, size) && all_zero(b, size));
    ma_os_counters(&after);
    CHECKF(after.devzero_maps >= before.devzero_maps + 2, "devzero_maps %llu -> %llu",
           (unsigned long long)before.devzero_maps, (unsigned long long)after.devzero_maps);

    char line[512];
    CHECK(wl_maps_line(a, line, sizeof line));
    CHECKF(strstr(line, "/dev/zero") != NULL, "mapping at %p: %s", (void *)a, line);

    fill(a, size);
    CHECK(all_zero(b, size));
    CHECK(check_fill(a, size) == size);

    /* Remap and purge work on it too. */
    unsigned char *g = ma_os_remap(a, size, 2 * size, page);
    CHECK(g != NULL);
    CHECK(check_fill(g, size) == size);
    CHECK(all_zero(g + size, size));
    CHECK(ma_os_purge(g, size));
    CHECK(all_zero(g, size));
    CHECK(ma_os_unmap(g, 2 * size));
    CHECK(ma_os_unmap(b, size));
}

/* MAP_HUGETLB: the mapping works whatever the kernel says; when it has no
 * huge pages to give, the fallback is counted. */
static void test_huge_fallback(void)
{
    long total = wl_proc_field("/proc/meminfo", "HugePages_Total");
    size_t size = 4 * MiB;
    for (int round = 0; round < 3; round++) {
        struct ma_os_counters before, after;
        ma_os_counters(&before);
        errno = 4242;
        unsigned char *p = ma_os_map(size, 2 * MiB, MA_MAP_HUGE);
        CHECK(p != NULL);
        CHECK(errno == 4242);
        CHECK(aligned(p, 2 * MiB));
        CHECK(all_zero(p, size));
        fill(p, size);
        CHECK(check_fill(p, size) == size);
        ma_os_counters(&after);
        if (total == 0)
            CHECKF(after.huge_fallbacks > before.huge_fallbacks,
                   "no huge pages reserved, huge_fallbacks stayed at %llu",
                   (unsigned long long)after.huge_fallbacks);
        CHECK(ma_os_unmap(p, size));
    }
    /* Huge and /dev/zero together, and the other flags: still a mapping. */
    static const unsigned flag_sets[] = {
        MA_MAP_HUGE | MA_MAP_DEVZERO, MA_MAP_NORESERVE, MA_MAP_THP,
        MA_MAP_HUGE | MA_MAP_NORESERVE | MA_MAP_THP, MA_MAP_DEVZERO | MA_MAP_NORESERVE,
    };
    for (size_t k = 0; k < sizeof flag_sets / sizeof flag_sets[0]; k++) {
        unsigned char *p = ma_os_map(size, 4 * MiB, flag_sets[k]);
        CHECKF(p != NULL, "flags %#x", flag_sets[k]);
        CHECK(aligned(p, 4 * MiB));
        CHECK(all_zero(p, size));
        fill(p, size);
        CHECK(check_fill(p, size) == size);
        CHECK(ma_os_unmap(p, size));
    }
}

/* Failure is NULL with errno untouched. */
static void test_failure(void)
{
    struct ma_os_counters before, after;
    ma_os_counters(&before);
    size_t huge = (size_t)1 << 62;
    errno = 4242;
    CHECK(ma_os_map(huge, page, 0) == NULL);
    CHECK(errno == 4242);
    CHECK(ma_os_map(huge, page, MA_MAP_DEVZERO) == NULL);
    CHECK(errno == 4242);
    CHECK(ma_os_map(huge, 2 * MiB, MA_MAP_HUGE) == NULL);
    CHECK(errno == 4242);
    /* An alignment that cannot be met by over-mapping. */
    CHECK(ma_os_map(page, (size_t)1 << 62, 0) == NULL);
    CHECK(errno == 4242);

    unsigned char *p = ma_os_map(MiB, page, 0);
    CHECK(p != NULL);
    fill(p, MiB);
    CHECK(ma_os_remap(p, MiB, huge, page) == NULL);
    CHECK(errno == 4242);
    CHECK(check_fill(p, MiB) == MiB);
    CHECK(ma_os_unmap(p, MiB));
    ma_os_counters(&after);
    CHECK(after.mapped == before.mapped);
}

int main(void)
{
    page = (size_t)sysconf(_SC_PAGESIZE);
    test_page_size();
    test_map_aligned();
    test_map_lazy();
    test_remap();
    test_purge();
    test_devzero();
    test_huge_fallback();
    test_failure();
    struct ma_os_counters c;
    ma_os_counters(&c);
    printf("os: mmap %llu munmap %llu mremap %llu madvise %llu huge_fallbacks %llu devzero %llu\n",
           (unsigned long long)c.mmap_calls, (unsigned long long)c.munmap_calls,
           (unsigned long long)c.mremap_calls, (unsigned long long)c.madvise_calls,
           (unsigned long long)c.huge_fallbacks, (unsigned long long)c.devzero_maps);
    return 0;
}
