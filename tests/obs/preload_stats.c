/* malloc_stats(), mallinfo2() and mallinfo() in a preloaded program report
 * mapalloc's figures, as preload/preload.c maps them:
 *   arena = small_mapped, hblks = large_blocks, hblkhd = large_mapped,
 *   uordblks = live, fordblks = mapped - live, usmblks = peak_mapped.
 * Run under LD_PRELOAD=libmapalloc-preload.so; built without mapalloc and
 * with -fno-builtin. mapalloc_stats_get is found with dlsym.
 */
#include "../check.h"
#include "mapalloc.h" /* struct mapalloc_stats only: not linked */

#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void (*stats_get)(struct mapalloc_stats *);

static void same_figures(const char *when)
{
    struct mapalloc_stats s;
    stats_get(&s);
    struct mallinfo2 mi = mallinfo2();
    CHECKF(mi.uordblks == s.live, "%s: uordblks %zu, live %zu", when, mi.uordblks, s.live);
    CHECKF(mi.arena == s.small_mapped, "%s: arena %zu, small_mapped %zu", when, mi.arena,
           s.small_mapped);
    CHECKF(mi.hblks == s.large_blocks, "%s: hblks %zu, large_blocks %zu", when, mi.hblks,
           s.large_blocks);
    CHECKF(mi.hblkhd == s.large_mapped, "%s: hblkhd %zu, large_mapped %zu", when, mi.hblkhd,
           s.large_mapped);
    CHECKF(mi.fordblks == s.mapped - s.live, "%s: fordblks %zu, mapped - live %zu", when,
           mi.fordblks, s.mapped - s.live);
    CHECKF(mi.usmblks == s.peak_mapped, "%s: usmblks %zu, peak_mapped %zu", when, mi.usmblks,
           s.peak_mapped);
    /* The old interface: the same, truncated to int. glibc marks it
     * deprecated; it is part of what the preload defines. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    struct mallinfo m1 = mallinfo();
#pragma GCC diagnostic pop
    CHECK(m1.uordblks == (int)mi.uordblks && m1.arena == (int)mi.arena &&
          m1.hblks == (int)mi.hblks && m1.hblkhd == (int)mi.hblkhd &&
          m1.fordblks == (int)mi.fordblks && m1.usmblks == (int)mi.usmblks);
}

/* The value of "mapalloc: NAME  VALUE" in text. */
static unsigned long long text_field(const char *text, const char *name)
{
    char key[64];
    snprintf(key, sizeof key, "mapalloc: %s ", name);
    const char *p = strstr(text, key);
    CHECKF(p != NULL, "no %s in malloc_stats output:\n%s", name, text);
    return strtoull(p + strlen(key), NULL, 10);
}

int main(void)
{
    stats_get = (void (*)(struct mapalloc_stats *))dlsym(RTLD_DEFAULT, "mapalloc_stats_get");
    CHECKF(stats_get != NULL, "mapalloc_stats_get is not in the process: not preloaded?");
    same_figures("at start");

    enum { N = 3000 };
    static void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = malloc((size_t)(i % 300) * 37 + 1);
        CHECK(p[i] != NULL);
    }
    void *big = malloc(6 << 20);
    void *big2 = malloc(700 << 10);
    CHECK(big && big2);
    memset(big, 1, 6 << 20);
    same_figures("with blocks live");

    /* One more block of 1000 bytes: uordblks grows by its block size. */
    struct mallinfo2 before = mallinfo2();
    void *q = malloc(1000);
    struct mallinfo2 after = mallinfo2();
    CHECKF(after.uordblks - before.uordblks == malloc_usable_size(q),
           "uordblks %zu -> %zu for a block of usable size %zu", before.uordblks, after.uordblks,
           malloc_usable_size(q));
    free(q);
    struct mallinfo2 freed = mallinfo2();
    CHECK(freed.uordblks == before.uordblks);

    /* malloc_stats() writes mapalloc's text report to stderr: catch it. */
    char name[] = "/tmp/mapalloc-mstats.XXXXXX";
    int fd = mkstemp(name);
    CHECK(fd >= 0);
    unlink(name);
    fflush(stderr);
    int saved = dup(2);
    CHECK(saved >= 0 && dup2(fd, 2) == 2);
    struct mapalloc_stats s;
    stats_get(&s);
    malloc_stats();
    CHECK(dup2(saved, 2) == 2);
    close(saved);
    static char text[1 << 16];
    ssize_t len = pread(fd, text, sizeof text - 1, 0);
    close(fd);
    CHECK(len > 0);
    text[len] = '\0';
    CHECK(text_field(text, "live") == s.live);
    CHECK(text_field(text, "live_blocks") == s.live_blocks);
    CHECK(text_field(text, "large_blocks") == s.large_blocks);
    CHECK(text_field(text, "small_mapped") == s.small_mapped);
    CHECK(text_field(text, "large_mapped") == s.large_mapped);
    CHECK(text_field(text, "mapped") == s.mapped);
    CHECK(text_field(text, "peak_mapped") == s.peak_mapped);
    CHECK(text_field(text, "mmap_calls") == s.mmap_calls);
    CHECK(text_field(text, "munmap_calls") == s.munmap_calls);
    CHECK(text_field(text, "madvise_calls") == s.madvise_calls);
    CHECK(strstr(text, "mapalloc: class ") != NULL && strstr(text, "mapalloc: heap ") != NULL);

    for (int i = 0; i < N; i++)
        free(p[i]);
    free(big);
    free(big2);
    same_figures("after free");
    printf("preload_stats: ok (live %zu bytes, mapped %zu at the end)\n", mallinfo2().uordblks,
           mallinfo2().arena + mallinfo2().hblkhd);
    return 0;
}
