/* Regions: the mapping, the region map, and the slice bitmaps of the
 * header. See region.h. */
#include <string.h>

#include "region.h"

uint8_t ma_region_map[MA_REGION_MAP_SIZE];

_Static_assert(sizeof(ma_region) <= MA_SLICE_SIZE - MA_GUARD_SIZE,
               "the region header fits in slice 0, before the secure profile's guard");
_Static_assert(sizeof(ma_page) == 128, "a page descriptor is 128 bytes: the page index is a shift");

static _Atomic uint8_t *map_byte(const ma_region *r)
{
    return (_Atomic uint8_t *)&ma_region_map[(uintptr_t)r >> MA_REGION_SHIFT];
}

ma_region *ma_region_map_new(unsigned map_flags, ma_arena *arena)
{
    ma_region *r = ma_os_map(MA_REGION_SIZE, MA_REGION_SIZE, map_flags);
    if (r == NULL)
        return NULL;
    /* Above what the region map covers (5-level page tables, a kernel
     * that ignored our hint): not usable, free could not find it. */
    if (!ma_region_map_covers((uintptr_t)r + MA_REGION_SIZE - 1)) {
        ma_os_unmap(r, MA_REGION_SIZE);
        return NULL;
    }
    /* In the secure profile, a guard between the header and the first page;
     * a region the kernel will not guard is not used. */
    if (ma_secure && !ma_os_guard((uint8_t *)r + MA_SLICE_SIZE - MA_GUARD_SIZE, MA_GUARD_SIZE)) {
        ma_os_unmap(r, MA_REGION_SIZE);
        return NULL;
    }
    /* Fresh mappings read as zero: every slice_page entry points at the
     * never-valid descriptor pages[0] until a page claims it. */
    r->used_slices = 1;
    r->map_flags = map_flags;
    r->arena = arena;
    atomic_store_explicit(map_byte(r), ma_secure ? MA_MAP_CHECKED : MA_MAP_FAST, memory_order_release);
    return r;
}

void ma_region_unmap(ma_region *r)
{
    atomic_store_explicit(map_byte(r), MA_MAP_NONE, memory_order_relaxed);
    ma_os_unmap(r, MA_REGION_SIZE);
}

bool ma_region_is_empty(const ma_region *r)
{
    return r->used_slices == 1;
}

ma_page *ma_region_next_page(ma_region *r, ma_page *after)
{
    for (unsigned i = after ? (unsigned)(after - r->pages) + after->slices : 1; i < MA_REGION_SLICES; i++)
        if (r->slice_page[i] == i && r->pages[i].slices != 0)
            return &r->pages[i];
    return NULL;
}

static uint64_t run_mask(unsigned first, unsigned n)
{
    uint64_t m = n >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << n) - 1);
    return m << first;
}

int ma_region_find_run(const ma_region *r, unsigned n, unsigned align, bool dirty_only)
{
    int best = -1;
    for (unsigned i = align; i + n <= MA_REGION_SLICES; i += align) {
        uint64_t m = run_mask(i, n);
        if (r->used_slices & m)
            continue;
        if ((r->dirty_slices & m) == m)
            return (int)i; /* resident already: no page faults */
        if (best < 0 && !dirty_only)
            best = (int)i;
    }
    return best;
}

unsigned ma_region_longest_run(const ma_region *r, unsigned align, unsigned max, unsigned *first)
{
    unsigned best = 0;
    for (unsigned i = align; i < MA_REGION_SLICES; i += align) {
        unsigned len = 0;
        while (i + len < MA_REGION_SLICES && len < max && !((r->used_slices >> (i + len)) & 1))
            len++;
        if (len > best) {
            best = len;
            *first = i;
        }
    }
    return best;
}

unsigned ma_region_take_slices(ma_region *r, unsigned first, unsigned n)
{
    uint64_t m = run_mask(first, n);
    unsigned dirty = ma_slice_count(r->dirty_slices & m);
    r->used_slices |= m;
    r->dirty_slices &= ~m;
    return dirty;
}

void ma_region_give_slices(ma_region *r, unsigned first, unsigned n, uint32_t now_ms)
{
    uint64_t m = run_mask(first, n);
    r->used_slices &= ~m;
    r->dirty_slices |= m;
    memset(&r->slice_page[first], 0, n);
    for (unsigned i = first; i < first + n; i++)
        r->freed_ms[i] = now_ms;
}

void ma_region_set_page(ma_region *r, unsigned first, unsigned n)
{
    memset(&r->slice_page[first], (int)first, n);
}

uint64_t ma_region_old_dirty(const ma_region *r, uint32_t now_ms, uint32_t min_age_ms)
{
    uint64_t old = 0;
    for (uint64_t d = r->dirty_slices; d; d &= d - 1) {
        unsigned i = (unsigned)__builtin_ctzll(d);
        if ((uint32_t)(now_ms - r->freed_ms[i]) >= min_age_ms)
            old |= (uint64_t)1 << i;
    }
    return old;
}

void ma_region_claim_for_purge(ma_region *r, uint64_t slices)
{
    r->dirty_slices &= ~slices;
    r->used_slices |= slices;
}

void ma_region_purge_slices(ma_region *r, uint64_t slices)
{
    for (uint64_t d = slices; d;) {
        unsigned first = (unsigned)__builtin_ctzll(d);
        uint64_t rest = ~(d >> first);
        unsigned len = rest ? (unsigned)__builtin_ctzll(rest) : 64 - first; /* run of ones */
        ma_os_purge((uint8_t *)r + ((size_t)first << MA_SLICE_SHIFT), (size_t)len << MA_SLICE_SHIFT);
        d &= ~run_mask(first, len);
    }
}

void ma_region_return_purged(ma_region *r, uint64_t slices)
{
    r->used_slices &= ~slices;
}
