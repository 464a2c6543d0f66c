/* Size classes: the mapping between request sizes and block sizes.
 *
 * Spacing: 16-byte steps up to 128 bytes (every block stays 16-byte aligned,
 * so a 16-byte step is the finest possible), then four classes per power of
 * two: (2^k, 2^(k+1)] is cut in steps of 2^(k-2). Rounding a request up to its
 * class wastes at most 15 bytes below 128 bytes and less than 20% of the
 * block above (the worst case is 2^k+1 rounded to 2^k + 2^(k-2)).
 * Every power of two is a class, so a block of a power-of-two class in a page
 * aligned to that power is naturally aligned: aligned_alloc uses this.
 *
 * Classes end at MA_LARGE_THRESHOLD (512 KiB); larger requests get a mapping
 * of their own (large.c). Nothing here is typed by hand: sizes, page spans and
 * the table come from the two formulas below, at compile time.
 */
#ifndef MA_SIZE_CLASS_H
#define MA_SIZE_CLASS_H

#include <stddef.h>
#include <stdint.h>

#define MA_SMALL_STEP_SHIFT 4
#define MA_SMALL_STEP ((size_t)1 << MA_SMALL_STEP_SHIFT)        /* 16 */
#define MA_LINEAR_MAX ((size_t)128)                           /* 16-byte steps up to here */
#define MA_LINEAR_CLASSES 8                                   /* 16, 32, ..., 128 */
#define MA_LARGE_THRESHOLD_SHIFT 19
#define MA_LARGE_THRESHOLD ((size_t)1 << MA_LARGE_THRESHOLD_SHIFT) /* 512 KiB */
/* Four classes per doubling from 2^7 to the threshold. */
#define MA_CLASS_COUNT (MA_LINEAR_CLASSES + 4 * (MA_LARGE_THRESHOLD_SHIFT - 7)) /* 56 */

/* Requests up to MA_DIRECT_MAX find their page through the heap's direct
 * table (one load), indexed by (size + 15) / 16. */
#define MA_DIRECT_MAX ((size_t)1024)
#define MA_DIRECT_COUNT (MA_DIRECT_MAX / MA_SMALL_STEP + 1)

/* Block size of class c, as a constant expression. */
#define MA_CLASS_SIZE_EXPR(c)                                                  \
    ((c) < MA_LINEAR_CLASSES                                                   \
         ? ((size_t)(c) + 1) * MA_SMALL_STEP                                   \
         : ((size_t)1 << (7 + ((c) - MA_LINEAR_CLASSES) / 4)) +                \
               ((size_t)(((c) - MA_LINEAR_CLASSES) % 4) + 1) *                 \
                   ((size_t)1 << (5 + ((c) - MA_LINEAR_CLASSES) / 4)))

static inline size_t ma_class_size(unsigned c)
{
    return MA_CLASS_SIZE_EXPR(c);
}

/* The class that serves a request of size bytes (size <= MA_LARGE_THRESHOLD).
 * A bit scan and a shift; no table. */
static inline unsigned ma_size_class(size_t size)
{
    if (size <= MA_LINEAR_MAX)
        return size == 0 ? 0 : (unsigned)((size - 1) >> MA_SMALL_STEP_SHIFT);
    size_t s = size - 1;
    unsigned k = 63u - (unsigned)__builtin_clzll((unsigned long long)s); /* 2^k <= s < 2^(k+1) */
    unsigned quarter = (unsigned)((s - ((size_t)1 << k)) >> (k - 2));
    return MA_LINEAR_CLASSES + (k - 7) * 4 + quarter;
}

/* A page is a run of 64 KiB slices holding blocks of one class. Its length is
 * the smallest power of two of slices that holds eight blocks, up to 32 slices
 * (2 MiB, half a region), so medium classes keep their tail waste small; the
 * classes above 256 KiB get four to seven blocks. A page stays aligned to its
 * own length (which aligned_alloc relies on). */
#define MA_SLICE_SHIFT 16
#define MA_SLICE_SIZE ((size_t)1 << MA_SLICE_SHIFT)
#define MA_PAGE_MIN_BLOCKS 8
#define MA_CLASS_SLICES_EXPR(c)                                                \
    (MA_CLASS_SIZE_EXPR(c) * MA_PAGE_MIN_BLOCKS <= MA_SLICE_SIZE       ? 1u  \
     : MA_CLASS_SIZE_EXPR(c) * MA_PAGE_MIN_BLOCKS <= 2 * MA_SLICE_SIZE  ? 2u  \
     : MA_CLASS_SIZE_EXPR(c) * MA_PAGE_MIN_BLOCKS <= 4 * MA_SLICE_SIZE  ? 4u  \
     : MA_CLASS_SIZE_EXPR(c) * MA_PAGE_MIN_BLOCKS <= 8 * MA_SLICE_SIZE  ? 8u  \
     : MA_CLASS_SIZE_EXPR(c) * MA_PAGE_MIN_BLOCKS <= 16 * MA_SLICE_SIZE ? 16u \
                                                                        : 32u)
#define MA_MAX_PAGE_SLICES 32u

static inline unsigned ma_class_slices(unsigned c)
{
    return MA_CLASS_SLICES_EXPR(c);
}

/* The class to use for an aligned request: the first class at or above both
 * size and alignment whose block size is a multiple of the alignment (a power
 * of two class always is). Returns MA_CLASS_COUNT when none fits. */
static inline unsigned ma_aligned_class(size_t size, size_t alignment)
{
    size_t need = size > alignment ? size : alignment;
    if (need > MA_LARGE_THRESHOLD)
        return MA_CLASS_COUNT;
    unsigned c = ma_size_class(need);
    while (c < MA_CLASS_COUNT && (ma_class_size(c) & (alignment - 1)) != 0)
        c++;
    return c;
}

#endif
