/* Pages: blocks of one size class in a run of slices (page.c), and the
 * secure profile's work on blocks (secure.c).
 *
 * Free lists are sharded three ways (as in mimalloc): `free`, which malloc
 * pops; `local_free`, which the owner's free pushes; and `thread_free`, an
 * atomic stack for frees from other threads. The owner turns the other two
 * into `free` only when `free` runs dry, so the fast paths never contend.
 * Every free block carries its tag (set when carved, by free when
 * returned), so a second free of the same block is seen at once. */
#ifndef MA_PAGE_H
#define MA_PAGE_H

#include "internal.h"
#include "region.h"

/* ---- free-list links and free tags ---- */

/* Links are stored encoded with the page's secret, so an overflow or a
 * use-after-free write cannot forge a pointer the allocator will follow:
 * the pointer times the key, an odd number, and back times its inverse (one
 * multiply each way). A write over any of a link's bytes changes the decoded
 * pointer by that change times the inverse, which keeps the change's lowest
 * bit and scrambles every bit above it: a change from bit 22 up lands in
 * another region, and one from below stays in the block's region once in
 * about 2^42 (malloc's check stops the rest). Where lists end, a link is 0:
 * it tells nothing of the key. A link written over with 0 ends the list
 * there; the blocks after it are missed when the page fills
 * (ma_page_check_full). */
static inline uintptr_t ma_link_seal(uintptr_t key, const ma_block *next)
{
    return (uintptr_t)next * key;
}

static inline uintptr_t ma_link_encode(const ma_page *page, const ma_block *next)
{
    return ma_link_seal(page->link_key, next);
}

/* The same, by a thread that does not own the page, from the key's copy on
 * the line that every free reads: the owner's line stays where it is. */
static inline uintptr_t ma_link_encode_shared(const ma_page *page, const ma_block *next)
{
    return ma_link_seal(page->shared_link_key, next);
}

static inline ma_block *ma_link_decode(const ma_page *page, uintptr_t enc)
{
    return (ma_block *)(enc * page->link_unkey);
}

/* The mark of a free block of page: only the allocator writes it, malloc
 * erases it. The page's secret itself, the same for all its blocks (a live
 * block holds it by chance once in 2^64), so that free compares it straight
 * from the descriptor: one instruction fewer than a mark mixed with the
 * block's address, which would tell the attacker who reads one no less. */
static inline uintptr_t ma_block_tag(const ma_page *page)
{
    return page->tag_key;
}

/* Other threads' frees read carved_end (ma_page_has_block) while the owner
 * moves it on: a relaxed atomic, the same single load and store on x86-64 as
 * a plain field. */
static inline uint8_t *ma_page_carved_end(const ma_page *page)
{
    return __atomic_load_n(&page->carved_end, __ATOMIC_RELAXED);
}

static inline void ma_page_set_carved_end(ma_page *page, uint8_t *end)
{
    __atomic_store_n(&page->carved_end, end, __ATOMIC_RELAXED);
}

/* True when u is the start of a carved block of page, with one subtract,
 * one multiply and one compare. u is never below the page's start (its
 * slice belongs to the page, or to pages[0], whose block_div is 0), so
 * u - carved_end lies within a page's span S of 0. Let c = ceil(2^64 /
 * size) (the divisor of Lemire, Kaser and Kurz), r = size * c - 2^64 < size;
 * block_div is -(c + 1), so that (carved_end - u) * block_div is
 * (u - carved_end) * (c + 1). The block k blocks below carved_end gives
 * 2^64 - k * (size + r), within 2S of 2^64. Any other address gives at
 * most 2^64 - c + 2S (off a block boundary) or at most 2S (at or past
 * carved_end on one): far below, since c is at least 2^64 / 512 KiB.
 * (carved_end - u, not u - carved_end: the loaded carved_end is the
 * subtract's destination, and the atomic load costs no extra move.)
 * tests/test_page_index.c checks every offset of every class. */
#define MA_BLOCK_WINDOW ((uint64_t)1 << 24)
_Static_assert(2 * MA_REGION_SIZE <= MA_BLOCK_WINDOW, "a page's blocks fit the window");
_Static_assert(UINT64_MAX / MA_LARGE_THRESHOLD > 4 * MA_BLOCK_WINDOW, "no other address fits it");
static inline bool ma_page_has_block(const ma_page *page, uintptr_t u)
{
    uint64_t x = (uint64_t)((uintptr_t)ma_page_carved_end(page) - u) * page->block_div;
    return x >= (uint64_t)0 - MA_BLOCK_WINDOW;
}

/* True when a request of size bytes is served by page's class: a caller
 * of free_sized names the block's class, with one subtract and one compare
 * (never in the secure profile, whose sized_span is 0). */
static inline bool ma_page_serves_size(const ma_page *page, size_t size)
{
    return size - page->sized_min < page->sized_span;
}

/* ---- the count of blocks out ---- */

/* Blocks handed out and not back with the owner (remote frees not yet
 * collected count as out). */
static inline unsigned ma_page_used(const ma_page *page)
{
    return (unsigned)(page->over + page->free_trigger);
}

static inline void ma_page_set_trigger(ma_page *page, unsigned trigger)
{
    page->over = (int16_t)(page->over + page->free_trigger - (int)trigger);
    page->free_trigger = (uint16_t)trigger;
}

/* The page's heap, and its thread for free's compare (the secure profile's
 * pages and sparse pages have none: all their frees are checked first). */
static inline void ma_page_own(ma_page *page, struct ma_heap *heap, const void *owner)
{
    atomic_store_explicit(&page->heap, heap, memory_order_relaxed);
    atomic_store_explicit(&page->owner,
                          heap == NULL                          ? NULL
                          : ma_secure || page->sparse_mask != 0 ? MA_OWNER_CHECKED
                                                                : owner,
                          memory_order_relaxed);
}

/* ---- sparse pages ---- */

/* Pages of at most this many OS pages may become sparse (a mask's bits). */
#define MA_SPARSE_OS_PAGES 64

/* The OS pages, as bits of sparse_mask, that a block of size bytes at
 * offset off of its page spans. */
static inline uint64_t ma_span_os_pages(size_t off, size_t size)
{
    unsigned lo = (unsigned)(off / MA_OS_PAGE), hi = (unsigned)((off + size - 1) / MA_OS_PAGE);
    return ((2ull << hi) - 1) & ~((1ull << lo) - 1); /* 2 << 63 wraps to 0: all ones */
}

/* True when b, a block of page, is sparse: free, off the lists. */
static inline bool ma_page_block_sparse(const ma_page *page, const void *b)
{
    size_t off = (size_t)((const uint8_t *)b - ma_page_start(page));
    return (page->sparse_mask & ma_span_os_pages(off, page->block_size)) != 0;
}

/* ---- taking a block ---- */

MA_NORETURN MA_COLD void ma_page_corrupt(const ma_page *page, const void *at);

/* The head b of page's free list may be popped: it lies in the page's
 * region. One test turns away an empty list (NULL is in no region), a head
 * decoded from a link that we did not write (the link of the block popped
 * before it), and the empty page's list, MA_NO_BLOCKS. A link is checked
 * here, before the block it names is read, rather than when it is decoded:
 * that saves a separate test for NULL. */
static inline bool ma_page_head_ok(const ma_page *page, const ma_block *b)
{
    if (!MAPALLOC_CHECKS)
        return b != NULL;
    return (((uintptr_t)b ^ (uintptr_t)page) >> MA_REGION_SHIFT) == 0;
}

/* A head that failed ma_page_head_ok and is not NULL: the empty page's
 * (returns NULL), or a corrupted list (never returns). */
MA_NOINLINE void *ma_page_head_bad(const ma_page *page, const ma_block *b);

static inline void *ma_page_pop_head(ma_page *page, ma_block *b)
{
    page->free = ma_link_decode(page, b->link);
    if (MAPALLOC_CHECKS)
        b->tag = 0;
    page->over++;
    return b;
}

/* A block from the free list; NULL when it is empty. */
static inline void *ma_page_pop(ma_page *page)
{
    ma_block *b = page->free;
    if (ma_likely(ma_page_head_ok(page, b)))
        return ma_page_pop_head(page, b);
    return b == NULL ? NULL : ma_page_head_bad(page, b);
}

/* The page's next never-used blocks, when its free list is empty, are
 * handed out as they are: no free-list link is written or read, so a block
 * is first touched by its caller, and a run of fresh allocations costs no
 * carving. Only while nothing the owner freed waits in the page (those are
 * reused first, through the slow path). No free tag needs clearing: blocks
 * past carved_end never had one under the page's current keys. A kept page
 * has no fresh blocks until it is committed again. */
static inline bool ma_page_can_bump(const ma_page *page)
{
    return page->fresh_left != 0 && page->local_free == NULL;
}

static inline void *ma_page_bump(ma_page *page)
{
    uint8_t *b = page->carved_end;
    if (b == NULL)
        __builtin_unreachable(); /* a page with fresh blocks has its slices: no test of the result */
    ma_page_set_carved_end(page, b + page->block_size);
    page->fresh_left--;
    page->over++;
    return b;
}

/* A block from the free list, or fresh; NULL: the slow path, which takes
 * from the page with ma_page_take_checked. A head that fails the test and
 * is not NULL (a corrupted list: nothing on it can be reached) is left
 * where it is, for the slow path to find, so that malloc's fast path tests
 * the head once and makes no call that is not its last. */
static inline void *ma_page_take(ma_page *page)
{
    ma_block *b = page->free;
    if (ma_likely(ma_page_head_ok(page, b)))
        return ma_page_pop_head(page, b);
    return ma_page_can_bump(page) ? ma_page_bump(page) : NULL;
}

/* As ma_page_take, for the slow path: a corrupted list stops here. */
static inline void *ma_page_take_checked(ma_page *page)
{
    void *b = ma_page_take(page);
    if (b == NULL && page->free != NULL)
        return ma_page_head_bad(page, page->free);
    return b;
}

/* Blocks carved or handed out fresh. */
static inline unsigned ma_page_capacity(const ma_page *page)
{
    return (unsigned)page->reserved - page->fresh_left;
}

/* The page has no blocks: none of its addresses passes ma_page_has_block;
 * every block is fresh again. */
static inline void ma_page_uncarve(ma_page *page)
{
    page->fresh_left = page->reserved;
    ma_page_set_carved_end(page, ma_page_start(page));
}

/* ---- queues of pages (a heap's, an arena's abandoned ones) ---- */

/* A queue's first page is stored atomically: an arena's abandoned queues
 * are looked at without the lock (ma_arena_take_abandoned). */
static inline void ma_queue_set_first(ma_page_queue *q, ma_page *page)
{
    __atomic_store_n(&q->first, page, __ATOMIC_RELAXED);
}

static inline void ma_queue_unlink(ma_page_queue *q, ma_page *page)
{
    if (page->prev)
        page->prev->next = page->next;
    else
        ma_queue_set_first(q, page->next);
    if (page->next)
        page->next->prev = page->prev;
    else
        q->last = page->prev;
    page->next = page->prev = NULL;
}

static inline void ma_queue_push_back(ma_page_queue *q, ma_page *page)
{
    page->next = NULL;
    page->prev = q->last;
    if (q->last)
        q->last->next = page;
    else
        ma_queue_set_first(q, page);
    q->last = page;
}

static inline void ma_queue_push_front(ma_page_queue *q, ma_page *page)
{
    page->prev = NULL;
    page->next = q->first;
    if (q->first)
        q->first->prev = page;
    else
        q->last = page;
    ma_queue_set_first(q, page);
}

/* ---- page.c ---- */

/* Sets the descriptor up for blocks of class c in the n slices from first
 * (n may be less than the class's length). False: the secure profile's
 * guard was refused. */
bool ma_page_init(ma_page *page, ma_region *r, unsigned first, unsigned n, unsigned c);
void ma_page_set_divisor(ma_page *page, size_t block_size);
void ma_page_extend(ma_page *page);          /* carve more blocks into free */
/* Drops every block at once, remote frees not yet collected included;
 * returns those (they count as collected for the statistics). */
size_t ma_page_forget(ma_page *page);
/* As ma_page_forget, and new keys: the page starts again from its first
 * block, keeping its slices and class. */
size_t ma_page_restart(ma_page *page);
/* Local and remote frees into free; returns the remote blocks collected.
 * A remote free of a sparse block ends the process: a double free. */
size_t ma_page_collect(ma_page *page);
/* The OS pages of an owned page of small blocks (not the secure profile's)
 * that hold only free blocks are purged, and their blocks leave the free
 * list; the page's owner becomes MA_OWNER_CHECKED. Its local list must be
 * empty; blocks that other threads free meanwhile are live to it, and are
 * checked when they are collected. Returns the bytes purged. */
size_t ma_page_sparsify(ma_page *page);
/* Every sparse block goes back on the free list; the caller owns the
 * page anew (ma_page_own) for free's compare. */
void ma_page_unsparsify(ma_page *page);

/* The notice protocol (owner side). */
bool ma_page_set_full(ma_page *page);       /* false: blocks arrived, page usable */
/* A page with no block to hand out has every block out; if not, a link
 * written over with 0 cut some off its lists: stops naming one of them. */
void ma_page_check_full(const ma_page *page);
bool ma_page_unfull(ma_page *page);         /* false: a notice is on its way instead */
void ma_page_set_never(ma_page *page);      /* abandonment: no more notices */
void ma_page_adopt(ma_page *page, struct ma_heap *heap, const void *owner);

/* Frees by a thread that does not own the page: the count blocks
 * head..tail, tagged and linked (but tail's link), in one atomic push. True when the
 * push took the page's notice: the caller delivers it (puts the page on its
 * owner's notice stack) and then calls ma_page_notice_done. */
bool ma_page_push_remote(ma_page *page, ma_block *head, ma_block *tail, unsigned count);
void ma_page_notice_done(ma_page *page);
/* In a forked child: might a vanished thread have left a notice half
 * done? ma_page_notice_done finishes one; ma_page_fork_child_done says
 * they all are. */
bool ma_page_notices_in_flight(void);
void ma_page_fork_child_done(void);

/* ---- secure.c: the secure profile ---- */
#define MA_SECURE_TRAILER 8 /* requested size and keyed checksum at a block's end */
unsigned ma_secure_class(size_t size, size_t alignment);
void *ma_secure_prepare(void *p, size_t size, bool zero);
size_t ma_secure_size(const ma_page *page, const void *p);
void ma_secure_check_free(const ma_page *page, void *p); /* canary checked, block cleared */
void ma_secure_carve(ma_page *page, uint8_t *first, unsigned count);

#endif
