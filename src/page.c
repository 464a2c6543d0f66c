/* Pages: see page.h. */
#include <string.h>

#include "page.h"

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

/* The inverse of odd k modulo 2^64, by Newton's iteration: k is its own
 * inverse modulo 8, and each step doubles the bits that are right. */
static uint64_t inverse64(uint64_t k)
{
    uint64_t x = k;
    for (int i = 0; i < 5; i++)
        x *= 2 - k * x;
    return x;
}

/* block_div for ma_page_has_block: -(ceil(2^64 / block_size) + 1). */
void ma_page_set_divisor(ma_page *page, size_t block_size)
{
    page->block_div = 0 - (UINT64_MAX / block_size + 2);
}

/* Mixing in the old keys gives a reused descriptor new ones, so the links
 * and tags its earlier blocks hold mean nothing to it. */
static void page_new_keys(ma_page *page, const uint8_t *start)
{
    page->link_key = mix64(ma_secret[0] ^ (uintptr_t)start ^ page->link_key) | 1;
    page->shared_link_key = page->link_key;
    page->link_unkey = inverse64(page->link_key);
    page->tag_key = mix64(ma_secret[1] ^ (uintptr_t)start ^ page->tag_key);
}

bool ma_page_init(ma_page *page, ma_region *r, unsigned first, unsigned n, unsigned c)
{
    size_t bsize = ma_class_size(c);
    uint8_t *start = (uint8_t *)r + ((size_t)first << MA_SLICE_SHIFT);
    size_t span = (size_t)n << MA_SLICE_SHIFT;
    if (ma_secure) { /* the page's last 4 KiB is a guard */
        span -= MA_GUARD_SIZE;
        /* Each guard splits a mapping: past vm.max_map_count the kernel
         * refuses, and the page is refused rather than left unguarded. */
        if (!ma_os_guard(start + span, MA_GUARD_SIZE))
            return false;
    }
    page_new_keys(page, start);
    page->free = NULL;
    page->free_trigger = 1;
    page->over = -1; /* none out */
    ma_page_set_carved_end(page, start);
    ma_page_set_divisor(page, bsize);
    page->local_free = NULL;
    atomic_store_explicit(&page->thread_free, MA_TF_NONE, memory_order_relaxed);
    page->next = page->prev = page->notify_next = NULL;
    page->block_size = (uint32_t)bsize;
    page->reserved = (uint16_t)(span / bsize);
    page->fresh_left = page->reserved;
    page->class_idx = (uint8_t)c;
    page->sized_min = c == 0 ? 0 : ma_class_size(c - 1) + 1;
    page->sized_span = ma_secure ? 0 : bsize - page->sized_min + 1;
    page->slices = (uint8_t)n;
    page->first_slice = (uint8_t)first;
    page->in_full = page->notify_pending = page->retained = page->kept = page->abandoned = 0;
    page->hollow_free = NULL;
    page->hollow = 0;
    page->sparse_mask = 0;
    ma_region_set_page(r, first, n);
    return true;
}

_Static_assert(MA_ADDRESS_BITS <= MA_TF_COUNT_SHIFT, "a block's address leaves the count's bits free");
_Static_assert((UINTPTR_MAX >> MA_TF_COUNT_SHIFT) == UINT16_MAX, "the count has 16 bits, as page->reserved");

static ma_block *tf_list(uintptr_t tf)
{
    return (ma_block *)(tf & MA_TF_LIST_MASK);
}

static unsigned tf_count(uintptr_t tf)
{
    return (unsigned)(tf >> MA_TF_COUNT_SHIFT);
}

/* Remote frees nobody will collect now: as many as the list holds, at
 * most the blocks out. */
static size_t count_remote(const ma_page *page)
{
    size_t n = tf_count(atomic_load(&page->thread_free));
    return n < ma_page_used(page) ? n : ma_page_used(page);
}

size_t ma_page_forget(ma_page *page)
{
    size_t pending = count_remote(page);
    ma_page_uncarve(page);
    page->free_trigger = 1;
    page->over = -1;
    page->free = page->local_free = NULL;
    atomic_store_explicit(&page->thread_free, MA_TF_NONE, memory_order_relaxed);
    page->in_full = page->notify_pending = page->retained = page->hollow = 0;
    page->sparse_mask = 0;
    return pending;
}

size_t ma_page_restart(ma_page *page)
{
    size_t pending = ma_page_forget(page);
    page_new_keys(page, ma_page_start(page));
    page->next = page->prev = page->notify_next = NULL;
    page->fresh_left = 0; /* kept: none until it is committed again */
    return pending;
}

/* Carves the next blocks into the free list: 8 blocks first, then as many
 * as the page already has, up to 4 KiB at a time (at least one block). A
 * page becomes resident only as it is used, and a heap that uses a few
 * blocks of a class (an arena between resets) does not pay for linking
 * thousands. */
#define MA_EXTEND_BYTES 4096
#define MA_EXTEND_FIRST 8
void ma_page_extend(ma_page *page)
{
    size_t bsize = page->block_size;
    unsigned avail = page->fresh_left, capacity = ma_page_capacity(page);
    if (avail == 0)
        return;
    unsigned count = (unsigned)(MA_EXTEND_BYTES / bsize);
    unsigned grow = capacity > MA_EXTEND_FIRST ? capacity : MA_EXTEND_FIRST;
    if (count > grow)
        count = grow;
    if (count == 0)
        count = 1;
    if (count > avail)
        count = avail;
    uint8_t *first = page->carved_end;
    page->fresh_left = (uint16_t)(page->fresh_left - count);
    ma_page_set_carved_end(page, first + (size_t)count * bsize);
    if (ma_secure) {
        ma_secure_carve(page, first, count);
        return;
    }
    ma_block *next = page->free;
    for (unsigned i = count; i-- > 0;) {
        ma_block *b = (ma_block *)(first + (size_t)i * bsize);
        b->link = ma_link_encode(page, next);
        b->tag = ma_block_tag(page);
        next = b;
    }
    page->free = next;
}

void ma_page_corrupt(const ma_page *page, const void *at)
{
    (void)page;
    ma_fatal("corrupted free list (use after free or overflow) at", at);
}

/* The block whose link decodes to bad, the one written over; found by a
 * walk of the page's blocks, on a path that ends the process. */
static const void *written_over(const ma_page *page, const ma_block *bad)
{
    for (const uint8_t *b = ma_page_start(page); b < page->carved_end; b += page->block_size)
        if (ma_link_decode(page, ((const ma_block *)b)->link) == bad)
            return b;
    return bad;
}

void *ma_page_head_bad(const ma_page *page, const ma_block *b)
{
    if (page != &ma_empty_page)
        ma_page_corrupt(page, written_over(page, b));
    return NULL;
}

void ma_page_check_full(const ma_page *page)
{
    if (!MAPALLOC_CHECKS || ma_page_used(page) == ma_page_capacity(page))
        return;
    const void *lost = ma_page_start(page);
    for (const uint8_t *b = lost; b < page->carved_end; b += page->block_size)
        if (((const ma_block *)b)->tag == ma_block_tag(page)) {
            lost = b;
            break;
        }
    ma_page_corrupt(page, lost);
}

/* The list from head goes in front of free: walked for its tail (each link
 * checked on the way) only when free still holds blocks. */
static void free_push_list(ma_page *page, ma_block *head)
{
    if (page->free != NULL) {
        ma_block *tail = head;
        for (ma_block *n; (n = ma_link_decode(page, tail->link)) != NULL; tail = n) {
            if (!ma_page_has_block(page, (uintptr_t)n))
                ma_page_corrupt(page, tail);
        }
        tail->link = ma_link_encode(page, page->free);
    }
    page->free = head;
}

static void collect_local(ma_page *page)
{
    ma_block *local = page->local_free;
    if (local == NULL)
        return;
    page->local_free = NULL;
    free_push_list(page, local);
}

/* Other threads' frees into a sparse page pass no check on their way (a
 * batch's blocks after its first): a sparse block among them was free
 * already. */
static void check_not_sparse(const ma_page *page, ma_block *head, unsigned count)
{
    unsigned n = 0;
    for (ma_block *b = head; b != NULL; b = ma_link_decode(page, b->link)) {
        if (++n > count || !ma_page_has_block(page, (uintptr_t)b))
            ma_page_corrupt(page, b);
        if (ma_page_block_sparse(page, b))
            ma_fatal("double free of", b);
    }
}

/* The list other threads freed, in one exchange with its count. Into an
 * empty free list it goes as it is, unwalked: each of its links is checked
 * when malloc pops the block before it, as every link is. */
static size_t collect_thread(ma_page *page)
{
    uintptr_t tf = atomic_load_explicit(&page->thread_free, memory_order_relaxed);
    do {
        if (tf_list(tf) == NULL)
            return 0;
    } while (!atomic_compare_exchange_weak_explicit(&page->thread_free, &tf, tf & MA_TF_STATE_MASK,
                                                    memory_order_acquire, memory_order_relaxed));
    ma_block *head = tf_list(tf);
    unsigned count = tf_count(tf);
    if (!ma_page_has_block(page, (uintptr_t)head) || count == 0 || count > ma_page_used(page))
        ma_page_corrupt(page, head);
    if (page->sparse_mask != 0)
        check_not_sparse(page, head, count);
    free_push_list(page, head);
    page->over = (int16_t)(page->over - count);
    return count;
}

/* The remote list first, so that it finds free empty (a malloc that ran
 * dry) and is not walked; the owner's own frees, whose lines it wrote
 * last, then go in front and are reused first. */
size_t ma_page_collect(ma_page *page)
{
    size_t remote = collect_thread(page);
    collect_local(page);
    return remote;
}

/* ---- sparse pages ----
 *
 * A page of small blocks that a few live blocks keep part used stays
 * resident whole: each of a thread's classes keeps such a page, and a
 * program whose threads once used many classes holds tens of KiB in each
 * (git's pack-objects held 3 MiB so at its peak, bench/real/probe.py,
 * though most of those pages were in use within the last decay). Its
 * OS pages that hold only free blocks can go back; but a free block keeps
 * its link in itself, so those blocks leave the free list first. While
 * any is off it, the page's owner is MA_OWNER_CHECKED: every free into it
 * leaves the fast path and is checked against the sparse blocks (heap.c),
 * and other threads' frees are checked when they are collected. */

#define SPARSE_MAX_BLOCKS (MA_SPARSE_OS_PAGES * MA_OS_PAGE / MA_SMALL_STEP)

static bool bit_get(const uint64_t *bits, size_t i)
{
    return (bits[i / 64] >> (i % 64)) & 1;
}

static void bit_set(uint64_t *bits, size_t i)
{
    bits[i / 64] |= 1ull << (i % 64);
}

/* Bit j of the result: every carved block that the page's j-th OS page
 * holds a part of is free (its bit in free_bits), and no block will be
 * carved there (a fresh block in a sparse OS page would count as sparse). */
static uint64_t free_os_pages(const ma_page *page, const uint64_t *free_bits, size_t carved)
{
    size_t bsize = page->block_size, end = carved * bsize;
    if (page->fresh_left != 0) /* only the OS pages below the next carve */
        end &= ~(MA_OS_PAGE - 1);
    uint64_t mask = 0;
    for (size_t j = 0; j * MA_OS_PAGE < end; j++) {
        size_t last = ((j + 1) * MA_OS_PAGE - 1) / bsize;
        bool all = true;
        for (size_t i = j * MA_OS_PAGE / bsize; i <= last && i < carved && all; i++)
            all = bit_get(free_bits, i);
        if (all)
            mask |= 1ull << j;
    }
    return mask;
}

/* The free list without the blocks that span an OS page of mask, in its
 * order. */
static void free_list_drop(ma_page *page, uint64_t mask)
{
    const uint8_t *start = ma_page_start(page);
    ma_block *last = NULL;
    ma_block *b = page->free;
    page->free = NULL;
    while (b != NULL) {
        ma_block *next = ma_link_decode(page, b->link);
        if ((mask & ma_span_os_pages((size_t)((uint8_t *)b - start), page->block_size)) == 0) {
            if (last != NULL)
                last->link = ma_link_encode(page, b);
            else
                page->free = b;
            last = b;
        }
        b = next;
    }
    if (last != NULL)
        last->link = ma_link_encode(page, NULL);
}

size_t ma_page_sparsify(ma_page *page)
{
    size_t bsize = page->block_size;
    size_t carved = (size_t)(page->carved_end - ma_page_start(page)) / bsize;
    if ((size_t)page->slices * (MA_SLICE_SIZE / MA_OS_PAGE) > MA_SPARSE_OS_PAGES || carved == 0)
        return 0;
    uint64_t free_bits[SPARSE_MAX_BLOCKS / 64];
    memset(free_bits, 0, (carved + 63) / 64 * sizeof free_bits[0]);
    const uint8_t *start = ma_page_start(page);
    size_t n = 0;
    for (ma_block *b = page->free; b != NULL; b = ma_link_decode(page, b->link)) {
        if (!ma_page_has_block(page, (uintptr_t)b) || ++n > page->reserved)
            ma_page_corrupt(page, b);
        size_t i = (size_t)((uint8_t *)b - start) / bsize;
        bit_set(free_bits, i);
    }
    for (size_t i = 0; page->sparse_mask != 0 && i < carved; i++)
        if (page->sparse_mask & ma_span_os_pages(i * bsize, bsize))
            bit_set(free_bits, i);
    uint64_t add = free_os_pages(page, free_bits, carved) & ~page->sparse_mask;
    if (add == 0)
        return 0;
    free_list_drop(page, add);
    size_t bytes = 0;
    while (add != 0) { /* each run of OS pages in one call */
        unsigned j = (unsigned)__builtin_ctzll(add);
        unsigned len = (unsigned)__builtin_ctzll(~(add >> j));
        uint64_t run = (len == 64 ? ~0ull : ((1ull << len) - 1)) << j;
        ma_os_purge_now((uint8_t *)start + (size_t)j * MA_OS_PAGE, (size_t)len * MA_OS_PAGE);
        bytes += (size_t)len * MA_OS_PAGE;
        page->sparse_mask |= run;
        add &= ~run;
    }
    atomic_store_explicit(&page->owner, MA_OWNER_CHECKED, memory_order_relaxed);
    return bytes;
}

/* Lowest addresses first on the list: the page fills from its start. */
void ma_page_unsparsify(ma_page *page)
{
    size_t bsize = page->block_size;
    size_t carved = (size_t)(page->carved_end - ma_page_start(page)) / bsize;
    uint8_t *start = ma_page_start(page);
    for (size_t i = carved; i-- > 0;)
        if (page->sparse_mask & ma_span_os_pages(i * bsize, bsize)) {
            ma_block *b = (ma_block *)(start + i * bsize);
            b->link = ma_link_encode(page, page->free);
            b->tag = ma_block_tag(page);
            page->free = b;
        }
    page->sparse_mask = 0;
}

/* ---- the notice protocol ----
 *
 * The owner of a page that it found full takes it out of its queue and sets
 * the state to FULL. The first remote free into it takes the notice: its
 * block goes in and the state becomes NOTIFYING in one exchange; it puts
 * the page on the owner's notice stack; the state becomes NONE. While
 * NOTIFYING, the owner neither hands the page over (the push names its
 * heap) nor asks for a new notice. Both waits are for a few instructions of
 * a running thread: a fork that caught a freer between its steps leaves the
 * child without it, and the child finishes the notice itself (heap.c). */

/* Notices begun and not finished, so that a forked child looks for the
 * ones a vanished freer left half done only when there may be some. */
static _Atomic unsigned notices_in_flight;

static uintptr_t wait_notice_done(ma_page *page)
{
    uintptr_t tf;
    while (((tf = atomic_load_explicit(&page->thread_free, memory_order_acquire)) & MA_TF_STATE_MASK) ==
           MA_TF_NOTIFYING)
        ma_cpu_relax();
    return tf;
}

/* A notice of the page's last time out of the queue may still be finishing
 * (NOTIFYING, though the owner already took the page back): wait for it,
 * or its end would erase the new request. */
bool ma_page_set_full(ma_page *page)
{
    uintptr_t tf = atomic_load_explicit(&page->thread_free, memory_order_relaxed);
    for (;;) {
        if ((tf & ~MA_TF_STATE_MASK) != 0)
            return false;
        if ((tf & MA_TF_STATE_MASK) == MA_TF_NOTIFYING) {
            tf = wait_notice_done(page);
            continue;
        }
        if ((tf & MA_TF_STATE_MASK) != MA_TF_NONE)
            return true;
        if (atomic_compare_exchange_weak_explicit(&page->thread_free, &tf, MA_TF_FULL,
                                                  memory_order_release, memory_order_relaxed))
            return true;
    }
}

bool ma_page_unfull(ma_page *page)
{
    uintptr_t tf = atomic_load_explicit(&page->thread_free, memory_order_relaxed);
    for (;;) {
        if ((tf & MA_TF_STATE_MASK) != MA_TF_FULL)
            return false;
        if (atomic_compare_exchange_weak_explicit(&page->thread_free, &tf, tf & ~MA_TF_STATE_MASK,
                                                  memory_order_relaxed, memory_order_relaxed))
            return true;
    }
}

void ma_page_set_never(ma_page *page)
{
    uintptr_t tf = atomic_load_explicit(&page->thread_free, memory_order_acquire);
    for (;;) {
        if ((tf & MA_TF_STATE_MASK) == MA_TF_NOTIFYING) {
            tf = wait_notice_done(page);
            continue;
        }
        if (atomic_compare_exchange_weak_explicit(&page->thread_free, &tf,
                                                  (tf & ~MA_TF_STATE_MASK) | MA_TF_NEVER,
                                                  memory_order_acq_rel, memory_order_acquire))
            return;
    }
}

void ma_page_adopt(ma_page *page, struct ma_heap *heap, const void *owner)
{
    ma_page_own(page, heap, owner);
    uintptr_t tf = atomic_load_explicit(&page->thread_free, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&page->thread_free, &tf, tf & ~MA_TF_STATE_MASK,
                                                  memory_order_acq_rel, memory_order_relaxed)) {
    }
    page->in_full = page->notify_pending = page->retained = page->hollow = 0; /* not abandoned: the arena cleared it */
    ma_page_set_trigger(page, 1);
    page->next = page->prev = NULL;
}

bool ma_page_push_remote(ma_page *page, ma_block *head, ma_block *tail, unsigned count)
{
    uintptr_t tf = atomic_load_explicit(&page->thread_free, memory_order_relaxed);
    for (;;) {
        unsigned total = tf_count(tf) + count;
        if (total > page->reserved) /* more frees than blocks: double frees raced past the tags */
            ma_page_corrupt(page, head);
        uintptr_t list = (uintptr_t)total << MA_TF_COUNT_SHIFT | (uintptr_t)head;
        tail->link = ma_link_encode_shared(page, tf_list(tf));
        if ((tf & MA_TF_STATE_MASK) != MA_TF_FULL) {
            if (atomic_compare_exchange_weak_explicit(&page->thread_free, &tf, list | (tf & MA_TF_STATE_MASK),
                                                      memory_order_release, memory_order_relaxed))
                return false;
            continue;
        }
        /* The count rises before the state and falls after it, with
         * release order: a child that a fork leaves with a NOTIFYING page
         * sees a count above zero (a fork's copy keeps each thread's stores
         * in order). */
        atomic_fetch_add_explicit(&notices_in_flight, 1, memory_order_relaxed);
        if (atomic_compare_exchange_weak_explicit(&page->thread_free, &tf, list | MA_TF_NOTIFYING,
                                                  memory_order_acq_rel, memory_order_relaxed))
            return true;
        atomic_fetch_sub_explicit(&notices_in_flight, 1, memory_order_relaxed);
    }
}

void ma_page_notice_done(ma_page *page)
{
    atomic_fetch_and_explicit(&page->thread_free, ~MA_TF_STATE_MASK, memory_order_release);
    atomic_fetch_sub_explicit(&notices_in_flight, 1, memory_order_release);
}

bool ma_page_notices_in_flight(void)
{
    return atomic_load_explicit(&notices_in_flight, memory_order_acquire) != 0;
}

void ma_page_fork_child_done(void)
{
    atomic_store_explicit(&notices_in_flight, 0, memory_order_relaxed);
}
