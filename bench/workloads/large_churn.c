/* large-churn: a set of big zeroed buffers, one replaced at a time.
 *
 * The shape of an image or column-store cache, or of a compressor's
 * windows: 20 buffers of 5 to 25 MiB (uniform) live at once; again and
 * again one of them, chosen at random, is freed and replaced by a new one
 * of a new size, which the caller zero-fills with memset (as programs do
 * that cannot rely on malloc's memory being zero), so every page of it is
 * written. What differs between allocators is whether the freed memory is
 * reused (warm pages, no fault) or given back and faulted in afresh
 * (system time).
 *
 * -n: replacements in all (default 1,000). The 20 buffers are split over
 * the threads (at most 20 of them), and so are the replacements: the work
 * and the memory (about 300 MiB live) are the same at any -t.
 *
 * Check: after the memset, the first word of each page gets a stamp from
 * (buffer id, page) (wl_stamp_pages); before a free every page's stamp is
 * verified, and the word after it must still be zero. The ids and pages
 * checked are summed and compared with a replay of the random decisions
 * that allocates nothing.
 */
#include "wl.h"

#include <stdio.h>
#include <stdlib.h>

enum { BUFFERS = 20 };
#define MIB ((size_t)1 << 20)
#define MIN_SIZE (5 * MIB)
#define MAX_SIZE (25 * MIB)

struct buffer {
    unsigned char *p;
    size_t size;
    uint64_t id;
};

struct worker {
    int id, threads;
    long replacements;
    uint64_t seed, sum;
    char pad[64];
};

/* Buffers owned by thread `id` of `threads`: id, id + threads, ... */
static int owned(int id, int threads) { return (BUFFERS - id + threads - 1) / threads; }

static int fill(struct buffer *b, size_t size, uint64_t id)
{
    b->p = malloc(size);
    if (!b->p) {
        wl_fail("malloc returned NULL, size", size);
        return 0;
    }
    b->size = size;
    b->id = id;
    memset(b->p, 0, size);
    wl_stamp_pages(b->p, size, 0, id);
    return 1;
}

/* Checks and frees a buffer; returns its id plus the pages checked. */
static uint64_t drop(struct buffer *b)
{
    uint64_t pages = wl_check_pages(b->p, b->size, b->id);
    for (size_t off = 0; off + 16 <= b->size; off += WL_PAGE) {
        uint64_t v;
        memcpy(&v, b->p + off + 8, 8);
        if (v != 0) {
            wl_fail("zeroed buffer written to, id", b->id);
            break;
        }
    }
    free(b->p);
    b->p = NULL;
    return b->id + pages;
}

static void *run(void *arg)
{
    struct worker *w = arg;
    wl_rng rng;
    wl_rng_init(&rng, w->seed, (uint64_t)w->id);
    struct buffer bufs[BUFFERS] = {{0}};
    int n = owned(w->id, w->threads);
    uint64_t next_id = ((uint64_t)w->id << 32) + 1;
    for (int i = 0; i < n; i++)
        if (!fill(&bufs[i], wl_range(&rng, MIN_SIZE, MAX_SIZE), next_id++))
            return NULL;
    for (long r = 0; r < w->replacements; r++) {
        struct buffer *b = &bufs[wl_below(&rng, (uint64_t)n)];
        w->sum += drop(b);
        if (!fill(b, wl_range(&rng, MIN_SIZE, MAX_SIZE), next_id++))
            return NULL;
    }
    for (int i = 0; i < n; i++)
        w->sum += drop(&bufs[i]);
    return NULL;
}

/* The same decisions as run(), on sizes only. */
static uint64_t replay(int id, int threads, long replacements, uint64_t seed)
{
    wl_rng rng;
    wl_rng_init(&rng, seed, (uint64_t)id);
    struct buffer bufs[BUFFERS] = {{0}};
    int n = owned(id, threads);
    uint64_t next_id = ((uint64_t)id << 32) + 1, sum = 0;
    for (int i = 0; i < n; i++)
        bufs[i] = (struct buffer){NULL, wl_range(&rng, MIN_SIZE, MAX_SIZE), next_id++};
    for (long r = 0; r < replacements; r++) {
        struct buffer *b = &bufs[wl_below(&rng, (uint64_t)n)];
        sum += b->id + wl_pages_of(b->size);
        *b = (struct buffer){NULL, wl_range(&rng, MIN_SIZE, MAX_SIZE), next_id++};
    }
    for (int i = 0; i < n; i++)
        sum += bufs[i].id + wl_pages_of(bufs[i].size);
    return sum;
}

int main(int argc, char **argv)
{
    struct wl_args a;
    wl_parse(argc, argv, &a, 1000, "replacements in all");
    int t = a.threads < BUFFERS ? a.threads : BUFFERS;
    struct worker *w = calloc((size_t)t, sizeof *w);
    if (!w)
        return 1;
    for (int i = 0; i < t; i++)
        w[i] = (struct worker){.id = i, .threads = t, .seed = a.seed,
                               .replacements = a.n / t + (i < a.n % t)};
    wl_run_threads(t, run, w, sizeof *w);
    uint64_t got = 0, expected = 0;
    for (int i = 0; i < t; i++) {
        got += w[i].sum;
        expected += replay(i, t, w[i].replacements, a.seed);
    }
    free(w);
    return wl_finish("large-churn", &a, got, expected);
}
