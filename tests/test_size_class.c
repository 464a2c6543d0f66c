/* Unit test of the size classes (src/size_class.h): the rounding bound, the
 * order of the classes, the round trip size -> class -> size for every size up
 * to the large threshold, and the aligned-class and page-span helpers. */
#include "check.h"
#include "size_class.h"

#include <stdbool.h>
#include <stdio.h>

static bool is_pow2(size_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

/* Class sizes: strictly increasing multiples of 16, ending at the threshold. */
static void test_class_table(void)
{
    CHECK(MA_CLASS_COUNT >= 2);
    size_t prev = 0;
    for (unsigned c = 0; c < MA_CLASS_COUNT; c++) {
        size_t s = ma_class_size(c);
        CHECKF(s % 16 == 0, "class %u size %zu", c, s);
        CHECKF(s > prev, "class %u size %zu after %zu", c, s, prev);
        CHECKF(ma_size_class(s) == c, "class %u size %zu maps to %u", c, s, ma_size_class(s));
        CHECKF(s == MA_CLASS_SIZE_EXPR(c), "class %u", c);
        prev = s;
    }
    CHECK(ma_class_size(0) == MA_SMALL_STEP);
    CHECK(ma_class_size(MA_CLASS_COUNT - 1) == MA_LARGE_THRESHOLD);
    CHECK(ma_size_class(MA_LARGE_THRESHOLD) == MA_CLASS_COUNT - 1);

    /* The class sizes are usable as array bounds in constant expressions. */
    static const size_t as_constant[] = {MA_CLASS_SIZE_EXPR(0), MA_CLASS_SIZE_EXPR(MA_CLASS_COUNT - 1)};
    CHECK(as_constant[1] == MA_LARGE_THRESHOLD);
}

/* Every size: the class fits it, it is the smallest class that does, the
 * waste is bounded, and the mapping never goes down as the size grows. */
static void test_every_size(void)
{
    unsigned prev_class = 0;
    for (size_t size = 0; size <= MA_LARGE_THRESHOLD; size++) {
        unsigned c = ma_size_class(size);
        CHECKF(c < MA_CLASS_COUNT, "size %zu -> class %u", size, c);
        size_t block = ma_class_size(c);
        CHECKF(block >= size, "size %zu -> class %u of %zu bytes", size, c, block);
        /* Smallest fit: the class below is too small. */
        if (c > 0)
            CHECKF(ma_class_size(c - 1) < size, "size %zu -> class %u but class %u (%zu) fits",
                   size, c, c - 1, ma_class_size(c - 1));
        /* Rounding bound: at most 15 bytes, or less than 20% of the block,
         * less than 12.5% in the fine doublings (size 0 gets the smallest
         * block, all of it "waste"). */
        size_t waste = block - size;
        CHECKF(size == 0 || waste <= 15 || waste * 5 < block, "size %zu -> block %zu wastes %zu", size, block,
               waste);
        bool fine = (size > 256 && size <= 512) || (size > 4096 && size <= 8192);
        CHECKF(!fine || waste * 8 < block, "size %zu -> block %zu wastes %zu", size, block, waste);
        CHECKF(c >= prev_class, "size %zu -> class %u after class %u", size, c, prev_class);
        /* Round trip: the block size maps back to the same class. */
        CHECKF(ma_size_class(block) == c, "size %zu -> %u -> %zu -> %u", size, c, block,
               ma_size_class(block));
        prev_class = c;
    }
    CHECK(prev_class == MA_CLASS_COUNT - 1);
    CHECK(ma_size_class(0) == 0);
    CHECK(ma_size_class(1) == 0);
    CHECK(ma_size_class(16) == 0);
    CHECK(ma_size_class(17) == 1);
}

/* The doublings above 256 bytes and above 4 KiB are cut in eight, the
 * first quarter of the second in 128-byte steps: an object of a few hundred
 * bytes wastes at most an eighth, a page of 4 KiB with a header of up to
 * 1 KiB less than 128 bytes; the rest in four. */
static void test_fine_doubling(void)
{
    CHECK(ma_class_size(ma_size_class(390)) == 416);
    CHECK(ma_class_size(ma_size_class(257)) == 288);
    CHECK(ma_class_size(ma_size_class(129)) == 160);
    CHECK(ma_class_size(ma_size_class(513)) == 640);
    CHECK(ma_class_size(ma_size_class(1025)) == 1280);
    CHECK(ma_class_size(ma_size_class(4096 + 8)) == 4096 + 128);
    CHECK(ma_class_size(ma_size_class(4096 + 272)) == 4096 + 384);
    CHECK(ma_class_size(ma_size_class(5121)) == 5632);
    for (size_t size = 4097; size <= 8192; size++)
        CHECKF(ma_class_size(ma_size_class(size)) - size < (size <= 5120 ? 128u : 512u), "size %zu -> block %zu",
               size, ma_class_size(ma_size_class(size)));
    CHECK(ma_class_size(ma_size_class(2048 + 1)) == 2048 + 512);
    CHECK(ma_class_size(ma_size_class(8192 + 1)) == 8192 + 2048);
}

/* Every power of two from 16 to the threshold is a class size. */
static void test_powers_of_two(void)
{
    for (size_t p = 16; p <= MA_LARGE_THRESHOLD; p <<= 1)
        CHECKF(ma_class_size(ma_size_class(p)) == p, "power of two %zu is not a class", p);
}

/* ma_aligned_class: the first class at or above max(size, alignment) whose
 * block size is a multiple of the alignment; MA_CLASS_COUNT when none fits. */
static void test_aligned_class(void)
{
    for (size_t align = 16; align <= 2 * MA_LARGE_THRESHOLD; align <<= 1) {
        for (size_t size = 0; size <= MA_LARGE_THRESHOLD + 4096; size += (size < 4096 ? 1 : 61)) {
            unsigned c = ma_aligned_class(size, align);
            size_t need = size > align ? size : align;
            if (need > MA_LARGE_THRESHOLD) {
                CHECKF(c == MA_CLASS_COUNT, "size %zu align %zu -> %u", size, align, c);
                continue;
            }
            CHECKF(c < MA_CLASS_COUNT, "size %zu align %zu -> none", size, align);
            size_t block = ma_class_size(c);
            CHECKF(block >= size && block >= align, "size %zu align %zu -> block %zu", size,
                   align, block);
            CHECKF(block % align == 0, "size %zu align %zu -> block %zu", size, align, block);
            /* The first such class: none between the plain class and c fits. */
            for (unsigned d = ma_size_class(need); d < c; d++)
                CHECKF(ma_class_size(d) % align != 0, "size %zu align %zu -> %u but %u fits",
                       size, align, c, d);
            /* Alignment 16 costs nothing: every class is a multiple of 16. */
            if (align == 16)
                CHECKF(c == ma_size_class(need), "size %zu -> %u", size, c);
            /* Never more than the next power of two at or above need. */
            size_t p2 = 16;
            while (p2 < need)
                p2 <<= 1;
            CHECKF(block <= p2, "size %zu align %zu -> block %zu > %zu", size, align, block, p2);
        }
    }
    CHECK(ma_aligned_class(1, MA_LARGE_THRESHOLD) == MA_CLASS_COUNT - 1);
    CHECK(ma_aligned_class(MA_LARGE_THRESHOLD + 1, 16) == MA_CLASS_COUNT);
    CHECK(ma_aligned_class(16, 2 * MA_LARGE_THRESHOLD) == MA_CLASS_COUNT);
}

/* What a page of span bytes keeps resident past its last block: the rest of
 * that block's last 4 KiB. */
static size_t resident_tail(size_t span, size_t block)
{
    size_t end = span / block * block;
    return (4096 - end % 4096) % 4096;
}

/* Page spans: at least the fewest slices that hold eight blocks (or, where
 * that is more than MA_MAX_PAGE_SLICES, exactly the fewest that hold as
 * many blocks as MA_MAX_PAGE_SLICES do, three at least), at most twice
 * that: the shortest whose tail keeps at most 1/64 of it resident, or, where
 * none does, the one whose tail keeps the smallest share; two
 * such pages fit the 63 slices a region has for pages. A page starts at a
 * multiple of its alignment, the largest power of two dividing the block
 * size: every block of a power-of-two class is then aligned to its size,
 * and the alignment divides the block size of every class. */
static void test_class_slices(void)
{
    /* Big blocks: four to a page, so that one live block keeps less resident. */
    CHECK(ma_class_slices(ma_size_class(64 << 10)) * MA_SLICE_SIZE == 256 << 10);
    CHECK(ma_class_slices(ma_size_class(128 << 10)) * MA_SLICE_SIZE == 512 << 10);
    CHECK(ma_class_slices(ma_size_class(16 << 10)) * MA_SLICE_SIZE == 128 << 10);
    for (unsigned c = 0; c < MA_CLASS_COUNT; c++) {
        unsigned n = ma_class_slices(c), align = ma_class_align_slices(c);
        size_t block = ma_class_size(c);
        size_t page = (size_t)n * MA_SLICE_SIZE, max_page = (size_t)MA_MAX_PAGE_SLICES * MA_SLICE_SIZE;
        size_t min_blocks = block >= 32768 ? 4 : 8;
        size_t want = max_page / block < min_blocks ? max_page / block : min_blocks;
        unsigned least = (unsigned)((want * block + MA_SLICE_SIZE - 1) / MA_SLICE_SIZE);
        CHECKF(n >= 1 && n <= MA_MAX_PAGE_SLICES, "class %u: %u slices", c, n);
        CHECKF(page / block >= want && want >= 3, "class %u (%zu): %u slices hold %zu", c, block, n,
               page / block);
        CHECKF(n >= least && n <= 2 * least, "class %u: %u slices, %u would hold %zu blocks", c, n,
               least, want);
        for (unsigned m = least; m <= 2 * least && m <= MA_MAX_PAGE_SLICES && want == min_blocks;
             m++) {
            size_t w_n = resident_tail(page, block), w_m = resident_tail((size_t)m * MA_SLICE_SIZE, block);
            bool small_n = w_n * 64 <= page, small_m = w_m * 64 <= (size_t)m * MA_SLICE_SIZE;
            /* The shortest length whose tail keeps at most 1/64 resident... */
            CHECKF(m >= n || !small_m, "class %u (%zu): %u slices, but %u keep %zu of their tail",
                   c, block, n, m, w_m);
            /* ...or, where none does, the smallest share, the shortest of equals. */
            CHECKF(small_n || w_m * n >= w_n * m, "class %u (%zu): %u slices waste %zu, %u waste %zu",
                   c, block, n, w_n, m, w_m);
            CHECKF(small_n || m >= n || w_m * n > w_n * m,
                   "class %u (%zu): %u slices waste no more than %u", c, block, m, n);
        }
        CHECKF(2 * n <= 63, "class %u: %u slices, two pages do not fit a region", c, n);
        CHECKF(is_pow2(align) && (block % (align * MA_SLICE_SIZE) == 0 || align == 1),
               "class %u (%zu): alignment %u slices", c, block, align);
        CHECKF(align == 1 || (block / MA_SLICE_SIZE) % (2 * align) != 0,
               "class %u (%zu): alignment %u slices, twice would divide it", c, block, align);
        if (is_pow2(block) && block >= MA_SLICE_SIZE)
            CHECKF(align * MA_SLICE_SIZE == block, "class %u: block %zu, alignment %u slices", c,
                   block, align);
    }
}

int main(void)
{
    test_class_table();
    test_every_size();
    test_fine_doubling();
    test_powers_of_two();
    test_aligned_class();
    test_class_slices();
    printf("size classes: %u classes, largest %zu\n", (unsigned)MA_CLASS_COUNT,
           ma_class_size(MA_CLASS_COUNT - 1));
    return 0;
}
