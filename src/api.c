/* The public API: the C allocation functions under mapalloc_ names, with
 * glibc's choices where the standard leaves one, and errno set only on
 * failure. The fast paths are in alloc.h. */
#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "mapalloc.h"

/* ---- when the kernel refuses ---- */

/* Every empty page and region this thread can reach safely goes back: its
 * own heap's, those of exited threads (adopted, trimmed, let go again),
 * and the large cache. Other threads' heaps are theirs alone. Returns the
 * bytes given back. */
static size_t give_back_all(void)
{
    size_t released = ma_heap_trim(ma_tls_heap);
    ma_heap *heap = ma_heap_get_or_create();
    if (heap) {
        for (ma_region *r; (r = ma_region_take_abandoned(NULL)) != NULL;)
            ma_heap_adopt_region(heap, r);
        released += ma_heap_trim(heap);
    }
    return released + ma_large_trim();
}

/* A request the kernel refused gets one more try once the memory held for
 * reuse has gone back: under RLIMIT_AS or a full machine, freed memory is
 * then there for the next request. */
bool ma_give_back(void)
{
    int saved = errno;
    bool any = give_back_all() > 0;
    errno = saved;
    return any;
}

/* ---- the slow ends of the fast paths ---- */

static void *malloc_small_once(size_t size)
{
    if (ma_unlikely(ma_secure))
        return ma_secure_malloc(ma_tls_heap, size, 0, NULL, false);
    return ma_heap_malloc_generic(ma_tls_heap, ma_size_class(size));
}

void *ma_malloc_generic(size_t size)
{
    ma_init(); /* the profile is known from here on */
    void *p = malloc_small_once(size);
    if (ma_unlikely(p == NULL) && ma_give_back())
        p = malloc_small_once(size);
    if (p == NULL)
        errno = ENOMEM;
    return p;
}

static bool too_large(size_t size)
{
    return size > (size_t)PTRDIFF_MAX - MA_OS_PAGE;
}

static void *malloc_large(size_t size, size_t alignment, bool zero)
{
    void *p = NULL;
    if (!too_large(size)) {
        p = ma_large_malloc(size, alignment, zero, NULL);
        if (p == NULL && ma_give_back())
            p = ma_large_malloc(size, alignment, zero, NULL);
    }
    if (p == NULL)
        errno = ENOMEM;
    return p;
}

void *ma_malloc_large_path(size_t size)
{
    ma_init();
    return malloc_large(size, 0, false);
}

void ma_free_invalid(const void *p)
{
    ma_fatal("free of invalid pointer", p);
}

void ma_report_invalid_free(const void *p)
{
    ma_free_invalid(p);
}

void ma_report_double_free(const void *p)
{
    ma_fatal("double free of", p);
}

/* Every free that leaves the fast path with a validated block ends here:
 * the secure profile checks and clears it before it goes on a list. */
void ma_free_block(ma_heap *heap, ma_page *page, void *p)
{
    if (ma_secure)
        ma_secure_release(page, p);
    ma_free_tagged(heap, page, p, ma_block_tag(page, p));
}

void ma_free_nonregion(void *p, size_t expect_size, size_t expect_align)
{
    if (p == NULL)
        return;
    if (ma_in_region((uintptr_t)p)) { /* a region of the secure profile */
        ma_free_block(ma_tls_heap, ma_page_of_live_block(p), p);
        return;
    }
    ma_large_free(p, expect_size, expect_align);
}

/* ---- malloc, calloc, free ---- */

MA_API void *mapalloc_malloc(size_t size)
{
    return ma_malloc_inline(size);
}

MA_API void mapalloc_free(void *ptr)
{
    ma_free_inline(ptr);
}

MA_API void *mapalloc_calloc(size_t count, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(count, size, &total) || total > (size_t)PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    if (total > MA_LARGE_THRESHOLD) {
        ma_init();
        return malloc_large(total, 0, true); /* fresh mappings are zero already */
    }
    void *p = ma_malloc_inline(total);
    if (p != NULL)
        memset(p, 0, total);
    return p;
}

/* Checks a block handed to free_sized or free_aligned_sized against what
 * the caller says it is, then frees it. */
static void free_checked(void *p, size_t size, size_t alignment)
{
    uintptr_t u = (uintptr_t)p;
    if (p == NULL)
        return;
    if (!ma_in_region(u)) {
        ma_free_nonregion(p, size ? size : 1, alignment);
        return;
    }
    ma_page *page = ma_page_of_live_block(p);
    unsigned c = ma_secure ? ma_secure_class(size, alignment)
                 : alignment > 16 ? ma_aligned_class(size, alignment)
                                  : ma_size_class(size);
    if (size > MA_LARGE_THRESHOLD || c != page->class_idx ||
        (ma_secure && ma_secure_size(page, p) != size)) {
        if (alignment > 16)
            ma_fatal("free_aligned_sized with a size or alignment that does not match the block", p);
        ma_fatal("free_sized with a size that does not match the block", p);
    }
    ma_free_block(ma_tls_heap, page, p);
}

MA_API void mapalloc_free_sized(void *ptr, size_t size)
{
    free_checked(ptr, size, 0);
}

MA_API void mapalloc_free_aligned_sized(void *ptr, size_t alignment, size_t size)
{
    if (ptr && (alignment == 0 || (alignment & (alignment - 1)) != 0))
        ma_fatal("free_aligned_sized with an alignment that is not a power of two for", ptr);
    free_checked(ptr, size, alignment);
}

/* ---- realloc ---- */

/* In the secure profile the usable size is the requested size: the bytes
 * after it are the canary. */
static size_t usable_size(void *p)
{
    uintptr_t u = (uintptr_t)p;
    if (ma_in_region(u)) {
        ma_page *page = ma_page_of_live_block(p);
        return ma_secure ? ma_secure_size(page, p) : page->block_size;
    }
    return ma_secure ? ma_large_requested_size(p) : ma_large_usable_size(p);
}

/* realloc of a block of the ordinary heap (arena NULL) or of an arena: the
 * new block comes from the same place. A block that stays in its class is
 * kept; a large one grows or shrinks with mremap; anything else moves. In
 * the secure profile a small or medium block always moves (its canary sits
 * right after the requested size). */
void *ma_realloc_in(ma_arena *arena, void *ptr, size_t size)
{
    if (size == 0) { /* glibc: free and return NULL */
        if (arena)
            mapalloc_arena_free((mapalloc_arena *)arena, ptr);
        else
            mapalloc_free(ptr);
        return NULL;
    }
    if (size > (size_t)PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    size_t old_usable;
    if (ma_in_region((uintptr_t)ptr)) {
        ma_page *page = ma_page_of_live_block(ptr);
        if (ma_secure)
            old_usable = ma_secure_size(page, ptr);
        else if (size <= MA_LARGE_THRESHOLD && ma_size_class(size) == page->class_idx)
            return ptr;
        else
            old_usable = page->block_size;
    } else if (size > MA_LARGE_THRESHOLD) {
        void *q = ma_large_realloc(ptr, size);
        if (q == NULL && !too_large(size) && ma_give_back())
            q = ma_large_realloc(ptr, size);
        if (q == NULL)
            errno = ENOMEM;
        return q;
    } else {
        old_usable = ma_secure ? ma_large_requested_size(ptr) : ma_large_usable_size(ptr);
    }
    void *q = arena ? mapalloc_arena_malloc((mapalloc_arena *)arena, size) : mapalloc_malloc(size);
    if (q == NULL)
        return NULL; /* the old block stays as it was */
    memcpy(q, ptr, old_usable < size ? old_usable : size);
    if (arena)
        mapalloc_arena_free((mapalloc_arena *)arena, ptr);
    else
        mapalloc_free(ptr);
    return q;
}

MA_API void *mapalloc_realloc(void *ptr, size_t size)
{
    if (ptr == NULL)
        return mapalloc_malloc(size);
    uintptr_t u = (uintptr_t)ptr;
    ma_arena *arena = ma_in_region(u) ? ma_region_of(u)->arena : ma_large_arena_of(ptr);
    return ma_realloc_in(arena, ptr, size);
}

MA_API void *mapalloc_reallocarray(void *ptr, size_t count, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(count, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return mapalloc_realloc(ptr, total);
}

/* ---- aligned allocation ---- */

static bool is_pow2(size_t a)
{
    return a != 0 && (a & (a - 1)) == 0;
}

/* alignment: a power of two. */
static void *malloc_aligned(size_t alignment, size_t size)
{
    if (alignment <= MA_SMALL_STEP)
        return mapalloc_malloc(size);
    if (size > (size_t)PTRDIFF_MAX || alignment > ((size_t)1 << 40)) {
        errno = ENOMEM;
        return NULL;
    }
    ma_init();
    return ma_heap_malloc_aligned(ma_tls_heap, NULL, size, alignment);
}

static void *malloc_aligned_once(ma_heap *heap, ma_arena *arena, size_t size, size_t alignment)
{
    unsigned c = ma_aligned_class(size, alignment);
    if (ma_secure)
        return ma_secure_malloc(heap, size, alignment, arena, false);
    if (c < MA_CLASS_COUNT) {
        void *p = ma_page_pop(heap->pages[c]);
        return p ? p : ma_heap_malloc_generic(heap, c);
    }
    return ma_large_malloc(size, alignment, false, arena);
}

/* An aligned block (alignment a power of two above 16) from heap, of the
 * ordinary heap (arena NULL) or of an arena; NULL with errno ENOMEM. The
 * generic path makes the thread's heap when heap is still the empty one. */
void *ma_heap_malloc_aligned(ma_heap *heap, ma_arena *arena, size_t size, size_t alignment)
{
    void *p = malloc_aligned_once(heap, arena, size, alignment);
    if (p == NULL && ma_give_back())
        p = malloc_aligned_once(heap, arena, size, alignment);
    if (p == NULL)
        errno = ENOMEM;
    return p;
}

MA_API void *mapalloc_aligned_alloc(size_t alignment, size_t size)
{
    if (!is_pow2(alignment)) {
        errno = EINVAL;
        return NULL;
    }
    return malloc_aligned(alignment, size);
}

MA_API int mapalloc_posix_memalign(void **out, size_t alignment, size_t size)
{
    if (!is_pow2(alignment) || alignment % sizeof(void *) != 0)
        return EINVAL;
    int saved = errno;
    void *p = malloc_aligned(alignment, size);
    errno = saved;
    if (p == NULL)
        return ENOMEM;
    *out = p;
    return 0;
}

/* glibc: memalign rounds an alignment that is not a power of two up to one. */
MA_API void *mapalloc_memalign(size_t alignment, size_t size)
{
    if (alignment > ((size_t)1 << 40)) {
        errno = EINVAL;
        return NULL;
    }
    if (!is_pow2(alignment)) {
        size_t a = MA_SMALL_STEP;
        while (a < alignment)
            a <<= 1;
        alignment = a;
    }
    return malloc_aligned(alignment, size);
}

MA_API void *mapalloc_valloc(size_t size)
{
    return malloc_aligned(MA_OS_PAGE, size);
}

/* glibc: pvalloc rounds the size up to whole pages, and 0 to one page. */
MA_API void *mapalloc_pvalloc(size_t size)
{
    if (size > (size_t)PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    size_t rounded = size == 0 ? MA_OS_PAGE : (size + MA_OS_PAGE - 1) & ~(MA_OS_PAGE - 1);
    return malloc_aligned(MA_OS_PAGE, rounded);
}

/* ---- queries and maintenance ---- */

MA_API size_t mapalloc_usable_size(const void *ptr)
{
    if (ptr == NULL)
        return 0;
    return usable_size((void *)ptr);
}

MA_API int mapalloc_trim(size_t pad)
{
    (void)pad;
    ma_init();
    return give_back_all() > 0;
}
