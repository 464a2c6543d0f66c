/* Size classes: the mapping between request sizes and block sizes.
 *
 * Spacing: 16-byte steps up to 128 bytes (every block stays 16-byte aligned,
 * so a 16-byte step is the finest possible); then each power of two
 * (2^k, 2^(k+1)] is cut in four equal steps, but two are cut in eight:
 * (256, 512], the size of a program's objects with a few fields and their
 * strings (jq's values ask for about 390 bytes, which took 448 and take
 * 416), and (4 KiB, 8 KiB], a page of 4 KiB with a small header (a
 * database's page cache, I/O buffers with their bookkeeping). That one's
 * first quarter, (4 KiB, 5 KiB], is cut in 128-byte steps, where the headers
 * are: sqlite asks for 4 KiB + 8 bytes and 4 KiB + 272, which took 4.5 KiB
 * each and take 4,224 and 4,480 bytes. Rounding a request up to its class
 * wastes at most 15 bytes below 128 bytes, less than 3% of the block just
 * above 4 KiB, less than 12% in the two fine doublings and less than 20%
 * elsewhere (the worst case is 2^k+1 rounded to 2^k + 2^(k-2)). Each class
 * more costs memory too, in pages part full: eighths everywhere below 8 KiB
 * cost the suite 4% of its peak.
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
/* The two doublings cut in eight: (2^k, 2^(k+1)] for these k. */
#define MA_OBJECT_SHIFT 8
#define MA_FINE_SHIFT 12
/* The fine doubling's first quarter, (2^12, 2^12 + 2^10], in steps of
 * 2^MA_HEADER_STEP_SHIFT: eight classes where eighths would have two, so
 * that doubling has 14 classes (MA_FINE_CLASSES). */
#define MA_HEADER_STEP_SHIFT 7
#define MA_HEADER_CLASSES 8
#define MA_HEADER_MAX (((size_t)1 << MA_FINE_SHIFT) + ((size_t)MA_HEADER_CLASSES << MA_HEADER_STEP_SHIFT))
#define MA_FINE_CLASSES                                                         \
    (MA_HEADER_CLASSES + (((1 << MA_FINE_SHIFT) - (MA_HEADER_CLASSES << MA_HEADER_STEP_SHIFT)) >> (MA_FINE_SHIFT - 3)))
/* The classes below doubling k (k >= 7): four for each doubling from 2^7,
 * and the fine doublings' more. */
#define MA_CLASSES_BELOW(k)                                                     \
    (MA_LINEAR_CLASSES + 4 * ((k)-7) + 4 * ((k) > MA_OBJECT_SHIFT) +            \
     (MA_FINE_CLASSES - 4) * ((k) > MA_FINE_SHIFT))
#define MA_CLASS_COUNT MA_CLASSES_BELOW(MA_LARGE_THRESHOLD_SHIFT) /* 70 */

/* Requests up to MA_DIRECT_MAX find their page through the heap's direct
 * table (one load), indexed by (size + 15) / 16. */
#define MA_DIRECT_MAX ((size_t)1024)
#define MA_DIRECT_COUNT (MA_DIRECT_MAX / MA_SMALL_STEP + 1)

/* Block size of class c, as a constant expression: the i-th class (from 0)
 * of doubling k, cut in 2^d, is 2^k + (i + 1) * 2^(k - d); in the fine
 * doubling, the i-th is 2^12 + (i + 1) * 128 up to MA_HEADER_MAX and then
 * MA_HEADER_MAX + (i - 7) * 512. Doubling k of class c is the one whose
 * first class is at most c: k counts them. */
#define MA_DOUBLING_EXPR(c)                                                     \
    (7 + ((c) >= MA_CLASSES_BELOW(8)) + ((c) >= MA_CLASSES_BELOW(9)) + ((c) >= MA_CLASSES_BELOW(10)) + \
     ((c) >= MA_CLASSES_BELOW(11)) + ((c) >= MA_CLASSES_BELOW(12)) + ((c) >= MA_CLASSES_BELOW(13)) +  \
     ((c) >= MA_CLASSES_BELOW(14)) + ((c) >= MA_CLASSES_BELOW(15)) + ((c) >= MA_CLASSES_BELOW(16)) +  \
     ((c) >= MA_CLASSES_BELOW(17)) + ((c) >= MA_CLASSES_BELOW(18)))
#define MA_STEP_SIZE_EXPR(k, c)                                                 \
    (((size_t)1 << (k)) +                                                       \
     ((size_t)((c)-MA_CLASSES_BELOW(k)) + 1) * ((size_t)1 << ((k) - ((k) == MA_OBJECT_SHIFT ? 3 : 2))))
#define MA_FINE_SIZE_EXPR(c)                                                    \
    ((c)-MA_CLASSES_BELOW(MA_FINE_SHIFT) < MA_HEADER_CLASSES                     \
         ? ((size_t)1 << MA_FINE_SHIFT) +                                        \
               ((size_t)((c)-MA_CLASSES_BELOW(MA_FINE_SHIFT)) + 1) * ((size_t)1 << MA_HEADER_STEP_SHIFT) \
         : MA_HEADER_MAX + ((size_t)((c)-MA_CLASSES_BELOW(MA_FINE_SHIFT)) - MA_HEADER_CLASSES + 1) * \
                               ((size_t)1 << (MA_FINE_SHIFT - 3)))
#define MA_CLASS_SIZE_EXPR(c)                                                   \
    ((c) < MA_LINEAR_CLASSES ? ((size_t)(c) + 1) * MA_SMALL_STEP                \
     : MA_DOUBLING_EXPR(c) == MA_FINE_SHIFT ? MA_FINE_SIZE_EXPR(c)              \
                                            : MA_STEP_SIZE_EXPR(MA_DOUBLING_EXPR(c), (c)))

/* The sizes as a table, from the formula at compile time: the formula
 * itself takes a dozen compares and shifts when c is not a constant. */
#define MA_CS(c) ((uint32_t)MA_CLASS_SIZE_EXPR(c)) /* the cast: the untaken arm of a small class */
#define MA_CS4(c) MA_CS(c), MA_CS((c) + 1), MA_CS((c) + 2), MA_CS((c) + 3)
#define MA_CS16(c) MA_CS4(c), MA_CS4((c) + 4), MA_CS4((c) + 8), MA_CS4((c) + 12)
static const uint32_t ma_class_sizes[] = {MA_CS16(0),  MA_CS16(16), MA_CS16(32),
                                           MA_CS16(48), MA_CS4(64),  MA_CS(68), MA_CS(69)};
_Static_assert(sizeof ma_class_sizes / sizeof ma_class_sizes[0] == MA_CLASS_COUNT, "one size per class");

static inline size_t ma_class_size(unsigned c)
{
    return ma_class_sizes[c];
}

/* The class that serves a request of size bytes (size <= MA_LARGE_THRESHOLD).
 * A bit scan and a shift; no table. */
static inline unsigned ma_size_class(size_t size)
{
    if (size <= MA_LINEAR_MAX)
        return size == 0 ? 0 : (unsigned)((size - 1) >> MA_SMALL_STEP_SHIFT);
    size_t s = size - 1;
    unsigned k = 63u - (unsigned)__builtin_clzll((unsigned long long)s); /* 2^k <= s < 2^(k+1) */
    if (k == MA_FINE_SHIFT)
        return MA_CLASSES_BELOW(MA_FINE_SHIFT) +
               (s < MA_HEADER_MAX ? (unsigned)((s - ((size_t)1 << k)) >> MA_HEADER_STEP_SHIFT)
                                  : MA_HEADER_CLASSES + (unsigned)((s - MA_HEADER_MAX) >> (k - 3)));
    unsigned quarter = (unsigned)((s - ((size_t)1 << k)) >> (k - 2));
    unsigned c = MA_LINEAR_CLASSES + (k - 7) * 4 + quarter;
    /* The object doubling's eighth is twice the quarter plus the next bit;
     * every doubling above a fine one comes its extra classes later. */
    if (k >= MA_OBJECT_SHIFT)
        c += k == MA_OBJECT_SHIFT ? quarter + (unsigned)((s >> (k - 3)) & 1) : 4;
    if (k > MA_FINE_SHIFT)
        c += MA_FINE_CLASSES - 4;
    return c;
}

/* A page is a run of 64 KiB slices holding blocks of one class. Its length
 * is, of the lengths from the fewest slices that hold eight blocks (four of
 * 32 KiB or more: a page that one live block keeps resident holds half as
 * many free ones) up to twice that, the shortest whose tail keeps at most
 * 1/64 of it resident, or else the one whose tail keeps the smallest share
 * (the shortest of equals). What is resident of a tail is the rest of the
 * kernel page the last block ends in: the kernel pages past it are never
 * touched. Short pages cost less where live blocks keep pages part used:
 * each class of each thread keeps a page or two part used, and fewer
 * blocks to a page leave fewer free ones in them. For the classes where
 * eight blocks need more than 31 slices, the length is the fewest slices
 * that hold as many blocks as 31 slices do (three to seven of the largest
 * classes). A region (63 slices for pages) holds two pages even of the
 * largest classes. A page starts at a multiple of the largest power of two
 * that divides its block size, in slices (at least one): every block of a
 * power-of-two class is then aligned to its size, which aligned_alloc
 * relies on. Where a region has no run that long left, a page may be
 * shorter (arena.c): page->slices and page->reserved say. */
#define MA_SLICE_SHIFT 16
#define MA_SLICE_SIZE ((size_t)1 << MA_SLICE_SHIFT)
#define MA_OS_PAGE ((size_t)4096) /* the kernel's page */
#define MA_PAGE_TAIL_SHARE 64 /* a page's tail may keep 1/64 of it resident */
#define MA_PAGE_MIN_BLOCKS 8
#define MA_BIG_BLOCK ((size_t)32 << 10)
#define MA_BIG_PAGE_MIN_BLOCKS 4
#define MA_MAX_PAGE_SLICES 31u
#define MA_CEIL_DIV(a, b) (((a) + (b)-1) / (b))

/* The blocks a page of blocks of size bytes is sized for, at least. */
static inline size_t ma_page_min_blocks(size_t size)
{
    return size >= MA_BIG_BLOCK ? MA_BIG_PAGE_MIN_BLOCKS : MA_PAGE_MIN_BLOCKS;
}

/* The resident bytes at the tail of a page of n slices of blocks of size
 * bytes: from its last block's end to the end of that kernel page. */
static inline size_t ma_page_tail_waste(size_t n, size_t size)
{
    size_t end = n * MA_SLICE_SIZE / size * size;
    return MA_CEIL_DIV(end, MA_OS_PAGE) * MA_OS_PAGE - end;
}

static inline unsigned ma_class_slices(unsigned c)
{
    size_t size = ma_class_size(c);
    size_t least = MA_CEIL_DIV(size * ma_page_min_blocks(size), MA_SLICE_SIZE);
    if (least > MA_MAX_PAGE_SLICES) {
        size_t blocks = MA_MAX_PAGE_SLICES * MA_SLICE_SIZE / size;
        return (unsigned)MA_CEIL_DIV(blocks * size, MA_SLICE_SIZE);
    }
    size_t best = least, best_waste = ma_page_tail_waste(least, size);
    for (size_t n = least + 1; n <= 2 * least && n <= MA_MAX_PAGE_SLICES; n++) {
        if (best_waste * MA_PAGE_TAIL_SHARE <= best * MA_SLICE_SIZE)
            break; /* short enough, and its tail costs little */
        size_t waste = ma_page_tail_waste(n, size);
        if (waste * best < best_waste * n) { /* waste / n < best_waste / best */
            best = n;
            best_waste = waste;
        }
    }
    return (unsigned)best;
}

/* The alignment of a page of class c, in slices. */
static inline unsigned ma_class_align_slices(unsigned c)
{
    size_t size = ma_class_size(c);
    size_t pow2 = size & (~size + 1); /* the largest power of two dividing size */
    return pow2 > MA_SLICE_SIZE ? (unsigned)(pow2 >> MA_SLICE_SHIFT) : 1u;
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
