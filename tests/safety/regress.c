/* Minimal reproductions of allocator bugs found by the safety tests (see
 * README.md in this directory); each case must run to the end once fixed.
 *
 *   regress secure_arena_calloc_small   arena calloc below 16 bytes, secure profile
 *   regress arena_first_large           the first large block of an arena (UBSan)
 *   regress checks_off_fresh_realloc    -Dchecks=false: usable_size, realloc of a fresh block */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mapalloc.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: regress secure_arena_calloc_small|arena_first_large|checks_off_fresh_realloc\n");
        return 2;
    }
    if (strcmp(argv[1], "secure_arena_calloc_small") == 0) {
        /* Bug 1: ma_secure_prepare writes the canary pattern from byte 10,
         * then clears bytes 0 to 15 for calloc: the free that follows
         * reports a heap overflow that never happened. */
        setenv("MAPALLOC_OPTIONS", "secure=1", 1);
        mapalloc_arena *a = mapalloc_arena_create(NULL);
        char *p = mapalloc_arena_calloc(a, 1, 10);
        mapalloc_arena_free(a, p);
        mapalloc_arena_destroy(a);
    } else if (strcmp(argv[1], "arena_first_large") == 0) {
        /* Bug 3: reserve_arena_slot copies from arena->large while it is
         * still NULL (memcpy(list, NULL, 0): undefined behaviour). */
        mapalloc_arena *a = mapalloc_arena_create(NULL);
        char *p = mapalloc_arena_malloc(a, 1 << 20);
        mapalloc_arena_free(a, p);
        mapalloc_arena_destroy(a);
    } else if (strcmp(argv[1], "checks_off_fresh_realloc") == 0) {
        /* Bug 4: with -Dchecks=false malloc leaves a carved block's free tag
         * in place, but usable_size and realloc still check it. */
        char *p = mapalloc_malloc(16);
        if (mapalloc_usable_size(p) < 16)
            return 1;
        p = mapalloc_realloc(p, 100);
        mapalloc_free(p);
    } else {
        return 2;
    }
    printf("%s: ok\n", argv[1]);
    return 0;
}
