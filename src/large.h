/* Large blocks: above MA_LARGE_THRESHOLD a block is a mapping of its own,
 * starting at the block, with no header in front of it (large.c).
 *
 * Each live large block is recorded in an address-keyed table, with its
 * size and the set (an arena's index of its large blocks) it belongs to.
 * The caller (the arena) counts the mapping against its budget before a
 * block is made, and takes it off after it is gone. */
#ifndef MA_LARGE_H
#define MA_LARGE_H

#include "internal.h"

/* The pages a block of size bytes needs (0: too large for any). */
size_t ma_large_map_size(size_t size);
/* The mapping a new block of size bytes gets in set: those pages, rounded up
 * to 2 MiB when they are to be huge ones in the default arena (and that
 * adds at most 1 MiB). */
size_t ma_large_set_map_size(const ma_large_set *set, size_t size);

/* A new block of size bytes in a mapping of map_size bytes (from
 * ma_large_set_map_size), recorded in set; a freed mapping from the cache when
 * the set uses it. NULL: the kernel refused. */
void *ma_large_malloc(size_t size, size_t map_size, size_t alignment, bool zero, ma_large_set *set,
                      unsigned map_flags);
/* The set and mapping size of a live large block; aborts naming the misuse
 * (double free, invalid pointer) if p is none. */
ma_large_set *ma_large_lookup(const void *p, size_t *map_size);
/* Frees a live block (expect_size, expect_align: what free_sized and
 * free_aligned_sized say of it, 0 when unknown); returns its mapping size
 * and, in *set, the set it was in. */
size_t ma_large_free(void *p, size_t expect_size, size_t expect_align, ma_large_set **set);
/* The mapping a block of old_map bytes gets when realloc asks for size:
 * old_map when it already fits. */
size_t ma_large_resized(const ma_large_set *set, size_t old_map, size_t size);
/* Moves the block's mapping to new_map bytes (ma_large_resized), in place
 * when the kernel can, else by moving its page tables. NULL, the block
 * intact, when the kernel refuses. */
void *ma_large_realloc(void *p, size_t size, size_t new_map);
size_t ma_large_usable_size(const void *p);
size_t ma_large_requested_size(const void *p);
/* Unmaps every block of the set (an arena reset or destroy); returns the
 * bytes unmapped. A later free of one of them is a double free. */
size_t ma_large_unmap_set(ma_large_set *set);
/* Unmaps the cached mappings (all of them, or those older than the decay);
 * returns the bytes. */
size_t ma_large_trim(bool all);

/* The bytes in the cache (a relaxed read, without the lock). */
size_t ma_large_cached_bytes(void);

/* Accounts. */
void ma_large_stats(size_t *mapped, size_t *blocks, size_t *live);
void ma_large_set_stats(ma_large_set *set, size_t *live, size_t *blocks);
extern ma_spinlock ma_large_lock; /* fork takes it */

#endif
