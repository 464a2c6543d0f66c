/* realloc of a large block when mremap is refused: the block is moved by a
 * new mapping and a copy, and a shrink still succeeds. Run under valgrind
 * (tests/meson.build), whose emulation of mremap refuses to shrink a mapping
 * that the secure profile's guard page has split; run plainly, mremap
 * succeeds and the same checks hold. Each step: the contents kept, the
 * whole new size writable (no guard page left inside it), errno as it was.
 * Then in an arena whose limit leaves no room for the copy: a refused shrink
 * fails, and the old block is as it was, whole. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "mapalloc.h"

#define MIB ((size_t)1 << 20)

static int fail(const char *what)
{
    fprintf(stderr, "realloc_refused: %s\n", what);
    return 1;
}

static int holds(const unsigned char *p, size_t n, unsigned char seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i * 7))
            return 0;
    return 1;
}

static void fill(unsigned char *p, size_t n, unsigned char seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed + i * 7);
}

int main(void)
{
    unsigned char *p = mapalloc_malloc(3 * MIB);
    if (p == NULL)
        return fail("malloc(3 MiB) returned NULL");
    fill(p, 3 * MIB, 1);
    errno = 0;
    unsigned char *q = mapalloc_realloc(p, MIB + 100);
    if (q == NULL)
        return fail("realloc from 3 MiB to 1 MiB + 100 returned NULL");
    if (errno != 0)
        return fail("the shrink changed errno");
    if (!holds(q, MIB + 100, 1))
        return fail("the shrink lost the contents");
    fill(q, MIB + 100, 2); /* a guard page left inside would fault here */
    unsigned char *r = mapalloc_realloc(q, 5 * MIB);
    if (r == NULL)
        return fail("realloc from 1 MiB + 100 to 5 MiB returned NULL");
    if (!holds(r, MIB + 100, 2))
        return fail("the growth lost the contents");
    fill(r, 5 * MIB, 3);
    if (!holds(r, 5 * MIB, 3))
        return fail("the grown block does not hold what was written");
    mapalloc_free(r);

    struct mapalloc_arena_options o = {.limit = 3 * MIB + 64 * 1024};
    mapalloc_arena *a = mapalloc_arena_create(&o);
    if (a == NULL)
        return fail("arena_create returned NULL");
    p = mapalloc_arena_malloc(a, 3 * MIB - 8192);
    if (p == NULL)
        return fail("arena_malloc(3 MiB - 8 KiB) returned NULL");
    fill(p, 3 * MIB - 8192, 4);
    q = mapalloc_arena_realloc(a, p, MIB + 100);
    if (q == NULL) {
        if (errno != ENOMEM)
            return fail("a refused shrink did not say ENOMEM");
        if (!holds(p, 3 * MIB - 8192, 4))
            return fail("a refused shrink changed the block");
        fill(p, 3 * MIB - 8192, 5); /* a guard page left inside would fault here */
        q = p;
    } else if (!holds(q, MIB + 100, 4)) {
        return fail("the arena's shrink lost the contents");
    }
    mapalloc_arena_free(a, q);
    mapalloc_arena_destroy(a);
    printf("realloc_refused: every check passed\n");
    return 0;
}
