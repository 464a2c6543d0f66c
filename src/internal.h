/* The map of mapalloc: its words, its types, and the internal functions
 * grouped under the file that defines them. Not installed.
 *
 * Glossary
 *  block   what malloc returns: a slot of one size class inside a page.
 *  page    a run of 1 to 32 slices (64 KiB each) of one region that serves
 *          blocks of one size class. Its descriptor lives in the region header,
 *          away from the blocks (metadata is never next to user data).
 *  region  a 4 MiB mapping aligned to 4 MiB. Its first slice holds the header:
 *          the slice bitmaps and the 64 page descriptors. A block's page is
 *          found from the block's address alone: mask to the region, shift to
 *          the slice, one byte to the page.
 *  heap    per-thread: the pages it allocates from, by class, and the regions
 *          it owns. Only its thread allocates from it; other threads free into
 *          its pages with one atomic push.
 *  large   a block above MA_LARGE_THRESHOLD, with a mapping of its own.
 *  arena   an explicit arena (mapalloc_arena_*): its own regions and large
 *          blocks, a heap per thread that uses it; reset and destroy work on
 *          its mappings, never on its blocks.
 *  abandoned  a region whose thread exited with blocks still live; the next
 *          thread that needs a page adopts it.
 */
#ifndef MA_INTERNAL_H
#define MA_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lock.h"
#include "os.h"
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

#define MA_REGION_SHIFT 22
#define MA_REGION_SIZE ((size_t)1 << MA_REGION_SHIFT) /* 4 MiB */
#define MA_REGION_SLICES ((unsigned)(MA_REGION_SIZE >> MA_SLICE_SHIFT)) /* 64 */
#define MA_ADDRESS_BITS 47 /* user space on x86-64 with 4-level page tables */
#define MA_REGION_MAP_SIZE ((size_t)1 << (MA_ADDRESS_BITS - MA_REGION_SHIFT))
#define MA_OS_PAGE ((size_t)4096)

/* A free block holds its (encoded) list link and a tag that marks it free.
 * malloc clears the tag, free checks it: a block whose tag is intact is
 * already free, so a double free is caught whenever it happens. */
typedef struct ma_block {
    uintptr_t link; /* encoded next pointer */
    uintptr_t tag;  /* ma_block_tag(page, block) while free, 0 while live */
} ma_block;

struct ma_heap;

/* The state bits kept in the low two bits of page->thread_free. They tell a
 * remote freer whether the owner wants to hear that this page got a block
 * back (the page is full and out of its queue). */
enum {
    MA_TF_NONE = 0,      /* owner does not need notice */
    MA_TF_FULL = 1,      /* owner wants one notice: the first remote freer gives it */
    MA_TF_NOTIFYING = 2, /* a remote freer is pushing the page onto heap->notify */
    MA_TF_NEVER = 3,     /* region abandoned: nobody to notify */
};
#define MA_TF_STATE_MASK ((uintptr_t)3)

typedef struct ma_page {
    /* The fast paths touch only this first cache line (64 bytes). */
    ma_block *free;          /* allocation list */
    uint16_t used;           /* blocks out: handed out and not yet back with the owner */
    uint16_t capacity;       /* blocks carved so far (the free list is built lazily) */
    uint16_t free_trigger;   /* an owner free goes to the slow path when used drops below
                              * this: 1 normally (page empty), 0xffff while in_full */
    uint8_t unused[2];
    uintptr_t link_key;      /* secret for the links in this page */
    uintptr_t tag_key;       /* secret for the free tags in this page */
    ma_block *local_free;    /* freed by the owner, not yet reusable */
    _Atomic(struct ma_heap *) heap; /* owner; NULL while abandoned */
    uint8_t *carved_end;     /* start + capacity * block_size: past the carved blocks */
    uint64_t block_div;      /* ceil(2^64 / block_size) + 1: see ma_page_has_block */

    _Atomic uintptr_t thread_free; /* remote frees | MA_TF_* state */
    struct ma_page *next, *prev;  /* the heap's queue for this class */
    struct ma_page *notify_next;  /* link in heap->notify */
    uint32_t block_size;
    uint16_t reserved;       /* blocks that fit */
    uint8_t class_idx;
    uint8_t slices;          /* length in slices; 0 for a page not in use */
    uint8_t first_slice;     /* index of its first slice in the region */
    uint8_t in_full : 1;     /* owner: out of its queue because it was full */
    uint8_t notify_pending : 1; /* owner: a remote freer took the FULL notice */
    uint8_t retained : 1;    /* owner: empty, kept as its class's only page */
    uint8_t kept : 1;        /* emptied in place by an arena reset and not used since:
                              * not counted in the arena's committed bytes */
    uint32_t retired_ms;     /* owner: when it was last seen empty and idle */
    ma_block *retired_free, *retired_local; /* its lists then: if they moved, it was used */
} __attribute__((aligned(128))) ma_page; /* a power of two: the page index is a shift */

typedef struct ma_region {
    /* First, so that a page's descriptor is region + index * 128. */
    ma_page pages[MA_REGION_SLICES];  /* descriptor per first slice; pages[0] never valid */
    uint8_t slice_page[MA_REGION_SLICES]; /* slice -> first slice of its page (0: none) */
    _Atomic(struct ma_heap *) heap; /* owner; NULL while abandoned */
    struct ma_region *next, *prev;  /* in the owner's list or the abandoned list */
    struct ma_region *all_next, *all_prev; /* in the list of every region (stats, trim) */
    uint64_t used_slices;           /* bit i: slice i belongs to a page (bit 0: header) */
    uint64_t dirty_slices;          /* bit i: free, touched, not yet purged */
    uint32_t freed_ms[MA_REGION_SLICES]; /* when each dirty slice was freed (ma_clock_ms) */
    unsigned map_flags;             /* MA_MAP_* it was mapped with */
    bool abandoned;                 /* in an abandoned list (under ma_region_lock) */
    struct ma_arena *arena;         /* NULL for the ordinary heap */
    struct ma_region *arena_next, *arena_prev; /* every region of the arena */
} ma_region;

/* A page's descriptor lives in its region's header, and the page starts at
 * its first slice. */
static inline ma_region *ma_page_region(const ma_page *page)
{
    return (ma_region *)((uintptr_t)page & ~(uintptr_t)(MA_REGION_SIZE - 1));
}

static inline uint8_t *ma_page_start(const ma_page *page)
{
    return (uint8_t *)ma_page_region(page) + ((size_t)page->first_slice << MA_SLICE_SHIFT);
}

/* The page has no blocks: none of its addresses passes ma_page_has_block. */
static inline void ma_page_uncarve(ma_page *page)
{
    page->capacity = 0;
    page->carved_end = ma_page_start(page);
}

typedef struct ma_page_queue {
    ma_page *first, *last;
} ma_page_queue;

typedef struct ma_heap {
    /* Read by the fast path: page serving each small size, and each class. */
    ma_page *direct[MA_DIRECT_COUNT];
    ma_page *pages[MA_CLASS_COUNT];

    ma_page_queue queues[MA_CLASS_COUNT];
    _Atomic(ma_page *) notify;      /* full pages that got a remote free */
    ma_region *regions;             /* owned regions */
    size_t dirty_bytes;             /* free but unpurged bytes in owned regions */
    size_t retained_bytes;          /* carved bytes of retained empty pages */
    uint64_t next_purge_ms;         /* the next time a purge pass may run */
    uint64_t overcap_pass_ms;       /* the last pass made past dirty_max_kb */
    struct ma_heap *pool_next;      /* in the pool of unused heaps */
    struct ma_heap *all_next;       /* in the list of every heap ever made */
    /* Remote frees made by this thread, and those its owner side collected
     * (plain counters, summed by the statistics: a remote free is counted
     * as freed at once, not when its page's owner collects it). */
    size_t remote_frees, remote_free_bytes, collected, collected_bytes;
    /* Arena heaps only: */
    struct ma_arena *arena;         /* the arena; NULL once the arena is destroyed */
    const void *owner;              /* the owning thread's ma_thread_id() (next to arena:
                                     * the arena's fast path reads both) */
    uint64_t arena_generation;      /* the arena's generation when this heap joined */
    struct ma_heap *arena_next, *arena_prev; /* the arena's heaps */
    struct ma_heap *thread_next;    /* the owning thread's arena heaps */
} ma_heap;

/* An explicit arena (the public mapalloc_arena). Arena structures come from
 * a pool and are never unmapped, so a stale handle is still readable: its
 * magic says whether it is alive. */
#define MA_ARENA_LIVE 0x616c697665617261ull /* "arenaliva" */
#define MA_ARENA_DEAD 0x646561646172656eull
typedef struct ma_arena {
    _Atomic uint64_t magic;
    _Atomic uint64_t generation;  /* rises at destroy: thread caches of it miss */
    _Atomic(ma_heap *) hot_heap;  /* one thread's heap, found without thread-local
                                   * storage (arena.c); ma_empty_heap: none */
    unsigned map_flags;           /* MA_MAP_* for its regions and large blocks */
    unsigned flags;               /* MAPALLOC_ARENA_* */
    size_t limit, reserve;
    _Atomic size_t committed, peak;
    _Atomic size_t mapped;
    _Atomic size_t pending_frees, pending_bytes; /* remote frees not yet collected */
    ma_spinlock lock;             /* heaps, regions */
    ma_heap *heaps;               /* one per live thread that used it */
    ma_region *regions;           /* every region it mapped */
    ma_region *abandoned;         /* regions no heap owns (under ma_region_lock) */
    uintptr_t *large;             /* its large blocks (under ma_large_lock) */
    size_t large_count, large_cap;
    struct ma_arena *pool_next, *all_next;
} ma_arena;

/* ---- os.c: see os.h ---- */

/* ---- options.c ---- */
enum ma_option_id {
    MA_OPT_VERBOSE,
    MA_OPT_HUGE,        /* MAP_HUGETLB for regions, with fallback */
    MA_OPT_THP,         /* madvise(MADV_HUGEPAGE) on regions */
    MA_OPT_NORESERVE,   /* MAP_NORESERVE */
    MA_OPT_DEVZERO,     /* map /dev/zero instead of MAP_ANONYMOUS */
    MA_OPT_PURGE_FREE,  /* purge with MADV_FREE instead of MADV_DONTNEED */
    MA_OPT_DECAY_MS,    /* how long empty pages stay before they are purged */
    MA_OPT_DIRTY_MAX_KB,/* per heap: unpurged empty pages above this are purged now */
    MA_OPT_LARGE_CACHE, /* how many freed large mappings are kept for reuse */
    MA_OPT_LARGE_CACHE_MB, /* the most bytes they may hold */
    MA_OPT_STATS,       /* print statistics at exit */
    MA_OPT_SECURE,      /* the secure profile (secure.c) */
    MA_OPT_COUNT
};
extern long ma_options[MA_OPT_COUNT];
void ma_options_init(void);     /* reads MAPALLOC_OPTIONS; no allocation */
static inline long ma_option(enum ma_option_id id) { return ma_options[id]; }

/* ---- error.c: misuse reports and raw output without malloc ---- */
MA_NORETURN MA_COLD void ma_fatal(const char *what, const void *addr);
void ma_write_str(int fd, const char *s);
size_t ma_format_u64(char *buf, uint64_t v);  /* decimal; returns length */
size_t ma_format_hex(char *buf, uint64_t v);  /* 0x-prefixed; returns length */

/* ---- init.c: process-wide set-up, keys, fork ---- */
extern uintptr_t ma_secret[4];
extern _Atomic int ma_init_state;  /* 0 never, 1 running, 2 done */
void ma_init_slow(void);
static inline void ma_init(void)
{
    if (ma_unlikely(atomic_load_explicit(&ma_init_state, memory_order_acquire) != 2))
        ma_init_slow();
}
uint64_t ma_clock_ms(void);
void ma_locks_acquire_all(void);  /* fork: in a fixed order */
void ma_locks_release_all(void);
void ma_locks_reset_all(void);

/* ---- region.c: regions, slices, the region map, abandonment ---- */
/* A byte per 4 MiB of address space: 0 no region; 1 a region whose frees
 * take the fast path; 2 a region of the secure profile, whose frees all take
 * the slow path (secure.c checks the block before it is pushed). */
enum { MA_MAP_NONE = 0, MA_MAP_FAST = 1, MA_MAP_CHECKED = 2 };
extern uint8_t ma_region_map[MA_REGION_MAP_SIZE];
ma_region *ma_region_new(unsigned map_flags);
void ma_region_release(ma_region *r);       /* unmap (region must be empty) */
int ma_region_alloc_slices(ma_region *r, unsigned n, bool *dirty); /* -1 if none */
void ma_region_free_slices(ma_region *r, unsigned first, unsigned n, uint32_t now_ms);
/* Purges the dirty slices freed at least min_age_ms ago; returns the bytes
 * purged and adds those still dirty to *left. */
size_t ma_region_purge(ma_region *r, uint32_t now_ms, uint32_t min_age_ms, size_t *left);
bool ma_region_is_empty(const ma_region *r);
void ma_region_abandon(ma_region *r);        /* into its arena's list, or the global one */
ma_region *ma_region_take_abandoned(ma_arena *arena);
bool ma_region_take_if_abandoned(ma_region *r);
void ma_region_wipe(ma_region *r);
void ma_region_clear_abandoned(ma_arena *arena);
void ma_regions_foreach(void (*fn)(ma_region *, void *), void *arg); /* under the lock */
void ma_region_counts(size_t *regions, size_t *abandoned_regions);
extern ma_spinlock ma_region_lock;

/* ---- page.c: blocks inside a page ---- */
bool ma_page_init(ma_page *page, ma_region *r, unsigned first_slice, unsigned class_idx); /* false: guard refused */
void ma_page_set_divisor(ma_page *page, size_t block_size);
void ma_page_extend(ma_page *page);
/* Arena reset: every block of the page is gone at once, remote frees not
 * yet collected included (counted as collected for the statistics). */
void ma_page_forget_blocks(ma_page *page);
/* Arena reset, the page kept in place: its blocks forgotten, new keys, out
 * of any queue; it keeps its slices and class and starts again from its
 * first block. */
void ma_page_restart(ma_page *page);
void ma_page_collect(ma_page *page);        /* local and remote frees into free */
bool ma_page_set_full(ma_page *page);       /* false: blocks arrived, page usable */
bool ma_page_unfull(ma_page *page);         /* false: a notice is on its way instead */
void ma_page_set_never(ma_page *page);      /* abandonment: no more notices */
void ma_page_adopt(ma_page *page, struct ma_heap *heap);
void ma_page_free_remote(ma_page *page, ma_block *b);
bool ma_page_notices_in_flight(void);    /* fork: may a notice be half done? */
void ma_page_fork_child(ma_page *page);  /* fork child: finish a half-done notice */
void ma_page_fork_child_done(void);
MA_NORETURN MA_COLD void ma_page_corrupt(const ma_page *page, const void *at);

/* ---- heap.c: thread heaps ---- */
extern ma_heap ma_empty_heap;
extern ma_page ma_empty_page;
ma_heap *ma_heap_get_or_create(void);
ma_heap *ma_heap_list(void); /* every heap ever made (under ma_heap_lock) */
/* Unique among live threads. Where the compiler reads the thread pointer,
 * that is one instruction; the address of a thread-local variable costs a
 * call in the shared library. */
#if defined(__x86_64__) || defined(__aarch64__)
#define MA_HAVE_THREAD_POINTER 1
static inline const void *ma_thread_id(void)
{
    return __builtin_thread_pointer();
}
#else
const void *ma_thread_id(void);
#endif
ma_heap *ma_heap_new_for_arena(ma_arena *arena); /* NULL: no memory */
void ma_heap_reset(ma_heap *heap);      /* forget every page (arena reset or destroy) */
/* Arena reset, memory kept: every block is gone, but the pages used since
 * the last reset stay in place, emptied, in their queues, so the next
 * request needs no page set-up; they count as committed again only when
 * used. Pages unused for a whole period go back to their regions, and a
 * region left without pages goes to no heap (the caller abandons it). */
void ma_heap_reset_keep(ma_heap *heap);
void ma_heap_return_to_pool(ma_heap *heap);
void ma_heap_register_thread_exit(void);
void ma_heap_fork_child(void);          /* fork child: forget a half-made thread key */
void *ma_heap_malloc_generic(ma_heap *heap, unsigned class_idx);
void ma_heap_page_free_slow(ma_heap *heap, ma_page *page);
extern ma_spinlock ma_heap_lock;
void ma_heap_abandon(ma_heap *heap);
size_t ma_heap_trim(ma_heap *heap);
void ma_heap_adopt_region(ma_heap *heap, ma_region *r);
bool ma_heap_reclaim_on_free(ma_page *page); /* true: the page is ours now */

/* ---- large.c: blocks with a mapping of their own ---- */
void *ma_large_malloc(size_t size, size_t alignment, bool zero, ma_arena *arena); /* NULL: no memory */
ma_arena *ma_large_arena_of(const void *p);  /* aborts if p is not a live large block */
void ma_large_release_arena(ma_arena *arena); /* unmaps all of the arena's large blocks */
void ma_large_arena_stats(ma_arena *arena, size_t *live, size_t *blocks);
void ma_large_free(void *p, size_t expect_size, size_t expect_align); /* 0: unchecked */
void *ma_large_realloc(void *p, size_t size);
size_t ma_large_usable_size(const void *p);
size_t ma_large_requested_size(const void *p);
size_t ma_large_trim(void);
void ma_large_stats(size_t *mapped, size_t *blocks, size_t *live);
extern ma_spinlock ma_large_lock;

/* ---- arena.c ---- */
extern ma_spinlock ma_arena_pool_lock;
ma_heap *ma_arena_heap_slow(ma_arena *arena);
ma_region *ma_arena_new_region(ma_arena *arena);
bool ma_arena_commit(ma_arena *arena, size_t bytes);
void ma_arena_uncommit(ma_arena *arena, size_t bytes);
void ma_arena_thread_exit(void);
void ma_arenas_lock_all(void);
struct mapalloc_arena_stats;
void ma_arenas_foreach(void (*fn)(const void *, const struct mapalloc_arena_stats *, void *), void *arg);
void ma_arenas_unlock_all(void);
MA_NORETURN MA_COLD void ma_arena_dead(const ma_arena *arena);

/* ---- secure.c: the secure profile ---- */
#define MA_SECURE_TRAILER 8 /* requested size and keyed checksum at a block's end */
#define MA_GUARD_SIZE MA_OS_PAGE
extern bool ma_secure;
unsigned ma_secure_class(size_t size, size_t alignment);
void *ma_secure_prepare(void *p, size_t size, bool zero);
size_t ma_secure_size(const ma_page *page, const void *p);
void ma_secure_release(const ma_page *page, void *p);
void ma_secure_carve(ma_page *page, uint8_t *first, unsigned count);
void *ma_secure_malloc(ma_heap *heap, size_t size, size_t alignment, ma_arena *arena, bool zero);

/* ---- stats.c ---- */
void ma_stats_remote_free(const ma_page *page);
void ma_stats_collected(const ma_page *page, size_t count);
void ma_stats_fold(ma_heap *heap);
void ma_stats_pending(size_t *blocks, size_t *bytes);
extern int ma_stats_fd; /* where stats=1 reports at exit (init.c) */
void ma_stats_at_exit(void);

/* ---- api.c: the public functions; alloc.h holds their fast paths ---- */
MA_NOINLINE void ma_free_nonregion(void *p, size_t expect_size, size_t expect_align);
void *ma_realloc_in(ma_arena *arena, void *ptr, size_t size); /* arena NULL: the ordinary heap */
void *ma_heap_malloc_aligned(ma_heap *heap, ma_arena *arena, size_t size, size_t alignment);
void ma_free_block(struct ma_heap *heap, ma_page *page, void *p); /* validated, off the fast path */
MA_NOINLINE void *ma_malloc_generic(size_t size);
bool ma_give_back(void); /* the kernel refused: give back what is held, true if any */


MA_NOINLINE void *ma_malloc_large_path(size_t size);
MA_NORETURN MA_COLD void ma_free_invalid(const void *p);
/* These never return either, but the compiler must not know it: a call it
 * knows to be noreturn is never a tail jump, and the fast path would pay for
 * a stack frame. */
MA_OPAQUE void ma_report_invalid_free(const void *p);
MA_OPAQUE void ma_report_double_free(const void *p);

#endif
