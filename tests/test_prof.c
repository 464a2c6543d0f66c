/* The heap profiler through the library (libmapalloc.so, so also in the
 * sanitizer builds): profiles written with mapalloc_prof_dump and read back
 * here, their stacks named with dladdr.
 *
 *   test_prof estimate   three functions allocate 60/30/10 % of the bytes:
 *                        each one's estimate within 15%; when one frees its
 *                        blocks, its line leaves the live set
 *   test_prof realloc    large blocks, all sampled, estimated exactly; moved
 *                        by realloc, their samples move to realloc's caller;
 *                        freed, nothing stays live
 *   test_prof blocks     every allocation sampled (prof_sample_kb=0): sampled
 *                        blocks keep their alignment (asked for, or that of
 *                        their class), calloc's zeroes, their contents
 *                        through realloc, and free_sized after a realloc
 *   test_prof double_free  a second free of a sampled block still aborts
 *                        with mapalloc's line
 *   test_prof off        the defaults; prof=0: no dump, nothing mapped for the
 *                        profiler
 * Each part sets its options with mapalloc_option_set before the first
 * allocation; MAPALLOC_OPTIONS=secure=1 runs them in the secure profile. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "mapalloc.h"
#include "prof_split.h"
#include "rng.h"

#define MiB ((size_t)1 << 20)
#define NOINLINE __attribute__((noinline, used))

static void *must(void *p)
{
    CHECK(p != NULL);
    return p;
}

NOINLINE void *lib_sixty(wl_rng *r, size_t *size)
{
    *size = wl_range(r, 1, 700);
    return must(mapalloc_malloc(*size));
}

NOINLINE void *lib_thirty(wl_rng *r, size_t *size)
{
    *size = wl_range(r, 700, 60000);
    return must(mapalloc_malloc(*size));
}

NOINLINE void *lib_ten(wl_rng *r, size_t *size)
{
    *size = wl_below(r, 4) == 0 ? wl_range(r, 600000, 2000000) : wl_range(r, 64, 100000);
    return must(mapalloc_malloc(*size));
}

static void *(*const fns[3])(wl_rng *, size_t *) = {lib_sixty, lib_thirty, lib_ten};
static const char *const names[3] = {"lib_sixty", "lib_thirty", "lib_ten"};

static char dump_path[64];

/* Estimated live bytes per function, from a dump read back: the first
 * frame of each stack names the function that called malloc. */
static void dump_and_read(size_t est[3])
{
    CHECK(mapalloc_prof_dump(dump_path) == 0);
    FILE *f = fopen(dump_path, "r");
    CHECK(f != NULL);
    char line[8192];
    CHECK(fgets(line, sizeof line, f) && strncmp(line, "heap profile: ", 14) == 0);
    memset(est, 0, 3 * sizeof *est);
    bool maps = false;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "MAPPED_LIBRARIES:", 17) == 0)
            maps = true;
        unsigned long long n, bytes, an, abytes;
        char *at = strstr(line, "@ 0x");
        if (maps || !at || sscanf(line, "%llu: %llu [%llu: %llu]", &n, &bytes, &an, &abytes) != 4)
            continue;
        void *pc = (void *)strtoull(at + 2, NULL, 16);
        Dl_info info;
        if (dladdr(pc, &info) == 0 || info.dli_sname == NULL)
            continue;
        for (int i = 0; i < 3; i++)
            if (strcmp(info.dli_sname, names[i]) == 0)
                est[i] += bytes;
    }
    CHECKF(maps, "no MAPPED_LIBRARIES section in %s", dump_path);
    fclose(f);
}

static void start(long sample_kb)
{
    snprintf(dump_path, sizeof dump_path, "/tmp/mapalloc-test-prof.%d", (int)getpid());
    CHECK(mapalloc_option_set("prof", 1) == 0);
    CHECK(mapalloc_option_set("prof_sample_kb", sample_kb) == 0);
    CHECK(mapalloc_option_set("prof_final", 0) == 0);
}

static void part_estimate(void)
{
    start(32);
    size_t total = 120 * MiB, bytes[3] = {0, 0, 0}, count[3] = {0, 0, 0};
    void **blocks[3];
    for (int f = 0; f < 3; f++)
        blocks[f] = must(mapalloc_malloc(4 * MiB * sizeof(void *)));
    wl_rng r[3], pick;
    for (int f = 0; f < 3; f++)
        wl_rng_init(&r[f], 1, (uint64_t)f);
    wl_rng_init(&pick, 1, 7);
    for (int f; (f = prof_next(&pick, total, bytes)) >= 0;) {
        size_t size;
        blocks[f][count[f]++] = fns[f](&r[f], &size);
        bytes[f] += size;
    }
    size_t est[3];
    dump_and_read(est);
    for (int f = 0; f < 3; f++) {
        double ratio = (double)est[f] / (double)bytes[f];
        printf("%s: estimated %zu, allocated %zu (%.3f)\n", names[f], est[f], bytes[f], ratio);
        CHECKF(ratio > 0.85 && ratio < 1.15, "%s: estimate off by %.1f%%", names[f], 100 * (ratio - 1));
    }
    struct mapalloc_stats st;
    mapalloc_stats_get(&st);
    CHECKF(st.prof_mapped > 0, "prof_mapped %zu", st.prof_mapped);
    printf("profiler tables: %zu bytes\n", st.prof_mapped);
    /* Freed blocks leave the live set: every sample of theirs goes. */
    for (size_t i = 0; i < count[0]; i++)
        mapalloc_free(blocks[0][i]);
    dump_and_read(est);
    CHECKF(est[0] == 0, "lib_sixty still has %zu live bytes after freeing all", est[0]);
    CHECK(est[1] > 0 && est[2] > 0);
    unlink(dump_path);
}

NOINLINE void *lib_large(size_t size)
{
    return must(mapalloc_malloc(size));
}

NOINLINE void *lib_grow(void *p, size_t size)
{
    return must(mapalloc_realloc(p, size));
}

/* Estimated live bytes of the stacks whose first frame is fn, and the
 * total of the profile. */
static size_t live_of(const char *fn, size_t *total)
{
    CHECK(mapalloc_prof_dump(dump_path) == 0);
    FILE *f = fopen(dump_path, "r");
    CHECK(f != NULL);
    char line[8192];
    unsigned long long n, bytes, an, abytes;
    CHECK(fscanf(f, "heap profile: %llu: %llu", &n, &bytes) == 2);
    *total = bytes;
    size_t sum = 0;
    while (fgets(line, sizeof line, f)) {
        char *at = strstr(line, "@ 0x");
        Dl_info info;
        if (at && sscanf(line, "%llu: %llu [%llu: %llu]", &n, &bytes, &an, &abytes) == 4 &&
            dladdr((void *)strtoull(at + 2, NULL, 16), &info) != 0 && info.dli_sname != NULL &&
            strcmp(info.dli_sname, fn) == 0)
            sum += bytes;
    }
    fclose(f);
    return sum;
}

/* 100 large blocks of about 1 MiB, every one sampled at a 32 KiB interval
 * (to within e^-32): the estimate is the bytes. */
static void part_realloc(void)
{
    start(32);
    enum { N = 100 };
    void *p[N];
    size_t want = 0, total;
    for (int i = 0; i < N; i++) {
        p[i] = lib_large(MiB + (size_t)i * 4096);
        want += MiB + (size_t)i * 4096;
    }
    size_t got = live_of("lib_large", &total);
    CHECKF(got == want, "lib_large: %zu live bytes in the profile, %zu allocated", got, want);
    /* A realloc is a free and a new allocation: the samples move to its stack. */
    want = 0;
    for (int i = 0; i < N; i++) {
        memset(p[i], i, 4096);
        p[i] = lib_grow(p[i], 5 * MiB + (size_t)i * 4096);
        want += 5 * MiB + (size_t)i * 4096;
        CHECK(((unsigned char *)p[i])[4095] == (unsigned char)i);
    }
    CHECKF(live_of("lib_large", &total) == 0, "lib_large's blocks still live after realloc");
    got = live_of("lib_grow", &total);
    CHECKF(got == want, "lib_grow: %zu live bytes, %zu allocated", got, want);
    for (int i = 0; i < N; i++)
        mapalloc_free(p[i]);
    live_of("lib_grow", &total);
    CHECKF(total == 0, "%zu bytes live after every block was freed", total);
    unlink(dump_path);
}

static void part_blocks(void)
{
    start(0);
    wl_rng r;
    wl_rng_init(&r, 3, 3);
    for (int i = 0; i < 2000; i++) {
        size_t size = wl_range(&r, 1, 300000);
        size_t align = (size_t)16 << wl_below(&r, 14);
        unsigned char *a = must(mapalloc_aligned_alloc(align, size));
        CHECKF(((uintptr_t)a & (align - 1)) == 0, "block %p of alignment %zu", (void *)a, align);
        CHECK(mapalloc_usable_size(a) >= size);
        memset(a, 0xab, size);
        unsigned char *z = must(mapalloc_calloc(1, size));
        for (size_t k = 0; k < size; k += 997)
            CHECK(z[k] == 0);
        unsigned char *g = must(mapalloc_realloc(a, size * 2 + 1));
        CHECK(g[0] == 0xab && g[size - 1] == 0xab);
        /* Shrunk (in place or not), it is freed with its new size. */
        unsigned char *h = must(mapalloc_realloc(g, size));
        CHECK(h[0] == 0xab && h[size - 1] == 0xab);
        mapalloc_free_sized(z, size);
        mapalloc_free_sized(h, size);
    }
    /* Outside the secure profile (whose trailer moves blocks to the next
     * class) a power-of-two class's blocks are aligned to it in their
     * pages: a sampled one keeps that. */
    if (mapalloc_option_get("secure"))
        return;
    for (size_t size = 32; size <= 64 << 10; size *= 2) {
        void *p = must(mapalloc_malloc(size));
        CHECKF(((uintptr_t)p & (size - 1)) == 0, "malloc(%zu): %p", size, p);
        mapalloc_free(p);
    }
}

static void part_double_free(void)
{
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 2);
        start(0);
        void *p = must(mapalloc_malloc(100));
        mapalloc_free(p);
        mapalloc_free(p);
        _exit(0);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECKF(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "a second free of a sampled block "
           "did not abort (status %#x)", status);
}

static void part_off(void)
{
    /* The defaults: jemalloc's mean interval, and a profile at exit once on. */
    CHECK(mapalloc_option_get("prof") == 0 && mapalloc_option_get("leaks") == 0);
    CHECK(mapalloc_option_get("prof_sample_kb") == 512);
    CHECK(mapalloc_option_get("prof_final") == 1 && mapalloc_option_get("prof_peak") == 0);
    mapalloc_free(mapalloc_malloc(100));
    errno = 0;
    CHECK(mapalloc_prof_dump("/tmp/mapalloc-never") == -1 && errno == ENOENT);
    struct mapalloc_stats st;
    mapalloc_stats_get(&st);
    CHECK(st.prof_mapped == 0);
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        void (*run)(void);
    } parts[] = {{"estimate", part_estimate}, {"realloc", part_realloc}, {"blocks", part_blocks},
                 {"double_free", part_double_free}, {"off", part_off}};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        if (argc > 1 && strcmp(argv[1], parts[i].name) == 0) {
            parts[i].run();
            printf("ok %s\n", parts[i].name);
            return 0;
        }
    fprintf(stderr, "usage: test_prof estimate|realloc|blocks|double_free|off\n");
    return 2;
}
