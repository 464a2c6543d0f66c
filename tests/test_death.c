/* Misuse must abort with one line on stderr naming it: "mapalloc: <misuse>
 * 0x<address>". Each case runs in a child process; the parent checks that the
 * child died of SIGABRT and what it wrote.
 *
 * Usage: test_death [case]... (all when none is named; --list lists them).
 * Linked against the library (not preloaded); the misuse goes through the
 * mapalloc_ names, so this works beside AddressSanitizer too.
 */
#include "check.h"
#include "mapalloc.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* What the abort line must contain, in one place: adjust here when the
 * wording changes. Every line starts with MSG_PREFIX and ends with the
 * address formatted as 0x%lx. */
#define MSG_PREFIX "mapalloc: "
#define MSG_DOUBLE_FREE "double free"
#define MSG_INVALID "invalid pointer"
#define MSG_BAD_SIZE "does not match"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

#define CHILD_TIMEOUT_MS 10000

/* The child tells the parent which address the message must name. */
static int addr_fd = -1;

static void tell(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    CHECK(write(addr_fd, &a, sizeof a) == (ssize_t)sizeof a);
}

static char global_block[256] __attribute__((aligned(64)));

/* ---- the misuses: each says which address it misuses, then does it ---- */

static void double_free_small(void)
{
    void *p = mapalloc_malloc(32);
    mapalloc_free(p);
    tell(p);
    mapalloc_free(p);
}

/* Not the most recently freed block: the check must not only look at the
 * head of the free list. */
static void double_free_small_not_last(void)
{
    void *p = mapalloc_malloc(48);
    void *others[10];
    for (int i = 0; i < 10; i++)
        others[i] = mapalloc_malloc(48);
    mapalloc_free(p);
    for (int i = 0; i < 10; i++)
        mapalloc_free(others[i]);
    tell(p);
    mapalloc_free(p);
}

static void double_free_medium(void)
{
    void *p = mapalloc_malloc(100 * KiB);
    void *q = mapalloc_malloc(100 * KiB); /* keeps the page from emptying */
    mapalloc_free(p);
    tell(p);
    mapalloc_free(p);
    mapalloc_free(q);
}

static void double_free_large(void)
{
    void *p = mapalloc_malloc(1 * MiB);
    mapalloc_free(p);
    tell(p);
    mapalloc_free(p);
}

static void *free_and_return(void *p)
{
    mapalloc_free(p);
    return NULL;
}

/* Freed once by another thread (one atomic push onto the page), then again
 * by the owner. */
static void double_free_remote(void)
{
    void *p = mapalloc_malloc(64);
    void *keep = mapalloc_malloc(64);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, free_and_return, p) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    tell(p);
    mapalloc_free(p);
    mapalloc_free(keep);
}

/* Freed twice by other threads (the second push must be caught too). */
static void double_free_remote_twice(void)
{
    void *p = mapalloc_malloc(64);
    void *keep = mapalloc_malloc(64);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, free_and_return, p) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    tell(p);
    CHECK(pthread_create(&t, NULL, free_and_return, p) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    mapalloc_free(keep);
}

/* The second free comes after the block's page emptied and went back to its
 * region: the block no longer exists, so either name is right. */
static void double_free_emptied_page(void)
{
    enum { N = 200 };
    void *p[N];
    for (int i = 0; i < N; i++)
        p[i] = mapalloc_malloc(1000); /* several pages of one class */
    void *other = mapalloc_malloc(5000); /* the region stays in use */
    for (int i = 0; i < N; i++)
        mapalloc_free(p[i]);
    tell(p[0]);
    mapalloc_free(p[0]);
    mapalloc_free(other);
}

/* The second free comes after trim gave the whole region back. */
static void double_free_after_trim(void)
{
    void *p = mapalloc_malloc(3000);
    mapalloc_free(p);
    (void)mapalloc_trim(0);
    tell(p);
    mapalloc_free(p);
}

/* Many large frees between the two: the record of the first may be gone. */
static void double_free_large_much_later(void)
{
    void *p = mapalloc_malloc(1 * MiB);
    mapalloc_free(p);
    for (int i = 0; i < 300; i++)
        mapalloc_free(mapalloc_malloc(512 * KiB + (size_t)i * 4096));
    tell(p);
    mapalloc_free(p);
}

static void free_stack(void)
{
    char local[64] __attribute__((aligned(16)));
    memset(local, 0, sizeof local);
    tell(local);
    mapalloc_free(local);
}

static void free_global(void)
{
    tell(global_block);
    mapalloc_free(global_block);
}

static void free_interior_small(void)
{
    char *p = mapalloc_malloc(256);
    tell(p + 64);
    mapalloc_free(p + 64);
}

static void free_interior_medium(void)
{
    char *p = mapalloc_malloc(64 * KiB);
    tell(p + 4096);
    mapalloc_free(p + 4096);
}

static void free_interior_large(void)
{
    char *p = mapalloc_malloc(2 * MiB);
    tell(p + 4096);
    mapalloc_free(p + 4096);
}

static void free_misaligned_small(void)
{
    char *p = mapalloc_malloc(64);
    tell(p + 1);
    mapalloc_free(p + 1);
}

static void free_misaligned_large(void)
{
    char *p = mapalloc_malloc(1 * MiB);
    tell(p + 8);
    mapalloc_free(p + 8);
}

/* A block from the C library's malloc (glibc's, or the sanitizer's). */
static void free_libc_block(void)
{
    void *p = malloc(100);
    CHECK(p != NULL);
    tell(p);
    mapalloc_free(p);
}

/* An address where nothing is mapped. */
static void free_wild(void)
{
    void *p = (void *)(uintptr_t)0x7e0000123450ULL;
    tell(p);
    mapalloc_free(p);
}

static void free_sized_wrong_small(void)
{
    void *p = mapalloc_malloc(100);
    tell(p);
    mapalloc_free_sized(p, 5000);
}

static void free_sized_wrong_large(void)
{
    void *p = mapalloc_malloc(1 * MiB);
    tell(p);
    mapalloc_free_sized(p, 100);
}

static void realloc_stack(void)
{
    char local[64] __attribute__((aligned(16)));
    memset(local, 0, sizeof local);
    tell(local);
    void *q = mapalloc_realloc(local, 1000);
    (void)q;
}

static void realloc_freed_large(void)
{
    void *p = mapalloc_malloc(1 * MiB);
    mapalloc_free(p);
    tell(p);
    void *q = mapalloc_realloc(p, 2 * MiB);
    (void)q;
}

static const struct death_case {
    const char *name;
    void (*run)(void);
    const char *msg; /* what the line must name; "a|b": either */
} cases[] = {
    {"double_free_small", double_free_small, MSG_DOUBLE_FREE},
    {"double_free_small_not_last", double_free_small_not_last, MSG_DOUBLE_FREE},
    {"double_free_medium", double_free_medium, MSG_DOUBLE_FREE},
    {"double_free_large", double_free_large, MSG_DOUBLE_FREE},
    {"double_free_remote", double_free_remote, MSG_DOUBLE_FREE},
    {"double_free_remote_twice", double_free_remote_twice, MSG_DOUBLE_FREE},
    {"double_free_emptied_page", double_free_emptied_page, MSG_DOUBLE_FREE "|" MSG_INVALID},
    {"double_free_after_trim", double_free_after_trim, MSG_DOUBLE_FREE "|" MSG_INVALID},
    {"double_free_large_much_later", double_free_large_much_later, MSG_DOUBLE_FREE "|" MSG_INVALID},
    {"free_stack", free_stack, MSG_INVALID},
    {"free_global", free_global, MSG_INVALID},
    {"free_interior_small", free_interior_small, MSG_INVALID},
    {"free_interior_medium", free_interior_medium, MSG_INVALID},
    {"free_interior_large", free_interior_large, MSG_INVALID},
    {"free_misaligned_small", free_misaligned_small, MSG_INVALID},
    {"free_misaligned_large", free_misaligned_large, MSG_INVALID},
    {"free_libc_block", free_libc_block, MSG_INVALID},
    {"free_wild", free_wild, MSG_INVALID},
    {"free_sized_wrong_small", free_sized_wrong_small, MSG_BAD_SIZE},
    {"free_sized_wrong_large", free_sized_wrong_large, MSG_BAD_SIZE},
    {"realloc_stack", realloc_stack, MSG_INVALID},
    {"realloc_freed_large", realloc_freed_large, MSG_DOUBLE_FREE},
};
#define NCASES (sizeof cases / sizeof cases[0])

static long ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* Whether line holds one of the '|'-separated alternatives of msg. */
static bool names_misuse(const char *line, const char *msg)
{
    for (;;) {
        size_t n = strcspn(msg, "|");
        char alt[128];
        snprintf(alt, sizeof alt, "%.*s", (int)n, msg);
        if (strstr(line, alt) != NULL)
            return true;
        if (msg[n] == '\0')
            return false;
        msg += n + 1;
    }
}

/* Runs one case; returns true when the child aborted as it must. */
static bool run_case(const struct death_case *c)
{
    int err[2], addr[2];
    CHECK(pipe(err) == 0 && pipe(addr) == 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        close(err[0]);
        close(addr[0]);
        dup2(err[1], 2);
        close(err[1]);
        addr_fd = addr[1];
        c->run();
        /* Still here: the misuse went unnoticed. */
        fprintf(stderr, "(no abort)\n");
        _exit(3);
    }
    close(err[1]);
    close(addr[1]);

    /* Read stderr to the end (the child's exit closes it), with a timeout. */
    char out[4096];
    size_t len = 0;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bool timed_out = false;
    for (;;) {
        long left = CHILD_TIMEOUT_MS - ms_since(&t0);
        if (left <= 0) {
            timed_out = true;
            break;
        }
        struct pollfd pfd = {err[0], POLLIN, 0};
        int r = poll(&pfd, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        CHECK(r >= 0);
        if (r == 0)
            continue;
        ssize_t n = read(err[0], out + len, sizeof out - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == sizeof out - 1)
            break;
    }
    out[len] = '\0';
    if (timed_out)
        kill(pid, SIGKILL);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    uintptr_t a = 0;
    ssize_t got = read(addr[0], &a, sizeof a);
    close(err[0]);
    close(addr[0]);

    char want_addr[32];
    snprintf(want_addr, sizeof want_addr, "0x%lx", (unsigned long)a);
    bool ok = true;
    const char *why = "";
    const char *line = strstr(out, MSG_PREFIX);
    if (timed_out) {
        ok = false, why = "the child hung";
    } else if (got != (ssize_t)sizeof a) {
        ok = false, why = "the child failed before the misuse";
    } else if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT) {
        ok = false, why = WIFSIGNALED(status) ? "killed by another signal than SIGABRT"
                                               : "exited instead of aborting";
    } else if (line == NULL) {
        ok = false, why = "no line starting with \"" MSG_PREFIX "\" on stderr";
    } else {
        size_t line_len = strcspn(line, "\n");
        char copy[512];
        snprintf(copy, sizeof copy, "%.*s", (int)line_len, line);
        const char *at = strstr(copy, want_addr);
        if (!names_misuse(copy, c->msg))
            ok = false, why = "the line does not name the misuse";
        else if (at == NULL || (at[strlen(want_addr)] != '\0' && at[strlen(want_addr)] != ' '))
            ok = false, why = "the line does not end with the address";
        else if (line != out || line[line_len] != '\n' || line[line_len + 1] != '\0')
            ok = false, why = "more than one line on stderr";
    }
    if (ok) {
        printf("%-28s ok: %.*s\n", c->name, (int)strcspn(out, "\n"), out);
    } else {
        printf("%-28s FAILED: %s\n    status %#x (%s %d), expected \"%s\" and %s\n"
               "    stderr: %s\n",
               c->name, why, status, WIFSIGNALED(status) ? "signal" : "exit",
               WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), c->msg, want_addr,
               len ? out : "(empty)\n");
    }
    return ok;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (size_t k = 0; k < NCASES; k++)
            printf("%s\n", cases[k].name);
        return 0;
    }
    int failed = 0, ran = 0;
    for (int a = 1; a < argc; a++) {
        size_t k = 0;
        while (k < NCASES && strcmp(cases[k].name, argv[a]) != 0)
            k++;
        CHECKF(k < NCASES, "no case named %s", argv[a]);
    }
    for (size_t k = 0; k < NCASES; k++) {
        bool run = argc == 1;
        for (int a = 1; a < argc; a++)
            run = run || strcmp(cases[k].name, argv[a]) == 0;
        if (!run)
            continue;
        ran++;
        if (!run_case(&cases[k]))
            failed++;
    }
    printf("death: %d of %d cases aborted as they must\n", ran - failed, ran);
    return failed == 0 ? 0 : 1;
}
