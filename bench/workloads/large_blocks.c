/* large-blocks: blocks of 1 to 64 MiB.
 *
 * Modelled on the large-object phases of scientific codes, image and
 * database buffers, and the big-block tests of glibc's and mimalloc's
 * benchmark suites: each thread keeps 4 slots; per operation it picks one,
 * and either frees its block and allocates a new one, or (one time in four)
 * reallocs it to a new size. Sizes are log-uniform in 1..64 MiB. Every 4 KiB
 * page of a new block (or of the part a realloc adds) is written, so page
 * faults and the return of memory to the kernel are part of the cost, as
 * they are in real programs.
 *
 * -n: operations per thread.
 *
 * Check: each page holds a word derived from (block id, page number); all
 * pages are verified before a free, and the kept prefix after a realloc.
 * The sum of the ids freed (plus the pages verified) is compared with a
 * replay of the random decisions that allocates nothing.
 */
#include "wl.h"

#include <stdio.h>
#include <stdlib.h>

enum { SLOTS = 4 };
#define MIB ((size_t)1 << 20)

struct slot {
    unsigned char *p;
    size_t size;
    uint64_t id;
};

static size_t pick_size(wl_rng *rng)
{
    size_t base = MIB << wl_below(rng, 6);
    return base + (size_t)wl_below(rng, base);
}

static void *run(void *arg)
{
    struct wl_worker *w = arg;
    wl_rng rng;
    wl_rng_init(&rng, w->seed, (uint64_t)w->id);
    struct slot slots[SLOTS] = {{0}};
    uint64_t next_id = ((uint64_t)w->id << 32) + 1;
    for (long op = 0; op < w->n; op++) {
        struct slot *s = &slots[wl_below(&rng, SLOTS)];
        int re = s->p && wl_below(&rng, 4) == 0;
        size_t size = pick_size(&rng);
        if (re) {
            size_t old = s->size;
            unsigned char *p = realloc(s->p, size);
            if (!p) {
                wl_fail("realloc returned NULL, size", size);
                continue;
            }
            s->p = p;
            s->size = size;
            w->sum += wl_check_pages(p, old < size ? old : size, s->id);
            if (size > old)
                wl_stamp_pages(p, size, wl_pages_of(old) * WL_PAGE, s->id);
            continue;
        }
        if (s->p) {
            w->sum += s->id + wl_check_pages(s->p, s->size, s->id);
            free(s->p);
        }
        s->p = malloc(size);
        if (!s->p) {
            wl_fail("malloc returned NULL, size", size);
            continue;
        }
        s->size = size;
        s->id = next_id++;
        wl_stamp_pages(s->p, size, 0, s->id);
    }
    for (int i = 0; i < SLOTS; i++) {
        if (slots[i].p) {
            w->sum += slots[i].id + wl_check_pages(slots[i].p, slots[i].size, slots[i].id);
            free(slots[i].p);
        }
    }
    return NULL;
}

/* The same decisions as run(), on sizes only. */
static uint64_t replay(int id, long ops, uint64_t seed)
{
    wl_rng rng;
    wl_rng_init(&rng, seed, (uint64_t)id);
    struct slot slots[SLOTS] = {{0}};
    uint64_t next_id = ((uint64_t)id << 32) + 1, sum = 0;
    for (long op = 0; op < ops; op++) {
        struct slot *s = &slots[wl_below(&rng, SLOTS)];
        int re = s->size && wl_below(&rng, 4) == 0;
        size_t size = pick_size(&rng);
        if (re) {
            sum += wl_pages_of(s->size < size ? s->size : size);
            s->size = size;
            continue;
        }
        if (s->size)
            sum += s->id + wl_pages_of(s->size);
        s->size = size;
        s->id = next_id++;
    }
    for (int i = 0; i < SLOTS; i++)
        if (slots[i].size)
            sum += slots[i].id + wl_pages_of(slots[i].size);
    return sum;
}

int main(int argc, char **argv)
{
    struct wl_args a;
    wl_parse(argc, argv, &a, 400, "operations per thread");
    return wl_run_checked("large-blocks", &a, run, replay);
}
