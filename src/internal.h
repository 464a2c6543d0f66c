/* The map of mapalloc: its words, its types, and the base layer (options,
 * set-up, misuse reports). Not installed.
 *
 * The layers, bottom up; a file includes only the headers of its own layer
 * or below (tests/check_layers.py keeps it so):
 *   0 base     internal.h, lock.h, size_class.h, error.c, options.c, init.c, cgroup.c
 *   1 os       os.h, os.c          mappings: the only mmap/munmap/mremap/madvise
 *   2 region   region.h, region.c  4 MiB regions, their slices, the region map
 *   3 page     page.h, page.c, secure.c   blocks in a page, the secure profile
 *   4 large    large.h, large.c    blocks with a mapping of their own
 *   5 arena    arena.h, arena.c    regions, pages, large blocks and the budget
 *                                  of one arena, its purging
 *   6 purge    purge.h, purge.c    the background purger: a thread that gives
 *                                  back what the default arena and the large
 *                                  cache hold, while the program is idle
 *   7 prof     prof.h, prof.c, unwind.h, unwind.c   the sampling heap profiler:
 *                                  stacks, samples, profiles, leak reports
 *   8 heap     heap.h, heap.c      thread heaps: per thread and arena
 *   9 api      alloc.h, api.c, stats.c   the public functions, their fast paths
 *
 * Glossary
 *  block     what malloc returns: a slot of one size class inside a page.
 *  class     a size class: the block size that serves a range of requests
 *            (size_class.h).
 *  slice     64 KiB, the unit a region is cut into; a page is a run of them.
 *  page      a run of 1 to 32 slices of one region that serves blocks of one
 *            class. Its descriptor lives in the region header, away from the
 *            blocks (metadata is never next to user data). A page is, at any
 *            time, one of:
 *              free       its slices belong to no page (descriptor unused);
 *              queued     owned by a heap, in its queue for the class: it may
 *                         have free blocks;
 *              full       owned by a heap, out of its queue because it had no
 *                         free block, waiting for a notice (in_full);
 *              retained   owned by a heap, empty, kept as its class's page so
 *                         that a loop of malloc and free does not set a page
 *                         up each time (retained);
 *              kept       owned by a heap of an explicit arena, emptied in
 *                         place by a reset, not committed until used (kept);
 *              abandoned  its heap's thread exited while blocks were live:
 *                         in its arena's list until a heap adopts it.
 *  region    a 4 MiB mapping aligned to 4 MiB. Its first slice holds the
 *            header: slice bitmaps and the 64 page descriptors. A block's page
 *            is found from the block's address alone: mask to the region,
 *            shift to the slice, one byte to the page.
 *  heap      what one thread allocates from in one arena: per class a queue
 *            of pages and the page serving each small size. Only its thread
 *            allocates from it; other threads free into its pages.
 *  arena     owns regions, the index of its large blocks, a budget and its
 *            mapping options; every heap belongs to one. The process's
 *            ordinary allocations use the default arena; an explicit arena
 *            (mapalloc_arena_*) differs only in its options.
 *  large     a block above MA_LARGE_THRESHOLD, with a mapping of its own.
 *  tag       the mark a free block carries (its page's secret tag_key):
 *            free writes it, malloc erases it, free of a block whose tag is
 *            intact is a double free.
 *  link      a free block's encoded pointer to the next free block.
 *  notice    what a remote free sends the owner of a full page: the page on
 *            its heap's notice stack, so that the page comes back into its
 *            queue without any scanning.
 *  dirty     slices that are free but still resident (touched, not purged).
 *  lazy      slices purged with MADV_FREE (purge_free=1) and not used since:
 *            the kernel counts them as resident until it needs the memory.
 *  purge     give pages back to the kernel (madvise); they stay mapped.
 *  hollow    a free block of a big class in a page that still holds live
 *            blocks, whose whole OS pages past its first were purged: its
 *            link and tag stay, so it is on its free list as before.
 *  sparse    a page of small blocks that still holds live ones, whose OS
 *            pages holding only free blocks were purged: those blocks (its
 *            sparse blocks) are off its lists until the lists run dry, and
 *            every free into the page is checked against them.
 *  unmap     give a mapping back (munmap): regions, large blocks.
 *  forget    drop every block of a page at once (arena reset): nothing is
 *            freed one by one.
 *  reset     only the public arena reset (mapalloc_arena_reset).
 *  committed bytes of pages in use and large blocks: what an arena's limit
 *            counts.
 *  sample    an allocation the heap profiler records with its stack, drawn
 *            by bytes (prof.c); a sampled block is served as a large block.
 *  handout   the profiler's limit on the blocks the fast path may take from
 *            a page before the next sample is due.
 */
#ifndef MA_INTERNAL_H
#define MA_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lock.h"
#include "size_class.h"

#define ma_likely(x) __builtin_expect(!!(x), 1)
#define ma_unlikely(x) __builtin_expect(!!(x), 0)
#define MA_NOINLINE __attribute__((noinline))
#define MA_COLD __attribute__((cold, noinline))
#if defined(__clang__)
#define MA_OPAQUE __attribute__((noinline))
#else
#define MA_OPAQUE __attribute__((noipa))
#endif
#define MA_NORETURN __attribute__((noreturn))
#define MA_API __attribute__((visibility("default"))) /* the public mapalloc_ names */

/* A count that one thread (or the holder of one lock) writes and others read
 * without it, for statistics and for a look before taking the lock: a
 * relaxed store of the new value, not a locked add. */
static inline void ma_count_set(size_t *count, size_t value)
{
    __atomic_store_n(count, value, __ATOMIC_RELAXED);
}

static inline size_t ma_count_get(const size_t *count)
{
    return __atomic_load_n(count, __ATOMIC_RELAXED);
}

/* Structures made one at a time, as they are needed, out of a chunk mapped
 * for them and never unmapped (heaps, explicit arenas): only those made are
 * ever touched, so a process holds the pages of what it uses. Under the
 * owner's lock. */
typedef struct ma_carver {
    size_t stride; /* a structure's size, rounded to a cache line */
    uint8_t *next; /* the newest chunk's first structure not yet made */
    size_t left;
} ma_carver;
#define MA_CARVER(type) {.stride = (sizeof(type) + 63) & ~(size_t)63}

/* The next structure; NULL when the chunk is used up. */
static inline void *ma_carve(ma_carver *c)
{
    if (c->left < c->stride)
        return NULL;
    void *p = c->next;
    c->next += c->stride;
    c->left -= c->stride;
    return p;
}

/* A new chunk of size bytes, mapped without the lock; false when another
 * thread's came first (the caller unmaps this one: nothing was made of it). */
static inline bool ma_carver_refill(ma_carver *c, void *chunk, size_t size)
{
    if (c->left >= c->stride)
        return false;
    c->next = chunk;
    c->left = size;
    return true;
}

/* Thread-local state. The preload and the static library use the
 * initial-exec model (glibc's rule for a replacement malloc, and one
 * instruction per access); the shared library, which may be loaded with
 * dlopen, uses TLS descriptors (-mtls-dialect=gnu2): as cheap once loaded at
 * start-up, and no claim on the static TLS space when dlopen'ed. */
#ifdef MAPALLOC_TLS_DYNAMIC
#define MA_THREAD_LOCAL __thread
#else
#define MA_THREAD_LOCAL __thread __attribute__((tls_model("initial-exec")))
#endif

/* ---- layout constants, named once ---- */

#define MA_REGION_SHIFT 22
#define MA_REGION_SIZE ((size_t)1 << MA_REGION_SHIFT) /* 4 MiB */
#define MA_REGION_SLICES ((unsigned)(MA_REGION_SIZE >> MA_SLICE_SHIFT)) /* 64 */
/* User space on x86-64 with 4-level page tables, and the default of the
 * kernel with 5-level ones: the region map covers it, and a region the
 * kernel places above it is not used (region.c). */
#define MA_ADDRESS_BITS 47
/* The largest alignment honoured: beyond it a request fails with ENOMEM
 * (an aligned mapping is over-mapped by its alignment). */
#define MA_ALIGN_MAX ((size_t)1 << 40)
/* The huge page size that MAP_HUGETLB regions are made of. */
#define MA_HUGE_PAGE ((size_t)2 << 20)
_Static_assert(MA_REGION_SIZE % MA_HUGE_PAGE == 0, "a region is whole huge pages");
#define MA_GUARD_SIZE MA_OS_PAGE /* secure profile: a guard page */

/* ---- blocks and pages ---- */

/* The default checks (-Dchecks=false removes them, only to measure them). */
#ifndef MAPALLOC_CHECKS
#define MAPALLOC_CHECKS 1
#endif

/* The free list of the empty page (region.c): with the checks, an address
 * in no region, so that malloc's one test of a list's head turns it away
 * wherever the empty page itself lies (page.h, ma_page_head_ok). */
#define MA_NO_BLOCKS ((struct ma_block *)(MAPALLOC_CHECKS ? (uintptr_t)1 << 63 : 0))

/* A free block holds its (encoded) list link and its tag. */
typedef struct ma_block {
    uintptr_t link; /* encoded next pointer */
    uintptr_t tag;  /* ma_block_tag(page) while free, 0 while live */
} ma_block;

struct ma_heap;
struct ma_arena;

/* The state kept in the low two bits of page->thread_free, read by remote
 * freers: does the owner want to hear that this page got a block back? */
enum {
    MA_TF_NONE = 0,      /* no notice wanted */
    MA_TF_FULL = 1,      /* the page is full and out of its queue: the first
                          * remote freer sends one notice */
    MA_TF_NOTIFYING = 2, /* a remote freer took the notice and is delivering it */
    MA_TF_NEVER = 3,     /* abandoned: nobody to notify; a freer may adopt it */
};
#define MA_TF_STATE_MASK ((uintptr_t)3)
/* Above the state, the list's first block (every block address of a region
 * is below 2^MA_ADDRESS_BITS), and in the top 16 bits how many blocks the
 * list holds: the owner takes list and count in one exchange and never
 * walks the blocks that other threads freed (their lines stay where they
 * are until malloc hands them out). A page holds fewer than 2^16 blocks
 * (page->reserved). */
#define MA_TF_COUNT_SHIFT 48
#define MA_TF_LIST_MASK ((((uintptr_t)1 << MA_TF_COUNT_SHIFT) - 1) & ~MA_TF_STATE_MASK)

/* free_trigger while the page is full: more than any page's blocks, so
 * that every owner free takes the slow path. */
#define MA_TRIGGER_FULL 0x4000
/* The owner of a page of the secure profile, or of a sparse page: no
 * thread, so that every free leaves the fast path for the checks of
 * secure.c, or for the check against the sparse blocks (heap.c). */
#define MA_OWNER_CHECKED ((const void *)1)

typedef struct ma_page {
    /* Written by the owner's every malloc and free. */
    ma_block *free;          /* allocation list */
    int16_t over;            /* the blocks out (handed out and not yet back with the
                              * owner) less free_trigger: an owner free whose decrement
                              * makes it negative takes the slow path (ma_page_used) */
    uint16_t fresh_left;     /* blocks past carved_end never handed out: malloc takes
                              * them one after another (ma_page_bump); 0 while kept */
    uint16_t free_trigger;   /* 1 normally (the slow path when the page empties), 0
                              * while retained (never), MA_TRIGGER_FULL while full
                              * (every free) */
    uint8_t unused[2];
    ma_block *local_free;    /* freed by the owner, not yet reusable */
    struct ma_page *next, *prev;  /* in its heap's queue or full list, or its arena's
                                   * abandoned list */
    uintptr_t link_key;      /* secret for the links in this page (odd): here, where
                              * the owner's free pushes and malloc pops, which then
                              * read no other line */
    uintptr_t link_unkey;    /* its inverse modulo 2^64, which decodes them */
    uint8_t first_slice;     /* index of its first slice in the region */
    uint8_t in_full : 1;     /* owner: full, out of its queue */
    uint8_t notify_pending : 1; /* owner: a remote freer took the FULL notice */
    uint8_t retained : 1;    /* owner: empty, kept as its class's page */
    uint8_t kept : 1;        /* emptied in place by an arena reset, not used since:
                              * not counted in the arena's committed bytes */
    uint8_t hollow : 1;      /* owner: hollowed or made sparse since it was last used
                              * (hollow_free is its list then) */
    uint8_t abandoned;       /* in its arena's abandoned list: read and written under
                              * the arena lock only, so a byte apart from the owner's
                              * bits, which an exiting owner writes without it */
    uint32_t retired_ms;     /* owner: when it was last seen empty and idle */

    /* Read by every free, the other threads' too: written when the page is
     * set up, and carved_end while fresh blocks are handed out. Apart from
     * the line above, so that a thread freeing into a page another thread
     * allocates from does not take that line away at every block. */
    uintptr_t shared_link_key __attribute__((aligned(64))); /* link_key again, for the
                              * links of other threads' frees */
    uintptr_t tag_key;       /* secret: the free tag of every block of this page */
    _Atomic(const void *) owner; /* its heap's thread (ma_thread_id), compared by free;
                              * NULL while free or abandoned; MA_OWNER_CHECKED */
    uint8_t *carved_end;     /* past the blocks carved or handed out fresh */
    uint64_t block_div;      /* -(ceil(2^64 / block_size) + 1): see ma_page_has_block */
    uint32_t block_size;
    uint16_t reserved;       /* blocks that fit */
    uint8_t class_idx;
    uint8_t slices;          /* length in slices; 0 for a free page */
    /* Full words, so that free_sized compares the size with each straight
     * from memory (two instructions fewer than with 32-bit fields). */
    uint64_t sized_min;      /* the smallest request its class serves */
    uint64_t sized_span;     /* how many requests it serves from sized_min on;
                              * 0 in the secure profile (free_sized checks more) */

    /* Written by other threads' frees: their atomic pushes. */
    _Atomic uintptr_t thread_free __attribute__((aligned(64))); /* remote frees: count << 48 | first
                              * block | MA_TF_* state */
    /* Its heap; NULL while free or abandoned. Read when a remote free
     * delivers a notice, and by the owner only when the page empties or
     * fills: off the line that every free reads. */
    _Atomic(struct ma_heap *) heap;
    struct ma_page *notify_next;  /* link in its heap's notice stack, written by the
                              * remote free that takes the notice */
    uint64_t sparse_mask;    /* owner: bit j, its j-th OS page was purged and its
                              * blocks are off the lists (sparse); nonzero, the
                              * owner is MA_OWNER_CHECKED */

    /* The owner's, at its passes over its pages: a line apart, as the
     * owner's line is full. */
    union {                  /* the head of its free list at a moment of an owner's
                              * pass; if it moved, the page was used since */
        ma_block *retired_free; /* retained: when it was last seen empty and idle */
        ma_block *hollow_free;  /* in use: when its free blocks were last hollowed */
    } __attribute__((aligned(64)));
} __attribute__((aligned(256))) ma_page; /* a power of two: the page index is a shift */
_Static_assert((size_t)2 * MA_SLICE_SIZE / MA_SMALL_STEP < MA_TRIGGER_FULL,
               "a full page's count stays negative");

typedef struct ma_page_queue {
    ma_page *first, *last;
} ma_page_queue;

/* ---- regions ---- */

typedef struct ma_region {
    /* First, so that a page's descriptor is region + index * 256. */
    ma_page pages[MA_REGION_SLICES];  /* descriptor per first slice; pages[0] never valid */
    /* Read by other threads' frees: apart from what changes below. */
    struct ma_arena *arena;         /* its owner */
    unsigned map_flags;             /* MA_MAP_* it was mapped with */
    struct ma_region *next, *prev;  /* every region of the arena */
    /* The rest belongs to its arena and changes under the arena's lock. */
    uint64_t used_slices __attribute__((aligned(64))); /* bit i: slice i belongs to a page,
                                     * or is being purged (bit 0: the header) */
    uint64_t dirty_slices;          /* bit i: free, touched, not yet purged */
    uint32_t freed_ms[MA_REGION_SLICES]; /* when each dirty slice was freed (ma_clock_ms) */
    /* Bit i: purged with MADV_FREE and not taken since, so perhaps still
     * counted as resident (statistics only). Set by the purge, which runs
     * without the lock, hence atomic; cleared when a page takes the slice. */
    _Atomic uint64_t lazy_slices;
} ma_region;

/* The region a heap took its last page from, valid while its arena has
 * unmapped no region since (epoch). */
typedef struct ma_region_hint {
    ma_region *region;
    uint64_t epoch;
} ma_region_hint;

/* ---- large blocks: the index of one arena's ---- */

typedef struct ma_large_set {
    uintptr_t *blocks;      /* addresses of its live blocks (under the large lock) */
    size_t count, cap;
    /* Its freed mappings may wait in the large cache, and a growing block
     * gets slack: the default arena's. An explicit arena's blocks count
     * against its budget to the byte and go at its reset. */
    bool cache;
} ma_large_set;

/* ---- heaps ---- */

/* The heap profiler's count for one class of a heap (prof.c): the page
 * handed to the fast path and what it could take from it then. */
typedef struct ma_prof_class {
    struct ma_page *page;   /* handed out; NULL: none (the fast path has the empty page) */
    uintptr_t page_key;     /* its link key then: a page set up anew since has another */
    uint32_t listed, fresh; /* its free-list blocks and fresh blocks then */
    int64_t left;           /* bytes of this class until the next sample */
} ma_prof_class;

typedef struct ma_prof_heap {
    ma_prof_class cls[MA_CLASS_COUNT];
    uint64_t rng;           /* 0: not started */
} ma_prof_heap;

typedef struct ma_heap {
    /* Read by the fast path: page serving each small size, and each class. */
    ma_page *direct[MA_DIRECT_COUNT];
    ma_page *pages[MA_CLASS_COUNT];

    ma_page_queue queues[MA_CLASS_COUNT];
    ma_page_queue full;             /* its full pages (in_full) */
    _Atomic(ma_page *) notify;      /* full pages that got a remote free */
    struct ma_arena *arena;         /* where its pages come from; NULL in the pool */
    const void *owner;              /* the owning thread's ma_thread_id() (next to arena:
                                     * the arena's fast path reads both) */
    ma_region_hint region_hint;     /* where its last page came from */
    size_t retained_bytes;          /* bytes of its retained pages */
    bool has_kept;                  /* it may hold kept pages (since an arena reset) */
    uint64_t next_purge_ms;         /* the next time its retained pages are looked at */
    uint64_t next_hollow_ms;        /* the next time its free big blocks are hollowed */
    /* Remote frees made by this thread, and those its owner side collected
     * (plain counters, summed by the statistics: a remote free is counted
     * as freed at once, not when its page's owner collects it). */
    size_t remote_frees, remote_free_bytes, collected, collected_bytes;
    uint64_t arena_generation;      /* the arena's generation when this heap joined */
    struct ma_heap *arena_next, *arena_prev; /* the arena's heaps (under its lock) */
    struct ma_heap *thread_next;    /* the owning thread's heaps in explicit arenas */
    struct ma_heap *pool_next;      /* in the pool of unused heaps */
    struct ma_heap *all_next;       /* in the list of every heap ever made */
    ma_prof_heap prof;              /* with prof=1: the heap profiler's counts */
} ma_heap;

/* ---- arenas ---- */

/* An arena's structure is never unmapped (the default one is static,
 * explicit ones come from a pool), so a stale handle is still readable: its
 * magic says whether it is alive. */
#define MA_ARENA_LIVE 0x616c697665617261ull /* "arenaliva" */
#define MA_ARENA_DEAD 0x646561646172656eull

/* What an explicit arena does differently from the default one. */
enum {
    MA_ARENA_KEEPS_REGIONS = 1u << 0, /* empty regions stay until reset or destroy */
    MA_ARENA_NO_LARGE_CACHE = 1u << 1, /* freed large blocks are unmapped at once */
};

typedef struct ma_arena {
    _Atomic uint64_t magic;
    _Atomic uint64_t generation;  /* rises at destroy: thread caches of it miss */
    _Atomic(ma_heap *) hot_heap;  /* one thread's heap, found without thread-local
                                   * storage (heap.c); ma_empty_heap: none */
    unsigned map_flags;           /* MA_MAP_* for its regions and large blocks */
    unsigned kind;                /* MA_ARENA_* above */
    unsigned flags;               /* MAPALLOC_ARENA_* */
    size_t limit, reserve;        /* limit 0: none */
    _Atomic size_t committed, peak;
    _Atomic size_t mapped;
    _Atomic size_t pending_frees, pending_bytes; /* explicit arenas: remote frees into its
                                                  * pages not yet collected */
    _Atomic size_t collected, collected_bytes; /* remote frees that it (not a heap)
                                                * collected or dropped: purge, reset */
    ma_spinlock lock;             /* what follows, and the slices of its regions */
    ma_region *regions;           /* every region it mapped */
    size_t region_count;
    uint64_t region_epoch;        /* rises when a region is unmapped: hints go stale */
    size_t dirty_bytes;           /* dirty slices of its regions */
    ma_page_queue abandoned[MA_CLASS_COUNT]; /* abandoned pages, by class */
    size_t abandoned_count;
    _Atomic uint64_t next_purge_ms;  /* the next time its dirty slices are looked at */
    uint64_t overcap_pass_ms;     /* the last pass made past dirty_max_kb */
    ma_heap *heaps;               /* its heaps: one per live thread that used it */
    unsigned leaving;             /* heaps of exiting threads still handing pages back */
    ma_large_set large;           /* its large blocks */
    struct ma_arena *pool_next, *all_next;
} ma_arena;

/* ---- options.c ---- */
enum ma_option_id {
    MA_OPT_VERBOSE,
    MA_OPT_HUGE,        /* MAP_HUGETLB for regions, with fallback */
    MA_OPT_THP,         /* madvise(MADV_HUGEPAGE) on regions */
    MA_OPT_NORESERVE,   /* MAP_NORESERVE */
    MA_OPT_DEVZERO,     /* map /dev/zero instead of MAP_ANONYMOUS */
    MA_OPT_PURGE_FREE,  /* purge with MADV_FREE instead of MADV_DONTNEED */
    MA_OPT_DECAY_MS,    /* how long empty pages stay before they are purged */
    MA_OPT_DIRTY_MAX_KB,/* per arena: unpurged empty pages above this go sooner */
    MA_OPT_LARGE_CACHE, /* how many freed large mappings are kept for reuse */
    MA_OPT_LARGE_CACHE_MB, /* the most bytes they may hold */
    MA_OPT_LARGE_THP,   /* madvise(MADV_HUGEPAGE) on large blocks of 2 MiB and more */
    MA_OPT_HOLLOW_KB,   /* free blocks of at least this many KiB in pages in use are hollowed */
    MA_OPT_BACKGROUND,  /* the background purger (purge.c) */
    MA_OPT_STATS,       /* print statistics at exit */
    MA_OPT_SECURE,      /* the secure profile (secure.c) */
    MA_OPT_PROF,        /* the sampling heap profiler (prof.c) */
    MA_OPT_PROF_SAMPLE_KB, /* its mean interval between samples, in KiB (0: every allocation) */
    MA_OPT_PROF_FINAL,  /* write the profile at exit */
    MA_OPT_PROF_PEAK,   /* write the profile of the peak of live bytes at exit */
    MA_OPT_PROF_SIGNAL, /* the signal that writes a profile; 0 none */
    MA_OPT_LEAKS,       /* print the sampled blocks still live at exit */
    MA_OPT_COUNT
};
extern long ma_options[MA_OPT_COUNT];
void ma_options_init(void);     /* reads MAPALLOC_OPTIONS; no allocation */
/* cgroup.c: the limit under root (the cgroups' mount point) of the group
 * that /proc/self/cgroup names, or that self_cgroup (its text) names; 0
 * when there is none. */
uint64_t ma_cgroup_limit(const char *root);
uint64_t ma_cgroup_limit_from(const char *root, const char *self_cgroup);
static inline long ma_option(enum ma_option_id id) { return ma_options[id]; }

/* ---- error.c: misuse reports and raw output without malloc ---- */
MA_NORETURN MA_COLD void ma_fatal(const char *what, const void *addr);
void ma_write_str(int fd, const char *s);
size_t ma_format_u64(char *buf, uint64_t v);  /* decimal; returns length */
size_t ma_format_hex(char *buf, uint64_t v);  /* 0x-prefixed; returns length */
/* A size for people, in at least MA_SIZE_TEXT bytes: "0 B" to "1023 B",
 * then one decimal and a binary unit ("1.0 KiB", "12.4 MiB", up to EiB),
 * rounded to the nearest tenth, half up, the unit chosen after rounding
 * (1048575 bytes are "1.0 MiB", not "1024.0 KiB"). Returns the length. */
#define MA_SIZE_TEXT 16
size_t ma_format_size(char *buf, uint64_t bytes);
/* Where reports at exit go: stderr, or a copy of it taken at start-up
 * (some programs, coreutils among them, close stderr before exit handlers
 * run). */
extern int ma_report_fd;
void ma_report_keep_stderr(void);

/* ---- init.c: process-wide set-up: options, secrets, the clock ---- */
extern uintptr_t ma_secret[4];
extern bool ma_secure;              /* the secure profile is on (secure.c) */
extern bool ma_prof_on;             /* allocations are sampled (prof=1 or leaks=1) */
extern bool ma_prof_pages;          /* ... and the fast path's pages are handed out by the
                                     * profiler (not in the secure profile, which samples
                                     * on its own slow path) */
extern _Atomic int ma_init_state;   /* 0 never, 1 running, 2 done */
void ma_init_slow(void);
static inline void ma_init(void)
{
    if (ma_unlikely(atomic_load_explicit(&ma_init_state, memory_order_acquire) != 2))
        ma_init_slow();
}
uint64_t ma_clock_ms(void);

/* Unique among live threads. Where the compiler reads the thread pointer,
 * that is one instruction; the address of a thread-local variable costs a
 * call in the shared library. */
#if defined(__x86_64__) || defined(__aarch64__)
static inline const void *ma_thread_id(void)
{
    return __builtin_thread_pointer();
}
#else
const void *ma_thread_id(void);
#endif

#endif
