/* Shared helpers for the whole-workload benchmarks; see wl.h. */
#include "wl.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

_Atomic uint64_t wl_errors;

static double wl_start_time;

double wl_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long parse_long(const char *s, const char *flag)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 0);
    if (errno || *end || v < 0) {
        fprintf(stderr, "bad value for %s: %s\n", flag, s);
        exit(2);
    }
    return v;
}

void wl_parse(int argc, char **argv, struct wl_args *a, long default_n, const char *what)
{
    long nproc = sysconf(_SC_NPROCESSORS_ONLN);
    a->threads = nproc > 0 ? (int)nproc : 1;
    a->n = default_n;
    a->seed = 42;
    a->verbose = 0;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "-v")) {
            a->verbose = 1;
        } else if ((!strcmp(f, "-t") || !strcmp(f, "-n") || !strcmp(f, "-s")) && i + 1 < argc) {
            long v = parse_long(argv[++i], f);
            if (f[1] == 't')
                a->threads = v > 0 ? (int)v : 1;
            else if (f[1] == 'n')
                a->n = v > 0 ? v : 1;
            else
                a->seed = (uint64_t)v;
        } else {
            fprintf(stderr,
                    "usage: %s [-t threads] [-n %s] [-s seed] [-v]\n"
                    "  -t  worker threads (default: nproc = %ld)\n"
                    "  -n  %s (default %ld)\n"
                    "  -s  PRNG seed (default 42)\n",
                    argv[0], "N", nproc, what, default_n);
            exit(strcmp(f, "-h") && strcmp(f, "--help") ? 2 : 0);
        }
    }
    wl_start_time = wl_now();
}

uint64_t wl_check(const void *p, size_t size)
{
    const unsigned char *b = p;
    uint64_t id, tag;
    memcpy(&id, b, 8);
    memcpy(&tag, b + size - 8, 8);
    if (tag != wl_tag(id))
        wl_fail("broken block stamp, id", id);
    else if (size > 16 && b[8] != (unsigned char)(id & 0xff))
        wl_fail("broken block fill, id", id);
    return id;
}

void wl_fail(const char *what, uint64_t detail)
{
    /* Report the first few only; the count decides the exit status. */
    if (atomic_fetch_add(&wl_errors, 1) < 5)
        fprintf(stderr, "check failed: %s %" PRIu64 "\n", what, detail);
}

struct thread_start {
    pthread_t tid;
    void *arg;
};

void wl_run_threads(int n, void *(*fn)(void *), void *args, size_t arg_size)
{
    pthread_t *tids = malloc((size_t)n * sizeof *tids);
    if (!tids) {
        wl_fail("out of memory for threads", (uint64_t)n);
        return;
    }
    for (int i = 0; i < n; i++) {
        if (pthread_create(&tids[i], NULL, fn, (char *)args + (size_t)i * arg_size)) {
            wl_fail("pthread_create", (uint64_t)i);
            n = i;
            break;
        }
    }
    for (int i = 0; i < n; i++)
        pthread_join(tids[i], NULL);
    free(tids);
}

void wl_barrier_init(wl_barrier *b, int n)
{
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    b->n = n;
    b->waiting = 0;
    b->generation = 0;
}

void wl_barrier_wait(wl_barrier *b)
{
    pthread_mutex_lock(&b->mu);
    unsigned long gen = b->generation;
    if (++b->waiting == b->n) {
        b->waiting = 0;
        b->generation++;
        pthread_cond_broadcast(&b->cv);
    } else {
        while (gen == b->generation)
            pthread_cond_wait(&b->cv, &b->mu);
    }
    pthread_mutex_unlock(&b->mu);
}

/* Names the object that provides malloc in this process, so that the
 * harness can confirm that LD_PRELOAD took effect. */
static const char *malloc_provider(void)
{
    Dl_info info;
    void *(*m)(size_t) = malloc;
    if (dladdr((void *)(uintptr_t)m, &info) && info.dli_fname) {
        const char *slash = strrchr(info.dli_fname, '/');
        return slash ? slash + 1 : info.dli_fname;
    }
    return "?";
}

/* The process's peak resident set (VmHWM of /proc/self/status) in KiB, or
 * 0. Read with open/read into a stack buffer: no allocation. This is the
 * peak of this program alone; the parent's rusage ru_maxrss would also count
 * the memory of the process that forked us before it exec'ed. */
static long peak_rss_kib(void)
{
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    const char *p = strstr(buf, "VmHWM:");
    return p ? strtol(p + 6, NULL, 10) : 0;
}

int wl_finish(const char *name, const struct wl_args *a, uint64_t got, uint64_t expected)
{
    double ms = (wl_now() - wl_start_time) * 1e3;
    uint64_t errs = atomic_load(&wl_errors);
    int ok = got == expected && errs == 0;
    printf("%s threads=%d n=%ld seed=%" PRIu64 " checksum=0x%016" PRIx64
           " expected=0x%016" PRIx64 " errors=%" PRIu64 " ms=%.1f peak_kib=%ld malloc=%s %s\n",
           name, a->threads, a->n, a->seed, got, expected, errs, ms, peak_rss_kib(), malloc_provider(),
           ok ? "OK" : "FAIL");
    fflush(stdout);
    return ok ? 0 : 1;
}

int wl_run_checked(const char *name, const struct wl_args *a, void *(*fn)(void *),
                   uint64_t (*expect)(int thread, long n, uint64_t seed))
{
    struct wl_worker *w = calloc((size_t)a->threads, sizeof *w);
    if (!w)
        return 1;
    for (int i = 0; i < a->threads; i++)
        w[i] = (struct wl_worker){.id = i, .n = a->n, .seed = a->seed};
    wl_run_threads(a->threads, fn, w, sizeof *w);
    uint64_t got = 0, expected = 0;
    for (int t = 0; t < a->threads; t++) {
        got += w[t].sum;
        expected += expect(t, a->n, a->seed);
    }
    free(w);
    return wl_finish(name, a, got, expected);
}
