/* The fast paths of malloc and free, read top to bottom. Everything rare
 * (first use, an exhausted page, a remote owner, a large block, a misuse)
 * leaves through one predictable branch into a noinline function.
 *
 * malloc(small): one TLS load, one table load, one test that the head of
 * the page's free list is a block of the page's region (an empty list
 * fails it too), pop it (decode its link), clear its free tag, count.
 * free: one load of the page map gives the block's page (or no page: a
 * large block, or not ours); check the address is a block of the
 * page and is not already free (its tag); if the page's owner is this
 * thread, push on its local list and count down, else leave for the remote
 * path (heap.c). About 44 instructions for a pair (malloc's 18, free's 25),
 * counted by bench/run.py --instructions. */
#ifndef MA_ALLOC_H
#define MA_ALLOC_H

#include "heap.h"
#include "page.h"
#include "region.h"

/* The slow ends, in api.c, the one file that includes this header. */
static MA_NOINLINE void *ma_malloc_generic(size_t size, const ma_page *page);
static MA_NOINLINE void *ma_malloc_large_path(size_t size);
static MA_NOINLINE void ma_free_nonregion(void *p, size_t expect_size, size_t expect_align);
/* It never returns, but the compiler must not know it: a call it knows to
 * be noreturn is never a tail jump, and the fast path would pay for a
 * stack frame. */
static MA_OPAQUE void ma_report_double_free(const void *p);

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
    void *b = ma_page_take(page);
    if (ma_likely(b != NULL))
        return b;
    /* The page goes along for its class; as an argument it also lives in
     * a register other than the return value's, which saves a move. */
    return ma_malloc_generic(size, page);
}

static inline void ma_free_tagged(ma_page *page, ma_block *b, uintptr_t tag)
{
    if (ma_likely(atomic_load_explicit(&page->owner, memory_order_relaxed) == ma_thread_id()))
        ma_heap_free_local(page, b, tag);
    else
        ma_heap_free_remote(page, b);
}

/* An address that is no block of a page (ma_empty_page has none) leaves for
 * ma_free_nonregion: a large block, or a misuse. The misuse exits are plain
 * calls that never return, not noreturn ones, so that the compiler makes
 * them tail jumps and the fast path keeps no stack frame. */
static inline void ma_free_inline(void *p)
{
    uintptr_t u = (uintptr_t)p;
    ma_page *page = ma_page_lookup(u);
    if (ma_unlikely(!ma_page_has_block(page, u))) {
        ma_free_nonregion(p, 0, 0);
        return;
    }
    uintptr_t tag = ma_block_tag(page);
    if (MAPALLOC_CHECKS && ma_unlikely(((ma_block *)p)->tag == tag)) {
        ma_report_double_free(p);
        return;
    }
    ma_free_tagged(page, p, tag);
}

#endif
