/* Large blocks: above MA_LARGE_THRESHOLD a block is a mapping of its own,
 * starting at the block, with no header in front of it.
 *
 * A table (open addressing, keyed by address) records each live large block:
 * free and realloc find its size there, and an address that is not in the
 * table is not ours, which is how free tells a large block from a stray
 * pointer without touching memory that may be gone. A freed block leaves a
 * tombstone that is kept for the last TOMBS frees (or until the address is
 * mapped again), so a second free of it is named a double free.
 *
 * Freed mappings go to a small cache (large_cache entries, large_cache_mb
 * bytes, each for at most decay_ms) so that a program freeing and
 * allocating big buffers in a loop does not pay mmap, munmap and the page
 * faults each time. System calls are never made under the lock. */
#include <errno.h>
#include <string.h>

#include "alloc.h"

#define FREED ((size_t)1) /* low bit of entry.size: a tombstone */
#define TOMBS 4096
#define CACHE_MAX 64

struct entry {
    uintptr_t addr; /* 0: empty slot */
    size_t size;    /* mapping length | FREED */
    size_t request; /* the size asked for, for free_sized */
};

struct cached {
    uintptr_t addr;
    size_t size;
    uint64_t since_ms;
};

ma_spinlock ma_large_lock;
static struct entry *table;
static size_t table_cap, table_used; /* used counts tombstones too */
static size_t live_count, live_bytes, mapped_bytes;
static uintptr_t tombs[TOMBS];
static unsigned tomb_next;
static struct cached cache[CACHE_MAX];
static unsigned cache_count;
static size_t cache_bytes;

static size_t page_round(size_t n)
{
    return (n + MA_OS_PAGE - 1) & ~(MA_OS_PAGE - 1);
}

static size_t slot_of(uintptr_t addr, size_t cap)
{
    return (size_t)(((addr >> 12) * 0x9e3779b97f4a7c15ull) >> 32) & (cap - 1);
}

static struct entry *find(uintptr_t addr)
{
    if (table_cap == 0)
        return NULL;
    for (size_t i = slot_of(addr, table_cap);; i = (i + 1) & (table_cap - 1)) {
        if (table[i].addr == addr)
            return &table[i];
        if (table[i].addr == 0)
            return NULL;
    }
}

/* Linear probing deletion: shift later members of the cluster back. */
static void erase(struct entry *e)
{
    size_t i = (size_t)(e - table);
    for (size_t j = (i + 1) & (table_cap - 1); table[j].addr != 0; j = (j + 1) & (table_cap - 1)) {
        size_t home = slot_of(table[j].addr, table_cap);
        bool movable = i <= j ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            table[i] = table[j];
            i = j;
        }
    }
    table[i].addr = 0;
    table_used--;
}

static void insert_new(struct entry *tab, size_t cap, uintptr_t addr, size_t size, size_t request)
{
    size_t i = slot_of(addr, cap);
    while (tab[i].addr != 0)
        i = (i + 1) & (cap - 1);
    tab[i] = (struct entry){addr, size, request};
}

/* Makes room for one more entry. Called and returns with the lock held;
 * drops it around the mapping calls. False if no memory. */
static bool reserve_slot(void)
{
    while ((table_used + 1) * 2 > table_cap) {
        size_t old_cap = table_cap;
        size_t cap = old_cap ? old_cap * 2 : 1024;
        ma_unlock(&ma_large_lock);
        struct entry *tab = ma_os_map(cap * sizeof(struct entry), MA_OS_PAGE, 0);
        ma_lock(&ma_large_lock);
        if (tab == NULL)
            return false;
        if (table_cap != old_cap) { /* another thread grew it meanwhile */
            ma_unlock(&ma_large_lock);
            ma_os_unmap(tab, cap * sizeof(struct entry));
            ma_lock(&ma_large_lock);
            continue;
        }
        struct entry *old = table;
        for (size_t i = 0; i < old_cap; i++)
            if (old[i].addr)
                insert_new(tab, cap, old[i].addr, old[i].size, old[i].request);
        table = tab;
        table_cap = cap;
        if (old) {
            ma_unlock(&ma_large_lock);
            ma_os_unmap(old, old_cap * sizeof(struct entry));
            ma_lock(&ma_large_lock);
        }
    }
    return true;
}

/* Records a live block, replacing a tombstone of the same address. */
static bool record(uintptr_t addr, size_t size, size_t request)
{
    ma_lock(&ma_large_lock);
    struct entry *e = find(addr);
    if (e == NULL) {
        if (!reserve_slot()) {
            ma_unlock(&ma_large_lock);
            return false;
        }
        insert_new(table, table_cap, addr, size, request);
        table_used++;
    } else {
        e->size = size;
        e->request = request;
    }
    live_count++;
    live_bytes += size;
    mapped_bytes += size;
    ma_unlock(&ma_large_lock);
    return true;
}

/* Marks the block freed and keeps its tombstone for a while. Lock held. */
static void bury(struct entry *e)
{
    live_count--;
    live_bytes -= e->size;
    e->size |= FREED;
    uintptr_t old = tombs[tomb_next];
    tombs[tomb_next] = e->addr;
    tomb_next = (tomb_next + 1) % TOMBS;
    if (old) {
        struct entry *o = find(old);
        if (o && (o->size & FREED))
            erase(o);
    }
}

/* ---- the cache of freed mappings ---- */

/* Takes a cached mapping that fits size without wasting more than a
 * quarter of it. Lock held. */
static uintptr_t cache_take(size_t size, size_t *got)
{
    int best = -1;
    for (unsigned i = 0; i < cache_count; i++)
        if (cache[i].size >= size && cache[i].size - size <= size / 4 &&
            (best < 0 || cache[i].size < cache[best].size))
            best = (int)i;
    if (best < 0)
        return 0;
    uintptr_t addr = cache[best].addr;
    *got = cache[best].size;
    cache_bytes -= cache[best].size;
    cache[best] = cache[--cache_count];
    mapped_bytes -= *got; /* record() counts it again */
    return addr;
}

/* Removes what has waited longer than the decay (all when force), into
 * out[] for unmapping after the lock is dropped. Lock held. */
static unsigned cache_expire(struct cached *out, bool force)
{
    uint64_t now = ma_clock_ms();
    unsigned n = 0;
    for (unsigned i = 0; i < cache_count;) {
        if (force || now - cache[i].since_ms >= (uint64_t)ma_option(MA_OPT_DECAY_MS)) {
            out[n++] = cache[i];
            cache_bytes -= cache[i].size;
            mapped_bytes -= cache[i].size;
            cache[i] = cache[--cache_count];
        } else {
            i++;
        }
    }
    return n;
}

static void unmap_all(const struct cached *list, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        ma_os_unmap((void *)list[i].addr, list[i].size);
}

/* ---- the operations ---- */

void *ma_large_malloc(size_t size, size_t alignment, bool zero)
{
    if (size > (size_t)PTRDIFF_MAX - MA_OS_PAGE)
        return NULL;
    size_t map_size = page_round(size);
    struct cached expired[CACHE_MAX];
    unsigned n_expired = 0;
    uintptr_t addr = 0;
    size_t got = map_size;
    if (alignment <= MA_OS_PAGE && ma_option(MA_OPT_LARGE_CACHE) > 0) {
        ma_lock(&ma_large_lock);
        n_expired = cache_expire(expired, false);
        addr = cache_take(map_size, &got);
        ma_unlock(&ma_large_lock);
        unmap_all(expired, n_expired);
    }
    bool fresh = addr == 0;
    if (fresh) {
        got = map_size;
        void *p = ma_os_map(map_size, alignment < MA_OS_PAGE ? MA_OS_PAGE : alignment,
                            ma_os_default_flags() & ~(unsigned)MA_MAP_HUGE);
        if (p == NULL)
            return NULL;
        addr = (uintptr_t)p;
    }
    if (!record(addr, got, size)) {
        ma_os_unmap((void *)addr, got);
        return NULL;
    }
    if (zero && !fresh)
        memset((void *)addr, 0, size);
    return (void *)addr;
}

MA_COLD static void large_misuse(const void *p, bool was_freed)
{
    ma_unlock(&ma_large_lock);
    ma_fatal(was_freed ? "double free of" : "free of invalid pointer", p);
}

/* The live entry of p, or an abort. Lock held. */
static struct entry *live_entry(const void *p)
{
    struct entry *e = find((uintptr_t)p);
    if (e == NULL || (e->size & FREED))
        large_misuse(p, e != NULL);
    return e;
}

void ma_large_free(void *p, size_t expect_size, size_t expect_align)
{
    struct cached expired[CACHE_MAX + 1];
    unsigned n = 0;
    ma_lock(&ma_large_lock);
    struct entry *e = live_entry(p);
    if (expect_size && expect_size != e->request) {
        ma_unlock(&ma_large_lock);
        ma_fatal("free_sized with a size that does not match the block", p);
    }
    if (expect_align && ((uintptr_t)p & (expect_align - 1)) != 0) {
        ma_unlock(&ma_large_lock);
        ma_fatal("free_aligned_sized with an alignment that does not match the block", p);
    }
    size_t size = e->size;
    bury(e);
    n = cache_expire(expired, false);
    size_t cache_limit = (size_t)ma_option(MA_OPT_LARGE_CACHE_MB) << 20;
    if (cache_count < (unsigned)ma_option(MA_OPT_LARGE_CACHE) && size <= cache_limit) {
        /* Make room by bytes, oldest first. */
        while (cache_bytes + size > cache_limit && cache_count > 0) {
            unsigned oldest = 0;
            for (unsigned i = 1; i < cache_count; i++)
                if (cache[i].since_ms < cache[oldest].since_ms)
                    oldest = i;
            expired[n++] = cache[oldest];
            cache_bytes -= cache[oldest].size;
            mapped_bytes -= cache[oldest].size;
            cache[oldest] = cache[--cache_count];
            if (n == CACHE_MAX + 1)
                break;
        }
        if (cache_bytes + size <= cache_limit) {
            cache[cache_count++] = (struct cached){(uintptr_t)p, size, ma_clock_ms()};
            cache_bytes += size;
            ma_unlock(&ma_large_lock);
            unmap_all(expired, n);
            return;
        }
    }
    mapped_bytes -= size;
    ma_unlock(&ma_large_lock);
    unmap_all(expired, n);
    ma_os_unmap(p, size);
}

/* Grows or shrinks with mremap: page tables move, bytes are not copied.
 * NULL (old block intact) when the kernel refuses. */
void *ma_large_realloc(void *p, size_t size)
{
    if (size > (size_t)PTRDIFF_MAX - MA_OS_PAGE)
        return NULL;
    size_t map_size = page_round(size);
    ma_lock(&ma_large_lock);
    struct entry *e = live_entry(p);
    size_t old = e->size;
    if (map_size <= old && map_size >= old / 2) {
        e->request = size; /* fits: shrinking a little is not worth a call */
        ma_unlock(&ma_large_lock);
        return p;
    }
    ma_unlock(&ma_large_lock);
    void *q = ma_os_remap(p, old, map_size, true);
    if (q == NULL)
        return NULL;
    ma_lock(&ma_large_lock);
    e = find((uintptr_t)p);
    live_count--;
    live_bytes -= old;
    mapped_bytes -= old;
    erase(e);
    ma_unlock(&ma_large_lock);
    if (!record((uintptr_t)q, map_size, size)) {
        ma_os_unmap(q, map_size); /* only if the table itself could not grow */
        return NULL;
    }
    return q;
}

size_t ma_large_usable_size(const void *p)
{
    ma_lock(&ma_large_lock);
    size_t size = live_entry(p)->size;
    ma_unlock(&ma_large_lock);
    return size;
}

size_t ma_large_requested_size(const void *p)
{
    ma_lock(&ma_large_lock);
    size_t size = live_entry(p)->request;
    ma_unlock(&ma_large_lock);
    return size;
}

size_t ma_large_trim(void)
{
    struct cached expired[CACHE_MAX];
    ma_lock(&ma_large_lock);
    unsigned n = cache_expire(expired, true);
    ma_unlock(&ma_large_lock);
    size_t bytes = 0;
    for (unsigned i = 0; i < n; i++)
        bytes += expired[i].size;
    unmap_all(expired, n);
    return bytes;
}

void ma_large_stats(size_t *mapped, size_t *blocks, size_t *live)
{
    ma_lock(&ma_large_lock);
    *mapped = mapped_bytes;
    *blocks = live_count;
    *live = live_bytes;
    ma_unlock(&ma_large_lock);
}
