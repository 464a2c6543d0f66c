/* The public API: the C allocation functions under mapalloc_ names, with
 * glibc's choices where the standard leaves one, and errno set only on
 * failure; the explicit-arena API; the process's fork handlers. The fast
 * paths are in alloc.h. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "mapalloc.h"
#include "purge.h"

/* ---- misuse ---- */

MA_NORETURN MA_COLD static void free_invalid(const void *p)
{
    ma_fatal("free of invalid pointer", p);
}

static void ma_report_double_free(const void *p)
{
    ma_fatal("double free of", p);
}

/* The page of a block that is live (p in a page: ma_block_page), or an
 * abort naming the misuse. */
static ma_page *page_of_live_block(void *p)
{
    uintptr_t u = (uintptr_t)p;
    ma_page *page = ma_page_lookup(u);
    if (ma_unlikely(!ma_page_has_block(page, u)))
        free_invalid(p);
    if (MAPALLOC_CHECKS && ma_unlikely(((ma_block *)p)->tag == ma_block_tag(page)))
        ma_fatal("double free of", p);
    return page;
}

/* ---- when the kernel refuses ---- */

/* Every empty page and region this thread can reach safely goes back: its
 * own heap's, the default arena's free slices and empty regions (abandoned
 * pages whose blocks all came back included), and the large cache. Other
 * threads' heaps are theirs alone. Returns the bytes given back. */
static size_t give_back_all(void)
{
    size_t released = ma_heap_trim(ma_tls_heap);
    released += ma_arena_purge(&ma_default_arena, 0, true);
    return released + ma_large_trim(true);
}

/* A request the kernel refused gets one more try once the memory held for
 * reuse has gone back: under RLIMIT_AS or a full machine, freed memory is
 * then there for the next request. */
static bool give_back(void)
{
    int saved = errno;
    bool any = give_back_all() > 0;
    errno = saved;
    return any;
}

/* ---- the heap profiler's samples (prof.c) ---- */

/* A large block of arena a; the profiler may sample it. */
static void *large_block(ma_arena *a, size_t size, size_t alignment, bool zero)
{
    void *p = ma_arena_large_malloc(a, size, alignment, zero);
    if (ma_unlikely(ma_prof_on) && p != NULL && a == &ma_default_arena)
        ma_prof_large(p, size);
    return p;
}

/* The block of an allocation that the slow path said is a sample: a
 * sampled block (an ordinary one if there is no memory for the sample). */
static void *heap_block_sampled(ma_heap *heap, unsigned c, size_t size, size_t alignment)
{
    void *p = ma_prof_sample(size, alignment, ma_class_size(c), false);
    if (p == NULL)
        p = ma_heap_malloc_generic(heap, c);
    return p == MA_PROF_DUE ? NULL : p;
}

/* A block of class c from heap, or a sampled one (above). */
static void *heap_block(ma_heap *heap, unsigned c, size_t size, size_t alignment)
{
    void *p = ma_heap_malloc_generic(heap, c);
    if (ma_likely(p != MA_PROF_DUE))
        return p;
    return heap_block_sampled(heap, c, size, alignment);
}

/* ---- small and medium blocks ---- */

/* The secure profile: every malloc comes here, with the block's trailer
 * counted in its class; so does its sampling. */
static void *secure_malloc(ma_heap *heap, ma_arena *a, size_t size, size_t alignment, bool zero)
{
    unsigned c = ma_secure_class(size, alignment);
    if (c >= MA_CLASS_COUNT)
        return large_block(a, size, alignment, zero);
    if (ma_unlikely(ma_prof_on) && a == &ma_default_arena && ma_prof_tick(ma_class_size(c))) {
        void *p = ma_prof_sample(size, alignment, ma_class_size(c), zero);
        if (p != NULL)
            return p;
    }
    void *p = ma_heap_malloc_generic(heap, c);
    return p ? ma_secure_prepare(p, size, zero) : NULL;
}

static void *malloc_small_once(size_t size)
{
    if (ma_unlikely(ma_secure))
        return secure_malloc(ma_tls_heap, &ma_default_arena, size, 0, false);
    return heap_block(ma_tls_heap, ma_size_class(size), size, 0);
}

/* What a first try of the malloc slow path left to do: a sample, or memory
 * given back and a second try. */
static MA_NOINLINE void *malloc_small_rest(ma_heap *heap, unsigned c, size_t size, void *p)
{
    if (p == MA_PROF_DUE)
        p = heap_block_sampled(heap, c, size, 0);
    if (p == NULL && give_back())
        p = malloc_small_once(size);
    if (p == NULL)
        errno = ENOMEM;
    return p;
}

/* The fast path's page is of the request's class unless it is the empty
 * page (a heap's class not set up yet): its class saves computing it. */
static void *ma_malloc_generic(size_t size, const ma_page *page)
{
    ma_init(); /* the profile is known from here on */
    if (ma_unlikely(ma_secure)) {
        void *p = malloc_small_once(size);
        return p != NULL ? p : malloc_small_rest(ma_tls_heap, 0, size, NULL);
    }
    ma_heap *heap = ma_tls_heap;
    unsigned c = page != &ma_empty_page ? page->class_idx : ma_size_class(size);
    void *p = ma_heap_malloc_generic(heap, c);
    if (ma_likely(p != NULL && p != MA_PROF_DUE))
        return p;
    return malloc_small_rest(heap, c, size, p);
}

/* ---- large blocks ---- */

static void *malloc_large(ma_arena *a, size_t size, size_t alignment, bool zero)
{
    void *p = NULL;
    if (ma_large_map_size(size) != 0) {
        p = large_block(a, size, alignment, zero);
        if (p == NULL && give_back())
            p = large_block(a, size, alignment, zero);
    }
    if (p == NULL)
        errno = ENOMEM;
    return p;
}

static void *ma_malloc_large_path(size_t size)
{
    ma_init();
    return malloc_large(&ma_default_arena, size, 0, false);
}

/* ---- free ---- */

/* A validated block that leaves the fast path (the secure profile checks
 * it on the remote path, heap.c, before it goes on a list). */
static void free_block(ma_page *page, void *p)
{
    ma_free_tagged(page, p, ma_block_tag(page));
}

/* No block of a page at p: a large block, or not ours (an address in a
 * page that is no block start, outside every page, NULL). */
static void ma_free_nonregion(void *p, size_t expect_size, size_t expect_align)
{
    if (p == NULL)
        return;
    if (ma_block_page((uintptr_t)p) != NULL)
        free_invalid(p);
    if (ma_unlikely(ma_prof_on))
        ma_prof_free(p);
    ma_arena_large_free(p, expect_size, expect_align);
    ma_purger_kick(); /* the block may wait in the large cache */
}

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
        return malloc_large(&ma_default_arena, total, 0, true); /* fresh mappings are zero already */
    }
    void *p = ma_malloc_inline(total);
    if (p != NULL)
        memset(p, 0, total);
    return p;
}

/* Checks a block handed to free_sized or free_aligned_sized against what
 * the caller says it is, then frees it. */
static MA_NOINLINE void free_checked(void *p, size_t size, size_t alignment)
{
    if (p == NULL)
        return;
    if (ma_block_page((uintptr_t)p) == NULL) {
        ma_free_nonregion(p, size ? size : 1, alignment);
        return;
    }
    ma_page *page = page_of_live_block(p);
    unsigned c = ma_secure ? ma_secure_class(size, alignment)
                 : alignment > 16 ? ma_aligned_class(size, alignment)
                                  : ma_size_class(size);
    if (size > MA_LARGE_THRESHOLD || c != page->class_idx ||
        (ma_secure && ma_secure_size(page, p) != size)) {
        if (alignment > 16)
            ma_fatal("free_aligned_sized with a size or alignment that does not match the block", p);
        ma_fatal("free_sized with a size that does not match the block", p);
    }
    free_block(page, p);
}

/* The fast path of free with the size's class checked too (four
 * instructions more than free: the size is compared with the range the
 * page's class serves, not turned into a class); the secure profile, large
 * blocks and every misuse leave for free_checked, which names it (not
 * inlined: the fast path keeps no copy of the address for it). */
MA_API void mapalloc_free_sized(void *ptr, size_t size)
{
    uintptr_t u = (uintptr_t)ptr;
    ma_page *page = ma_page_lookup(u);
    /* The size's test first: the empty page serves no size, so an address
     * in no page fails it too, and the address needs one copy fewer (29
     * instructions to a local free, against free's 25). */
    if (ma_likely(ma_page_serves_size(page, size) && ma_page_has_block(page, u))) {
        uintptr_t tag = ma_block_tag(page);
        if (!MAPALLOC_CHECKS || ma_likely(((ma_block *)ptr)->tag != tag)) {
            ma_free_tagged(page, ptr, tag);
            return;
        }
    }
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
    if (ma_block_page((uintptr_t)p) != NULL) {
        ma_page *page = page_of_live_block(p);
        return ma_secure ? ma_secure_size(page, p) : page->block_size;
    }
    return ma_secure ? ma_large_requested_size(p) : ma_large_usable_size(p);
}

/* The arena a block belongs to; aborts for a pointer that is no live block. */
static ma_arena *arena_of(void *p)
{
    if (ma_block_page((uintptr_t)p) != NULL)
        return ma_page_region(page_of_live_block(p))->arena;
    return ma_arena_of_large(p);
}

static void *arena_malloc(ma_arena *a, size_t size)
{
    return a == &ma_default_arena ? mapalloc_malloc(size) : mapalloc_arena_malloc((mapalloc_arena *)a, size);
}

static void arena_free(ma_arena *a, void *p)
{
    if (a == &ma_default_arena)
        mapalloc_free(p);
    else
        mapalloc_arena_free((mapalloc_arena *)a, p);
}

/* realloc of a block of arena a: the new block comes from the same arena.
 * A block that stays in its class is kept; a large one grows or shrinks
 * with mremap; anything else moves. In the secure profile a small or
 * medium block always moves (its canary sits right after the requested
 * size). */
/* A large block of a small size (a sample of the heap profiler, mapped as
 * large as its class, or one of a large alignment) stays where it is while
 * the new size fits its mapping and needs more than half of it, as a block
 * in a page stays within its class: a growing buffer that was sampled is
 * not copied at every step. Not below the pages of its request, which
 * free_sized checks its size against: that would need the record changed. */
static bool large_keeps_place(const void *ptr, size_t size, size_t map_size)
{
    size_t need = ma_large_map_size(size);
    return size <= map_size && 2 * need > map_size &&
           need >= ma_large_map_size(ma_large_requested_size(ptr));
}

static void *realloc_in(ma_arena *a, void *ptr, size_t size)
{
    if (size == 0) { /* glibc: free and return NULL */
        arena_free(a, ptr);
        return NULL;
    }
    if (size > (size_t)PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    size_t old_usable;
    if (ma_block_page((uintptr_t)ptr) != NULL) {
        ma_page *page = page_of_live_block(ptr);
        if (ma_secure)
            old_usable = ma_secure_size(page, ptr);
        else if (size <= MA_LARGE_THRESHOLD && ma_size_class(size) == page->class_idx)
            return ptr;
        else
            old_usable = page->block_size;
    } else {
        if (size > MA_LARGE_THRESHOLD) {
            void *q = ma_arena_large_realloc(ptr, size);
            if (q == NULL && ma_large_map_size(size) != 0 && give_back())
                q = ma_arena_large_realloc(ptr, size);
            if (q != NULL) {
                if (ma_unlikely(ma_prof_on) && a == &ma_default_arena) {
                    ma_prof_free(ptr); /* as a free and a new allocation, for the profile */
                    ma_prof_large(q, size);
                }
                return q;
            }
            /* mremap refused, the old block as it was: a new block and a
             * copy, as below. A shrink then still succeeds where a guard
             * page or a tool's emulation of mremap is in the way (valgrind
             * refuses to shrink a mapping that a guard has split). */
        }
        old_usable = ma_secure ? ma_large_requested_size(ptr) : ma_large_usable_size(ptr);
        if (!ma_secure && large_keeps_place(ptr, size, old_usable))
            return ptr;
    }
    void *q = arena_malloc(a, size);
    if (q == NULL)
        return NULL; /* the old block stays as it was */
    memcpy(q, ptr, old_usable < size ? old_usable : size);
    arena_free(a, ptr);
    return q;
}

MA_API void *mapalloc_realloc(void *ptr, size_t size)
{
    if (ptr == NULL)
        return mapalloc_malloc(size);
    return realloc_in(arena_of(ptr), ptr, size);
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

static void *malloc_aligned_once(ma_heap *heap, ma_arena *a, size_t size, size_t alignment)
{
    if (ma_secure)
        return secure_malloc(heap, a, size, alignment, false);
    unsigned c = ma_aligned_class(size, alignment);
    if (c < MA_CLASS_COUNT) {
        void *p = ma_page_pop(heap->pages[c]);
        return p ? p : heap_block(heap, c, size, alignment);
    }
    return large_block(a, size, alignment, false);
}

/* An aligned block (alignment a power of two above 16) from heap, a heap
 * of arena a; NULL with errno ENOMEM. The generic path makes the thread's
 * default heap when heap is still the empty one. */
static void *heap_malloc_aligned(ma_heap *heap, ma_arena *a, size_t size, size_t alignment)
{
    void *p = malloc_aligned_once(heap, a, size, alignment);
    if (p == NULL && give_back())
        p = malloc_aligned_once(heap, a, size, alignment);
    if (p == NULL)
        errno = ENOMEM;
    return p;
}

/* alignment: a power of two. */
static void *malloc_aligned(size_t alignment, size_t size)
{
    if (alignment <= MA_SMALL_STEP)
        return mapalloc_malloc(size);
    if (size > (size_t)PTRDIFF_MAX || alignment > MA_ALIGN_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    ma_init();
    return heap_malloc_aligned(ma_tls_heap, &ma_default_arena, size, alignment);
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
    if (alignment > MA_ALIGN_MAX) {
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

/* ---- explicit arenas ---- */

static const unsigned known_flags = MAPALLOC_ARENA_HUGE | MAPALLOC_ARENA_NORESERVE |
                                    MAPALLOC_ARENA_DEVZERO | MAPALLOC_ARENA_RESET_RETURNS;

MA_API mapalloc_arena *mapalloc_arena_create(const struct mapalloc_arena_options *options)
{
    struct mapalloc_arena_options opt = {0, 0, 0};
    if (options)
        opt = *options;
    if ((opt.flags & ~known_flags) != 0 || (opt.limit && opt.reserve > opt.limit) ||
        opt.reserve > (size_t)PTRDIFF_MAX / 2) {
        errno = EINVAL;
        return NULL;
    }
    ma_init();
    ma_arena *a = ma_arena_new(opt.flags, opt.limit, opt.reserve);
    if (a == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    atomic_store_explicit(&a->hot_heap, &ma_empty_heap, memory_order_release);
    return (mapalloc_arena *)a;
}

MA_API void mapalloc_arena_destroy(mapalloc_arena *arena)
{
    ma_arena *a = (ma_arena *)arena;
    if (a == NULL)
        return;
    uint64_t magic = atomic_load_explicit(&a->magic, memory_order_acquire);
    if (magic == MA_ARENA_DEAD)
        ma_fatal("arena destroyed twice", a);
    if (magic != MA_ARENA_LIVE || a == &ma_default_arena)
        ma_fatal("destroy of something that is not an arena", a);
    ma_heaps_leave(a);
    ma_arena_destroy(a);
}

/* Without RESET_RETURNS, each heap keeps its pages in place, emptied (the
 * next request finds them at once); with it, every page goes, and memory
 * goes back to the kernel beyond the reservation. */
MA_API void mapalloc_arena_reset(mapalloc_arena *arena)
{
    ma_arena *a = (ma_arena *)arena;
    ma_arena_check_live(a);
    ma_heaps_reset(a, (a->flags & MAPALLOC_ARENA_RESET_RETURNS) != 0);
}

static void *arena_malloc_once(ma_arena *a, ma_heap *heap, size_t size, bool zero)
{
    if (ma_secure)
        return secure_malloc(heap, a, size, 0, zero);
    if (size > MA_LARGE_THRESHOLD)
        return ma_arena_large_malloc(a, size, 0, zero);
    void *p = ma_page_pop(ma_heap_page_for(heap, size));
    if (p == NULL)
        p = ma_heap_malloc_generic(heap, ma_size_class(size));
    if (p != NULL && zero)
        memset(p, 0, size);
    return p;
}

/* Refused: past the limit, blocks freed into this thread's pages of the
 * arena may not be collected yet: collect them and give back the empty
 * pages; refused by the kernel, give back what the process holds. Then one
 * more try. Blocks freed into other threads' pages count until those
 * threads allocate from the arena again. */
static void *arena_malloc_in(ma_arena *a, ma_heap *heap, size_t size, bool zero)
{
    int saved = errno;
    void *p = arena_malloc_once(a, heap, size, zero);
    if (p == NULL) {
        bool retry = true;
        if (a->limit)
            ma_heap_trim(heap);
        else
            retry = give_back();
        if (retry)
            p = arena_malloc_once(a, heap, size, zero);
    }
    if (p == NULL)
        errno = ENOMEM;
    else
        errno = saved; /* success leaves errno alone */
    return p;
}

static MA_NOINLINE void *arena_malloc_slow(ma_arena *a, ma_heap *heap, size_t size)
{
    if (heap == &ma_empty_heap || size > (size_t)PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    return arena_malloc_in(a, heap, size, false);
}

/* A block from heap's page for size (size <= MA_LARGE_THRESHOLD): popped
 * from its free list or, when that is dry, its next fresh block (the common
 * case in an arena, whose blocks are rarely freed one by one). NULL: the
 * slow path decides. */
static inline void *arena_heap_pop(ma_heap *heap, size_t size)
{
    return ma_page_take(ma_heap_page_for(heap, size));
}

static MA_NOINLINE void *arena_malloc_miss(ma_arena *a, size_t size)
{
    if (a == NULL)
        ma_arena_dead(a);
    ma_heap *heap = ma_heap_of_arena_slow(a);
    if (size <= MA_LARGE_THRESHOLD) {
        void *p = arena_heap_pop(heap, size);
        if (p != NULL)
            return p;
    }
    return arena_malloc_slow(a, heap, size);
}

/* The same fast path as malloc, on the thread's heap in the arena; every
 * other case leaves by a tail call, so this keeps no stack frame. */
MA_API void *mapalloc_arena_malloc(mapalloc_arena *arena, size_t size)
{
    ma_arena *a = (ma_arena *)arena;
    if (ma_unlikely(a == NULL))
        return arena_malloc_miss(a, size);
    ma_heap *heap = atomic_load_explicit(&a->hot_heap, memory_order_acquire);
    if (ma_unlikely(!ma_heap_is_hot(a, heap)))
        return arena_malloc_miss(a, size);
    if (ma_likely(size <= MA_LARGE_THRESHOLD)) {
        void *p = arena_heap_pop(heap, size);
        if (ma_likely(p != NULL))
            return p;
    }
    return arena_malloc_slow(a, heap, size);
}

MA_API void *mapalloc_arena_calloc(mapalloc_arena *arena, size_t count, size_t size)
{
    ma_arena *a = (ma_arena *)arena;
    size_t total;
    ma_heap *heap = ma_heap_of_arena(a);
    if (heap == &ma_empty_heap || __builtin_mul_overflow(count, size, &total) ||
        total > (size_t)PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    return arena_malloc_in(a, heap, total, true);
}

MA_API void *mapalloc_arena_aligned_alloc(mapalloc_arena *arena, size_t alignment, size_t size)
{
    ma_arena *a = (ma_arena *)arena;
    ma_heap *heap = ma_heap_of_arena(a);
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
        errno = EINVAL;
        return NULL;
    }
    if (heap == &ma_empty_heap || size > (size_t)PTRDIFF_MAX || alignment > MA_ALIGN_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    if (alignment <= MA_SMALL_STEP)
        return arena_malloc_in(a, heap, size, false);
    return heap_malloc_aligned(heap, a, size, alignment);
}

static void check_owner(ma_arena *a, void *p)
{
    if (ma_unlikely(arena_of(p) != a))
        ma_fatal("free into the wrong arena of", p);
}

MA_API void mapalloc_arena_free(mapalloc_arena *arena, void *ptr)
{
    ma_arena *a = (ma_arena *)arena;
    ma_arena_check_live(a);
    if (ptr == NULL)
        return;
    if (ma_block_page((uintptr_t)ptr) == NULL) {
        check_owner(a, ptr);
        ma_arena_large_free(ptr, 0, 0);
        return;
    }
    ma_page *page = page_of_live_block(ptr);
    if (ma_unlikely(ma_page_region(page)->arena != a))
        ma_fatal("free into the wrong arena of", ptr);
    free_block(page, ptr);
}

MA_API void *mapalloc_arena_realloc(mapalloc_arena *arena, void *ptr, size_t size)
{
    ma_arena *a = (ma_arena *)arena;
    ma_arena_check_live(a);
    if (ptr == NULL)
        return mapalloc_arena_malloc(arena, size);
    check_owner(a, ptr);
    return realloc_in(a, ptr, size);
}

MA_API void mapalloc_arena_stats(mapalloc_arena *arena, struct mapalloc_arena_stats *out)
{
    ma_arena *a = (ma_arena *)arena;
    ma_arena_check_live(a);
    struct ma_arena_account acc;
    ma_arena_account(a, &acc);
    out->live = acc.live;
    out->blocks = acc.blocks;
    out->committed = acc.committed;
    out->mapped = acc.mapped;
    out->peak = acc.peak;
}

/* ---- the process: fork ---- */

/* fork: every allocator lock, always in this order. */
static void fork_prepare(void)
{
    ma_arenas_lock_all();
    ma_lock(&ma_heap_lock);
    ma_lock(&ma_large_lock);
    ma_lock(&ma_prof_lock);
}

static void fork_parent(void)
{
    ma_unlock(&ma_prof_lock);
    ma_unlock(&ma_large_lock);
    ma_unlock(&ma_heap_lock);
    ma_arenas_unlock_all();
}

static void fork_child(void)
{
    fork_parent();
    ma_heap_fork_child();
    ma_purger_fork_child();
}

/* Registered when the library is loaded, before any thread of the program
 * can fork. (The first allocations may come earlier still, from the
 * dynamic loader, while no other thread runs.) */
__attribute__((constructor)) static void api_start(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}
