/* Regions: 4 MiB mappings aligned to 4 MiB, cut into 64 slices of 64 KiB.
 * Slice 0 is the header (page descriptors, slice bitmaps). A byte per 4 MiB
 * of address space (the region map, in .bss, touched only where regions
 * are) says which addresses are regions, so free can tell a block of ours
 * from any other address without reading memory that may not exist.
 *
 * The slice functions change the header's bitmaps: their caller, the
 * region's arena, holds its lock. None of them makes a system call except
 * ma_region_map_new, ma_region_unmap and ma_region_purge_slices, which are
 * called without it. */
#ifndef MA_REGION_H
#define MA_REGION_H

#include "internal.h"
#include "os.h"

#define MA_REGION_MAP_SIZE ((size_t)1 << (MA_ADDRESS_BITS - MA_REGION_SHIFT))

/* A byte per 4 MiB of address space: 0 no region; 1 a region whose frees
 * take the fast path; 2 a region of the secure profile, whose frees all take
 * the slow path (secure.c checks the block before it is pushed). */
enum { MA_MAP_NONE = 0, MA_MAP_FAST = 1, MA_MAP_CHECKED = 2 };
extern uint8_t ma_region_map[MA_REGION_MAP_SIZE];

/* An address the region map covers. */
static inline bool ma_region_map_covers(uintptr_t u)
{
    return (u >> MA_REGION_SHIFT) < MA_REGION_MAP_SIZE;
}

static inline bool ma_in_region(uintptr_t u)
{
    return ma_region_map_covers(u) && ma_region_map[u >> MA_REGION_SHIFT] != MA_MAP_NONE;
}

/* In a region whose frees take the fast path: the same one test answers
 * "is this a region?" and "is the secure profile off?". */
static inline bool ma_in_fast_region(uintptr_t u)
{
    return ma_region_map_covers(u) && ma_region_map[u >> MA_REGION_SHIFT] == MA_MAP_FAST;
}

static inline ma_region *ma_region_of(uintptr_t u)
{
    return (ma_region *)(u & ~(uintptr_t)(MA_REGION_SIZE - 1));
}

/* The descriptor of the page that u falls in: pages[0] (never valid: its
 * block_div is 0, so no address is a block of it) when u is in no page. */
static inline ma_page *ma_page_of(uintptr_t u)
{
    ma_region *r = ma_region_of(u);
    return &r->pages[r->slice_page[(u >> MA_SLICE_SHIFT) & (MA_REGION_SLICES - 1)]];
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
/* Claims the run for a page: returns how many of its slices were dirty. */
unsigned ma_region_take_slices(ma_region *r, unsigned first, unsigned n);
/* Gives the run back: free, dirty, freed now. */
void ma_region_give_slices(ma_region *r, unsigned first, unsigned n, uint32_t now_ms);
/* The page that starts at first spans n slices: free's lookup finds it. */
void ma_region_set_page(ma_region *r, unsigned first, unsigned n);

/* Purging, in steps so that the system calls run without the lock: the
 * dirty slices freed at least min_age_ms ago, claimed (so that no page is
 * made there meanwhile), purged, and put back clean. */
uint64_t ma_region_old_dirty(const ma_region *r, uint32_t now_ms, uint32_t min_age_ms);
void ma_region_claim_for_purge(ma_region *r, uint64_t slices);
void ma_region_purge_slices(ma_region *r, uint64_t slices); /* no lock */
void ma_region_return_purged(ma_region *r, uint64_t slices);

static inline unsigned ma_slice_count(uint64_t slices)
{
    return (unsigned)__builtin_popcountll(slices);
}

#endif
