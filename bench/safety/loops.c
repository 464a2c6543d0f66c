/* Small allocation loops for measuring the cost of the checks: run under the
 * preload (LD_PRELOAD=libmapalloc-preload.so), they call the plain C API.
 *
 *   loops pairs    malloc/free pairs, sizes 16 to 4096 bytes
 *   loops batch    allocate 10,000 blocks of mixed sizes, then free them all
 *   loops remote   one thread allocates, another frees (cross-thread free)
 *   loops realloc  grow blocks step by step, small to medium
 *
 * Each prints nothing on success; the time is measured from outside. The
 * amount of work is fixed (an optional second argument scales it). */
#include "rng.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static wl_rng rng = {0x9e3779b97f4a7c15ull};

static uint64_t next(void) { return wl_next(&rng); }

/* Keeps the compiler from pairing and removing malloc and free. */
static void *volatile sink;

static void pairs(long n)
{
    for (long i = 0; i < n; i++) {
        size_t size = 16 + (size_t)(next() % 4081);
        char *p = malloc(size);
        p[0] = (char)i;
        sink = p;
        free(p);
    }
}

static void batch(long rounds)
{
    enum { N = 10000 };
    static void *blocks[N];
    for (long r = 0; r < rounds; r++) {
        for (int i = 0; i < N; i++) {
            size_t size = (next() & 7) == 0 ? 256 + (size_t)(next() % 8192) : 8 + (size_t)(next() % 120);
            blocks[i] = malloc(size);
            *(char *)blocks[i] = 1;
        }
        for (int i = 0; i < N; i++)
            free(blocks[i]);
    }
}

#define RING 4096
static void *ring[RING];
static unsigned long head, tail; /* accessed with __atomic builtins */

static void *consumer(void *arg)
{
    long n = *(long *)arg;
    for (long i = 0; i < n; i++) {
        while (__atomic_load_n(&tail, __ATOMIC_ACQUIRE) == __atomic_load_n(&head, __ATOMIC_ACQUIRE))
            ;
        unsigned long t = __atomic_load_n(&tail, __ATOMIC_RELAXED);
        free(ring[t % RING]);
        __atomic_store_n(&tail, t + 1, __ATOMIC_RELEASE);
    }
    return NULL;
}

static void remote(long n)
{
    pthread_t t;
    if (pthread_create(&t, NULL, consumer, &n) != 0)
        exit(1);
    for (long i = 0; i < n; i++) {
        unsigned long h = __atomic_load_n(&head, __ATOMIC_RELAXED);
        while (h - __atomic_load_n(&tail, __ATOMIC_ACQUIRE) >= RING)
            ;
        char *p = malloc(16 + (size_t)(next() % 512));
        p[0] = 1;
        ring[h % RING] = p;
        __atomic_store_n(&head, h + 1, __ATOMIC_RELEASE);
    }
    pthread_join(t, NULL);
}

static void grow(long rounds)
{
    for (long r = 0; r < rounds; r++) {
        char *p = NULL;
        for (size_t size = 16; size <= 65536; size += size / 4 + 16) {
            p = realloc(p, size);
            /* The first 16 bytes and the last one written: every block
             * is used before it grows. */
            memset(p, (int)size, 16);
            p[size - 1] = 1;
        }
        free(p);
    }
}

int main(int argc, char **argv)
{
    double scale = argc > 2 ? atof(argv[2]) : 1.0;
    if (argc < 2) {
        fprintf(stderr, "usage: loops pairs|batch|remote|realloc [SCALE]\n");
        return 2;
    }
    if (strcmp(argv[1], "pairs") == 0)
        pairs((long)(20e6 * scale));
    else if (strcmp(argv[1], "batch") == 0)
        batch((long)(1000 * scale));
    else if (strcmp(argv[1], "remote") == 0)
        remote((long)(5e6 * scale));
    else if (strcmp(argv[1], "realloc") == 0)
        grow((long)(200000 * scale));
    else
        return 2;
    return 0;
}
