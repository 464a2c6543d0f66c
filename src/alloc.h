/* The fast paths of malloc and free, read top to bottom. Everything rare
 * (first use, an exhausted page, a remote owner, a large block, a misuse)
 * leaves through one predictable branch into a noinline function.
 *
 * malloc(small): one TLS load, one table load, pop the page's free list
 * (decode the link, check it stays in the page), clear the free tag, count.
 * free: one byte of the region map says the address is in a region; mask to
 * the region, one byte to the page; check the address is a block of the page
 * and is not already free (its tag); push on the owner's local list, or one
 * atomic push for another thread's page. */
#ifndef MA_ALLOC_H
#define MA_ALLOC_H

#include "internal.h"

/* The default checks (-Dchecks=false removes them, only to measure them). */
#ifndef MAPALLOC_CHECKS
#define MAPALLOC_CHECKS 1
#endif

extern MA_THREAD_LOCAL ma_heap *ma_tls_heap;

/* ---- free-list links and free tags ---- */

/* Links are stored encoded with the page's secret, so an overflow or a
 * use-after-free write cannot forge a pointer the allocator will follow. */
static inline uintptr_t ma_link_encode(const ma_page *page, const ma_block *next)
{
    uintptr_t x = (uintptr_t)next ^ page->link_key;
    return ((x << 23) | (x >> 41)) + page->link_key;
}

static inline ma_block *ma_link_decode(const ma_page *page, uintptr_t enc)
{
    uintptr_t x = enc - page->link_key;
    return (ma_block *)(((x >> 23) | (x << 41)) ^ page->link_key);
}

/* The mark of a free block: only the allocator writes it, malloc erases it. */
static inline uintptr_t ma_block_tag(const ma_page *page, const ma_block *b)
{
    return (uintptr_t)b ^ page->tag_key;
}

/* ---- finding a block's page from its address ---- */

static inline bool ma_in_region(uintptr_t u)
{
    uintptr_t i = u >> MA_REGION_SHIFT;
    return i < MA_REGION_MAP_SIZE && ma_region_map[i] != MA_MAP_NONE;
}

/* In a region whose frees take the fast path: the same one test answers
 * "is this a region?" and "is the secure profile off?". */
static inline bool ma_in_fast_region(uintptr_t u)
{
    uintptr_t i = u >> MA_REGION_SHIFT;
    return i < MA_REGION_MAP_SIZE && ma_region_map[i] == MA_MAP_FAST;
}

static inline ma_region *ma_region_of(uintptr_t u)
{
    return (ma_region *)(u & ~(uintptr_t)(MA_REGION_SIZE - 1));
}

static inline ma_page *ma_page_of(uintptr_t u)
{
    ma_region *r = ma_region_of(u);
    return &r->pages[r->slice_page[(u >> MA_SLICE_SHIFT) & (MA_REGION_SLICES - 1)]];
}

/* True when u is the start of a carved block of page, with one subtract,
 * one multiply and one compare. u is never below the page's start (its
 * slice belongs to the page, or to pages[0], whose block_div is 0), so
 * u - carved_end lies within a page's span S of 0. Let c = ceil(2^64 /
 * size) (the divisor of Lemire, Kaser and Kurz), r = size * c - 2^64 < size,
 * and block_div = c + 1. The block k blocks below carved_end gives
 * 2^64 - k * (size + r), within 2S of 2^64. Any other address gives at
 * most 2^64 - c + 2S (off a block boundary) or at most 2S (at or past
 * carved_end on one): far below, since c is at least 2^64 / 512 KiB.
 * tests/test_page_index.c checks every offset of every class. */
#define MA_BLOCK_WINDOW ((uint64_t)1 << 24)
_Static_assert(2 * MA_REGION_SIZE <= MA_BLOCK_WINDOW, "a page's blocks fit the window");
_Static_assert(UINT64_MAX / MA_LARGE_THRESHOLD > 4 * MA_BLOCK_WINDOW, "no other address fits it");
static inline bool ma_page_has_block(const ma_page *page, uintptr_t u)
{
    uint64_t x = (uint64_t)(u - (uintptr_t)page->carved_end) * page->block_div;
    return x >= (uint64_t)0 - MA_BLOCK_WINDOW;
}

/* ---- malloc ---- */

static inline void *ma_page_pop(ma_page *page)
{
    ma_block *b = page->free;
    if (ma_unlikely(b == NULL))
        return NULL;
    ma_block *next = ma_link_decode(page, b->link);
    /* A decoded link that leaves the 2 MiB window of the page was not
     * written by us: stop before following it. */
    if (MAPALLOC_CHECKS && ma_unlikely((((uintptr_t)next ^ (uintptr_t)b) >> 21) != 0) && next != NULL)
        ma_page_corrupt(page, b);
    page->free = next;
    if (MAPALLOC_CHECKS)
        b->tag = 0;
    page->used++;
    return b;
}

/* The page's next never-used block, handed out as it is: no free-list link
 * is written or read, so the block is first touched by its caller. Only
 * while nothing freed waits in the page (freed blocks are reused first) and
 * the page is in use (a kept page must be committed first). No free tag
 * needs clearing: blocks past capacity never had one under the page's
 * current keys. NULL: the slow path decides. */
static inline void *ma_page_take_fresh(ma_page *page)
{
    if (page->capacity >= page->reserved || page->local_free != NULL || page->kept ||
        (atomic_load_explicit(&page->thread_free, memory_order_relaxed) & ~MA_TF_STATE_MASK) != 0)
        return NULL;
    void *b = page->carved_end;
    page->carved_end += page->block_size;
    page->capacity++;
    page->used++;
    return b;
}

/* The page of heap that serves size (size <= MA_LARGE_THRESHOLD). */
static inline ma_page *ma_heap_page_for(ma_heap *heap, size_t size)
{
    if (ma_likely(size <= MA_DIRECT_MAX))
        return heap->direct[(size + MA_SMALL_STEP - 1) >> MA_SMALL_STEP_SHIFT];
    return heap->pages[ma_size_class(size)];
}

static inline void *ma_malloc_inline(size_t size)
{
    ma_heap *heap = ma_tls_heap;
    ma_page *page;
    if (ma_likely(size <= MA_DIRECT_MAX))
        page = heap->direct[(size + MA_SMALL_STEP - 1) >> MA_SMALL_STEP_SHIFT];
    else if (size <= MA_LARGE_THRESHOLD)
        page = heap->pages[ma_size_class(size)];
    else
        return ma_malloc_large_path(size);
    void *b = ma_page_pop(page);
    if (ma_likely(b != NULL))
        return b;
    return ma_malloc_generic(size);
}

/* ---- free ---- */

/* The page of a block that is live, or an abort naming the misuse. */
static inline ma_page *ma_page_of_live_block(void *p)
{
    uintptr_t u = (uintptr_t)p;
    ma_page *page = ma_page_of(u);
    if (ma_unlikely(!ma_page_has_block(page, u)))
        ma_free_invalid(p);
    if (MAPALLOC_CHECKS && ma_unlikely(((ma_block *)p)->tag == ma_block_tag(page, p)))
        ma_fatal("double free of", p);
    return page;
}

/* heap: the calling thread's heap that may own the page (its ordinary heap,
 * or its heap in the block's arena). */
static inline void ma_free_tagged(ma_heap *heap, ma_page *page, ma_block *b, uintptr_t tag)
{
    if (ma_likely(atomic_load_explicit(&page->heap, memory_order_relaxed) == heap)) {
        b->link = ma_link_encode(page, page->local_free);
        if (MAPALLOC_CHECKS)
            b->tag = tag;
        page->local_free = b;
        if (ma_unlikely(--page->used < page->free_trigger))
            ma_heap_page_free_slow(heap, page);
    } else {
        ma_page_free_remote(page, b);
    }
}

/* The misuse exits are plain calls that never return, not noreturn ones,
 * so that the compiler makes them tail jumps and the fast path keeps no
 * stack frame. */
static inline void ma_free_inline(void *p)
{
    uintptr_t u = (uintptr_t)p;
    if (ma_unlikely(!ma_in_fast_region(u))) {
        ma_free_nonregion(p, 0, 0);
        return;
    }
    ma_page *page = ma_page_of(u);
    if (MAPALLOC_CHECKS && ma_unlikely(!ma_page_has_block(page, u))) {
        ma_report_invalid_free(p);
        return;
    }
    uintptr_t tag = ma_block_tag(page, p);
    if (MAPALLOC_CHECKS && ma_unlikely(((ma_block *)p)->tag == tag)) {
        ma_report_double_free(p);
        return;
    }
    ma_free_tagged(ma_tls_heap, page, p, tag);
}

#endif
