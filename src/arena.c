/* Arenas: regions, pages, abandoned pages, large blocks and the budget of
 * one arena, and its purging. See arena.h. */
#include <string.h>

#include "arena.h"
#include "mapalloc.h"

#define ARENA_CHUNK ((size_t)64 << 10)
#define ARENA_REUSE_AFTER 64 /* destroyed arenas wait this long in the pool */
#define PURGE_BATCH 32       /* regions purged per pass of the lock */

ma_arena ma_default_arena = {.magic = MA_ARENA_LIVE, .large = {.cache = true}};
static ma_spinlock ma_arena_pool_lock;
static ma_carver arena_chunk = MA_CARVER(ma_arena); /* structures never used */
static ma_arena *dead_first, *dead_last; /* destroyed, oldest first */
static size_t dead_count;
static ma_arena *all_arenas;             /* every explicit arena structure */
static _Atomic size_t folded_collected, folded_collected_bytes; /* of destroyed arenas */

void ma_arena_dead(const ma_arena *a)
{
    ma_fatal("use of a destroyed arena", a);
}

/* Regions and large blocks of the default arena take the process's mapping
 * options (read at start-up); an explicit arena's are fixed at creation.
 * Large blocks of the default arena never ask for MAP_HUGETLB: most sizes
 * are not whole huge pages, and each refusal would be counted. */
static unsigned region_flags(const ma_arena *a)
{
    return a == &ma_default_arena ? ma_os_default_flags() : a->map_flags;
}

static unsigned large_flags(const ma_arena *a)
{
    return a == &ma_default_arena ? ma_os_default_flags() & ~(unsigned)MA_MAP_HUGE : a->map_flags;
}

static bool keeps_regions(const ma_arena *a)
{
    return (a->kind & MA_ARENA_KEEPS_REGIONS) != 0;
}

/* ---- the budget ---- */

bool ma_arena_commit(ma_arena *a, size_t bytes)
{
    size_t now = atomic_load_explicit(&a->committed, memory_order_relaxed);
    do {
        if (a->limit && (now + bytes > a->limit || now + bytes < now))
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&a->committed, &now, now + bytes,
                                                    memory_order_relaxed, memory_order_relaxed));
    size_t peak = atomic_load_explicit(&a->peak, memory_order_relaxed);
    while (now + bytes > peak &&
           !atomic_compare_exchange_weak_explicit(&a->peak, &peak, now + bytes, memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
    return true;
}

static void ma_arena_uncommit(ma_arena *a, size_t bytes)
{
    atomic_fetch_sub_explicit(&a->committed, bytes, memory_order_relaxed);
}

/* ---- regions ---- */

/* Under the lock. */
static void link_region(ma_arena *a, ma_region *r)
{
    r->prev = NULL;
    r->next = a->regions;
    if (a->regions)
        a->regions->prev = r;
    a->regions = r;
    a->region_count++;
}

/* Under the lock; the region is unmapped after it is dropped. Hints that
 * name it go stale. */
static void unlink_region(ma_arena *a, ma_region *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        a->regions = r->next;
    if (r->next)
        r->next->prev = r->prev;
    a->region_count--;
    a->region_epoch++;
}

static void dirty_add(ma_arena *a, unsigned slices)
{
    ma_count_set(&a->dirty_bytes, a->dirty_bytes + ((size_t)slices << MA_SLICE_SHIFT));
}

static void dirty_sub(ma_arena *a, unsigned slices)
{
    size_t bytes = (size_t)slices << MA_SLICE_SHIFT;
    ma_count_set(&a->dirty_bytes, a->dirty_bytes > bytes ? a->dirty_bytes - bytes : 0);
}

/* A new region, linked in; NULL when the kernel refuses. Called without
 * the lock. */
static ma_region *region_new(ma_arena *a)
{
    ma_region *r = ma_region_map_new(region_flags(a), a);
    if (r == NULL)
        return NULL;
    atomic_fetch_add_explicit(&a->mapped, MA_REGION_SIZE, memory_order_relaxed);
    ma_lock(&a->lock);
    link_region(a, r);
    ma_unlock(&a->lock);
    return r;
}

static void region_unmap(ma_arena *a, ma_region *r)
{
    atomic_fetch_sub_explicit(&a->mapped, MA_REGION_SIZE, memory_order_relaxed);
    ma_region_unmap(r);
}

/* ---- pages ---- */

/* A page's blocks need at least half of what the class's full length
 * holds: a shorter run is left for another class. */
static unsigned short_page_min(unsigned c)
{
    size_t full = ((size_t)ma_class_slices(c) << MA_SLICE_SHIFT) / ma_class_size(c);
    size_t want = (full + 1) / 2 * ma_class_size(c);
    return (unsigned)MA_CEIL_DIV(want, MA_SLICE_SIZE);
}

static bool region_fits(const ma_region *r, unsigned n)
{
    return ma_slice_count(~r->used_slices) >= n;
}

/* A free run for a page of n slices (or, failing that, of at least min_n)
 * at a multiple of align: one that is resident already (dirty) first, in
 * the hinted region and then in any, so that freed memory is reused before
 * fresh pages are faulted in; then any free run, the hinted region first.
 * Under the lock. Returns its region and sets *first and *len; NULL: none. */
static ma_region *find_slices(ma_arena *a, unsigned n, unsigned min_n, unsigned align, ma_region *hint,
                              unsigned *first, unsigned *len)
{
    for (int dirty_only = a->dirty_bytes != 0; dirty_only >= 0; dirty_only--) {
        int i;
        if (hint && region_fits(hint, n) && (i = ma_region_find_run(hint, n, align, dirty_only)) >= 0) {
            *first = (unsigned)i, *len = n;
            return hint;
        }
        for (ma_region *r = a->regions; r; r = r->next)
            if (r != hint && region_fits(r, n) && (i = ma_region_find_run(r, n, align, dirty_only)) >= 0) {
                *first = (unsigned)i, *len = n;
                return r;
            }
    }
    for (ma_region *r = a->regions; r; r = r->next)
        if (region_fits(r, min_n) && (*len = ma_region_longest_run(r, align, n, first)) >= min_n)
            return r;
    return NULL;
}

ma_page *ma_arena_page_new(ma_arena *a, unsigned c, ma_region_hint *hint, bool may_map)
{
    unsigned n = ma_class_slices(c), align = ma_class_align_slices(c);
    if (!ma_arena_commit(a, (size_t)n << MA_SLICE_SHIFT))
        return NULL; /* checked before anything is looked at: a refusal maps nothing */
    unsigned first = 0, len = 0;
    ma_lock(&a->lock);
    ma_region *r = find_slices(a, n, short_page_min(c), align,
                               hint->epoch == a->region_epoch ? hint->region : NULL, &first, &len);
    if (r == NULL && !may_map) {
        ma_unlock(&a->lock);
        ma_arena_uncommit(a, (size_t)n << MA_SLICE_SHIFT);
        return NULL;
    }
    if (r == NULL) {
        ma_unlock(&a->lock);
        ma_region *fresh_r = region_new(a);
        ma_lock(&a->lock);
        int i = fresh_r ? ma_region_find_run(fresh_r, n, align, false) : -1;
        if (i >= 0) {
            r = fresh_r, first = (unsigned)i, len = n;
        } else {
            /* No memory for a region (or another thread took the new one):
             * any run that holds one block will do. */
            unsigned one = (unsigned)MA_CEIL_DIV(ma_class_size(c), MA_SLICE_SIZE);
            r = find_slices(a, n, one, align, NULL, &first, &len);
        }
        if (r == NULL) {
            ma_unlock(&a->lock);
            ma_arena_uncommit(a, (size_t)n << MA_SLICE_SHIFT);
            return NULL;
        }
    }
    dirty_sub(a, ma_region_take_slices(r, first, len));
    hint->region = r;
    hint->epoch = a->region_epoch;
    ma_unlock(&a->lock);
    if (len < n)
        ma_arena_uncommit(a, (size_t)(n - len) << MA_SLICE_SHIFT);
    ma_page *page = &r->pages[first];
    if (!ma_page_init(page, r, first, len, c)) { /* the secure profile's guard was refused */
        ma_lock(&a->lock);
        ma_region_give_slices(r, first, len, (uint32_t)ma_clock_ms());
        dirty_add(a, len);
        ma_unlock(&a->lock);
        ma_arena_uncommit(a, (size_t)len << MA_SLICE_SHIFT);
        return NULL;
    }
    return page;
}

/* The page's slices are free from now on. Under the lock; the secure
 * profile's guard was opened before. */
static void give_page_slices(ma_arena *a, ma_page *page, uint32_t now)
{
    ma_region_give_slices(ma_page_region(page), page->first_slice, page->slices, now);
    dirty_add(a, page->slices);
    ma_page_uncarve(page);
    page->slices = 0;
    page->free = page->local_free = NULL;
    ma_page_own(page, NULL, NULL);
}

/* A page's slices go back to its region, dirty. In the secure profile its
 * last 4 KiB guard opens first, or a page of another length made there
 * would fault in the middle; if the kernel refuses, the slices stay out of
 * use (the blocks are gone all the same). Returns the bytes given back. */
static size_t page_to_free(ma_arena *a, ma_page *page, uint32_t now)
{
    size_t bytes = (size_t)page->slices << MA_SLICE_SHIFT;
    if (ma_secure && !ma_os_unguard(ma_page_start(page) + bytes - MA_GUARD_SIZE, MA_GUARD_SIZE)) {
        ma_page_forget(page);
        ma_page_own(page, NULL, NULL);
        return 0;
    }
    ma_lock(&a->lock);
    give_page_slices(a, page, now);
    ma_unlock(&a->lock);
    return bytes;
}

void ma_arena_page_free(ma_arena *a, ma_page *page)
{
    size_t bytes = (size_t)page->slices << MA_SLICE_SHIFT;
    bool kept = page->kept;
    page_to_free(a, page, (uint32_t)ma_clock_ms());
    if (!kept)
        ma_arena_uncommit(a, bytes);
}

void ma_arena_abandon(ma_arena *a, ma_page *page)
{
    ma_lock(&a->lock);
    ma_queue_push_back(&a->abandoned[page->class_idx], page);
    page->abandoned = 1;
    ma_count_set(&a->abandoned_count, a->abandoned_count + 1);
    ma_unlock(&a->lock);
}

/* Under the lock. */
static void unabandon(ma_arena *a, ma_page *page)
{
    ma_queue_unlink(&a->abandoned[page->class_idx], page);
    page->abandoned = 0;
    ma_count_set(&a->abandoned_count, a->abandoned_count - 1);
}

ma_page *ma_arena_take_abandoned(ma_arena *a, unsigned c)
{
    if (__atomic_load_n(&a->abandoned[c].first, __ATOMIC_RELAXED) == NULL) /* a look without the lock */
        return NULL;
    ma_lock(&a->lock);
    ma_page *page = a->abandoned[c].first;
    if (page)
        unabandon(a, page);
    ma_unlock(&a->lock);
    return page;
}

bool ma_arena_claim(ma_arena *a, ma_page *page)
{
    ma_lock(&a->lock);
    bool taken = page->abandoned;
    if (taken)
        unabandon(a, page);
    ma_unlock(&a->lock);
    return taken;
}

/* ---- purging ---- */

/* A huge page of a thp=1 region is split by a purge only for empty pages
 * that have waited this many decays: a program at work uses them again
 * sooner (tree: 0.91x the CPU time of a build that split them). */
#define HUGE_SPLIT_DECAYS 4

struct purge_batch {
    ma_region *region[PURGE_BATCH];
    uint64_t slices[PURGE_BATCH];
    unsigned n;
};

/* Takes what is old enough from up to PURGE_BATCH regions, and unlinks
 * (into *unmap) the regions that are free, with nothing young in them, and
 * need not stay: all of them when all, else all but the first one (the
 * next page needs no mmap); none in an explicit arena. Under the lock.
 * True when it took anything. */
static bool purge_take(ma_arena *a, uint32_t now, uint32_t min_age, bool all, struct purge_batch *b,
                       ma_region **unmap)
{
    uint32_t split_age = (uint32_t)ma_option(MA_OPT_DECAY_MS) * HUGE_SPLIT_DECAYS;
    bool kept_one = all;
    b->n = 0;
    for (ma_region *r = a->regions, *next; r && b->n < PURGE_BATCH; r = next) {
        next = r->next;
        uint64_t old = ma_region_old_dirty(r, now, min_age);
        if (ma_region_is_empty(r) && !keeps_regions(a)) {
            if (kept_one && old == r->dirty_slices) {
                dirty_sub(a, ma_slice_count(old));
                unlink_region(a, r);
                r->next = *unmap;
                *unmap = r;
                continue;
            }
            kept_one = true;
        }
        if (!all && (r->map_flags & MA_MAP_THP) && old)
            old = ma_region_huge_purgeable(r, old, now, split_age);
        if (old) {
            ma_region_claim_for_purge(r, old);
            dirty_sub(a, ma_slice_count(old));
            b->region[b->n] = r;
            b->slices[b->n++] = old;
        }
    }
    return b->n > 0 || *unmap != NULL;
}

/* Remote frees into the arena's pages that the arena itself collected or
 * dropped, not a heap. */
static void count_collected(ma_arena *a, const ma_page *page, size_t count)
{
    atomic_fetch_add_explicit(&a->collected, count, memory_order_relaxed);
    atomic_fetch_add_explicit(&a->collected_bytes, count * page->block_size, memory_order_relaxed);
    if (a != &ma_default_arena) {
        atomic_fetch_sub_explicit(&a->pending_frees, count, memory_order_relaxed);
        atomic_fetch_sub_explicit(&a->pending_bytes, count * page->block_size, memory_order_relaxed);
    }
}

/* Abandoned pages whose blocks have all come back: nobody would collect
 * them otherwise. Under the lock; their guards open after it. */
static ma_page *take_empty_abandoned(ma_arena *a)
{
    ma_page *list = NULL;
    for (unsigned c = 0; c < MA_CLASS_COUNT && a->abandoned_count; c++)
        for (ma_page *page = a->abandoned[c].first, *next; page; page = next) {
            next = page->next;
            count_collected(a, page, ma_page_collect(page));
            if (ma_page_used(page) == 0) {
                unabandon(a, page);
                page->next = list;
                list = page;
            }
        }
    return list;
}

size_t ma_arena_purge(ma_arena *a, uint32_t min_age_ms, bool all)
{
    size_t given = 0;
    uint32_t now = (uint32_t)ma_clock_ms();
    ma_lock(&a->lock);
    ma_page *empty = take_empty_abandoned(a);
    ma_unlock(&a->lock);
    for (ma_page *page = empty, *next; page; page = next) {
        next = page->next;
        ma_arena_page_free(a, page);
    }
    for (;;) {
        struct purge_batch b;
        ma_region *unmap = NULL;
        ma_lock(&a->lock);
        bool any = purge_take(a, now, min_age_ms, all, &b, &unmap);
        ma_unlock(&a->lock);
        if (!any)
            return given;
        for (unsigned i = 0; i < b.n; i++) {
            ma_region_purge_slices(b.region[i], b.slices[i]);
            given += (size_t)ma_slice_count(b.slices[i]) << MA_SLICE_SHIFT;
        }
        for (ma_region *r = unmap, *next; r; r = next) {
            next = r->next;
            region_unmap(a, r);
            given += MA_REGION_SIZE;
        }
        ma_lock(&a->lock);
        for (unsigned i = 0; i < b.n; i++)
            ma_region_return_purged(b.region[i], b.slices[i]);
        ma_unlock(&a->lock);
    }
}

/* At most one pass per half decay period, made by whichever thread comes
 * first. Past dirty_max_kb of dirty slices it does not wait: it gives back
 * what has been free for an eighth of the decay (so memory that a busy
 * program reuses at once is not purged only to be faulted in again), and
 * everything past eight times that, at most once per clock tick. */
void ma_arena_maybe_purge(ma_arena *a)
{
    size_t dirty = ma_count_get(&a->dirty_bytes);
    if (dirty == 0 && ma_count_get(&a->abandoned_count) == 0)
        return;
    uint64_t now = ma_clock_ms();
    uint64_t decay = (uint64_t)ma_option(MA_OPT_DECAY_MS);
    size_t cap = (size_t)ma_option(MA_OPT_DIRTY_MAX_KB) << 10;
    if (dirty > cap) {
        /* Not at every call in thp=1 regions: what their huge pages keep
         * stays dirty, and a pass would find it again and again. */
        bool eager = dirty > 8 * cap && !(region_flags(a) & MA_MAP_THP);
        if (eager || __atomic_exchange_n(&a->overcap_pass_ms, now, __ATOMIC_RELAXED) != now)
            ma_arena_purge(a, dirty > 8 * cap ? 0 : (uint32_t)(decay / 8), false);
        return;
    }
    uint64_t next = atomic_load_explicit(&a->next_purge_ms, memory_order_relaxed);
    if (now < next || !atomic_compare_exchange_strong(&a->next_purge_ms, &next, now + decay / 2))
        return;
    ma_arena_purge(a, (uint32_t)decay, false);
}

/* ---- large blocks ---- */

static ma_arena *arena_of_set(ma_large_set *set)
{
    return (ma_arena *)((char *)set - offsetof(ma_arena, large));
}

void *ma_arena_large_malloc(ma_arena *a, size_t size, size_t alignment, bool zero)
{
    return ma_arena_large_malloc_room(a, size, size, alignment, zero);
}

void *ma_arena_large_malloc_room(ma_arena *a, size_t size, size_t room, size_t alignment, bool zero)
{
    size_t map_size = ma_large_set_map_size(&a->large, room);
    if (map_size == 0 || !ma_arena_commit(a, map_size))
        return NULL;
    void *p = ma_large_malloc(size, map_size, alignment, zero, &a->large, large_flags(a));
    if (p == NULL) {
        ma_arena_uncommit(a, map_size);
        return NULL;
    }
    atomic_fetch_add_explicit(&a->mapped, map_size, memory_order_relaxed);
    return p;
}

void ma_arena_large_free(void *p, size_t expect_size, size_t expect_align)
{
    ma_large_set *set;
    size_t size = ma_large_free(p, expect_size, expect_align, &set);
    ma_arena *a = arena_of_set(set);
    ma_arena_uncommit(a, size);
    atomic_fetch_sub_explicit(&a->mapped, size, memory_order_relaxed);
}

void *ma_arena_large_realloc(void *p, size_t size)
{
    size_t old;
    ma_large_set *set = ma_large_lookup(p, &old);
    ma_arena *a = arena_of_set(set);
    size_t want = ma_large_resized(set, old, size);
    if (want > old && !ma_arena_commit(a, want - old))
        return NULL;
    void *q = ma_large_realloc(p, size, want);
    if (q == NULL) {
        if (want > old)
            ma_arena_uncommit(a, want - old);
        return NULL;
    }
    if (want < old)
        ma_arena_uncommit(a, old - want);
    atomic_fetch_add_explicit(&a->mapped, want - old, memory_order_relaxed);
    return q;
}

ma_arena *ma_arena_of_large(const void *p)
{
    size_t size;
    return arena_of_set(ma_large_lookup(p, &size));
}

/* ---- explicit arenas: structures ---- */

/* A destroyed arena's structure is reused only after ARENA_REUSE_AFTER
 * others, so that a stale handle keeps reading as destroyed for a while;
 * else the next one of the newest chunk is made (the first arena of a
 * process touches one, not the chunk's 46). */
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
        } else if ((a = ma_carve(&arena_chunk)) != NULL) {
            a->all_next = all_arenas;
            all_arenas = a;
        }
        ma_unlock(&ma_arena_pool_lock);
        if (a)
            return a;
        uint8_t *chunk = ma_os_map(ARENA_CHUNK, MA_OS_PAGE, 0);
        if (chunk == NULL)
            return NULL;
        ma_lock(&ma_arena_pool_lock);
        bool used = ma_carver_refill(&arena_chunk, chunk, ARENA_CHUNK);
        ma_unlock(&ma_arena_pool_lock);
        if (!used)
            ma_os_unmap(chunk, ARENA_CHUNK);
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

ma_arena *ma_arena_new(unsigned flags, size_t limit, size_t reserve)
{
    ma_arena *a = arena_struct_take();
    if (a == NULL)
        return NULL;
    unsigned map_flags = ma_os_default_flags() & ~(unsigned)(MA_MAP_HUGE | MA_MAP_NORESERVE);
    if (flags & MAPALLOC_ARENA_HUGE)
        map_flags |= MA_MAP_HUGE;
    if (flags & MAPALLOC_ARENA_NORESERVE)
        map_flags |= MA_MAP_NORESERVE;
    if (flags & MAPALLOC_ARENA_DEVZERO)
        map_flags |= MA_MAP_DEVZERO;
    /* What follows the identity (magic, generation, hot heap) starts over;
     * the pool links stay. Under the pool lock: a walk of every arena (the
     * statistics', fork's locking of each) must not find this one's link
     * cleared or its lock wiped on the way. */
    ma_lock(&ma_arena_pool_lock);
    ma_arena *pool_next = a->pool_next, *all_next = a->all_next;
    size_t from = offsetof(ma_arena, map_flags);
    memset((char *)a + from, 0, sizeof *a - from);
    a->pool_next = pool_next;
    a->all_next = all_next;
    ma_unlock(&ma_arena_pool_lock);
    a->map_flags = map_flags;
    a->kind = MA_ARENA_KEEPS_REGIONS | MA_ARENA_NO_LARGE_CACHE;
    a->flags = flags;
    a->limit = limit;
    a->reserve = (reserve + MA_REGION_SIZE - 1) & ~(MA_REGION_SIZE - 1);
    atomic_fetch_add_explicit(&a->generation, 1, memory_order_release);
    atomic_store_explicit(&a->magic, MA_ARENA_LIVE, memory_order_release);
    for (size_t done = 0; done < a->reserve; done += MA_REGION_SIZE)
        if (region_new(a) == NULL) {
            ma_arena_destroy(a);
            return NULL;
        }
    return a;
}

/* ---- explicit arenas: reset and destroy ---- */

/* The arena's abandoned pages, out of their lists. Under the lock. */
static ma_page *take_all_abandoned(ma_arena *a)
{
    ma_page *list = NULL;
    for (unsigned c = 0; c < MA_CLASS_COUNT; c++)
        while (a->abandoned[c].first) {
            ma_page *page = a->abandoned[c].first;
            unabandon(a, page);
            page->next = list;
            list = page;
        }
    return list;
}

/* Every page of r is gone at once: its slices become dirty (resident,
 * reusable without faults). Touches the header only. */
static void wipe_region(ma_arena *a, ma_region *r, uint32_t now)
{
    for (ma_page *page = ma_region_next_page(r, NULL), *next; page; page = next) {
        next = ma_region_next_page(r, page);
        count_collected(a, page, ma_page_forget(page));
        page_to_free(a, page, now);
    }
}

void ma_arena_reset_space(ma_arena *a, bool give_back)
{
    atomic_fetch_sub_explicit(&a->mapped, ma_large_unmap_set(&a->large), memory_order_relaxed);
    uint32_t now = (uint32_t)ma_clock_ms();
    ma_lock(&a->lock);
    ma_page *left = take_all_abandoned(a);
    ma_unlock(&a->lock);
    for (ma_page *page = left, *next; page; page = next) {
        next = page->next;
        count_collected(a, page, ma_page_forget(page));
        page_to_free(a, page, now);
    }
    if (give_back) {
        /* Reset and other calls on the arena do not overlap: the regions
         * can be walked without the lock between the system calls. */
        size_t kept = 0;
        for (ma_region *r = a->regions, *next; r; r = next) {
            next = r->next;
            wipe_region(a, r, now);
            ma_lock(&a->lock);
            if (kept >= a->reserve) {
                dirty_sub(a, ma_slice_count(r->dirty_slices));
                unlink_region(a, r);
                ma_unlock(&a->lock);
                region_unmap(a, r);
                continue;
            }
            uint64_t all = r->dirty_slices;
            ma_region_claim_for_purge(r, all);
            dirty_sub(a, ma_slice_count(all));
            ma_unlock(&a->lock);
            ma_region_purge_slices(r, all);
            ma_lock(&a->lock);
            ma_region_return_purged(r, all);
            ma_unlock(&a->lock);
            kept += MA_REGION_SIZE;
        }
    }
    atomic_store(&a->committed, 0);
    atomic_store(&a->peak, 0);
    atomic_store(&a->pending_frees, 0);
    atomic_store(&a->pending_bytes, 0);
}

void ma_arena_destroy(ma_arena *a)
{
    atomic_store_explicit(&a->magic, MA_ARENA_DEAD, memory_order_release);
    atomic_fetch_add_explicit(&a->generation, 1, memory_order_release);
    ma_large_unmap_set(&a->large);
    if (a->large.blocks) {
        ma_os_unmap(a->large.blocks, a->large.cap * sizeof(uintptr_t));
        a->large.blocks = NULL;
        a->large.cap = 0;
    }
    ma_lock(&a->lock);
    ma_region *regions = a->regions;
    a->regions = NULL;
    a->region_count = 0;
    a->region_epoch++;
    take_all_abandoned(a);
    ma_count_set(&a->dirty_bytes, 0);
    ma_unlock(&a->lock);
    for (ma_region *r = regions, *next; r; r = next) {
        next = r->next;
        ma_region_unmap(r);
    }
    atomic_store(&a->committed, 0);
    atomic_store(&a->mapped, 0);
    atomic_fetch_add(&folded_collected, atomic_exchange(&a->collected, 0));
    atomic_fetch_add(&folded_collected_bytes, atomic_exchange(&a->collected_bytes, 0));
    arena_struct_give_back(a);
}

/* ---- accounts, iteration, fork ---- */

void ma_arena_account(ma_arena *a, struct ma_arena_account *out)
{
    memset(out, 0, sizeof *out);
    ma_lock(&a->lock);
    for (ma_region *r = a->regions; r; r = r->next) {
        out->regions++;
        out->lazy += (size_t)ma_slice_count(atomic_load(&r->lazy_slices)) << MA_SLICE_SHIFT;
        for (ma_page *page = ma_region_next_page(r, NULL); page; page = ma_region_next_page(r, page)) {
            size_t used = ma_page_used(page); /* another thread's: a snapshot */
            out->live += used * page->block_size;
            out->blocks += used;
        }
    }
    out->abandoned_pages = a->abandoned_count;
    out->dirty = a->dirty_bytes;
    ma_unlock(&a->lock);
    size_t large_live, large_blocks;
    ma_large_set_stats(&a->large, &large_live, &large_blocks);
    size_t pending = atomic_load(&a->pending_frees), pending_bytes = atomic_load(&a->pending_bytes);
    out->live = (out->live > pending_bytes ? out->live - pending_bytes : 0) + large_live;
    out->blocks = (out->blocks > pending ? out->blocks - pending : 0) + large_blocks;
    out->large_live = large_live;
    out->committed = atomic_load(&a->committed);
    out->mapped = atomic_load(&a->mapped);
    out->peak = atomic_load(&a->peak);
}

static void add_collected(ma_arena *a, void *arg)
{
    size_t *sum = arg;
    sum[0] += atomic_load_explicit(&a->collected, memory_order_relaxed);
    sum[1] += atomic_load_explicit(&a->collected_bytes, memory_order_relaxed);
}

void ma_arenas_collected(size_t *blocks, size_t *bytes)
{
    size_t sum[2] = {atomic_load(&folded_collected), atomic_load(&folded_collected_bytes)};
    ma_arenas_foreach(add_collected, sum);
    *blocks = sum[0];
    *bytes = sum[1];
}

void ma_arenas_foreach(void (*fn)(ma_arena *, void *), void *arg)
{
    fn(&ma_default_arena, arg);
    ma_lock(&ma_arena_pool_lock);
    for (ma_arena *a = all_arenas; a; a = a->all_next)
        if (atomic_load(&a->magic) == MA_ARENA_LIVE)
            fn(a, arg);
    ma_unlock(&ma_arena_pool_lock);
}

void ma_arena_foreach_page(ma_arena *a, void (*fn)(ma_page *, void *), void *arg)
{
    ma_lock(&a->lock);
    for (ma_region *r = a->regions; r; r = r->next)
        for (ma_page *page = ma_region_next_page(r, NULL); page; page = ma_region_next_page(r, page))
            fn(page, arg);
    ma_unlock(&a->lock);
}

void ma_arenas_lock_all(void)
{
    ma_lock(&ma_arena_pool_lock);
    ma_lock(&ma_default_arena.lock);
    for (ma_arena *a = all_arenas; a; a = a->all_next)
        ma_lock(&a->lock);
}

void ma_arenas_unlock_all(void)
{
    for (ma_arena *a = all_arenas; a; a = a->all_next)
        ma_unlock(&a->lock);
    ma_unlock(&ma_default_arena.lock);
    ma_unlock(&ma_arena_pool_lock);
}
