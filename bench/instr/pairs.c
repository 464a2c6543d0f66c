/* pairs N [SIZE [CASE [BLOCKS]]]: N malloc(SIZE)/free pairs (SIZE default
 * 16), for counting instructions per pair. The cases:
 *
 *   empty   (default) malloc then free, N times: each free empties the
 *           block's page, the allocator's case of a page going empty and
 *           coming back at once
 *   live    the same, with one other block of SIZE allocated before the
 *           loop and freed after it, so the page never empties: the plain
 *           fast paths
 *   random  BLOCKS blocks (default 1,000,000) allocated, then, N times over
 *           in passes of BLOCKS, freed in a random order and allocated
 *           again: free lists in no particular address order, blocks all
 *           over the heap (a partial last pass frees the first blocks of
 *           the order)
 *
 * run.py --instructions runs this under valgrind --tool=callgrind with N and
 * with 2N pairs for each allocator (through LD_PRELOAD) and reports
 * (count(2N) - count(N)) / N, so the start-up cost of the process, the
 * allocator's first-call initialisation and, in the random case, the first
 * allocation of the blocks and their order, cancel out.
 */
#include "rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An escape, so that the compiler keeps every call. */
#define ESCAPE(p) __asm__ volatile("" : : "g"(p) : "memory")

static int pairs(long n, size_t size)
{
    for (long i = 0; i < n; i++) {
        char *p = malloc(size);
        if (!p)
            return 1;
        ESCAPE(p);
        free(p);
    }
    return 0;
}

static int random_order(long n, size_t size, size_t blocks)
{
    void **p = malloc(blocks * sizeof *p);
    size_t *order = malloc(blocks * sizeof *order);
    if (!p || !order)
        return 1;
    for (size_t i = 0; i < blocks; i++) {
        order[i] = i;
        if (!(p[i] = malloc(size)))
            return 1;
        ESCAPE(p[i]);
    }
    wl_rng rng;
    wl_rng_init(&rng, 42, 0);
    wl_shuffle(&rng, order, blocks, sizeof *order);
    for (long done = 0; done < n;) {
        size_t k = (size_t)(n - done) < blocks ? (size_t)(n - done) : blocks;
        for (size_t i = 0; i < k; i++)
            free(p[order[i]]);
        for (size_t i = 0; i < k; i++) {
            if (!(p[order[i]] = malloc(size)))
                return 1;
            ESCAPE(p[order[i]]);
        }
        done += (long)k;
    }
    for (size_t i = 0; i < blocks; i++)
        free(p[i]);
    free(order);
    free(p);
    return 0;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 0) : 1000000;
    size_t size = argc > 2 ? (size_t)strtoul(argv[2], NULL, 0) : 16;
    const char *c = argc > 3 ? argv[3] : "empty";
    size_t blocks = argc > 4 ? (size_t)strtoul(argv[4], NULL, 0) : 1000000;
    int rc;
    if (!strcmp(c, "empty")) {
        rc = pairs(n, size);
    } else if (!strcmp(c, "live")) {
        void *keep = malloc(size);
        ESCAPE(keep);
        rc = !keep || pairs(n, size);
        free(keep);
    } else if (!strcmp(c, "random") && blocks > 0) {
        rc = random_order(n, size, blocks);
    } else {
        fprintf(stderr, "usage: %s N [SIZE [empty|live|random [BLOCKS]]]\n", argv[0]);
        return 2;
    }
    printf("pairs=%ld size=%zu case=%s %s\n", n, size, c, rc ? "FAIL" : "OK");
    return rc;
}
