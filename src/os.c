/* The OS layer: every mmap, munmap, mremap, madvise and mprotect of
 * mapalloc, and the only place that opens /dev/zero. The contract is in os.h. */
#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

/* Where MAP_ANONYMOUS is missing (or the build asks us to behave as if it
 * were), every mapping comes from /dev/zero. */
#if defined(MAP_ANONYMOUS) && !defined(MAPALLOC_NO_MAP_ANONYMOUS)
#define MA_HAVE_ANON 1
#else
#define MA_HAVE_ANON 0
#endif

static struct {
    _Atomic uint64_t mmap_calls, munmap_calls, mremap_calls, madvise_calls, mprotect_calls;
    _Atomic uint64_t huge_fallbacks, devzero_maps;
    _Atomic uint64_t mapped, peak_mapped; /* bytes */
    _Atomic uint64_t mappings, peak_mappings;
    _Atomic uint64_t purged; /* bytes */
} counters;

#define COUNT(field) atomic_fetch_add_explicit(&counters.field, 1, memory_order_relaxed)

static _Atomic int devzero_fd = -1;
static _Atomic uint64_t devzero_rdev; /* the device number of /dev/zero */
/* Next address to suggest for an aligned mapping: asking the kernel for an
 * aligned address first saves the over-map and two trims almost always. */
static _Atomic uintptr_t aligned_hint;
/* The top of the window that hints are taken from: [hint_top / 2, hint_top). */
static _Atomic uintptr_t hint_top = (uintptr_t)4 << 40;

size_t ma_os_page_size(void)
{
    return MA_OS_PAGE;
}

unsigned ma_os_default_flags(void)
{
    unsigned flags = 0;
    if (ma_option(MA_OPT_HUGE))
        flags |= MA_MAP_HUGE;
    if (ma_option(MA_OPT_THP))
        flags |= MA_MAP_THP;
    if (ma_option(MA_OPT_NORESERVE))
        flags |= MA_MAP_NORESERVE;
    if (ma_option(MA_OPT_DEVZERO) || !MA_HAVE_ANON)
        flags |= MA_MAP_DEVZERO;
    return flags;
}

/* Adds add to *now and raises *peak to the sum. */
static void add_with_peak(_Atomic uint64_t *now, _Atomic uint64_t *peak, uint64_t add)
{
    uint64_t v = atomic_fetch_add_explicit(now, add, memory_order_relaxed) + add;
    uint64_t p = atomic_load_explicit(peak, memory_order_relaxed);
    while (v > p && !atomic_compare_exchange_weak_explicit(peak, &p, v, memory_order_relaxed,
                                                           memory_order_relaxed)) {
    }
}

static void note_mapped(size_t size)
{
    add_with_peak(&counters.mapped, &counters.peak_mapped, size);
}

static void note_unmapped(size_t size)
{
    atomic_fetch_sub_explicit(&counters.mapped, size, memory_order_relaxed);
}

static bool unmap_raw(void *addr, size_t size)
{
    COUNT(munmap_calls);
    return munmap(addr, size) == 0;
}

/* The descriptor of /dev/zero is kept, but it is the program's number
 * space: a program that closes its descriptors (closefrom, a daemon's loop
 * over 3..1023) and opens a file may be handed the same number. So every
 * mapping through it is checked afterwards: if the number no longer names
 * /dev/zero, the mapping (of whatever it named) is dropped, the number is
 * forgotten without closing it (it is not ours any more), and /dev/zero is
 * opened again. */
static bool is_devzero(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) &&
           (uint64_t)st.st_rdev == atomic_load_explicit(&devzero_rdev, memory_order_relaxed);
}

/* Opens /dev/zero in place of stale (the number we held, or -1). */
static int open_devzero(int stale)
{
    int fd = open("/dev/zero", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISCHR(st.st_mode)) {
        close(fd);
        return -1;
    }
    atomic_store_explicit(&devzero_rdev, (uint64_t)st.st_rdev, memory_order_relaxed);
    int expected = stale;
    if (!atomic_compare_exchange_strong(&devzero_fd, &expected, fd)) {
        close(fd); /* another thread opened it first */
        return expected;
    }
    return fd;
}

/* A private mapping of /dev/zero, or NULL. */
static void *map_devzero(void *hint, size_t size, int prot, int mflags)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        int fd = atomic_load_explicit(&devzero_fd, memory_order_acquire);
        if (fd < 0 || attempt > 0)
            fd = open_devzero(fd);
        if (fd < 0)
            return NULL;
        COUNT(devzero_maps);
        COUNT(mmap_calls);
        void *p = mmap(hint, size, prot, mflags, fd, 0);
        if (is_devzero(fd))
            return p == MAP_FAILED ? NULL : p;
        if (p != MAP_FAILED)
            unmap_raw(p, size);
    }
    return NULL;
}

/* One mmap call (more when a /dev/zero descriptor must be opened again).
 * Returns NULL (not MAP_FAILED) on failure. */
static void *map_prot(void *hint, size_t size, int prot, unsigned flags)
{
    int mflags = MAP_PRIVATE;
    if (flags & MA_MAP_NORESERVE)
        mflags |= MAP_NORESERVE;
#ifdef MAP_HUGETLB
    if (flags & MA_MAP_HUGE)
        mflags |= MAP_HUGETLB;
#endif
    if (flags & MA_MAP_DEVZERO)
        return map_devzero(hint, size, prot, mflags);
#if MA_HAVE_ANON
    mflags |= MAP_ANONYMOUS;
#endif
    COUNT(mmap_calls);
    void *p = mmap(hint, size, prot, mflags, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void *map_at(void *hint, size_t size, unsigned flags)
{
    return map_prot(hint, size, PROT_READ | PROT_WRITE, flags);
}

static uintptr_t next_hint(size_t size, size_t alignment)
{
    uintptr_t top = atomic_load_explicit(&hint_top, memory_order_relaxed);
    uintptr_t start = atomic_load_explicit(&aligned_hint, memory_order_relaxed);
    if (start == 0) {
        /* In the upper half of the window (2 TiB to 4 TiB by default), far
         * from the heap, libraries and stacks, at a per-process random
         * offset within its first half. */
        uintptr_t base = top / 2 + (ma_secret[3] % 4096) * (top / 2 / 8192);
        atomic_compare_exchange_strong(&aligned_hint, &start, base);
        start = atomic_load_explicit(&aligned_hint, memory_order_relaxed);
    }
    size_t step = (size + alignment - 1) & ~(alignment - 1);
    uintptr_t hint = atomic_fetch_add_explicit(&aligned_hint, step, memory_order_relaxed);
    hint = (hint + alignment - 1) & ~(uintptr_t)(alignment - 1);
    if (hint + size > top) {
        atomic_store_explicit(&aligned_hint, 0, memory_order_relaxed);
        return 0;
    }
    return hint;
}

void ma_os_hint_below(uintptr_t top)
{
    if (top < atomic_load_explicit(&hint_top, memory_order_relaxed)) {
        atomic_store_explicit(&hint_top, top, memory_order_relaxed);
        atomic_store_explicit(&aligned_hint, 0, memory_order_relaxed);
    }
}

/* Maps size bytes aligned to alignment with exactly one flag set; NULL if
 * the kernel refuses. */
static void *map_aligned(size_t size, size_t alignment, unsigned flags)
{
    if (alignment <= MA_OS_PAGE)
        return map_at(NULL, size, flags);

    uintptr_t hint = next_hint(size, alignment);
    if (hint != 0) {
        void *p = map_at((void *)hint, size, flags);
        if (p == NULL)
            return NULL;
        if (((uintptr_t)p & (alignment - 1)) == 0)
            return p;
        unmap_raw(p, size);
    }
    /* Over-map by the alignment and trim both ends. */
    size_t over = size + alignment;
    if (over < size)
        return NULL;
    uint8_t *raw = map_at((void *)hint, over, flags);
    if (raw == NULL)
        return NULL;
    uintptr_t aligned = ((uintptr_t)raw + alignment - 1) & ~(uintptr_t)(alignment - 1);
    size_t head = aligned - (uintptr_t)raw;
    size_t tail = over - head - size;
    if (head)
        unmap_raw(raw, head);
    if (tail)
        unmap_raw((uint8_t *)aligned + size, tail);
    return (void *)aligned;
}

static void *map_impl(size_t size, size_t alignment, unsigned flags)
{
    if (size == 0 || (size & (MA_OS_PAGE - 1)) != 0 || (alignment & (alignment - 1)) != 0)
        return NULL;
    void *p = NULL;
    if (!MA_HAVE_ANON)
        flags |= MA_MAP_DEVZERO;
    if (flags & MA_MAP_HUGE) {
        /* The kernel refuses when no huge pages are reserved, or when the
         * size is not a multiple of the huge page size: fall back, counted.
         * The huge try never carries MAP_NORESERVE, and a /dev/zero
         * mapping never gets MAP_HUGETLB: in both cases the kernel accepts
         * the mapping without huge pages to back it, and the first touch
         * raises SIGBUS instead of mmap failing. */
        size_t huge_align = alignment > MA_HUGE_PAGE ? alignment : MA_HUGE_PAGE;
        if ((size & (MA_HUGE_PAGE - 1)) == 0 && !(flags & MA_MAP_DEVZERO))
            p = map_aligned(size, huge_align, flags & ~(unsigned)(MA_MAP_THP | MA_MAP_NORESERVE));
        if (p == NULL)
            COUNT(huge_fallbacks);
        flags &= ~(unsigned)MA_MAP_HUGE;
    }
    if (p == NULL)
        p = map_aligned(size, alignment, flags & ~(unsigned)MA_MAP_THP);
    if (p == NULL)
        return NULL;
    if (flags & MA_MAP_THP)
        ma_os_advise_huge(p, size);
    note_mapped(size);
    add_with_peak(&counters.mappings, &counters.peak_mappings, 1);
    return p;
}

void *ma_os_map(size_t size, size_t alignment, unsigned flags)
{
    int saved = errno;
    void *p = map_impl(size, alignment, flags);
    errno = saved;
    return p;
}

bool ma_os_unmap(void *addr, size_t size)
{
    if (addr == NULL || size == 0)
        return true;
    int saved = errno;
    bool ok = unmap_raw(addr, size);
    if (ok) {
        note_unmapped(size);
        atomic_fetch_sub_explicit(&counters.mappings, 1, memory_order_relaxed);
    }
    errno = saved;
    return ok;
}

void *ma_os_reserve(size_t size, unsigned flags)
{
    int saved = errno;
    void *p = map_prot(NULL, size, PROT_READ, (flags & MA_MAP_DEVZERO) | MA_MAP_NORESERVE);
    errno = saved;
    return p;
}

void ma_os_unreserve(void *addr, size_t size)
{
    int saved = errno;
    unmap_raw(addr, size);
    errno = saved;
}

/* One mremap call; NULL (not MAP_FAILED) on failure. */
static void *remap_call(void *addr, size_t old_size, size_t new_size, int flags, void *dest)
{
    COUNT(mremap_calls);
    void *p = mremap(addr, old_size, new_size, flags, dest);
    return p == MAP_FAILED ? NULL : p;
}

/* A move to an address of our choosing: the kernel's own choice is a
 * multiple of the page only, and a block of huge pages moved off a 2 MiB
 * boundary is split into small pages, and takes small faults where it
 * grows. The destination is reserved by an aligned mapping that the move
 * replaces. NULL (nothing changed) when either call is refused. */
static void *move_aligned(void *addr, size_t old_size, size_t new_size, size_t align)
{
    void *dest = map_aligned(new_size, align, MA_HAVE_ANON ? 0 : MA_MAP_DEVZERO);
    if (dest == NULL)
        return NULL;
    void *p = remap_call(addr, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, dest);
    if (p == NULL)
        unmap_raw(dest, new_size);
    return p;
}

/* A move, wherever the kernel puts it (it tries in place first), or for
 * an alignment above the page onto an aligned reservation. */
static void *move_impl(void *addr, size_t old_size, size_t new_size, size_t align)
{
    void *p = align > MA_OS_PAGE ? move_aligned(addr, old_size, new_size, align) : NULL;
    return p != NULL ? p : remap_call(addr, old_size, new_size, MREMAP_MAYMOVE, NULL);
}

/* In place first, in each case: a mapping that grows in place keeps its
 * alignment (MREMAP_MAYMOVE tries in place itself). */
static void *remap_impl(void *addr, size_t old_size, size_t new_size, size_t move_align)
{
    if (move_align != 0 && move_align <= MA_OS_PAGE)
        return remap_call(addr, old_size, new_size, MREMAP_MAYMOVE, NULL);
    void *p = remap_call(addr, old_size, new_size, 0, NULL);
    if (p != NULL || move_align == 0)
        return p;
    return move_impl(addr, old_size, new_size, move_align);
}

/* The mapped bytes follow a remap that took place. */
static void *remapped(void *p, size_t old_size, size_t new_size)
{
    if (p == NULL)
        return NULL;
    if (new_size > old_size)
        note_mapped(new_size - old_size);
    else
        note_unmapped(old_size - new_size);
    return p;
}

void *ma_os_remap(void *addr, size_t old_size, size_t new_size, size_t move_align)
{
    int saved = errno;
    void *p = remap_impl(addr, old_size, new_size, move_align);
    errno = saved;
    return remapped(p, old_size, new_size);
}

void *ma_os_move(void *addr, size_t old_size, size_t new_size, size_t align)
{
    int saved = errno;
    void *p = move_impl(addr, old_size, new_size, align);
    errno = saved;
    return remapped(p, old_size, new_size);
}

static bool advise(void *addr, size_t size, int advice)
{
    int saved = errno;
    COUNT(madvise_calls);
    bool ok = madvise(addr, size, advice) == 0;
    errno = saved;
    return ok;
}

void ma_os_advise_huge(void *addr, size_t size)
{
#ifdef MADV_HUGEPAGE
    advise(addr, size, MADV_HUGEPAGE);
#else
    (void)addr, (void)size;
#endif
}

bool ma_os_purge_now(void *addr, size_t size)
{
    if (!advise(addr, size, MADV_DONTNEED))
        return false;
    atomic_fetch_add_explicit(&counters.purged, size, memory_order_relaxed);
    return true;
}

enum ma_purge ma_os_purge(void *addr, size_t size)
{
    enum ma_purge how = MA_PURGE_FAILED;
#ifdef MADV_FREE
    if (ma_option(MA_OPT_PURGE_FREE) && advise(addr, size, MADV_FREE))
        how = MA_PURGE_LAZY;
#endif
    if (how == MA_PURGE_FAILED && advise(addr, size, MADV_DONTNEED))
        how = MA_PURGE_NOW;
    if (how != MA_PURGE_FAILED)
        atomic_fetch_add_explicit(&counters.purged, size, memory_order_relaxed);
    return how;
}

static bool protect(void *addr, size_t size, int prot)
{
    int saved = errno;
    COUNT(mprotect_calls);
    bool ok = mprotect(addr, size, prot) == 0;
    errno = saved;
    return ok;
}

bool ma_os_guard(void *addr, size_t size)
{
    return protect(addr, size, PROT_NONE);
}

bool ma_os_unguard(void *addr, size_t size)
{
    return protect(addr, size, PROT_READ | PROT_WRITE);
}

void ma_os_counters(struct ma_os_counters *out)
{
    out->mmap_calls = atomic_load_explicit(&counters.mmap_calls, memory_order_relaxed);
    out->munmap_calls = atomic_load_explicit(&counters.munmap_calls, memory_order_relaxed);
    out->mremap_calls = atomic_load_explicit(&counters.mremap_calls, memory_order_relaxed);
    out->madvise_calls = atomic_load_explicit(&counters.madvise_calls, memory_order_relaxed);
    out->mprotect_calls = atomic_load_explicit(&counters.mprotect_calls, memory_order_relaxed);
    out->huge_fallbacks = atomic_load_explicit(&counters.huge_fallbacks, memory_order_relaxed);
    out->devzero_maps = atomic_load_explicit(&counters.devzero_maps, memory_order_relaxed);
    out->mapped = atomic_load_explicit(&counters.mapped, memory_order_relaxed);
    out->peak_mapped = atomic_load_explicit(&counters.peak_mapped, memory_order_relaxed);
    out->mappings = atomic_load_explicit(&counters.mappings, memory_order_relaxed);
    out->peak_mappings = atomic_load_explicit(&counters.peak_mappings, memory_order_relaxed);
    out->purged = atomic_load_explicit(&counters.purged, memory_order_relaxed);
}
