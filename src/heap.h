/* Thread heaps (heap.c): what one thread allocates from in one arena.
 *
 * A thread starts on ma_empty_heap, whose every table entry is the empty
 * page: its first malloc fails the fast path's one test and lands in the
 * slow path, where the thread gets a heap of its own in the default arena.
 * So the fast path never asks "is this thread set up?". A thread that uses
 * an explicit arena gets a heap in it too, found from the arena (its hot
 * heap) or through a small per-thread cache.
 *
 * Per class a heap keeps a queue of pages that may have free blocks; a page
 * found full leaves its queue for the heap's full list and asks for a notice
 * from the first thread that frees into it. Pages come from the heap's
 * arena and go back to it when they empty (but one per class, retained, for
 * a while); when the thread exits, pages with live blocks are abandoned to
 * the arena, where a heap that frees into them or needs a page adopts them. */
#ifndef MA_HEAP_H
#define MA_HEAP_H

#include "arena.h"
#include "internal.h"
#include "page.h"
#include "prof.h"

extern ma_heap ma_empty_heap;
extern MA_THREAD_LOCAL ma_heap *ma_tls_heap;
extern ma_spinlock ma_heap_lock; /* the pool of heaps (fork takes it) */

/* The page of heap that serves size (size <= MA_LARGE_THRESHOLD). */
static inline ma_page *ma_heap_page_for(ma_heap *heap, size_t size)
{
    if (ma_likely(size <= MA_DIRECT_MAX))
        return heap->direct[(size + MA_SMALL_STEP - 1) >> MA_SMALL_STEP_SHIFT];
    return heap->pages[ma_size_class(size)];
}

/* A block of class c when the page at hand is dry: notices, a page with
 * room, an abandoned one, a new one. heap may be the empty heap (the
 * thread's default heap is made then). NULL: no memory, or the arena's
 * limit. */
void *ma_heap_malloc_generic(ma_heap *heap, unsigned class_idx);
/* The owner's free of a block left the fast path: the page emptied, or it
 * was full and out of its queue. */
void ma_heap_page_free_slow(ma_heap *heap, ma_page *page);
/* The owner's free: onto the page's local list; the slow path when the
 * page empties or is out of its queue (free_trigger, in over's sign). */
static inline void ma_heap_free_local(ma_page *page, ma_block *b, uintptr_t tag)
{
    b->link = ma_link_encode(page, page->local_free);
    /* A store of its own: paired with the link's, the compiler would make
     * the two one store from a vector register, three instructions more. */
    if (MAPALLOC_CHECKS)
        *(volatile uintptr_t *)&b->tag = tag;
    page->local_free = b;
    if (ma_unlikely(--page->over < 0))
        ma_heap_page_free_slow(atomic_load_explicit(&page->heap, memory_order_relaxed), page);
}

/* A free by a thread that is not the page's owner: into an abandoned page
 * (adopted), or another thread's (a remote push, and the notice when it
 * takes one); and every free of the secure profile, checked here. */
void ma_heap_free_remote(ma_page *page, ma_block *b);
/* The calling thread's remote frees that wait in its batch go to their
 * page. */
void ma_heap_flush_remote(void);
/* Every empty page of the heap goes back to its arena. Returns the bytes. */
size_t ma_heap_trim(ma_heap *heap);

/* ---- explicit arenas ---- */

/* An arena's hot heap is one thread's heap in it, reached from the arena
 * itself: that thread needs no thread-local storage to find its heap (in the
 * shared library every thread-local access is a call). A heap detached from
 * the arena (its thread exited, the arena was destroyed) has arena NULL, so
 * it never matches. The arena is read before the owner, the order in which
 * a heap taken anew from the pool is published. */
static inline bool ma_heap_is_hot(const ma_arena *a, const ma_heap *heap)
{
    return __atomic_load_n(&heap->arena, __ATOMIC_ACQUIRE) == a &&
           __atomic_load_n(&heap->owner, __ATOMIC_RELAXED) == ma_thread_id();
}

/* The calling thread's heap in the explicit arena a, made on first use
 * (aborts for a destroyed arena); the empty heap when there is no memory. */
ma_heap *ma_heap_of_arena_slow(ma_arena *a);
static inline ma_heap *ma_heap_of_arena(ma_arena *a)
{
    if (ma_likely(a != NULL)) {
        ma_heap *hot = atomic_load_explicit(&a->hot_heap, memory_order_acquire);
        if (ma_likely(ma_heap_is_hot(a, hot)))
            return hot;
    }
    return ma_heap_of_arena_slow(a);
}

/* Reset: every heap of the arena forgets its blocks; without give_back each
 * keeps the pages it used since the last reset, emptied, in its queues (the
 * rest go back to the arena). Destroy: every heap leaves the arena. */
void ma_heaps_reset(ma_arena *a, bool give_back);
void ma_heaps_leave(ma_arena *a);

/* ---- accounts and fork ---- */

/* Remote frees made and not yet collected (still counted as out). */
void ma_heaps_pending(size_t *blocks, size_t *bytes);
/* In a forked child: what the threads that are gone left half done. */
void ma_heap_fork_child(void);

#endif
