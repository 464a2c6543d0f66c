/* Statistics: summed over every arena's pages and the large table when
 * asked, through each layer's accounts, so the fast paths count nothing
 * beyond what they need anyway (page->used). */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "heap.h"
#include "mapalloc.h"

/* Sums of every arena's pages, from one walk. */
struct page_sums {
    size_t live, blocks, regions, abandoned_pages;
};

static void sum_arena(ma_arena *a, void *arg)
{
    struct page_sums *s = arg;
    struct ma_arena_account acc;
    ma_arena_account(a, &acc);
    s->regions += acc.regions;
    s->abandoned_pages += acc.abandoned_pages;
}

/* Reads page->used of pages owned by other threads: a snapshot, not a
 * synchronised count. */
static void sum_page(ma_page *page, void *arg)
{
    struct page_sums *s = arg;
    size_t used = ma_page_used(page); /* another thread's: a snapshot */
    s->live += used * page->block_size;
    s->blocks += used;
}

static void sum_pages_of(ma_arena *a, void *arg)
{
    ma_arena_foreach_page(a, sum_page, arg);
}

static size_t resident_bytes(void)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    const char *s = strchr(buf, ' ');
    size_t pages = 0;
    for (s = s ? s + 1 : buf; *s >= '0' && *s <= '9'; s++)
        pages = pages * 10 + (size_t)(*s - '0');
    return pages * (size_t)sysconf(_SC_PAGESIZE);
}

MA_API void mapalloc_stats_get(struct mapalloc_stats *out)
{
    memset(out, 0, sizeof *out);
    struct page_sums s = {0, 0, 0, 0};
    ma_arenas_foreach(sum_pages_of, &s);
    ma_arenas_foreach(sum_arena, &s);
    size_t large_mapped, large_blocks, large_live;
    ma_large_stats(&large_mapped, &large_blocks, &large_live);
    struct ma_os_counters os;
    ma_os_counters(&os);
    size_t pending_blocks, pending_bytes;
    ma_heaps_pending(&pending_blocks, &pending_bytes);
    out->live = (s.live > pending_bytes ? s.live - pending_bytes : 0) + large_live;
    out->live_blocks = (s.blocks > pending_blocks ? s.blocks - pending_blocks : 0) + large_blocks;
    out->large_blocks = large_blocks;
    out->small_mapped = s.regions * MA_REGION_SIZE;
    out->large_mapped = large_mapped;
    /* The parts are read one after another while other threads map and
     * unmap: keep the snapshot consistent (the whole at least its parts,
     * the peak at least the present). */
    size_t parts = out->small_mapped + out->large_mapped;
    out->mapped = os.mapped > parts ? os.mapped : parts;
    out->peak_mapped = os.peak_mapped > out->mapped ? os.peak_mapped : out->mapped;
    out->resident = resident_bytes();
    out->mmap_calls = os.mmap_calls;
    out->munmap_calls = os.munmap_calls;
    out->mremap_calls = os.mremap_calls;
    out->madvise_calls = os.madvise_calls;
    out->mprotect_calls = os.mprotect_calls;
    out->huge_fallbacks = os.huge_fallbacks;
    out->regions = s.regions;
    out->abandoned_pages = s.abandoned_pages;
    out->prof_mapped = ma_prof_mapped();
}

/* ---- printing, without stdio (it may allocate) ---- */

struct out {
    int fd;
    bool json;
    size_t n;
    char buf[1024];
};

static void out_flush(struct out *o)
{
    o->buf[o->n] = 0;
    ma_write_str(o->fd, o->buf);
    o->n = 0;
}

static void out_str(struct out *o, const char *s)
{
    for (; *s; s++) {
        if (o->n + 1 >= sizeof o->buf)
            out_flush(o);
        o->buf[o->n++] = *s;
    }
}

static void out_u64(struct out *o, uint64_t v)
{
    char num[24];
    ma_format_u64(num, v);
    out_str(o, num);
}

static void out_hex(struct out *o, uint64_t v)
{
    char num[24];
    ma_format_hex(num, v);
    out_str(o, num);
}

/* A text column of at least width characters, right-aligned. */
static void out_col(struct out *o, uint64_t v, size_t width)
{
    char num[24];
    size_t len = ma_format_u64(num, v);
    while (len++ < width)
        out_str(o, " ");
    out_str(o, num);
}

/* "name": value (JSON) or "name value" on a line of its own (text). */
static void out_field(struct out *o, bool first, const char *name, uint64_t value)
{
    if (o->json) {
        out_str(o, first ? "\"" : ",\"");
        out_str(o, name);
        out_str(o, "\":");
        out_u64(o, value);
    } else {
        out_str(o, "mapalloc: ");
        out_str(o, name);
        for (size_t l = strlen(name); l < 22; l++)
            out_str(o, " ");
        out_u64(o, value);
        out_str(o, "\n");
    }
}

/* ---- per class and per heap, from one walk over every region ---- */

#define HEAP_ROWS 64
struct walk {
    struct {
        uint64_t pages, blocks, capacity, bytes;
    } cls[MA_CLASS_COUNT];
    struct {
        const void *heap; /* NULL: abandoned (no owner) */
        uint64_t pages, blocks, live;
    } heaps[HEAP_ROWS];
    unsigned heap_rows;
};

static void walk_page(ma_page *page, void *arg)
{
    struct walk *w = arg;
    uint64_t used = ma_page_used(page);
    unsigned c = page->class_idx;
    w->cls[c].pages++;
    w->cls[c].blocks += used;
    w->cls[c].capacity += page->reserved;
    w->cls[c].bytes += (uint64_t)page->slices << MA_SLICE_SHIFT;
    const void *heap = atomic_load_explicit(&page->heap, memory_order_relaxed);
    unsigned k = 0;
    while (k < w->heap_rows && w->heaps[k].heap != heap)
        k++;
    if (k == w->heap_rows) {
        if (w->heap_rows == HEAP_ROWS)
            return; /* more heaps than rows: the rest are left out */
        w->heap_rows++;
        w->heaps[k].heap = heap;
    }
    w->heaps[k].pages++;
    w->heaps[k].blocks += used;
    w->heaps[k].live += used * page->block_size;
}

static void walk_arena(ma_arena *a, void *arg)
{
    ma_arena_foreach_page(a, walk_page, arg);
}

static void print_classes(struct out *o, const struct walk *w)
{
    out_str(o, o->json ? ",\"classes\":[" : "mapalloc: class     size    pages   blocks capacity      waste\n");
    bool first = true;
    for (unsigned c = 0; c < MA_CLASS_COUNT; c++) {
        if (w->cls[c].pages == 0)
            continue;
        uint64_t size = ma_class_size(c);
        uint64_t waste = w->cls[c].bytes - w->cls[c].blocks * size; /* free and unusable bytes */
        if (o->json) {
            out_str(o, first ? "{" : ",{");
            out_field(o, true, "class", c);
            out_field(o, false, "size", size);
            out_field(o, false, "pages", w->cls[c].pages);
            out_field(o, false, "blocks", w->cls[c].blocks);
            out_field(o, false, "capacity", w->cls[c].capacity);
            out_field(o, false, "waste", waste);
            out_str(o, "}");
        } else {
            out_str(o, "mapalloc: ");
            out_col(o, c, 5);
            out_col(o, size, 9);
            out_col(o, w->cls[c].pages, 9);
            out_col(o, w->cls[c].blocks, 9);
            out_col(o, w->cls[c].capacity, 9);
            out_col(o, waste, 11);
            out_str(o, "\n");
        }
        first = false;
    }
    if (o->json)
        out_str(o, "]");
}

static void print_heaps(struct out *o, const struct walk *w)
{
    out_str(o, o->json ? ",\"heaps\":[" : "mapalloc: heap                 pages   blocks       live\n");
    for (unsigned k = 0; k < w->heap_rows; k++) {
        if (o->json) {
            out_str(o, k ? ",{\"heap\":\"" : "{\"heap\":\"");
            if (w->heaps[k].heap)
                out_hex(o, (uintptr_t)w->heaps[k].heap);
            else
                out_str(o, "abandoned");
            out_str(o, "\"");
            out_field(o, false, "pages", w->heaps[k].pages);
            out_field(o, false, "blocks", w->heaps[k].blocks);
            out_field(o, false, "live", w->heaps[k].live);
            out_str(o, "}");
        } else {
            out_str(o, "mapalloc: ");
            char name[24] = "abandoned";
            if (w->heaps[k].heap)
                ma_format_hex(name, (uintptr_t)w->heaps[k].heap);
            out_str(o, name);
            for (size_t l = strlen(name); l < 18; l++)
                out_str(o, " ");
            out_col(o, w->heaps[k].pages, 9);
            out_col(o, w->heaps[k].blocks, 9);
            out_col(o, w->heaps[k].live, 11);
            out_str(o, "\n");
        }
    }
    if (o->json)
        out_str(o, "]");
}

struct arena_rows {
    struct out *o;
    unsigned count;
};

static void print_arena(ma_arena *a, void *arg)
{
    struct arena_rows *rows = arg;
    struct out *o = rows->o;
    if (a == &ma_default_arena)
        return;
    struct mapalloc_arena_stats stats, *st = &stats;
    mapalloc_arena_stats((mapalloc_arena *)a, st);
    const void *arena = a;
    if (o->json) {
        out_str(o, rows->count ? ",{\"arena\":\"" : "{\"arena\":\"");
        out_hex(o, (uintptr_t)arena);
        out_str(o, "\"");
        out_field(o, false, "live", st->live);
        out_field(o, false, "blocks", st->blocks);
        out_field(o, false, "committed", st->committed);
        out_field(o, false, "mapped", st->mapped);
        out_field(o, false, "peak", st->peak);
        out_str(o, "}");
    } else {
        out_str(o, "mapalloc: arena ");
        out_hex(o, (uintptr_t)arena);
        out_str(o, " live ");
        out_u64(o, st->live);
        out_str(o, " blocks ");
        out_u64(o, st->blocks);
        out_str(o, " committed ");
        out_u64(o, st->committed);
        out_str(o, " mapped ");
        out_u64(o, st->mapped);
        out_str(o, " peak ");
        out_u64(o, st->peak);
        out_str(o, "\n");
    }
    rows->count++;
}

MA_API void mapalloc_stats_print(int fd, int json)
{
    struct mapalloc_stats st;
    mapalloc_stats_get(&st);
    /* About 4 KiB, on the stack: printing maps nothing and takes no lock
     * of its own (a fork could leave one held). */
    struct walk walk, *w = &walk;
    memset(w, 0, sizeof *w);
    ma_arenas_foreach(walk_arena, w);
    struct out o = {.fd = fd, .json = json != 0, .n = 0};
    const struct {
        const char *name;
        uint64_t value;
    } rows[] = {
        {"live", st.live},
        {"live_blocks", st.live_blocks},
        {"large_blocks", st.large_blocks},
        {"small_mapped", st.small_mapped},
        {"large_mapped", st.large_mapped},
        {"mapped", st.mapped},
        {"peak_mapped", st.peak_mapped},
        {"resident", st.resident},
        {"regions", st.regions},
        {"abandoned_pages", st.abandoned_pages},
        {"mmap_calls", st.mmap_calls},
        {"munmap_calls", st.munmap_calls},
        {"mremap_calls", st.mremap_calls},
        {"madvise_calls", st.madvise_calls},
        {"mprotect_calls", st.mprotect_calls},
        {"huge_fallbacks", st.huge_fallbacks},
        {"prof_mapped", st.prof_mapped},
    };
    if (o.json)
        out_str(&o, "{");
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        out_field(&o, i == 0, rows[i].name, rows[i].value);
    print_classes(&o, w);
    print_heaps(&o, w);
    struct arena_rows arenas = {&o, 0};
    out_str(&o, o.json ? ",\"arenas\":[" : "");
    ma_arenas_foreach(print_arena, &arenas);
    out_str(&o, o.json ? "]}\n" : "");
    out_flush(&o);
}

/* stats=1 or 2 at exit. The handler checks the option then: code may
 * still change it. */
static void stats_at_exit(void)
{
    if (atomic_load(&ma_init_state) == 2 && ma_option(MA_OPT_STATS))
        mapalloc_stats_print(ma_report_fd, ma_option(MA_OPT_STATS) == 2);
}

__attribute__((constructor)) static void stats_start(void)
{
    atexit(stats_at_exit);
}
