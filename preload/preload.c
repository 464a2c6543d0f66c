/* The drop-in: every name of the C allocation API (and the glibc extras that
 * programs call) mapped onto mapalloc's public API, nothing more. Preloaded,
 * these definitions come before glibc's, so glibc's allocator is never
 * mixed with ours. */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>

#include "mapalloc.h"

/* Starts the allocator when the library is loaded, so that its options
 * (verbose, stats at exit) take effect even in a program that never calls
 * malloc. The first malloc may come earlier still; that is fine too. */
__attribute__((constructor)) static void preload_start(void)
{
    mapalloc_free(mapalloc_malloc(1));
}

/* malloc, calloc, realloc, reallocarray, free, cfree, free_sized,
 * free_aligned_sized, aligned_alloc, posix_memalign, memalign, valloc,
 * pvalloc, malloc_usable_size, malloc_trim and glibc's __libc_malloc,
 * __libc_calloc, __libc_realloc, __libc_free, __libc_memalign,
 * __libc_valloc and __libc_pvalloc are the mapalloc_ functions of the same
 * signature under a second name (preload/meson.build: --defsym), not
 * wrappers: a call costs no extra jump. */

void malloc_stats(void) { mapalloc_stats_print(2, MAPALLOC_STATS_GLIBC); }

struct mallinfo2 mallinfo2(void)
{
    struct mapalloc_stats st;
    mapalloc_stats_get(&st);
    struct mallinfo2 mi = {0};
    mi.arena = st.small_mapped;          /* bytes of regions */
    mi.hblks = st.large_blocks;          /* blocks with a mapping of their own */
    mi.hblkhd = st.large_mapped;
    mi.uordblks = st.live;               /* bytes in live blocks */
    mi.fordblks = st.mapped > st.live ? st.mapped - st.live : 0;
    mi.usmblks = st.peak_mapped;
    return mi;
}

/* The old interface truncates to int, as glibc's does. */
struct mallinfo mallinfo(void)
{
    struct mallinfo2 m2 = mallinfo2();
    struct mallinfo mi = {0};
    mi.arena = (int)m2.arena;
    mi.hblks = (int)m2.hblks;
    mi.hblkhd = (int)m2.hblkhd;
    mi.uordblks = (int)m2.uordblks;
    mi.fordblks = (int)m2.fordblks;
    mi.usmblks = (int)m2.usmblks;
    return mi;
}

/* glibc's tuning parameters have no meaning here: accepted (returning 1,
 * success) so that programs that set them carry on; unknown ones fail. */
int mallopt(int param, int value)
{
    (void)value;
    switch (param) {
    case M_MXFAST: case M_TRIM_THRESHOLD: case M_TOP_PAD: case M_MMAP_THRESHOLD:
    case M_MMAP_MAX: case M_CHECK_ACTION: case M_PERTURB: case M_ARENA_TEST: case M_ARENA_MAX:
        return 1;
    default:
        return 0;
    }
}
