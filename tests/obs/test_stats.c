/* Statistics: builds a known state (blocks of known classes in the
 * main thread's heap, in a live thread's heap, in an exited thread's regions
 * and in an arena), prints it with mapalloc_stats_print as JSON and as
 * text, and writes what it knows into expected.json beside them. The
 * checker, check_stats.py, parses all three with a real JSON parser and
 * compares.
 *
 * Usage: test_stats snapshot DIR    writes DIR/{expected,stats,stats2}.json
 *                                   and DIR/{stats,stats2}.txt
 *        test_stats exit            allocates, frees some, exits (for stats=N)
 *
 * Snapshot 1 holds only small and medium blocks, so the classes' blocks
 * times their sizes must add up to "live" exactly; snapshot 2 adds large
 * blocks (in the main heap and in the arena).
 */
#include "mapalloc.h"
#include "obs.h"
#include "size_class.h"

#include <pthread.h>

/* Requests and how many of each, per owner. */
struct lot {
    size_t size, count;
};
static const struct lot main_lots[] = {{24, 1000}, {200, 300}, {1000, 100}, {5000, 40},
                                       {100000, 12}, {400000, 3}};
static const struct lot live_thread_lots[] = {{48, 500}, {3000, 20}};
static const struct lot exited_thread_lots[] = {{64, 200}, {20000, 5}};
static const struct lot arena_lots[] = {{3000, 50}, {70000, 10}};
#define NLOTS(a) (sizeof a / sizeof a[0])

static size_t class_blocks[MA_CLASS_COUNT];
static void *blocks[4][2000];
static size_t nblocks[4];

/* Allocates the lots (from the arena when one is given), counts them per
 * class, and returns their bytes in block sizes. */
static size_t allocate_lots(int owner, const struct lot *lots, size_t n, mapalloc_arena *arena)
{
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < lots[i].count; k++) {
            void *p = arena ? mapalloc_arena_malloc(arena, lots[i].size)
                            : mapalloc_malloc(lots[i].size);
            CHECK(p != NULL);
            memset(p, owner + 1, lots[i].size);
            CHECK(nblocks[owner] < sizeof blocks[owner] / sizeof blocks[owner][0]);
            blocks[owner][nblocks[owner]++] = p;
            unsigned c = ma_size_class(lots[i].size);
            class_blocks[c]++;
            bytes += ma_class_size(c);
        }
    return bytes;
}

static size_t live_thread_bytes, exited_thread_bytes;
static int release_pipe[2];

static void *live_thread(void *arg)
{
    pthread_barrier_t *ready = arg;
    live_thread_bytes = allocate_lots(1, live_thread_lots, NLOTS(live_thread_lots), NULL);
    pthread_barrier_wait(ready);
    char c;
    CHECK(read(release_pipe[0], &c, 1) == 1); /* alive until the snapshots are done */
    return NULL;
}

static void *exited_thread(void *arg)
{
    (void)arg;
    exited_thread_bytes = allocate_lots(2, exited_thread_lots, NLOTS(exited_thread_lots), NULL);
    return NULL;
}

static int create_file(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECKF(fd >= 0, "cannot create %s", path);
    return fd;
}

/* The figures of struct mapalloc_stats, as a JSON object. */
static void print_stats_json(FILE *f, const struct mapalloc_stats *s)
{
    fprintf(f,
            "{\"live\":%zu,\"live_blocks\":%zu,\"large_blocks\":%zu,\"small_mapped\":%zu,"
            "\"large_mapped\":%zu,\"mapped\":%zu,\"peak_mapped\":%zu,\"resident\":%zu,"
            "\"regions\":%llu,\"abandoned_pages\":%llu,\"mmap_calls\":%llu,"
            "\"munmap_calls\":%llu,\"mremap_calls\":%llu,\"madvise_calls\":%llu,"
            "\"mprotect_calls\":%llu,\"huge_fallbacks\":%llu,\"lazy_free\":%zu,\"purged\":%zu,"
            "\"peak_resident\":%zu,\"mappings\":%llu,\"peak_mappings\":%llu,\"prof_mapped\":%zu}",
            s->live, s->live_blocks, s->large_blocks, s->small_mapped, s->large_mapped,
            s->mapped, s->peak_mapped, s->resident, (unsigned long long)s->regions,
            (unsigned long long)s->abandoned_pages, (unsigned long long)s->mmap_calls,
            (unsigned long long)s->munmap_calls, (unsigned long long)s->mremap_calls,
            (unsigned long long)s->madvise_calls, (unsigned long long)s->mprotect_calls,
            (unsigned long long)s->huge_fallbacks, s->lazy_free, s->purged, s->peak_resident,
            (unsigned long long)s->mappings, (unsigned long long)s->peak_mappings, s->prof_mapped);
}

static void print_arena_json(FILE *f, mapalloc_arena *a)
{
    struct mapalloc_arena_stats as;
    mapalloc_arena_stats(a, &as);
    fprintf(f, "{\"arena\":\"%p\",\"live\":%zu,\"blocks\":%zu,\"committed\":%zu,\"mapped\":%zu,"
               "\"peak\":%zu}",
            (void *)a, as.live, as.blocks, as.committed, as.mapped, as.peak);
}

/* Prints both forms, and checks that nothing but the figures of /proc
 * moved meanwhile (printing must not allocate). Returns the figures. */
static struct mapalloc_stats snapshot(const char *dir, const char *json_name, const char *text_name)
{
    struct mapalloc_stats s0, s1;
    mapalloc_stats_get(&s0);
    int fd = create_file(dir, json_name);
    mapalloc_stats_print(fd, 1);
    close(fd);
    fd = create_file(dir, text_name);
    mapalloc_stats_print(fd, 0);
    close(fd);
    mapalloc_stats_get(&s1);
    s1.resident = s0.resident;
    s1.peak_resident = s0.peak_resident;
    CHECK(memcmp(&s0, &s1, sizeof s0) == 0);
    return s0;
}

static size_t page_round(size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (n + page - 1) & ~(page - 1);
}

/* A large block's mapping in the default arena: its pages, rounded up to
 * 2 MiB when they are to be huge ones and that adds at most 1 MiB (an
 * explicit arena's are not). */
static size_t default_map_size(size_t size)
{
    size_t map = page_round(size);
    size_t rounded = (map + 2 * MiB - 1) & ~(2 * MiB - 1);
    return map >= 2 * MiB && mapalloc_option_get("large_thp") && rounded - map <= MiB ? rounded : map;
}

static int snapshot_main(const char *dir)
{
    mapalloc_arena *arena = mapalloc_arena_create(NULL);
    CHECK(arena != NULL);
    size_t main_bytes = allocate_lots(0, main_lots, NLOTS(main_lots), NULL);
    size_t arena_bytes = allocate_lots(3, arena_lots, NLOTS(arena_lots), arena);
    CHECK(pipe(release_pipe) == 0);
    pthread_barrier_t ready;
    pthread_barrier_init(&ready, NULL, 2);
    pthread_t live, exited;
    CHECK(pthread_create(&live, NULL, live_thread, &ready) == 0);
    pthread_barrier_wait(&ready);
    /* Last, so that no other heap adopts its regions before the snapshot. */
    CHECK(pthread_create(&exited, NULL, exited_thread, NULL) == 0);
    CHECK(pthread_join(exited, NULL) == 0);

    struct mapalloc_stats s1 = snapshot(dir, "stats.json", "stats.txt");

    /* Large blocks: two of the main heap, one of the arena. */
    const size_t large_sizes[] = {3 * MiB, MA_LARGE_THRESHOLD + 1, 2 * MiB + 100};
    void *large[3];
    size_t large_bytes = 0;
    for (int i = 0; i < 3; i++) {
        large[i] = i < 2 ? mapalloc_malloc(large_sizes[i]) : mapalloc_arena_malloc(arena, large_sizes[i]);
        CHECK(large[i] != NULL);
        memset(large[i], 9, large_sizes[i]);
        large_bytes += i < 2 ? default_map_size(large_sizes[i]) : page_round(large_sizes[i]);
    }
    struct mapalloc_stats s2 = snapshot(dir, "stats2.json", "stats2.txt");

    char path[4096];
    snprintf(path, sizeof path, "%s/expected.json", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fprintf(f, "{\"class_sizes\":[");
    for (unsigned c = 0; c < MA_CLASS_COUNT; c++)
        fprintf(f, "%s%zu", c ? "," : "", ma_class_size(c));
    fprintf(f, "],\"class_blocks\":{");
    bool first = true;
    for (unsigned c = 0; c < MA_CLASS_COUNT; c++)
        if (class_blocks[c]) {
            fprintf(f, "%s\"%u\":%zu", first ? "" : ",", c, class_blocks[c]);
            first = false;
        }
    fprintf(f, "},\"heaps_live\":{\"main\":%zu,\"live_thread\":%zu,\"exited_thread\":%zu,"
               "\"arena\":%zu},",
            main_bytes, live_thread_bytes, exited_thread_bytes, arena_bytes);
    fprintf(f, "\"small_live\":%zu,\"large_live\":%zu,\"large_blocks\":3,\"stats\":",
            main_bytes + live_thread_bytes + exited_thread_bytes + arena_bytes, large_bytes);
    print_stats_json(f, &s1);
    fprintf(f, ",\"stats2\":");
    print_stats_json(f, &s2);
    fprintf(f, ",\"arena2\":");
    print_arena_json(f, arena);
    fprintf(f, ",\"arena_large_live\":%zu}\n", page_round(large_sizes[2]));
    fclose(f);

    /* Everything goes back; the arena's blocks with the arena. */
    CHECK(write(release_pipe[1], "x", 1) == 1);
    CHECK(pthread_join(live, NULL) == 0);
    for (int owner = 0; owner < 3; owner++)
        for (size_t i = 0; i < nblocks[owner]; i++)
            mapalloc_free(blocks[owner][i]);
    for (int i = 0; i < 2; i++)
        mapalloc_free(large[i]);
    mapalloc_arena_destroy(arena);
    struct mapalloc_stats s3;
    mapalloc_stats_get(&s3);
    CHECKF(s3.live == 0 && s3.live_blocks == 0, "after freeing everything: live %zu in %zu blocks",
           s3.live, s3.live_blocks);
    return 0;
}

/* For stats=1 and stats=2 at exit: some blocks still live, an arena too. */
static int exit_main(void)
{
    mapalloc_arena *arena = mapalloc_arena_create(NULL);
    CHECK(arena != NULL);
    allocate_lots(0, main_lots, NLOTS(main_lots), NULL);
    allocate_lots(3, arena_lots, NLOTS(arena_lots), arena);
    for (size_t i = 0; i < nblocks[0]; i += 2)
        mapalloc_free(blocks[0][i]);
    printf("exit: %zu blocks live\n", nblocks[0] / 2 + nblocks[3]);
    return 0;
}

/* For stats=1 at exit with counts of one: one block in one region. */
static int one_main(void)
{
    char *p = mapalloc_malloc(100);
    CHECK(p != NULL);
    memset(p, 1, 100);
    printf("one: 1 block live\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "snapshot") == 0)
        return snapshot_main(argv[2]);
    if (argc == 2 && strcmp(argv[1], "exit") == 0)
        return exit_main();
    if (argc == 2 && strcmp(argv[1], "one") == 0)
        return one_main();
    fprintf(stderr, "usage: %s snapshot DIR | exit | one\n", argv[0]);
    return 2;
}
