/* cache-thrash: active false sharing.
 *
 * Modelled on cache-thrash from the Hoard benchmarks (Berger et al., ASPLOS
 * 2000): every thread repeatedly allocates a small object, writes to it many
 * times and frees it. No object ever passes between threads; an allocator
 * that nevertheless serves different threads from the same cache line makes
 * their writes bounce that line between cores.
 *
 * -n: allocate/write/free iterations per thread (each with 200 passes of
 * writes over an 8-byte object).
 *
 * Check: as cache-scratch, every object is zeroed, each byte incremented once
 * per pass and the bytes summed before the free; the expected sum is
 * closed-form, and a block handed to two threads at once would lose
 * increments.
 */
#include "wl.h"

#include <stdio.h>
#include <stdlib.h>

enum { OBJ = 8, PASSES = 200 };

struct worker {
    long iters;
    uint64_t sum;
    char pad[64];
};

static uint64_t scribble(unsigned char *p)
{
    volatile unsigned char *v = p;
    for (int k = 0; k < OBJ; k++)
        v[k] = 0;
    for (int pass = 0; pass < PASSES; pass++)
        for (int k = 0; k < OBJ; k++)
            v[k]++;
    uint64_t s = 0;
    for (int k = 0; k < OBJ; k++)
        s += v[k];
    return s;
}

static void *run(void *arg)
{
    struct worker *w = arg;
    for (long i = 0; i < w->iters; i++) {
        unsigned char *p = malloc(OBJ);
        if (!p) {
            wl_fail("malloc returned NULL, iteration", (uint64_t)i);
            continue;
        }
        w->sum += scribble(p);
        free(p);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct wl_args a;
    wl_parse(argc, argv, &a, 1000000, "allocate/write/free iterations per thread");
    struct worker *w = calloc((size_t)a.threads, sizeof *w);
    if (!w)
        return 1;
    for (int i = 0; i < a.threads; i++)
        w[i].iters = a.n;
    wl_run_threads(a.threads, run, w, sizeof *w);
    uint64_t got = 0;
    for (int i = 0; i < a.threads; i++)
        got += w[i].sum;
    uint64_t expected = (uint64_t)a.threads * (uint64_t)a.n * OBJ * (PASSES % 256);
    free(w);
    return wl_finish("cache-thrash", &a, got, expected);
}
