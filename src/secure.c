/* The secure profile (option secure=1, or the default with -Dsecure=true):
 * what costs more than the default checks.
 *
 *  - Canaries: every small or medium block ends with an 8-byte trailer that
 *    holds the requested size and a keyed checksum; the bytes between the
 *    request and the trailer hold a keyed pattern. free checks both, so a
 *    write one byte past the request is caught.
 *  - Zero on free, checked on reuse: free clears the block (all but the
 *    link and tag words); malloc checks it is still clear, so a write after
 *    free is caught when the block comes back.
 *  - Guard pages: the last 4 KiB of every page and of every region header
 *    are inaccessible, and large blocks get one after them.
 *  - Randomised order: blocks are carved into the free list in random order.
 *
 * None of it is on the fast path: while the profile is on, heaps publish the
 * empty page (every malloc takes the generic path, api.c) and pages are
 * owned by MA_OWNER_CHECKED (every free takes the slow path, which checks
 * the block before it is pushed on a list). */
#include <string.h>

#include "page.h"

static uint64_t trailer_sum(const void *block, uint64_t size)
{
    uint64_t x = (uint64_t)(uintptr_t)block ^ ma_secret[3] ^ (size * 0x9e3779b97f4a7c15ull);
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ull;
    return x ^ (x >> 29);
}

static uint8_t pattern_byte(const void *block)
{
    return (uint8_t)(trailer_sum(block, 0) >> 56) | 1; /* never 0: a zeroed tail is caught */
}

/* Words that may alias the caller's data. */
typedef uint64_t __attribute__((may_alias)) ma_word;

/* True when the n bytes at p (16-byte aligned, n a multiple of 16) are all
 * zero. No early exit, so that the loop vectorises: a block is checked at
 * every reuse, and a byte-wise scan was most of the profile's cost. */
static bool is_clear(const uint8_t *p, size_t n)
{
    const ma_word *w = (const ma_word *)(const void *)p;
    uint64_t any = 0;
    for (size_t i = 0; i < n / sizeof *w; i++)
        any |= w[i];
    return any == 0;
}

/* The class that serves size with its trailer. */
unsigned ma_secure_class(size_t size, size_t alignment)
{
    if (size > MA_LARGE_THRESHOLD - MA_SECURE_TRAILER)
        return MA_CLASS_COUNT;
    size += MA_SECURE_TRAILER;
    return alignment > MA_SMALL_STEP ? ma_aligned_class(size, alignment) : ma_size_class(size);
}

/* A block just popped: it must still be clear (it was cleared when freed or
 * carved); then the request's trailer and pattern go in. */
void *ma_secure_prepare(void *p, size_t size, bool zero)
{
    ma_page *page = ma_page_lookup((uintptr_t)p);
    uint8_t *b = p;
    size_t bsize = page->block_size;
    if (!is_clear(b + sizeof(ma_block), bsize - sizeof(ma_block)))
        ma_fatal("write after free detected in block", p);
    size_t end = bsize - MA_SECURE_TRAILER;
    memset(b + size, pattern_byte(p), end - size);
    uint64_t trailer = (uint64_t)size | (trailer_sum(p, size) << 32);
    memcpy(b + end, &trailer, sizeof trailer);
    if (zero) /* the rest is clear already; the canary starts at size */
        memset(b, 0, size < sizeof(ma_block) ? size : sizeof(ma_block));
    return p;
}

/* The size that was requested for p; aborts if the trailer was overwritten. */
size_t ma_secure_size(const ma_page *page, const void *p)
{
    const uint8_t *b = p;
    size_t end = page->block_size - MA_SECURE_TRAILER;
    uint64_t trailer;
    memcpy(&trailer, b + end, sizeof trailer);
    uint64_t size = trailer & 0xffffffffu;
    if (size > end || (trailer >> 32) != (trailer_sum(p, size) & 0xffffffffu))
        ma_fatal("heap overflow (canary) detected at the end of block", p);
    return (size_t)size;
}

/* A block being freed: check the canary, then clear it. The first 16 bytes
 * are the list link and tag, written by the free that called us. */
void ma_secure_check_free(const ma_page *page, void *p)
{
    uint8_t *b = p;
    size_t size = ma_secure_size(page, p);
    size_t end = page->block_size - MA_SECURE_TRAILER;
    uint8_t pat = pattern_byte(p), diff = 0;
    for (size_t i = size; i < end; i++) /* no early exit: it vectorises */
        diff |= b[i] ^ pat;
    if (diff != 0)
        ma_fatal("heap overflow (canary) detected at the end of block", p);
    if (page->block_size > sizeof(ma_block))
        memset(b + sizeof(ma_block), 0, page->block_size - sizeof(ma_block));
}

/* Blocks carved for the first time: cleared (the slices may have been used
 * before), and linked in random order. */
void ma_secure_carve(ma_page *page, uint8_t *first, unsigned count)
{
    static MA_THREAD_LOCAL uint64_t rng;
    if (rng == 0)
        rng = ma_secret[2] ^ (uintptr_t)&rng;
    size_t bsize = page->block_size;
    memset(first, 0, (size_t)count * bsize);
    uint16_t order[1024];
    unsigned n = count < 1024 ? count : 1024;
    for (unsigned i = 0; i < n; i++)
        order[i] = (uint16_t)i;
    for (unsigned i = n; i > 1; i--) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        unsigned j = (unsigned)(rng % i);
        uint16_t t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    ma_block *next = page->free;
    for (unsigned i = n; i-- > 0;) {
        ma_block *b = (ma_block *)(first + (size_t)order[i] * bsize);
        b->link = ma_link_encode(page, next);
        b->tag = ma_block_tag(page);
        next = b;
    }
    page->free = next;
}
