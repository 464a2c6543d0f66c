/* Statistics: summed over every region and the large table when asked, so
 * the fast paths count nothing beyond what they need anyway (page->used). */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "mapalloc.h"

struct page_sums {
    size_t live, blocks, regions_bytes;
};

/* Reads page->used of pages owned by other threads: a snapshot, not a
 * synchronised count. */
static void sum_region(ma_region *r, void *arg)
{
    struct page_sums *s = arg;
    s->regions_bytes += MA_REGION_SIZE;
    for (unsigned i = 1; i < MA_REGION_SLICES; i++) {
        const ma_page *page = &r->pages[i];
        if (page->slices != 0 && page->first_slice == i) {
            size_t used = __atomic_load_n(&page->used, __ATOMIC_RELAXED);
            s->live += used * page->block_size;
            s->blocks += used;
        }
    }
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
    struct page_sums s = {0, 0, 0};
    ma_regions_foreach(sum_region, &s);
    size_t large_mapped, large_blocks, large_live;
    ma_large_stats(&large_mapped, &large_blocks, &large_live);
    struct ma_os_counters os;
    ma_os_counters(&os);
    size_t regions, abandoned;
    ma_region_counts(&regions, &abandoned);
    out->live = s.live + large_live;
    out->live_blocks = s.blocks + large_blocks;
    out->large_blocks = large_blocks;
    out->small_mapped = s.regions_bytes;
    out->large_mapped = large_mapped;
    out->mapped = os.mapped;
    out->peak_mapped = os.peak_mapped;
    out->resident = resident_bytes();
    out->mmap_calls = os.mmap_calls;
    out->munmap_calls = os.munmap_calls;
    out->mremap_calls = os.mremap_calls;
    out->madvise_calls = os.madvise_calls;
    out->huge_fallbacks = os.huge_fallbacks;
    out->regions = regions;
    out->abandoned_regions = abandoned;
}

/* A line "name value" or a JSON member, without stdio. */
static void put(int fd, int json, bool first, const char *name, uint64_t value)
{
    char buf[96];
    size_t n = 0, l = strlen(name);
    if (json) {
        if (!first)
            buf[n++] = ',';
        buf[n++] = '"';
        memcpy(buf + n, name, l), n += l;
        buf[n++] = '"', buf[n++] = ':';
    } else {
        memcpy(buf + n, "mapalloc: ", 10), n += 10;
        memcpy(buf + n, name, l), n += l;
        while (n < 32)
            buf[n++] = ' ';
    }
    n += ma_format_u64(buf + n, value);
    if (!json)
        buf[n++] = '\n';
    buf[n] = 0;
    ma_write_str(fd, buf);
}

MA_API void mapalloc_stats_print(int fd, int json)
{
    struct mapalloc_stats st;
    mapalloc_stats_get(&st);
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
        {"abandoned_regions", st.abandoned_regions},
        {"mmap_calls", st.mmap_calls},
        {"munmap_calls", st.munmap_calls},
        {"mremap_calls", st.mremap_calls},
        {"madvise_calls", st.madvise_calls},
        {"huge_fallbacks", st.huge_fallbacks},
    };
    if (json)
        ma_write_str(fd, "{");
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        put(fd, json, i == 0, rows[i].name, rows[i].value);
    if (json)
        ma_write_str(fd, "}\n");
}

void ma_stats_at_exit(void)
{
    mapalloc_stats_print(ma_stats_fd >= 0 ? ma_stats_fd : 2, ma_option(MA_OPT_STATS) == 2);
}
