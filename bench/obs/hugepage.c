/* Huge-page benchmark: a large working set of small blocks (64 B to 4 KiB,
 * about WORKING_SET MiB in all) touched at random, so that the cost is in
 * the TLB: with thp=0, thp=1 and huge=1 (MAP_HUGETLB, which falls back to
 * ordinary pages where none are reserved). Options come from
 * MAPALLOC_OPTIONS (bench/obs/run.sh sets them).
 *
 * Prints one line of name=value pairs:
 *   alloc_s     allocating and writing the working set
 *   access_s    ACCESSES million random read-modify-writes of one byte
 *   free_s      freeing it all
 *   rss_mib     resident after allocation
 *   anon_huge_mib  AnonHugePages of /proc/self/smaps_rollup then
 *   huge_fallbacks, madvise: mapalloc's counters
 * Usage: bench_obs_hugepage [working_set_mib] [accesses_millions]
 */
#include "common.h"
#include "mapalloc.h"

#include <sys/mman.h>

int main(int argc, char **argv)
{
    size_t total = (argc > 1 ? (size_t)atol(argv[1]) : 1024) * MiB;
    long accesses = (argc > 2 ? atol(argv[2]) : 40) * 1000000L;
    size_t cap = total / 64 + 1;
    unsigned char **p = mmap(NULL, cap * sizeof *p, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint32_t *sizes = mmap(NULL, cap * sizeof *sizes, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED || sizes == MAP_FAILED)
        return 1;
    wl_rng rs;
    wl_rng_init(&rs, 0x9E3779B97F4A7C15ull, 0);
    double t0 = wl_now();
    size_t n = 0, bytes = 0;
    while (bytes < total && n < cap) {
        /* 64 B to 4 KiB, log-uniform. */
        uint64_t r = wl_next(&rs);
        unsigned shift = 6 + (unsigned)(r % 6);
        size_t size = ((size_t)1 << shift) + (size_t)((r >> 8) % ((size_t)1 << shift));
        p[n] = mapalloc_malloc(size);
        if (p[n] == NULL)
            return 1;
        memset(p[n], 1, size);
        sizes[n] = (uint32_t)size;
        bytes += size;
        n++;
    }
    double alloc_s = wl_now() - t0;
    double rss = resident_mib();
    double anon_huge = proc_field_mib("/proc/self/smaps_rollup", "AnonHugePages");

    t0 = wl_now();
    uint64_t sum = 0;
    for (long i = 0; i < accesses; i++) {
        uint64_t r = wl_next(&rs);
        size_t k = (size_t)(r % n);
        unsigned char *b = p[k] + (r >> 40) % sizes[k];
        sum += *b;
        *b = (unsigned char)(*b + 1);
    }
    double access_s = wl_now() - t0;

    t0 = wl_now();
    for (size_t i = 0; i < n; i++)
        mapalloc_free(p[i]);
    double free_s = wl_now() - t0;
    struct mapalloc_stats st;
    mapalloc_stats_get(&st);
    printf("alloc_s=%.3f access_s=%.3f free_s=%.3f rss_mib=%.1f anon_huge_mib=%.1f "
           "huge_fallbacks=%llu madvise=%llu blocks=%zu check=%llu\n",
           alloc_s, access_s, free_s, rss, anon_huge, (unsigned long long)st.huge_fallbacks,
           (unsigned long long)st.madvise_calls, n, (unsigned long long)(sum & 0xff));
    return 0;
}
