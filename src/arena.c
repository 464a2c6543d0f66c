/* Explicit arenas, built from the same regions, pages and heaps as the rest.
 *
 * An arena owns its regions (mapped with its own flags) and keeps an index of
 * its large blocks. Each thread that uses an arena gets a heap of its own in
 * it, found from the arena itself (its hot heap) or through a small
 * per-thread cache, so allocation takes no lock; a free from another thread
 * is the usual atomic push into the page. Reset empties each heap's pages
 * in place for the next request (or, with RESET_RETURNS, wipes the region
 * headers and returns the memory) and unmaps the large blocks; destroy
 * unmaps everything. Both work on pages and mappings, never on blocks.
 *
 * Lock order: an arena's lock, then ma_heap_lock, ma_region_lock,
 * ma_large_lock (fork takes them in that order too). */
#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "mapalloc.h"

#define ARENA_SLOTS 4
#define ARENA_CHUNK ((size_t)64 << 10)
#define ARENA_REUSE_AFTER 64 /* destroyed arenas wait this long in the pool */

ma_spinlock ma_arena_pool_lock;
static ma_arena *fresh;                  /* never used */
static ma_arena *dead_first, *dead_last; /* destroyed, oldest first */
static size_t dead_count;
static ma_arena *all_arenas;

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
static MA_THREAD_LOCAL ma_heap *thread_heaps;

static const unsigned known_flags = MAPALLOC_ARENA_HUGE | MAPALLOC_ARENA_NORESERVE |
                                    MAPALLOC_ARENA_DEVZERO | MAPALLOC_ARENA_RESET_RETURNS;

void ma_arena_dead(const ma_arena *arena)
{
    ma_fatal("use of a destroyed arena", arena);
}

static void check_live(const ma_arena *arena)
{
    if (ma_unlikely(arena == NULL ||
                    atomic_load_explicit(&arena->magic, memory_order_acquire) != MA_ARENA_LIVE))
        ma_arena_dead(arena);
}

/* ---- arena structures ---- */

/* A destroyed arena's structure is reused only after ARENA_REUSE_AFTER
 * others, so that a stale handle keeps reading as destroyed for a while. */
static ma_arena *arena_struct_take(void)
{
    for (;;) {
        ma_lock(&ma_arena_pool_lock);
        ma_arena *a = NULL;
        if (dead_count > ARENA_REUSE_AFTER) {
            a = dead_first;
            dead_first = a->pool_next;
            if (dead_first == NULL)
                dead_last = NULL;
            dead_count--;
        } else if (fresh) {
            a = fresh;
            fresh = a->pool_next;
        }
        ma_unlock(&ma_arena_pool_lock);
        if (a)
            return a;
        uint8_t *chunk = ma_os_map(ARENA_CHUNK, MA_OS_PAGE, 0);
        if (chunk == NULL)
            return NULL;
        size_t stride = (sizeof(ma_arena) + 63) & ~(size_t)63;
        ma_lock(&ma_arena_pool_lock);
        for (size_t off = 0; off + stride <= ARENA_CHUNK; off += stride) {
            ma_arena *n = (ma_arena *)(chunk + off);
            n->all_next = all_arenas;
            all_arenas = n;
            n->pool_next = fresh;
            fresh = n;
        }
        ma_unlock(&ma_arena_pool_lock);
    }
}

static void arena_struct_give_back(ma_arena *a)
{
    ma_lock(&ma_arena_pool_lock);
    a->pool_next = NULL;
    if (dead_last)
        dead_last->pool_next = a;
    else
        dead_first = a;
    dead_last = a;
    dead_count++;
    ma_unlock(&ma_arena_pool_lock);
}

void ma_arenas_lock_all(void)
{
    ma_lock(&ma_arena_pool_lock);
    for (ma_arena *a = all_arenas; a; a = a->all_next)
        ma_lock(&a->lock);
}

void ma_arenas_unlock_all(void)
{
    for (ma_arena *a = all_arenas; a; a = a->all_next)
        ma_unlock(&a->lock);
    ma_unlock(&ma_arena_pool_lock);
}

/* ---- limit and regions ---- */

bool ma_arena_commit(ma_arena *arena, size_t bytes)
{
    size_t now = atomic_load_explicit(&arena->committed, memory_order_relaxed);
    do {
        if (arena->limit && (now + bytes > arena->limit || now + bytes < now))
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&arena->committed, &now, now + bytes,
                                                    memory_order_relaxed, memory_order_relaxed));
    size_t peak = atomic_load_explicit(&arena->peak, memory_order_relaxed);
    while (now + bytes > peak &&
           !atomic_compare_exchange_weak_explicit(&arena->peak, &peak, now + bytes,
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
    return true;
}

void ma_arena_uncommit(ma_arena *arena, size_t bytes)
{
    atomic_fetch_sub_explicit(&arena->committed, bytes, memory_order_relaxed);
}

ma_region *ma_arena_new_region(ma_arena *arena)
{
    ma_region *r = ma_region_new(arena->map_flags);
    if (r == NULL)
        return NULL;
    r->arena = arena;
    ma_lock(&arena->lock);
    r->arena_prev = NULL;
    r->arena_next = arena->regions;
    if (arena->regions)
        arena->regions->arena_prev = r;
    arena->regions = r;
    ma_unlock(&arena->lock);
    atomic_fetch_add_explicit(&arena->mapped, MA_REGION_SIZE, memory_order_relaxed);
    return r;
}

static void arena_unlink_region(ma_arena *arena, ma_region *r)
{
    if (r->arena_prev)
        r->arena_prev->arena_next = r->arena_next;
    else
        arena->regions = r->arena_next;
    if (r->arena_next)
        r->arena_next->arena_prev = r->arena_prev;
}

/* ---- the calling thread's heap in an arena ---- */

/* An arena's hot heap is one thread's heap in it, reached from the arena
 * itself: that thread needs no thread-local storage to find its heap (in the
 * shared library every thread-local access is a call). The common arena,
 * used by one thread at a time, hits it; other threads use their cache. A
 * heap detached from the arena (its thread exited, the arena was destroyed)
 * has arena NULL, so it never matches and its place may be claimed. The
 * arena is read before the owner, the order in which a heap taken anew from
 * the pool is published (ma_heap_new_for_arena). */
static inline bool hot_heap_is_mine(const ma_arena *arena, const ma_heap *heap)
{
    return __atomic_load_n(&heap->arena, __ATOMIC_ACQUIRE) == arena &&
           __atomic_load_n(&heap->owner, __ATOMIC_RELAXED) == ma_thread_id();
}

static void hot_heap_claim(ma_arena *arena, ma_heap *heap)
{
    ma_heap *hot = atomic_load_explicit(&arena->hot_heap, memory_order_acquire);
    if (__atomic_load_n(&hot->arena, __ATOMIC_ACQUIRE) != arena)
        atomic_compare_exchange_strong_explicit(&arena->hot_heap, &hot, heap, memory_order_release,
                                                memory_order_relaxed);
}

/* Heaps whose arena was destroyed (by any thread) go back to the pool. */
static void thread_list_prune(void)
{
    for (ma_heap **h = &thread_heaps; *h;) {
        ma_heap *heap = *h;
        if (__atomic_load_n(&heap->arena, __ATOMIC_ACQUIRE) == NULL) {
            *h = heap->thread_next;
            ma_heap_return_to_pool(heap);
        } else {
            h = &heap->thread_next;
        }
    }
}

ma_heap *ma_arena_heap_slow(ma_arena *arena)
{
    check_live(arena);
    uint64_t generation = atomic_load_explicit(&arena->generation, memory_order_acquire);
    thread_list_prune();
    ma_heap *heap = NULL;
    for (ma_heap *h = thread_heaps; h; h = h->thread_next)
        if (h->arena == arena && h->arena_generation == generation) {
            heap = h;
            break;
        }
    if (heap == NULL) {
        heap = ma_heap_new_for_arena(arena);
        if (heap == NULL) /* no memory: the empty heap's pages make every pop fail */
            return &ma_empty_heap;
        ma_lock(&arena->lock);
        if (atomic_load_explicit(&arena->magic, memory_order_relaxed) != MA_ARENA_LIVE) {
            ma_unlock(&arena->lock);
            ma_heap_return_to_pool(heap);
            ma_arena_dead(arena);
        }
        heap->arena_prev = NULL;
        heap->arena_next = arena->heaps;
        if (arena->heaps)
            arena->heaps->arena_prev = heap;
        arena->heaps = heap;
        ma_unlock(&arena->lock);
        heap->thread_next = thread_heaps;
        thread_heaps = heap;
        ma_heap_register_thread_exit();
    }
    hot_heap_claim(arena, heap);
    memmove(&slots[1], &slots[0], (ARENA_SLOTS - 1) * sizeof slots[0]);
    slots[0] = (struct arena_slot){arena, generation, heap};
    return heap;
}

/* The thread's cache of recent arenas, then the slow path; a hit moves to
 * the front. A destroyed arena's generation moved on, so its slot misses
 * and the slow path names the misuse. */
static MA_NOINLINE ma_heap *arena_heap_lookup(ma_arena *arena)
{
    if (arena == NULL)
        ma_arena_dead(arena);
    uint64_t generation = atomic_load_explicit(&arena->generation, memory_order_relaxed);
    for (unsigned i = 0; i < ARENA_SLOTS; i++)
        if (slots[i].arena == arena && slots[i].generation == generation) {
            struct arena_slot hit = slots[i];
            memmove(&slots[1], &slots[0], i * sizeof slots[0]);
            slots[0] = hit;
            return hit.heap;
        }
    return ma_arena_heap_slow(arena);
}

/* The calling thread's heap in the arena: its hot heap when it is ours (a
 * load and two compares), else the cache. */
static inline ma_heap *arena_heap(ma_arena *arena)
{
    if (ma_likely(arena != NULL)) {
        ma_heap *hot = atomic_load_explicit(&arena->hot_heap, memory_order_acquire);
        if (ma_likely(hot_heap_is_mine(arena, hot)))
            return hot;
    }
    return arena_heap_lookup(arena);
}

static void arena_unlink_heap(ma_arena *arena, ma_heap *heap)
{
    if (heap->arena_prev)
        heap->arena_prev->arena_next = heap->arena_next;
    else
        arena->heaps = heap->arena_next;
    if (heap->arena_next)
        heap->arena_next->arena_prev = heap->arena_prev;
    heap->arena_next = heap->arena_prev = NULL;
}

/* The thread exits: its arena heaps are abandoned into their arenas (under
 * the arena's lock, so a concurrent destroy cannot unmap what they touch). */
void ma_arena_thread_exit(void)
{
    for (unsigned i = 0; i < ARENA_SLOTS; i++)
        slots[i] = (struct arena_slot)EMPTY_SLOT;
    while (thread_heaps) {
        ma_heap *heap = thread_heaps;
        thread_heaps = heap->thread_next;
        ma_arena *arena = __atomic_load_n(&heap->arena, __ATOMIC_ACQUIRE);
        if (arena == NULL) {
            ma_heap_return_to_pool(heap);
            continue;
        }
        ma_lock(&arena->lock);
        if (heap->arena == arena) {
            arena_unlink_heap(arena, heap);
            ma_heap_abandon(heap);
            ma_unlock(&arena->lock);
        } else {
            ma_unlock(&arena->lock);
            ma_heap_return_to_pool(heap);
        }
    }
}

/* ---- create, reset, destroy ---- */

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
    ma_arena *a = arena_struct_take();
    if (a == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    unsigned map_flags = ma_os_default_flags() & ~(unsigned)(MA_MAP_HUGE | MA_MAP_NORESERVE);
    if (opt.flags & MAPALLOC_ARENA_HUGE)
        map_flags |= MA_MAP_HUGE;
    if (opt.flags & MAPALLOC_ARENA_NORESERVE)
        map_flags |= MA_MAP_NORESERVE;
    if (opt.flags & MAPALLOC_ARENA_DEVZERO)
        map_flags |= MA_MAP_DEVZERO;
    a->map_flags = map_flags;
    a->flags = opt.flags;
    a->limit = opt.limit;
    a->reserve = (opt.reserve + MA_REGION_SIZE - 1) & ~(MA_REGION_SIZE - 1);
    atomic_store(&a->committed, 0);
    atomic_store(&a->peak, 0);
    atomic_store(&a->mapped, 0);
    atomic_store(&a->pending_frees, 0);
    atomic_store(&a->pending_bytes, 0);
    a->heaps = NULL;
    a->regions = NULL;
    a->abandoned = NULL;
    a->large_count = 0;
    atomic_store_explicit(&a->hot_heap, &ma_empty_heap, memory_order_relaxed);
    atomic_fetch_add_explicit(&a->generation, 1, memory_order_release);
    atomic_store_explicit(&a->magic, MA_ARENA_LIVE, memory_order_release);
    for (size_t done = 0; done < a->reserve; done += MA_REGION_SIZE) {
        ma_region *r = ma_arena_new_region(a);
        if (r == NULL) {
            mapalloc_arena_destroy((mapalloc_arena *)a);
            errno = ENOMEM;
            return NULL;
        }
        ma_region_abandon(r); /* waits for the first heap that needs a page */
    }
    return (mapalloc_arena *)a;
}

/* Every heap of the arena forgets its pages. Lock held. */
static void detach_heaps(ma_arena *a, bool dead)
{
    for (ma_heap *h = a->heaps, *next; h; h = next) {
        next = h->arena_next;
        ma_heap_reset(h);
        if (dead) {
            h->arena_next = h->arena_prev = NULL;
            __atomic_store_n(&h->arena, NULL, __ATOMIC_RELEASE);
        }
    }
    if (dead)
        a->heaps = NULL;
}

/* Without RESET_RETURNS, each heap keeps its pages in place, emptied (the
 * next request finds them at once), and its regions; the regions no heap
 * owns (of exited threads, or left empty) are wiped and wait for any heap.
 * With it, every page and region goes, and memory goes back to the kernel. */
MA_API void mapalloc_arena_reset(mapalloc_arena *arena)
{
    ma_arena *a = (ma_arena *)arena;
    check_live(a);
    ma_lock(&a->lock);
    bool give_back = (a->flags & MAPALLOC_ARENA_RESET_RETURNS) != 0;
    if (give_back)
        detach_heaps(a, false);
    else
        for (ma_heap *h = a->heaps; h; h = h->arena_next)
            ma_heap_reset_keep(h);
    ma_large_release_arena(a);
    ma_region_clear_abandoned(a);
    size_t kept = 0;
    for (ma_region *r = a->regions, *next; r; r = next) {
        next = r->arena_next;
        if (!give_back && atomic_load_explicit(&r->heap, memory_order_relaxed) != NULL)
            continue;
        ma_region_wipe(r);
        if (give_back && kept >= a->reserve) {
            arena_unlink_region(a, r);
            atomic_fetch_sub_explicit(&a->mapped, MA_REGION_SIZE, memory_order_relaxed);
            ma_region_release(r);
            continue;
        }
        if (give_back)
            ma_region_purge(r, 0, 0, NULL);
        kept += MA_REGION_SIZE;
        ma_region_abandon(r);
    }
    atomic_store(&a->committed, 0);
    atomic_store(&a->peak, 0);
    ma_unlock(&a->lock);
}

MA_API void mapalloc_arena_destroy(mapalloc_arena *arena)
{
    ma_arena *a = (ma_arena *)arena;
    if (a == NULL)
        return;
    uint64_t magic = atomic_load_explicit(&a->magic, memory_order_acquire);
    if (magic == MA_ARENA_DEAD)
        ma_fatal("arena destroyed twice", a);
    if (magic != MA_ARENA_LIVE)
        ma_fatal("destroy of something that is not an arena", a);
    ma_lock(&a->lock);
    atomic_store_explicit(&a->magic, MA_ARENA_DEAD, memory_order_release);
    atomic_fetch_add_explicit(&a->generation, 1, memory_order_release);
    detach_heaps(a, true);
    ma_large_release_arena(a);
    ma_region_clear_abandoned(a);
    for (ma_region *r = a->regions, *next; r; r = next) {
        next = r->arena_next;
        ma_region_release(r);
    }
    a->regions = NULL;
    if (a->large) {
        ma_os_unmap(a->large, a->large_cap * sizeof(uintptr_t));
        a->large = NULL;
        a->large_cap = 0;
    }
    atomic_store(&a->committed, 0);
    atomic_store(&a->mapped, 0);
    ma_unlock(&a->lock);
    arena_struct_give_back(a);
}

/* ---- allocation ---- */

static void *arena_malloc_once(ma_arena *a, ma_heap *heap, size_t size, bool zero);

/* Past the limit: blocks freed into this thread's pages of the arena may not
 * be collected yet; collect them, give back the empty pages, and try once
 * more. Blocks freed into other threads' pages count until those threads
 * allocate from the arena again. */
static void *arena_malloc_in(ma_arena *a, ma_heap *heap, size_t size, bool zero)
{
    int saved = errno;
    void *p = arena_malloc_once(a, heap, size, zero);
    if (p == NULL && a->limit) {
        ma_heap_trim(heap);
        p = arena_malloc_once(a, heap, size, zero);
        if (p != NULL)
            errno = saved; /* success leaves errno alone */
    }
    return p;
}

static void *arena_malloc_once(ma_arena *a, ma_heap *heap, size_t size, bool zero)
{
    if (ma_secure) {
        void *p = ma_secure_malloc(heap, size, 0, a, zero);
        if (p == NULL)
            errno = ENOMEM;
        return p;
    }
    if (size > MA_LARGE_THRESHOLD) {
        void *p = ma_large_malloc(size, 0, zero, a);
        if (p == NULL)
            errno = ENOMEM;
        return p;
    }
    void *p = ma_page_pop(ma_heap_page_for(heap, size));
    if (p == NULL) {
        p = ma_heap_malloc_generic(heap, ma_size_class(size));
        if (p == NULL) {
            errno = ENOMEM;
            return NULL;
        }
    }
    if (zero)
        memset(p, 0, size);
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
    ma_page *page = ma_heap_page_for(heap, size);
    void *p = ma_page_pop(page);
    if (ma_likely(p != NULL))
        return p;
    return ma_page_take_fresh(page);
}

static MA_NOINLINE void *arena_malloc_miss(ma_arena *a, size_t size)
{
    ma_heap *heap = arena_heap_lookup(a);
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
    if (ma_unlikely(!hot_heap_is_mine(a, heap)))
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
    ma_heap *heap = arena_heap(a);
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
    ma_heap *heap = arena_heap(a);
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
        errno = EINVAL;
        return NULL;
    }
    if (heap == &ma_empty_heap || size > (size_t)PTRDIFF_MAX || alignment > ((size_t)1 << 40)) {
        errno = ENOMEM;
        return NULL;
    }
    if (alignment <= MA_SMALL_STEP)
        return arena_malloc_in(a, heap, size, false);
    return ma_heap_malloc_aligned(heap, a, size, alignment);
}

/* The arena a block belongs to (NULL: the ordinary heap); aborts for a
 * pointer that is no live block. */
static ma_arena *arena_of(void *p)
{
    uintptr_t u = (uintptr_t)p;
    if (ma_in_region(u)) {
        ma_page_of_live_block(p);
        return ma_region_of(u)->arena;
    }
    return ma_large_arena_of(p);
}

static void check_owner(ma_arena *a, void *p)
{
    if (ma_unlikely(arena_of(p) != a))
        ma_fatal("free into the wrong arena of", p);
}

MA_API void mapalloc_arena_free(mapalloc_arena *arena, void *ptr)
{
    ma_arena *a = (ma_arena *)arena;
    check_live(a);
    if (ptr == NULL)
        return;
    uintptr_t u = (uintptr_t)ptr;
    if (!ma_in_region(u)) {
        check_owner(a, ptr);
        ma_large_free(ptr, 0, 0);
        return;
    }
    ma_page *page = ma_page_of_live_block(ptr);
    if (ma_unlikely(ma_region_of(u)->arena != a))
        ma_fatal("free into the wrong arena of", ptr);
    ma_free_block(arena_heap(a), page, ptr);
}

MA_API void *mapalloc_arena_realloc(mapalloc_arena *arena, void *ptr, size_t size)
{
    ma_arena *a = (ma_arena *)arena;
    check_live(a);
    if (ptr == NULL)
        return mapalloc_arena_malloc(arena, size);
    check_owner(a, ptr);
    return ma_realloc_in(a, ptr, size);
}

/* ---- statistics ---- */

void ma_arenas_foreach(void (*fn)(const void *, const struct mapalloc_arena_stats *, void *), void *arg)
{
    ma_lock(&ma_arena_pool_lock);
    for (ma_arena *a = all_arenas; a; a = a->all_next) {
        if (atomic_load(&a->magic) != MA_ARENA_LIVE)
            continue;
        struct mapalloc_arena_stats st;
        mapalloc_arena_stats((mapalloc_arena *)a, &st);
        fn(a, &st, arg);
    }
    ma_unlock(&ma_arena_pool_lock);
}

MA_API void mapalloc_arena_stats(mapalloc_arena *arena, struct mapalloc_arena_stats *out)
{
    ma_arena *a = (ma_arena *)arena;
    check_live(a);
    memset(out, 0, sizeof *out);
    ma_lock(&a->lock);
    for (ma_region *r = a->regions; r; r = r->arena_next)
        for (unsigned i = 1; i < MA_REGION_SLICES; i++) {
            const ma_page *page = &r->pages[i];
            if (page->slices != 0 && page->first_slice == i) {
                size_t used = __atomic_load_n(&page->used, __ATOMIC_RELAXED);
                out->live += used * page->block_size;
                out->blocks += used;
            }
        }
    ma_unlock(&a->lock);
    size_t large_live, large_blocks;
    ma_large_arena_stats(a, &large_live, &large_blocks);
    size_t pending = atomic_load(&a->pending_frees), pending_bytes = atomic_load(&a->pending_bytes);
    out->live = (out->live > pending_bytes ? out->live - pending_bytes : 0) + large_live;
    out->blocks = (out->blocks > pending ? out->blocks - pending : 0) + large_blocks;
    out->committed = atomic_load(&a->committed);
    out->mapped = atomic_load(&a->mapped);
    out->peak = atomic_load(&a->peak);
}
