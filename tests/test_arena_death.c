/* Arena misuse that must abort with one exact line (issue 4).
 *
 * Each case runs in a forked child whose stderr goes to a pipe. Before the
 * misuse, the child writes the line(s) it expects, address included, to a
 * second pipe; the parent then requires SIGABRT and a stderr that is exactly
 * one of those lines ("mapalloc: <what> 0x<hex address>\n").
 * With an argument, only the case of that name runs. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mapalloc.h"

static int failures;
#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
            failures++;                                                                \
        }                                                                              \
    } while (0)

static int expect_fd = -1;

/* In the child: one acceptable stderr line. */
static void expect(const char *what, const void *addr)
{
    char line[256];
    int n = snprintf(line, sizeof line, "mapalloc: %s 0x%lx\n", what, (unsigned long)(uintptr_t)addr);
    if (write(expect_fd, line, (size_t)n) != n)
        _exit(99);
}

/* ---- the cases: each must not return ---- */

static mapalloc_arena *destroyed(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    mapalloc_arena_destroy(a);
    return a;
}

static void malloc_after_destroy(void)
{
    mapalloc_arena *a = destroyed();
    expect("use of a destroyed arena", a);
    void *p = mapalloc_arena_malloc(a, 32);
    (void)p;
}

/* The thread had the arena in its cache of recent arenas. */
static void malloc_after_destroy_cached(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    for (int i = 0; i < 10; i++)
        mapalloc_arena_free(a, mapalloc_arena_malloc(a, 32));
    mapalloc_arena_destroy(a);
    expect("use of a destroyed arena", a);
    void *p = mapalloc_arena_malloc(a, 32);
    (void)p;
}

static mapalloc_arena *thread_arena;
static void *use_arena(void *arg)
{
    (void)arg;
    void *p = mapalloc_arena_malloc(thread_arena, 100);
    mapalloc_arena_free(thread_arena, p);
    return NULL;
}

/* Another thread used the arena and is still running when it is destroyed;
 * its next call aborts. */
static pthread_barrier_t barrier;
static void *use_destroy_use(void *arg)
{
    (void)arg;
    void *p = mapalloc_arena_malloc(thread_arena, 100);
    mapalloc_arena_free(thread_arena, p);
    pthread_barrier_wait(&barrier); /* main destroys */
    pthread_barrier_wait(&barrier);
    expect("use of a destroyed arena", thread_arena);
    p = mapalloc_arena_malloc(thread_arena, 100);
    return p;
}

static void malloc_after_destroy_other_thread(void)
{
    thread_arena = mapalloc_arena_create(NULL);
    pthread_barrier_init(&barrier, NULL, 2);
    pthread_t t;
    pthread_create(&t, NULL, use_destroy_use, NULL);
    pthread_barrier_wait(&barrier);
    mapalloc_arena_destroy(thread_arena);
    pthread_barrier_wait(&barrier);
    pthread_join(t, NULL);
}

static void calloc_after_destroy(void)
{
    mapalloc_arena *a = destroyed();
    expect("use of a destroyed arena", a);
    void *p = mapalloc_arena_calloc(a, 4, 8);
    (void)p;
}

static void realloc_after_destroy(void)
{
    mapalloc_arena *a = destroyed();
    expect("use of a destroyed arena", a);
    void *p = mapalloc_arena_realloc(a, NULL, 64);
    (void)p;
}

static void aligned_after_destroy(void)
{
    mapalloc_arena *a = destroyed();
    expect("use of a destroyed arena", a);
    void *p = mapalloc_arena_aligned_alloc(a, 256, 64);
    (void)p;
}

static void large_after_destroy(void)
{
    mapalloc_arena *a = destroyed();
    expect("use of a destroyed arena", a);
    void *p = mapalloc_arena_malloc(a, 4 << 20);
    (void)p;
}

static void free_after_destroy(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    void *p = mapalloc_arena_malloc(a, 32);
    mapalloc_arena_destroy(a);
    expect("use of a destroyed arena", a);
    mapalloc_arena_free(a, p);
}

static void reset_after_destroy(void)
{
    mapalloc_arena *a = destroyed();
    expect("use of a destroyed arena", a);
    mapalloc_arena_reset(a);
}

static void stats_after_destroy(void)
{
    mapalloc_arena *a = destroyed();
    struct mapalloc_arena_stats s;
    expect("use of a destroyed arena", a);
    mapalloc_arena_stats(a, &s);
}

/* A thread that used the arena exited; the arena is destroyed after. */
static void use_after_destroy_exited_thread(void)
{
    thread_arena = mapalloc_arena_create(NULL);
    pthread_t t;
    pthread_create(&t, NULL, use_arena, NULL);
    pthread_join(t, NULL);
    mapalloc_arena_destroy(thread_arena);
    expect("use of a destroyed arena", thread_arena);
    void *p = mapalloc_arena_malloc(thread_arena, 10);
    (void)p;
}

static void destroy_twice(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    void *p = mapalloc_arena_malloc(a, 100);
    (void)p;
    mapalloc_arena_destroy(a);
    expect("arena destroyed twice", a);
    mapalloc_arena_destroy(a);
}

static void destroy_twice_after_others(void)
{
    /* Other arenas created and destroyed in between do not hide it. */
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    mapalloc_arena_destroy(a);
    for (int i = 0; i < 20; i++)
        mapalloc_arena_destroy(mapalloc_arena_create(NULL));
    expect("arena destroyed twice", a);
    mapalloc_arena_destroy(a);
}

static void wrong_arena_small(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL), *b = mapalloc_arena_create(NULL);
    void *p = mapalloc_arena_malloc(a, 100);
    void *q = mapalloc_arena_malloc(b, 100);
    (void)q;
    expect("free into the wrong arena of", p);
    mapalloc_arena_free(b, p);
}

static void wrong_arena_large(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL), *b = mapalloc_arena_create(NULL);
    void *p = mapalloc_arena_malloc(a, 3 << 20);
    expect("free into the wrong arena of", p);
    mapalloc_arena_free(b, p);
}

static void wrong_arena_aligned(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL), *b = mapalloc_arena_create(NULL);
    void *p = mapalloc_arena_aligned_alloc(a, 1 << 20, 1000);
    expect("free into the wrong arena of", p);
    mapalloc_arena_free(b, p);
}

static void wrong_arena_realloc(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL), *b = mapalloc_arena_create(NULL);
    void *p = mapalloc_arena_malloc(a, 100);
    expect("free into the wrong arena of", p);
    p = mapalloc_arena_realloc(b, p, 5000);
}

static void heap_block_into_arena(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    void *p = mapalloc_malloc(100);
    expect("free into the wrong arena of", p);
    mapalloc_arena_free(a, p);
}

static void heap_large_into_arena(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    void *p = mapalloc_malloc(3 << 20);
    expect("free into the wrong arena of", p);
    mapalloc_arena_free(a, p);
}

static void heap_block_realloc_in_arena(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    void *p = mapalloc_malloc(100);
    expect("free into the wrong arena of", p);
    p = mapalloc_arena_realloc(a, p, 200);
}

/* A block of the reset arena: gone, whichever free is used. */
static void free_after_reset(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    void *keep = mapalloc_arena_malloc(a, 100);
    void *p = mapalloc_arena_malloc(a, 100);
    (void)keep;
    mapalloc_arena_reset(a);
    expect("free of invalid pointer", p);
    expect("double free of", p);
    mapalloc_arena_free(a, p);
}

static void mapalloc_free_after_reset(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    void *p = mapalloc_arena_malloc(a, 3000);
    mapalloc_arena_reset(a);
    expect("free of invalid pointer", p);
    expect("double free of", p);
    mapalloc_free(p);
}

static void large_free_after_reset(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    void *p = mapalloc_arena_malloc(a, 3 << 20);
    mapalloc_arena_reset(a);
    expect("free of invalid pointer", p);
    expect("double free of", p);
    mapalloc_arena_free(a, p);
}

/* The page stays in place through the reset; a thread that did not
 * allocate the block frees it after. */
static void *free_thread_arena_block(void *arg)
{
    mapalloc_arena_free(thread_arena, arg);
    return NULL;
}

static void free_after_reset_other_thread(void)
{
    thread_arena = mapalloc_arena_create(NULL);
    void *p = mapalloc_arena_malloc(thread_arena, 100);
    mapalloc_arena_reset(thread_arena);
    expect("free of invalid pointer", p);
    expect("double free of", p);
    pthread_t t;
    pthread_create(&t, NULL, free_thread_arena_block, p);
    pthread_join(t, NULL);
}

/* Reset with RESET_RETURNS and a reservation: the region stays mapped. */
static void free_after_reset_returns(void)
{
    struct mapalloc_arena_options o = {MAPALLOC_ARENA_RESET_RETURNS, 0, 4 << 20};
    mapalloc_arena *a = mapalloc_arena_create(&o);
    void *p = mapalloc_arena_malloc(a, 64);
    mapalloc_arena_reset(a);
    expect("free of invalid pointer", p);
    expect("double free of", p);
    mapalloc_arena_free(a, p);
}

/* After destroy, a block of the arena freed with mapalloc_free. */
static void mapalloc_free_after_destroy(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    void *p = mapalloc_arena_malloc(a, 64);
    mapalloc_arena_destroy(a);
    expect("free of invalid pointer", p);
    expect("double free of", p);
    mapalloc_free(p);
}

static void double_free_in_arena(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    void *p = mapalloc_arena_malloc(a, 64);
    void *q = mapalloc_arena_malloc(a, 64);
    (void)q;
    mapalloc_arena_free(a, p);
    expect("double free of", p);
    mapalloc_arena_free(a, p);
}

/* Past the first few, a page's blocks are handed out fresh, never having
 * been on a free list: a double free is still caught, and so is a free of
 * the next block, not handed out yet. The 20th block of 64 bytes is one. */
static mapalloc_arena *fresh_arena;
static char *fresh_block(void)
{
    fresh_arena = mapalloc_arena_create(NULL);
    char *p = NULL;
    for (int i = 0; i < 20; i++)
        p = mapalloc_arena_malloc(fresh_arena, 64);
    return p;
}

static void double_free_fresh_in_arena(void)
{
    char *p = fresh_block();
    mapalloc_arena_free(fresh_arena, p);
    expect("double free of", p);
    mapalloc_arena_free(fresh_arena, p);
}

static void free_not_handed_out_in_arena(void)
{
    char *next = fresh_block() + 64;
    expect("free of invalid pointer", next);
    mapalloc_arena_free(fresh_arena, next);
}

static void double_free_large_in_arena(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    void *p = mapalloc_arena_malloc(a, 3 << 20);
    mapalloc_arena_free(a, p);
    expect("double free of", p);
    expect("free of invalid pointer", p);
    mapalloc_arena_free(a, p);
}

static void invalid_pointer_into_arena(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    char *p = mapalloc_arena_malloc(a, 64);
    expect("free of invalid pointer", p + 8);
    mapalloc_arena_free(a, p + 8);
}

static const struct {
    const char *name;
    void (*fn)(void);
} cases[] = {
    {"malloc_after_destroy", malloc_after_destroy},
    {"malloc_after_destroy_cached", malloc_after_destroy_cached},
    {"malloc_after_destroy_other_thread", malloc_after_destroy_other_thread},
    {"use_after_destroy_exited_thread", use_after_destroy_exited_thread},
    {"calloc_after_destroy", calloc_after_destroy},
    {"realloc_after_destroy", realloc_after_destroy},
    {"aligned_after_destroy", aligned_after_destroy},
    {"large_after_destroy", large_after_destroy},
    {"free_after_destroy", free_after_destroy},
    {"reset_after_destroy", reset_after_destroy},
    {"stats_after_destroy", stats_after_destroy},
    {"destroy_twice", destroy_twice},
    {"destroy_twice_after_others", destroy_twice_after_others},
    {"wrong_arena_small", wrong_arena_small},
    {"wrong_arena_large", wrong_arena_large},
    {"wrong_arena_aligned", wrong_arena_aligned},
    {"wrong_arena_realloc", wrong_arena_realloc},
    {"heap_block_into_arena", heap_block_into_arena},
    {"heap_large_into_arena", heap_large_into_arena},
    {"heap_block_realloc_in_arena", heap_block_realloc_in_arena},
    {"free_after_reset", free_after_reset},
    {"mapalloc_free_after_reset", mapalloc_free_after_reset},
    {"large_free_after_reset", large_free_after_reset},
    {"free_after_reset_returns", free_after_reset_returns},
    {"free_after_reset_other_thread", free_after_reset_other_thread},
    {"mapalloc_free_after_destroy", mapalloc_free_after_destroy},
    {"double_free_in_arena", double_free_in_arena},
    {"double_free_fresh_in_arena", double_free_fresh_in_arena},
    {"free_not_handed_out_in_arena", free_not_handed_out_in_arena},
    {"double_free_large_in_arena", double_free_large_in_arena},
    {"invalid_pointer_into_arena", invalid_pointer_into_arena},
};

/* Reads fd to its end into buf (NUL-terminated). */
static size_t read_all(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || n + (size_t)r >= cap - 1) {
            if (r > 0)
                n += (size_t)r;
            break;
        }
        n += (size_t)r;
    }
    buf[n] = 0;
    return n;
}

/* Under -fsanitize=undefined the child may print a sanitizer report
 * ("file:line:col: runtime error: ...") before the misuse line: it is
 * passed on to our stderr, and left out of the comparison. */
static void drop_sanitizer_lines(char *got)
{
    char *out = got;
    for (char *line = got; *line;) {
        char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) + 1 : strlen(line);
        int sanitizer = strstr(line, ": runtime error: ") != NULL &&
                        (end == NULL || strstr(line, ": runtime error: ") < end);
        if (sanitizer)
            fprintf(stderr, "note, from the child: %.*s", (int)len, line);
        else {
            memmove(out, line, len);
            out += len;
        }
        line += len;
    }
    *out = 0;
}

static void run_case(size_t i)
{
    int err[2], exp[2];
    if (pipe(err) != 0 || pipe(exp) != 0) {
        perror("pipe");
        exit(2);
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(err[0]);
        close(exp[0]);
        dup2(err[1], 2);
        close(err[1]);
        expect_fd = exp[1];
        cases[i].fn();
        _exit(0); /* the misuse went unnoticed */
    }
    close(err[1]);
    close(exp[1]);
    char got[4096], want[1024];
    /* The child's stderr is small; the expectation pipe is read first,
     * and it is closed by the child's death at the latest. */
    read_all(exp[0], want, sizeof want);
    read_all(err[0], got, sizeof got);
    close(err[0]);
    close(exp[0]);
    drop_sanitizer_lines(got);
    int status;
    waitpid(pid, &status, 0);
    int aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
    /* got must be exactly one of the expected lines. */
    int matched = 0;
    for (char *line = want; *line;) {
        char *end = strchr(line, '\n');
        if (end == NULL)
            break;
        size_t len = (size_t)(end - line) + 1;
        if (strlen(got) == len && strncmp(got, line, len) == 0)
            matched = 1;
        line = end + 1;
    }
    if (!aborted || !matched || want[0] == 0) {
        fprintf(stderr, "%s: %s; stderr was \"%s\"; expected one of \"%s\"\n", cases[i].name,
                WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "exited", got, want);
        failures++;
    }
    printf("%s: %s\n", cases[i].name, aborted && matched ? "ok" : "FAILED");
}

int main(int argc, char **argv)
{
    int ran = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int wanted = argc < 2;
        for (int k = 1; k < argc; k++)
            wanted |= strcmp(argv[k], cases[i].name) == 0;
        if (wanted) {
            run_case(i);
            ran++;
        }
    }
    CHECK(ran > 0);
    return failures ? 1 : 0;
}
