/* Statistics: summed over every arena's pages and the large table when
 * asked, through each layer's accounts, so the fast paths count nothing
 * beyond what they need anyway (page->used). */
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "heap.h"
#include "mapalloc.h"

/* Sums of every arena's pages, from one walk. */
struct page_sums {
    size_t live, blocks, regions, abandoned_pages, lazy;
};

static void sum_arena(ma_arena *a, void *arg)
{
    struct page_sums *s = arg;
    struct ma_arena_account acc;
    ma_arena_account(a, &acc);
    s->regions += acc.regions;
    s->abandoned_pages += acc.abandoned_pages;
    s->lazy += acc.lazy;
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

/* A small file of /proc into buf (NUL-terminated); its length, 0 if
 * unreadable. */
static size_t proc_read(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    size_t len = 0;
    ssize_t n;
    while (len + 1 < size && (n = read(fd, buf + len, size - 1 - len)) > 0)
        len += (size_t)n;
    close(fd);
    buf[len] = 0;
    return len;
}

static size_t parse_u64(const char *s)
{
    size_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++)
        v = v * 10 + (size_t)(*s - '0');
    return v;
}

/* The second figure of /proc/self/statm: resident pages. */
static size_t resident_bytes(void)
{
    char buf[128];
    if (proc_read("/proc/self/statm", buf, sizeof buf) == 0)
        return 0;
    const char *s = strchr(buf, ' ');
    return parse_u64(s ? s + 1 : buf) * (size_t)sysconf(_SC_PAGESIZE);
}

/* "VmHWM:  1234 kB" of /proc/self/status: the peak resident size. */
static size_t peak_resident_bytes(void)
{
    char buf[4096];
    proc_read("/proc/self/status", buf, sizeof buf);
    const char *s = strstr(buf, "\nVmHWM:");
    if (s == NULL)
        return 0;
    for (s += 7; *s == ' ' || *s == '\t'; s++) {
    }
    return parse_u64(s) << 10;
}

MA_API void mapalloc_stats_get(struct mapalloc_stats *out)
{
    memset(out, 0, sizeof *out);
    struct page_sums s = {0, 0, 0, 0, 0};
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
    out->lazy_free = s.lazy;
    out->purged = os.purged;
    out->peak_resident = peak_resident_bytes();
    if (out->peak_resident < out->resident) /* read one after the other */
        out->peak_resident = out->resident;
    out->mappings = os.mappings;
    out->peak_mappings = os.peak_mappings;
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

static void out_spaces(struct out *o, size_t n)
{
    while (n--)
        out_str(o, " ");
}

/* s left-aligned in a column of width characters (at least). */
static void out_left(struct out *o, const char *s, size_t width)
{
    out_str(o, s);
    size_t len = strlen(s);
    out_spaces(o, width > len ? width - len : 0);
}

/* s right-aligned in a column of width characters (at least). */
static void out_right(struct out *o, const char *s, size_t width)
{
    size_t len = strlen(s);
    out_spaces(o, width > len ? width - len : 0);
    out_str(o, s);
}

/* A decimal count, right-aligned; width 0 for none. */
static void out_u64(struct out *o, uint64_t v, size_t width)
{
    char num[24];
    ma_format_u64(num, v);
    out_right(o, num, width);
}

/* A size in binary units ("12.4 MiB"), right-aligned; width 0 for none. */
static void out_size(struct out *o, uint64_t bytes, size_t width)
{
    char text[MA_SIZE_TEXT];
    ma_format_size(text, bytes);
    out_right(o, text, width);
}

static void out_hex(struct out *o, uint64_t v)
{
    char num[24];
    ma_format_hex(num, v);
    out_str(o, num);
}

/* JSON: ,"name":value (no comma before the first field of an object). */
static void json_field(struct out *o, bool first, const char *name, uint64_t value)
{
    out_str(o, first ? "\"" : ",\"");
    out_str(o, name);
    out_str(o, "\":");
    out_u64(o, value, 0);
}

/* A text table's columns: the first is a name, left-aligned, in the heap
 * and arena tables; every other one is right-aligned under its label. */
struct column {
    const char *label;
    size_t width;
};
#define COLUMNS(c) (sizeof c / sizeof c[0])

static void out_header(struct out *o, const struct column *cols, size_t n, bool name_first)
{
    out_str(o, "mapalloc: ");
    for (size_t i = 0; i < n; i++) {
        if (i == 0 && name_first)
            out_left(o, cols[i].label, cols[i].width);
        else
            out_right(o, cols[i].label, cols[i].width);
    }
    out_str(o, "\n");
}

static const struct column class_cols[] = {{"class", 5},     {"size (B)", 10}, {"pages", 9},
                                           {"blocks", 9},    {"capacity", 9},  {"memory", 11},
                                           {"live", 11},     {"waste", 11}};
static const struct column heap_cols[] = {{"heap", 18}, {"pages", 9}, {"blocks", 9}, {"live", 11}};
static const struct column arena_cols[] = {{"arena", 18},    {"blocks", 9}, {"live", 11},
                                           {"committed", 11}, {"mapped", 11}, {"peak", 11}};

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

/* Only the classes that hold pages: a class never used has none. */
static void print_classes(struct out *o, const struct walk *w)
{
    if (o->json)
        out_str(o, ",\"classes\":[");
    else
        out_header(o, class_cols, COLUMNS(class_cols), false);
    bool first = true;
    for (unsigned c = 0; c < MA_CLASS_COUNT; c++) {
        if (w->cls[c].pages == 0)
            continue;
        uint64_t size = ma_class_size(c);
        uint64_t live = w->cls[c].blocks * size;
        uint64_t waste = w->cls[c].bytes - live; /* free and unusable bytes */
        if (o->json) {
            out_str(o, first ? "{" : ",{");
            json_field(o, true, "class", c);
            json_field(o, false, "size", size);
            json_field(o, false, "pages", w->cls[c].pages);
            json_field(o, false, "blocks", w->cls[c].blocks);
            json_field(o, false, "capacity", w->cls[c].capacity);
            json_field(o, false, "memory", w->cls[c].bytes);
            json_field(o, false, "live", live);
            json_field(o, false, "waste", waste);
            out_str(o, "}");
        } else {
            const struct column *col = class_cols;
            out_str(o, "mapalloc: ");
            out_u64(o, c, col++->width);
            out_u64(o, size, col++->width);
            out_u64(o, w->cls[c].pages, col++->width);
            out_u64(o, w->cls[c].blocks, col++->width);
            out_u64(o, w->cls[c].capacity, col++->width);
            out_size(o, w->cls[c].bytes, col++->width);
            out_size(o, live, col++->width);
            out_size(o, waste, col->width);
            out_str(o, "\n");
        }
        first = false;
    }
    if (o->json)
        out_str(o, "]");
}

static void print_heaps(struct out *o, const struct walk *w)
{
    if (o->json)
        out_str(o, ",\"heaps\":[");
    else
        out_header(o, heap_cols, COLUMNS(heap_cols), true);
    for (unsigned k = 0; k < w->heap_rows; k++) {
        char name[24] = "abandoned";
        if (w->heaps[k].heap)
            ma_format_hex(name, (uintptr_t)w->heaps[k].heap);
        if (o->json) {
            out_str(o, k ? ",{\"heap\":\"" : "{\"heap\":\"");
            out_str(o, name);
            out_str(o, "\"");
            json_field(o, false, "pages", w->heaps[k].pages);
            json_field(o, false, "blocks", w->heaps[k].blocks);
            json_field(o, false, "live", w->heaps[k].live);
            out_str(o, "}");
        } else {
            const struct column *col = heap_cols;
            out_str(o, "mapalloc: ");
            out_left(o, name, col++->width);
            out_u64(o, w->heaps[k].pages, col++->width);
            out_u64(o, w->heaps[k].blocks, col++->width);
            out_size(o, w->heaps[k].live, col->width);
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
    struct mapalloc_arena_stats st;
    mapalloc_arena_stats((mapalloc_arena *)a, &st);
    const struct {
        const char *name;
        uint64_t value;
    } fields[] = {{"live", st.live},           {"blocks", st.blocks}, {"committed", st.committed},
                  {"mapped", st.mapped},       {"peak", st.peak}};
    if (o->json) {
        out_str(o, rows->count ? ",{\"arena\":\"" : "{\"arena\":\"");
        out_hex(o, (uintptr_t)a);
        out_str(o, "\"");
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
            json_field(o, false, fields[i].name, fields[i].value);
        out_str(o, "}");
    } else {
        if (rows->count == 0)
            out_header(o, arena_cols, COLUMNS(arena_cols), true);
        char name[24];
        ma_format_hex(name, (uintptr_t)a);
        const struct column *col = arena_cols;
        out_str(o, "mapalloc: ");
        out_left(o, name, col++->width);
        out_u64(o, st.blocks, col++->width);
        out_size(o, st.live, col++->width);
        out_size(o, st.committed, col++->width);
        out_size(o, st.mapped, col++->width);
        out_size(o, st.peak, col->width);
        out_str(o, "\n");
    }
    rows->count++;
}

/* ---- the summary ---- */

static void json_summary(struct out *o, const struct mapalloc_stats *st)
{
    const struct {
        const char *name;
        uint64_t value;
    } rows[] = {
        {"live", st->live},
        {"live_blocks", st->live_blocks},
        {"large_blocks", st->large_blocks},
        {"small_mapped", st->small_mapped},
        {"large_mapped", st->large_mapped},
        {"mapped", st->mapped},
        {"peak_mapped", st->peak_mapped},
        {"resident", st->resident},
        {"regions", st->regions},
        {"abandoned_pages", st->abandoned_pages},
        {"mmap_calls", st->mmap_calls},
        {"munmap_calls", st->munmap_calls},
        {"mremap_calls", st->mremap_calls},
        {"madvise_calls", st->madvise_calls},
        {"mprotect_calls", st->mprotect_calls},
        {"huge_fallbacks", st->huge_fallbacks},
        {"lazy_free", st->lazy_free},
        {"purged", st->purged},
        {"peak_resident", st->peak_resident},
        {"mappings", st->mappings},
        {"peak_mappings", st->peak_mappings},
        {"prof_mapped", st->prof_mapped},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        json_field(o, i == 0, rows[i].name, rows[i].value);
}

/* A line from a format, without stdio: %s a string, %u a count, %z a size
 * in binary units, %Z one right-aligned in the summary's column, %L a
 * label left-aligned before it, %n a count and a noun ("3 regions", "1
 * region"). Counts and sizes are passed as uint64_t. */
_Static_assert(sizeof(size_t) == sizeof(uint64_t), "sizes are passed as uint64_t");
static void out_fmt(struct out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char one[2] = {0, 0};
    for (const char *f = fmt; *f; f++) {
        if (*f != '%' || f[1] == 0) {
            one[0] = *f;
            out_str(o, one);
            continue;
        }
        switch (*++f) {
        case 's':
            out_str(o, va_arg(ap, const char *));
            break;
        case 'L':
            out_left(o, va_arg(ap, const char *), 10);
            break;
        case 'u':
            out_u64(o, va_arg(ap, uint64_t), 0);
            break;
        case 'z':
            out_size(o, va_arg(ap, uint64_t), 0);
            break;
        case 'Z':
            out_size(o, va_arg(ap, uint64_t), 10);
            break;
        case 'n': {
            uint64_t n = va_arg(ap, uint64_t);
            out_u64(o, n, 0);
            out_str(o, " ");
            out_str(o, va_arg(ap, const char *));
            out_str(o, n == 1 ? "" : "s");
            break;
        }
        }
    }
    va_end(ap);
}

static void text_summary(struct out *o, const struct mapalloc_stats *st)
{
    size_t parts = st->small_mapped + st->large_mapped;
    out_fmt(o, "mapalloc: %L%Z in %n, %u of them large\n", "live", st->live, st->live_blocks, "block",
            st->large_blocks);
    out_fmt(o, "mapalloc: %L%Z: %z in %n, %z for large blocks, %z of metadata; %n\n", "mapped",
            st->mapped, st->small_mapped, st->regions, "region", st->large_mapped,
            st->mapped > parts ? st->mapped - parts : 0, st->mappings, "mapping");
    out_fmt(o, "mapalloc: %L%Z, the whole process\n", "resident", st->resident);
    out_fmt(o, "mapalloc: %L%Z mapped, %z resident, %n\n", "peak", st->peak_mapped,
            st->peak_resident, st->peak_mappings, "mapping");
    out_fmt(o, "mapalloc: %L%Z given back with madvise, in total\n", "purged", st->purged);
    out_fmt(o, "mapalloc: %L%Z purged with MADV_FREE, counted in resident until the kernel takes it back\n",
            "lazy free", st->lazy_free);
    out_fmt(o, "mapalloc: %Lmmap %u, munmap %u, mremap %u, madvise %u, mprotect %u", "calls",
            st->mmap_calls, st->munmap_calls, st->mremap_calls, st->madvise_calls, st->mprotect_calls);
    if (st->huge_fallbacks)
        out_fmt(o, "; MAP_HUGETLB refused %u", st->huge_fallbacks);
    out_str(o, "\n");
    if (st->prof_mapped)
        out_fmt(o, "mapalloc: %L%Z for the heap profiler's own tables\n", "profiler", st->prof_mapped);
}

/* ---- glibc's layout ---- */

/* "system bytes     = %10u", as glibc prints it (wider past 10 digits). */
static void glibc_line(struct out *o, const char *name, uint64_t value)
{
    out_left(o, name, 17);
    out_str(o, "= ");
    out_u64(o, value, 10);
    out_str(o, "\n");
}

struct glibc_arenas {
    struct out *o;
    size_t small_live;    /* small and medium live bytes, every arena's */
    size_t explicit_live; /* the explicit arenas' */
    unsigned index;
};

static void sum_explicit_live(ma_arena *a, void *arg)
{
    struct glibc_arenas *g = arg;
    if (a == &ma_default_arena)
        return;
    struct ma_arena_account acc;
    ma_arena_account(a, &acc);
    g->explicit_live += acc.live - acc.large_live;
}

/* Arena 0 is the default arena (what is not in an explicit one), then the
 * explicit ones: their regions and the live bytes of their small and
 * medium blocks, as glibc's arenas leave out its mmapped chunks. */
static void print_glibc_arena(ma_arena *a, void *arg)
{
    struct glibc_arenas *g = arg;
    struct ma_arena_account acc;
    ma_arena_account(a, &acc);
    size_t in_use = acc.live - acc.large_live;
    if (a == &ma_default_arena)
        in_use = g->small_live > g->explicit_live ? g->small_live - g->explicit_live : 0;
    out_str(g->o, "Arena ");
    out_u64(g->o, g->index++, 0);
    out_str(g->o, ":\n");
    glibc_line(g->o, "system bytes", (uint64_t)acc.regions * MA_REGION_SIZE);
    glibc_line(g->o, "in use bytes", in_use);
}

static void print_glibc(struct out *o, const struct mapalloc_stats *st)
{
    size_t large_mapped, large_blocks, large_live;
    ma_large_stats(&large_mapped, &large_blocks, &large_live);
    struct glibc_arenas g = {o, st->live > large_live ? st->live - large_live : 0, 0, 0};
    ma_arenas_foreach(sum_explicit_live, &g);
    ma_arenas_foreach(print_glibc_arena, &g);
    out_str(o, "Total (incl. mmap):\n");
    glibc_line(o, "system bytes", st->mapped);
    glibc_line(o, "in use bytes", st->live);
    glibc_line(o, "max mmap regions", st->peak_mappings);
    glibc_line(o, "max mmap bytes", st->peak_mapped);
}

MA_API void mapalloc_stats_print(int fd, int format)
{
    struct mapalloc_stats st;
    mapalloc_stats_get(&st);
    struct out o = {.fd = fd, .json = format != MAPALLOC_STATS_TEXT, .n = 0};
    if (format == MAPALLOC_STATS_GLIBC) {
        print_glibc(&o, &st);
        out_flush(&o);
        return;
    }
    /* About 4 KiB, on the stack: printing maps nothing and takes no lock
     * of its own (a fork could leave one held). */
    struct walk walk, *w = &walk;
    memset(w, 0, sizeof *w);
    ma_arenas_foreach(walk_arena, w);
    if (o.json) {
        out_str(&o, "{");
        json_summary(&o, &st);
    } else {
        text_summary(&o, &st);
    }
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
        mapalloc_stats_print(ma_report_fd, ma_option(MA_OPT_STATS) == 2 ? MAPALLOC_STATS_JSON
                                                                         : MAPALLOC_STATS_TEXT);
}

__attribute__((constructor)) static void stats_start(void)
{
    atexit(stats_at_exit);
}
