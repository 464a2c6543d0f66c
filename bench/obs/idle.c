/* Burst and idle: what each allocator keeps once a program is done with its
 * memory and stops calling it.
 *
 * Allocates about BURST_MIB (default 256) MiB in small (16 B to 1 KiB),
 * medium (1 KiB to 256 KiB) and large (1 to 8 MiB) blocks, writes every
 * byte, frees them all in a shuffled order, writes "freed" on standard
 * error, and then sleeps IDLE_MS (default 3000) without one allocator call.
 * Plain malloc and free, so that any allocator can be preloaded under it;
 * bench/obs/idle.py samples its resident memory from outside.
 * Usage: bench_obs_idle [burst_mib] [idle_ms]
 */
#include "common.h"

#include <sys/mman.h>

static size_t block_size(wl_rng *rs, size_t done, size_t burst)
{
    if (done < burst * 3 / 8) { /* small, more of the smallest (log-uniform) */
        size_t base = (size_t)16 << wl_below(rs, 6);
        return base + wl_below(rs, base);
    }
    if (done < burst * 6 / 8)
        return wl_range(rs, KiB, 256 * KiB);
    return wl_range(rs, MiB, 8 * MiB);
}

int main(int argc, char **argv)
{
    size_t burst = (argc > 1 ? (size_t)atol(argv[1]) : 256) * MiB;
    long idle_ms = argc > 2 ? atol(argv[2]) : 3000;
    size_t cap = burst / 16 + 1, n = 0, done = 0;
    /* The table of blocks is the kernel's, so that it is not in the figure. */
    void **p = mmap(NULL, cap * sizeof *p, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                    -1, 0);
    if (p == MAP_FAILED)
        return 1;
    wl_rng rs;
    wl_rng_init(&rs, 42, 0);
    while (done < burst && n < cap) {
        size_t size = block_size(&rs, done, burst);
        p[n] = malloc(size);
        if (p[n] == NULL)
            return 1;
        memset(p[n], (int)n, size);
        n++;
        done += size;
    }
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)(wl_next(&rs) % (i + 1));
        void *t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
    for (size_t i = 0; i < n; i++)
        free(p[i]);
    if (write(2, "freed\n", 6) != 6)
        return 1;
    struct timespec ts = {idle_ms / 1000, (idle_ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
    return 0;
}
