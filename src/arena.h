/* Arenas: the memory that heaps allocate from (arena.c). An arena owns its
 * regions, whose slices it hands out as pages, the pages that exited
 * threads left behind (abandoned), the index of its large blocks, and its
 * budget; it purges what has stayed free for decay_ms.
 *
 * Every heap belongs to an arena. The process's ordinary allocations use
 * ma_default_arena (static, no limit, the process's mapping options, never
 * reset or destroyed); an explicit arena (mapalloc_arena_*) has its own
 * options, keeps its regions until it is reset or destroyed, and keeps its
 * large blocks out of the large cache.
 *
 * Lock order: the pool of explicit arenas', then an arena's lock, then the heap pool's
 * (heap.c) and ma_large_lock. No system call is made under an arena's lock. */
#ifndef MA_ARENA_H
#define MA_ARENA_H

#include "internal.h"
#include "large.h"
#include "page.h"
#include "region.h"

extern ma_arena ma_default_arena;

/* ---- the budget ---- */
bool ma_arena_commit(ma_arena *a, size_t bytes); /* false: past the limit */

/* ---- pages ---- */
/* A new page of class c (to be owned: ma_page_own), committed, from a
 * region of the arena (*hint first, which it updates), or a new region when
 * may_map. NULL: the limit, no room, or the kernel refused. */
ma_page *ma_arena_page_new(ma_arena *a, unsigned c, ma_region_hint *hint, bool may_map);
/* An empty page's slices go back to their region (dirty). */
void ma_arena_page_free(ma_arena *a, ma_page *page);
/* A page with live blocks whose heap goes away waits for another heap. */
void ma_arena_abandon(ma_arena *a, ma_page *page);
ma_page *ma_arena_take_abandoned(ma_arena *a, unsigned c); /* NULL: none */
bool ma_arena_claim(ma_arena *a, ma_page *page); /* out of the list if it still was there */

/* ---- purging ---- */
/* From the slow paths: a pass over the dirty slices when one is due (at
 * most every half decay, or once per clock tick past dirty_max_kb). */
void ma_arena_maybe_purge(ma_arena *a);
/* Purges the dirty slices free for at least min_age_ms, frees the
 * abandoned pages whose blocks have all come back, and unmaps the regions
 * left empty (all of them when all, else all but one; an explicit arena
 * keeps its regions). Returns the bytes given back. */
size_t ma_arena_purge(ma_arena *a, uint32_t min_age_ms, bool all);

/* ---- large blocks ---- */
void *ma_arena_large_malloc(ma_arena *a, size_t size, size_t alignment, bool zero);
/* The same with a mapping that holds room bytes (room >= size): a sampled
 * block as large as its class's blocks, size still what free_sized checks. */
void *ma_arena_large_malloc_room(ma_arena *a, size_t size, size_t room, size_t alignment, bool zero);
void ma_arena_large_free(void *p, size_t expect_size, size_t expect_align);
void *ma_arena_large_realloc(void *p, size_t size);
ma_arena *ma_arena_of_large(const void *p); /* aborts if p is no live large block */

/* ---- explicit arenas ---- */
/* flags: MAPALLOC_ARENA_*; NULL when the kernel refuses the reservation. */
ma_arena *ma_arena_new(unsigned flags, size_t limit, size_t reserve);
/* Reset: every page left in the arena's regions that no heap kept is gone
 * (the heaps have done with theirs, heap.c), so are its large blocks; with
 * give_back its regions are wiped and those past the reservation unmapped.
 * Destroy: every mapping goes, and the structure waits in the pool. */
void ma_arena_reset_space(ma_arena *a, bool give_back);
void ma_arena_destroy(ma_arena *a);
MA_NORETURN MA_COLD void ma_arena_dead(const ma_arena *a);
static inline void ma_arena_check_live(const ma_arena *a)
{
    if (ma_unlikely(a == NULL || atomic_load_explicit(&a->magic, memory_order_acquire) != MA_ARENA_LIVE))
        ma_arena_dead(a);
}

/* ---- accounts, iteration, fork ---- */
struct ma_arena_account {
    size_t live, blocks, committed, mapped, peak; /* as mapalloc_arena_stats */
    size_t regions, abandoned_pages, dirty;
    size_t large_live;  /* of live, in large blocks */
    size_t lazy;        /* bytes of lazy slices (internal.h) */
};
void ma_arena_account(ma_arena *a, struct ma_arena_account *out);
/* Remote frees collected by arenas themselves, destroyed ones included. */
void ma_arenas_collected(size_t *blocks, size_t *bytes);
/* fn on the default arena, then every live explicit one. */
void ma_arenas_foreach(void (*fn)(ma_arena *, void *), void *arg);
/* fn on every page of the arena's regions, under its lock. */
void ma_arena_foreach_page(ma_arena *a, void (*fn)(ma_page *, void *), void *arg);
void ma_arenas_lock_all(void); /* fork: every arena's lock, in order */
void ma_arenas_unlock_all(void);

#endif
