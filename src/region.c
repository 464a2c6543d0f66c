/* Regions: the mapping, the region map, and the slice bitmaps of the
 * header. See region.h. */
#include "region.h"

uintptr_t ma_page_map[MA_PAGE_MAP_SIZE];
ma_page ma_empty_page = {.free = MA_NO_BLOCKS};

_Static_assert(sizeof(ma_region) <= MA_SLICE_SIZE - MA_GUARD_SIZE,
               "the region header fits in slice 0, before the secure profile's guard");
_Static_assert(sizeof(ma_page) == 256, "a page descriptor is 256 bytes: the page index is a shift");

#define LEAF_BYTES (MA_LEAF_SLOTS * sizeof(ma_page *))

/* A new leaf, every slot naming no page, whose biased address for top is
 * not 0 (which would read as no leaf); NULL when the kernel refuses. */
static ma_page **leaf_new(uintptr_t top)
{
    ma_page **fresh = ma_os_map(LEAF_BYTES, MA_OS_PAGE, 0);
    if (fresh != NULL && (uintptr_t)fresh == ma_leaf_bias(top)) {
        ma_page **other = ma_os_map(LEAF_BYTES, MA_OS_PAGE, 0); /* elsewhere: fresh is there */
        ma_os_unmap(fresh, LEAF_BYTES);
        fresh = other;
    }
    if (fresh == NULL)
        return NULL;
    for (size_t i = 0; i < MA_LEAF_SLOTS; i++)
        fresh[i] = &ma_empty_page;
    return fresh;
}

/* The leaf for the 512 MiB around u, made if it is not there yet; NULL
 * when the kernel refuses. Leaves are never unmapped: a stale lookup never
 * reads a wild one. */
static ma_page **leaf_for(uintptr_t u)
{
    uintptr_t top = u >> MA_LEAF_SHIFT;
    _Atomic uintptr_t *slot = (_Atomic uintptr_t *)&ma_page_map[top];
    uintptr_t biased = atomic_load_explicit(slot, memory_order_acquire);
    if (biased == 0) {
        ma_page **fresh = leaf_new(top);
        if (fresh == NULL)
            return NULL;
        uintptr_t mine = (uintptr_t)fresh - ma_leaf_bias(top);
        if (atomic_compare_exchange_strong_explicit(slot, &biased, mine, memory_order_acq_rel,
                                                    memory_order_acquire))
            return fresh;
        ma_os_unmap(fresh, LEAF_BYTES); /* another thread made it first */
    }
    return (ma_page **)(biased + ma_leaf_bias(top));
}

static void set_slots(ma_region *r, unsigned first, unsigned n, ma_page *page)
{
    _Atomic(ma_page *) *slot =
        (_Atomic(ma_page *) *)&r->leaf[((uintptr_t)r >> MA_SLICE_SHIFT) & (MA_LEAF_SLOTS - 1)];
    for (unsigned i = first; i < first + n; i++)
        atomic_store_explicit(&slot[i], page, memory_order_release);
}

ma_region *ma_region_map_new(unsigned map_flags, ma_arena *arena)
{
    ma_region *r = ma_os_map(MA_REGION_SIZE, MA_REGION_SIZE, map_flags);
    if (r == NULL)
        return NULL;
    /* Above what the page map covers (5-level page tables, a kernel that
     * ignored our hint): not usable, free could not find it. */
    ma_page **leaf = ma_page_map_covers((uintptr_t)r + MA_REGION_SIZE - 1) ? leaf_for((uintptr_t)r) : NULL;
    if (leaf == NULL) {
        ma_os_unmap(r, MA_REGION_SIZE);
        return NULL;
    }
    /* In the secure profile, a guard between the header and the first page;
     * a region the kernel will not guard is not used. */
    if (ma_secure && !ma_os_guard((uint8_t *)r + MA_SLICE_SIZE - MA_GUARD_SIZE, MA_GUARD_SIZE)) {
        ma_os_unmap(r, MA_REGION_SIZE);
        return NULL;
    }
    /* The leaf's slots for the region name no page until pages claim them. */
    r->used_slices = 1;
    r->map_flags = map_flags;
    r->arena = arena;
    r->leaf = leaf;
    return r;
}

void ma_region_unmap(ma_region *r)
{
    set_slots(r, 0, MA_REGION_SLICES, &ma_empty_page); /* a destroyed arena's pages still named it */
    ma_os_unmap(r, MA_REGION_SIZE);
}

bool ma_region_is_empty(const ma_region *r)
{
    return r->used_slices == 1;
}

ma_page *ma_region_next_page(ma_region *r, ma_page *after)
{
    for (unsigned i = after ? (unsigned)(after - r->pages) + after->slices : 1; i < MA_REGION_SLICES; i++)
        if (r->pages[i].slices != 0)
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
    if (atomic_load_explicit(&r->lazy_slices, memory_order_relaxed) & m)
        atomic_fetch_and_explicit(&r->lazy_slices, ~m, memory_order_relaxed);
    return dirty;
}

void ma_region_give_slices(ma_region *r, unsigned first, unsigned n, uint32_t now_ms)
{
    uint64_t m = run_mask(first, n);
    r->used_slices &= ~m;
    r->dirty_slices |= m;
    set_slots(r, first, n, &ma_empty_page);
    for (unsigned i = first; i < first + n; i++)
        r->freed_ms[i] = now_ms;
}

void ma_region_set_page(ma_region *r, unsigned first, unsigned n)
{
    set_slots(r, first, n, &r->pages[first]);
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

uint64_t ma_region_huge_purgeable(const ma_region *r, uint64_t old, uint32_t now_ms,
                                  uint32_t split_age_ms)
{
    enum { HALF = MA_HUGE_PAGE >> MA_SLICE_SHIFT };
    uint64_t ok = old & ma_region_old_dirty(r, now_ms, split_age_ms);
    for (unsigned h = 0; h < MA_REGION_SLICES; h += HALF) {
        uint64_t m = run_mask(h, HALF);
        if ((r->used_slices & m) == 0 && (r->dirty_slices & m & ~old) == 0)
            ok |= old & m;
    }
    return ok;
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
        uint64_t run = run_mask(first, len);
        if (ma_os_purge((uint8_t *)r + ((size_t)first << MA_SLICE_SHIFT), (size_t)len << MA_SLICE_SHIFT) ==
            MA_PURGE_LAZY)
            atomic_fetch_or_explicit(&r->lazy_slices, run, memory_order_relaxed);
        else
            atomic_fetch_and_explicit(&r->lazy_slices, ~run, memory_order_relaxed);
        d &= ~run;
    }
}

void ma_region_return_purged(ma_region *r, uint64_t slices)
{
    r->used_slices &= ~slices;
}
