/* The block check of free (ma_page_has_block) against plain division, for
 * every size class, every offset in its page, and every carved count. */
#include <stdio.h>
#include <stdlib.h>

#include "alloc.h"

int main(void)
{
    static ma_page page;
    unsigned long checked = 0;
    for (unsigned c = 0; c < MA_CLASS_COUNT; c++) {
        size_t bsize = ma_class_size(c);
        size_t span = (size_t)ma_class_slices(c) << MA_SLICE_SHIFT;
        page.start = (uint8_t *)((uintptr_t)1 << 40);
        ma_page_set_divisor(&page, bsize);
        unsigned reserved = (unsigned)(span / bsize);
        unsigned caps[3] = {reserved, reserved / 2, 1};
        for (int k = 0; k < 3; k++) {
            page.capacity = (uint16_t)caps[k];
            for (size_t off = 0; off < span; off++) {
                bool expect = off % bsize == 0 && off / bsize < caps[k];
                if (ma_page_has_block(&page, (uintptr_t)page.start + off) != expect) {
                    fprintf(stderr, "class %u size %zu capacity %u offset %zu: got %d\n", c, bsize,
                            caps[k], off, !expect);
                    return 1;
                }
                checked++;
            }
        }
    }
    printf("%lu offsets checked: 1 passed, 0 failed\n", checked);
    return 0;
}
