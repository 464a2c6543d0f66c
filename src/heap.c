/* Thread heaps: see heap.h.
 *
 * Heap structures come from the OS in chunks and are never unmapped, so a
 * stale pointer to a heap (a page's owner read by a remote freer, an
 * arena's hot heap) is never a wild one. */
#include <pthread.h>
#include <string.h>

#include "heap.h"
#include "purge.h"

#define EMPTY_DIRECT_INIT [0 ... MA_DIRECT_COUNT - 1] = &ma_empty_page
#define EMPTY_PAGES_INIT [0 ... MA_CLASS_COUNT - 1] = &ma_empty_page

ma_heap ma_empty_heap = {.direct = {EMPTY_DIRECT_INIT}, .pages = {EMPTY_PAGES_INIT}};
MA_THREAD_LOCAL ma_heap *ma_tls_heap = &ma_empty_heap;

ma_spinlock ma_heap_lock;
static ma_heap *heap_pool;
static ma_heap *all_heaps;

#define HEAP_CHUNK ((size_t)256 << 10)
/* Empty pages a heap retains, at most: what an idle thread may hold. */
#define RETAIN_MAX ((size_t)1 << 20)

/* Counts of heaps gone back to the pool. */
static _Atomic size_t folded_frees, folded_free_bytes, folded_collected, folded_collected_bytes;

static void register_thread_exit(void);
static pthread_key_t heap_key;
static _Atomic int heap_key_state; /* 0 none, 1 creating, 2 ready */
/* Set by the thread-exit handler: from then on this thread makes no heap. */
static MA_THREAD_LOCAL bool thread_exiting;

/* A thread's remote frees into one page of the default arena wait in a
 * batch, pushed as one list (one atomic exchange, and one cache line taken
 * from the owner) when the thread frees into another page, when REMOTE_BATCH
 * blocks wait, or when it takes a slow path of malloc, trims, or exits. A
 * batch's blocks count as freed at once; they stay out of their owner's
 * reach meanwhile, at most one batch per thread. An explicit arena's blocks
 * are pushed at once: a reset must find none on the way. */
#define REMOTE_BATCH 64
struct remote_batch {
    ma_page *page;
    ma_block *head, *tail;
    unsigned count;
    uint32_t block_size;
    bool exit_flushes; /* the thread-exit handler is registered */
};
static MA_THREAD_LOCAL struct remote_batch batch;


static ma_heap *default_heap(void);

/* ---- counting remote frees ---- */

static bool is_default(const ma_arena *a)
{
    return a == &ma_default_arena;
}

static void count_batched(size_t bytes);

/* A remote free into an explicit arena's page: counted by the thread that
 * frees (count_batched), and in the arena's own pending count for its
 * statistics. */
static void count_remote_free(const ma_page *page)
{
    count_batched(page->block_size);
    ma_arena *a = ma_page_region(page)->arena;
    atomic_fetch_add_explicit(&a->pending_frees, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&a->pending_bytes, page->block_size, memory_order_relaxed);
}

static void count_collected(ma_heap *heap, const ma_page *page, size_t count)
{
    if (count == 0)
        return;
    size_t bytes = count * page->block_size;
    ma_count_set(&heap->collected, heap->collected + count);
    ma_count_set(&heap->collected_bytes, heap->collected_bytes + bytes);
    if (!is_default(heap->arena)) {
        atomic_fetch_sub_explicit(&heap->arena->pending_frees, count, memory_order_relaxed);
        atomic_fetch_sub_explicit(&heap->arena->pending_bytes, bytes, memory_order_relaxed);
    }
}

static void collect(ma_heap *heap, ma_page *page)
{
    count_collected(heap, page, ma_page_collect(page));
}

/* ---- the page queues, the full list, and the tables the fast path reads ---- */

/* Makes the fast path's tables point at page for class c. */
static void table_set(ma_heap *heap, unsigned c, ma_page *page)
{
    heap->pages[c] = page;
    size_t size = ma_class_size(c);
    if (size <= MA_DIRECT_MAX) {
        size_t lo = c == 0 ? 0 : ma_class_size(c - 1) / MA_SMALL_STEP + 1;
        for (size_t i = lo; i <= size / MA_SMALL_STEP; i++)
            heap->direct[i] = page;
    }
}

/* Pages the heap profiler counts reach the fast path only through its
 * handout (prof.c), at the end of the malloc slow path. */
static bool prof_counts(const ma_heap *heap)
{
    return ma_unlikely(ma_prof_pages) && is_default(heap->arena);
}

/* Makes the fast path's tables point at the first page of class c. */
static void queue_publish(ma_heap *heap, unsigned c)
{
    ma_page *first = heap->queues[c].first ? heap->queues[c].first : &ma_empty_page;
    if (ma_secure) {
        first = &ma_empty_page; /* every malloc goes through secure.c */
    } else if (prof_counts(heap)) {
        ma_prof_settle(heap, c);
        first = &ma_empty_page;
    }
    table_set(heap, c, first);
}

static void queue_remove(ma_heap *heap, ma_page *page)
{
    ma_queue_unlink(&heap->queues[page->class_idx], page);
    if (heap->queues[page->class_idx].first != heap->pages[page->class_idx])
        queue_publish(heap, page->class_idx);
}

static void queue_push_front(ma_heap *heap, ma_page *page)
{
    ma_queue_push_front(&heap->queues[page->class_idx], page);
    queue_publish(heap, page->class_idx);
}

static void queue_push_back(ma_heap *heap, ma_page *page)
{
    ma_page_queue *q = &heap->queues[page->class_idx];
    ma_queue_push_back(q, page);
    if (q->first == page)
        queue_publish(heap, page->class_idx);
}

/* Every queue empty: the fast path's tables name the empty page. */
static void heap_clear(ma_heap *heap)
{
    for (unsigned i = 0; i < MA_DIRECT_COUNT; i++)
        heap->direct[i] = &ma_empty_page;
    for (unsigned c = 0; c < MA_CLASS_COUNT; c++) {
        heap->pages[c] = &ma_empty_page;
        heap->queues[c].first = heap->queues[c].last = NULL;
    }
    heap->full.first = heap->full.last = NULL;
    atomic_store_explicit(&heap->notify, NULL, memory_order_relaxed);
    heap->retained_bytes = 0;
    heap->next_purge_ms = heap->next_hollow_ms = 0;
    heap->has_kept = false;
}

/* A full page leaves its queue and asks for a notice; false when remote
 * blocks arrived meanwhile (collected: the page stays in its queue). */
static bool page_to_full(ma_heap *heap, ma_page *page)
{
    if (!page->notify_pending && !ma_page_set_full(page)) {
        collect(heap, page);
        return false;
    }
    ma_page_check_full(page);
    queue_remove(heap, page);
    page->in_full = 1;
    ma_page_set_trigger(page, page->notify_pending ? 1 : MA_TRIGGER_FULL);
    ma_queue_push_back(&heap->full, page);
    return true;
}

static void page_from_full(ma_heap *heap, ma_page *page, bool front)
{
    ma_queue_unlink(&heap->full, page);
    page->in_full = 0;
    ma_page_set_trigger(page, 1);
    if (front)
        queue_push_front(heap, page);
    else
        queue_push_back(heap, page);
}

/* ---- empty pages: retained, or back to the arena ---- */

static size_t page_bytes(const ma_page *page)
{
    return (size_t)page->slices << MA_SLICE_SHIFT;
}

static void unretain(ma_heap *heap, ma_page *page)
{
    page->retained = 0;
    ma_page_set_trigger(page, 1);
    size_t bytes = page_bytes(page);
    heap->retained_bytes = heap->retained_bytes > bytes ? heap->retained_bytes - bytes : 0;
}

static void page_leave(ma_heap *heap, ma_page *page)
{
    if (page->retained)
        unretain(heap, page);
    queue_remove(heap, page);
    ma_arena_page_free(heap->arena, page);
}

/* Retained pages that saw no malloc or free for min_age_ms go back to the
 * arena (all of them when min_age_ms is 0). */
static void release_retained(ma_heap *heap, uint32_t min_age_ms)
{
    uint32_t now = (uint32_t)ma_clock_ms();
    for (unsigned c = 0; c < MA_CLASS_COUNT && heap->retained_bytes; c++) {
        ma_page *page = heap->queues[c].first;
        if (page == NULL || !page->retained)
            continue;
        if (ma_page_used(page) != 0) { /* in use again */
            unretain(heap, page);
        } else if (page->free != page->retired_free) {
            page->retired_free = page->free; /* used since: idle from now */
            page->retired_ms = now;
            if (min_age_ms == 0)
                page_leave(heap, page);
        } else if ((uint32_t)(now - page->retired_ms) >= min_age_ms) {
            page_leave(heap, page); /* its blocks are all back: none in thread_free */
        }
    }
}

/* ---- hollow blocks ----
 *
 * A page of a big class that one live block holds keeps every free block
 * around it resident: a program that frees most of its 20 KiB buffers and
 * keeps one in each page holds them all, though no empty page or dirty
 * slice is there to purge (gcc's cc1 and CPython held about 1 MiB so at
 * their peaks, bench/real/probe.py). So the
 * owner looks at its queued pages of blocks of hollow_kb or more at most
 * every decay_ms, and in a page that no malloc or free touched since the
 * last look, gives back the whole OS pages of each free block, all but the
 * first, which holds the block's link and tag: the block stays on its free
 * list, checked as any other, and reads as zero when it is used again
 * (MADV_DONTNEED even with purge_free: no statistic could follow lazily
 * freed bytes inside blocks that the fast path hands out). The cost is one
 * madvise per free block of a page left alone for a whole decay, and the
 * faults of such a block when it is used again. MAP_HUGETLB regions are skipped: their
 * pages go back only whole. */

static void page_empty(ma_heap *heap, ma_page *page);

/* A page is hollowed or made sparse once no block came or went between two
 * passes (its lists are as the last pass left them), so that blocks in use
 * again soon are not purged: a page in use at every pass (a program's
 * working set) costs a compare. True: the page is due, once per idle
 * period. */
static bool page_idle(ma_heap *heap, ma_page *page)
{
    bool idle = page->free == page->hollow_free && page->local_free == NULL &&
                (atomic_load_explicit(&page->thread_free, memory_order_relaxed) & ~MA_TF_STATE_MASK) == 0;
    if (!idle) {
        collect(heap, page);
        page->hollow_free = page->free;
        page->hollow = 0;
        if (ma_page_used(page) == 0) /* other threads' frees emptied it */
            page_empty(heap, page);
        return false;
    }
    if (page->hollow)
        return false;
    page->hollow = 1;
    return true;
}

/* Its free blocks give back their whole OS pages past each one's first. */
static void hollow_page(ma_page *page)
{
    unsigned n = 0;
    for (ma_block *b = page->free; b != NULL; b = ma_link_decode(page, b->link)) {
        if (!ma_page_has_block(page, (uintptr_t)b) || ++n > page->reserved)
            ma_page_corrupt(page, b);
        uintptr_t lo = ((uintptr_t)b + sizeof *b + MA_OS_PAGE - 1) & ~(MA_OS_PAGE - 1);
        uintptr_t hi = ((uintptr_t)b + page->block_size) & ~(MA_OS_PAGE - 1);
        if (hi > lo)
            ma_os_purge_now((void *)lo, hi - lo);
    }
}

/* Its sparse blocks go back on its free list, which ran dry; its frees
 * take the fast path again. */
static void page_unsparsify(ma_heap *heap, ma_page *page)
{
    ma_page_unsparsify(page);
    ma_page_own(page, heap, heap->owner);
}

/* At most every decay_ms: every queued page that holds live blocks (an
 * empty one goes back whole, through retention and the arena's purge), if
 * it is idle: those of the hollowed classes are hollowed, those of the
 * classes below made sparse (page.c; never in the secure profile). */
static void heap_maybe_hollow(ma_heap *heap)
{
    size_t min = (size_t)ma_option(MA_OPT_HOLLOW_KB) << 10;
    if (min == 0 || prof_counts(heap)) /* the profiler's pages keep their lists as handed out */
        return;
    uint64_t now = ma_clock_ms();
    if (now < heap->next_hollow_ms)
        return;
    heap->next_hollow_ms = now + (uint64_t)ma_option(MA_OPT_DECAY_MS);
    unsigned first = min > MA_LARGE_THRESHOLD ? MA_CLASS_COUNT : ma_size_class(min);
    for (unsigned c = ma_secure ? first : 0; c < MA_CLASS_COUNT; c++)
        for (ma_page *page = heap->queues[c].first, *next; page; page = next) {
            next = page->next; /* page may leave the queue */
            if (ma_page_used(page) == 0 || page->kept || page->retained ||
                (ma_page_region(page)->map_flags & MA_MAP_HUGE) != 0 || !page_idle(heap, page))
                continue;
            if (c >= first) {
                hollow_page(page);
            } else {
                ma_page_sparsify(page);
                page->hollow_free = page->free; /* the list it left: idle still */
            }
        }
}

/* Driven by the heap's own traffic (its slow paths): its retained pages at
 * most every half decay, its free big blocks every decay, and its arena's
 * dirty slices when they are due. */
static void heap_maybe_purge(ma_heap *heap)
{
    if (heap->retained_bytes) {
        uint64_t now = ma_clock_ms();
        if (now >= heap->next_purge_ms) {
            uint64_t decay = (uint64_t)ma_option(MA_OPT_DECAY_MS);
            heap->next_purge_ms = now + decay / 2;
            release_retained(heap, (uint32_t)decay);
        }
    }
    heap_maybe_hollow(heap);
    ma_arena_maybe_purge(heap->arena);
}

/* An empty page: kept if it is its class's only page (a thread that
 * mallocs and frees one block in a loop must not set a page up each time),
 * while the heap retains less than RETAIN_MAX, counted so that the decay
 * reaches it. */
static void page_empty(ma_heap *heap, ma_page *page)
{
    if (page->in_full || page->notify_pending)
        return; /* it comes back through the notice stack; handled there */
    if (heap->queues[page->class_idx].first == page && page->next == NULL &&
        (page->retained || heap->retained_bytes + page_bytes(page) <= RETAIN_MAX)) {
        /* While retained, its frees stay on the fast path (trigger 0). */
        if (!page->retained)
            heap->retained_bytes += page_bytes(page);
        page->retained = 1;
        ma_page_set_trigger(page, 0);
        page->retired_ms = (uint32_t)ma_clock_ms();
        page->retired_free = page->free;
        heap_maybe_purge(heap);
        return;
    }
    page_leave(heap, page);
    heap_maybe_purge(heap);
}

/* A full page goes back at the end of its queue: at the front, with its
 * one free block, it would be full again two mallocs later, and a class
 * whose pages are nearly all live (a server's steady state) would move
 * pages out and back for every block freed. */
void ma_heap_page_free_slow(ma_heap *heap, ma_page *page)
{
    if (page->in_full && !page->notify_pending) {
        if (ma_page_unfull(page))
            page_from_full(heap, page, false);
        else
            page->notify_pending = 1;
    }
    ma_page_set_trigger(page, 1);
    if (ma_page_used(page) == 0) {
        page_empty(heap, page);
        ma_purger_kick();
    }
}

/* ---- notices ---- */

/* Puts page on its owner's notice stack (the remote freer that took the
 * page's notice does it, then ends the notice in the page layer). */
static void deliver_notice(ma_heap *owner, ma_page *page)
{
    ma_page *head = atomic_load_explicit(&owner->notify, memory_order_relaxed);
    do {
        page->notify_next = head;
    } while (!atomic_compare_exchange_weak_explicit(&owner->notify, &head, page, memory_order_release,
                                                    memory_order_relaxed));
}

/* Full pages that another thread freed into come back into their queues. */
static void take_notices(ma_heap *heap)
{
    if (atomic_load_explicit(&heap->notify, memory_order_relaxed) == NULL)
        return;
    ma_page *page = atomic_exchange_explicit(&heap->notify, NULL, memory_order_acquire);
    while (page) {
        ma_page *next = page->notify_next;
        page->notify_pending = 0;
        if (page->in_full)
            page_from_full(heap, page, true);
        collect(heap, page);
        if (ma_page_used(page) == 0)
            page_empty(heap, page);
        page = next;
    }
}

/* ---- adopting abandoned pages ---- */

/* The page, out of its arena's abandoned list, joins heap: in its queue if
 * it has room, in its full list if not, back to the arena if it is empty.
 * True when it is in the queue. */
static bool adopt(ma_heap *heap, ma_page *page)
{
    ma_page_adopt(page, heap, heap->owner);
    collect(heap, page);
    if (ma_page_used(page) == 0) {
        ma_arena_page_free(heap->arena, page);
        return false;
    }
    queue_push_front(heap, page);
    if (page->free == NULL && page->sparse_mask != 0)
        page_unsparsify(heap, page);
    if (page->free != NULL || page->fresh_left != 0)
        return true;
    return !page_to_full(heap, page);
}

/* ---- finding a page with room ---- */

/* A page an arena reset kept in place is used again: from now on it counts
 * against the arena's limit. */
static bool page_recommit(ma_heap *heap, ma_page *page)
{
    if (!ma_arena_commit(heap->arena, page_bytes(page)))
        return false;
    page->kept = 0;
    page->fresh_left = (uint16_t)(page->reserved - (page->carved_end - ma_page_start(page)) / page->block_size);
    return true;
}

/* The pages an arena reset kept that nothing used since go back to the
 * arena: before it maps more, they are free slices like any other. */
static void release_kept(ma_heap *heap)
{
    heap->has_kept = false;
    for (unsigned c = 0; c < MA_CLASS_COUNT; c++)
        for (ma_page *page = heap->queues[c].first, *next; page; page = next) {
            next = page->next;
            if (page->kept)
                page_leave(heap, page);
        }
}

/* A new page of class c: from the arena's free slices (the kept pages'
 * among them) before it maps more. Every kept page may be in use again
 * already, so a heap that had some still maps when there is no room. */
static ma_page *heap_page_new(ma_heap *heap, unsigned c)
{
    ma_page *page = NULL;
    if (heap->has_kept) {
        page = ma_arena_page_new(heap->arena, c, &heap->region_hint, false);
        if (page == NULL)
            release_kept(heap);
    }
    if (page == NULL)
        page = ma_arena_page_new(heap->arena, c, &heap->region_hint, true);
    if (page != NULL)
        ma_page_own(page, heap, heap->owner);
    return page;
}

/* A page is small while it has carved fewer than 256 blocks and fewer than
 * CARVE_SMALL_BYTES of them. The list a loop of mallocs and frees cycles
 * through is what the page has carved: bounded in bytes, the block that
 * malloc hands out is one freed recently, still in the cache. Bounded only
 * by the count, pages of 1 KiB blocks cycled through all 64 of theirs, and
 * under larson 70% of malloc's time was the load of the head block's link
 * (perf); with the bound larson's peak RSS is 0.82x, the suite's 0.92x,
 * for the same time. */
#define CARVE_SMALL_BYTES ((size_t)16 << 10)
static bool page_is_small(const ma_page *page)
{
    unsigned carved = ma_page_capacity(page);
    return carved < 256 && (size_t)carved * page->block_size < CARVE_SMALL_BYTES;
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
            collect(heap, page);
        if (page->free == NULL && page->sparse_mask != 0)
            page_unsparsify(heap, page);
        /* Carve more while the page is small, even when frees came back: a
         * loop that frees what it allocates would otherwise cycle through
         * the first few blocks and land here every few calls. And when
         * fewer than 8 blocks came back: where blocks come back about as
         * fast as they go out, the list keeps the length it had at the last
         * collection, and once that has drifted down to a few, every few
         * mallocs end here (strhash: 278,000 slow paths in 1.6 million
         * mallocs, 37,000 with this). */
        if (page->free == NULL || page_is_small(page) || ma_page_capacity(page) - ma_page_used(page) < 8)
            ma_page_extend(page);
        if (page->free != NULL) {
            if (heap->queues[c].first != page) {
                queue_remove(heap, page);
                queue_push_front(heap, page);
            }
            return page;
        }
        if (!page_to_full(heap, page)) { /* remote frees arrived meanwhile */
            if (heap->queues[c].first != page) {
                queue_remove(heap, page);
                queue_push_front(heap, page);
            }
            return page;
        }
    }
    heap_maybe_purge(heap);
    for (ma_page *page; (page = ma_arena_take_abandoned(heap->arena, c)) != NULL;)
        if (adopt(heap, page)) {
            if (page->free == NULL)
                ma_page_extend(page);
            return page;
        }
    ma_page *page = heap_page_new(heap, c);
    if (page == NULL)
        return NULL;
    ma_page_extend(page);
    queue_push_front(heap, page);
    return page;
}

/* The page goes to the fast path with the profiler's limit (its local list
 * taken in first, so that its free list's length is known). */
static void *prof_handout(ma_heap *heap, ma_page *page)
{
    if (page->local_free != NULL)
        collect(heap, page);
    void *b = ma_prof_handout(heap, page);
    if (heap->pages[page->class_idx] != page) /* else the fast path drained it and keeps it */
        table_set(heap, page->class_idx, page);
    return b;
}

void *ma_heap_malloc_generic(ma_heap *heap, unsigned class_idx)
{
    if (ma_unlikely(heap == &ma_empty_heap)) {
        heap = default_heap();
        if (heap == NULL)
            return NULL;
    }
    bool prof = prof_counts(heap);
    if (prof)
        ma_prof_settle(heap, class_idx);
    ma_heap_flush_remote();
    take_notices(heap);
    ma_page *page = heap_find_page(heap, class_idx);
    ma_purger_kick(); /* pages may have gone back to the arena */
    if (page == NULL)
        return NULL;
    if (prof)
        return prof_handout(heap, page);
    return ma_page_take_checked(page);
}

/* ---- heaps: the pool, creation ---- */

static ma_carver heap_chunk = MA_CARVER(ma_heap);

/* A heap from the pool, or else the next one of the newest chunk. A heap
 * is more than 4 KiB, so a chunk's heaps are made one at a time, as they
 * are needed: linking all of them into the pool at once put 256 KiB of
 * them in every process's resident memory at its first malloc. */
static ma_heap *heap_pool_take(void)
{
    for (;;) {
        ma_lock(&ma_heap_lock);
        ma_heap *heap = heap_pool;
        if (heap) {
            heap_pool = heap->pool_next;
        } else if ((heap = ma_carve(&heap_chunk)) != NULL) {
            heap->all_next = all_heaps;
            all_heaps = heap;
        }
        ma_unlock(&ma_heap_lock);
        if (heap)
            return heap;
        uint8_t *chunk = ma_os_map(HEAP_CHUNK, MA_OS_PAGE, ma_os_default_flags() & ~(unsigned)MA_MAP_HUGE);
        if (chunk == NULL)
            return NULL;
        ma_lock(&ma_heap_lock);
        bool used = ma_carver_refill(&heap_chunk, chunk, HEAP_CHUNK);
        ma_unlock(&ma_heap_lock);
        if (!used)
            ma_os_unmap(chunk, HEAP_CHUNK);
    }
}

static void fold_counts(ma_heap *heap)
{
    atomic_fetch_add_explicit(&folded_frees, heap->remote_frees, memory_order_relaxed);
    atomic_fetch_add_explicit(&folded_free_bytes, heap->remote_free_bytes, memory_order_relaxed);
    atomic_fetch_add_explicit(&folded_collected, heap->collected, memory_order_relaxed);
    atomic_fetch_add_explicit(&folded_collected_bytes, heap->collected_bytes, memory_order_relaxed);
    ma_count_set(&heap->remote_frees, 0);
    ma_count_set(&heap->remote_free_bytes, 0);
    ma_count_set(&heap->collected, 0);
    ma_count_set(&heap->collected_bytes, 0);
}

static void heap_to_pool(ma_heap *heap)
{
    heap_clear(heap);
    fold_counts(heap);
    __atomic_store_n(&heap->arena, NULL, __ATOMIC_RELEASE); /* read by the arena's fast path */
    ma_lock(&ma_heap_lock);
    heap->pool_next = heap_pool;
    heap_pool = heap;
    ma_unlock(&ma_heap_lock);
}

static void arena_link_heap(ma_arena *a, ma_heap *heap)
{
    heap->arena_prev = NULL;
    heap->arena_next = a->heaps;
    if (a->heaps)
        a->heaps->arena_prev = heap;
    a->heaps = heap;
}

static void arena_unlink_heap(ma_arena *a, ma_heap *heap)
{
    if (heap->arena_prev)
        heap->arena_prev->arena_next = heap->arena_next;
    else
        a->heaps = heap->arena_next;
    if (heap->arena_next)
        heap->arena_next->arena_prev = heap->arena_prev;
    heap->arena_next = heap->arena_prev = NULL;
}

/* A heap of the calling thread in arena a, linked in; NULL when there is no
 * memory, or the arena was destroyed meanwhile (dead). */
static ma_heap *heap_new(ma_arena *a, bool *dead)
{
    ma_heap *heap = heap_pool_take();
    if (heap == NULL)
        return NULL;
    heap_clear(heap);
    heap->region_hint.region = NULL;
    heap->arena_generation = atomic_load_explicit(&a->generation, memory_order_relaxed);
    heap->thread_next = NULL;
    /* The owner before the arena: a thread that finds this heap as an
     * arena's hot heap reads them in the other order. */
    __atomic_store_n(&heap->owner, ma_thread_id(), __ATOMIC_RELAXED);
    ma_lock(&a->lock);
    *dead = atomic_load_explicit(&a->magic, memory_order_relaxed) != MA_ARENA_LIVE;
    if (!*dead) {
        arena_link_heap(a, heap);
        __atomic_store_n(&heap->arena, a, __ATOMIC_RELEASE);
    }
    ma_unlock(&a->lock);
    if (*dead) {
        heap_to_pool(heap);
        return NULL;
    }
    return heap;
}

/* ---- thread exit ---- */

static void thread_done(void *value);

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

/* Asks for thread_done at this thread's exit. The value is the thread's
 * default heap, or the empty heap for a thread that only used explicit
 * arenas. */
static void register_thread_exit(void)
{
    ensure_key();
    if (atomic_load_explicit(&heap_key_state, memory_order_acquire) == 2)
        pthread_setspecific(heap_key, ma_tls_heap);
}

/* Each page of the heap, in its queues and its full list. */
#define FOR_EACH_PAGE(heap, page, next, body)                                                      \
    for (unsigned c_ = 0; c_ <= MA_CLASS_COUNT; c_++) {                                            \
        ma_page_queue *q_ = c_ < MA_CLASS_COUNT ? &(heap)->queues[c_] : &(heap)->full;              \
        for (ma_page *page = q_->first, *next; page; page = next) {                                \
            next = page->next;                                                                     \
            body                                                                                   \
        }                                                                                          \
    }

/* The thread is gone: its pages stop asking for notices (after which none
 * reaches its notice stack), empty ones go back to the arena, and those
 * that still hold live blocks wait there for a new owner. */
static void heap_abandon(ma_heap *heap)
{
    ma_arena *a = heap->arena;
    FOR_EACH_PAGE(heap, page, next, {
        ma_page_set_never(page);
        ma_page_own(page, NULL, NULL);
    })
    atomic_store_explicit(&heap->notify, NULL, memory_order_relaxed);
    FOR_EACH_PAGE(heap, page, next, {
        page->in_full = page->notify_pending = page->retained = 0;
        ma_page_set_trigger(page, 1);
        page->next = page->prev = NULL;
        collect(heap, page);
        if (ma_page_used(page) == 0)
            ma_arena_page_free(a, page);
        else
            ma_arena_abandon(a, page);
    })
    ma_arena_maybe_purge(a);
}

/* The heap leaves its arena (unless the arena was destroyed meanwhile, and
 * its pages with it) and goes back to the pool. While it hands its pages
 * back the arena knows, so that a reset or destroy waits for it. */
static void heap_leave(ma_heap *heap)
{
    ma_arena *a = __atomic_load_n(&heap->arena, __ATOMIC_ACQUIRE);
    if (a != NULL) {
        ma_lock(&a->lock);
        bool member = heap->arena == a;
        if (member) {
            arena_unlink_heap(a, heap);
            a->leaving++;
        }
        ma_unlock(&a->lock);
        if (member) {
            heap_abandon(heap);
            ma_lock(&a->lock);
            a->leaving--;
            ma_unlock(&a->lock);
        }
    }
    heap_to_pool(heap);
}

/* ---- explicit arenas: the thread's heaps in them ---- */

#define ARENA_SLOTS 4
struct arena_slot {
    ma_arena *arena;
    uint64_t generation;
    ma_heap *heap;
};
/* The thread's most recently used arenas, most recent first. Empty slots
 * name a dummy that no handle equals (not NULL: a NULL handle would match). */
static ma_arena no_arena;
#define EMPTY_SLOT {&no_arena, 0, NULL}
static MA_THREAD_LOCAL struct arena_slot slots[ARENA_SLOTS] = {EMPTY_SLOT, EMPTY_SLOT, EMPTY_SLOT,
                                                               EMPTY_SLOT};
static MA_THREAD_LOCAL ma_heap *thread_heaps; /* its heaps in explicit arenas */

static void hot_heap_claim(ma_arena *a, ma_heap *heap)
{
    ma_heap *hot = atomic_load_explicit(&a->hot_heap, memory_order_acquire);
    if (hot == NULL || __atomic_load_n(&hot->arena, __ATOMIC_ACQUIRE) != a)
        atomic_compare_exchange_strong_explicit(&a->hot_heap, &hot, heap, memory_order_release,
                                                memory_order_relaxed);
}

/* Heaps whose arena was destroyed (by any thread) go back to the pool. */
static void thread_list_prune(void)
{
    for (ma_heap **h = &thread_heaps; *h;) {
        ma_heap *heap = *h;
        if (__atomic_load_n(&heap->arena, __ATOMIC_ACQUIRE) == NULL) {
            *h = heap->thread_next;
            heap_to_pool(heap);
        } else {
            h = &heap->thread_next;
        }
    }
}

/* The thread's heap in a, if it has one (no new heap is made). */
static ma_heap *thread_heap_in(ma_arena *a)
{
    uint64_t generation = atomic_load_explicit(&a->generation, memory_order_acquire);
    for (ma_heap *h = thread_heaps; h; h = h->thread_next)
        if (h->arena == a && h->arena_generation == generation)
            return h;
    return NULL;
}

ma_heap *ma_heap_of_arena_slow(ma_arena *a)
{
    ma_arena_check_live(a);
    uint64_t generation = atomic_load_explicit(&a->generation, memory_order_acquire);
    for (unsigned i = 0; i < ARENA_SLOTS; i++)
        if (slots[i].arena == a && slots[i].generation == generation) {
            struct arena_slot hit = slots[i];
            memmove(&slots[1], &slots[0], i * sizeof slots[0]);
            slots[0] = hit;
            return hit.heap;
        }
    ma_init();
    thread_list_prune();
    ma_heap *heap = thread_heap_in(a);
    if (heap == NULL) {
        bool dead;
        heap = heap_new(a, &dead);
        if (dead)
            ma_arena_dead(a);
        if (heap == NULL) /* no memory: the empty heap's pages make every pop fail */
            return &ma_empty_heap;
        heap->thread_next = thread_heaps;
        thread_heaps = heap;
        register_thread_exit();
    }
    hot_heap_claim(a, heap);
    memmove(&slots[1], &slots[0], (ARENA_SLOTS - 1) * sizeof slots[0]);
    slots[0] = (struct arena_slot){a, generation, heap};
    return heap;
}

static void thread_done(void *value)
{
    ma_heap *heap = value;
    thread_exiting = true;
    ma_heap_flush_remote();
    for (unsigned i = 0; i < ARENA_SLOTS; i++)
        slots[i] = (struct arena_slot)EMPTY_SLOT;
    while (thread_heaps) {
        ma_heap *h = thread_heaps;
        thread_heaps = h->thread_next;
        heap_leave(h);
    }
    if (heap != NULL && heap != &ma_empty_heap) {
        ma_tls_heap = &ma_empty_heap;
        heap_leave(heap);
    }
    ma_purger_kick(); /* its empty pages went back to the arena */
}

/* The calling thread's heap in the default arena, made on first use; NULL
 * when there is no memory for one. */
static ma_heap *default_heap(void)
{
    ma_heap *heap = ma_tls_heap;
    if (heap != &ma_empty_heap)
        return heap;
    ma_init();
    bool dead;
    heap = heap_new(&ma_default_arena, &dead);
    if (heap == NULL)
        return NULL;
    ma_tls_heap = heap;
    register_thread_exit();
    batch.exit_flushes = true;
    return heap;
}

/* ---- frees that leave the fast path ---- */

/* A free into an abandoned page: the freeing thread's heap in the page's
 * arena adopts it (a heap made for the purpose in the default arena if this
 * thread never allocated, unless it is exiting: it would only abandon the
 * page again). True when the page is that heap's now. */
static bool adopt_on_free(ma_page *page)
{
    ma_arena *a = ma_page_region(page)->arena;
    ma_heap *heap;
    if (is_default(a))
        heap = thread_exiting ? NULL : default_heap();
    else
        heap = thread_heap_in(a);
    if (heap == NULL || !ma_arena_claim(a, page))
        return false;
    adopt(heap, page);
    return true;
}

/* The count blocks head..tail into another thread's page, and the notice
 * if the push took one. */
static void push_remote(ma_page *page, ma_block *head, ma_block *tail, unsigned count)
{
    if (ma_page_push_remote(page, head, tail, count)) {
        deliver_notice(atomic_load_explicit(&page->heap, memory_order_acquire), page);
        ma_page_notice_done(page);
    }
}

void ma_heap_flush_remote(void)
{
    ma_page *page = batch.page;
    if (page == NULL)
        return;
    batch.page = NULL;
    push_remote(page, batch.head, batch.tail, batch.count);
}

/* Counted as freed at once, in the thread's heap (plain counters); a
 * thread without one (it is exiting) counts in the atomics of the pool. */
static void count_batched(size_t bytes)
{
    ma_heap *me = ma_tls_heap;
    if (ma_likely(me != &ma_empty_heap)) {
        ma_count_set(&me->remote_frees, me->remote_frees + 1);
        ma_count_set(&me->remote_free_bytes, me->remote_free_bytes + bytes);
    } else {
        atomic_fetch_add_explicit(&folded_frees, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&folded_free_bytes, bytes, memory_order_relaxed);
    }
}

static MA_NOINLINE void flush_full_batch(void)
{
    ma_heap_flush_remote();
}

/* The next block of the batch: what its first block looked up (abandoned?
 * which arena?) holds for it, and nothing of the page but its keys is read,
 * so the owner's cache lines stay put. */
static inline void batch_append(ma_page *page, ma_block *b)
{
    b->link = ma_link_encode_shared(page, batch.head);
    batch.head = b;
    count_batched(batch.block_size);
    if (++batch.count == REMOTE_BATCH)
        flush_full_batch(); /* a call, not in line: the common case saves no register */
}

/* A free into a page of the calling thread's that the fast path did not
 * take: a free of one of its sparse blocks is a double free. */
static void free_own(ma_page *page, ma_block *b, uintptr_t tag)
{
    if (page->sparse_mask != 0 && ma_page_block_sparse(page, b))
        ma_fatal("double free of", b);
    ma_heap_free_local(page, b, tag);
}

/* A remote free that starts a batch, one of the secure profile, or one
 * into a sparse page. */
static MA_NOINLINE void free_remote_first(ma_page *page, ma_block *b)
{
    uintptr_t tag = ma_block_tag(page);
    /* The secure profile's pages and sparse pages have no owner for the
     * fast path to match: their owner's frees come here too, checked
     * before they go on a list. Only theirs read the owning heap. */
    if (ma_secure)
        ma_secure_check_free(page, b);
    if (atomic_load_explicit(&page->owner, memory_order_relaxed) == MA_OWNER_CHECKED) {
        ma_heap *owner = atomic_load_explicit(&page->heap, memory_order_relaxed);
        if (owner != NULL && __atomic_load_n(&owner->owner, __ATOMIC_RELAXED) == ma_thread_id()) {
            free_own(page, b, tag);
            return;
        }
    }
    b->tag = tag;
    if (batch.page == page) {
        batch_append(page, b);
        return;
    }
    /* Nobody owns the page: take it over, or blocks freed into it would
     * wait for a heap that needs a page of its class. Done before the push,
     * so our live block keeps the page from being emptied and given back
     * by another adopter meanwhile. */
    uintptr_t tf = atomic_load_explicit(&page->thread_free, memory_order_relaxed);
    if ((tf & MA_TF_STATE_MASK) == MA_TF_NEVER && adopt_on_free(page)) {
        free_own(page, b, tag);
        return;
    }
    if (!is_default(ma_page_region(page)->arena)) {
        count_remote_free(page);
        push_remote(page, b, b, 1);
        return;
    }
    ma_heap_flush_remote();
    /* A thread that frees into other threads' pages gets a heap (it counts
     * there, without atomics), and its exit flushes its batch. */
    if (ma_tls_heap == &ma_empty_heap && !thread_exiting)
        default_heap();
    if (!batch.exit_flushes) {
        batch.exit_flushes = true;
        register_thread_exit();
    }
    batch.page = page;
    batch.head = batch.tail = b;
    batch.count = 1;
    batch.block_size = page->block_size;
    count_batched(batch.block_size);
}

/* The common case, a block of the page the batch is for, takes no stack
 * frame: with the rest in line it took 42 instructions, 14 of them saving
 * and restoring registers that only the rest needs; 26 now. */
void ma_heap_free_remote(ma_page *page, ma_block *b)
{
    if (ma_likely(batch.page == page && !ma_secure)) {
        b->tag = ma_block_tag(page);
        batch_append(page, b);
        return;
    }
    free_remote_first(page, b);
}

/* ---- trim ---- */

size_t ma_heap_trim(ma_heap *heap)
{
    ma_heap_flush_remote();
    if (heap == &ma_empty_heap)
        return 0;
    for (unsigned c = 0; prof_counts(heap) && c < MA_CLASS_COUNT; c++)
        queue_publish(heap, c); /* the profiler's count, before pages take their frees in */
    take_notices(heap);
    size_t bytes = 0;
    FOR_EACH_PAGE(heap, page, next, {
        if (!page->in_full)
            collect(heap, page);
    })
    for (unsigned c = 0; c < MA_CLASS_COUNT; c++)
        for (ma_page *page = heap->queues[c].first, *next; page; page = next) {
            next = page->next;
            if (ma_page_used(page) == 0) {
                bytes += page_bytes(page);
                page_leave(heap, page);
            }
        }
    return bytes;
}

/* ---- explicit arenas: reset and destroy ---- */

/* Waits until no exiting thread is handing pages back to a, and returns
 * with a's lock held. */
static void lock_quiet(ma_arena *a)
{
    for (;;) {
        ma_lock(&a->lock);
        if (a->leaving == 0)
            return;
        ma_unlock(&a->lock);
        ma_cpu_relax();
    }
}

/* The pages of heap used since the last reset stay, emptied, in their
 * queues, counted as committed again only when used; those it left unused
 * a whole period (still kept) go onto *unused for the arena. */
static void heap_keep_pages(ma_heap *heap, ma_page **unused)
{
    ma_arena *a = heap->arena;
    ma_page_queue keep = {NULL, NULL};
    FOR_EACH_PAGE(heap, page, next, {
        if (page->kept) {
            page->next = *unused;
            *unused = page;
            continue;
        }
        size_t pending = ma_page_restart(page);
        ma_page_own(page, heap, heap->owner); /* no longer sparse */
        atomic_fetch_add_explicit(&a->collected, pending, memory_order_relaxed);
        atomic_fetch_add_explicit(&a->collected_bytes, pending * page->block_size, memory_order_relaxed);
        page->kept = 1;
        ma_queue_push_back(&keep, page);
    })
    heap_clear(heap);
    for (ma_page *page = keep.first, *next; page; page = next) {
        next = page->next;
        queue_push_back(heap, page);
    }
    heap->has_kept = keep.first != NULL;
}

void ma_heaps_reset(ma_arena *a, bool give_back)
{
    ma_page *unused = NULL;
    lock_quiet(a);
    for (ma_heap *h = a->heaps; h; h = h->arena_next) {
        if (give_back)
            heap_clear(h); /* its pages go with the regions' wipe */
        else
            heap_keep_pages(h, &unused);
    }
    ma_unlock(&a->lock);
    for (ma_page *page = unused, *next; page; page = next) {
        next = page->next;
        ma_arena_page_free(a, page);
    }
    ma_arena_reset_space(a, give_back);
}

void ma_heaps_leave(ma_arena *a)
{
    lock_quiet(a);
    for (ma_heap *h = a->heaps, *next; h; h = next) {
        next = h->arena_next;
        heap_clear(h);
        h->arena_next = h->arena_prev = NULL;
        __atomic_store_n(&h->arena, NULL, __ATOMIC_RELEASE);
    }
    a->heaps = NULL;
    ma_unlock(&a->lock);
}

/* ---- accounts and fork ---- */

void ma_heaps_pending(size_t *blocks, size_t *bytes)
{
    size_t frees = atomic_load(&folded_frees), free_bytes = atomic_load(&folded_free_bytes);
    size_t collected = atomic_load(&folded_collected), collected_bytes = atomic_load(&folded_collected_bytes);
    ma_lock(&ma_heap_lock);
    for (ma_heap *h = all_heaps; h; h = h->all_next) {
        frees += ma_count_get(&h->remote_frees);
        free_bytes += ma_count_get(&h->remote_free_bytes);
        collected += ma_count_get(&h->collected);
        collected_bytes += ma_count_get(&h->collected_bytes);
    }
    ma_unlock(&ma_heap_lock);
    size_t arena_collected, arena_collected_bytes;
    ma_arenas_collected(&arena_collected, &arena_collected_bytes);
    collected += arena_collected;
    collected_bytes += arena_collected_bytes;
    *blocks = frees > collected ? frees - collected : 0;
    *bytes = free_bytes > collected_bytes ? free_bytes - collected_bytes : 0;
}

struct notice_fix {
    unsigned fixed;
};

/* A notice a vanished freer left half done: the page is on its owner's
 * notice stack if the push came before the fork; put it there if not. */
static void finish_notice(ma_page *page, void *arg)
{
    struct notice_fix *fix = arg;
    uintptr_t tf = atomic_load_explicit(&page->thread_free, memory_order_relaxed);
    if ((tf & MA_TF_STATE_MASK) != MA_TF_NOTIFYING)
        return;
    ma_heap *owner = atomic_load_explicit(&page->heap, memory_order_relaxed);
    bool pushed = owner == NULL;
    for (ma_page *p = owner ? atomic_load(&owner->notify) : NULL; p && !pushed; p = p->notify_next)
        pushed = p == page;
    if (!pushed)
        deliver_notice(owner, page);
    ma_page_notice_done(page);
    fix->fixed++;
}

static void arena_fork_child(ma_arena *a, void *arg)
{
    a->leaving = 0; /* their threads are gone */
    if (ma_page_notices_in_flight())
        ma_arena_foreach_page(a, finish_notice, arg);
}

/* The child has only the thread that forked: whatever another thread was
 * doing between two steps of a lock-free protocol, nobody will finish it.
 * Locks were all held across the fork, so no locked state is half done. */
void ma_heap_fork_child(void)
{
    int creating = 1; /* a fork that caught a thread making the key: make one anew */
    atomic_compare_exchange_strong(&heap_key_state, &creating, 0);
    struct notice_fix fix = {0};
    ma_arenas_foreach(arena_fork_child, &fix);
    ma_page_fork_child_done();
}
