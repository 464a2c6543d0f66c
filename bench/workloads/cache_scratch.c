/* cache-scratch: passive false sharing.
 *
 * Modelled on cache-scratch from the Hoard benchmarks (Berger et al.,
 * "Hoard: A Scalable Memory Allocator for Multithreaded Applications",
 * ASPLOS 2000): the main thread allocates one small object per worker, so
 * they are likely to sit next to each other in one cache line, and hands one
 * to each worker. Each worker frees its object, then repeatedly allocates an
 * object of the same size, writes to it many times and frees it. An
 * allocator that gives a thread back the block another thread freed (or
 * carves different threads' blocks from one cache line) makes the workers'
 * writes fight over a cache line; a good one keeps each thread on lines of
 * its own.
 *
 * -n: allocate/write/free iterations per thread (each with 200 passes of
 * writes over an 8-byte object).
 *
 * Check: each object is zeroed, then every byte is incremented once per
 * pass; the worker sums the bytes before freeing. Blocks handed to two
 * threads at once would lose increments. The expected sum is closed-form.
 */
#include "wl.h"

#include <stdio.h>
#include <stdlib.h>

enum { OBJ = 8, PASSES = 200 };

struct worker {
    unsigned char *initial;
    long iters;
    uint64_t sum;
    char pad[64];
};

/* Writes through a volatile pointer so that every pass touches memory. */
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
    w->sum += scribble(w->initial);
    free(w->initial);
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
    for (int i = 0; i < a.threads; i++) {
        w[i].initial = malloc(OBJ);
        w[i].iters = a.n;
        if (!w[i].initial)
            return 1;
    }
    wl_run_threads(a.threads, run, w, sizeof *w);
    uint64_t got = 0;
    for (int i = 0; i < a.threads; i++)
        got += w[i].sum;
    uint64_t expected = (uint64_t)a.threads * (uint64_t)(a.n + 1) * OBJ * (PASSES % 256);
    free(w);
    return wl_finish("cache-scratch", &a, got, expected);
}
