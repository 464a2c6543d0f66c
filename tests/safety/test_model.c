/* Randomised model-based test: threads apply random operation records (see
 * model.h) to the allocator, each checked against the model. Threads come
 * and go (each lives for a random number of operations, then hands some
 * blocks to the others and frees the rest), so regions are abandoned and
 * adopted while blocks in them are still handed around.
 *
 *   test_model [--seed N] [--seconds S] [--threads T] [--life L]
 *
 * Defaults: a fresh seed, 5 seconds, 4 threads, each living L to 6 L
 * operations (L 20000). The seed is printed at the start and with any
 * failure, including an abort inside the allocator. A thread's records
 * depend only on the seed and its serial number; with more than one thread
 * the interleaving still differs from run to run. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "model.h"
#include "rng.h"
#include "sys.h"

static uint64_t seed;
static uint64_t life_min = 20000;
static atomic_bool stop;
static atomic_ullong total_ops;

struct worker {
    pthread_t thread;
    int serial;
    atomic_bool done;
    bool running;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint64_t rng = wl_seed(seed, (uint64_t)w->serial);
    struct model m;
    model_init(&m, w->serial, true);
    uint64_t life = life_min + wl_rand(&rng) % (5 * life_min);
    while (m.ops < life) {
        if ((m.ops & 1023) == 0 && atomic_load_explicit(&stop, memory_order_relaxed))
            break;
        uint64_t r = wl_rand(&rng);
        uint8_t rec[8];
        memcpy(rec, &r, 8);
        model_step(&m, rec);
    }
    model_leave(&m);
    atomic_fetch_add(&total_ops, m.ops);
    atomic_store(&w->done, true);
    return NULL;
}

static char crash_line[256];

/* An abort in the allocator (a misuse report) or a crash: name the seed. */
static void on_fatal(int sig)
{
    if (write(2, crash_line, strlen(crash_line)) < 0) {
        /* the signal itself still reaches the parent */
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void usage(void)
{
    fprintf(stderr, "usage: test_model [--seed N] [--seconds S] [--threads T] [--life L]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    double seconds = 5;
    int nthreads = 4;
    if (getrandom(&seed, sizeof seed, 0) != sizeof seed)
        seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "--seed") == 0)
            seed = strtoull(argv[++i], NULL, 0);
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = strtod(argv[++i], NULL);
        else if (strcmp(argv[i], "--threads") == 0)
            nthreads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--life") == 0)
            life_min = strtoull(argv[++i], NULL, 0);
        else
            usage();
    }
    if (nthreads < 1 || nthreads > 256 || !(seconds > 0) || life_min < 1)
        usage();
    snprintf(model_context, sizeof model_context, "seed %llu; rerun: test_model --seed %llu "
             "--seconds %g --threads %d --life %llu", (unsigned long long)seed,
             (unsigned long long)seed, seconds, nthreads, (unsigned long long)life_min);
    snprintf(crash_line, sizeof crash_line, "test_model: died; %s\n", model_context);
    signal(SIGABRT, on_fatal);
    signal(SIGSEGV, on_fatal);
    signal(SIGBUS, on_fatal);
    printf("test_model: seed %llu, %g s, %d threads\n", (unsigned long long)seed, seconds,
           nthreads);
    fflush(stdout);

    struct worker *w = calloc((size_t)nthreads, sizeof *w);
    if (w == NULL)
        return 1;
    int serial = 1, spawned = 0;
    double end = wl_now() + seconds;
    while (wl_now() < end) {
        for (int i = 0; i < nthreads; i++) {
            if (w[i].running && atomic_load(&w[i].done)) {
                pthread_join(w[i].thread, NULL);
                w[i].running = false;
            }
            if (!w[i].running) {
                w[i].serial = serial++;
                atomic_store(&w[i].done, false);
                if (pthread_create(&w[i].thread, NULL, worker_main, &w[i]) != 0) {
                    fprintf(stderr, "test_model: pthread_create failed\n");
                    return 1;
                }
                w[i].running = true;
                spawned++;
            }
        }
        usleep(5000);
    }
    atomic_store(&stop, true);
    for (int i = 0; i < nthreads; i++)
        if (w[i].running)
            pthread_join(w[i].thread, NULL);

    struct model last;
    model_init(&last, 0, true);
    model_drain_handoffs(&last);
    if (model_tracked() != 0)
        model_failed(&last, "%zu blocks still tracked at the end", model_tracked());
    struct mapalloc_stats st;
    mapalloc_stats_get(&st);
    if (st.live_blocks != 0)
        model_failed(&last, "statistics: %zu live blocks after everything was freed",
                     st.live_blocks);
    printf("test_model: ok: %llu operations in %d threads (%d at a time), seed %llu\n",
           (unsigned long long)atomic_load(&total_ops), spawned, nthreads,
           (unsigned long long)seed);
    free(w);
    return 0;
}
