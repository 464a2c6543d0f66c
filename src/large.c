/* Large blocks: above MA_LARGE_THRESHOLD a block is a mapping of its own,
 * starting at the block, with no header in front of it.
 *
 * A table (open addressing, keyed by address) records each live large block:
 * free and realloc find its size there, and an address that is not in the
 * table is not ours, which is how free tells a large block from a stray
 * pointer without touching memory that may be gone. A freed block leaves a
 * tombstone that is kept for the last TOMBS frees (or until the address is
 * mapped again), so a second free of it is named a double free. Each entry
 * also names its set, the index of its arena's large blocks, so that a
 * reset or destroy finds them without a walk over the table.
 *
 * A freed mapping is unmapped at once, unless it is at most half of
 * large_cache_mb: then it waits in a small cache (large_cache entries,
 * large_cache_mb bytes in all, each for at most decay_ms, which the
 * background purger enforces while the program is idle), so that a program
 * freeing and allocating big buffers in a loop does not pay mmap, munmap
 * and the page faults each time. Any cached mapping serves any large
 * request: mremap fits it to the size, and only what it lacks is faulted in
 * (an explicit arena's blocks skip the cache: they count against its limit
 * and go at its reset). Blocks of 2 MiB and more get transparent huge pages
 * (wants_thp). System calls are never made under the lock, but for the
 * move of a block that realloc cannot grow in place (remap). */
#include <string.h>

#include "large.h"
#include "os.h"

#define FREED ((size_t)1) /* low bit of entry.size: a tombstone */
#define TOMBS 4096
#define CACHE_MAX 64

struct entry {
    uintptr_t addr;    /* 0: empty slot */
    size_t size;       /* mapping length | FREED */
    size_t request;    /* the size asked for, for free_sized */
    ma_large_set *set; /* the set it is in; NULL once freed */
    size_t slot;       /* its index in set->blocks */
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
static size_t cache_bytes; /* written under the lock, read without it (purge.c) */

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

/* Makes room for one more block in the set's index. Lock held; dropped
 * around the mapping calls. */
static bool reserve_set_slot(ma_large_set *set)
{
    while (set->count + 1 > set->cap) {
        size_t old_cap = set->cap;
        size_t cap = old_cap ? old_cap * 2 : 512;
        ma_unlock(&ma_large_lock);
        uintptr_t *list = ma_os_map(cap * sizeof(uintptr_t), MA_OS_PAGE, 0);
        ma_lock(&ma_large_lock);
        if (list == NULL)
            return false;
        uintptr_t *old = NULL;
        if (set->cap == old_cap) {
            if (set->count)
                memcpy(list, set->blocks, set->count * sizeof(uintptr_t));
            old = set->blocks;
            set->blocks = list;
            set->cap = cap;
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

/* Puts the entry in its set's index. Lock held, room reserved. */
static void set_add(struct entry *e)
{
    e->slot = e->set->count;
    e->set->blocks[e->set->count++] = e->addr;
}

/* Takes the block out of its set's index. Lock held. */
static void set_remove(struct entry *e)
{
    ma_large_set *set = e->set;
    uintptr_t last = set->blocks[--set->count];
    if (e->slot != set->count) {
        set->blocks[e->slot] = last;
        find(last)->slot = e->slot;
    }
    e->set = NULL;
}

/* Records a live block, replacing a tombstone of the same address. */
static bool record(uintptr_t addr, size_t size, size_t request, ma_large_set *set)
{
    ma_lock(&ma_large_lock);
    if (!reserve_set_slot(set)) {
        ma_unlock(&ma_large_lock);
        return false;
    }
    struct entry *e = find(addr);
    if (e == NULL) {
        if (!reserve_slot()) {
            ma_unlock(&ma_large_lock);
            return false;
        }
        struct entry n = {addr, size, request, set, 0};
        e = insert_new(table, table_cap, &n);
        table_used++;
    } else {
        *e = (struct entry){addr, size, request, set, 0};
    }
    set_add(e);
    live_count++;
    live_bytes += size;
    mapped_bytes += size;
    ma_unlock(&ma_large_lock);
    return true;
}

/* Marks the block freed and keeps its tombstone for a while. Lock held. */
static void bury(struct entry *e)
{
    set_remove(e);
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

/* What serving size from a cached mapping of c bytes costs, in bytes: what
 * must be faulted in when it is smaller, and (counted lightly: dropping
 * them is one call) the resident bytes trimmed off when it is larger. */
static size_t reuse_cost(size_t c, size_t size)
{
    return c >= size ? (c - size) / 8 : size - c;
}

/* Takes the cached mapping cheapest to fit to size (reuse_cost): its pages
 * are resident already, which saves the faults of a fresh mapping. The
 * caller fits it with mremap. Lock held. */
static uintptr_t cache_take(size_t size, size_t *got)
{
    int best = -1;
    size_t best_gap = SIZE_MAX;
    for (unsigned i = 0; i < cache_count; i++) {
        size_t gap = reuse_cost(cache[i].size, size);
        if (gap < best_gap) {
            best = (int)i;
            best_gap = gap;
        }
    }
    if (best < 0)
        return 0;
    uintptr_t addr = cache[best].addr;
    *got = cache[best].size;
    ma_count_set(&cache_bytes, cache_bytes - cache[best].size);
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
            ma_count_set(&cache_bytes, cache_bytes - cache[i].size);
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

size_t ma_large_map_size(size_t size)
{
    if (size > (size_t)PTRDIFF_MAX - MA_HUGE_PAGE)
        return 0;
    /* The secure profile puts a guard page after the block, and keeps
     * guarded mappings out of the cache. */
    return (size ? page_round(size) : MA_OS_PAGE) + (ma_secure ? MA_GUARD_SIZE : 0);
}

/* Blocks of 2 MiB and more get transparent huge pages (large_thp): a
 * block written whole, as big buffers are, then takes one fault per 2 MiB
 * instead of 512, which more than halves what a fresh block costs to fill.
 * A block sparsely written is the price: each 2 MiB touched is resident. */
static bool wants_thp(size_t map_size)
{
    return map_size >= MA_HUGE_PAGE && ma_option(MA_OPT_LARGE_THP);
}

/* A new block that gets huge pages in the default arena has its mapping
 * rounded up to 2 MiB when that adds at most half a huge page. A huge page
 * needs a whole aligned 2 MiB of the mapping, so the last partial 2 MiB of
 * an unrounded block takes 4 KiB faults, up to 511 of them: where that part
 * is at least 1 MiB, one huge fault is cheaper (large-churn: 230,000 faults
 * unrounded). The half-page bound is for the common table of 2^k bytes and
 * a header, whose last small page would otherwise become a huge one when
 * written (xz's peak RSS +3.8 MiB, python-containers' +3.1, rounding every
 * block). A block that realloc grows is not rounded: it is written as it
 * grows, and a huge last page would be resident ahead of the writes
 * (realloc-heavy's peak RSS 20% higher rounded). An explicit arena's blocks
 * count against its limit and are not rounded either. */
size_t ma_large_set_map_size(const ma_large_set *set, size_t size)
{
    size_t map = ma_large_map_size(size);
    size_t rounded = (map + MA_HUGE_PAGE - 1) & ~(MA_HUGE_PAGE - 1);
    if (set->cache && !ma_secure && wants_thp(map) && rounded - map <= MA_HUGE_PAGE / 2)
        return rounded;
    return map;
}

/* Where a block that moves may land: on a 2 MiB boundary when it is to
 * have huge pages, so that they stay huge and what it grows by takes huge
 * faults. */
static size_t move_align(size_t map_size)
{
    return wants_thp(map_size) ? MA_HUGE_PAGE : MA_OS_PAGE;
}

/* A block that reaches 2 MiB by growing gets the advice then. */
static void thp_on_growth(void *p, size_t old, size_t now)
{
    if (old < MA_HUGE_PAGE && wants_thp(now))
        ma_os_advise_huge(p, now);
}

void *ma_large_malloc(size_t size, size_t map_size, size_t alignment, bool zero, ma_large_set *set,
                      unsigned map_flags)
{
    struct cached expired[CACHE_MAX];
    unsigned n_expired = 0;
    uintptr_t addr = 0;
    size_t got = map_size;
    if (alignment <= MA_OS_PAGE && ma_option(MA_OPT_LARGE_CACHE) > 0 && set->cache && !ma_secure) {
        ma_lock(&ma_large_lock);
        n_expired = cache_expire(expired, false);
        addr = cache_take(map_size, &got);
        ma_unlock(&ma_large_lock);
        unmap_all(expired, n_expired);
    }
    size_t reused = got; /* the bytes of a cached mapping that are resident */
    /* A mapping at most a quarter too big is kept whole: trimming it would
     * give back resident pages that the block's next growth, or the next
     * block of this size, would fault in again. */
    if (addr != 0 && got > map_size && got - map_size <= map_size / 4)
        map_size = got;
    if (addr != 0 && got != map_size) {
        /* Trim the tail in place, or grow (moving if it must): either way
         * the part that is resident stays so. */
        void *q = ma_os_remap((void *)addr, got, map_size, move_align(map_size));
        if (q == NULL) {
            ma_os_unmap((void *)addr, got);
            addr = 0;
        } else {
            thp_on_growth(q, got, map_size);
            addr = (uintptr_t)q;
            got = map_size;
        }
    }
    bool fresh = addr == 0;
    if (fresh) {
        got = map_size;
        if (wants_thp(map_size)) {
            map_flags |= MA_MAP_THP;
            if (alignment < MA_HUGE_PAGE)
                alignment = MA_HUGE_PAGE; /* every whole 2 MiB of it can be a huge page */
        }
        void *p = ma_os_map(map_size, alignment < MA_OS_PAGE ? MA_OS_PAGE : alignment, map_flags);
        if (p == NULL)
            return NULL;
        addr = (uintptr_t)p;
        if (ma_secure && !ma_os_guard((uint8_t *)p + map_size - MA_GUARD_SIZE, MA_GUARD_SIZE)) {
            ma_os_unmap(p, map_size); /* no block without its guard */
            return NULL;
        }
    }
    if (!record(addr, got, size, set)) {
        ma_os_unmap((void *)addr, got);
        return NULL;
    }
    if (zero && !fresh) /* what a cached mapping grew by is fresh, zero already */
        memset((void *)addr, 0, reused < size ? reused : size);
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

ma_large_set *ma_large_lookup(const void *p, size_t *map_size)
{
    ma_lock(&ma_large_lock);
    struct entry *e = live_entry(p);
    ma_large_set *set = e->set;
    *map_size = e->size;
    ma_unlock(&ma_large_lock);
    return set;
}

size_t ma_large_free(void *p, size_t expect_size, size_t expect_align, ma_large_set **set)
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
    *set = e->set;
    bury(e);
    size_t cache_limit = (size_t)ma_option(MA_OPT_LARGE_CACHE_MB) << 20;
    bool keep = (*set)->cache && !ma_secure && size <= cache_limit / 2;
    if (keep) {
        n = cache_expire(expired, false);
        keep = cache_count < (unsigned)ma_option(MA_OPT_LARGE_CACHE);
    }
    if (keep) {
        /* Make room by bytes, oldest first. */
        while (cache_bytes + size > cache_limit && cache_count > 0) {
            unsigned oldest = 0;
            for (unsigned i = 1; i < cache_count; i++)
                if (cache[i].since_ms < cache[oldest].since_ms)
                    oldest = i;
            expired[n++] = cache[oldest];
            ma_count_set(&cache_bytes, cache_bytes - cache[oldest].size);
            mapped_bytes -= cache[oldest].size;
            cache[oldest] = cache[--cache_count];
            if (n == CACHE_MAX + 1)
                break;
        }
        if (cache_bytes + size <= cache_limit) {
            cache[cache_count++] = (struct cached){(uintptr_t)p, size, ma_clock_ms()};
            ma_count_set(&cache_bytes, cache_bytes + size);
            ma_unlock(&ma_large_lock);
            unmap_all(expired, n);
            return size;
        }
    }
    mapped_bytes -= size;
    ma_unlock(&ma_large_lock);
    unmap_all(expired, n);
    ma_os_unmap(p, size);
    return size;
}

/* The table follows a block whose size changed, and moved when p != q.
 * Lock held. Erasing before inserting keeps the table from growing. */
static void rekey(uintptr_t p, uintptr_t q, size_t map_size, size_t request)
{
    struct entry *e = find(p);
    live_bytes += map_size - e->size;
    mapped_bytes += map_size - e->size;
    if (p == q) {
        e->size = map_size;
        e->request = request;
        return;
    }
    ma_large_set *set = e->set;
    set_remove(e);
    erase(e);
    struct entry moved = {q, map_size, request, set, 0};
    struct entry *n = find(q);
    if (n)
        *n = moved; /* a tombstone of q */
    else {
        n = insert_new(table, table_cap, &moved);
        table_used++;
    }
    set_add(n);
}

size_t ma_large_resized(const ma_large_set *set, size_t old_map, size_t size)
{
    size_t guard = ma_secure ? MA_GUARD_SIZE : 0; /* the guard page moves to the new end */
    size_t map_size = page_round(size) + guard;
    if (map_size <= old_map && map_size >= old_map / 2)
        return old_map; /* fits: shrinking a little is not worth a call */
    /* A block that grows usually grows again: a quarter more than asked
     * saves a system call on each of the next small steps. */
    if (set->cache && map_size > old_map && map_size < old_map + old_map / 4)
        map_size = page_round(old_map + old_map / 4) + guard;
    return map_size;
}

/* Remaps p from old to new_map bytes: in place when the kernel can, else
 * by moving its page tables (no bytes are copied; for a block of huge
 * pages, onto an aligned reservation: a mapping and the move), the table
 * following it. A move needs the lock: the old address is free for any
 * thread's mmap the moment mremap returns, and the table must not name it
 * by then. */
static void *remap(void *p, size_t old, size_t new_map, size_t size)
{
    void *q = ma_os_remap(p, old, new_map, 0);
    ma_lock(&ma_large_lock);
    if (q == NULL)
        q = ma_os_move(p, old, new_map, move_align(new_map));
    if (q != NULL)
        rekey((uintptr_t)p, (uintptr_t)q, new_map, size);
    ma_unlock(&ma_large_lock);
    if (q != NULL)
        thp_on_growth(q, old, new_map);
    return q;
}

/* In the secure profile the guard page (the mapping's last page) moves to
 * the new end. Shrinking guards the new end before dropping the tail, so a
 * refusal leaves the block as it was. Growing opens the old guard, grows,
 * and guards the new end; these leave the number of mappings as it was, so
 * the kernel refuses the last one (vm.max_map_count) only if another thread
 * mapped meanwhile. Then a block grown in place goes back to its old size
 * and guard and the call fails; one that moved cannot go back, and rather
 * than live on unguarded the process stops with the reason. */
void *ma_large_realloc(void *p, size_t size, size_t new_map)
{
    ma_lock(&ma_large_lock);
    struct entry *e = live_entry(p);
    size_t old = e->size;
    if (new_map == old) {
        e->request = size;
        ma_unlock(&ma_large_lock);
        return p;
    }
    ma_unlock(&ma_large_lock);
    if (!ma_secure)
        return remap(p, old, new_map, size);
    size_t guard = MA_GUARD_SIZE;
    if (new_map < old) {
        if (!ma_os_guard((uint8_t *)p + new_map - guard, guard))
            return NULL;
        void *q = remap(p, old, new_map, size);
        if (q != NULL)
            return q;
        /* Refused: the block must be as it was, with no guard inside it. */
        if (ma_os_unguard((uint8_t *)p + new_map - guard, guard))
            return NULL;
        ma_fatal("could not open the guard inside large block", p);
    }
    if (!ma_os_unguard((uint8_t *)p + old - guard, guard))
        return NULL;
    void *q = remap(p, old, new_map, size);
    if (q != NULL && ma_os_guard((uint8_t *)q + new_map - guard, guard))
        return q;
    if (q == NULL || (q == p && remap(p, new_map, old, size) == p)) {
        if (ma_os_guard((uint8_t *)p + old - guard, guard))
            return NULL;
    }
    ma_fatal("could not guard the end of large block", q ? q : p);
}

/* Reset or destroy: every large block of the set goes, in time
 * proportional to their number (they are mappings), not to the table. */
size_t ma_large_unmap_set(ma_large_set *set)
{
    size_t total = 0;
    for (;;) {
        uintptr_t batch[64];
        size_t sizes[64];
        unsigned n = 0;
        ma_lock(&ma_large_lock);
        while (n < 64 && set->count > 0) {
            struct entry *e = find(set->blocks[set->count - 1]);
            batch[n] = e->addr;
            sizes[n] = e->size;
            n++;
            bury(e); /* a later free of it is named a double free */
            mapped_bytes -= sizes[n - 1];
        }
        ma_unlock(&ma_large_lock);
        if (n == 0)
            return total;
        for (unsigned i = 0; i < n; i++) {
            total += sizes[i];
            ma_os_unmap((void *)batch[i], sizes[i]);
        }
    }
}

void ma_large_set_stats(ma_large_set *set, size_t *live, size_t *blocks)
{
    ma_lock(&ma_large_lock);
    *blocks = set->count;
    *live = 0;
    for (size_t i = 0; i < set->count; i++)
        *live += find(set->blocks[i])->size;
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

size_t ma_large_trim(bool all)
{
    struct cached expired[CACHE_MAX];
    ma_lock(&ma_large_lock);
    unsigned n = cache_expire(expired, all);
    ma_unlock(&ma_large_lock);
    size_t bytes = 0;
    for (unsigned i = 0; i < n; i++)
        bytes += expired[i].size;
    unmap_all(expired, n);
    return bytes;
}

size_t ma_large_cached_bytes(void)
{
    return ma_count_get(&cache_bytes);
}

void ma_large_stats(size_t *mapped, size_t *blocks, size_t *live)
{
    ma_lock(&ma_large_lock);
    *mapped = mapped_bytes;
    *blocks = live_count;
    *live = live_bytes;
    ma_unlock(&ma_large_lock);
}
