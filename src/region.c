/* Regions: the mapping, the region map, and the slice bitmaps of the
 * header. See region.h. */
#include "region.h"

static uintptr_t no_map[1]; /* the length of the table that is not there yet */
uintptr_t *ma_page_map = no_map + 1;
ma_page ma_empty_page = {.free = MA_NO_BLOCKS};

_Static_assert(sizeof(ma_region) <= MA_SLICE_SIZE - MA_GUARD_SIZE,
               "the region header fits in slice 0, before the secure profile's guard");
_Static_assert(sizeof(ma_page) == 256, "a page descriptor is 256 bytes: the page index is a shift");
_Static_assert(sizeof(ma_page) <= (MA_REGION_SIZE >> MA_SLICE_SHIFT) * sizeof(uintptr_t),
               "the table's head, read as a page, is the entries of addresses where no region lies");

/* The table's reach, longest first: what the address space makes room for. */
static const unsigned map_bits[] = {MA_ADDRESS_BITS, 42, 38, 34};
#define CHUNK_BYTES ((size_t)64 << 10) /* made writable at once */
#define CHUNK_SLOTS (CHUNK_BYTES / sizeof(uintptr_t))
#define MAX_CHUNKS (((size_t)1 << (MA_ADDRESS_BITS - MA_SLICE_SHIFT)) / CHUNK_SLOTS)
static _Atomic uint64_t writable[MAX_CHUNKS / 64]; /* bit c: chunk c is writable */

/* A table in a reservation whose first OS page holds its length. */
static uintptr_t *map_reserve(void)
{
    for (size_t i = 0; i < sizeof map_bits / sizeof map_bits[0]; i++) {
        size_t slots = (size_t)1 << (map_bits[i] - MA_SLICE_SHIFT);
        size_t bytes = MA_OS_PAGE + slots * sizeof(uintptr_t);
        uint8_t *m = ma_os_reserve(bytes, ma_os_default_flags());
        if (m == NULL)
            continue;
        if (!ma_os_unguard(m, MA_OS_PAGE)) {
            ma_os_unreserve(m, bytes);
            continue;
        }
        uintptr_t *map = (uintptr_t *)(m + MA_OS_PAGE);
        map[-1] = slots;
        ma_os_hint_below((uintptr_t)1 << map_bits[i]);
        return map;
    }
    return NULL;
}

/* The table, made on the first call; NULL when the kernel refuses. Two
 * threads may make one each: the second unmaps its own. */
static uintptr_t *page_map(void)
{
    uintptr_t *map = __atomic_load_n(&ma_page_map, __ATOMIC_ACQUIRE);
    if (map[-1] != 0)
        return map;
    uintptr_t *mine = map_reserve();
    if (mine == NULL)
        return NULL;
    if (__atomic_compare_exchange_n(&ma_page_map, &map, mine, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return mine;
    ma_os_unreserve((uint8_t *)mine - MA_OS_PAGE, MA_OS_PAGE + mine[-1] * sizeof(uintptr_t));
    return map;
}

/* The entries of the region at u can be written: in the table, and their
 * chunk writable. Chunks stay so: a stale lookup never faults. */
static bool map_ready(uintptr_t *map, uintptr_t u)
{
    uintptr_t slice = u >> MA_SLICE_SHIFT;
    if (slice + MA_REGION_SLICES > map[-1])
        return false;
    size_t c = slice / CHUNK_SLOTS;
    uint64_t bit = (uint64_t)1 << (c % 64);
    if (atomic_load_explicit(&writable[c / 64], memory_order_acquire) & bit)
        return true;
    if (!ma_os_unguard(map + c * CHUNK_SLOTS, CHUNK_BYTES))
        return false;
    atomic_fetch_or_explicit(&writable[c / 64], bit, memory_order_release);
    return true;
}

/* The slices first..first+n of r name page (NULL: no page). */
static void set_slots(ma_region *r, unsigned first, unsigned n, const ma_page *page)
{
    uintptr_t *map = ma_page_map;
    uintptr_t entry = page ? (uintptr_t)page - (uintptr_t)map : 0;
    _Atomic uintptr_t *slot = (_Atomic uintptr_t *)&map[((uintptr_t)r >> MA_SLICE_SHIFT) + first];
    for (unsigned i = 0; i < n; i++)
        atomic_store_explicit(&slot[i], entry, memory_order_release);
}

ma_region *ma_region_map_new(unsigned map_flags, ma_arena *arena)
{
    uintptr_t *map = page_map();
    if (map == NULL)
        return NULL;
    ma_region *r = ma_os_map(MA_REGION_SIZE, MA_REGION_SIZE, map_flags);
    if (r == NULL)
        return NULL;
    /* Above what the page map covers (5-level page tables, a kernel that
     * ignored our hint): not usable, free could not find it. */
    if (!map_ready(map, (uintptr_t)r)) {
        ma_os_unmap(r, MA_REGION_SIZE);
        return NULL;
    }
    /* In the secure profile, a guard between the header and the first page;
     * a region the kernel will not guard is not used. */
    if (ma_secure && !ma_os_guard((uint8_t *)r + MA_SLICE_SIZE - MA_GUARD_SIZE, MA_GUARD_SIZE)) {
        ma_os_unmap(r, MA_REGION_SIZE);
        return NULL;
    }
    /* The region's entries name no page until pages claim them. */
    r->used_slices = 1;
    r->map_flags = map_flags;
    r->arena = arena;
    return r;
}

void ma_region_unmap(ma_region *r)
{
    set_slots(r, 0, MA_REGION_SLICES, NULL); /* a destroyed arena's pages still named it */
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
    set_slots(r, first, n, NULL);
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
