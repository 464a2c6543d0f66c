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
 * per thread, block sizes 16..1000 bytes. -d seconds: run for that long
 * instead (each epoch an eighth of it) and report the replacements per
 * second.
 *
 * larson-sized is this program built with LARSON_SIZED: block sizes
 * 8..1000 bytes, and every free is C23's free_sized(p, size) when the
 * allocator providing malloc also provides it (looked up at run time: glibc
 * 2.36 has none), plain free otherwise; the result line says which
 * (free=free_sized or free=free).
 *
 * Check: every block carries a stamp (wl.h) with a unique id
 * (thread << 40 | sequence), also kept in its slot; each free verifies the
 * stamp and adds the id to a per-thread sum. Every block is freed exactly
 * once, so the sum over all threads must equal the sum of all ids handed
 * out, which is known in closed form from the thread count and the
 * per-thread allocation count.
 */
#include "wl.h"

#include <dlfcn.h> /* dlsym, RTLD_DEFAULT (LARSON_SIZED) */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef LARSON_SIZED
#define NAME "larson-sized"
enum { MIN_SIZE = 8 };
#else
#define NAME "larson"
enum { MIN_SIZE = 16 };
#endif
enum { SLOTS = 1000, EPOCHS = 8, MAX_SIZE = 1000 };

struct slot {
    void *p;
    size_t size;
    uint64_t id;
};

struct worker {
    int id;
    long rounds;
    uint64_t seed;
    uint64_t freed_sum; /* sum of ids of the blocks this thread freed */
    uint64_t allocated; /* blocks this thread allocated */
    struct slot *slots; /* the array this thread works on this epoch */
    char pad[64];
};

#ifdef LARSON_SIZED
/* C23's free_sized(ptr, size), declared here (glibc 2.36's headers do not
 * have it) and taken only from the object that provides malloc: a
 * free_sized of another allocator must not see this one's blocks. */
typedef void free_sized_fn(void *, size_t);
static free_sized_fn *free_sized_ptr;

static void find_free_sized(void)
{
    void *(*m)(size_t) = malloc;
    free_sized_fn *f = (free_sized_fn *)(uintptr_t)dlsym(RTLD_DEFAULT, "free_sized");
    if (f && !strcmp(wl_provider((const void *)(uintptr_t)f), wl_provider((const void *)(uintptr_t)m)))
        free_sized_ptr = f;
    wl_note("free=%s", free_sized_ptr ? "free_sized" : "free");
}

static inline void release(const struct slot *s)
{
    if (free_sized_ptr)
        free_sized_ptr(s->p, s->size);
    else
        free(s->p);
}
#else
static void find_free_sized(void) {}
static inline void release(const struct slot *s) { free(s->p); }
#endif

/* Checks a slot's block and frees it; returns its id. */
static uint64_t drop(const struct slot *s)
{
    wl_check_id(s->p, s->size, s->id);
    release(s);
    return s->id;
}

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
        w->slots[i] = (struct slot){wl_malloc_stamped(sz, base | seq), sz, base | seq};
        seq++;
    }
    for (int e = 0; e < EPOCHS; e++) {
        wl_barrier_wait(&barrier);
        /* Take over the neighbour's array (the arrays rotate by one). */
        struct slot *mine = workers[(w->id + 1) % nworkers].slots;
        wl_barrier_wait(&barrier);
        w->slots = mine;
        wl_barrier_wait(&barrier);
        for (long r = 0; wl_more(r, w->rounds, (e + 1.0) / EPOCHS); r++) {
            struct slot *s = &mine[wl_below(&rng, SLOTS)];
            if (s->p)
                w->freed_sum += drop(s);
            size_t sz = wl_range(&rng, MIN_SIZE, MAX_SIZE);
            *s = (struct slot){wl_malloc_stamped(sz, base | seq), sz, base | seq};
            seq++;
        }
    }
    w->allocated = seq;
    return NULL;
}

int main(int argc, char **argv)
{
    struct wl_args a;
    wl_parse_timed(argc, argv, &a, 2000000, "slot replacements per thread per epoch", 0);
    find_free_sized();
    nworkers = a.threads;
    workers = calloc((size_t)nworkers, sizeof *workers);
    struct slot *arrays = calloc((size_t)nworkers * SLOTS, sizeof *arrays);
    if (!workers || !arrays)
        return 1;
    wl_barrier_init(&barrier, nworkers);
    for (int i = 0; i < nworkers; i++)
        workers[i] = (struct worker){.id = i, .rounds = a.duration > 0 ? LONG_MAX : a.n, .seed = a.seed,
                                     .slots = arrays + (size_t)i * SLOTS};
    double seconds = wl_run_threads(nworkers, run, workers, sizeof *workers);

    uint64_t got = 0, expected = 0, replaced = 0;
    for (int i = 0; i < nworkers; i++) {
        got += workers[i].freed_sum;
        for (int j = 0; j < SLOTS; j++) {
            struct slot *s = &workers[i].slots[j];
            if (s->p)
                got += drop(s);
        }
    }
    /* Each thread allocated m blocks with ids (t << 40) + 0..m-1: in a
     * fixed-work run m = SLOTS + EPOCHS * n; in a timed one, as counted. */
    for (int t = 0; t < nworkers; t++) {
        uint64_t m = a.duration > 0 ? workers[t].allocated : SLOTS + (uint64_t)EPOCHS * (uint64_t)a.n;
        expected += wl_id_sum((uint64_t)t << 40, m);
        replaced += m - SLOTS;
    }
    wl_note_ops(replaced, "frees", seconds);
    free(arrays);
    free(workers);
    return wl_finish(NAME, &a, got, expected);
}
