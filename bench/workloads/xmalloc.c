/* xmalloc: a producer/consumer pipeline.
 *
 * Modelled on xmalloc-test (Lever & Boreham, "malloc() performance in a
 * multithreaded Linux environment", USENIX 2000; also in mimalloc-bench):
 * some threads only allocate and others only free, so every block is freed
 * by a thread other than the one that allocated it. Half of the threads
 * produce batches of 64 blocks of random size (16..512 bytes, with a few up
 * to 8 KiB), the batch itself a malloc'd array, and pass them through one
 * bounded queue to the other half, which check and free them. With -t 1 it
 * still runs one producer and one consumer.
 *
 * -n: batches per producer. -d seconds: producers make batches for that
 * long instead, and the result line has the frees per second.
 *
 * Check: every block is stamped with a unique id (producer << 40 | seq);
 * consumers sum the ids they free; the expected sum is closed-form.
 */
#include "wl.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

enum { BATCH = 64, QUEUE_CAP = 256 };

struct batch {
    void *p[BATCH];
    uint32_t size[BATCH];
};

/* Producers to consumers; one lock per 64 blocks. */
static wl_queue q;
static void *q_items[QUEUE_CAP];

struct worker {
    int id, producer;
    long batches;
    uint64_t seed, sum, made; /* sum: ids freed; made: blocks produced */
    char pad[64];
};

static void *run(void *arg)
{
    struct worker *w = arg;
    if (!w->producer) {
        struct batch *b;
        while ((b = wl_queue_pop(&q))) {
            for (int i = 0; i < BATCH; i++) {
                if (!b->p[i])
                    continue;
                w->sum += wl_check(b->p[i], b->size[i]);
                free(b->p[i]);
            }
            free(b);
        }
        return NULL;
    }
    wl_rng rng;
    wl_rng_init(&rng, w->seed, (uint64_t)w->id);
    uint64_t seq = 0, base = (uint64_t)w->id << 40;
    for (long n = 0; n < w->batches && !wl_past(1.0); n++) {
        struct batch *b = malloc(sizeof *b);
        if (!b) {
            wl_fail("malloc returned NULL for a batch", (uint64_t)n);
            break;
        }
        for (int i = 0; i < BATCH; i++) {
            uint64_t r = wl_next(&rng);
            size_t sz = (r & 31) == 0 ? 16 + (size_t)(r >> 40) % 8177 : 16 + (size_t)(r >> 40) % 497;
            b->p[i] = wl_malloc_stamped(sz, base | seq++);
            b->size[i] = (uint32_t)sz;
        }
        wl_queue_push(&q, b);
    }
    w->made = seq;
    wl_queue_done(&q);
    return NULL;
}

int main(int argc, char **argv)
{
    struct wl_args a;
    wl_parse_timed(argc, argv, &a, 120000, "batches of 64 blocks per producer", 0);
    int n = a.threads < 2 ? 2 : a.threads;
    int producers = n / 2;
    struct worker *w = calloc((size_t)n, sizeof *w);
    if (!w)
        return 1;
    wl_queue_init(&q, q_items, QUEUE_CAP, producers);
    for (int i = 0; i < n; i++)
        w[i] = (struct worker){.id = i, .producer = i < producers,
                               .batches = a.duration > 0 ? LONG_MAX : a.n, .seed = a.seed};
    double seconds = wl_run_threads(n, run, w, sizeof *w);

    uint64_t got = 0, expected = 0, frees = 0;
    for (int i = 0; i < n; i++)
        got += w[i].sum;
    for (int t = 0; t < producers; t++) {
        uint64_t m = a.duration > 0 ? w[t].made : (uint64_t)a.n * BATCH;
        expected += wl_id_sum((uint64_t)t << 40, m);
        frees += m;
    }
    wl_note_ops(frees, "frees", seconds);
    free(w);
    return wl_finish("xmalloc", &a, got, expected);
}
