/* The operation interpreter shared by test_model (random records, several
 * threads) and fuzz_ops (records read from the fuzzer's input).
 *
 * An operation is an 8-byte record: which call (byte 0, through a weight
 * table), which slot (byte 1), a size (bytes 2 to 4), an alignment or arena
 * (byte 5), and variants (bytes 6 and 7). Every call is checked against a
 * model kept beside the allocator:
 *  - no two live blocks overlap (one interval set for all threads);
 *  - a block keeps its contents (a pattern derived from its id), through
 *    realloc and handing to another thread;
 *  - usable size >= the request, and stable; alignment holds; calloc zeroes;
 *  - a failure is NULL with ENOMEM only where one may happen (an arena with
 *    a limit, an impossible request), errno untouched on success.
 * A failed check prints what it saw and calls model_failed. */
#ifndef SAFETY_MODEL_H
#define SAFETY_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mapalloc.h>

#define MODEL_SLOTS 256
#define MODEL_ARENAS 4

struct mblock;

struct model {
    struct mblock *slot[MODEL_SLOTS];
    mapalloc_arena *arena[MODEL_ARENAS];
    bool arena_limited[MODEL_ARENAS];
    uint64_t next_id;   /* ids: thread index in the high bits */
    uint64_t ops;       /* operations applied */
    int thread;         /* for reports */
    bool handoff;       /* blocks may go to other threads (test_model) */
    size_t max_large;   /* the largest large request */
};

/* MODEL_TRACE=1 in the environment prints every operation on stderr. */

/* What a failure report adds (set by the driver, e.g. "seed=42"). */
extern char model_context[192];

void model_init(struct model *m, int thread, bool handoff);
void model_step(struct model *m, const uint8_t rec[8]);
/* Frees every block (checking it) and destroys the arenas. */
void model_finish(struct model *m);
/* A thread's end: hands some blocks to other threads, frees the rest. */
void model_leave(struct model *m);
/* Frees blocks other threads handed over; called at the end of a run. */
void model_drain_handoffs(struct model *m);
/* Blocks tracked now, in all threads (for the drivers' sanity checks). */
size_t model_tracked(void);

/* Prints the context and aborts. */
__attribute__((noreturn, format(printf, 2, 3))) void model_failed(const struct model *m,
                                                                   const char *fmt, ...);

#endif
