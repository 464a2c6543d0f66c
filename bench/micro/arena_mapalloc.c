/* mapalloc's explicit arenas (include/mapalloc.h): mapalloc_arena_malloc and
 * mapalloc_arena_free, dropping a whole batch with mapalloc_arena_reset, or
 * with the arena itself by mapalloc_arena_destroy. Linked to libmapalloc (no
 * LD_PRELOAD: the ordinary malloc of this binary stays glibc's). Case names
 * match arena_jemalloc.c and arena_mimalloc.c.
 */
#include "cases.h"

#include <mapalloc.h>

static const int64_t sizes[][2] = {{16}, {64}, {256}, {1024}, {4096}, {16384}, {65536}};
#define NSIZES ((int)(sizeof sizes / sizeof sizes[0]))

static size_t batch_len(size_t size)
{
    size_t n = ((size_t)16 << 20) / size;
    return n > 1000 ? 1000 : n;
}

static void arena_pairs(mb_state *st, const int64_t *arg)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    if (!a) {
        mb_error(st, "mapalloc_arena_create returned NULL");
        return;
    }
    while (mb_running(st)) {
        char *p = mapalloc_arena_malloc(a, (size_t)arg[0]);
        if (!p) {
            mb_error(st, "mapalloc_arena_malloc returned NULL");
            break;
        }
        p[0] = 1;
        mb_escape(p);
        mapalloc_arena_free(a, p);
    }
    mapalloc_arena_destroy(a);
}

/* Allocate the batch in one arena, then drop it with mapalloc_arena_reset
 * (the arena keeps its pages for the next batch). */
static void arena_batch_reset(mb_state *st, const int64_t *arg)
{
    size_t size = (size_t)arg[0], n = batch_len(size);
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    if (!a) {
        mb_error(st, "mapalloc_arena_create returned NULL");
        return;
    }
    mb_set_ops(st, (int64_t)n);
    while (mb_running(st)) {
        for (size_t i = 0; i < n; i++) {
            char *p = mapalloc_arena_malloc(a, size);
            if (!p) {
                mb_error(st, "mapalloc_arena_malloc returned NULL");
                break;
            }
            p[0] = 1;
            mb_escape(p);
        }
        mapalloc_arena_reset(a);
    }
    mapalloc_arena_destroy(a);
}

/* Create an arena, allocate the batch in it, destroy the arena. */
static void arena_batch_destroy(mb_state *st, const int64_t *arg)
{
    size_t size = (size_t)arg[0], n = batch_len(size);
    mb_set_ops(st, (int64_t)n);
    while (mb_running(st)) {
        mapalloc_arena *a = mapalloc_arena_create(NULL);
        if (!a) {
            mb_error(st, "mapalloc_arena_create returned NULL");
            break;
        }
        for (size_t i = 0; i < n; i++) {
            char *p = mapalloc_arena_malloc(a, size);
            if (!p) {
                mb_error(st, "mapalloc_arena_malloc returned NULL");
                break;
            }
            p[0] = 1;
            mb_escape(p);
        }
        mapalloc_arena_destroy(a);
    }
}

const struct mb_case mb_cases[] = {
    {"arena_pairs", arena_pairs, 1, {"size"}, sizes, NSIZES, 0},
    {"arena_batch_reset", arena_batch_reset, 1, {"size"}, sizes, NSIZES, 0},
    {"arena_batch_destroy", arena_batch_destroy, 1, {"size"}, sizes, NSIZES, 0},
};
const int mb_ncases = sizeof mb_cases / sizeof mb_cases[0];
