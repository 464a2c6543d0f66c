/* The C allocation API through the standard names, run under
 * LD_PRELOAD=libmapalloc-preload.so. Built without linking mapalloc (and
 * with -fno-builtin, so that the compiler keeps every call): whatever it
 * calls is whichever malloc the process has, and the first check is that it
 * is mapalloc's.
 */
#include "check.h"
#include "size_class.h" /* header only: the block sizes mapalloc must report */

#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Sizes kept away from the compiler's object-size warnings. */
static volatile size_t huge_size = SIZE_MAX;
static volatile size_t over_ptrdiff = (size_t)PTRDIFF_MAX + 1;
static volatile size_t bad_alignment = 24; /* not a power of two */

static int aligned(const void *p, size_t a)
{
    return ((uintptr_t)p & (a - 1)) == 0;
}

/* Really mapalloc: its names are in the process, and every small request
 * gets exactly its class's block size as usable size (glibc's chunks give
 * 24, 40, 56... for small requests). */
static void test_is_mapalloc(void)
{
    CHECKF(dlsym(RTLD_DEFAULT, "mapalloc_stats_get") != NULL,
           "mapalloc_stats_get is not in the process: not running under the preload?");
    /* The secure profile reports the requested size (the rest is canary). */
    long (*option_get)(const char *) = (long (*)(const char *))dlsym(RTLD_DEFAULT,
                                                                     "mapalloc_option_get");
    CHECK(option_get != NULL);
    int secure = option_get("secure") == 1;
    for (size_t n = 1; n <= MA_LARGE_THRESHOLD; n += (n < 4096 ? 1 : 997)) {
        void *p = malloc(n);
        CHECK(p != NULL);
        size_t want = secure ? n : ma_class_size(ma_size_class(n));
        CHECKF(malloc_usable_size(p) == want, "malloc(%zu): usable %zu, class size %zu", n,
               malloc_usable_size(p), want);
        free(p);
    }
    /* The process's free is the preload's. */
    void *f = dlsym(RTLD_DEFAULT, "free");
    void *mf = dlsym(RTLD_DEFAULT, "mapalloc_free");
    CHECK(f != NULL && mf != NULL);
    Dl_info info;
    CHECK(dladdr(f, &info) != 0 && info.dli_fname != NULL);
    CHECKF(strstr(info.dli_fname, "mapalloc") != NULL, "free comes from %s", info.dli_fname);
}

static void test_basic(void)
{
    for (size_t n = 0; n < 5000000; n = n * 3 / 2 + 1) {
        unsigned char *p = malloc(n);
        CHECK(p != NULL && aligned(p, 16) && malloc_usable_size(p) >= n);
        memset(p, 0x5a, n);
        unsigned char *q = realloc(p, n * 2 + 3);
        CHECK(q != NULL);
        for (size_t i = 0; i < n; i++)
            CHECK(q[i] == 0x5a);
        free(q);
        unsigned char *z = calloc(n + 1, 1);
        CHECK(z != NULL);
        for (size_t i = 0; i <= n; i++)
            CHECK(z[i] == 0);
        free(z);
    }
    int *v = reallocarray(NULL, 1000, sizeof(int));
    CHECK(v != NULL);
    v[999] = 7;
    v = reallocarray(v, 2000, sizeof(int));
    CHECK(v != NULL && v[999] == 7);
    free(v);

    void *p = NULL;
    CHECK(posix_memalign(&p, 4096, 100) == 0 && aligned(p, 4096));
    free(p);
    p = aligned_alloc(1 << 20, 1 << 20);
    CHECK(p != NULL && aligned(p, 1 << 20));
    free(p);
    p = memalign(256, 1000);
    CHECK(p != NULL && aligned(p, 256));
    free(p);
    long pg = sysconf(_SC_PAGESIZE);
    p = valloc(10);
    CHECK(p != NULL && aligned(p, (size_t)pg));
    free(p);
    p = pvalloc(10);
    CHECK(p != NULL && aligned(p, (size_t)pg) && malloc_usable_size(p) >= (size_t)pg);
    free(p);

    /* glibc semantics where C leaves a choice. */
    p = malloc(0);
    CHECK(p != NULL);
    CHECK(realloc(p, 0) == NULL);
    free(NULL);

    /* C23 sized frees: not declared by this glibc; the preload defines them. */
    void (*fs)(void *, size_t) = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "free_sized");
    void (*fas)(void *, size_t, size_t) =
        (void (*)(void *, size_t, size_t))dlsym(RTLD_DEFAULT, "free_aligned_sized");
    CHECK(fs != NULL && fas != NULL);
    p = malloc(100);
    fs(p, 100);
    p = aligned_alloc(64, 640);
    fas(p, 64, 640);
}

static void test_errors(void)
{
    errno = 0;
    CHECK(malloc(huge_size) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(malloc(over_ptrdiff) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(calloc(huge_size / 2 + 1, 2) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(reallocarray(NULL, huge_size / 2 + 1, 2) == NULL && errno == ENOMEM);
    void *p = malloc(10);
    strcpy(p, "intact");
    errno = 0;
    CHECK(realloc(p, huge_size) == NULL && errno == ENOMEM);
    CHECK(strcmp(p, "intact") == 0);
    free(p);
    void *q = NULL;
    CHECK(posix_memalign(&q, bad_alignment, 100) == EINVAL);
    errno = 0;
    CHECK(aligned_alloc(bad_alignment, 100) == NULL && errno == EINVAL);
    /* errno untouched by success, free included. */
    errno = 4242;
    p = malloc(100);
    q = malloc(3 << 20);
    free(p);
    free(q);
    CHECK(errno == 4242);
}

/* glibc's extras: malloc_trim, mallinfo2, mallinfo, malloc_stats, mallopt. */
static void test_extras(void)
{
    struct mallinfo2 before = mallinfo2();
    void *blocks[100];
    for (int i = 0; i < 100; i++)
        blocks[i] = malloc(1000);
    struct mallinfo2 during = mallinfo2();
    CHECKF(during.uordblks >= before.uordblks + 100 * 1000, "mallinfo2 uordblks %zu -> %zu",
           before.uordblks, during.uordblks);
    /* mallinfo is deprecated in the headers; the preload still defines it. */
    struct mallinfo (*old_mallinfo)(void) =
        (struct mallinfo(*)(void))dlsym(RTLD_DEFAULT, "mallinfo");
    CHECK(old_mallinfo != NULL);
    struct mallinfo old = old_mallinfo();
    CHECK(old.uordblks > 0);
    for (int i = 0; i < 100; i++)
        free(blocks[i]);
    struct mallinfo2 after = mallinfo2();
    CHECK(after.uordblks < during.uordblks);
    int r = malloc_trim(0);
    CHECK(r == 0 || r == 1);
    CHECK(mallopt(M_MMAP_THRESHOLD, 1 << 20) == 1);

    /* malloc_stats writes to stderr: catch it. */
    int fds[2];
    CHECK(pipe(fds) == 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fds[1], 2);
    malloc_stats();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fds[1]);
    char buf[8192];
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    close(fds[0]);
    CHECK(n > 0);
    buf[n] = '\0';
    /* glibc's layout (tests/obs/preload_stats.c compares it line by line)
     * with mapalloc's figures: the peak it maps is mallinfo2's. */
    const char *head = "Arena 0:\nsystem bytes     = ", *last = "\nmax mmap bytes   = ";
    const char *peak = strstr(buf, last);
    CHECKF(strncmp(buf, head, strlen(head)) == 0 && peak != NULL, "malloc_stats wrote: %s", buf);
    CHECKF(strtoull(peak + strlen(last), NULL, 10) == mallinfo2().usmblks, "malloc_stats wrote: %s",
           buf);
}

/* Memory that libc allocates inside its own functions is freed by ours. */
static void test_libc_internal(void)
{
    char *s = strdup("a string from strdup");
    CHECK(s != NULL);
    free(s);
    char *cwd = getcwd(NULL, 0);
    CHECK(cwd != NULL);
    char *real = realpath(".", NULL);
    CHECK(real != NULL && strcmp(cwd, real) == 0);
    free(cwd);
    free(real);
    char *a = NULL;
    CHECK(asprintf(&a, "%0*d", 100000, 7) == 100000);
    free(a);
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    CHECK(m != NULL);
    for (int i = 0; i < 10000; i++)
        fprintf(m, "line %d\n", i);
    fclose(m);
    CHECK(len > 10000);
    FILE *f = fmemopen(buf, len, "r");
    CHECK(f != NULL);
    char *line = NULL;
    size_t cap = 0;
    int lines = 0;
    while (getline(&line, &cap, f) > 0)
        lines++;
    CHECK(lines == 10000);
    free(line);
    fclose(f);
    free(buf);
    f = fopen("/proc/self/status", "r"); /* its FILE and buffer come from malloc too */
    CHECK(f != NULL);
    fclose(f);
}

static void *thread_alloc(void *arg)
{
    (void)arg;
    void **v = malloc(1000 * sizeof(void *));
    for (int i = 0; i < 1000; i++)
        v[i] = malloc((size_t)i * 7 + 1);
    return v;
}

/* Blocks of a thread that exited, freed by this one. */
static void test_threads(void)
{
    for (int round = 0; round < 20; round++) {
        pthread_t t;
        void *res = NULL;
        CHECK(pthread_create(&t, NULL, thread_alloc, NULL) == 0);
        CHECK(pthread_join(t, &res) == 0);
        void **v = res;
        for (int i = 0; i < 1000; i++)
            free(v[i]);
        free(v);
    }
}

int main(void)
{
    test_is_mapalloc();
    test_basic();
    test_errors();
    test_extras();
    test_libc_internal();
    test_threads();
    printf("preload api: ok\n");
    return 0;
}
