/* Regions: 4 MiB mappings aligned to 4 MiB, cut into 64 slices of 64 KiB.
 * Slice 0 is the header (page descriptors, slice bitmaps). The page map
 * (below) names the page of every slice of every region, so free finds a
 * block's page, and tells a block of ours from any other address, with one
 * load and without reading memory that may not exist.
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
 * One table over the address space, an entry per 64 KiB slice, so that
 * free finds a block's page with one load: 2^31 entries for 47 bits, a
 * 16 GiB read-only reservation that holds no memory until written, made
 * writable 64 KiB at a time (the entries of 512 MiB) as regions arrive
 * there. Where the address space has no room for it (RLIMIT_AS), a shorter
 * table covers the first 4 TiB, 256 GiB or 16 GiB, and aligned mappings
 * are asked for below its end; a region the kernel places above the table
 * is not used.
 *
 * An entry is its page's address less the table's, so that 0, what every
 * entry reads until written, names the table's own first 256 bytes: the
 * entries of the first 2 MiB of address space, where no region can lie, so
 * they stay zero and read as a page that holds no block. How many entries
 * there are is the word just below the table, read through the same
 * pointer, so that a thread never pairs one table with another's length.
 * Before the table is made, the pointer names a length of 0. Hidden, so
 * that free loads it straight, not through the GOT. */
extern __attribute__((visibility("hidden"))) uintptr_t *ma_page_map;

/* No page: what a lookup outside the table gives, and the empty heap's
 * every table entry (its free list, MA_NO_BLOCKS, fails every pop). */
extern ma_page ma_empty_page;

/* The descriptor of the page that u falls in, or a descriptor that holds
 * no block (ma_empty_page or the table's head) when u is in no page: six
 * instructions, one load of the pointer, the compare with the length, the
 * entry added to the pointer. The entries are read plainly: a stale one
 * names no page, or a page whose own checks turn the address away. */
static inline ma_page *ma_page_lookup(uintptr_t u)
{
    const uintptr_t *map = ma_page_map;
    uintptr_t slice = u >> MA_SLICE_SHIFT;
    if (ma_unlikely(slice >= map[-1]))
        return &ma_empty_page;
    return (ma_page *)((uintptr_t)map + map[slice]);
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
