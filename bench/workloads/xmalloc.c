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

/* A bounded FIFO of batch pointers behind one mutex: one lock per 64 blocks
 * keeps the queue out of the way of the allocator under test. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    struct batch *items[QUEUE_CAP];
    int head, count, producers_left;
} q = {.mu = PTHREAD_MUTEX_INITIALIZER,
       .not_empty = PTHREAD_COND_INITIALIZER,
       .not_full = PTHREAD_COND_INITIALIZER};

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

static void producer_done(void)
{
    pthread_mutex_lock(&q.mu);
    q.producers_left--;
    pthread_cond_broadcast(&q.not_empty);
    pthread_mutex_unlock(&q.mu);
}

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
        while ((b = pop())) {
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
            b->p[i] = malloc(sz);
            b->size[i] = (uint32_t)sz;
            if (!b->p[i]) {
                wl_fail("malloc returned NULL, size", sz);
                continue;
            }
            wl_stamp(b->p[i], sz, base | seq++);
        }
        push(b);
    }
    w->made = seq;
    producer_done();
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
    q.producers_left = producers;
    for (int i = 0; i < n; i++)
        w[i] = (struct worker){.id = i, .producer = i < producers,
                               .batches = a.duration > 0 ? LONG_MAX : a.n, .seed = a.seed};
    double t0 = wl_now();
    wl_run_threads(n, run, w, sizeof *w);
    double seconds = wl_now() - t0;

    uint64_t got = 0, expected = 0, frees = 0;
    for (int i = 0; i < n; i++)
        got += w[i].sum;
    for (int t = 0; t < producers; t++) {
        uint64_t m = a.duration > 0 ? w[t].made : (uint64_t)a.n * BATCH;
        expected += ((uint64_t)t << 40) * m + m * (m - 1) / 2;
        frees += m;
    }
    wl_note_ops(frees, "frees", seconds);
    free(w);
    return wl_finish("xmalloc", &a, got, expected);
}
