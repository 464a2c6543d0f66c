/* probe: where a process's allocator memory is at its peak resident size.
 *
 * An LD_PRELOAD library in two builds (probe.py builds them):
 *
 *  - mapalloc: linked with mapalloc's own objects and preload glue, reading
 *    its internals (src/internal.h: regions, pages, slices). The calls of
 *    the glue into mapalloc_malloc & co. and mapalloc's mmap, munmap and
 *    mremap go through the __wrap_ functions below (ld --wrap), so the probe
 *    sees every block and every mapping.
 *  - glibc (-DPROBE_GLIBC): malloc & co. defined here over glibc's
 *    __libc_malloc & co.; mallinfo2 and the brk heap describe the rest.
 *
 * Both keep a table of live blocks (address -> requested and usable size)
 * in memory of their own, and a thread that reads the process's resident
 * size every PROBE_INTERVAL_MS (default 10) ms and, each time it is the
 * highest so far, takes a snapshot: requested and usable bytes of the live
 * blocks, and where the allocator's resident pages are (mincore), by kind.
 * At exit the process appends one JSON line to the file PROBE_OUT: its pid,
 * command name, VmHWM and the snapshot taken at the highest sample. With
 * PROBE_TRACE=PATH it also writes a snapshot's figures at every sample to
 * PATH.<pid> (columns: see trace_line).
 *
 * The probe's own memory (its table) is resident too and is reported, so
 * that it can be subtracted. The sampler thread never allocates. This is a
 * measuring tool: it costs a lock per allocation and it reads mapalloc's
 * internal structures, so it is built against the same source tree.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef PROBE_GLIBC
#include "heap.h"
#include "mapalloc.h"
#endif

#define PAGE 4096ul
#define LARGE_MAX 65536 /* live blocks with a mapping of their own */

/* ---- memory of the probe's own, straight from the kernel ---- */

static void *raw_map(size_t n)
{
    void *p = (void *)syscall(SYS_mmap, NULL, n, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return (long)p < 0 && (long)p > -4096 ? NULL : p;
}

static void raw_unmap(void *p, size_t n)
{
    syscall(SYS_munmap, p, n);
}

/* Resident bytes of [addr, addr + len), for any addresses (unmapped parts
 * count as not resident). */
static size_t resident(uintptr_t addr, size_t len)
{
    static unsigned char vec[4096];
    uintptr_t start = addr & ~(PAGE - 1), end = (addr + len + PAGE - 1) & ~(PAGE - 1);
    size_t total = 0;
    for (uintptr_t a = start; a < end;) {
        size_t pages = (end - a) / PAGE;
        if (pages > sizeof vec)
            pages = sizeof vec;
        if (syscall(SYS_mincore, a, pages * PAGE, vec) == 0) {
            for (size_t i = 0; i < pages; i++)
                total += vec[i] & 1;
        } else { /* a hole: page by page */
            for (size_t i = 0; i < pages; i++)
                if (syscall(SYS_mincore, a + i * PAGE, PAGE, vec) == 0)
                    total += vec[0] & 1;
        }
        a += pages * PAGE;
    }
    return total * PAGE;
}

static atomic_flag table_lock = ATOMIC_FLAG_INIT;

static void lock(atomic_flag *l)
{
    while (atomic_flag_test_and_set_explicit(l, memory_order_acquire))
        ;
}

static void unlock(atomic_flag *l)
{
    atomic_flag_clear_explicit(l, memory_order_release);
}

/* ---- the table of live blocks ---- */

struct slot {
    uintptr_t addr; /* 0: empty */
    size_t req, usable;
};

static struct slot *table;
static size_t table_cap, table_used;
static struct {
    size_t n, req, usable;
} small, large; /* live blocks: small ones in regions or the brk heap, large with a mapping each */
static uintptr_t large_addr[LARGE_MAX];
static size_t large_size[LARGE_MAX], large_count;
static size_t table_failures;

static size_t slot_of(uintptr_t a, size_t cap)
{
    return (size_t)(((a >> 4) * 0x9e3779b97f4a7c15ull) >> 20) & (cap - 1);
}

static bool table_grow(void)
{
    size_t cap = table_cap ? table_cap * 2 : (size_t)1 << 16;
    struct slot *t = raw_map(cap * sizeof *t);
    if (t == NULL)
        return false;
    for (size_t i = 0; i < table_cap; i++) {
        if (table[i].addr == 0)
            continue;
        size_t j = slot_of(table[i].addr, cap);
        while (t[j].addr)
            j = (j + 1) & (cap - 1);
        t[j] = table[i];
    }
    if (table)
        raw_unmap(table, table_cap * sizeof *table);
    table = t;
    table_cap = cap;
    return true;
}

static bool is_large(uintptr_t a, size_t usable);
static void class_count(size_t usable, size_t req, int sign);

static void track_alloc(void *p, size_t req, size_t usable)
{
    if (p == NULL)
        return;
    uintptr_t a = (uintptr_t)p;
    lock(&table_lock);
    if ((table_used + 1) * 2 > table_cap && !table_grow()) {
        table_failures++;
        unlock(&table_lock);
        return;
    }
    size_t i = slot_of(a, table_cap);
    while (table[i].addr && table[i].addr != a)
        i = (i + 1) & (table_cap - 1);
    if (table[i].addr == 0)
        table_used++;
    table[i] = (struct slot){a, req, usable};
    if (is_large(a, usable)) {
        large.n++, large.req += req, large.usable += usable;
        if (large_count < LARGE_MAX) {
            large_addr[large_count] = a;
            large_size[large_count++] = usable;
        }
    } else {
        small.n++, small.req += req, small.usable += usable;
        class_count(usable, req, 1);
    }
    unlock(&table_lock);
}

static void track_free(void *p)
{
    if (p == NULL)
        return;
    uintptr_t a = (uintptr_t)p;
    lock(&table_lock);
    size_t i = table_cap ? slot_of(a, table_cap) : 0;
    while (table_cap && table[i].addr && table[i].addr != a)
        i = (i + 1) & (table_cap - 1);
    if (table_cap == 0 || table[i].addr == 0) {
        unlock(&table_lock); /* allocated before the probe, or not tracked */
        return;
    }
    struct slot s = table[i];
    /* Linear probing: shift the rest of the cluster back. */
    for (size_t j = (i + 1) & (table_cap - 1); table[j].addr; j = (j + 1) & (table_cap - 1)) {
        size_t home = slot_of(table[j].addr, table_cap);
        if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
            table[i] = table[j];
            i = j;
        }
    }
    table[i].addr = 0;
    table_used--;
    bool was_large = false;
    for (size_t k = 0; k < large_count; k++)
        if (large_addr[k] == a) {
            large_addr[k] = large_addr[--large_count];
            large_size[k] = large_size[large_count];
            was_large = true;
            break;
        }
    if (was_large || is_large(a, s.usable)) {
        large.n--, large.req -= s.req, large.usable -= s.usable;
    } else {
        small.n--, small.req -= s.req, small.usable -= s.usable;
        class_count(s.usable, s.req, -1);
    }
    unlock(&table_lock);
}

/* ---- JSON out, without stdio's buffers ---- */

struct out {
    char buf[65536];
    size_t n;
};

static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(o->buf + o->n, sizeof o->buf - o->n, fmt, ap);
    va_end(ap);
    if (k > 0)
        o->n = o->n + (size_t)k < sizeof o->buf ? o->n + (size_t)k : sizeof o->buf - 1;
}

/* /proc/self/NAME into buf, NUL-terminated; its length (0 if unreadable).
 * open and read: no allocation, safe on the sampler thread. */
static size_t read_self(const char *name, char *buf, size_t cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/%s", name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, cap - 1);
    if (fd >= 0)
        close(fd);
    n = n < 0 ? 0 : n;
    buf[n] = 0;
    return (size_t)n;
}

/* Field index of /proc/self/statm (1: resident, 2: file-backed and
 * shared), in bytes. */
static size_t statm_field(int index)
{
    char buf[256];
    read_self("statm", buf, sizeof buf);
    char *s = buf;
    for (int i = 0; i < index && s; i++) {
        s = strchr(s, ' ');
        if (s)
            s++;
    }
    return s ? strtoull(s, NULL, 10) * PAGE : 0;
}

/* ---- the snapshot, one per allocator ---- */

struct snapshot {
    size_t rss, file_rss; /* the process: resident, of which file-backed and shared */
    size_t probe;         /* resident bytes of the probe's table */
    size_t small_n, small_req, small_usable, large_n, large_req, large_usable, large_resident;
    size_t ms; /* since start */
#ifdef PROBE_GLIBC
    size_t heap_resident, heap_size;  /* the brk heap */
    size_t arena, hblkhd, uordblks, fordblks, keepcost;
#else
    size_t regions, heaps, header_resident;
    size_t pages, page_bytes, page_resident, page_live, page_live_unresident;
    size_t empty_pages, empty_resident, retained_pages;
    size_t free_slices, free_slice_resident;
    size_t mappings, mapped, mapped_resident; /* every mapping mapalloc made */
    size_t cache_mappings, cache_mapped, cache_resident, meta_resident;
    size_t large_cache_mapped; /* mapalloc's own count: large mapped - live */
    struct {
        size_t pages, resident, live, req, usable;
    } cls[MA_CLASS_COUNT];
    const void *heap_ids[64];
    size_t heap_resident[64], heap_pages[64];
#endif
};

static struct snapshot peak_snap, work_snap;
static atomic_flag snap_lock = ATOMIC_FLAG_INIT;
static struct timespec t_start;
static size_t peak_rss, samples;

static void snapshot_common(struct snapshot *s)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    s->ms = (size_t)((now.tv_sec - t_start.tv_sec) * 1000 + (now.tv_nsec - t_start.tv_nsec) / 1000000);
    lock(&table_lock);
    s->small_n = small.n, s->small_req = small.req, s->small_usable = small.usable;
    s->large_n = large.n, s->large_req = large.req, s->large_usable = large.usable;
    s->large_resident = 0;
    for (size_t k = 0; k < large_count; k++)
        s->large_resident += resident(large_addr[k], large_size[k]);
    s->probe = table ? resident((uintptr_t)table, table_cap * sizeof *table) : 0;
    unlock(&table_lock);
}

static void snapshot_print_common(struct out *o, const struct snapshot *s)
{
    put(o, "\"ms\":%zu,\"rss\":%zu,\"file_rss\":%zu,\"probe\":%zu,\"small_n\":%zu,\"small_req\":%zu,"
        "\"small_usable\":%zu,\"large_n\":%zu,\"large_req\":%zu,\"large_usable\":%zu,\"large_resident\":%zu",
        s->ms, s->rss, s->file_rss, s->probe, s->small_n, s->small_req, s->small_usable, s->large_n,
        s->large_req, s->large_usable, s->large_resident);
}

#ifdef PROBE_GLIBC
/* ================================================================ glibc */

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

static uintptr_t brk_start;

/* A chunk of its own mapping: glibc's IS_MMAPPED bit in the size word. */
static bool is_large(uintptr_t a, size_t usable)
{
    (void)usable;
    return (((const size_t *)a)[-1] & 2) != 0;
}

static void class_count(size_t usable, size_t req, int sign)
{
    (void)usable, (void)req, (void)sign;
}

static void *track(void *p, size_t req)
{
    if (p)
        track_alloc(p, req, malloc_usable_size(p) + sizeof(size_t)); /* the chunk: usable + header */
    return p;
}

void *malloc(size_t n) { return track(__libc_malloc(n), n); }
void *calloc(size_t c, size_t n) { return track(__libc_calloc(c, n), c * n); }
void free(void *p) { track_free(p); __libc_free(p); }
void *memalign(size_t al, size_t n) { return track(__libc_memalign(al, n), n); }
void *aligned_alloc(size_t al, size_t n) { return memalign(al, n); }
void *valloc(size_t n) { return memalign(PAGE, n); }
void *pvalloc(size_t n) { return memalign(PAGE, (n + PAGE - 1) & ~(PAGE - 1)); }

void *realloc(void *p, size_t n)
{
    track_free(p);
    void *q = __libc_realloc(p, n);
    if (q == NULL && p != NULL && n != 0) { /* failed: p is still live */
        track(p, malloc_usable_size(p));
        return NULL;
    }
    return track(q, n);
}

void *reallocarray(void *p, size_t c, size_t n)
{
    size_t total;
    if (__builtin_mul_overflow(c, n, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(p, total);
}

int posix_memalign(void **out, size_t al, size_t n)
{
    if (al < sizeof(void *) || (al & (al - 1)))
        return EINVAL;
    void *p = memalign(al, n);
    if (p == NULL)
        return ENOMEM;
    *out = p;
    return 0;
}

static void take_snapshot(struct snapshot *s)
{
    snapshot_common(s);
    uintptr_t end = (uintptr_t)sbrk(0);
    s->heap_size = end > brk_start ? end - brk_start : 0;
    s->heap_resident = resident(brk_start, s->heap_size);
    struct mallinfo2 mi = mallinfo2();
    s->arena = mi.arena, s->hblkhd = mi.hblkhd, s->uordblks = mi.uordblks;
    s->fordblks = mi.fordblks, s->keepcost = mi.keepcost;
}

static void snapshot_print(struct out *o, const struct snapshot *s)
{
    put(o, "{\"allocator\":\"glibc\",");
    snapshot_print_common(o, s);
    put(o, ",\"heap_size\":%zu,\"heap_resident\":%zu,\"arena\":%zu,\"hblkhd\":%zu,\"uordblks\":%zu,"
        "\"fordblks\":%zu,\"keepcost\":%zu}", s->heap_size, s->heap_resident, s->arena, s->hblkhd,
        s->uordblks, s->fordblks, s->keepcost);
}

static void allocator_start(void)
{
    brk_start = (uintptr_t)sbrk(0);
}

#else
/* ================================================================ mapalloc */

static bool is_large(uintptr_t a, size_t usable)
{
    return usable > MA_LARGE_THRESHOLD && ma_block_page(a) == NULL;
}

/* Requested and usable bytes of the live blocks, per class. */
static size_t cls_req[MA_CLASS_COUNT], cls_usable[MA_CLASS_COUNT];

static void class_count(size_t usable, size_t req, int sign)
{
    unsigned c = ma_size_class(usable);
    cls_req[c] += sign > 0 ? req : -req;
    cls_usable[c] += sign > 0 ? usable : -usable;
}

/* The mappings mapalloc made, from its calls to mmap, munmap, mremap. */
#define MAPS_MAX 65536
static uintptr_t map_start[MAPS_MAX];
static size_t map_len[MAPS_MAX], map_count;
static atomic_flag maps_lock = ATOMIC_FLAG_INIT;

static void maps_remove(uintptr_t a, size_t len)
{
    uintptr_t e = a + ((len + PAGE - 1) & ~(PAGE - 1));
    for (size_t i = 0; i < map_count;) {
        uintptr_t s = map_start[i], se = s + map_len[i];
        if (se <= a || s >= e) {
            i++;
            continue;
        }
        if (s < a && se > e && map_count < MAPS_MAX) { /* a hole in the middle: split */
            map_start[map_count] = e;
            map_len[map_count++] = se - e;
        }
        if (s < a) {
            map_len[i] = a - s;
            i++;
        } else if (se > e) {
            map_start[i] = e;
            map_len[i] = se - e;
            i++;
        } else {
            map_start[i] = map_start[--map_count];
            map_len[i] = map_len[map_count];
        }
    }
}

static void maps_add(void *p, size_t len)
{
    if (p == MAP_FAILED || p == NULL)
        return;
    lock(&maps_lock);
    maps_remove((uintptr_t)p, len); /* MAP_FIXED over an old one */
    if (map_count < MAPS_MAX) {
        map_start[map_count] = (uintptr_t)p;
        map_len[map_count++] = (len + PAGE - 1) & ~(PAGE - 1);
    }
    unlock(&maps_lock);
}

/* mmap64: the name mmap has with -D_FILE_OFFSET_BITS=64, as meson builds. */
void *__real_mmap64(void *, size_t, int, int, int, off_t);
int __real_munmap(void *, size_t);
void *__real_mremap(void *, size_t, size_t, int, ...);

void *__wrap_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    void *p = __real_mmap64(addr, len, prot, flags, fd, off);
    maps_add(p, len);
    return p;
}

int __wrap_munmap(void *addr, size_t len)
{
    int r = __real_munmap(addr, len);
    if (r == 0) {
        lock(&maps_lock);
        maps_remove((uintptr_t)addr, len);
        unlock(&maps_lock);
    }
    return r;
}

void *__wrap_mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
    void *p = __real_mremap(old, old_len, new_len, flags); /* mapalloc never passes MREMAP_FIXED */
    if (p != MAP_FAILED) {
        lock(&maps_lock);
        maps_remove((uintptr_t)old, old_len);
        unlock(&maps_lock);
        maps_add(p, new_len);
    }
    return p;
}

/* The glue's calls into the allocator, tracked. */
void *__real_mapalloc_malloc(size_t);
void *__real_mapalloc_calloc(size_t, size_t);
void *__real_mapalloc_realloc(void *, size_t);
void *__real_mapalloc_reallocarray(void *, size_t, size_t);
void __real_mapalloc_free(void *);
void __real_mapalloc_free_sized(void *, size_t);
void __real_mapalloc_free_aligned_sized(void *, size_t, size_t);
void *__real_mapalloc_aligned_alloc(size_t, size_t);
int __real_mapalloc_posix_memalign(void **, size_t, size_t);
void *__real_mapalloc_memalign(size_t, size_t);
void *__real_mapalloc_valloc(size_t);
void *__real_mapalloc_pvalloc(size_t);

static void *track(void *p, size_t req)
{
    if (p)
        track_alloc(p, req, mapalloc_usable_size(p));
    return p;
}

void *__wrap_mapalloc_malloc(size_t n) { return track(__real_mapalloc_malloc(n), n); }
void *__wrap_mapalloc_calloc(size_t c, size_t n) { return track(__real_mapalloc_calloc(c, n), c * n); }
void __wrap_mapalloc_free(void *p) { track_free(p); __real_mapalloc_free(p); }
void __wrap_mapalloc_free_sized(void *p, size_t n) { track_free(p); __real_mapalloc_free_sized(p, n); }
void __wrap_mapalloc_free_aligned_sized(void *p, size_t al, size_t n)
{
    track_free(p);
    __real_mapalloc_free_aligned_sized(p, al, n);
}
void *__wrap_mapalloc_aligned_alloc(size_t al, size_t n) { return track(__real_mapalloc_aligned_alloc(al, n), n); }
void *__wrap_mapalloc_memalign(size_t al, size_t n) { return track(__real_mapalloc_memalign(al, n), n); }
void *__wrap_mapalloc_valloc(size_t n) { return track(__real_mapalloc_valloc(n), n); }
void *__wrap_mapalloc_pvalloc(size_t n) { return track(__real_mapalloc_pvalloc(n), n); }

int __wrap_mapalloc_posix_memalign(void **out, size_t al, size_t n)
{
    int r = __real_mapalloc_posix_memalign(out, al, n);
    if (r == 0)
        track(*out, n);
    return r;
}

static void *realloc_tracked(void *p, void *q, size_t n)
{
    if (q == NULL && p != NULL && n != 0) { /* failed: p is still live */
        track(p, mapalloc_usable_size(p));
        return NULL;
    }
    return track(q, n);
}

void *__wrap_mapalloc_realloc(void *p, size_t n)
{
    track_free(p);
    return realloc_tracked(p, __real_mapalloc_realloc(p, n), n);
}

void *__wrap_mapalloc_reallocarray(void *p, size_t c, size_t n)
{
    track_free(p);
    return realloc_tracked(p, __real_mapalloc_reallocarray(p, c, n), c * n);
}

/* The regions seen by the last walk (the sampler's alone). */
#define MAX_REGIONS 8192
static uintptr_t region_base[MAX_REGIONS];

/* The resident bytes of one page, by class and by its heap. */
static void walk_page(ma_page *page, void *arg)
{
    struct snapshot *s = arg;
    uintptr_t base = (uintptr_t)ma_page_start(page);
    size_t span = (size_t)page->slices << MA_SLICE_SHIFT;
    size_t res = resident(base, span);
    size_t live = (size_t)ma_page_used(page) * page->block_size;
    unsigned c = page->class_idx;
    s->cls[c].pages++;
    s->cls[c].resident += res;
    s->cls[c].live += live;
    const void *heap = atomic_load_explicit(&page->heap, memory_order_relaxed);
    unsigned k = 0;
    while (k < s->heaps && s->heap_ids[k] != heap)
        k++;
    if (k == s->heaps && k < 64) {
        s->heap_ids[k] = heap;
        s->heaps++;
    }
    if (k < 64) {
        s->heap_resident[k] += res;
        s->heap_pages[k]++;
    }
    if (live == 0) {
        s->empty_pages++;
        s->empty_resident += res;
        s->retained_pages += page->retained;
        return;
    }
    s->pages++;
    s->page_bytes += span;
    s->page_resident += res;
    s->page_live += live;
    if (live > res)
        s->page_live_unresident += live - res;
}

/* Each region's header and its slices that belong to no page, then its
 * pages. Under the arena's lock, as its slow paths change them. */
static void walk_arena(ma_arena *a, void *arg)
{
    struct snapshot *s = arg;
    ma_lock(&a->lock);
    for (ma_region *r = a->regions; r != NULL; r = r->next) {
        uintptr_t base = (uintptr_t)r;
        if (s->regions < MAX_REGIONS)
            region_base[s->regions] = base;
        s->regions++;
        s->header_resident += resident(base, MA_SLICE_SIZE);
        for (unsigned i = 1; i < MA_REGION_SLICES; i++) {
            if (((r->used_slices >> i) & 1) != 0)
                continue;
            s->free_slices++;
            s->free_slice_resident += resident(base + ((size_t)i << MA_SLICE_SHIFT), MA_SLICE_SIZE);
        }
    }
    ma_unlock(&a->lock);
    ma_arena_foreach_page(a, walk_page, s);
}

static bool is_region(const struct snapshot *s, uintptr_t a)
{
    for (size_t k = 0; k < s->regions && k < MAX_REGIONS; k++)
        if (region_base[k] == a)
            return true;
    return false;
}

static bool is_live_large(uintptr_t a)
{
    for (size_t k = 0; k < large_count; k++)
        if (large_addr[k] == a)
            return true;
    return false;
}

static void take_snapshot(struct snapshot *s)
{
    memset(s, 0, sizeof *s);
    snapshot_common(s);
    ma_arenas_foreach(walk_arena, s);
    lock(&table_lock);
    for (unsigned c = 0; c < MA_CLASS_COUNT; c++) {
        s->cls[c].req = cls_req[c];
        s->cls[c].usable = cls_usable[c];
    }
    unlock(&table_lock);
    size_t mapped, blocks, live;
    ma_large_stats(&mapped, &blocks, &live);
    s->large_cache_mapped = mapped > live ? mapped - live : 0;
    /* Every mapping: a region, a live large block, the large cache (freed
     * large blocks kept mapped), or metadata (heap structures, the table of
     * large blocks). */
    lock(&maps_lock);
    lock(&table_lock);
    for (size_t i = 0; i < map_count; i++) {
        size_t res = resident(map_start[i], map_len[i]);
        s->mappings++;
        s->mapped += map_len[i];
        s->mapped_resident += res;
        if (map_len[i] == MA_REGION_SIZE && is_region(s, map_start[i]))
            continue;
        if (is_live_large(map_start[i]))
            continue;
        if (map_len[i] > MA_LARGE_THRESHOLD) {
            s->cache_mappings++;
            s->cache_mapped += map_len[i];
            s->cache_resident += res;
        } else {
            s->meta_resident += res;
        }
    }
    unlock(&table_lock);
    unlock(&maps_lock);
}

static void snapshot_print(struct out *o, const struct snapshot *s)
{
    put(o, "{\"allocator\":\"mapalloc\",");
    snapshot_print_common(o, s);
    put(o, ",\"regions\":%zu,\"heaps\":%zu,\"header_resident\":%zu,\"pages\":%zu,\"page_bytes\":%zu,"
        "\"page_resident\":%zu,\"page_live\":%zu,\"page_live_unresident\":%zu,\"empty_pages\":%zu,"
        "\"empty_resident\":%zu,\"retained_pages\":%zu,\"free_slices\":%zu,\"free_slice_resident\":%zu,"
        "\"mappings\":%zu,\"mapped\":%zu,\"mapped_resident\":%zu,\"cache_mappings\":%zu,\"cache_mapped\":%zu,"
        "\"cache_resident\":%zu,\"meta_resident\":%zu,\"large_cache_mapped\":%zu",
        s->regions, s->heaps, s->header_resident, s->pages, s->page_bytes, s->page_resident, s->page_live,
        s->page_live_unresident, s->empty_pages, s->empty_resident, s->retained_pages, s->free_slices,
        s->free_slice_resident, s->mappings, s->mapped, s->mapped_resident, s->cache_mappings,
        s->cache_mapped, s->cache_resident, s->meta_resident, s->large_cache_mapped);
    put(o, ",\"heap_list\":[");
    for (size_t k = 0; k < s->heaps && k < 64; k++)
        put(o, "%s[%zu,%zu]", k ? "," : "", s->heap_pages[k], s->heap_resident[k]);
    put(o, "],\"classes\":[");
    bool first = true;
    for (unsigned c = 0; c < MA_CLASS_COUNT; c++) {
        if (s->cls[c].pages == 0 && s->cls[c].usable == 0)
            continue;
        put(o, "%s[%zu,%zu,%zu,%zu,%zu,%zu]", first ? "" : ",", ma_class_size(c), s->cls[c].pages,
            s->cls[c].resident, s->cls[c].live, s->cls[c].req, s->cls[c].usable);
        first = false;
    }
    put(o, "]}");
}

static void allocator_start(void)
{
}
#endif

/* ---- the sampler ---- */

static int trace_fd = -1;

/* One line per sample, PROBE_TRACE: ms, RSS, then the snapshot's figures. */
static void trace_line(const struct snapshot *s)
{
    static struct out o;
    o.n = 0;
    put(&o, "%zu %zu %zu %zu %zu %zu %zu", s->ms, s->rss, s->file_rss, s->probe, s->small_req,
        s->small_usable, s->large_resident);
#ifdef PROBE_GLIBC
    put(&o, " %zu %zu\n", s->heap_resident, s->fordblks);
#else
    put(&o, " %zu %zu %zu %zu %zu\n", s->page_resident, s->empty_resident, s->free_slice_resident,
        s->cache_resident, s->mapped_resident);
#endif
    ssize_t w = write(trace_fd, o.buf, o.n);
    (void)w;
}

static void sample(void)
{
    size_t rss = statm_field(1);
    samples++;
    if (rss <= peak_rss && trace_fd < 0)
        return;
    lock(&snap_lock);
    take_snapshot(&work_snap);
    work_snap.rss = rss;
    work_snap.file_rss = statm_field(2);
    if (trace_fd >= 0)
        trace_line(&work_snap);
    if (rss > peak_rss) {
        peak_rss = rss;
        peak_snap = work_snap;
    }
    unlock(&snap_lock);
}

/* Read at start: the program may change its environment while the sampler
 * runs, and getenv is not safe against that. */
static long interval_ms = 10;
static char out_path[4096];
static char cmdline[128]; /* the first arguments, for the report */

static void *sampler(void *arg)
{
    (void)arg;
    struct timespec ts = {interval_ms / 1000, (interval_ms % 1000) * 1000000};
    for (;;) {
        nanosleep(&ts, NULL);
        sample();
    }
    return NULL;
}

static size_t status_kib(const char *key)
{
    static char buf[8192];
    read_self("status", buf, sizeof buf);
    char *s = strstr(buf, key);
    return s ? strtoull(s + strlen(key), NULL, 10) : 0;
}

static void report(void)
{
    sample();
    static struct out o;
    o.n = 0;
    char comm[64];
    read_self("comm", comm, sizeof comm);
    comm[strcspn(comm, "\n")] = 0;
    lock(&snap_lock);
    put(&o, "{\"pid\":%d,\"comm\":\"%s\",\"cmd\":\"%s\",\"hwm\":%zu,\"samples\":%zu,\"table_failures\":%zu,"
        "\"peak\":", (int)getpid(), comm, cmdline, status_kib("VmHWM:") * 1024, samples, table_failures);
    snapshot_print(&o, &peak_snap);
    put(&o, "}\n");
    unlock(&snap_lock);
    int fd = open(out_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
        ssize_t w = write(fd, o.buf, o.n);
        (void)w;
        close(fd);
    }
}

static void start_sampler(void)
{
    clock_gettime(CLOCK_MONOTONIC, &t_start);
    peak_rss = 0;
    samples = 0;
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 << 10);
    /* No signal of the program's lands on the sampler. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_create(&t, &attr, sampler, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
}

/* A child that does not exec has its own peak: start over. */
static void after_fork_child(void)
{
    atomic_flag_clear(&snap_lock);
    atomic_flag_clear(&table_lock);
    start_sampler();
}

__attribute__((constructor)) static void probe_start(void)
{
    const char *path = getenv("PROBE_OUT"), *interval = getenv("PROBE_INTERVAL_MS");
    if (path == NULL || strlen(path) >= sizeof out_path)
        return;
    strcpy(out_path, path);
    size_t n = read_self("cmdline", cmdline, sizeof cmdline);
    for (size_t i = 0; i < n; i++) /* NULs between arguments; nothing JSON must escape */
        if (cmdline[i] == '"' || cmdline[i] == '\\' || (unsigned char)cmdline[i] < 32)
            cmdline[i] = ' ';
    if (interval && atol(interval) > 0)
        interval_ms = atol(interval);
    allocator_start();
    const char *trace = getenv("PROBE_TRACE");
    if (trace) {
        char trace_path[4096];
        snprintf(trace_path, sizeof trace_path, "%s.%d", trace, (int)getpid());
        trace_fd = open(trace_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    }
    atexit(report);
    pthread_atfork(NULL, NULL, after_fork_child);
    start_sampler();
}
