/* Decay benchmark: what a short, the default and an infinite decay cost in
 * time and in memory.
 *
 * ROUNDS times: a burst (about 256 MiB in mixed small blocks, 16 B to 2 KiB
 * with a few up to 16 KiB, every byte written, then all freed in a shuffled
 * order), then an idle-ish phase (IDLE_MS of a little allocation every
 * millisecond, which is what drives mapalloc's decay). Options come from
 * MAPALLOC_OPTIONS (bench/obs/run.sh sets them).
 *
 * Prints one line of name=value pairs:
 *   wall_s    the whole run          burst_s  the bursts only (allocate + free)
 *   peak_mib  VmHWM                  idle_mib resident at the end of each idle phase
 *   free_mib  resident right after each burst's free
 * Usage: bench_obs_decay [burst_mib] [rounds] [idle_ms]
 */
#include "common.h"
#include "mapalloc.h"

#include <sys/mman.h>

static size_t block_size(wl_rng *rs)
{
    uint64_t r = wl_next(rs);
    if (r % 64 == 0) /* one in 64: 2 KiB to 16 KiB */
        return 2 * KiB + (size_t)((r >> 8) % (14 * KiB));
    /* Otherwise 16 B to 2 KiB, more of the small ones (log-uniform). */
    unsigned shift = 4 + (unsigned)((r >> 8) % 7); /* 16 .. 1024 */
    return ((size_t)1 << shift) + (size_t)((r >> 16) % ((size_t)1 << shift));
}

int main(int argc, char **argv)
{
    size_t burst = (argc > 1 ? (size_t)atol(argv[1]) : 256) * MiB;
    int rounds = argc > 2 ? atoi(argv[2]) : 4;
    long idle_ms = argc > 3 ? atol(argv[3]) : 500;
    size_t cap = burst / 16 + 1;
    void **p = mmap(NULL, cap * sizeof *p, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                    -1, 0);
    if (p == MAP_FAILED)
        return 1;
    mapalloc_free(mapalloc_malloc(1)); /* start-up, and the options read */
    wl_rng rs;
    wl_rng_init(&rs, 88172645463325252ull, 0);
    double idle_mib[64], free_mib[64], burst_s = 0;
    double t0 = wl_now();
    for (int round = 0; round < rounds && round < 64; round++) {
        double b0 = wl_now();
        size_t n = 0, bytes = 0;
        while (bytes < burst && n < cap) {
            size_t size = block_size(&rs);
            p[n] = mapalloc_malloc(size);
            if (p[n] == NULL)
                return 1;
            memset(p[n], (int)n, size);
            bytes += size;
            n++;
        }
        wl_shuffle(&rs, p, n, sizeof *p);
        for (size_t i = 0; i < n; i++)
            mapalloc_free(p[i]);
        burst_s += wl_now() - b0;
        madvise(p, cap * sizeof *p, MADV_DONTNEED); /* the table is not the allocator's */
        free_mib[round] = resident_mib();
        double i0 = wl_now();
        while (wl_now() - i0 < (double)idle_ms / 1000) {
            void *q[16];
            for (int k = 0; k < 16; k++)
                q[k] = mapalloc_malloc(16 + (size_t)(wl_next(&rs) % 512));
            for (int k = 0; k < 16; k++)
                mapalloc_free(q[k]);
            bench_sleep_us(1000);
        }
        idle_mib[round] = resident_mib();
    }
    double wall = wl_now() - t0;
    printf("wall_s=%.3f burst_s=%.3f peak_mib=%.1f free_mib=", wall, burst_s, peak_resident_mib());
    for (int r = 0; r < rounds; r++)
        printf("%s%.1f", r ? "," : "", free_mib[r]);
    printf(" idle_mib=");
    for (int r = 0; r < rounds; r++)
        printf("%s%.1f", r ? "," : "", idle_mib[r]);
    struct mapalloc_stats st;
    mapalloc_stats_get(&st);
    printf(" madvise=%llu munmap=%llu mmap=%llu\n", (unsigned long long)st.madvise_calls,
           (unsigned long long)st.munmap_calls, (unsigned long long)st.mmap_calls);
    return 0;
}
