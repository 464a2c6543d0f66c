/* Regression cases: each the smallest program on a path where the
 * allocator once went wrong (README.md in this directory); each must run
 * to the end, and without undefined behaviour in a UBSan build.
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
        /* Secure profile: calloc of 10 bytes from an arena. The canary
         * pattern starts at byte 10; clearing the block for calloc must not
         * reach it, or the free reports a heap overflow. */
        setenv("MAPALLOC_OPTIONS", "secure=1", 1);
        mapalloc_arena *a = mapalloc_arena_create(NULL);
        char *p = mapalloc_arena_calloc(a, 1, 10);
        mapalloc_arena_free(a, p);
        mapalloc_arena_destroy(a);
    } else if (strcmp(argv[1], "arena_first_large") == 0) {
        /* The first large block of an arena: the arena's list of large
         * blocks is still empty (NULL) when it grows. */
        mapalloc_arena *a = mapalloc_arena_create(NULL);
        char *p = mapalloc_arena_malloc(a, 1 << 20);
        mapalloc_arena_free(a, p);
        mapalloc_arena_destroy(a);
    } else if (strcmp(argv[1], "checks_off_fresh_realloc") == 0) {
        /* -Dchecks=false: a fresh block keeps whatever its free tag held;
         * usable_size and realloc must not take it for a freed block. */
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
