/* Regions: 4 MiB mappings aligned to 4 MiB, cut into 64 slices of 64 KiB.
 * Slice 0 is the header (page descriptors, slice bitmaps). The page map
 * (below) names the page of every slice of every region, so free finds a
 * block's page, and tells a block of ours from any other address, with two
 * loads and without reading memory that may not exist.
 *
 * The slice functions change the header's bitmaps: their caller, the
 * region's arena, holds its lock. None of them makes a system call except
 * ma_region_map_new, ma_region_unmap and ma_region_purge_slices, which are
 * called without it. */
#ifndef MA_REGION_H
#define MA_REGION_H

#include "internal.h"
#include "os.h"

/* ---- the page map ----
 *
 * Two levels over the 47-bit address space: a top table in .bss (2^18
 * entries, 2 MiB of address space, touched only where regions are) of
 * leaves, each a mapping of 8192 page pointers for 512 MiB, made when the
 * first region there is. A slice of a page names the page's descriptor;
 * any other slice of a leaf names ma_empty_page, whose block_div of 0 makes
 * it hold no block. A region the kernel places above the map is not used. */
#define MA_LEAF_SHIFT 29
#define MA_LEAF_SLOTS ((size_t)1 << (MA_LEAF_SHIFT - MA_SLICE_SHIFT))
#define MA_PAGE_MAP_SIZE ((size_t)1 << (MA_ADDRESS_BITS - MA_LEAF_SHIFT))
_Static_assert(MA_REGION_SHIFT < MA_LEAF_SHIFT, "a region lies within one leaf");
/* An entry is its leaf's address less the offset that u >> MA_SLICE_SHIFT
 * adds for the leaf's top bits (ma_leaf_bias), so that the lookup indexes it
 * with the slice number itself, with no mask; 0: no leaf. */
extern uintptr_t ma_page_map[MA_PAGE_MAP_SIZE];

static inline uintptr_t ma_leaf_bias(uintptr_t top)
{
    return (top << (MA_LEAF_SHIFT - MA_SLICE_SHIFT)) * sizeof(ma_page *);
}

/* No page: the slices of a leaf outside any page, and the empty heap's
 * every table entry (its free list, MA_NO_BLOCKS, fails every pop). */
extern ma_page ma_empty_page;

/* An address the page map covers. */
static inline bool ma_page_map_covers(uintptr_t u)
{
    return (u >> MA_LEAF_SHIFT) < MA_PAGE_MAP_SIZE;
}

/* The descriptor of the page that u falls in, or ma_empty_page when u is
 * in no page (nor in a region, nor near one). */
static inline ma_page *ma_page_lookup(uintptr_t u)
{
    uintptr_t top = u >> MA_LEAF_SHIFT;
    if (ma_unlikely(top >= MA_PAGE_MAP_SIZE))
        return &ma_empty_page;
    uintptr_t biased = ma_page_map[top];
    if (ma_unlikely(biased == 0))
        return &ma_empty_page;
    return *(ma_page **)(biased + (u >> MA_SLICE_SHIFT) * sizeof(ma_page *));
}

/* The page of a small or medium block at u, or NULL: a large block's
 * address, or not ours. */
static inline ma_page *ma_block_page(uintptr_t u)
{
    ma_page *page = ma_page_lookup(u);
    return page->slices ? page : NULL;
}

static inline ma_region *ma_region_of(uintptr_t u)
{
    return (ma_region *)(u & ~(uintptr_t)(MA_REGION_SIZE - 1));
}

/* A page's descriptor lives in its region's header, and the page starts at
 * its first slice. */
static inline ma_region *ma_page_region(const ma_page *page)
{
    return ma_region_of((uintptr_t)page);
}

static inline uint8_t *ma_page_start(const ma_page *page)
{
    return (uint8_t *)ma_page_region(page) + ((size_t)page->first_slice << MA_SLICE_SHIFT);
}

/* The pages of r: for (ma_page *p = ...; p; p = ma_region_next_page(r, p)). */
ma_page *ma_region_next_page(ma_region *r, ma_page *after); /* after NULL: the first */

ma_region *ma_region_map_new(unsigned map_flags, ma_arena *arena); /* NULL: refused */
void ma_region_unmap(ma_region *r);          /* its pages must all be free */
bool ma_region_is_empty(const ma_region *r); /* no page, nothing being purged */

/* A free run of n slices starting at a multiple of align, preferring one
 * that is resident already (dirty), or only such a one: the first slice,
 * or -1. */
int ma_region_find_run(const ma_region *r, unsigned n, unsigned align, bool dirty_only);
/* The longest free run starting at a multiple of align, at most max slices
 * long: its length (0: none), its first slice in *first. */
unsigned ma_region_longest_run(const ma_region *r, unsigned align, unsigned max, unsigned *first);
/* Claims the run for a page: returns how many of its slices were dirty
 * (and forgets which were lazily freed: a page uses them now). */
unsigned ma_region_take_slices(ma_region *r, unsigned first, unsigned n);
/* Gives the run back: free, dirty, freed now. */
void ma_region_give_slices(ma_region *r, unsigned first, unsigned n, uint32_t now_ms);
/* The page that starts at first spans n slices: free's lookup finds it. */
void ma_region_set_page(ma_region *r, unsigned first, unsigned n);

/* Purging, in steps so that the system calls run without the lock: the
 * dirty slices freed at least min_age_ms ago, claimed (so that no page is
 * made there meanwhile), purged, and put back clean. The purge marks the
 * slices that went with MADV_FREE in lazy_slices. */
uint64_t ma_region_old_dirty(const ma_region *r, uint32_t now_ms, uint32_t min_age_ms);
/* Of those, in a region of transparent huge pages (thp=1), the ones a
 * purge takes without splitting a huge page: the slices of each 2 MiB half
 * where no slice is used and none dirty but younger, whose purge gives the
 * huge page back whole; the others only when they have waited split_age_ms
 * as well (the program idle: a split costs it nothing then). */
uint64_t ma_region_huge_purgeable(const ma_region *r, uint64_t old, uint32_t now_ms,
                                  uint32_t split_age_ms);
void ma_region_claim_for_purge(ma_region *r, uint64_t slices);
void ma_region_purge_slices(ma_region *r, uint64_t slices); /* no lock */
void ma_region_return_purged(ma_region *r, uint64_t slices);

static inline unsigned ma_slice_count(uint64_t slices)
{
    return (unsigned)__builtin_popcountll(slices);
}

#endif
