/* unwind-cost [DEPTH [N]]: what capturing one stack costs, with each
 * unwinder the heap profiler could use, from DEPTH frames of recursion
 * (default 30) in this program, built like Debian's binaries (-O2 or more,
 * no frame pointers): N captures each (default 20000), then one line per
 * unwinder with the frames it found, the nanoseconds per capture, and the
 * calls it made to malloc (those of the first capture, then of all the
 * others: the first capture is where an unwinder sets itself up).
 *
 *   mapalloc    ma_unwind (src/unwind.c): .eh_frame through _dl_find_object
 *   libgcc      _Unwind_Backtrace, the compiler's unwinder (libgcc_s)
 *   backtrace   glibc's backtrace(), which loads libgcc_s on first use
 *   libunwind   unw_backtrace (Debian's libunwind), in unwind-cost-libunwind,
 *               a build of its own: libunwind defines _Unwind_Backtrace too,
 *               which would take libgcc's place in this one
 *
 * This program's malloc is glibc's, counted by the wrappers below; mapalloc
 * is linked in statically only for its unwinder. */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sys.h"
#include "../../src/unwind.h"

#ifdef WITH_LIBUNWIND
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#else
#include <execinfo.h>
#include <unwind.h>
#endif

#define MAX_FRAMES 64

/* ---- the count of malloc calls: glibc's allocator, wrapped ---- */

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
static unsigned long malloc_calls;

void *malloc(size_t n)
{
    malloc_calls++;
    return __libc_malloc(n);
}

void *calloc(size_t k, size_t n)
{
    malloc_calls++;
    return __libc_calloc(k, n);
}

void *realloc(void *p, size_t n)
{
    malloc_calls++;
    return __libc_realloc(p, n);
}

void free(void *p)
{
    __libc_free(p);
}

/* ---- the unwinders, one signature ---- */

typedef unsigned capture_fn(uintptr_t *pcs, unsigned max);

static unsigned capture_mapalloc(uintptr_t *pcs, unsigned max)
{
    return ma_unwind(pcs, max);
}

#ifdef WITH_LIBUNWIND
static unsigned capture_libunwind(uintptr_t *pcs, unsigned max)
{
    int n = unw_backtrace((void **)pcs, (int)max);
    return n > 0 ? (unsigned)n : 0;
}
#else
struct gcc_walk {
    uintptr_t *pcs;
    unsigned n, max;
};

static _Unwind_Reason_Code gcc_step(struct _Unwind_Context *ctx, void *arg)
{
    struct gcc_walk *w = arg;
    if (w->n == w->max)
        return _URC_END_OF_STACK;
    w->pcs[w->n++] = (uintptr_t)_Unwind_GetIP(ctx);
    return _URC_NO_REASON;
}

static unsigned capture_libgcc(uintptr_t *pcs, unsigned max)
{
    struct gcc_walk w = {pcs, 0, max};
    _Unwind_Backtrace(gcc_step, &w);
    return w.n;
}

static unsigned capture_backtrace(uintptr_t *pcs, unsigned max)
{
    int n = backtrace((void **)pcs, (int)max);
    return n > 0 ? (unsigned)n : 0;
}
#endif

static const struct {
    const char *name;
    capture_fn *fn;
} unwinders[] = {
    {"mapalloc", capture_mapalloc},
#ifdef WITH_LIBUNWIND
    {"libunwind", capture_libunwind},
#else
    {"libgcc", capture_libgcc},
    {"backtrace", capture_backtrace},
#endif
};

/* ---- the measurement, DEPTH frames down ---- */

struct result {
    unsigned frames;
    double ns;
    unsigned long first_mallocs, later_mallocs;
};

static void measure(capture_fn *fn, long n, struct result *r)
{
    uintptr_t pcs[MAX_FRAMES];
    unsigned long before = malloc_calls;
    r->frames = fn(pcs, MAX_FRAMES);
    r->first_mallocs = malloc_calls - before;
    before = malloc_calls;
    double t0 = wl_now();
    for (long i = 0; i < n; i++)
        fn(pcs, MAX_FRAMES);
    r->ns = (wl_now() - t0) * 1e9 / (double)n;
    r->later_mallocs = malloc_calls - before;
}

/* Recursion that the compiler keeps (no tail call, no inlining): a frame
 * per level, each with frame information and no frame pointer. */
__attribute__((noinline)) static int descend(int depth, long n, struct result *out)
{
    if (depth > 0) {
        int r = descend(depth - 1, n, out);
        __asm__ volatile("" : : : "memory");
        return r + 1;
    }
    for (size_t i = 0; i < sizeof unwinders / sizeof unwinders[0]; i++)
        measure(unwinders[i].fn, n, &out[i]);
    return 0;
}

int main(int argc, char **argv)
{
    int depth = argc > 1 ? atoi(argv[1]) : 30;
    long n = argc > 2 ? atol(argv[2]) : 20000;
    struct result r[sizeof unwinders / sizeof unwinders[0]];
    descend(depth, n, r);
    for (size_t i = 0; i < sizeof unwinders / sizeof unwinders[0]; i++)
        printf("%-10s frames=%u ns_per_stack=%.0f mallocs_first=%lu mallocs_later=%lu\n",
               unwinders[i].name, r[i].frames, r[i].ns, r[i].first_mallocs, r[i].later_mallocs);
    return 0;
}
