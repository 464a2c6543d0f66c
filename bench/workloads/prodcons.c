/* prodcons: whole batches of small blocks handed from producers to consumers.
 *
 * The shape of a pipeline stage or a logging thread: producers allocate a
 * batch of 4,096 blocks of 64 bytes, writing each, and queue the whole batch;
 * consumers take whole batches, check and free every block. The queue holds
 * at most 100 batches behind one mutex; producers wait while it is full. So
 * every block is freed by a thread other than the one that allocated it,
 * in runs of thousands from the same pages (unlike xmalloc, whose batches
 * are 64 blocks of mixed sizes). Half of the threads produce, half consume
 * (-t 4 by default: 2 and 2; at least 1 and 1).
 *
 * -d seconds: producers stop making batches after that long (default 5 s
 * when no -n is given), consumers drain the queue; the result line has the
 * frees per second (ops_per_s). -n batches (without -d): a fixed amount of
 * work instead, split over the producers, so that the time is the figure
 * (bench/run.py uses this: the same work under every allocator and thread
 * count).
 *
 * The batch arrays themselves come from a fixed pool, not from malloc, so
 * that only the 64-byte blocks are measured.
 *
 * Check: every block is stamped with a unique id (producer << 40 | seq) and
 * checked before it is freed; consumers sum the ids; the expected sum is
 * closed-form from the number of blocks each producer made.
 */
#include "wl.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

enum { BATCH = 4096, BLOCK = 64, QUEUE_CAP = 100, DEFAULT_SECONDS = 5, DEFAULT_THREADS = 4 };

struct batch {
    void *p[BATCH];
};

/* Full batches go from producers to consumers through `full`; emptied
 * arrays come back through `spare`, which holds the whole pool: QUEUE_CAP
 * arrays plus one per thread (each holds at most one), so a producer finds
 * a spare whenever `full` has room. Nobody calls wl_queue_done on `spare`:
 * its pop waits for an array. */
static wl_queue full, spare;
static void *full_items[QUEUE_CAP];

struct worker {
    int id, producer;
    long batches;           /* producer: batches to make (LONG_MAX: timed) */
    uint64_t made, sum;     /* producer: blocks made; consumer: ids freed */
    char pad[64];
};

static void consume(struct worker *w)
{
    struct batch *b;
    while ((b = wl_queue_pop(&full))) {
        for (int i = 0; i < BATCH; i++) {
            if (!b->p[i])
                continue;
            w->sum += wl_check(b->p[i], BLOCK);
            free(b->p[i]);
        }
        wl_queue_push(&spare, b);
    }
}

static void produce(struct worker *w)
{
    uint64_t seq = 0, base = (uint64_t)w->id << 40;
    /* One clock read per batch of 4,096 blocks in a timed run. */
    for (long n = 0; n < w->batches && !wl_past(1.0); n++) {
        struct batch *b = wl_queue_pop(&spare);
        for (int i = 0; i < BATCH; i++)
            b->p[i] = wl_malloc_stamped(BLOCK, base | seq++);
        wl_queue_push(&full, b);
    }
    w->made = seq;
    wl_queue_done(&full);
}

static void *run(void *arg)
{
    struct worker *w = arg;
    if (w->producer)
        produce(w);
    else
        consume(w);
    return NULL;
}

int main(int argc, char **argv)
{
    struct wl_args a;
    wl_parse_timed(argc, argv, &a, 0, "batches of 4,096 blocks in all (default: a timed run; threads: 4)",
                   DEFAULT_SECONDS);
    if (!a.threads_set)
        a.threads = DEFAULT_THREADS;
    int timed = a.duration > 0;
    int n = a.threads < 2 ? 2 : a.threads;
    int producers = n / 2;
    int arrays = QUEUE_CAP + n;
    struct worker *w = calloc((size_t)n, sizeof *w);
    struct batch *pool = calloc((size_t)arrays, sizeof *pool);
    void **spare_items = calloc((size_t)arrays, sizeof *spare_items);
    if (!w || !pool || !spare_items)
        return 1;
    wl_queue_init(&full, full_items, QUEUE_CAP, producers);
    wl_queue_init(&spare, spare_items, arrays, 1);
    for (int i = 0; i < arrays; i++)
        wl_queue_push(&spare, &pool[i]);
    for (int i = 0; i < n; i++) {
        /* Fixed work: a.n batches in all, the remainder to the first ones. */
        long share = a.n / producers + (i < a.n % producers);
        w[i] = (struct worker){.id = i, .producer = i < producers, .batches = timed ? LONG_MAX : share};
    }
    double seconds = wl_run_threads(n, run, w, sizeof *w);

    uint64_t got = 0, expected = 0, frees = 0;
    for (int i = 0; i < n; i++)
        got += w[i].sum;
    for (int t = 0; t < producers; t++) {
        uint64_t m = timed ? w[t].made : (uint64_t)w[t].batches * BATCH;
        expected += wl_id_sum((uint64_t)t << 40, m);
        frees += m;
    }
    wl_note_ops(frees, "frees", seconds);
    free(spare_items);
    free(pool);
    free(w);
    return wl_finish("prodcons", &a, got, expected);
}
