/* A burst of allocation through mapalloc_* and its undoing, for the tests
 * that watch memory go back: total bytes in small and medium blocks (half
 * of the bytes in blocks of 1 B to 1 KiB, half up to the large threshold),
 * every byte written; then every block freed, in a shuffled order, each
 * checked first.
 *
 * The pointer table is a mapping of its own, outside the allocator's
 * figures, and its pages are dropped after the free. */
#ifndef MA_TEST_OBS_BURST_H
#define MA_TEST_OBS_BURST_H

#include "mapalloc.h"
#include "obs.h"
#include "size_class.h" /* MA_LARGE_THRESHOLD */

#include <sys/mman.h>

struct burst {
    void **p;
    size_t count, cap, bytes;
};

static inline void burst_init(struct burst *b, size_t cap)
{
    b->p = mmap(NULL, cap * sizeof(void *), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                -1, 0);
    CHECK(b->p != MAP_FAILED);
    b->count = 0;
    b->cap = cap;
    b->bytes = 0;
}

static inline void burst_done(struct burst *b)
{
    munmap(b->p, b->cap * sizeof(void *));
    b->p = NULL;
}

static inline unsigned char burst_tag(size_t i)
{
    return (unsigned char)((i * 131u) | 1u);
}

static inline void burst_allocate(struct burst *b, size_t total, uint64_t seed)
{
    uint64_t rs = seed;
    size_t small = 0, medium = 0;
    while (small + medium < total) {
        size_t n;
        if (small <= medium) {
            n = 1 + (size_t)(wl_rand(&rs) % KiB);
            small += n;
        } else {
            n = KiB + 1 + (size_t)(wl_rand(&rs) % (MA_LARGE_THRESHOLD - KiB));
            medium += n;
        }
        CHECK(b->count < b->cap);
        void *p = mapalloc_malloc(n);
        CHECKF(p != NULL, "malloc(%zu) after %zu MiB", n, b->bytes / MiB);
        memset(p, burst_tag(b->count), n);
        b->p[b->count++] = p;
        b->bytes += n;
    }
}

static inline void burst_free(struct burst *b, uint64_t seed)
{
    uint64_t rs = seed;
    /* Shuffle the tags' owners too: check a block by its own first byte. */
    for (size_t i = 0; i < b->count; i++)
        CHECKF(*(unsigned char *)b->p[i] == burst_tag(i), "block %zu overwritten", i);
    for (size_t i = b->count; i > 1; i--) {
        size_t j = (size_t)(wl_rand(&rs) % i);
        void *t = b->p[i - 1];
        b->p[i - 1] = b->p[j];
        b->p[j] = t;
    }
    for (size_t i = 0; i < b->count; i++)
        mapalloc_free(b->p[i]);
    b->count = 0;
    b->bytes = 0;
    CHECK(madvise(b->p, b->cap * sizeof(void *), MADV_DONTNEED) == 0);
}

/* What a program does while it works on: a few blocks of assorted sizes
 * allocated, written and freed. It is what drives mapalloc's decay (there
 * is no background thread). */
static inline void burst_activity(uint64_t *rs)
{
    void *q[32];
    for (int i = 0; i < 32; i++) {
        size_t n = 16 + (size_t)(wl_rand(rs) % (4 * KiB));
        q[i] = mapalloc_malloc(n);
        CHECK(q[i] != NULL);
        memset(q[i], i, n);
    }
    for (int i = 0; i < 32; i++)
        mapalloc_free(q[i]);
}

#endif
