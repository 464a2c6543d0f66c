/* The OS layer: the only code that calls mmap, munmap, mremap, madvise or
 * opens /dev/zero (os.c). Everything above asks it for memory.
 *
 * Contract:
 *  - sizes are multiples of the OS page size (4 KiB on x86-64), alignments are
 *    powers of two; the layer rounds nothing up behind the caller's back;
 *  - every failure returns NULL or false and leaves errno as it was: the
 *    layers above decide whether it becomes ENOMEM;
 *  - no function here allocates, takes an allocator lock or calls malloc.
 */
#ifndef MA_OS_H
#define MA_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How a mapping is made. */
enum {
    MA_MAP_HUGE = 1u << 0,      /* try MAP_HUGETLB, fall back to ordinary pages */
    MA_MAP_NORESERVE = 1u << 1, /* MAP_NORESERVE: no swap reserved */
    MA_MAP_DEVZERO = 1u << 2,   /* a private mapping of /dev/zero, not MAP_ANONYMOUS */
    MA_MAP_THP = 1u << 3,       /* madvise(MADV_HUGEPAGE) on the mapping */
};

/* The flags from the process options (huge, noreserve, devzero, thp). */
unsigned ma_os_default_flags(void);

/* A fresh, zeroed, readable and writable mapping of size bytes whose start is
 * a multiple of alignment (over-map and trim when the first try is not). */
void *ma_os_map(size_t size, size_t alignment, unsigned flags);
bool ma_os_unmap(void *addr, size_t size);

/* Address space alone: a read-only mapping of size bytes that reads as
 * zero and costs neither memory nor commit charge (not even under strict
 * overcommit) until a part of it is made writable with ma_os_unguard;
 * flags may ask for /dev/zero. Not counted as mapped: it holds no memory
 * of the program's. NULL if the kernel refuses (RLIMIT_AS). */
void *ma_os_reserve(size_t size, unsigned flags);
void ma_os_unreserve(void *addr, size_t size);

/* Aligned mappings are first asked for at addresses in [top / 2, top)
 * (2 TiB to 4 TiB unless a lower top is given): a hint, which the kernel
 * may ignore. */
void ma_os_hint_below(uintptr_t top);

/* Grows or shrinks a mapping, in place when the kernel can, else (when
 * move_align is not 0) by moving its page tables: no bytes are copied. A
 * move_align above the page asks for an address that is a multiple of it
 * (a reservation mapped there, and the move onto it), and takes the
 * kernel's choice when that is refused. NULL on failure, with the old
 * mapping intact. */
void *ma_os_remap(void *addr, size_t old_size, size_t new_size, size_t move_align);
/* The move alone, for a caller that has tried in place already (with
 * move_align 0): one call fewer. */
void *ma_os_move(void *addr, size_t old_size, size_t new_size, size_t align);

/* Gives the pages back to the kernel; the range stays mapped and reads as
 * zero after (MADV_DONTNEED) or as zero or old contents until written
 * (MADV_FREE, when the purge option asks for it: the kernel still counts
 * such pages as resident until it needs the memory). Says which it did. */
enum ma_purge {
    MA_PURGE_FAILED, /* the kernel refused both */
    MA_PURGE_NOW,    /* MADV_DONTNEED: out of resident at once */
    MA_PURGE_LAZY,   /* MADV_FREE: lazily freed */
};
enum ma_purge ma_os_purge(void *addr, size_t size);
/* MADV_DONTNEED whatever the purge option: out of resident at once, so
 * that memory no statistic follows is never counted as resident (hollow
 * blocks). */
bool ma_os_purge_now(void *addr, size_t size);

/* madvise(MADV_HUGEPAGE): transparent huge pages where the kernel's mode
 * allows them (a hint; a refusal changes nothing). */
void ma_os_advise_huge(void *addr, size_t size);

/* Guard pages (the secure profile): no access at all, or read-write again
 * (a guard, or part of a reservation). */
bool ma_os_guard(void *addr, size_t size);
bool ma_os_unguard(void *addr, size_t size);

size_t ma_os_page_size(void);

/* Counters for the statistics (relaxed atomics, slow paths only). */
struct ma_os_counters {
    uint64_t mmap_calls, munmap_calls, mremap_calls, madvise_calls, mprotect_calls;
    uint64_t huge_fallbacks, devzero_maps;
    size_t mapped, peak_mapped;
    uint64_t mappings, peak_mappings; /* mappings held now, the most held at once */
    size_t purged;                    /* bytes purged so far, either way */
};
void ma_os_counters(struct ma_os_counters *out);

#endif
