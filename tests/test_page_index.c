/* The block check of free (ma_page_has_block) against plain division, for
 * every size class, every offset in its page, and several carved counts,
 * including none (a new page, or one whose blocks were forgotten); the
 * never-valid descriptor pages[0], all zero; and malloc's test of a free
 * list's head (ma_page_head_ok), which no address outside the page's region,
 * NULL and the empty page's list included, passes. */
#include <stdio.h>
#include <stdlib.h>

#include "page.h"

/* The test needs no descriptor there: it reads none. */
static bool head_ok_at(uintptr_t page, uintptr_t b)
{
    return ma_page_head_ok((const ma_page *)page, (const ma_block *)b);
}

static bool head_test_holds(unsigned long *checked)
{
    if (!MAPALLOC_CHECKS) /* a build that measures the checks' cost: no test */
        return true;
    /* Descriptors where a region's header puts them, in a region at 1 TiB
     * and in the lowest one, at 4 MiB. */
    uintptr_t bases[2] = {(uintptr_t)1 << 40, MA_REGION_SIZE};
    for (int i = 0; i < 2; i++) {
        uintptr_t r = bases[i];
        for (uintptr_t page = r; page < r + MA_SLICE_SIZE; page += sizeof(ma_page)) {
            for (uintptr_t b = r + MA_SLICE_SIZE; b < r + MA_REGION_SIZE; b += 4093, ++*checked)
                if (!head_ok_at(page, b)) {
                    fprintf(stderr, "head %#lx refused in its own region\n", (unsigned long)b);
                    return false;
                }
            uintptr_t out[] = {0, r - 16, r + MA_REGION_SIZE, r + MA_REGION_SIZE + MA_SLICE_SIZE,
                               r ^ ((uintptr_t)1 << 46), (uintptr_t)MA_NO_BLOCKS};
            for (size_t k = 0; k < sizeof out / sizeof out[0]; k++, ++*checked)
                if (head_ok_at(page, out[k])) {
                    fprintf(stderr, "head %#lx taken for a page at %#lx\n", (unsigned long)out[k],
                            (unsigned long)page);
                    return false;
                }
        }
    }
    /* The empty page may lie anywhere, below 4 MiB too: its list never passes. */
    for (uintptr_t page = MA_OS_PAGE; page < ((uintptr_t)1 << 47); page = page * 3 + 8, ++*checked)
        if (head_ok_at(page, (uintptr_t)MA_NO_BLOCKS)) {
            fprintf(stderr, "the empty page's list taken for a page at %#lx\n", (unsigned long)page);
            return false;
        }
    if (head_ok_at((uintptr_t)&ma_empty_page, (uintptr_t)ma_empty_page.free)) {
        fprintf(stderr, "the empty page's list is not MA_NO_BLOCKS\n");
        return false;
    }
    return true;
}

int main(void)
{
    static ma_page page;
    unsigned long checked = 0;
    for (unsigned c = 0; c < MA_CLASS_COUNT; c++) {
        size_t bsize = ma_class_size(c);
        size_t span = (size_t)ma_class_slices(c) << MA_SLICE_SHIFT;
        uint8_t *start = (uint8_t *)((uintptr_t)1 << 40);
        ma_page_set_divisor(&page, bsize);
        unsigned reserved = (unsigned)(span / bsize);
        unsigned caps[4] = {reserved, reserved / 2, 1, 0};
        for (int k = 0; k < 4; k++) {
            page.carved_end = start + (size_t)caps[k] * bsize;
            for (size_t off = 0; off < span; off++) {
                bool expect = off % bsize == 0 && off / bsize < caps[k];
                if (ma_page_has_block(&page, (uintptr_t)start + off) != expect) {
                    fprintf(stderr, "class %u size %zu capacity %u offset %zu: got %d\n", c, bsize,
                            caps[k], off, !expect);
                    return 1;
                }
                checked++;
            }
        }
    }
    static const ma_page zero;
    for (uintptr_t u = (uintptr_t)1 << 40; u < ((uintptr_t)1 << 40) + MA_REGION_SIZE; u++, checked++)
        if (ma_page_has_block(&zero, u)) {
            fprintf(stderr, "pages[0] (all zero) has a block at %#lx\n", (unsigned long)u);
            return 1;
        }
    if (!head_test_holds(&checked))
        return 1;
    printf("%lu offsets checked: 1 passed, 0 failed\n", checked);
    return 0;
}
