/* API conformance of include/mapalloc.h: every function, with alignment,
 * usable size, errno, calloc zeroing of reused memory, realloc contents in
 * every direction, aligned allocation up to 1 GiB, statistics.
 *
 * Run with MAPALLOC_OPTIONS=devzero=1, huge=1 or noreserve=1 too (see
 * tests/meson.build); the checks that depend on an option read it back with
 * mapalloc_option_get. */
#include "check.h"
#include "mapalloc.h"
#include "size_class.h" /* MA_LARGE_THRESHOLD */
#include "sys.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define GiB ((size_t)1 << 30)
#define LARGE_THRESHOLD MA_LARGE_THRESHOLD

static size_t page;

static bool aligned(const void *p, size_t a)
{
    return ((uintptr_t)p & (a - 1)) == 0;
}

static unsigned char pat(size_t i, unsigned seed)
{
    return (unsigned char)((i ^ (i >> 8) ^ (i >> 16)) * 167u + seed * 29u + 3u);
}

static void fill(void *p, size_t n, unsigned seed)
{
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        b[i] = pat(i, seed);
}

/* The first index in [0, n) where the pattern is wrong, or n. */
static size_t bad_fill(const void *p, size_t n, unsigned seed)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != pat(i, seed))
            return i;
    return n;
}

/* For big blocks, writing and checking every byte of thousands of reallocs
 * costs seconds: a block of more than DENSE_MAX bytes gets the pattern on its
 * first and last 8 KiB and on every 1021st byte (a prime, so the samples
 * walk across page offsets). The positions depend on the size filled. */
#define DENSE_MAX (64 * KiB)
static bool sampled(size_t i, size_t filled)
{
    return filled <= DENSE_MAX || i < 8 * KiB || i >= filled - 8 * KiB || i % 1021 == 0;
}

static void fill_big(void *p, size_t n, unsigned seed)
{
    unsigned char *b = p;
    if (n <= DENSE_MAX) {
        fill(p, n, seed);
        return;
    }
    for (size_t i = 0; i < 8 * KiB; i++)
        b[i] = pat(i, seed);
    for (size_t i = 0; i < n; i += 1021)
        b[i] = pat(i, seed);
    for (size_t i = n - 8 * KiB; i < n; i++)
        b[i] = pat(i, seed);
}

/* The first sampled index in [0, upto) that is wrong for a block filled by
 * fill_big(p, filled, seed), or upto. */
static size_t bad_fill_big(const void *p, size_t filled, size_t upto, unsigned seed)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < upto; i++) {
        if (!sampled(i, filled)) {
            /* Jump to the next sampled index. */
            size_t next = (i / 1021 + 1) * 1021;
            size_t tail = filled - 8 * KiB;
            i = (next < tail ? next : tail) - 1;
            continue;
        }
        if (b[i] != pat(i, seed))
            return i;
    }
    return upto;
}

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return false;
    return true;
}

static struct mapalloc_stats stats(void)
{
    struct mapalloc_stats s;
    memset(&s, 0xff, sizeof s);
    mapalloc_stats_get(&s);
    return s;
}

/* Sizes worth trying: both sides of every boundary the allocator has. */
static const size_t sizes[] = {
    0,         1,          7,          8,          15,         16,          17,
    24,        31,         32,         33,         48,         64,          100,
    127,       128,        129,        160,        255,        256,         257,
    500,       1000,       1023,       1024,       1025,       2047,        2048,
    4095,      4096,       4097,       8191,      10000,      16384,       32768,
    65535,     65536,      65537,      100000,     131072,     200000,      262143,
    262144,    262145,     300000,     524287,     524288,     524289,      1000000,
    1048576,   1048577,
    3145729,   4194304,    8388608,    9000001,
};
#define NSIZES (sizeof sizes / sizeof sizes[0])

/* Alignment, usable size, the whole usable size writable, the waste bound. */
static void test_malloc_basics(void)
{
    for (size_t k = 0; k < NSIZES; k++) {
        size_t n = sizes[k];
        void *blocks[8];
        for (int i = 0; i < 8; i++) {
            unsigned char *p = mapalloc_malloc(n);
            CHECKF(p != NULL, "malloc(%zu)", n);
            CHECKF(aligned(p, 16), "malloc(%zu) = %p", n, (void *)p);
            size_t u = mapalloc_usable_size(p);
            CHECKF(u >= n && u >= 1, "malloc(%zu): usable %zu", n, u);
            if (n > 0 && n <= LARGE_THRESHOLD)
                CHECKF(u - n <= 15 || (u - n) * 5 < u, "malloc(%zu): usable %zu wastes too much", n,
                       u);
            /* A block of huge pages is rounded up to 2 MiB. */
            size_t grain = n >= 2 * MiB - page && mapalloc_option_get("large_thp") ? 2 * MiB : page;
            if (n > LARGE_THRESHOLD)
                CHECKF(u - n < grain + 16, "malloc(%zu): usable %zu", n, u);
            fill(p, u, (unsigned)(k + i));
            blocks[i] = p;
        }
        for (int i = 0; i < 8; i++) {
            size_t u = mapalloc_usable_size(blocks[i]);
            CHECKF(bad_fill(blocks[i], u, (unsigned)(k + i)) == u, "malloc(%zu) block %d overwritten", n,
                   i);
            mapalloc_free(blocks[i]);
        }
    }
    /* Every size up to 4 KiB, all blocks live at once: none overlaps. */
    enum { N = 4097 };
    static unsigned char *p[N];
    for (size_t n = 0; n < N; n++) {
        p[n] = mapalloc_malloc(n);
        CHECK(p[n] != NULL && aligned(p[n], 16));
        CHECK(mapalloc_usable_size(p[n]) >= n);
        memset(p[n], (int)(n & 0xff), n);
    }
    for (size_t n = 0; n < N; n++) {
        for (size_t i = 0; i < n; i++)
            CHECKF(p[n][i] == (unsigned char)(n & 0xff), "block of %zu overwritten at %zu", n, i);
        mapalloc_free(p[n]);
    }
    CHECK(mapalloc_usable_size(NULL) == 0);
}

/* malloc(0): a unique, freeable, non-NULL block, of usable size 16. */
static void test_malloc_zero(void)
{
    enum { N = 1000 };
    static void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = mapalloc_malloc(0);
        CHECK(p[i] != NULL);
        CHECK(aligned(p[i], 16));
        CHECKF(mapalloc_usable_size(p[i]) == 16, "usable %zu", mapalloc_usable_size(p[i]));
        for (int j = 0; j < i; j++)
            CHECK(p[i] != p[j]);
    }
    for (int i = 0; i < N; i++)
        mapalloc_free(p[i]);
    mapalloc_free(NULL);
    mapalloc_free_sized(NULL, 0);
    mapalloc_free_sized(NULL, 100);
    mapalloc_free_aligned_sized(NULL, 64, 0);
}

/* Impossible sizes: NULL with ENOMEM, and the old block untouched. */
static void test_overflow(void)
{
    const size_t too_big[] = {SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 4096, (size_t)PTRDIFF_MAX + 1,
                              (size_t)PTRDIFF_MAX, (size_t)PTRDIFF_MAX - 4096, (size_t)1 << 62};
    for (size_t k = 0; k < sizeof too_big / sizeof too_big[0]; k++) {
        size_t n = too_big[k];
        errno = 0;
        CHECKF(mapalloc_malloc(n) == NULL, "malloc(%zu)", n);
        CHECKF(errno == ENOMEM, "malloc(%zu): errno %d", n, errno);
        errno = 0;
        CHECKF(mapalloc_calloc(1, n) == NULL, "calloc(1, %zu)", n);
        CHECK(errno == ENOMEM);
        errno = 0;
        CHECKF(mapalloc_calloc(n, 1) == NULL, "calloc(%zu, 1)", n);
        CHECK(errno == ENOMEM);
        errno = 0;
        CHECK(mapalloc_aligned_alloc(64, n) == NULL);
        CHECK(errno == ENOMEM);
        errno = 0;
        CHECK(mapalloc_memalign(4096, n) == NULL);
        CHECK(errno == ENOMEM);
        errno = 0;
        CHECK(mapalloc_valloc(n) == NULL);
        CHECK(errno == ENOMEM);
        /* pvalloc rounds up to a page: that must not wrap to a tiny size. */
        errno = 0;
        CHECKF(mapalloc_pvalloc(n) == NULL, "pvalloc(%zu)", n);
        CHECK(errno == ENOMEM);
        void *out = (void *)&out;
        CHECK(mapalloc_posix_memalign(&out, 64, n) == ENOMEM);
        errno = 0;
        CHECK(mapalloc_realloc(NULL, n) == NULL);
        CHECK(errno == ENOMEM);
    }
    /* calloc's product overflows, or exceeds PTRDIFF_MAX. */
    const size_t pairs[][2] = {
        {SIZE_MAX / 2 + 1, 2}, {2, SIZE_MAX / 2 + 1}, {(size_t)1 << 32, (size_t)1 << 32},
        {(size_t)PTRDIFF_MAX / 2 + 1, 2}, {(size_t)1 << 31, (size_t)1 << 32}, {SIZE_MAX, SIZE_MAX},
        {65537, (size_t)1 << 48},
    };
    for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++) {
        errno = 0;
        CHECKF(mapalloc_calloc(pairs[k][0], pairs[k][1]) == NULL, "calloc(%zu, %zu)", pairs[k][0],
               pairs[k][1]);
        CHECK(errno == ENOMEM);
        errno = 0;
        CHECK(mapalloc_reallocarray(NULL, pairs[k][0], pairs[k][1]) == NULL);
        CHECK(errno == ENOMEM);
    }
    /* A failed realloc leaves the old block as it was, small or large. */
    const size_t olds[] = {1, 100, 4096, 100000, LARGE_THRESHOLD + 1, 3 * MiB};
    for (size_t k = 0; k < sizeof olds / sizeof olds[0]; k++) {
        size_t n = olds[k];
        unsigned char *p = mapalloc_malloc(n);
        CHECK(p != NULL);
        fill(p, n, 7);
        size_t u = mapalloc_usable_size(p);
        for (size_t j = 0; j < sizeof too_big / sizeof too_big[0]; j++) {
            errno = 0;
            CHECKF(mapalloc_realloc(p, too_big[j]) == NULL, "realloc(%zu -> %zu)", n, too_big[j]);
            CHECK(errno == ENOMEM);
            CHECK(mapalloc_usable_size(p) == u);
            CHECK(bad_fill(p, n, 7) == n);
        }
        errno = 0;
        CHECK(mapalloc_reallocarray(p, SIZE_MAX / 2 + 1, 2) == NULL);
        CHECK(errno == ENOMEM);
        errno = 0;
        CHECK(mapalloc_reallocarray(p, (size_t)PTRDIFF_MAX / 4 + 1, 8) == NULL);
        CHECK(errno == ENOMEM);
        CHECK(bad_fill(p, n, 7) == n);
        /* Still a good block: it grows and frees. */
        p = mapalloc_realloc(p, n + 1000);
        CHECK(p != NULL && bad_fill(p, n, 7) == n);
        mapalloc_free(p);
    }
}

/* Bad alignments: EINVAL. */
static void test_bad_alignment(void)
{
    const size_t bad[] = {0, 3, 5, 24, 48, 100, 4095, 4097, 3 * 4096, ((size_t)1 << 20) + 16,
                          SIZE_MAX, (size_t)1 << 63 | 1};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        size_t a = bad[k];
        void *out = (void *)&out;
        CHECKF(mapalloc_posix_memalign(&out, a, 64) == EINVAL, "posix_memalign(align %zu)", a);
        errno = 0;
        CHECKF(mapalloc_aligned_alloc(a, 64) == NULL, "aligned_alloc(%zu, 64)", a);
        CHECKF(errno == EINVAL, "aligned_alloc(%zu, 64): errno %d", a, errno);
        /* memalign: glibc rounds a bad alignment up to a power of two; the
         * header allows EINVAL. Either way, no misaligned block. */
        errno = 0;
        void *m = a < ((size_t)1 << 31) ? mapalloc_memalign(a, 64) : NULL;
        if (m == NULL) {
            CHECK(a >= ((size_t)1 << 31) || errno == EINVAL);
        } else {
            size_t p2 = 16;
            while (p2 < a)
                p2 <<= 1;
            CHECKF(aligned(m, p2), "memalign(%zu) = %p", a, m);
            mapalloc_free(m);
        }
    }
    /* POSIX: posix_memalign wants a power of two that is a multiple of
     * sizeof(void *); 1, 2 and 4 are not. */
    const size_t small_pow2[] = {1, 2, 4};
    for (size_t k = 0; k < sizeof small_pow2 / sizeof small_pow2[0]; k++) {
        void *out = NULL;
        CHECKF(mapalloc_posix_memalign(&out, small_pow2[k], 64) == EINVAL,
               "posix_memalign(align %zu)", small_pow2[k]);
        /* aligned_alloc accepts any power of two (C11 "valid alignment"). */
        void *p = mapalloc_aligned_alloc(small_pow2[k], 64);
        CHECKF(p != NULL && aligned(p, 16), "aligned_alloc(%zu, 64)", small_pow2[k]);
        mapalloc_free(p);
    }
}

/* Aligned allocation at every power of two from 16 bytes to 1 GiB. */
static void test_aligned(void)
{
    for (size_t a = 16; a <= GiB; a <<= 1) {
        size_t try[] = {1, a / 2, a - 16, a, a + 1, 3 * a / 2, 100};
        size_t ntry = a <= 64 * MiB ? sizeof try / sizeof try[0] : 3; /* big ones: 1, a/2, a-16 */
        for (size_t k = 0; k < ntry; k++) {
            size_t n = try[k] == 0 ? 1 : try[k];
            struct mapalloc_stats before = stats();
            void *p = mapalloc_aligned_alloc(a, n);
            CHECKF(p != NULL, "aligned_alloc(%zu, %zu)", a, n);
            CHECKF(aligned(p, a), "aligned_alloc(%zu, %zu) = %p", a, n, p);
            size_t u = mapalloc_usable_size(p);
            CHECKF(u >= n, "aligned_alloc(%zu, %zu): usable %zu", a, n, u);
            /* No more waste than the alignment itself (plus page rounding
             * and, for small blocks, a fresh region). */
            struct mapalloc_stats after = stats();
            if (a >= 4 * MiB && after.mapped > before.mapped)
                CHECKF(after.mapped - before.mapped <= ((n + page - 1) & ~(page - 1)) + a,
                       "aligned_alloc(%zu, %zu) mapped %zu more bytes", a, n,
                       after.mapped - before.mapped);
            unsigned char *b = p;
            b[0] = 1;
            b[n - 1] = 2;
            b[u - 1] = 3;
            if (n <= 1 * MiB)
                fill(p, u, (unsigned)a);

            void *q = NULL;
            CHECK(mapalloc_posix_memalign(&q, a, n) == 0);
            CHECKF(q != NULL && aligned(q, a), "posix_memalign(%zu, %zu) = %p", a, n, q);
            CHECK(mapalloc_usable_size(q) >= n);
            void *m = mapalloc_memalign(a, n);
            CHECKF(m != NULL && aligned(m, a), "memalign(%zu, %zu) = %p", a, n, m);
            CHECK(mapalloc_usable_size(m) >= n);
            memset(q, 0x77, n < MiB ? n : MiB);
            memset(m, 0x66, n < MiB ? n : MiB);

            if (n <= 1 * MiB)
                CHECKF(bad_fill(p, u, (unsigned)a) == u, "aligned_alloc(%zu, %zu) overwritten", a,
                       n);
            mapalloc_free_aligned_sized(p, a, n);
            mapalloc_free(q);
            mapalloc_free_aligned_sized(m, a, n);
        }
    }
    /* Size 0 at every alignment: a unique, freeable block, like malloc(0). */
    for (size_t a = 16; a <= GiB; a <<= 1) {
        errno = 4242;
        void *z = mapalloc_aligned_alloc(a, 0);
        CHECKF(z != NULL, "aligned_alloc(%zu, 0): NULL, errno %d", a, errno);
        CHECKF(errno == 4242, "aligned_alloc(%zu, 0): errno %d", a, errno);
        CHECK(aligned(z, a));
        void *q = NULL;
        CHECKF(mapalloc_posix_memalign(&q, a, 0) == 0, "posix_memalign(%zu, 0)", a);
        CHECK(q != NULL && q != z && aligned(q, a));
        void *m = mapalloc_memalign(a, 0);
        CHECKF(m != NULL && aligned(m, a), "memalign(%zu, 0)", a);
        mapalloc_free_aligned_sized(z, a, 0);
        mapalloc_free(q);
        mapalloc_free(m);
    }
    /* Many small aligned blocks, interleaved with plain ones. */
    enum { N = 2000 };
    static void *p[N];
    static size_t al[N];
    for (int i = 0; i < N; i++) {
        size_t a = (size_t)16 << (i % 9); /* 16 .. 4096 */
        size_t n = (size_t)(i * 37 % 5000) + 1;
        if (i % 3 == 0) {
            p[i] = mapalloc_malloc(n);
            a = 16;
        } else {
            p[i] = mapalloc_aligned_alloc(a, n);
        }
        CHECK(p[i] != NULL && aligned(p[i], a));
        al[i] = a;
        memset(p[i], i & 0xff, n);
    }
    for (int i = 0; i < N; i++) {
        size_t n = (size_t)(i * 37 % 5000) + 1;
        unsigned char *b = p[i];
        for (size_t j = 0; j < n; j++)
            CHECK(b[j] == (unsigned char)(i & 0xff));
        if (i % 2)
            mapalloc_free_aligned_sized(p[i], al[i], n);
        else
            mapalloc_free(p[i]);
    }
}

static void test_valloc(void)
{
    const size_t n_list[] = {1, 100, 4096, 4097, 10000, 100000, LARGE_THRESHOLD + 1, 2 * MiB + 3};
    for (size_t k = 0; k < sizeof n_list / sizeof n_list[0]; k++) {
        size_t n = n_list[k];
        void *v = mapalloc_valloc(n);
        CHECKF(v != NULL && aligned(v, page), "valloc(%zu) = %p", n, v);
        CHECK(mapalloc_usable_size(v) >= n);
        memset(v, 1, n);
        void *pv = mapalloc_pvalloc(n);
        size_t rounded = (n + page - 1) & ~(page - 1);
        CHECKF(pv != NULL && aligned(pv, page), "pvalloc(%zu) = %p", n, pv);
        CHECKF(mapalloc_usable_size(pv) >= rounded, "pvalloc(%zu): usable %zu", n,
               mapalloc_usable_size(pv));
        memset(pv, 2, rounded);
        mapalloc_free(v);
        mapalloc_free(pv);
    }
    void *z = mapalloc_valloc(0);
    CHECK(z != NULL && aligned(z, page));
    mapalloc_free(z);
    z = mapalloc_pvalloc(0);
    CHECK(z != NULL && aligned(z, page));
    mapalloc_free(z);
}

/* calloc zeroes memory that held something before: blocks freed to the free
 * lists (whose first bytes held links), pages purged, large mappings from the
 * cache. */
static void test_calloc_reuse(void)
{
    const size_t n_list[] = {1,     16,     24,     100,    1000,       4096,     10000,
                             65536, 100000, 200000, LARGE_THRESHOLD, LARGE_THRESHOLD + 1,
                             300000, 4 * MiB};
    enum { M = 64 };
    static unsigned char *p[M];
    for (size_t k = 0; k < sizeof n_list / sizeof n_list[0]; k++) {
        size_t n = n_list[k];
        int rounds = n <= 64 * KiB ? 30 : 6;
        for (int r = 0; r < rounds; r++) {
            int m = n > MiB ? 2 : n > 64 * KiB ? 16 : M;
            for (int i = 0; i < m; i++) {
                p[i] = mapalloc_malloc(n);
                CHECK(p[i] != NULL);
                memset(p[i], 0xab, mapalloc_usable_size(p[i]));
            }
            for (int i = 0; i < m; i++)
                mapalloc_free(p[i]);
            for (int i = 0; i < m; i++) {
                /* Vary the split of the product. */
                if (i % 3 == 0)
                    p[i] = mapalloc_calloc(1, n);
                else if (i % 3 == 1)
                    p[i] = mapalloc_calloc(n, 1);
                else
                    p[i] = n % 8 == 0 ? mapalloc_calloc(n / 8, 8) : mapalloc_calloc(n, 1);
                CHECK(p[i] != NULL && aligned(p[i], 16));
                CHECKF(all_zero(p[i], n), "calloc(%zu) round %d block %d not zeroed", n, r, i);
                memset(p[i], 0xcd, mapalloc_usable_size(p[i]));
            }
            for (int i = 0; i < m; i++)
                mapalloc_free(p[i]);
        }
    }
    /* calloc(0, x) and calloc(x, 0): like malloc(0). */
    void *a = mapalloc_calloc(0, 100), *b = mapalloc_calloc(100, 0);
    CHECK(a != NULL && b != NULL && a != b);
    mapalloc_free(a);
    mapalloc_free(b);
}

/* Contents survive realloc in every direction: small<->medium<->large. */
static void test_realloc_contents(void)
{
    for (size_t i = 0; i < NSIZES; i++) {
        for (size_t j = 0; j < NSIZES; j++) {
            size_t a = sizes[i], b = sizes[j];
            unsigned seed = (unsigned)(i * 131 + j);
            unsigned char *p = mapalloc_malloc(a);
            CHECK(p != NULL);
            fill_big(p, a, seed);
            unsigned char *q = mapalloc_realloc(p, b == 0 ? 1 : b);
            size_t keep = a < b ? a : b;
            CHECKF(q != NULL, "realloc(%zu -> %zu)", a, b);
            CHECK(aligned(q, 16));
            CHECKF(mapalloc_usable_size(q) >= b, "realloc(%zu -> %zu): usable %zu", a, b,
                   mapalloc_usable_size(q));
            size_t bad = bad_fill_big(q, a, keep, seed);
            CHECKF(bad == keep, "realloc(%zu -> %zu) lost byte %zu", a, b, bad);
            if (b > 0) {
                q[0] = 0x3c;
                q[b - 1] = 0x3c;
            }
            mapalloc_free(q);
        }
    }
    /* A chain through every size, up and down, one block. */
    unsigned char *p = mapalloc_malloc(1);
    size_t have = 1;
    fill(p, 1, 99);
    for (int dir = 0; dir < 2; dir++) {
        for (size_t k = 0; k < NSIZES; k++) {
            size_t n = dir == 0 ? sizes[k] : sizes[NSIZES - 1 - k];
            if (n == 0)
                continue;
            p = mapalloc_realloc(p, n);
            CHECK(p != NULL);
            size_t keep = have < n ? have : n;
            CHECKF(bad_fill_big(p, have, keep, 99) == keep, "chain realloc %zu -> %zu", have, n);
            fill_big(p, n, 99);
            have = n;
        }
    }
    mapalloc_free(p);

    /* realloc(NULL, n) is malloc(n); realloc(p, 0) frees p and returns NULL. */
    p = mapalloc_realloc(NULL, 100);
    CHECK(p != NULL && mapalloc_usable_size(p) >= 100);
    struct mapalloc_stats before = stats();
    CHECK(mapalloc_realloc(p, 0) == NULL);
    struct mapalloc_stats after = stats();
    CHECKF(after.live_blocks + 1 == before.live_blocks, "realloc(p, 0) did not free: %zu -> %zu",
           before.live_blocks, after.live_blocks);
    p = mapalloc_malloc(2 * MiB);
    CHECK(p != NULL);
    CHECK(mapalloc_realloc(p, 0) == NULL);
    p = mapalloc_realloc(NULL, 0);
    CHECK(p != NULL);
    mapalloc_free(p);

    /* reallocarray: realloc of count * size. */
    int *v = mapalloc_reallocarray(NULL, 10, sizeof(int));
    CHECK(v != NULL);
    for (int i = 0; i < 10; i++)
        v[i] = i * i;
    v = mapalloc_reallocarray(v, 100000, sizeof(int));
    CHECK(v != NULL && mapalloc_usable_size(v) >= 100000 * sizeof(int));
    for (int i = 0; i < 10; i++)
        CHECK(v[i] == i * i);
    v = mapalloc_reallocarray(v, 5, sizeof(int));
    CHECK(v != NULL);
    for (int i = 0; i < 5; i++)
        CHECK(v[i] == i * i);
    mapalloc_free(v);

    /* Shrinking and regrowing a block repeatedly in place. */
    p = mapalloc_malloc(100000);
    fill(p, 100000, 5);
    for (size_t n = 100000; n > 16; n = n * 3 / 4) {
        p = mapalloc_realloc(p, n);
        CHECK(p != NULL && bad_fill(p, n, 5) == n);
    }
    mapalloc_free(p);
}

/* Growing a large block step by step from 1 MiB to 1 GiB moves page tables,
 * not bytes: resident memory stays at the pages actually written. A copy
 * would read every page of the old block and write every page of the new
 * one, making the whole block resident. The block is written one byte per
 * MiB, so huge pages (large_thp) would make each 2 MiB of it resident:
 * they are off here, and test_huge checks them on a growing block. */
static void test_realloc_large_growth(void)
{
    long thp = mapalloc_option_get("large_thp");
    CHECK(mapalloc_option_set("large_thp", 0) == 0);
    mapalloc_trim(0); /* no cached mapping of an earlier block, advised already */
    struct mapalloc_stats s0 = stats();
    size_t rss0 = wl_resident();
    unsigned char *p = mapalloc_malloc(MiB);
    CHECK(p != NULL);
    p[0] = 0x42;
    size_t n;
    double t0 = wl_now();
    for (n = 2 * MiB; n <= GiB; n += MiB) {
        p = mapalloc_realloc(p, n);
        CHECKF(p != NULL, "realloc to %zu", n);
        p[n - MiB] = (unsigned char)(n / MiB);
        /* Copying would move 512 GiB in all: give up long before. */
        CHECKF(wl_now() - t0 < 20.0, "growing to %zu MiB took %.1f s (copying bytes?)", n / MiB,
               wl_now() - t0);
    }
    size_t rss1 = wl_resident();
    for (n = 2 * MiB; n <= GiB; n += MiB)
        CHECKF(p[n - MiB] == (unsigned char)(n / MiB), "marker of MiB %zu lost", n / MiB);
    CHECK(p[0] == 0x42);
    struct mapalloc_stats s1 = stats();
    CHECK(s1.mremap_calls > s0.mremap_calls);
    CHECKF(rss1 < rss0 + 64 * MiB, "growing to 1 GiB made %zu MiB resident (copied?)",
           (rss1 - rss0) / MiB);
    /* And back down. */
    p = mapalloc_realloc(p, 3 * MiB);
    CHECK(p != NULL && p[0] == 0x42 && p[MiB] == 2);
    mapalloc_free(p);
    CHECK(mapalloc_option_set("large_thp", thp) == 0);
}

/* errno is not touched by a call that succeeds. */
static void check_errno_untouched(void)
{
    for (size_t k = 0; k < NSIZES; k++) {
        size_t n = sizes[k];
        errno = 4242;
        void *p = mapalloc_malloc(n);
        CHECKF(p != NULL && errno == 4242, "malloc(%zu): errno %d", n, errno);
        p = mapalloc_realloc(p, n * 2 + 1);
        CHECKF(p != NULL && errno == 4242, "realloc(%zu): errno %d", n * 2 + 1, errno);
        p = mapalloc_realloc(p, n / 3 + 1);
        CHECKF(p != NULL && errno == 4242, "realloc(%zu): errno %d", n / 3 + 1, errno);
        (void)mapalloc_usable_size(p);
        mapalloc_free(p);
        CHECKF(errno == 4242, "free after %zu: errno %d", n, errno);
        p = mapalloc_calloc(n, 1);
        CHECK(p != NULL && errno == 4242);
        mapalloc_free_sized(p, n);
        CHECK(errno == 4242);
        p = mapalloc_aligned_alloc(256, n);
        CHECK(p != NULL && errno == 4242);
        mapalloc_free_aligned_sized(p, 256, n);
        CHECK(errno == 4242);
        CHECK(mapalloc_posix_memalign(&p, 4096, n) == 0 && errno == 4242);
        mapalloc_free(p);
        p = mapalloc_memalign(64, n);
        CHECK(p != NULL && errno == 4242);
        mapalloc_free(p);
        p = mapalloc_valloc(n);
        CHECK(p != NULL && errno == 4242);
        mapalloc_free(p);
        p = mapalloc_pvalloc(n);
        CHECK(p != NULL && errno == 4242);
        mapalloc_free(p);
        p = mapalloc_reallocarray(NULL, n, 2);
        CHECK(p != NULL && errno == 4242);
        mapalloc_free(p);
    }
    errno = 4242;
    mapalloc_free(NULL);
    (void)mapalloc_trim(0);
    struct mapalloc_stats s;
    mapalloc_stats_get(&s);
    CHECK(errno == 4242);
    /* Many large frees in a row: every munmap and purge leaves errno alone. */
    void *big[16];
    for (int i = 0; i < 16; i++)
        big[i] = mapalloc_malloc((size_t)(i + 1) * MiB);
    for (int i = 0; i < 16; i++)
        mapalloc_free(big[i]);
    (void)mapalloc_trim(0);
    CHECK(errno == 4242);
}

/* The first allocation of a new thread (its heap set-up) leaves errno too. */
static void *errno_thread(void *arg)
{
    (void)arg;
    errno = 4242;
    void *p = mapalloc_malloc(24);
    CHECK(p != NULL);
    CHECKF(errno == 4242, "first malloc of a thread: errno %d", errno);
    void *q = mapalloc_malloc(LARGE_THRESHOLD * 2);
    CHECK(q != NULL && errno == 4242);
    mapalloc_free(p);
    mapalloc_free(q);
    CHECK(errno == 4242);
    return NULL;
}

static void test_errno(void)
{
    check_errno_untouched();
    pthread_t t;
    CHECK(pthread_create(&t, NULL, errno_thread, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
}

/* free_sized and free_aligned_sized take the size asked for, or any size up
 * to the usable size. */
static void test_free_sized(void)
{
    for (size_t k = 0; k < NSIZES; k++) {
        size_t n = sizes[k];
        void *p = mapalloc_malloc(n);
        CHECK(p != NULL);
        mapalloc_free_sized(p, n);
        p = mapalloc_malloc(n);
        CHECK(p != NULL);
        mapalloc_free_sized(p, mapalloc_usable_size(p));
        p = mapalloc_calloc(n, 1);
        mapalloc_free_sized(p, n);
        for (size_t a = 16; a <= 2 * MiB; a <<= 3) {
            p = mapalloc_aligned_alloc(a, n);
            CHECKF(p != NULL, "aligned_alloc(%zu, %zu): errno %d", a, n, errno);
            mapalloc_free_aligned_sized(p, a, n);
        }
    }
    /* Every size that malloc serves from a block's class fits it: the
     * smallest (one past the class below) and the largest (the usable
     * size), for every class up to 64 KiB. */
    size_t lo = 0;
    for (size_t n = 1; n <= 64 * KiB; n++) {
        void *p = mapalloc_malloc(n);
        CHECK(p != NULL);
        size_t usable = mapalloc_usable_size(p);
        mapalloc_free_sized(p, n);
        if (usable != n)
            continue;
        p = mapalloc_malloc(n);
        mapalloc_free_sized(p, lo + 1);
        p = mapalloc_malloc(lo + 1);
        CHECKF(mapalloc_usable_size(p) == n, "malloc(%zu) and malloc(%zu) share a class", lo + 1, n);
        mapalloc_free_sized(p, n);
        lo = n;
    }
}

/* Statistics: live figures rise with allocation and fall with free. */
static void test_stats(void)
{
    struct mapalloc_stats s0 = stats();
    CHECK(s0.mapped >= s0.small_mapped);
    CHECK(s0.mapped >= s0.large_mapped);
    CHECK(s0.peak_mapped >= s0.mapped);
    CHECK(s0.resident > 0);
    CHECK(s0.mmap_calls > 0);
    CHECK(s0.live_blocks >= s0.large_blocks);

    enum { N = 100 };
    void *p[N];
    for (int i = 0; i < N; i++)
        p[i] = mapalloc_malloc(1000);
    void *big = mapalloc_malloc(5 * MiB);
    struct mapalloc_stats s1 = stats();
    CHECKF(s1.live >= s0.live + N * 1000 + 5 * MiB, "live %zu -> %zu", s0.live, s1.live);
    CHECKF(s1.live_blocks == s0.live_blocks + N + 1, "live_blocks %zu -> %zu", s0.live_blocks,
           s1.live_blocks);
    CHECKF(s1.large_blocks == s0.large_blocks + 1, "large_blocks %zu -> %zu", s0.large_blocks,
           s1.large_blocks);
    CHECK(s1.large_mapped >= 5 * MiB);
    CHECK(s1.mapped >= s1.live);
    CHECK(s1.mapped >= s1.small_mapped + s1.large_mapped);
    CHECK(s1.peak_mapped >= s1.mapped);
    CHECK(s1.regions >= 1);
    for (int i = 0; i < N; i++)
        mapalloc_free(p[i]);
    mapalloc_free(big);
    struct mapalloc_stats s2 = stats();
    CHECKF(s2.live == s0.live, "live %zu before, %zu after freeing", s0.live, s2.live);
    CHECK(s2.live_blocks == s0.live_blocks);
    CHECK(s2.large_blocks == s0.large_blocks);
    CHECK(s2.peak_mapped >= s1.mapped);


    /* Printing: text and one JSON object. */
    int fds[2];
    CHECK(pipe(fds) == 0);
    mapalloc_stats_print(fds[1], 0);
    mapalloc_stats_print(fds[1], 1);
    close(fds[1]);
    static char buf[65536];
    size_t len = 0;
    ssize_t r;
    while ((r = read(fds[0], buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)r;
    close(fds[0]);
    buf[len] = '\0';
    CHECKF(len > 10, "stats_print wrote %zu bytes", len);
    char *json = strchr(buf, '{');
    CHECKF(json != NULL, "no JSON object in:\n%s", buf);
    char *end = strrchr(buf, '}');
    CHECK(end != NULL && end > json);
    CHECKF(strstr(json, "\"live\"") != NULL, "JSON without \"live\": %s", json);
}

struct handoff {
    void **blocks;
    int n;
};

static void *free_all(void *arg)
{
    struct handoff *h = arg;
    for (int i = 0; i < h->n; i++)
        mapalloc_free(h->blocks[i]);
    return NULL;
}

static void test_stats_cross_thread(void)
{
    enum { N = 500 };
    static void *blocks[N];
    struct mapalloc_stats s0 = stats();
    for (int i = 0; i < N; i++)
        blocks[i] = mapalloc_malloc((size_t)(i % 50) * 40 + 1);
    struct handoff h = {blocks, N};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, free_all, &h) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    struct mapalloc_stats s1 = stats();
    CHECKF(s1.live_blocks == s0.live_blocks, "live_blocks %zu -> %zu after remote frees",
           s0.live_blocks, s1.live_blocks);
    CHECKF(s1.live == s0.live, "live %zu -> %zu after remote frees", s0.live, s1.live);
}

/* A loop that frees the block it allocated, beside one live block of its
 * class, cycles through the page's first 16 KiB of blocks (and at most one
 * more carve of 4 KiB), not through all 64 blocks of its page: the block
 * malloc hands out was freed a few calls before, still in the cache. */
static void test_carve_bound(void)
{
    enum { SIZE = 1024, ROUNDS = 10000, MAX_SEEN = 64 };
    const unsigned bound = (16384 + 4096) / SIZE;
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    CHECK(a != NULL);
    void *keep = mapalloc_arena_malloc(a, SIZE);
    CHECK(keep != NULL);
    void *seen[MAX_SEEN];
    unsigned nseen = 0;
    for (int r = 0; r < ROUNDS; r++) {
        void *p = mapalloc_arena_malloc(a, SIZE);
        CHECK(p != NULL && p != keep);
        unsigned i = 0;
        while (i < nseen && seen[i] != p)
            i++;
        if (i == nseen && nseen < MAX_SEEN)
            seen[nseen++] = p;
        memset(p, r & 0xff, SIZE);
        mapalloc_arena_free(a, p);
    }
    CHECKF(nseen >= 2 && nseen <= bound, "%u distinct blocks of %d bytes in %d rounds (at most %u)", nseen,
           SIZE, ROUNDS, bound);
    mapalloc_arena_free(a, keep);
    mapalloc_arena_destroy(a);
}

static void test_trim(void)
{
    enum { N = 2000 };
    static void *p[N];
    for (int i = 0; i < N; i++)
        p[i] = mapalloc_malloc(1000 + (size_t)(i % 7) * 10000);
    for (int i = 0; i < N; i++)
        mapalloc_free(p[i]);
    int r = mapalloc_trim(0);
    CHECK(r == 0 || r == 1);
    r = mapalloc_trim(0);
    CHECK(r == 0 || r == 1);
    r = mapalloc_trim(1 * MiB);
    CHECK(r == 0 || r == 1);
    /* Still works after trimming. */
    void *q = mapalloc_malloc(1000);
    CHECK(q != NULL);
    memset(q, 1, 1000);
    mapalloc_free(q);
}

static int line_mentions(const char *line, void *what)
{
    return strstr(line, (const char *)what) != NULL;
}

/* Whether a line of /proc/self/maps holds what. */
static bool maps_mention(const char *what)
{
    return wl_proc_lines("/proc/self/maps", line_mentions, (void *)what) == 1;
}

/* Options: unknown names are refused; the environment's options are in
 * force. */
static void test_options(void)
{
    errno = 0;
    CHECK(mapalloc_option_set("no_such_option", 1) == -1);
    CHECK(errno == EINVAL);

    const char *env = getenv("MAPALLOC_OPTIONS");
    bool want_devzero = env != NULL && strstr(env, "devzero=1") != NULL;
    bool want_huge = env != NULL && strstr(env, "huge=1") != NULL;
    bool want_noreserve = env != NULL && strstr(env, "noreserve=1") != NULL;
    CHECK(mapalloc_option_get("devzero") == (want_devzero ? 1 : 0));
    CHECK(mapalloc_option_get("huge") == (want_huge ? 1 : 0));
    CHECK(mapalloc_option_get("noreserve") == (want_noreserve ? 1 : 0));

    /* Allocate enough for regions and large mappings to exist. */
    void *p[8];
    for (int i = 0; i < 8; i++)
        p[i] = mapalloc_malloc(i % 2 ? 100 : 8 * MiB);
    if (want_devzero)
        CHECKF(maps_mention("/dev/zero"), "devzero=1 but no /dev/zero mapping");
    if (want_huge && wl_proc_field("/proc/meminfo", "HugePages_Total") == 0) {
        struct mapalloc_stats s = stats();
        CHECKF(s.huge_fallbacks > 0, "huge=1 with no huge pages: huge_fallbacks %llu",
               (unsigned long long)s.huge_fallbacks);
    }
    for (int i = 0; i < 8; i++)
        mapalloc_free(p[i]);
}

static const struct {
    const char *name;
    void (*run)(void);
} tests[] = {
    {"options", test_options},
    {"malloc", test_malloc_basics},
    {"malloc_zero", test_malloc_zero},
    {"overflow", test_overflow},
    {"bad_alignment", test_bad_alignment},
    {"aligned", test_aligned},
    {"valloc", test_valloc},
    {"calloc_reuse", test_calloc_reuse},
    {"realloc", test_realloc_contents},
    {"realloc_growth", test_realloc_large_growth},
    {"errno", test_errno},
    {"free_sized", test_free_sized},
    {"stats", test_stats},
    {"stats_threads", test_stats_cross_thread},
    {"trim", test_trim},
    {"carve_bound", test_carve_bound},
};

/* test_api [name...]: runs the named tests, or all of them. */
int main(int argc, char **argv)
{
    page = (size_t)sysconf(_SC_PAGESIZE);
    /* The very first call, before anything else: errno stays. */
    errno = 4242;
    void *first = mapalloc_malloc(1);
    CHECK(first != NULL);
    CHECKF(errno == 4242, "first malloc: errno %d", errno);
    mapalloc_free(first);
    CHECK(errno == 4242);

    size_t ntests = sizeof tests / sizeof tests[0];
    for (int a = 1; a < argc; a++) {
        size_t k = 0;
        while (k < ntests && strcmp(tests[k].name, argv[a]) != 0)
            k++;
        CHECKF(k < ntests, "no test named %s", argv[a]);
    }
    for (size_t k = 0; k < ntests; k++) {
        bool run = argc == 1;
        for (int a = 1; a < argc; a++)
            run = run || strcmp(tests[k].name, argv[a]) == 0;
        if (!run)
            continue;
        tests[k].run();
        printf("api %s: ok\n", tests[k].name);
    }
    struct mapalloc_stats s = stats();
    printf("api: mapped %zu, peak %zu, mmap %llu, mremap %llu, huge_fallbacks %llu\n",
           s.mapped, s.peak_mapped, (unsigned long long)s.mmap_calls,
           (unsigned long long)s.mremap_calls, (unsigned long long)s.huge_fallbacks);
    return 0;
}
