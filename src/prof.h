/* The sampling heap profiler (prof.c): which stacks the live memory was
 * allocated from, estimated from samples drawn by bytes.
 *
 * Sampling is a Poisson process over the bytes allocated: the gap to the
 * next sample is drawn from an exponential distribution of mean
 * prof_sample_kb, so a block of s bytes is sampled with probability
 * 1 - exp(-s / interval) whatever the pattern of the program's requests,
 * and a sample stands for s / that probability bytes.
 *
 * The fast path counts nothing. Each heap keeps, per class, the bytes left
 * until that class's next sample, and the slow path, which hands the fast
 * path its page, limits the blocks the fast path may take from it to those
 * that fit before the sample (the rest of the page's free list waits on its
 * local list, which also stops fresh blocks): the allocation that comes
 * back to the slow path when they run out is the sample. With prof=0 none
 * of this runs, and the fast paths are those of a build without the
 * profiler. A sampled block is served as a large block, so its free leaves
 * the fast path by itself (free of a block that is in no page), and a free
 * of a block in a page needs no test. Large blocks are sampled on their own
 * path, with a countdown per thread (as every allocation of the secure
 * profile, which has no fast path).
 *
 * Blocks of explicit arenas are not sampled: a reset frees them all at
 * once, without a free to see. */
#ifndef MA_PROF_H
#define MA_PROF_H

#include "arena.h"
#include "internal.h"
#include "page.h"

/* What the slow path of a heap of the default arena returns, instead of a
 * block, when the allocation is a sample: the caller (api.c), which knows
 * the size asked for, calls ma_prof_sample. Never a block address. */
#define MA_PROF_DUE ((void *)16)

extern ma_spinlock ma_prof_lock; /* the profile's tables (fork takes it) */

/* ---- the handout of pages (heap.c, with ma_prof_pages) ---- */

/* The fast path no longer has the page handed out for class c: what it
 * took from it counts towards the class's next sample. */
void ma_prof_settle(ma_heap *heap, unsigned c);
/* The slow path gives the fast path page (its local list empty): a block
 * of it for the allocation at hand, or MA_PROF_DUE when that allocation is
 * a sample; the page then holds for the fast path only the blocks that fit
 * before the next sample. */
void *ma_prof_handout(ma_heap *heap, ma_page *page);

/* ---- samples (api.c) ---- */

/* A sampled allocation of size bytes (alignment, or 0) counted as a block of
 * block_size: a large block, recorded with the caller's stack. NULL when
 * there is no memory for it (the caller serves it as usual, unsampled). */
void *ma_prof_sample(size_t size, size_t alignment, size_t block_size, bool zero);
/* The calling thread's countdown, for allocations that do not come from
 * handed-out pages (large blocks, the secure profile): true when the
 * allocation of block_size bytes is a sample. */
bool ma_prof_tick(size_t block_size);
/* A large block of the default arena just made: recorded if it is a sample. */
void ma_prof_large(void *p, size_t size);
/* Any block that is in no page is being freed (or moved by realloc): its
 * sample, if it has one, leaves the live set. */
void ma_prof_free(const void *p);

/* ---- accounts ---- */
size_t ma_prof_mapped(void); /* bytes the profiler's tables map */

#endif
