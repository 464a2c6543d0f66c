/* thread-churn: many short-lived threads, each leaving a block behind.
 *
 * The shape of a server that starts a thread per request, or of a thread
 * pool that is torn down and rebuilt: rounds of -t threads (default 10)
 * created together and joined. Each thread allocates a few small blocks
 * (16 to 256 bytes), checks and frees all but one, and hands the last one
 * on: the next round's thread in the neighbouring position frees it, after
 * the thread that allocated it has exited. So each thread pays for the
 * allocator's thread set-up and tear-down, and for a block freed into the
 * heap of a thread that is gone.
 *
 * -n: threads created in all (default 10,000: 1,000 rounds of 10); the
 * rounds are n / t, so the work is the same at any -t. -d seconds: rounds
 * until then instead, and the threads per second on the result line.
 *
 * Check: every block is stamped with a unique id (thread number * BLOCKS +
 * k) and checked before it is freed; the ids freed, summed over all threads
 * (and the main thread, which frees the last round's), must be the sum of
 * all ids, in closed form.
 */
#include "wl.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

enum { BLOCKS = 5, MIN_SIZE = 16, MAX_SIZE = 256, DEFAULT_THREADS = 10 };

/* The block a thread leaves for the next round. */
struct handoff {
    void *p;
    size_t size;
    uint64_t id;
};

struct worker {
    uint64_t number;              /* this thread's number over the whole run */
    uint64_t seed, sum;           /* sum: ids this thread freed */
    const struct handoff *take;   /* the previous round's block to free, or p == NULL */
    struct handoff *leave;        /* where this thread leaves its own */
    char pad[64];
};

static uint64_t drop(const struct handoff *h)
{
    wl_check_id(h->p, h->size, h->id);
    free(h->p);
    return h->id;
}

static void *run(void *arg)
{
    struct worker *w = arg;
    wl_rng rng;
    wl_rng_init(&rng, w->seed, w->number);
    struct handoff mine[BLOCKS];
    for (int k = 0; k < BLOCKS; k++) {
        size_t size = wl_range(&rng, MIN_SIZE, MAX_SIZE);
        uint64_t id = w->number * BLOCKS + (uint64_t)k;
        mine[k] = (struct handoff){wl_malloc_stamped(size, id), size, id};
        if (!mine[k].p)
            return NULL;
    }
    if (w->take->p)
        w->sum += drop(w->take);
    for (int k = 1; k < BLOCKS; k++)
        w->sum += drop(&mine[k]);
    *w->leave = mine[0];
    return NULL;
}

int main(int argc, char **argv)
{
    struct wl_args a;
    wl_parse_timed(argc, argv, &a, 10000, "threads created in all (threads: 10 at a time)", 0);
    if (!a.threads_set)
        a.threads = DEFAULT_THREADS;
    int t = a.threads;
    long rounds = a.duration > 0 ? LONG_MAX : (a.n / t > 0 ? a.n / t : 1);
    struct worker *w = calloc((size_t)t, sizeof *w);
    struct handoff *hand = calloc(2 * (size_t)t, sizeof *hand);
    if (!w || !hand)
        return 1;
    double t0 = wl_now();
    uint64_t got = 0, number = 0;
    long r;
    for (r = 0; r < rounds && !wl_past(1.0); r++) {
        /* Round r takes from one half of `hand` and leaves in the other. */
        struct handoff *prev = hand + (size_t)(r & 1) * (size_t)t, *next = hand + (size_t)(~r & 1) * (size_t)t;
        for (int i = 0; i < t; i++) {
            next[i].p = NULL;
            w[i] = (struct worker){.number = number++, .seed = a.seed, .take = &prev[(i + 1) % t],
                                   .leave = &next[i]};
        }
        wl_run_threads(t, run, w, sizeof *w);
        for (int i = 0; i < t; i++)
            got += w[i].sum;
    }
    double seconds = wl_now() - t0;
    struct handoff *last = hand + (size_t)(r & 1) * (size_t)t;
    for (int i = 0; i < t; i++)
        if (last[i].p)
            got += drop(&last[i]);
    /* Threads 0..number-1 allocated the ids 0..number * BLOCKS - 1. */
    uint64_t expected = wl_id_sum(0, number * BLOCKS);
    wl_note_ops(number, "threads", seconds);
    free(hand);
    free(w);
    return wl_finish("thread-churn", &a, got, expected);
}
