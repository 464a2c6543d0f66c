/* mimalloc's first-class heaps, for comparison with mapalloc's arena API:
 * mi_heap_malloc/mi_free on a heap from mi_heap_new, and dropping a whole
 * batch with mi_heap_destroy instead of freeing block by block. Linked to
 * libmimalloc (no LD_PRELOAD). Case names match arena_jemalloc.c and
 * arena_mapalloc.c; mimalloc has no reset that keeps the heap, so it has no
 * arena_batch_reset.
 */
#include "cases.h"

#include <mimalloc.h>

static const int64_t sizes[][2] = {{16}, {64}, {256}, {1024}, {4096}, {16384}, {65536}};
#define NSIZES ((int)(sizeof sizes / sizeof sizes[0]))

static void arena_pairs(mb_state *st, const int64_t *arg)
{
    mi_heap_t *h = mi_heap_new();
    if (!h) {
        mb_error(st, "mi_heap_new returned NULL");
        return;
    }
    while (mb_running(st)) {
        char *p = mi_heap_malloc(h, (size_t)arg[0]);
        if (!p) {
            mb_error(st, "mi_heap_malloc returned NULL");
            break;
        }
        p[0] = 1;
        mb_escape(p);
        mi_free(p);
    }
    mi_heap_destroy(h);
}

/* Allocate 1000 blocks (at most 16 MiB) in a fresh heap, then drop them all
 * with mi_heap_destroy. */
static void arena_batch_destroy(mb_state *st, const int64_t *arg)
{
    size_t size = (size_t)arg[0], n = (size_t)16 << 20;
    n = n / size > 1000 ? 1000 : n / size;
    mb_set_ops(st, (int64_t)n);
    while (mb_running(st)) {
        mi_heap_t *h = mi_heap_new();
        if (!h) {
            mb_error(st, "mi_heap_new returned NULL");
            break;
        }
        for (size_t i = 0; i < n; i++) {
            char *p = mi_heap_malloc(h, size);
            if (!p) {
                mb_error(st, "mi_heap_malloc returned NULL");
                break;
            }
            p[0] = 1;
            mb_escape(p);
        }
        mi_heap_destroy(h);
    }
}

const struct mb_case mb_cases[] = {
    {"arena_pairs", arena_pairs, 1, {"size"}, sizes, NSIZES, 0},
    {"arena_batch_destroy", arena_batch_destroy, 1, {"size"}, sizes, NSIZES, 0},
};
const int mb_ncases = sizeof mb_cases / sizeof mb_cases[0];
