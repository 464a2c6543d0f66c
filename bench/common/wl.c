/* Shared helpers for the whole-workload benchmarks; see wl.h. */
#include "wl.h"

#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

_Atomic uint64_t wl_errors;

static double wl_start_time, wl_duration;

/* The notes of the result line (wl_note). */
static char wl_notes[512];
static size_t wl_notes_len;

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

static double parse_seconds(const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !(v > 0)) {
        fprintf(stderr, "bad value for -d: %s\n", s);
        exit(2);
    }
    return v;
}

void wl_parse_timed(int argc, char **argv, struct wl_args *a, long default_n, const char *what,
                    double default_seconds)
{
    int timed = default_seconds >= 0, n_set = 0;
    long nproc = sysconf(_SC_NPROCESSORS_ONLN);
    *a = (struct wl_args){.threads = nproc > 0 ? (int)nproc : 1, .n = default_n, .seed = 42};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "-v")) {
            a->verbose = 1;
        } else if (timed && !strcmp(f, "-d") && i + 1 < argc) {
            a->duration = parse_seconds(argv[++i]);
        } else if ((!strcmp(f, "-t") || !strcmp(f, "-n") || !strcmp(f, "-s")) && i + 1 < argc) {
            long v = parse_long(argv[++i], f);
            if (f[1] == 't') {
                a->threads = v > 0 ? (int)v : 1;
                a->threads_set = 1;
            } else if (f[1] == 'n') {
                a->n = v > 0 ? v : 1;
                n_set = 1;
            } else {
                a->seed = (uint64_t)v;
            }
        } else {
            fprintf(stderr,
                    "usage: %s [-t threads] [-n N] [-s seed]%s [-v]\n"
                    "  -t  threads (default: nproc = %ld, unless the program says otherwise)\n",
                    argv[0], timed ? " [-d seconds]" : "", nproc);
            if (default_n > 0)
                fprintf(stderr, "  -n  %s (default %ld)\n", what, default_n);
            else
                fprintf(stderr, "  -n  %s\n", what);
            fprintf(stderr, "  -s  PRNG seed (default 42)\n%s",
                    timed ? "  -d  run for this many seconds instead of a fixed -n\n" : "");
            exit(strcmp(f, "-h") && strcmp(f, "--help") ? 2 : 0);
        }
    }
    if (default_seconds > 0 && !n_set && a->duration == 0)
        a->duration = default_seconds;
    wl_duration = a->duration;
    wl_start_time = wl_now();
}

int wl_past(double fraction)
{
    return wl_duration > 0 && wl_now() - wl_start_time >= fraction * wl_duration;
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

void wl_check_id(const void *p, size_t size, uint64_t id)
{
    uint64_t got;
    if (size >= WL_STAMP_MIN) {
        got = wl_check(p, size);
    } else {
        memcpy(&got, p, 8);
        if (size > 8 && ((const unsigned char *)p)[size - 1] != (unsigned char)(id & 0xff))
            wl_fail("broken block fill, id", id);
    }
    if (got != id)
        wl_fail("block holds another id than its own, id", id);
}

static uint64_t page_word(uint64_t id, size_t page) { return wl_tag(id * 65536 + page); }

void wl_stamp_pages(unsigned char *p, size_t size, size_t from, uint64_t id)
{
    for (size_t off = from; off + 8 <= size; off += WL_PAGE) {
        uint64_t v = page_word(id, off / WL_PAGE);
        memcpy(p + off, &v, 8);
    }
}

uint64_t wl_check_pages(const unsigned char *p, size_t size, uint64_t id)
{
    uint64_t n = 0;
    for (size_t off = 0; off + 8 <= size; off += WL_PAGE, n++) {
        uint64_t v;
        memcpy(&v, p + off, 8);
        if (v != page_word(id, off / WL_PAGE)) {
            wl_fail("large block page broken, id", id);
            break;
        }
    }
    return n;
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

double wl_run_threads(int n, void *(*fn)(void *), void *args, size_t arg_size)
{
    pthread_t *tids = malloc((size_t)n * sizeof *tids);
    if (!tids) {
        wl_fail("out of memory for threads", (uint64_t)n);
        return 0;
    }
    double t0 = wl_now();
    for (int i = 0; i < n; i++) {
        if (pthread_create(&tids[i], NULL, fn, (char *)args + (size_t)i * arg_size)) {
            wl_fail("pthread_create", (uint64_t)i);
            n = i;
            break;
        }
    }
    for (int i = 0; i < n; i++)
        pthread_join(tids[i], NULL);
    double seconds = wl_now() - t0;
    free(tids);
    return seconds;
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

void wl_queue_init(wl_queue *q, void **items, int cap, int producers)
{
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->not_empty, NULL);
    pthread_cond_init(&q->not_full, NULL);
    q->items = items;
    q->cap = cap;
    q->head = q->count = 0;
    q->producers = producers;
}

void wl_queue_push(wl_queue *q, void *item)
{
    pthread_mutex_lock(&q->mu);
    while (q->count == q->cap)
        pthread_cond_wait(&q->not_full, &q->mu);
    q->items[(q->head + q->count++) % q->cap] = item;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
}

void *wl_queue_pop(wl_queue *q)
{
    pthread_mutex_lock(&q->mu);
    while (q->count == 0 && q->producers > 0)
        pthread_cond_wait(&q->not_empty, &q->mu);
    void *item = NULL;
    if (q->count) {
        item = q->items[q->head];
        q->head = (q->head + 1) % q->cap;
        q->count--;
        pthread_cond_signal(&q->not_full);
    }
    pthread_mutex_unlock(&q->mu);
    return item;
}

void wl_queue_done(wl_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->producers--;
    pthread_cond_broadcast(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
}

const char *wl_provider(const void *fn)
{
    Dl_info info;
    if (fn && dladdr(fn, &info) && info.dli_fname) {
        const char *slash = strrchr(info.dli_fname, '/');
        return slash ? slash + 1 : info.dli_fname;
    }
    return "?";
}

void wl_note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = sizeof wl_notes - wl_notes_len;
    int n = vsnprintf(wl_notes + wl_notes_len, room, fmt, ap);
    va_end(ap);
    if (n > 0 && (size_t)n + 1 < room) {
        wl_notes_len += (size_t)n;
        wl_notes[wl_notes_len++] = ' ';
        wl_notes[wl_notes_len] = 0;
    } else {
        wl_notes[wl_notes_len] = 0; /* too long: dropped */
    }
}

void wl_note_ops(uint64_t ops, const char *unit, double seconds)
{
    wl_note("ops=%" PRIu64 " unit=%s ops_per_s=%.0f", ops, unit, seconds > 0 ? (double)ops / seconds : 0.0);
}

int wl_finish(const char *name, const struct wl_args *a, uint64_t got, uint64_t expected)
{
    double ms = (wl_now() - wl_start_time) * 1e3;
    uint64_t errs = atomic_load(&wl_errors);
    int ok = got == expected && errs == 0;
    /* The peak is this program's alone (VmHWM); the parent's rusage
     * ru_maxrss would also count the process that forked us. The provider
     * of malloc lets the harness confirm that LD_PRELOAD took effect. */
    long peak = wl_proc_field("/proc/self/status", "VmHWM");
    void *(*m)(size_t) = malloc;
    printf("%s threads=%d n=%ld seed=%" PRIu64 " checksum=0x%016" PRIx64
           " expected=0x%016" PRIx64 " errors=%" PRIu64 " ms=%.1f %speak_kib=%ld malloc=%s %s\n",
           name, a->threads, a->n, a->seed, got, expected, errs, ms, wl_notes, peak < 0 ? 0 : peak,
           wl_provider((const void *)(uintptr_t)m), ok ? "OK" : "FAIL");
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
