/* jemalloc's explicit arenas, for comparison with mapalloc's arena API:
 * allocation with mallocx(MALLOCX_ARENA(a) | MALLOCX_TCACHE_NONE) from an
 * arena made with "arenas.create", and dropping a whole batch with
 * "arena.<a>.reset" (or a whole arena with "arena.<a>.destroy") instead of
 * freeing block by block. Linked to libjemalloc (no LD_PRELOAD). Case names
 * match arena_mapalloc.c and arena_mimalloc.c.
 */
#include "cases.h"

#include <jemalloc/jemalloc.h>
#include <stdio.h>

static const int64_t sizes[][2] = {{16}, {64}, {256}, {1024}, {4096}, {16384}, {65536}};
#define NSIZES ((int)(sizeof sizes / sizeof sizes[0]))

static int new_arena(mb_state *st, unsigned *arena)
{
    size_t len = sizeof *arena;
    if (mallctl("arenas.create", arena, &len, NULL, 0)) {
        mb_error(st, "arenas.create failed");
        return -1;
    }
    return 0;
}

static void drop_arena(unsigned arena)
{
    char name[64];
    snprintf(name, sizeof name, "arena.%u.destroy", arena);
    mallctl(name, NULL, NULL, NULL, 0);
}

static void arena_pairs(mb_state *st, const int64_t *arg)
{
    unsigned a;
    if (new_arena(st, &a))
        return;
    int flags = MALLOCX_ARENA(a) | MALLOCX_TCACHE_NONE;
    while (mb_running(st)) {
        char *p = mallocx((size_t)arg[0], flags);
        if (!p) {
            mb_error(st, "mallocx returned NULL");
            break;
        }
        p[0] = 1;
        mb_escape(p);
        dallocx(p, MALLOCX_TCACHE_NONE);
    }
    drop_arena(a);
}

/* Allocate 1000 blocks (at most 16 MiB) in the arena, then drop them all
 * with one arena.<a>.reset. */
static void arena_batch_reset(mb_state *st, const int64_t *arg)
{
    size_t size = (size_t)arg[0], n = (size_t)16 << 20;
    n = n / size > 1000 ? 1000 : n / size;
    unsigned a;
    if (new_arena(st, &a))
        return;
    char name[64];
    snprintf(name, sizeof name, "arena.%u.reset", a);
    int flags = MALLOCX_ARENA(a) | MALLOCX_TCACHE_NONE;
    mb_set_ops(st, (int64_t)n);
    while (mb_running(st)) {
        for (size_t i = 0; i < n; i++) {
            char *p = mallocx(size, flags);
            if (!p) {
                mb_error(st, "mallocx returned NULL");
                break;
            }
            p[0] = 1;
            mb_escape(p);
        }
        mallctl(name, NULL, NULL, NULL, 0);
    }
    drop_arena(a);
}

/* Create an arena, allocate the same batch in it, destroy the arena. */
static void arena_batch_destroy(mb_state *st, const int64_t *arg)
{
    size_t size = (size_t)arg[0], n = (size_t)16 << 20;
    n = n / size > 1000 ? 1000 : n / size;
    mb_set_ops(st, (int64_t)n);
    while (mb_running(st)) {
        unsigned a;
        if (new_arena(st, &a))
            break;
        int flags = MALLOCX_ARENA(a) | MALLOCX_TCACHE_NONE;
        for (size_t i = 0; i < n; i++) {
            char *p = mallocx(size, flags);
            if (!p) {
                mb_error(st, "mallocx returned NULL");
                break;
            }
            p[0] = 1;
            mb_escape(p);
        }
        drop_arena(a);
    }
}

const struct mb_case mb_cases[] = {
    {"arena_pairs", arena_pairs, 1, {"size"}, sizes, NSIZES, 0},
    {"arena_batch_reset", arena_batch_reset, 1, {"size"}, sizes, NSIZES, 0},
    {"arena_batch_destroy", arena_batch_destroy, 1, {"size"}, sizes, NSIZES, 0},
};
const int mb_ncases = sizeof mb_cases / sizeof mb_cases[0];
