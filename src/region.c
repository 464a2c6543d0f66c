/* Regions: 4 MiB mappings aligned to 4 MiB, cut into 64 slices of 64 KiB.
 * Slice 0 is the header (slice bitmaps and page descriptors). A byte per
 * 4 MiB of address space (the region map, in .bss, touched only where
 * regions are) says which addresses are regions, so free can tell a block
 * of ours from any other address without reading memory that may not exist.
 *
 * A region belongs to one heap, whose thread alone changes its slices; the
 * lock below guards only the lists that cross threads: every region (for
 * statistics and trim) and the abandoned ones. */
#include <string.h>

#include "alloc.h"

uint8_t ma_region_map[MA_REGION_MAP_SIZE];
ma_spinlock ma_region_lock;
static ma_region *all_regions;
static ma_region *abandoned;
static size_t region_count, abandoned_count;

_Static_assert(sizeof(ma_region) <= MA_SLICE_SIZE - MA_GUARD_SIZE,
               "the region header fits in slice 0, before the secure profile's guard");

ma_region *ma_region_new(unsigned map_flags)
{
    ma_region *r = ma_os_map(MA_REGION_SIZE, MA_REGION_SIZE, map_flags);
    if (r == NULL)
        return NULL;
    /* Fresh mappings read as zero: every slice_page entry points at the
     * never-valid descriptor pages[0] until a page claims it. */
    /* In the secure profile, a guard between the header and the first page;
     * a region the kernel will not guard is not used. */
    if (ma_secure && !ma_os_guard((uint8_t *)r + MA_SLICE_SIZE - MA_GUARD_SIZE, MA_GUARD_SIZE)) {
        ma_os_unmap(r, MA_REGION_SIZE);
        return NULL;
    }
    r->used_slices = 1;
    r->map_flags = map_flags;
    ma_lock(&ma_region_lock);
    r->all_next = all_regions;
    if (all_regions)
        all_regions->all_prev = r;
    all_regions = r;
    region_count++;
    ma_unlock(&ma_region_lock);
    atomic_store_explicit((_Atomic uint8_t *)&ma_region_map[(uintptr_t)r >> MA_REGION_SHIFT],
                          ma_secure ? MA_MAP_CHECKED : MA_MAP_FAST, memory_order_release);
    return r;
}

void ma_region_release(ma_region *r)
{
    atomic_store_explicit((_Atomic uint8_t *)&ma_region_map[(uintptr_t)r >> MA_REGION_SHIFT], 0,
                          memory_order_relaxed);
    ma_lock(&ma_region_lock);
    if (r->all_prev)
        r->all_prev->all_next = r->all_next;
    else
        all_regions = r->all_next;
    if (r->all_next)
        r->all_next->all_prev = r->all_prev;
    region_count--;
    ma_unlock(&ma_region_lock);
    ma_os_unmap(r, MA_REGION_SIZE);
}

bool ma_region_is_empty(const ma_region *r)
{
    return r->used_slices == 1;
}

static uint64_t slice_mask(unsigned n)
{
    return n >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << n) - 1);
}

/* Claims n free slices (n a power of two) at a multiple of n, so the page is
 * aligned to its own length. Prefers slices that are still resident (dirty):
 * reusing them costs no page faults. */
int ma_region_alloc_slices(ma_region *r, unsigned n, bool *dirty)
{
    uint64_t m = slice_mask(n);
    int best = -1;
    for (unsigned i = n; i + n <= MA_REGION_SLICES; i += n) {
        if ((r->used_slices >> i) & m)
            continue;
        if (((r->dirty_slices >> i) & m) == m) {
            best = (int)i;
            break;
        }
        if (best < 0)
            best = (int)i;
    }
    if (best < 0)
        return -1;
    *dirty = ((r->dirty_slices >> best) & m) != 0;
    r->used_slices |= m << best;
    r->dirty_slices &= ~(m << best);
    return best;
}

void ma_region_free_slices(ma_region *r, unsigned first, unsigned n, uint32_t now_ms)
{
    uint64_t m = slice_mask(n) << first;
    r->used_slices &= ~m;
    r->dirty_slices |= m;
    memset(&r->slice_page[first], 0, n);
    for (unsigned i = first; i < first + n; i++)
        r->freed_ms[i] = now_ms;
}

size_t ma_region_purge(ma_region *r, uint32_t now_ms, uint32_t min_age_ms, size_t *left)
{
    uint64_t old = 0; /* the dirty slices old enough */
    for (uint64_t d = r->dirty_slices; d; d &= d - 1) {
        unsigned i = (unsigned)__builtin_ctzll(d);
        if ((uint32_t)(now_ms - r->freed_ms[i]) >= min_age_ms)
            old |= (uint64_t)1 << i;
    }
    size_t purged = 0;
    for (uint64_t d = old; d;) {
        unsigned first = (unsigned)__builtin_ctzll(d);
        uint64_t rest = ~(d >> first);
        unsigned len = rest ? (unsigned)__builtin_ctzll(rest) : 64 - first; /* run of ones */
        ma_os_purge((uint8_t *)r + ((size_t)first << MA_SLICE_SHIFT), (size_t)len << MA_SLICE_SHIFT);
        purged += (size_t)len << MA_SLICE_SHIFT;
        d &= ~(slice_mask(len) << first);
    }
    r->dirty_slices &= ~old;
    if (left)
        *left += (size_t)__builtin_popcountll(r->dirty_slices) << MA_SLICE_SHIFT;
    return purged;
}

/* The list a region waits in when no heap owns it: its arena's, or the
 * process's. Under ma_region_lock. */
static ma_region **abandoned_list(ma_arena *arena)
{
    return arena ? &arena->abandoned : &abandoned;
}

/* Arena reset: every page of the region is gone at once. The slices that
 * held pages become dirty (resident, reusable without faults). Touches the
 * header only: time proportional to regions, not to blocks. */
void ma_region_wipe(ma_region *r)
{
    r->dirty_slices |= r->used_slices & ~(uint64_t)1;
    r->used_slices = 1;
    memset(r->slice_page, 0, sizeof r->slice_page);
    for (unsigned i = 1; i < MA_REGION_SLICES; i++) {
        ma_page *page = &r->pages[i];
        if (page->slices == 0)
            continue;
        if (ma_secure)
            ma_os_unguard(ma_page_start(page) + ((size_t)page->slices << MA_SLICE_SHIFT) - MA_GUARD_SIZE,
                          MA_GUARD_SIZE);
        ma_page_forget_blocks(page);
        page->slices = 0;
        atomic_store_explicit(&page->heap, NULL, memory_order_relaxed);
    }
    atomic_store_explicit(&r->heap, NULL, memory_order_relaxed);
    r->next = r->prev = NULL;
}

void ma_region_abandon(ma_region *r)
{
    atomic_store_explicit(&r->heap, NULL, memory_order_release);
    ma_lock(&ma_region_lock);
    ma_region **list = abandoned_list(r->arena);
    r->prev = NULL;
    r->next = *list;
    if (*list)
        (*list)->prev = r;
    *list = r;
    r->abandoned = true;
    if (r->arena == NULL)
        abandoned_count++;
    ma_unlock(&ma_region_lock);
}

static void unlink_abandoned(ma_region *r)
{
    ma_region **list = abandoned_list(r->arena);
    if (r->prev)
        r->prev->next = r->next;
    else
        *list = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->next = r->prev = NULL;
    r->abandoned = false;
    if (r->arena == NULL)
        abandoned_count--;
}

ma_region *ma_region_take_abandoned(ma_arena *arena)
{
    ma_region **list = abandoned_list(arena);
    if (atomic_load_explicit((_Atomic(ma_region *) *)list, memory_order_relaxed) == NULL)
        return NULL;
    ma_lock(&ma_region_lock);
    ma_region *r = *list;
    if (r)
        unlink_abandoned(r);
    ma_unlock(&ma_region_lock);
    return r;
}

/* Takes every region out of the arena's abandoned list (reset, destroy). */
void ma_region_clear_abandoned(ma_arena *arena)
{
    ma_lock(&ma_region_lock);
    while (arena->abandoned)
        unlink_abandoned(arena->abandoned);
    ma_unlock(&ma_region_lock);
}

bool ma_region_take_if_abandoned(ma_region *r)
{
    ma_lock(&ma_region_lock);
    bool taken = r->abandoned;
    if (taken)
        unlink_abandoned(r);
    ma_unlock(&ma_region_lock);
    return taken;
}

void ma_regions_foreach(void (*fn)(ma_region *, void *), void *arg)
{
    ma_lock(&ma_region_lock);
    for (ma_region *r = all_regions; r; r = r->all_next)
        fn(r, arg);
    ma_unlock(&ma_region_lock);
}

void ma_region_counts(size_t *regions, size_t *abandoned_regions)
{
    ma_lock(&ma_region_lock);
    *regions = region_count;
    *abandoned_regions = abandoned_count;
    ma_unlock(&ma_region_lock);
}
