/* malloc_stats(), mallinfo2() and mallinfo() in a preloaded program report
 * mapalloc's figures, as preload/preload.c maps them:
 *   arena = small_mapped, hblks = large_blocks, hblkhd = large_mapped,
 *   uordblks = live, fordblks = mapped - live, usmblks = peak_mapped;
 * malloc_stats() in glibc's layout, checked line by line against glibc's
 * own, from a copy of this program run without the preload.
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
#include <sys/wait.h>
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

/* What malloc_stats() writes to stderr, caught in a NUL-terminated static
 * buffer. */
static const char *malloc_stats_text(void)
{
    static char text[1 << 16];
    char name[] = "/tmp/mapalloc-mstats.XXXXXX";
    int fd = mkstemp(name);
    CHECK(fd >= 0);
    unlink(name);
    fflush(stderr);
    int saved = dup(2);
    CHECK(saved >= 0 && dup2(fd, 2) == 2);
    malloc_stats();
    CHECK(dup2(saved, 2) == 2);
    close(saved);
    ssize_t len = pread(fd, text, sizeof text - 1, 0);
    close(fd);
    CHECK(len > 0);
    text[len] = '\0';
    return text;
}

/* glibc's own malloc_stats(), from a copy of this program run without the
 * preload (argument "glibc"), into buf. */
static void glibc_malloc_stats(char *buf, size_t size)
{
    int fds[2];
    CHECK(pipe(fds) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        unsetenv("LD_PRELOAD");
        dup2(fds[1], 2);
        execl("/proc/self/exe", "preload_stats", "glibc", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t r;
    while (len + 1 < size && (r = read(fds[0], buf + len, size - 1 - len)) > 0)
        len += (size_t)r;
    buf[len] = '\0';
    close(fds[0]);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0 && len > 0,
           "glibc's malloc_stats: status %d, output:\n%s", status, buf);
}

/* A line's shape with its numbers as N: "Arena N:", "system bytes     = N". */
static void line_shape(const char *line, size_t len, char *out, size_t size)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 2 < size; i++) {
        if (line[i] >= '0' && line[i] <= '9') {
            while (n > 0 && out[n - 1] == ' ' && i > 0 && line[i - 1] == ' ')
                n--; /* the padding before a number is part of it */
            out[n++] = 'N';
            while (i + 1 < len && line[i + 1] >= '0' && line[i + 1] <= '9')
                i++;
        } else {
            out[n++] = line[i];
        }
    }
    out[n] = '\0';
}

/* mapalloc's malloc_stats() has glibc's lines, in glibc's order, with the
 * numbers in the same columns (right-aligned, ten wide: both lines of a
 * pair have the same length). want_arenas: how many "Arena N:" blocks
 * mapalloc's must have (glibc's single-threaded copy has one). */
static void same_layout(const char *ours, const char *glibc, unsigned want_arenas)
{
    const char *o = ours, *g = glibc;
    unsigned arenas = 0, lines = 0;
    while (*o) {
        const char *oe = strchr(o, '\n');
        CHECKF(oe != NULL, "malloc_stats: an unfinished line in:\n%s", ours);
        if (strncmp(o, "Arena ", 6) == 0 && arenas++ > 0) {
            /* Past glibc's one arena: the same two lines again. */
            g = strstr(glibc, "Arena 0:\n");
        }
        const char *ge = strchr(g, '\n');
        CHECKF(*g && ge != NULL, "malloc_stats: more lines than glibc's:\n%s\nglibc's:\n%s", ours,
               glibc);
        char so[128], sg[128];
        line_shape(o, (size_t)(oe - o), so, sizeof so);
        line_shape(g, (size_t)(ge - g), sg, sizeof sg);
        CHECKF(strcmp(so, sg) == 0 && oe - o == ge - g,
               "malloc_stats line %u: \"%.*s\", glibc's \"%.*s\"\nours:\n%s\nglibc's:\n%s", lines + 1,
               (int)(oe - o), o, (int)(ge - g), g, ours, glibc);
        o = oe + 1;
        g = ge + 1;
        lines++;
    }
    CHECKF(*g == '\0', "malloc_stats: glibc's has more lines:\n%s\nglibc's:\n%s", ours, glibc);
    CHECKF(arenas == want_arenas, "malloc_stats: %u arenas, expected %u:\n%s", arenas, want_arenas,
           ours);
}

/* The number after "NAME = " in the block that starts at "AT" in text. */
static unsigned long long field_after(const char *text, const char *at, const char *name)
{
    const char *p = strstr(text, at);
    CHECKF(p != NULL, "no \"%s\" in malloc_stats output:\n%s", at, text);
    p = strstr(p, name);
    CHECKF(p != NULL, "no \"%s\" after \"%s\" in malloc_stats output:\n%s", name, at, text);
    p = strchr(p, '=');
    CHECK(p != NULL);
    return strtoull(p + 1, NULL, 10);
}

/* The glibc side: a few blocks, then glibc's malloc_stats() on stderr. */
static int glibc_main(void)
{
    void *p[100];
    for (int i = 0; i < 100; i++)
        p[i] = malloc((size_t)i * 100 + 1);
    void *big = malloc(6 << 20);
    malloc_stats();
    free(big);
    for (int i = 0; i < 100; i++)
        free(p[i]);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "glibc") == 0)
        return glibc_main();
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

    /* A mapping made and given back: the most held at once is more than
     * what is held now, so that "max mmap regions" shows which it is. */
    void *gone = malloc(16 << 20);
    CHECK(gone != NULL);
    free(gone);
    malloc_trim(0);

    /* malloc_stats(): glibc's layout, mapalloc's figures. */
    static char glibc[1 << 14];
    glibc_malloc_stats(glibc, sizeof glibc);
    struct mapalloc_stats s;
    stats_get(&s);
    CHECKF(s.peak_mappings > s.mappings && s.peak_mapped >= s.mapped + (16 << 20),
           "mappings %llu (peak %llu), mapped %zu (peak %zu) after a 16 MiB block went",
           (unsigned long long)s.mappings, (unsigned long long)s.peak_mappings, s.mapped, s.peak_mapped);
    const char *text = malloc_stats_text();
    same_layout(text, glibc, 1);
    unsigned long long in_use = field_after(text, "Arena 0:", "in use bytes");
    CHECK(field_after(text, "Arena 0:", "system bytes") == s.small_mapped);
    CHECKF(in_use > 0 && in_use + (6 << 20) + (700 << 10) <= s.live,
           "Arena 0 in use %llu, live %zu with 6.7 MiB in large blocks", in_use, s.live);
    CHECK(field_after(text, "Total", "system bytes") == s.mapped);
    CHECK(field_after(text, "Total", "in use bytes") == s.live);
    CHECK(field_after(text, "Total", "max mmap regions") == s.peak_mappings);
    CHECK(field_after(text, "Total", "max mmap bytes") == s.peak_mapped);

    /* An explicit arena is "Arena 1", as a second glibc arena would be. */
    mapalloc_arena *(*arena_create)(const struct mapalloc_arena_options *) =
        (mapalloc_arena * (*)(const struct mapalloc_arena_options *)) dlsym(RTLD_DEFAULT, "mapalloc_arena_create");
    void *(*arena_malloc)(mapalloc_arena *, size_t) =
        (void *(*)(mapalloc_arena *, size_t))dlsym(RTLD_DEFAULT, "mapalloc_arena_malloc");
    void (*arena_destroy)(mapalloc_arena *) =
        (void (*)(mapalloc_arena *))dlsym(RTLD_DEFAULT, "mapalloc_arena_destroy");
    CHECK(arena_create && arena_malloc && arena_destroy);
    mapalloc_arena *arena = arena_create(NULL);
    CHECK(arena != NULL);
    for (int i = 0; i < 10; i++)
        CHECK(arena_malloc(arena, 1000) != NULL);
    text = malloc_stats_text();
    same_layout(text, glibc, 2);
    CHECK(field_after(text, "Arena 1:", "in use bytes") == 10 * 1024);
    CHECK(field_after(text, "Arena 1:", "system bytes") == 4 << 20);
    CHECK(field_after(text, "Arena 0:", "in use bytes") == in_use);
    arena_destroy(arena);

    for (int i = 0; i < N; i++)
        free(p[i]);
    free(big);
    free(big2);
    same_figures("after free");
    printf("preload_stats: ok (live %zu bytes, mapped %zu at the end)\n", mallinfo2().uordblks,
           mallinfo2().arena + mallinfo2().hblkhd);
    return 0;
}
