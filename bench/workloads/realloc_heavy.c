/* realloc-heavy: buffers that grow (and sometimes shrink) by realloc.
 *
 * Modelled on the string-builder / growable-vector pattern that dominates
 * realloc traffic in interpreters and parsers (the "realloc" tests of
 * mimalloc-bench and glibc's malloc benchmarks): each thread keeps 64
 * buffers and, per operation, picks one and appends to it with realloc to
 * the exact new length. Half of the buffers grow in small steps (1..64
 * bytes) up to a limit of 256 B..64 KiB; the other half grow geometrically
 * (by up to 1/8 of their length) up to a limit of 64 KiB..8 MiB, which takes
 * them through every size class into large, mapped blocks. One operation in
 * 32 halves the buffer instead. A buffer past its limit is checked, freed
 * and started again.
 *
 * -n: operations per thread.
 *
 * Check: byte i of a buffer is a function of (buffer generation, i); the
 * whole buffer is verified before it is freed and its length added to a
 * sum. The expected sum comes from replaying the same random decisions on
 * lengths alone, without allocating.
 */
#include "wl.h"

#include <stdio.h>
#include <stdlib.h>

enum { BUFS = 64 };

struct buf {
    unsigned char *p;
    size_t len, limit;
    uint64_t gen;
    int geometric;
};

static unsigned char byte_at(uint64_t gen, size_t i)
{
    return (unsigned char)((gen * 131) ^ (i * 7) ^ (i >> 8));
}

static void start(struct buf *b, wl_rng *rng, uint64_t gen)
{
    b->len = 0;
    b->gen = gen;
    b->geometric = (int)(gen & 1);
    /* log-uniform limits */
    unsigned shift = b->geometric ? 16 + (unsigned)wl_below(rng, 7) : 8 + (unsigned)wl_below(rng, 8);
    b->limit = ((size_t)1 << shift) + (size_t)wl_below(rng, (uint64_t)1 << shift);
}

/* One operation on the lengths only: returns the new length, or 0 with
 * *finished = length when the buffer is to be freed. Used by both the real
 * run and the replay, so both draw the same numbers. */
static size_t decide(struct buf *b, wl_rng *rng, size_t *finished)
{
    *finished = 0;
    if (b->len > b->limit) {
        *finished = b->len;
        return 0;
    }
    uint64_t r = wl_next(rng);
    if ((r & 31) == 0 && b->len > 16)
        return b->len / 2;
    size_t step = b->geometric ? 1 + (size_t)((r >> 8) % (16 + b->len / 8)) : 1 + (size_t)((r >> 8) % 64);
    return b->len + step;
}

static void verify(const struct buf *b)
{
    for (size_t i = 0; i < b->len; i++) {
        if (b->p[i] != byte_at(b->gen, i)) {
            wl_fail("buffer content broken, generation", b->gen);
            return;
        }
    }
}

static void *run(void *arg)
{
    struct wl_worker *w = arg;
    wl_rng rng;
    wl_rng_init(&rng, w->seed, (uint64_t)w->id);
    struct buf bufs[BUFS] = {{0}};
    uint64_t gen = (uint64_t)w->id << 32;
    for (int i = 0; i < BUFS; i++)
        start(&bufs[i], &rng, gen++);
    for (long op = 0; op < w->n; op++) {
        struct buf *b = &bufs[wl_below(&rng, BUFS)];
        size_t finished, len = decide(b, &rng, &finished);
        if (finished) {
            verify(b);
            w->sum += finished;
            free(b->p);
            b->p = NULL;
            start(b, &rng, gen++);
            continue;
        }
        unsigned char *p = realloc(b->p, len);
        if (!p) {
            wl_fail("realloc returned NULL, size", len);
            continue;
        }
        for (size_t i = b->len; i < len; i++)
            p[i] = byte_at(b->gen, i);
        b->p = p;
        b->len = len;
    }
    for (int i = 0; i < BUFS; i++) {
        verify(&bufs[i]);
        w->sum += bufs[i].len;
        free(bufs[i].p);
    }
    return NULL;
}

/* The same decisions as run(), on lengths only. */
static uint64_t replay(int id, long ops, uint64_t seed)
{
    wl_rng rng;
    wl_rng_init(&rng, seed, (uint64_t)id);
    struct buf bufs[BUFS] = {{0}};
    uint64_t gen = (uint64_t)id << 32, sum = 0;
    for (int i = 0; i < BUFS; i++)
        start(&bufs[i], &rng, gen++);
    for (long op = 0; op < ops; op++) {
        struct buf *b = &bufs[wl_below(&rng, BUFS)];
        size_t finished, len = decide(b, &rng, &finished);
        if (finished) {
            sum += finished;
            start(b, &rng, gen++);
        } else {
            b->len = len;
        }
    }
    for (int i = 0; i < BUFS; i++)
        sum += bufs[i].len;
    return sum;
}

int main(int argc, char **argv)
{
    struct wl_args a;
    wl_parse(argc, argv, &a, 2000000, "operations per thread");
    return wl_run_checked("realloc-heavy", &a, run, replay);
}
