/* Thread heaps.
 *
 * A thread starts on ma_empty_heap, whose every table entry is the empty
 * page: its first malloc fails the fast path's one test and lands here,
 * where the thread gets a heap of its own. So the fast path never asks
 * "is this thread set up?".
 *
 * Per class a heap keeps a queue of pages that may have free blocks; a page
 * found full leaves its queue and asks (page.c) for a notice from the first
 * thread that frees into it. Empty pages are given back to their region; the
 * slices stay resident (dirty) until the heap has more than dirty_max_kb of
 * them or they have waited decay_ms, then they are purged in one pass.
 * Purging is driven by the heap's own page traffic: an idle process is
 * never woken up.
 *
 * Heap structures come from the OS in chunks and are never unmapped, so a
 * stale pointer to a heap (in a page being abandoned) is never a wild one. */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "alloc.h"

#define EMPTY_DIRECT_INIT [0 ... MA_DIRECT_COUNT - 1] = &ma_empty_page
#define EMPTY_PAGES_INIT [0 ... MA_CLASS_COUNT - 1] = &ma_empty_page

ma_page ma_empty_page;
ma_heap ma_empty_heap = {.direct = {EMPTY_DIRECT_INIT}, .pages = {EMPTY_PAGES_INIT}};
MA_THREAD_LOCAL ma_heap *ma_tls_heap = &ma_empty_heap;

ma_spinlock ma_heap_lock;
static ma_heap *heap_pool;
static ma_heap *all_heaps;

ma_heap *ma_heap_list(void)
{
    return all_heaps;
}

#ifndef MA_HAVE_THREAD_POINTER
const void *ma_thread_id(void)
{
    return &ma_tls_heap;
}
#endif
static pthread_key_t heap_key;
static _Atomic int heap_key_state; /* 0 none, 1 creating, 2 ready */

#define HEAP_CHUNK ((size_t)256 << 10)

/* ---- the page queues, and the tables the fast path reads ---- */

/* Makes the fast path's tables point at the first page of class c. */
static void queue_publish(ma_heap *heap, unsigned c)
{
    ma_page *first = heap->queues[c].first ? heap->queues[c].first : &ma_empty_page;
    if (ma_secure)
        first = &ma_empty_page; /* every malloc goes through secure.c */
    heap->pages[c] = first;
    size_t size = ma_class_size(c);
    if (size <= MA_DIRECT_MAX) {
        size_t lo = c == 0 ? 0 : ma_class_size(c - 1) / MA_SMALL_STEP + 1;
        for (size_t i = lo; i <= size / MA_SMALL_STEP; i++)
            heap->direct[i] = first;
    }
}

static void queue_remove(ma_heap *heap, ma_page *page)
{
    ma_page_queue *q = &heap->queues[page->class_idx];
    if (page->prev)
        page->prev->next = page->next;
    else
        q->first = page->next;
    if (page->next)
        page->next->prev = page->prev;
    else
        q->last = page->prev;
    page->next = page->prev = NULL;
    if (q->first != heap->pages[page->class_idx])
        queue_publish(heap, page->class_idx);
}

static void queue_push_front(ma_heap *heap, ma_page *page)
{
    ma_page_queue *q = &heap->queues[page->class_idx];
    page->prev = NULL;
    page->next = q->first;
    if (q->first)
        q->first->prev = page;
    else
        q->last = page;
    q->first = page;
    queue_publish(heap, page->class_idx);
}

static void queue_push_back(ma_heap *heap, ma_page *page)
{
    ma_page_queue *q = &heap->queues[page->class_idx];
    page->next = NULL;
    page->prev = q->last;
    if (q->last)
        q->last->next = page;
    else
        q->first = page;
    q->last = page;
    if (q->first == page)
        queue_publish(heap, page->class_idx);
}

/* ---- giving pages back, decay and purge ---- */

static void page_release(ma_heap *heap, ma_page *page)
{
    ma_region *r = ma_page_region(page);
    if (ma_secure)
        ma_os_unguard(ma_page_start(page) + ((size_t)page->slices << MA_SLICE_SHIFT) - MA_GUARD_SIZE,
                      MA_GUARD_SIZE);
    if (r->arena && !page->kept)
        ma_arena_uncommit(r->arena, (size_t)page->slices << MA_SLICE_SHIFT);
    ma_region_free_slices(r, page->first_slice, page->slices, (uint32_t)ma_clock_ms());
    ma_page_uncarve(page);
    page->slices = 0;
    page->free = page->local_free = NULL;
    heap->dirty_bytes += (size_t)page->reserved * page->block_size;
}

static void heap_unlink_region(ma_heap *heap, ma_region *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        heap->regions = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->next = r->prev = NULL;
}

static void heap_link_region(ma_heap *heap, ma_region *r)
{
    r->prev = NULL;
    r->next = heap->regions;
    if (heap->regions)
        heap->regions->prev = r;
    heap->regions = r;
    atomic_store_explicit(&r->heap, heap, memory_order_release);
}

static void unretain(ma_heap *heap, ma_page *page)
{
    page->retained = 0;
    page->free_trigger = 1;
    size_t bytes = (size_t)page->capacity * page->block_size;
    heap->retained_bytes = heap->retained_bytes > bytes ? heap->retained_bytes - bytes : 0;
}

/* Gives back what has been unused for at least min_age_ms: retained empty
 * pages that saw no malloc or free since they were retired, then dirty
 * slices freed that long ago; empty regions are unmapped, but one when
 * keep_one (the next page needs no mmap); an arena keeps its regions until
 * reset or destroy. Returns the bytes given back. */
static size_t heap_purge(ma_heap *heap, uint32_t min_age_ms, bool keep_one)
{
    uint32_t now = (uint32_t)ma_clock_ms();
    for (unsigned c = 0; c < MA_CLASS_COUNT; c++) {
        ma_page *page = heap->queues[c].first;
        if (page == NULL || !page->retained)
            continue;
        if (page->used != 0) { /* in use again */
            unretain(heap, page);
        } else if (page->free != page->retired_free || page->local_free != page->retired_local) {
            page->retired_free = page->free; /* used since: idle from now */
            page->retired_local = page->local_free;
            page->retired_ms = now;
            if (min_age_ms == 0) {
                unretain(heap, page);
                queue_remove(heap, page);
                page_release(heap, page);
            }
        } else if ((uint32_t)(now - page->retired_ms) >= min_age_ms) {
            unretain(heap, page); /* its blocks are all back: none in thread_free */
            queue_remove(heap, page);
            page_release(heap, page);
        }
    }
    size_t purged = 0, left = 0;
    bool kept_empty = false;
    for (ma_region *r = heap->regions, *next; r; r = next) {
        next = r->next;
        purged += ma_region_purge(r, now, min_age_ms, &left);
        if (ma_region_is_empty(r) && r->dirty_slices == 0 && heap->arena == NULL) {
            if (kept_empty || !keep_one) {
                heap_unlink_region(heap, r);
                purged += MA_REGION_SIZE;
                ma_region_release(r);
                continue;
            }
            kept_empty = true;
        }
    }
    heap->dirty_bytes = left;
    return purged;
}

/* Driven by the heap's own traffic (its slow paths), never by a timer: at
 * most one pass per half decay period. Past dirty_max_kb of empty memory the
 * heap does not wait: it gives back what has been idle for an eighth of the
 * decay (so memory that a busy program reuses at once is not purged only to
 * be faulted in again), and everything past eight times that. */
static void heap_maybe_purge(ma_heap *heap)
{
    size_t empty = heap->dirty_bytes + heap->retained_bytes;
    if (empty == 0)
        return;
    uint64_t now = ma_clock_ms();
    uint64_t decay = (uint64_t)ma_option(MA_OPT_DECAY_MS);
    size_t cap = (size_t)ma_option(MA_OPT_DIRTY_MAX_KB) << 10;
    if (empty > cap) {
        /* At most one such pass per clock tick: a producer whose pages all
         * empty at once would otherwise rescan the same young slices on
         * every slow path. */
        if (empty > 8 * cap || now != heap->overcap_pass_ms) {
            heap->overcap_pass_ms = now;
            heap_purge(heap, empty > 8 * cap ? 0 : (uint32_t)(decay / 8), true);
        }
        return;
    }
    if (now < heap->next_purge_ms)
        return;
    heap->next_purge_ms = now + decay / 2;
    heap_purge(heap, (uint32_t)decay, true);
}

/* An empty page: keep it if it is its class's only page (a thread that
 * mallocs and frees one block in a loop must not map and purge each time),
 * counted so that decay and the dirty limit reach it. */
static void page_empty(ma_heap *heap, ma_page *page)
{
    if (page->in_full || page->notify_pending)
        return; /* it comes back through heap->notify; handled there */
    if (heap->queues[page->class_idx].first == page && page->next == NULL) {
        /* While retained, its frees stay on the fast path (trigger 0). */
        if (!page->retained)
            heap->retained_bytes += (size_t)page->capacity * page->block_size;
        page->retained = 1;
        page->free_trigger = 0;
        page->retired_ms = (uint32_t)ma_clock_ms();
        page->retired_free = page->free;
        page->retired_local = page->local_free;
        heap_maybe_purge(heap);
        return;
    }
    queue_remove(heap, page);
    page_release(heap, page);
    heap_maybe_purge(heap);
}

/* The owner's free fell out of the fast path: the page became empty, or it
 * was full and out of its queue. A full page goes back at the end of its
 * queue: at the front, with its one free block, it would be full again two
 * mallocs later, and a class whose pages are nearly all live (a server's
 * steady state) would move pages out and back for every block freed. */
void ma_heap_page_free_slow(ma_heap *heap, ma_page *page)
{
    if (page->in_full && !page->notify_pending) {
        if (ma_page_unfull(page)) {
            page->in_full = 0;
            queue_push_back(heap, page);
        } else {
            page->notify_pending = 1;
        }
    }
    page->free_trigger = 1;
    if (page->used == 0)
        page_empty(heap, page);
}

/* Full pages that another thread freed into come back into their queues. */
static void heap_take_notices(ma_heap *heap)
{
    if (atomic_load_explicit(&heap->notify, memory_order_relaxed) == NULL)
        return;
    ma_page *page = atomic_exchange_explicit(&heap->notify, NULL, memory_order_acquire);
    while (page) {
        ma_page *next = page->notify_next;
        page->notify_pending = 0;
        if (page->in_full) {
            page->in_full = 0;
            page->free_trigger = 1;
            queue_push_front(heap, page);
        }
        ma_page_collect(page);
        if (page->used == 0)
            page_empty(heap, page);
        page = next;
    }
}

/* ---- new pages: from owned regions, adopted ones, or a new region ---- */

void ma_heap_adopt_region(ma_heap *heap, ma_region *r)
{
    heap_link_region(heap, r);
    for (unsigned i = 1; i < MA_REGION_SLICES; i++) {
        ma_page *page = &r->pages[i];
        if (page->slices == 0 || page->first_slice != i)
            continue;
        ma_page_adopt(page, heap);
        ma_page_collect(page);
        if (page->used == 0)
            page_release(heap, page);
        else
            queue_push_back(heap, page);
    }
}

static ma_page *page_in_region(ma_heap *heap, ma_region *r, unsigned c)
{
    bool dirty;
    size_t bytes = (size_t)ma_class_slices(c) << MA_SLICE_SHIFT;
    int first = ma_region_alloc_slices(r, ma_class_slices(c), &dirty);
    if (first < 0)
        return NULL;
    if (dirty)
        heap->dirty_bytes = heap->dirty_bytes > bytes ? heap->dirty_bytes - bytes : 0;
    ma_page *page = &r->pages[first];
    if (!ma_page_init(page, r, (unsigned)first, c)) {
        ma_region_free_slices(r, (unsigned)first, ma_class_slices(c), (uint32_t)ma_clock_ms());
        return NULL;
    }
    atomic_store_explicit(&page->heap, heap, memory_order_relaxed);
    return page;
}

static ma_page *page_in_owned_regions(ma_heap *heap, unsigned c)
{
    for (ma_region *r = heap->regions; r; r = r->next) {
        ma_page *page = page_in_region(heap, r, c);
        if (page)
            return page;
    }
    return NULL;
}

/* The pages an arena reset kept that nothing used since go back to their
 * regions: before the arena maps more, they are free slices like any other.
 * True if there were any. */
static bool heap_release_kept(ma_heap *heap)
{
    bool any = false;
    for (unsigned c = 0; c < MA_CLASS_COUNT; c++)
        for (ma_page *page = heap->queues[c].first, *next; page; page = next) {
            next = page->next;
            if (page->kept) {
                queue_remove(heap, page);
                page_release(heap, page);
                any = true;
            }
        }
    return any;
}

static ma_page *heap_page_new_in(ma_heap *heap, unsigned c)
{
    ma_page *page = page_in_owned_regions(heap, c);
    if (page)
        return page;
    if (heap->arena && heap_release_kept(heap) && (page = page_in_owned_regions(heap, c)) != NULL)
        return page;
    for (ma_region *r; (r = ma_region_take_abandoned(heap->arena)) != NULL;) {
        ma_heap_adopt_region(heap, r);
        if ((page = page_in_region(heap, r, c)) != NULL)
            return page;
    }
    ma_region *r = heap->arena ? ma_arena_new_region(heap->arena) : ma_region_new(ma_os_default_flags());
    if (r == NULL)
        return NULL;
    heap_link_region(heap, r);
    return page_in_region(heap, r, c);
}

/* An arena's limit is checked once, before any region is looked at, so a
 * refused request maps nothing. */
static ma_page *heap_page_new(ma_heap *heap, unsigned c)
{
    size_t bytes = (size_t)ma_class_slices(c) << MA_SLICE_SHIFT;
    if (heap->arena && !ma_arena_commit(heap->arena, bytes))
        return NULL;
    ma_page *page = heap_page_new_in(heap, c);
    if (page == NULL && heap->arena)
        ma_arena_uncommit(heap->arena, bytes);
    return page;
}

/* Set by the thread-exit handler: from then on this thread makes no heap. */
static MA_THREAD_LOCAL bool thread_exiting;

/* A free into a page of an exited thread's region: adopt the region, with a
 * heap made for the purpose if this thread never allocated, unless it is
 * exiting itself (it would only abandon it again). An arena's regions wait
 * for a heap of their arena. */
bool ma_heap_reclaim_on_free(ma_page *page)
{
    ma_region *r = ma_page_region(page);
    if (r->arena != NULL || thread_exiting)
        return false;
    ma_heap *heap = ma_heap_get_or_create();
    if (heap == NULL || !ma_region_take_if_abandoned(r))
        return false;
    ma_heap_adopt_region(heap, r);
    return true;
}

/* A page an arena reset kept in place is used again: from now on it counts
 * against the arena's limit. */
static bool page_recommit(ma_heap *heap, ma_page *page)
{
    if (!ma_arena_commit(heap->arena, (size_t)page->slices << MA_SLICE_SHIFT))
        return false;
    page->kept = 0;
    return true;
}

/* A page of class c with a free block, at the front of its queue. */
static ma_page *heap_find_page(ma_heap *heap, unsigned c)
{
    for (ma_page *page = heap->queues[c].first, *next; page; page = next) {
        next = page->next;
        if (page->kept && !page_recommit(heap, page))
            return NULL;
        if (page->retained)
            unretain(heap, page);
        if (page->free == NULL)
            ma_page_collect(page);
        /* Carve more while the page is small, even when frees came back: a
         * loop that frees what it allocates would otherwise cycle through
         * the first few blocks and land here every few calls. */
        if (page->free == NULL || page->capacity < 256)
            ma_page_extend(page);
        if (page->free != NULL) {
            if (heap->queues[c].first != page) {
                queue_remove(heap, page);
                queue_push_front(heap, page);
            }
            return page;
        }
        queue_remove(heap, page);
        page->in_full = 1;
        if (!page->notify_pending) {
            if (ma_page_set_full(page)) {
                page->free_trigger = 0xffff;
            } else { /* remote frees arrived meanwhile */
                page->in_full = 0;
                ma_page_collect(page);
                queue_push_front(heap, page);
                return page;
            }
        }
    }
    heap_maybe_purge(heap);
    ma_page *page = heap_page_new(heap, c);
    if (page == NULL)
        return NULL;
    ma_page_extend(page);
    queue_push_front(heap, page);
    return page;
}

/* ---- heaps: creation, thread exit ---- */

static void thread_done(void *value)
{
    ma_heap *heap = value;
    thread_exiting = true;
    ma_arena_thread_exit();
    if (heap == NULL || heap == &ma_empty_heap)
        return;
    ma_tls_heap = &ma_empty_heap;
    ma_heap_abandon(heap);
}

/* pthread_key_create allocates nothing for the first keys of a process; it
 * runs once, on the first heap. */
static void ensure_key(void)
{
    if (atomic_load_explicit(&heap_key_state, memory_order_acquire) == 2)
        return;
    int expected = 0;
    if (atomic_compare_exchange_strong(&heap_key_state, &expected, 1)) {
        if (pthread_key_create(&heap_key, thread_done) == 0)
            atomic_store_explicit(&heap_key_state, 2, memory_order_release);
        else
            atomic_store_explicit(&heap_key_state, 0, memory_order_release);
        return;
    }
    while (atomic_load_explicit(&heap_key_state, memory_order_acquire) == 1)
        ma_cpu_relax();
}

static ma_heap *heap_pool_take(void)
{
    for (;;) {
        ma_lock(&ma_heap_lock);
        ma_heap *heap = heap_pool;
        if (heap)
            heap_pool = heap->pool_next;
        ma_unlock(&ma_heap_lock);
        if (heap)
            return heap;
        uint8_t *chunk = ma_os_map(HEAP_CHUNK, MA_OS_PAGE, ma_os_default_flags() & ~(unsigned)MA_MAP_HUGE);
        if (chunk == NULL)
            return NULL;
        size_t stride = (sizeof(ma_heap) + 63) & ~(size_t)63;
        ma_lock(&ma_heap_lock);
        for (size_t off = 0; off + stride <= HEAP_CHUNK; off += stride) {
            ma_heap *h = (ma_heap *)(chunk + off);
            h->pool_next = heap_pool;
            heap_pool = h;
            h->all_next = all_heaps;
            all_heaps = h;
        }
        ma_unlock(&ma_heap_lock);
    }
}

/* Every queue empty: the fast path's tables name the empty page. */
static void heap_clear_queues(ma_heap *heap)
{
    for (unsigned i = 0; i < MA_DIRECT_COUNT; i++)
        heap->direct[i] = &ma_empty_page;
    for (unsigned c = 0; c < MA_CLASS_COUNT; c++) {
        heap->pages[c] = &ma_empty_page;
        heap->queues[c].first = heap->queues[c].last = NULL;
    }
    atomic_store_explicit(&heap->notify, NULL, memory_order_relaxed);
}

void ma_heap_reset(ma_heap *heap)
{
    heap_clear_queues(heap);
    heap->regions = NULL;
    heap->dirty_bytes = 0;
    heap->retained_bytes = 0;
    heap->next_purge_ms = 0;
    heap->overcap_pass_ms = 0;
}

/* The pages of r that heap used since the last reset stay, emptied, in
 * their queues; those it left unused go back to r. */
static void region_keep_pages(ma_heap *heap, ma_region *r)
{
    for (unsigned i = 1; i < MA_REGION_SLICES; i++) {
        if (r->slice_page[i] != i) /* one cache line says where pages start */
            continue;
        ma_page *page = &r->pages[i];
        if (page->kept) {
            page_release(heap, page);
            continue;
        }
        ma_page_restart(page);
        page->kept = 1;
        queue_push_back(heap, page);
    }
}

void ma_heap_reset_keep(ma_heap *heap)
{
    heap_clear_queues(heap);
    heap->retained_bytes = 0;
    for (ma_region *r = heap->regions, *next; r; r = next) {
        next = r->next;
        region_keep_pages(heap, r);
        if (ma_region_is_empty(r)) {
            heap_unlink_region(heap, r);
            atomic_store_explicit(&r->heap, NULL, memory_order_relaxed);
        }
    }
}

/* A fork that caught another thread creating the key leaves the child
 * with nobody to finish: it makes one of its own. */
void ma_heap_fork_child(void)
{
    int creating = 1;
    atomic_compare_exchange_strong(&heap_key_state, &creating, 0);
}

/* Asks for thread_done at this thread's exit. The value is the thread's
 * heap, or the empty heap for a thread that only used arenas. */
void ma_heap_register_thread_exit(void)
{
    ensure_key();
    if (atomic_load_explicit(&heap_key_state, memory_order_acquire) == 2)
        pthread_setspecific(heap_key, ma_tls_heap);
}

ma_heap *ma_heap_get_or_create(void)
{
    ma_heap *heap = ma_tls_heap;
    if (heap != &ma_empty_heap)
        return heap;
    ma_init();
    heap = heap_pool_take();
    if (heap == NULL)
        return NULL;
    ma_heap_reset(heap);
    heap->arena = NULL;
    ma_tls_heap = heap;
    ma_heap_register_thread_exit();
    return heap;
}

ma_heap *ma_heap_new_for_arena(ma_arena *arena)
{
    ma_init();
    ma_heap *heap = heap_pool_take();
    if (heap == NULL)
        return NULL;
    ma_heap_reset(heap);
    heap->arena_generation = atomic_load_explicit(&arena->generation, memory_order_relaxed);
    heap->arena_next = heap->arena_prev = heap->thread_next = NULL;
    /* The owner before the arena: a thread that finds this heap as an
     * arena's hot heap (arena.c) reads them in the other order. */
    __atomic_store_n(&heap->owner, ma_thread_id(), __ATOMIC_RELAXED);
    __atomic_store_n(&heap->arena, arena, __ATOMIC_RELEASE);
    return heap;
}

void ma_heap_return_to_pool(ma_heap *heap)
{
    ma_heap_reset(heap);
    ma_stats_fold(heap);
    __atomic_store_n(&heap->arena, NULL, __ATOMIC_RELEASE); /* read by the arena's fast path */
    ma_lock(&ma_heap_lock);
    heap->pool_next = heap_pool;
    heap_pool = heap;
    ma_unlock(&ma_heap_lock);
}

void *ma_heap_malloc_generic(ma_heap *heap, unsigned class_idx)
{
    if (ma_unlikely(heap == &ma_empty_heap)) {
        heap = ma_heap_get_or_create();
        if (heap == NULL)
            return NULL;
    }
    heap_take_notices(heap);
    heap_maybe_purge(heap);
    ma_page *page = heap_find_page(heap, class_idx);
    if (page == NULL)
        return NULL;
    return ma_page_pop(page);
}

/* The thread is gone: its pages stop asking for notices, empty pages go
 * back, and regions that still hold live blocks wait for a new owner. */
void ma_heap_abandon(ma_heap *heap)
{
    for (ma_region *r = heap->regions; r; r = r->next)
        for (unsigned i = 1; i < MA_REGION_SLICES; i++) {
            ma_page *page = &r->pages[i];
            if (page->slices != 0 && page->first_slice == i) {
                ma_page_set_never(page);
                atomic_store_explicit(&page->heap, NULL, memory_order_relaxed);
            }
        }
    /* Notices already pushed name pages we are about to hand over. */
    atomic_store_explicit(&heap->notify, NULL, memory_order_relaxed);
    for (ma_region *r = heap->regions, *next; r; r = next) {
        next = r->next;
        for (unsigned i = 1; i < MA_REGION_SLICES; i++) {
            ma_page *page = &r->pages[i];
            if (page->slices == 0 || page->first_slice != i)
                continue;
            page->in_full = page->notify_pending = page->retained = 0;
            page->free_trigger = 1;
            page->next = page->prev = NULL;
            ma_page_collect(page);
            if (page->used == 0)
                page_release(heap, page);
        }
        ma_region_purge(r, 0, 0, NULL);
        r->next = r->prev = NULL;
        if (ma_region_is_empty(r) && r->arena == NULL)
            ma_region_release(r);
        else
            ma_region_abandon(r); /* an arena keeps its regions */
    }
    ma_heap_return_to_pool(heap);
}

size_t ma_heap_trim(ma_heap *heap)
{
    if (heap == &ma_empty_heap)
        return 0;
    heap_take_notices(heap);
    for (unsigned c = 0; c < MA_CLASS_COUNT; c++)
        for (ma_page *page = heap->queues[c].first; page; page = page->next)
            ma_page_collect(page);
    /* Every empty page goes back, not only the retained ones. */
    for (unsigned c = 0; c < MA_CLASS_COUNT; c++)
        for (ma_page *page = heap->queues[c].first, *next; page; page = next) {
            next = page->next;
            if (page->used == 0) {
                if (page->retained)
                    unretain(heap, page);
                queue_remove(heap, page);
                page_release(heap, page);
            }
        }
    return heap_purge(heap, 0, false);
}
