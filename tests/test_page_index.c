/* The block check of free (ma_page_has_block) against plain division, for
 * every size class, every offset in its page, and several carved counts,
 * including none (a new page, or one whose blocks were forgotten); and the
 * never-valid descriptor pages[0], all zero. */
#include <stdio.h>
#include <stdlib.h>

#include "page.h"

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
    printf("%lu offsets checked: 1 passed, 0 failed\n", checked);
    return 0;
}
