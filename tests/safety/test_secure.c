/* What the secure profile does to the order of blocks: a fresh page's
 * blocks are handed out in a random order, so that an overflow cannot
 * count on what lies after a block. Without it, the blocks of a page come
 * in address order.
 *
 * The test takes 512 blocks of one class from fresh pages and counts the
 * successive pairs that are neighbours in memory: in address order all of
 * them are; shuffled (within each 4 KiB a page carves at a time) about one
 * in twenty.
 *
 * Usage: test_secure order   (run with MAPALLOC_OPTIONS=secure=1, or not:
 * then the order must be the address order, the control). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"
#include "mapalloc.h"

#define BLOCKS 512

static int compare(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

static void test_order(void)
{
    static uintptr_t got[BLOCKS], sorted[BLOCKS];
    for (int i = 0; i < BLOCKS; i++) {
        void *p = mapalloc_malloc(100);
        CHECK(p != NULL);
        memset(p, 0x5a, 100);
        got[i] = (uintptr_t)p;
    }
    memcpy(sorted, got, sizeof got);
    qsort(sorted, BLOCKS, sizeof sorted[0], compare);
    uintptr_t stride = UINTPTR_MAX; /* the block size: the smallest gap */
    for (int i = 1; i < BLOCKS; i++) {
        CHECKF(sorted[i] != sorted[i - 1], "block %#lx handed out twice", (unsigned long)sorted[i]);
        if (sorted[i] - sorted[i - 1] < stride)
            stride = sorted[i] - sorted[i - 1];
    }
    int neighbours = 0;
    for (int i = 1; i < BLOCKS; i++)
        neighbours += got[i] - got[i - 1] == stride || got[i - 1] - got[i] == stride;
    long secure = mapalloc_option_get("secure");
    printf("order: secure=%ld, %d of %d successive blocks are neighbours (block %lu bytes)\n", secure,
           neighbours, BLOCKS - 1, (unsigned long)stride);
    if (secure)
        CHECKF(neighbours < BLOCKS / 10, "secure=1: %d of %d successive blocks are neighbours: "
               "not in a random order", neighbours, BLOCKS - 1);
    else
        CHECKF(neighbours > BLOCKS * 9 / 10, "secure=0: only %d of %d successive blocks are "
               "neighbours", neighbours, BLOCKS - 1);
    for (int i = 0; i < BLOCKS; i++)
        mapalloc_free((void *)got[i]);
}

int main(int argc, char **argv)
{
    CHECKF(argc == 2 && strcmp(argv[1], "order") == 0, "usage: %s order", argv[0]);
    test_order();
    return 0;
}
