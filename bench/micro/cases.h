/* The C side of the micro-benchmarks: benchmark bodies are C functions that
 * drive an opaque state through the shim below; register.cc (the only C++
 * in bench/) implements the shim on Google Benchmark's State and registers
 * every case of a table.
 *
 * A body looks like
 *     static void pairs(mb_state *st, const int64_t *arg)
 *     {
 *         (set-up, not timed)
 *         while (mb_running(st)) { (one iteration, timed) }
 *         (tear-down, not timed)
 *     }
 */
#ifndef MAPALLOC_BENCH_CASES_H
#define MAPALLOC_BENCH_CASES_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mb_state mb_state;

/* True while Google Benchmark wants another iteration. */
int mb_running(mb_state *st);
/* Stop / restart the timer around set-up work inside the loop. */
void mb_pause(mb_state *st);
void mb_resume(mb_state *st);
/* Allocator operations per iteration: reported as the "ops" counter and as
 * items per second, so that ns/op can be read off whatever the batch size. */
void mb_set_ops(mb_state *st, int64_t ops_per_iteration);
/* Marks the run as failed (e.g. malloc returned NULL); the body must then
 * leave its loop. */
void mb_error(mb_state *st, const char *msg);

typedef void (*mb_body)(mb_state *st, const int64_t *args);

/* One benchmark: name/arg1/arg2..., run once per row of args. */
struct mb_case {
    const char *name;
    mb_body body;
    int nargs;              /* 0, 1 or 2 arguments per run */
    const char *argnames[2];
    const int64_t (*args)[2];
    int nruns;              /* rows of args (1 when nargs == 0) */
    int real_time;          /* measure wall time (cases that use threads) */
};

/* The table a binary registers; each micro binary links exactly one. */
extern const struct mb_case mb_cases[];
extern const int mb_ncases;

/* Keeps the compiler from eliding an allocation whose result is unused
 * (compilers may remove a malloc/free pair). */
static inline void mb_escape(void *p)
{
    __asm__ volatile("" : : "g"(p) : "memory");
}

#ifdef __cplusplus
}
#endif

#endif
