/* The library works when loaded with dlopen: its first call comes late, on
 * any thread, with its thread-local state set up for a library that was not
 * there at start-up. This program does not link libmapalloc; it gets the
 * path of libmapalloc.so as its argument.
 */
#include "check.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* The functions, looked up by name (the header's prototypes, as pointers). */
static void *(*ma_malloc)(size_t);
static void *(*ma_calloc)(size_t, size_t);
static void *(*ma_realloc)(void *, size_t);
static void (*ma_free)(void *);
static void *(*ma_aligned_alloc)(size_t, size_t);
static size_t (*ma_usable_size)(const void *);
static int (*ma_trim)(size_t);

static void *lookup(void *lib, const char *name)
{
    dlerror();
    void *f = dlsym(lib, name);
    CHECKF(f != NULL, "dlsym(%s): %s", name, dlerror());
    return f;
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 7 + seed);
}

static bool filled(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(i * 7 + seed))
            return false;
    return true;
}

static const size_t sizes[] = {0, 1, 16, 100, 1000, 5000, 70000, 300000, 600000, 3000000};
#define NSIZES (sizeof sizes / sizeof sizes[0])

/* Allocates, checks and frees blocks of every size; returns some blocks
 * still live for another thread to free. */
static void work(void **keep, unsigned seed)
{
    for (int round = 0; round < 20; round++) {
        void *p[NSIZES];
        for (size_t k = 0; k < NSIZES; k++) {
            p[k] = ma_malloc(sizes[k]);
            CHECKF(p[k] != NULL && ((uintptr_t)p[k] & 15) == 0, "malloc(%zu)", sizes[k]);
            CHECK(ma_usable_size(p[k]) >= sizes[k]);
            fill(p[k], sizes[k], seed + (unsigned)k);
        }
        for (size_t k = 0; k < NSIZES; k++) {
            CHECK(filled(p[k], sizes[k], seed + (unsigned)k));
            p[k] = ma_realloc(p[k], sizes[k] * 2 + 1);
            CHECK(p[k] != NULL && filled(p[k], sizes[k], seed + (unsigned)k));
            ma_free(p[k]);
        }
        unsigned char *z = ma_calloc(100, 100);
        CHECK(z != NULL);
        for (int i = 0; i < 10000; i++)
            CHECK(z[i] == 0);
        ma_free(z);
        void *a = ma_aligned_alloc(4096, 100);
        CHECK(a != NULL && ((uintptr_t)a & 4095) == 0);
        ma_free(a);
    }
    for (size_t k = 0; k < NSIZES; k++) {
        keep[k] = ma_malloc(sizes[k]);
        CHECK(keep[k] != NULL);
        fill(keep[k], sizes[k], seed);
    }
}

struct thread_arg {
    void *blocks[NSIZES];
    void **to_free; /* another thread's blocks */
    unsigned seed;
};

static void *thread_main(void *arg)
{
    struct thread_arg *a = arg;
    work(a->blocks, a->seed);
    if (a->to_free != NULL)
        for (size_t k = 0; k < NSIZES; k++)
            ma_free(a->to_free[k]);
    return NULL;
}

/* DF_STATIC_TLS in the library's dynamic section: it uses the initial-exec
 * TLS model, which a dlopen can only serve from the small static TLS
 * surplus. */
static bool uses_static_tls(void *lib)
{
    struct link_map *map = NULL;
    CHECK(dlinfo(lib, RTLD_DI_LINKMAP, &map) == 0 && map != NULL);
    for (const ElfW(Dyn) *d = map->l_ld; d->d_tag != DT_NULL; d++)
        if (d->d_tag == DT_FLAGS && (d->d_un.d_val & DF_STATIC_TLS))
            return true;
    return false;
}

int main(int argc, char **argv)
{
    CHECKF(argc == 2, "usage: %s path/to/libmapalloc.so", argv[0]);
    /* Not loaded yet: nothing of it is in the process. */
    CHECK(dlsym(RTLD_DEFAULT, "mapalloc_malloc") == NULL);

    /* The first thread to touch the library is not the main thread. */
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    CHECKF(lib != NULL, "dlopen(%s): %s", argv[1], dlerror());
    ma_malloc = (void *(*)(size_t))lookup(lib, "mapalloc_malloc");
    ma_calloc = (void *(*)(size_t, size_t))lookup(lib, "mapalloc_calloc");
    ma_realloc = (void *(*)(void *, size_t))lookup(lib, "mapalloc_realloc");
    ma_free = (void (*)(void *))lookup(lib, "mapalloc_free");
    ma_aligned_alloc = (void *(*)(size_t, size_t))lookup(lib, "mapalloc_aligned_alloc");
    ma_usable_size = (size_t(*)(const void *))lookup(lib, "mapalloc_usable_size");
    ma_trim = (int (*)(size_t))lookup(lib, "mapalloc_trim");

    /* Loading it does not replace the process's malloc. */
    CHECK(dlsym(lib, "malloc") == dlsym(RTLD_DEFAULT, "malloc"));
    /* A second dlopen finds the same library. */
    void *again = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    CHECK(again == lib);
    dlclose(again);

    enum { T = 4 };
    pthread_t t[T];
    static struct thread_arg args[T];
    for (unsigned i = 0; i < T; i++) {
        args[i].seed = i * 13 + 1;
        args[i].to_free = NULL;
        CHECK(pthread_create(&t[i], NULL, thread_main, &args[i]) == 0);
    }
    for (unsigned i = 0; i < T; i++)
        CHECK(pthread_join(t[i], NULL) == 0);

    /* Blocks of exited threads, freed by new threads and by this one. */
    pthread_t u[T];
    static struct thread_arg more[T];
    for (unsigned i = 0; i < T; i++) {
        more[i].seed = i * 17 + 5;
        more[i].to_free = args[(i + 1) % T].blocks;
        CHECK(pthread_create(&u[i], NULL, thread_main, &more[i]) == 0);
    }
    for (unsigned i = 0; i < T; i++)
        CHECK(pthread_join(u[i], NULL) == 0);
    void *mine[NSIZES];
    work(mine, 99);
    for (unsigned i = 0; i < T; i++)
        for (size_t k = 0; k < NSIZES; k++) {
            CHECK(filled(more[i].blocks[k], sizes[k], more[i].seed));
            ma_free(more[i].blocks[k]);
        }
    for (size_t k = 0; k < NSIZES; k++)
        ma_free(mine[k]);
    int r = ma_trim(0);
    CHECK(r == 0 || r == 1);

    /* The library stays loaded: threads that exit later may still run its
     * thread-exit code. */
    printf("dlopen: ok%s\n", uses_static_tls(lib)
                                 ? " (note: the library is flagged DF_STATIC_TLS, initial-exec "
                                   "TLS; dlopen relies on glibc's static TLS surplus)"
                                 : "");
    return 0;
}
