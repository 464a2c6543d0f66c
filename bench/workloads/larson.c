/* larson: a server simulation in which threads free each other's blocks.
 *
 * Modelled on the Larson & Krishnan benchmark ("Memory allocation for
 * long-running server applications", ISMM 1998), as used by Hoard,
 * mimalloc-bench and others: each thread owns an array of slots holding
 * blocks of random size; it repeatedly frees a random slot's block and
 * allocates a new one in its place. In the original, a thread that finishes
 * its rounds hands its array to a fresh thread; here the threads stay, and
 * after every epoch each thread takes over the slot array of its neighbour,
 * so most frees release blocks that another thread allocated.
 *
 * -n: rounds (slot replacements) per thread per epoch; 8 epochs, 1000 slots
 * per thread, block sizes 16..1000 bytes.
 *
 * Check: every block carries a stamp (wl.h) with a unique id
 * (thread << 40 | sequence); each free verifies the stamp and adds the id to
 * a per-thread sum. Every block is freed exactly once, so the sum over all
 * threads must equal the sum of all ids handed out, which is known in closed
 * form from the thread count and the per-thread allocation count.
 */
#include "wl.h"

#include <stdio.h>
#include <stdlib.h>

enum { SLOTS = 1000, EPOCHS = 8, MIN_SIZE = 16, MAX_SIZE = 1000 };

struct slot {
    void *p;
    size_t size;
};

struct worker {
    int id;
    long rounds;
    uint64_t seed;
    uint64_t freed_sum; /* sum of ids of the blocks this thread freed */
    struct slot *slots; /* the array this thread works on this epoch */
    char pad[64];
};

static struct worker *workers;
static int nworkers;
static wl_barrier barrier;

static void *run(void *arg)
{
    struct worker *w = arg;
    wl_rng rng;
    wl_rng_init(&rng, w->seed, (uint64_t)w->id);
    uint64_t seq = 0, base = (uint64_t)w->id << 40;

    /* Fill the initial array. */
    for (int i = 0; i < SLOTS; i++) {
        size_t sz = wl_range(&rng, MIN_SIZE, MAX_SIZE);
        void *p = malloc(sz);
        if (!p) {
            wl_fail("malloc returned NULL, size", sz);
            continue;
        }
        wl_stamp(p, sz, base | seq++);
        w->slots[i] = (struct slot){p, sz};
    }
    for (int e = 0; e < EPOCHS; e++) {
        wl_barrier_wait(&barrier);
        /* Take over the neighbour's array (the arrays rotate by one). */
        struct slot *mine = workers[(w->id + 1) % nworkers].slots;
        wl_barrier_wait(&barrier);
        w->slots = mine;
        wl_barrier_wait(&barrier);
        for (long r = 0; r < w->rounds; r++) {
            struct slot *s = &mine[wl_below(&rng, SLOTS)];
            if (s->p) {
                w->freed_sum += wl_check(s->p, s->size);
                free(s->p);
            }
            size_t sz = wl_range(&rng, MIN_SIZE, MAX_SIZE);
            void *p = malloc(sz);
            if (!p) {
                wl_fail("malloc returned NULL, size", sz);
                s->p = NULL;
                continue;
            }
            wl_stamp(p, sz, base | seq++);
            *s = (struct slot){p, sz};
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct wl_args a;
    wl_parse(argc, argv, &a, 2000000, "slot replacements per thread per epoch");
    nworkers = a.threads;
    workers = calloc((size_t)nworkers, sizeof *workers);
    struct slot *arrays = calloc((size_t)nworkers * SLOTS, sizeof *arrays);
    if (!workers || !arrays)
        return 1;
    wl_barrier_init(&barrier, nworkers);
    for (int i = 0; i < nworkers; i++)
        workers[i] = (struct worker){.id = i, .rounds = a.n, .seed = a.seed, .slots = arrays + (size_t)i * SLOTS};
    wl_run_threads(nworkers, run, workers, sizeof *workers);

    uint64_t got = 0;
    for (int i = 0; i < nworkers; i++) {
        got += workers[i].freed_sum;
        for (int j = 0; j < SLOTS; j++) {
            struct slot *s = &workers[i].slots[j];
            if (s->p) {
                got += wl_check(s->p, s->size);
                free(s->p);
            }
        }
    }
    /* Each thread allocated m blocks with ids (t << 40) + 0..m-1. */
    uint64_t m = SLOTS + (uint64_t)EPOCHS * (uint64_t)a.n, expected = 0;
    for (int t = 0; t < nworkers; t++)
        expected += ((uint64_t)t << 40) * m + m * (m - 1) / 2;
    free(arrays);
    free(workers);
    return wl_finish("larson", &a, got, expected);
}
