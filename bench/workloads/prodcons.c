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
    struct batch *next_spare;
};

/* The queue, a FIFO of at most QUEUE_CAP batches, and the stack of spare
 * batch arrays, under one mutex. The pool has QUEUE_CAP arrays plus one
 * per thread (each holds at most one), so there is a spare whenever the
 * queue has room. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full, has_spare;
    struct batch *items[QUEUE_CAP];
    int head, count, producers_left;
    struct batch *spare;
} q = {.mu = PTHREAD_MUTEX_INITIALIZER,
       .not_empty = PTHREAD_COND_INITIALIZER,
       .not_full = PTHREAD_COND_INITIALIZER,
       .has_spare = PTHREAD_COND_INITIALIZER};

static struct batch *take_spare(void)
{
    pthread_mutex_lock(&q.mu);
    while (!q.spare)
        pthread_cond_wait(&q.has_spare, &q.mu);
    struct batch *b = q.spare;
    q.spare = b->next_spare;
    pthread_mutex_unlock(&q.mu);
    return b;
}

static void push(struct batch *b)
{
    pthread_mutex_lock(&q.mu);
    while (q.count == QUEUE_CAP)
        pthread_cond_wait(&q.not_full, &q.mu);
    q.items[(q.head + q.count++) % QUEUE_CAP] = b;
    pthread_cond_signal(&q.not_empty);
    pthread_mutex_unlock(&q.mu);
}

/* Returns NULL once every producer is done and the queue is empty. */
static struct batch *pop(void)
{
    pthread_mutex_lock(&q.mu);
    while (q.count == 0 && q.producers_left > 0)
        pthread_cond_wait(&q.not_empty, &q.mu);
    struct batch *b = NULL;
    if (q.count) {
        b = q.items[q.head];
        q.head = (q.head + 1) % QUEUE_CAP;
        q.count--;
        pthread_cond_signal(&q.not_full);
    }
    pthread_mutex_unlock(&q.mu);
    return b;
}

/* An emptied array goes back to the pool. */
static void give_back(struct batch *b)
{
    pthread_mutex_lock(&q.mu);
    b->next_spare = q.spare;
    q.spare = b;
    pthread_cond_signal(&q.has_spare);
    pthread_mutex_unlock(&q.mu);
}

static void producer_done(void)
{
    pthread_mutex_lock(&q.mu);
    q.producers_left--;
    pthread_cond_broadcast(&q.not_empty);
    pthread_mutex_unlock(&q.mu);
}

struct worker {
    int id, producer;
    long batches;           /* producer: batches to make (LONG_MAX: timed) */
    uint64_t made, sum;     /* producer: blocks made; consumer: ids freed */
    char pad[64];
};

static void consume(struct worker *w)
{
    struct batch *b;
    while ((b = pop())) {
        for (int i = 0; i < BATCH; i++) {
            if (!b->p[i])
                continue;
            w->sum += wl_check(b->p[i], BLOCK);
            free(b->p[i]);
        }
        give_back(b);
    }
}

static void produce(struct worker *w)
{
    uint64_t seq = 0, base = (uint64_t)w->id << 40;
    /* One clock read per batch of 4,096 blocks in a timed run. */
    for (long n = 0; n < w->batches && !wl_past(1.0); n++) {
        struct batch *b = take_spare();
        for (int i = 0; i < BATCH; i++) {
            b->p[i] = malloc(BLOCK);
            if (!b->p[i]) {
                wl_fail("malloc returned NULL, size", BLOCK);
                continue;
            }
            wl_stamp(b->p[i], BLOCK, base | seq++);
        }
        push(b);
    }
    w->made = seq;
    producer_done();
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
    struct worker *w = calloc((size_t)n, sizeof *w);
    struct batch *pool = calloc((size_t)(QUEUE_CAP + n), sizeof *pool);
    if (!w || !pool)
        return 1;
    for (int i = 0; i < QUEUE_CAP + n; i++)
        give_back(&pool[i]);
    q.producers_left = producers;
    for (int i = 0; i < n; i++) {
        /* Fixed work: a.n batches in all, the remainder to the first ones. */
        long share = a.n / producers + (i < a.n % producers);
        w[i] = (struct worker){.id = i, .producer = i < producers, .batches = timed ? LONG_MAX : share};
    }
    double t0 = wl_now();
    wl_run_threads(n, run, w, sizeof *w);
    double seconds = wl_now() - t0;

    uint64_t got = 0, expected = 0, frees = 0;
    for (int i = 0; i < n; i++)
        got += w[i].sum;
    for (int t = 0; t < producers; t++) {
        uint64_t m = timed ? w[t].made : (uint64_t)w[t].batches * BATCH;
        expected += ((uint64_t)t << 40) * m + m * (m - 1) / 2;
        frees += m;
    }
    wl_note_ops(frees, "frees", seconds);
    free(pool);
    free(w);
    return wl_finish("prodcons", &a, got, expected);
}
