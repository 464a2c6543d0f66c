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
 * faults each time (an arena's blocks skip the cache: they count against
 * its limit and go at its reset). System calls are never made under the
 * lock. */
#include <errno.h>
#include <string.h>

#include "alloc.h"

#define FREED ((size_t)1) /* low bit of entry.size: a tombstone */
#define TOMBS 4096
#define CACHE_MAX 64

struct entry {
    uintptr_t addr;  /* 0: empty slot */
    size_t size;     /* mapping length | FREED */
    size_t request;  /* the size asked for, for free_sized */
    ma_arena *arena; /* NULL for the ordinary heap */
    size_t arena_slot; /* index in arena->large */
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

static struct entry *insert_new(struct entry *tab, size_t cap, const struct entry *e)
{
    size_t i = slot_of(e->addr, cap);
    while (tab[i].addr != 0)
        i = (i + 1) & (cap - 1);
    tab[i] = *e;
    return &tab[i];
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
                insert_new(tab, cap, &old[i]);
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

/* Makes room for one more block in the arena's index. Lock held; dropped
 * around the mapping calls. */
static bool reserve_arena_slot(ma_arena *arena)
{
    while (arena->large_count + 1 > arena->large_cap) {
        size_t old_cap = arena->large_cap;
        size_t cap = old_cap ? old_cap * 2 : 512;
        ma_unlock(&ma_large_lock);
        uintptr_t *list = ma_os_map(cap * sizeof(uintptr_t), MA_OS_PAGE, 0);
        ma_lock(&ma_large_lock);
        if (list == NULL)
            return false;
        uintptr_t *old = NULL;
        if (arena->large_cap == old_cap) {
            if (arena->large_count)
                memcpy(list, arena->large, arena->large_count * sizeof(uintptr_t));
            old = arena->large;
            arena->large = list;
            arena->large_cap = cap;
        } else {
            old = list; /* another thread grew it meanwhile */
            old_cap = cap;
        }
        if (old) {
            ma_unlock(&ma_large_lock);
            ma_os_unmap(old, old_cap * sizeof(uintptr_t));
            ma_lock(&ma_large_lock);
        }
    }
    return true;
}

/* Records a live block, replacing a tombstone of the same address. */
static bool record(uintptr_t addr, size_t size, size_t request, ma_arena *arena)
{
    ma_lock(&ma_large_lock);
    if (arena && !reserve_arena_slot(arena)) {
        ma_unlock(&ma_large_lock);
        return false;
    }
    struct entry *e = find(addr);
    if (e == NULL) {
        if (!reserve_slot()) {
            ma_unlock(&ma_large_lock);
            return false;
        }
        struct entry n = {addr, size, request, arena, 0};
        e = insert_new(table, table_cap, &n);
        table_used++;
    } else {
        *e = (struct entry){addr, size, request, arena, 0};
    }
    if (arena) {
        e->arena_slot = arena->large_count;
        arena->large[arena->large_count++] = addr;
    }
    live_count++;
    live_bytes += size;
    mapped_bytes += size;
    ma_unlock(&ma_large_lock);
    return true;
}

/* Takes the block out of its arena's index. Lock held. */
static void arena_forget(struct entry *e)
{
    ma_arena *arena = e->arena;
    if (arena == NULL)
        return;
    uintptr_t last = arena->large[--arena->large_count];
    if (e->arena_slot != arena->large_count) {
        arena->large[e->arena_slot] = last;
        find(last)->arena_slot = e->arena_slot;
    }
    e->arena = NULL;
}

/* Marks the block freed and keeps its tombstone for a while. Lock held. */
static void bury(struct entry *e)
{
    arena_forget(e);
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

/* Takes the cached mapping closest in size to size, within a factor of two
 * either way: its pages are resident already, which saves the faults of a
 * fresh mapping. The caller fits it to size with mremap. Lock held. */
static uintptr_t cache_take(size_t size, size_t *got)
{
    int best = -1;
    size_t best_gap = SIZE_MAX;
    for (unsigned i = 0; i < cache_count; i++) {
        size_t c = cache[i].size;
        if (c / 2 > size || c < size / 2)
            continue;
        size_t gap = c > size ? c - size : size - c;
        if (gap < best_gap) {
            best = (int)i;
            best_gap = gap;
        }
    }
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

void *ma_large_malloc(size_t size, size_t alignment, bool zero, ma_arena *arena)
{
    if (size > (size_t)PTRDIFF_MAX - MA_OS_PAGE)
        return NULL;
    /* The secure profile puts a guard page after the block, and keeps
     * guarded mappings out of the cache. */
    size_t map_size = (size ? page_round(size) : MA_OS_PAGE) + (ma_secure ? MA_GUARD_SIZE : 0);
    if (arena && !ma_arena_commit(arena, map_size))
        return NULL;
    struct cached expired[CACHE_MAX];
    unsigned n_expired = 0;
    uintptr_t addr = 0;
    size_t got = map_size;
    if (alignment <= MA_OS_PAGE && ma_option(MA_OPT_LARGE_CACHE) > 0 && arena == NULL && !ma_secure) {
        ma_lock(&ma_large_lock);
        n_expired = cache_expire(expired, false);
        addr = cache_take(map_size, &got);
        ma_unlock(&ma_large_lock);
        unmap_all(expired, n_expired);
    }
    if (addr != 0 && got != map_size) {
        /* Trim the tail in place, or grow (moving if it must): either way
         * the part that is resident stays so. */
        void *q = ma_os_remap((void *)addr, got, map_size, true);
        if (q == NULL) {
            ma_os_unmap((void *)addr, got);
            addr = 0;
        } else {
            addr = (uintptr_t)q;
            got = map_size;
        }
    }
    bool fresh = addr == 0;
    if (fresh) {
        got = map_size;
        unsigned flags = arena ? arena->map_flags : ma_os_default_flags() & ~(unsigned)MA_MAP_HUGE;
        void *p = ma_os_map(map_size, alignment < MA_OS_PAGE ? MA_OS_PAGE : alignment, flags);
        if (p == NULL) {
            if (arena)
                ma_arena_uncommit(arena, map_size);
            return NULL;
        }
        addr = (uintptr_t)p;
        if (ma_secure && !ma_os_guard((uint8_t *)p + map_size - MA_GUARD_SIZE, MA_GUARD_SIZE)) {
            ma_os_unmap(p, map_size); /* no block without its guard */
            if (arena)
                ma_arena_uncommit(arena, map_size);
            return NULL;
        }
    }
    if (!record(addr, got, size, arena)) {
        ma_os_unmap((void *)addr, got);
        if (arena)
            ma_arena_uncommit(arena, map_size);
        return NULL;
    }
    if (arena)
        atomic_fetch_add_explicit(&arena->mapped, got, memory_order_relaxed);
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
    /* As jemalloc's sdallocx: any size between the request and the mapping. */
    if (expect_size && (page_round(expect_size) < page_round(e->request) || expect_size > e->size)) {
        ma_unlock(&ma_large_lock);
        ma_fatal("free_sized with a size that does not match the block", p);
    }
    if (expect_align && ((uintptr_t)p & (expect_align - 1)) != 0) {
        ma_unlock(&ma_large_lock);
        ma_fatal("free_aligned_sized with an alignment that does not match the block", p);
    }
    size_t size = e->size;
    ma_arena *arena = e->arena;
    bury(e);
    if (arena) {
        mapped_bytes -= size;
        ma_unlock(&ma_large_lock);
        ma_arena_uncommit(arena, size);
        atomic_fetch_sub_explicit(&arena->mapped, size, memory_order_relaxed);
        ma_os_unmap(p, size);
        return;
    }
    n = cache_expire(expired, false);
    size_t cache_limit = (size_t)ma_option(MA_OPT_LARGE_CACHE_MB) << 20;
    if (cache_count < (unsigned)ma_option(MA_OPT_LARGE_CACHE) && size <= cache_limit && !ma_secure) {
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

/* The table follows a block whose size changed, and moved when p != q.
 * Lock held. Erasing before inserting keeps the table from growing. */
static void rekey(uintptr_t p, uintptr_t q, size_t map_size, size_t request)
{
    struct entry *e = find(p);
    struct entry moved = *e;
    live_bytes += map_size - e->size;
    mapped_bytes += map_size - e->size;
    if (p == q) {
        e->size = map_size;
        e->request = request;
        return;
    }
    ma_arena *arena = e->arena;
    arena_forget(e);
    erase(e);
    moved.addr = q;
    moved.size = map_size;
    moved.request = request;
    moved.arena = arena;
    struct entry *n = find(q);
    if (n)
        *n = moved; /* a tombstone of q */
    else {
        n = insert_new(table, table_cap, &moved);
        table_used++;
    }
    if (arena) {
        n->arena_slot = arena->large_count;
        arena->large[arena->large_count++] = q;
    }
}

/* Grows or shrinks with mremap: page tables move, bytes are not copied.
 * NULL (old block intact) when the kernel refuses. In place needs no lock;
 * a move does, because the old address is free for any thread's mmap the
 * moment mremap returns, and the table must not name it by then. */
void *ma_large_realloc(void *p, size_t size)
{
    if (size > (size_t)PTRDIFF_MAX - MA_OS_PAGE)
        return NULL;
    size_t guard = ma_secure ? MA_GUARD_SIZE : 0; /* the guard page moves to the new end */
    size_t map_size = page_round(size) + guard;
    ma_lock(&ma_large_lock);
    struct entry *e = live_entry(p);
    size_t old = e->size;
    ma_arena *arena = e->arena;
    if (map_size <= old && map_size >= old / 2) {
        e->request = size; /* fits: shrinking a little is not worth a call */
        ma_unlock(&ma_large_lock);
        return p;
    }
    ma_unlock(&ma_large_lock);
    /* A block that grows usually grows again: a quarter more than asked
     * saves a system call on each of the next small steps. */
    if (map_size > old && map_size < old + old / 4 && !arena)
        map_size = page_round(old + old / 4) + guard;
    if (arena && map_size > old && !ma_arena_commit(arena, map_size - old))
        return NULL;
    if (guard)
        ma_os_unguard((uint8_t *)p + old - guard, guard);
    void *q = ma_os_remap(p, old, map_size, false);
    ma_lock(&ma_large_lock);
    if (q == NULL)
        q = ma_os_remap(p, old, map_size, true);
    if (q != NULL)
        rekey((uintptr_t)p, (uintptr_t)q, map_size, size);
    ma_unlock(&ma_large_lock);
    if (guard)
        ma_os_guard(q ? (uint8_t *)q + map_size - guard : (uint8_t *)p + old - guard, guard);
    if (q == NULL) {
        if (arena && map_size > old)
            ma_arena_uncommit(arena, map_size - old);
        return NULL;
    }
    if (arena) {
        if (map_size < old)
            ma_arena_uncommit(arena, old - map_size);
        atomic_fetch_add_explicit(&arena->mapped, map_size - old, memory_order_relaxed);
    }
    return q;
}

ma_arena *ma_large_arena_of(const void *p)
{
    ma_lock(&ma_large_lock);
    ma_arena *arena = live_entry(p)->arena;
    ma_unlock(&ma_large_lock);
    return arena;
}

/* Reset or destroy: every large block of the arena goes, in time
 * proportional to their number (they are mappings), not to the table. */
void ma_large_release_arena(ma_arena *arena)
{
    for (;;) {
        uintptr_t batch[64];
        size_t sizes[64];
        unsigned n = 0;
        ma_lock(&ma_large_lock);
        while (n < 64 && arena->large_count > 0) {
            struct entry *e = find(arena->large[arena->large_count - 1]);
            batch[n] = e->addr;
            sizes[n] = e->size;
            n++;
            bury(e); /* a later free of it is named a double free */
            mapped_bytes -= sizes[n - 1];
        }
        ma_unlock(&ma_large_lock);
        if (n == 0)
            return;
        for (unsigned i = 0; i < n; i++) {
            atomic_fetch_sub_explicit(&arena->mapped, sizes[i], memory_order_relaxed);
            ma_os_unmap((void *)batch[i], sizes[i]);
        }
    }
}

void ma_large_arena_stats(ma_arena *arena, size_t *live, size_t *blocks)
{
    ma_lock(&ma_large_lock);
    *blocks = arena->large_count;
    *live = 0;
    for (size_t i = 0; i < arena->large_count; i++)
        *live += find(arena->large[i])->size;
    ma_unlock(&ma_large_lock);
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
