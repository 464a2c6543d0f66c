/* mapalloc: a size-class allocator built directly on anonymous memory mappings.
 *
 * Every public name starts with mapalloc_. Linking this library never replaces
 * the process's malloc; for that, preload libmapalloc-preload.so.
 *
 * Semantics follow glibc where the C standard leaves a choice:
 *  - mapalloc_malloc(0) returns a unique, freeable block (of usable size 16;
 *    in the secure profile the usable size is always the size requested,
 *    so 0 here: the bytes after the request are its canary);
 *  - mapalloc_realloc(p, 0) with p != NULL frees p and returns NULL;
 *  - mapalloc_realloc(NULL, n) is mapalloc_malloc(n).
 * Errors: a request that cannot be met (overflow, more than PTRDIFF_MAX bytes,
 * the kernel refusing memory) returns NULL with errno = ENOMEM; an alignment
 * that is not a power of two returns EINVAL. errno is not touched on success.
 * A detected misuse (double free, a pointer mapalloc never returned, a size
 * that does not match the block) aborts with one line on stderr that starts
 * with "mapalloc:" and names the misuse and the address.
 */
#ifndef MAPALLOC_H
#define MAPALLOC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MAPALLOC_VERSION_MAJOR 0
#define MAPALLOC_VERSION_MINOR 1

#if defined(__GNUC__)
#define MAPALLOC_MALLOC_ATTR __attribute__((malloc, warn_unused_result))
#else
#define MAPALLOC_MALLOC_ATTR
#endif

/* The C allocation API. */
void *mapalloc_malloc(size_t size) MAPALLOC_MALLOC_ATTR;
void *mapalloc_calloc(size_t count, size_t size) MAPALLOC_MALLOC_ATTR;
void *mapalloc_realloc(void *ptr, size_t size);
void *mapalloc_reallocarray(void *ptr, size_t count, size_t size);
void mapalloc_free(void *ptr);
/* C23: size must be the size asked for (or any size between that and the
 * usable size); a size that cannot belong to the block aborts. */
void mapalloc_free_sized(void *ptr, size_t size);
void mapalloc_free_aligned_sized(void *ptr, size_t alignment, size_t size);

/* Aligned allocation. alignment must be a power of two; blocks are always
 * aligned to at least 16 bytes. Alignments up to 1 GiB are honoured. */
void *mapalloc_aligned_alloc(size_t alignment, size_t size) MAPALLOC_MALLOC_ATTR;
int mapalloc_posix_memalign(void **out, size_t alignment, size_t size);
void *mapalloc_memalign(size_t alignment, size_t size) MAPALLOC_MALLOC_ATTR;
void *mapalloc_valloc(size_t size) MAPALLOC_MALLOC_ATTR;
void *mapalloc_pvalloc(size_t size) MAPALLOC_MALLOC_ATTR;

/* The number of bytes of the block that may be used; 0 for NULL. */
size_t mapalloc_usable_size(const void *ptr);

/* Gives back to the kernel every page it can: the calling thread's empty
 * pages, the free slices and empty regions of the process's arena, the cache
 * of large mappings.
 * Returns 1 if memory was returned, 0 otherwise (as glibc's malloc_trim). */
int mapalloc_trim(size_t pad);

/* Statistics, summed over all threads when asked. Figures in bytes. */
struct mapalloc_stats {
    size_t live;           /* bytes in blocks handed out and not freed (block sizes) */
    size_t small_mapped;   /* bytes of regions mapped for small and medium blocks */
    size_t large_mapped;   /* bytes mapped for large blocks, including the cache */
    size_t mapped;         /* all bytes mapped by mapalloc now */
    size_t peak_mapped;    /* the highest value of mapped so far */
    size_t resident;       /* resident bytes of the process (from /proc/self/statm) */
    size_t live_blocks;    /* blocks handed out and not freed */
    size_t large_blocks;   /* of which large */
    uint64_t mmap_calls, munmap_calls, mremap_calls, madvise_calls;
    uint64_t huge_fallbacks; /* MAP_HUGETLB refused by the kernel, ordinary pages used */
    uint64_t regions;        /* regions mapped now */
    uint64_t abandoned_pages;   /* pages of exited threads, with live blocks, not yet adopted */
    uint64_t mprotect_calls;    /* guard pages of the secure profile */
    /* Fields are only ever added here, at the end. */
    size_t lazy_free;      /* bytes purged with MADV_FREE (purge_free=1) and not used again
                            * since: the kernel still counts them in resident until it needs
                            * the memory, then takes them back without a word (smaps'
                            * LazyFree is the part it has not taken yet). 0 with
                            * MADV_DONTNEED, which takes them out of resident at once. */
    size_t purged;         /* bytes given back with madvise (either way) so far, in total */
    size_t peak_resident;  /* the process's peak resident bytes (VmHWM, /proc/self/status) */
    uint64_t mappings;     /* mappings mapalloc holds now (regions, large blocks, metadata) */
    uint64_t peak_mappings; /* the most it held at once */
    size_t prof_mapped;         /* bytes mapped by the heap profiler's own tables */
};
void mapalloc_stats_get(struct mapalloc_stats *out);

/* The forms of mapalloc_stats_print. */
enum {
    MAPALLOC_STATS_TEXT = 0,  /* for people: sizes in binary units (12.4 MiB) */
    MAPALLOC_STATS_JSON = 1,  /* one JSON object on one line, every size in exact bytes */
    MAPALLOC_STATS_GLIBC = 2, /* the layout of glibc's malloc_stats (the preload's) */
};

/* Writes the statistics to fd in the given form (any other value than
 * those above: JSON).
 *
 * Text: a summary (live, mapped, resident, peak, purged, lazily freed,
 * system calls), then one row per size class that holds pages (its block
 * size in bytes, pages, blocks in use, capacity, the memory of its pages,
 * the live bytes, and the waste: bytes of those pages not in live blocks),
 * one row per thread heap ("abandoned" for pages of exited threads) and one
 * per explicit arena (as mapalloc_arena_stats). Every line starts with
 * "mapalloc: ".
 *
 * JSON: the fields of struct mapalloc_stats under their names, then
 * "classes", "heaps" and "arenas": lists of objects with the text's rows.
 *
 * glibc's layout: "Arena N:" with its system and in-use bytes for each
 * arena (0 the process's, then the explicit ones; small and medium blocks),
 * then "Total (incl. mmap):" with every mapping and every live block, the
 * most mappings held at once ("max mmap regions") and peak_mapped. */
void mapalloc_stats_print(int fd, int format);

/* ---- Explicit arenas ----
 *
 * An arena owns its own regions and large mappings, so it can be reset or
 * destroyed in time proportional to its mappings, not to its blocks.
 *
 * Thread safety: malloc, calloc, realloc, aligned_alloc and free on one
 * arena may be called from any number of threads at once; each thread
 * allocates from a heap of its own inside the arena, without a lock, and a
 * block may be freed from any thread, with mapalloc_arena_free or with
 * mapalloc_free (in a preloaded process, with free): a block knows its
 * arena. mapalloc_arena_stats may run at any time (a snapshot).
 * mapalloc_arena_reset and mapalloc_arena_destroy must not run while another
 * thread is inside a call on the same arena; other arenas and the ordinary
 * malloc are not affected. After reset or destroy every block of the arena
 * is gone: freeing one aborts.
 *
 * Misuse that is caught: using an arena after destroy, destroying it twice,
 * freeing (or reallocating) with mapalloc_arena_free a block of another
 * arena or of the ordinary heap. Each aborts with one line on stderr. */
typedef struct mapalloc_arena mapalloc_arena;

enum {
    MAPALLOC_ARENA_HUGE = 1u << 0,      /* MAP_HUGETLB, falling back to ordinary pages */
    MAPALLOC_ARENA_NORESERVE = 1u << 1, /* MAP_NORESERVE */
    MAPALLOC_ARENA_DEVZERO = 1u << 2,   /* map /dev/zero instead of MAP_ANONYMOUS */
    MAPALLOC_ARENA_RESET_RETURNS = 1u << 3, /* reset gives memory back to the kernel (beyond
                                             * the reservation); without it, reset keeps
                                             * the arena's pages for reuse (see
                                             * mapalloc_arena_reset) */
};

struct mapalloc_arena_options {
    unsigned flags;  /* MAPALLOC_ARENA_* */
    size_t limit;    /* 0: none. Else the most bytes the arena may commit (see
                      * mapalloc_arena_stats): pages in use (64 KiB units) and large
                      * blocks; a request past it fails with ENOMEM and leaves the
                      * arena as it was. */
    size_t reserve;  /* bytes of regions mapped at creation and kept until destroy */
};

/* NULL options: the defaults (no flags, no limit, no reservation). Returns
 * NULL with errno ENOMEM when the kernel refuses memory, EINVAL for unknown
 * flags or a reservation above the limit. */
mapalloc_arena *mapalloc_arena_create(const struct mapalloc_arena_options *options);
/* Unmaps every mapping of the arena. */
void mapalloc_arena_destroy(mapalloc_arena *arena);
/* Frees every block of the arena at once; the arena stays usable. Without
 * MAPALLOC_ARENA_RESET_RETURNS, each thread's pages stay in place, emptied,
 * ready for its next allocations; they count as committed again as they
 * are used. A page unused from one reset to the next goes back to the
 * arena for any thread, and so does an unused kept page when the arena
 * would otherwise map more. */
void mapalloc_arena_reset(mapalloc_arena *arena);

void *mapalloc_arena_malloc(mapalloc_arena *arena, size_t size) MAPALLOC_MALLOC_ATTR;
void *mapalloc_arena_calloc(mapalloc_arena *arena, size_t count, size_t size) MAPALLOC_MALLOC_ATTR;
/* ptr must be NULL or a block of this arena; the new block is in the arena. */
void *mapalloc_arena_realloc(mapalloc_arena *arena, void *ptr, size_t size);
void *mapalloc_arena_aligned_alloc(mapalloc_arena *arena, size_t alignment, size_t size) MAPALLOC_MALLOC_ATTR;
void mapalloc_arena_free(mapalloc_arena *arena, void *ptr);

struct mapalloc_arena_stats {
    size_t live;       /* bytes in live blocks (block sizes) */
    size_t blocks;     /* live blocks */
    size_t committed;  /* bytes of the pages in use since creation or the last reset, and
                        * of large blocks: what the limit counts (0 after a reset) */
    size_t mapped;     /* bytes mapped by the arena (regions and large blocks) */
    size_t peak;       /* the highest committed since creation or the last reset */
};
void mapalloc_arena_stats(mapalloc_arena *arena, struct mapalloc_arena_stats *out);

/* The heap profile (MAPALLOC_OPTIONS=prof=1): writes the sampled live heap,
 * estimated to whole bytes, to path (NULL: the next of the numbered names
 * that prof_signal uses) in the heap-profile text that google-pprof reads.
 * Returns 0, or -1 with errno (ENOENT when the profiler is off). It
 * allocates nothing and takes no lock: it may run in a signal handler. */
int mapalloc_prof_dump(const char *path);

/* Options. Read once from MAPALLOC_OPTIONS ("name=value,name=value") at the
 * first allocation; mapalloc_option_set changes one before that (returns 0 on
 * success, -1 with errno EINVAL for an unknown name or a bad value, EBUSY once
 * the allocator is running for options that cannot change then). */
int mapalloc_option_set(const char *name, long value);
long mapalloc_option_get(const char *name);

#ifdef __cplusplus
}
#endif
#endif
