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

void *malloc(size_t size) { return mapalloc_malloc(size); }
void *calloc(size_t count, size_t size) { return mapalloc_calloc(count, size); }
void *realloc(void *ptr, size_t size) { return mapalloc_realloc(ptr, size); }
void *reallocarray(void *ptr, size_t count, size_t size) { return mapalloc_reallocarray(ptr, count, size); }
void free(void *ptr) { mapalloc_free(ptr); }
void cfree(void *ptr) { mapalloc_free(ptr); }
void free_sized(void *ptr, size_t size) { mapalloc_free_sized(ptr, size); }
void free_aligned_sized(void *ptr, size_t alignment, size_t size) { mapalloc_free_aligned_sized(ptr, alignment, size); }
void *aligned_alloc(size_t alignment, size_t size) { return mapalloc_aligned_alloc(alignment, size); }
int posix_memalign(void **out, size_t alignment, size_t size) { return mapalloc_posix_memalign(out, alignment, size); }
void *memalign(size_t alignment, size_t size) { return mapalloc_memalign(alignment, size); }
void *valloc(size_t size) { return mapalloc_valloc(size); }
void *pvalloc(size_t size) { return mapalloc_pvalloc(size); }
size_t malloc_usable_size(void *ptr) { return mapalloc_usable_size(ptr); }
int malloc_trim(size_t pad) { return mapalloc_trim(pad); }
void malloc_stats(void) { mapalloc_stats_print(2, 0); }

/* glibc's internal names, which a few programs and libraries call. */
void *__libc_malloc(size_t size) { return mapalloc_malloc(size); }
void *__libc_calloc(size_t count, size_t size) { return mapalloc_calloc(count, size); }
void *__libc_realloc(void *ptr, size_t size) { return mapalloc_realloc(ptr, size); }
void __libc_free(void *ptr) { mapalloc_free(ptr); }
void *__libc_memalign(size_t alignment, size_t size) { return mapalloc_memalign(alignment, size); }
void *__libc_valloc(size_t size) { return mapalloc_valloc(size); }
void *__libc_pvalloc(size_t size) { return mapalloc_pvalloc(size); }

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
