/* The program the heap profiler's tests profile (tests/prof_test.py runs it
 * under the preload): allocations from three known functions in known byte
 * proportions, 60/30/10, in several settings.
 *
 *   prof_prog split [MiB]   the three functions, interleaved at random, each
 *                           with its own mix of small, medium and large
 *                           sizes, MiB in all (default 300), kept live until
 *                           exit; prints the bytes each allocated
 *   prof_prog leak [MiB]    the same, then frees every block of alloc_sixty,
 *                           three in four of alloc_ten's, none of
 *                           alloc_thirty's (two leaks, the larger first);
 *                           prints the bytes alloc_ten leaked
 *   prof_prog threads [MiB] one thread per function
 *   prof_prog fork [MiB]    alloc_sixty, a fork whose child runs alloc_ten
 *                           and exits, then alloc_thirty in the parent
 *   prof_prog signal FILE   threads allocate while the program sends itself
 *                           prof_signal (SIGUSR2) five times, waiting each time
 *                           for FILE.<n> to appear
 *   prof_prog sigframe [alt] allocations inside a signal handler that
 *                           interrupted interrupted_loop in a thread (alt: on
 *                           a sigaltstack mapped above the thread's stack)
 *   prof_prog tinystack     allocations from a thread with a 16 KiB stack,
 *                           deep in a recursion
 *   prof_prog steps [MiB]   MiB in twenty steps 30 ms apart, then half of it
 *                           freed, 200 ms more: a timeline with a shape
 *   prof_prog dlopen        dlopen and dlclose in a loop (the loader
 *                           allocates with its lock held) while threads
 *                           allocate
 *
 * The functions are exported (-rdynamic) so that the leak report can name
 * them from the dynamic symbol table; the stripped copy the tests make has
 * none. Nothing here calls the allocator's own API: only malloc and free. */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "prof_split.h"
#include "rng.h"

#define MiB ((size_t)1 << 20)
#define NOINLINE __attribute__((noinline, used))

struct blocks {
    void **v;
    size_t *sizes;
    size_t n, cap;
    size_t bytes;
};

static void keep(struct blocks *b, void *p, size_t size)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 4096;
        b->v = realloc(b->v, b->cap * sizeof *b->v);
        b->sizes = realloc(b->sizes, b->cap * sizeof *b->sizes);
        if (b->v == NULL || b->sizes == NULL)
            abort();
    }
    b->sizes[b->n] = size;
    b->v[b->n++] = p;
    b->bytes += size;
}

/* Frees the blocks but every k-th (k = 0: all of them) and the lists;
 * returns the bytes of those kept, from then on leaked. */
static size_t drop_but(struct blocks *b, size_t k)
{
    size_t kept = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (k != 0 && i % k == 0)
            kept += b->sizes[i];
        else
            free(b->v[i]);
    }
    free(b->v);
    free(b->sizes);
    memset(b, 0, sizeof *b);
    return kept;
}

static void drop(struct blocks *b)
{
    drop_but(b, 0);
}

static inline __attribute__((always_inline)) void *touch(size_t size)
{
    char *p = malloc(size);
    if (p == NULL)
        abort();
    p[0] = 1;
    p[size - 1] = 2;
    return p;
}

/* Each function has its own sizes: small ones for sixty, medium ones for
 * thirty, a mix reaching into large blocks for ten. */
NOINLINE void *alloc_sixty(wl_rng *r, size_t *size)
{
    *size = wl_range(r, 1, 600);
    return touch(*size);
}

NOINLINE void *alloc_thirty(wl_rng *r, size_t *size)
{
    *size = wl_range(r, 600, 48 << 10);
    return touch(*size);
}

NOINLINE void *alloc_ten(wl_rng *r, size_t *size)
{
    *size = wl_below(r, 4) == 0 ? wl_range(r, 600 << 10, 3 << 20) : wl_range(r, 16, 200 << 10);
    return touch(*size);
}

typedef void *(*alloc_fn)(wl_rng *, size_t *);
static alloc_fn const fns[3] = {alloc_sixty, alloc_thirty, alloc_ten};
static const char *const names[3] = {"alloc_sixty", "alloc_thirty", "alloc_ten"};

/* Runs function f until it allocated target bytes. */
static void run_one(int f, size_t target, struct blocks *b, uint64_t seed)
{
    wl_rng r;
    wl_rng_init(&r, seed, (uint64_t)f);
    while (b->bytes < target) {
        size_t size;
        void *p = fns[f](&r, &size);
        keep(b, p, size);
    }
}

/* The three at random, weighted by how far each is from its target. */
static void run_interleaved(size_t total, struct blocks b[3])
{
    wl_rng r[3], pick;
    for (int f = 0; f < 3; f++)
        wl_rng_init(&r[f], 7, (uint64_t)f);
    wl_rng_init(&pick, 7, 9);
    for (;;) {
        size_t done[3] = {b[0].bytes, b[1].bytes, b[2].bytes};
        int f = prof_next(&pick, total, done);
        if (f < 0)
            break;
        size_t size;
        void *p = fns[f](&r[f], &size);
        keep(&b[f], p, size);
    }
}

static void print_bytes(struct blocks b[3])
{
    for (int f = 0; f < 3; f++)
        printf("%s %zu\n", names[f], b[f].bytes);
    fflush(stdout);
}

static size_t arg_mib(int argc, char **argv, size_t def)
{
    return (argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : def) * MiB;
}

static int part_split(size_t total, bool leak)
{
    struct blocks b[3] = {{0}};
    run_interleaved(total, b);
    print_bytes(b);
    if (leak) {
        drop(&b[0]);
        printf("leaked alloc_ten %zu\n", drop_but(&b[2], 4));
        drop_but(&b[1], 1); /* the lists go, every block stays */
    }
    return 0;
}

struct job {
    int f;
    size_t target;
    struct blocks b;
};

static void *thread_job(void *arg)
{
    struct job *j = arg;
    run_one(j->f, j->target, &j->b, 11);
    return NULL;
}

static int part_threads(size_t total)
{
    struct job jobs[3];
    pthread_t t[3];
    for (int f = 0; f < 3; f++) {
        jobs[f] = (struct job){f, total / 100 * prof_share[f], {0}};
        if (pthread_create(&t[f], NULL, thread_job, &jobs[f]) != 0)
            return 1;
    }
    for (int f = 0; f < 3; f++)
        pthread_join(t[f], NULL);
    struct blocks b[3] = {jobs[0].b, jobs[1].b, jobs[2].b};
    print_bytes(b);
    return 0;
}

static int part_fork(size_t total)
{
    struct blocks b[3] = {{0}};
    run_one(0, total / 100 * prof_share[0], &b[0], 3);
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        run_one(2, total / 100 * prof_share[2], &b[2], 4);
        exit(0);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return 1;
    run_one(1, total / 100 * prof_share[1], &b[1], 5);
    printf("child %d\n", (int)pid);
    print_bytes(b);
    return 0;
}

static void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000 * 1000};
    nanosleep(&t, NULL);
}

static int part_steps(size_t total)
{
    struct blocks b[3] = {{0}};
    for (int step = 1; step <= 20; step++) {
        run_interleaved(total / 20 * (size_t)step, b);
        sleep_ms(30);
    }
    print_bytes(b);
    drop(&b[0]);
    sleep_ms(200);
    return 0;
}

/* ---- prof_signal while threads allocate ---- */

static volatile int stop;

static void *churn(void *arg)
{
    int f = (int)(intptr_t)arg;
    wl_rng r;
    wl_rng_init(&r, 21, (uint64_t)f);
    void *ring[256] = {0};
    for (unsigned i = 0; !stop; i++) {
        size_t size;
        free(ring[i % 256]);
        ring[i % 256] = fns[f](&r, &size);
    }
    for (int i = 0; i < 256; i++)
        free(ring[i]);
    return NULL;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && st.st_size > 0;
}

static int part_signal(const char *file)
{
    pthread_t t[3];
    for (int f = 0; f < 3; f++)
        if (pthread_create(&t[f], NULL, churn, (void *)(intptr_t)f) != 0)
            return 1;
    struct timespec pause = {0, 100 * 1000 * 1000};
    nanosleep(&pause, NULL);
    int rc = 0;
    for (int n = 1; n <= 5 && rc == 0; n++) {
        char path[4096];
        snprintf(path, sizeof path, "%s.%d", file, n);
        kill(getpid(), SIGUSR2);
        int waited = 0;
        while (!exists(path) && waited++ < 500) {
            struct timespec ms10 = {0, 10 * 1000 * 1000};
            nanosleep(&ms10, NULL);
        }
        if (!exists(path)) {
            fprintf(stderr, "no profile %s after the signal\n", path);
            rc = 1;
        }
        nanosleep(&pause, NULL);
    }
    stop = 1;
    for (int f = 0; f < 3; f++)
        pthread_join(t[f], NULL);
    return rc;
}

/* ---- a signal handler's frame ---- */

static volatile sig_atomic_t handled;
static void *volatile from_handler[64];

NOINLINE void handler_alloc(void)
{
    for (int i = 0; i < 64; i++)
        from_handler[i] = touch(4096);
}

#define ALTSTACK_SIZE ((size_t)64 << 10)

static void on_alarm(int sig)
{
    (void)sig;
    handler_alloc();
    handled = 1;
}

/* Spins (allocating nothing, so the handler's allocations do not land in
 * an allocator call) until the timer's signal was handled. */
NOINLINE void interrupted_loop(void)
{
    volatile unsigned long spins = 0;
    while (!handled)
        spins++;
}

static void *sigframe_job(void *altstack)
{
    if (altstack != NULL) {
        /* The case an unwinder that takes every caller's frame to lie above
         * its callee's gets wrong: the handler's stack above the one the
         * signal interrupted. */
        volatile char here = 0;
        if ((uintptr_t)altstack < (uintptr_t)&here) {
            fprintf(stderr, "prof_prog: the alternate stack is not above the thread's\n");
            exit(3);
        }
        stack_t ss = {.ss_sp = altstack, .ss_size = ALTSTACK_SIZE, .ss_flags = 0};
        if (sigaltstack(&ss, NULL) != 0)
            exit(3);
    }
    sigset_t alarm;
    sigemptyset(&alarm);
    sigaddset(&alarm, SIGALRM);
    pthread_sigmask(SIG_UNBLOCK, &alarm, NULL);
    struct itimerval it = {{0, 0}, {0, 20000}};
    setitimer(ITIMER_REAL, &it, NULL);
    interrupted_loop();
    return NULL;
}

/* The signal is taken by a thread (the main one blocks it) whose stack was
 * mapped after the alternate stack, so below it. */
static int part_sigframe(bool alt)
{
    void *altstack = NULL;
    if (alt) {
        altstack = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (altstack == MAP_FAILED)
            return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = alt ? SA_ONSTACK : 0;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    sigset_t alarm;
    sigemptyset(&alarm);
    sigaddset(&alarm, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &alarm, NULL);
    pthread_t t;
    if (pthread_create(&t, NULL, sigframe_job, altstack) != 0)
        return 1;
    pthread_join(t, NULL);
    return 0;
}

/* ---- a thread with a tiny stack ---- */

NOINLINE void *deep(int depth, wl_rng *r)
{
    volatile char pad[256];
    pad[0] = (char)depth;
    if (depth > 0)
        return deep(depth - 1, r);
    size_t size;
    (void)pad[0];
    return alloc_thirty(r, &size);
}

static void *tiny_job(void *arg)
{
    (void)arg;
    wl_rng r;
    wl_rng_init(&r, 5, 5);
    for (int i = 0; i < 2000; i++)
        free(deep(i % 20, &r));
    return NULL;
}

static int part_tinystack(void)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 16 << 10);
    pthread_t t;
    if (pthread_create(&t, &attr, tiny_job, NULL) != 0)
        return 1;
    pthread_join(t, NULL);
    return 0;
}

/* ---- inside the dynamic loader ---- */

static int part_dlopen(void)
{
    pthread_t t[2];
    for (int f = 0; f < 2; f++)
        if (pthread_create(&t[f], NULL, churn, (void *)(intptr_t)f) != 0)
            return 1;
    const char *libs[] = {"libm.so.6", "libz.so.1", "libresolv.so.2"};
    for (int i = 0; i < 60; i++) {
        void *h = dlopen(libs[i % 3], RTLD_NOW | RTLD_LOCAL);
        if (h)
            dlclose(h);
    }
    stop = 1;
    for (int f = 0; f < 2; f++)
        pthread_join(t[f], NULL);
    return 0;
}

int main(int argc, char **argv)
{
    const char *part = argc > 1 ? argv[1] : "split";
    if (strcmp(part, "split") == 0)
        return part_split(arg_mib(argc, argv, 300), false);
    if (strcmp(part, "leak") == 0)
        return part_split(arg_mib(argc, argv, 300), true);
    if (strcmp(part, "threads") == 0)
        return part_threads(arg_mib(argc, argv, 300));
    if (strcmp(part, "fork") == 0)
        return part_fork(arg_mib(argc, argv, 300));
    if (strcmp(part, "signal") == 0 && argc > 2)
        return part_signal(argv[2]);
    if (strcmp(part, "sigframe") == 0)
        return part_sigframe(argc > 2 && strcmp(argv[2], "alt") == 0);
    if (strcmp(part, "tinystack") == 0)
        return part_tinystack();
    if (strcmp(part, "steps") == 0)
        return part_steps(arg_mib(argc, argv, 60));
    if (strcmp(part, "dlopen") == 0)
        return part_dlopen();
    fprintf(stderr, "unknown part %s\n", part);
    return 2;
}
