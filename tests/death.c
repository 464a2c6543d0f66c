/* The death-test harness: see death.h. */
#include "death.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHILD_SECONDS 10

/* From the library or the preload, whichever the program has; NULL in
 * neither (the profile is then what the environment says). */
extern int mapalloc_option_set(const char *name, long value) __attribute__((weak));
extern long mapalloc_option_get(const char *name) __attribute__((weak));

/* What the child says must happen, sent to the parent before the misuse. */
struct expectation {
    int fault;           /* 1: SIGSEGV in [lo, hi]; 0: the line */
    uintptr_t lo, hi;    /* the address the line names is lo */
    char msg[200];
};

static int expect_fd = -1;
static const char *case_msg;

static void send_expectation(const struct expectation *e)
{
    if (write(expect_fd, e, sizeof *e) != (ssize_t)sizeof *e)
        _exit(5);
}

void death_expect_line(const char *msg, const void *addr)
{
    struct expectation e = {0, (uintptr_t)addr, 0, ""};
    snprintf(e.msg, sizeof e.msg, "%s", msg ? msg : "");
    send_expectation(&e);
}

void death_expect(const void *addr)
{
    death_expect_line(case_msg, addr);
}

/* Says where the fault was, and dies of it: the faulting access runs
 * again with the default action. */
static void segv_handler(int sig, siginfo_t *si, void *ctx)
{
    (void)ctx;
    char line[64] = "death: SIGSEGV at 0x";
    size_t n = strlen(line);
    uintptr_t a = (uintptr_t)si->si_addr;
    char hex[17];
    int k = 0;
    do {
        hex[k++] = "0123456789abcdef"[a & 15];
        a >>= 4;
    } while (a);
    while (k > 0)
        line[n++] = hex[--k];
    line[n++] = '\n';
    if (write(2, line, n) < 0) {
        /* the parent sees the signal anyway */
    }
    signal(sig, SIG_DFL);
}

void death_expect_fault(const void *lo, const void *hi)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = segv_handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    struct expectation e = {1, (uintptr_t)lo, (uintptr_t)hi, ""};
    send_expectation(&e);
}

static size_t read_all(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    while (n < cap) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    return n;
}

/* In the child: the profile the case asks for, before the allocator
 * starts (it reads its options then). */
static bool choose_profile(unsigned flags)
{
    if (!(flags & DEATH_SECURE) && !(flags & DEATH_NOT_SECURE))
        return true;
    long want = (flags & DEATH_SECURE) != 0;
    if (mapalloc_option_set == NULL)
        return false;
    return mapalloc_option_set("secure", want) == 0 || mapalloc_option_get("secure") == want;
}

static void run_child(const struct death_case *c, int err_fd, int exp_fd)
{
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    alarm(CHILD_SECONDS);
    dup2(err_fd, 2);
    close(err_fd);
    expect_fd = exp_fd;
    case_msg = c->msg;
    if (!choose_profile(c->flags))
        _exit(6);
    c->run();
    _exit(3); /* still here: the misuse went unnoticed */
}

static const char *why_exit(int code)
{
    switch (code) {
    case 3: return "the misuse went unnoticed";
    case 5: return "the case could not say what to expect";
    case 6: return "the profile could not be chosen";
    default: return "the child exited";
    }
}

/* Under -fsanitize=undefined the child may print a sanitizer report
 * ("file:line:col: runtime error: ...") before the misuse line: it is
 * passed on to our stderr, and left out of the comparison. */
static void drop_sanitizer_lines(char *out)
{
    char *to = out;
    for (char *line = out; *line;) {
        char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) + 1 : strlen(line);
        char *report = strstr(line, ": runtime error: ");
        if (report != NULL && (end == NULL || report < end)) {
            fprintf(stderr, "note, from the child: %.*s", (int)len, line);
        } else {
            memmove(to, line, len);
            to += len;
        }
        line += len;
    }
    *to = 0;
}

/* Whether out is exactly the line "mapalloc: MSG 0xADDR\n". */
static bool is_the_line(const char *out, const char *msg, uintptr_t addr)
{
    char line[300];
    snprintf(line, sizeof line, "mapalloc: %s 0x%lx\n", msg, (unsigned long)addr);
    return strcmp(out, line) == 0;
}

static bool run_case(const struct death_case *c)
{
    int err[2], exp[2];
    if (pipe(err) != 0 || pipe(exp) != 0) {
        perror("pipe");
        return false;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return false;
    }
    if (pid == 0) {
        close(err[0]);
        close(exp[0]);
        run_child(c, err[1], exp[1]);
    }
    close(err[1]);
    close(exp[1]);
    static char out[1 << 16];
    size_t n = read_all(err[0], out, sizeof out - 1);
    out[n] = 0;
    drop_sanitizer_lines(out);
    n = strlen(out);
    struct expectation e;
    bool said = read_all(exp[0], (char *)&e, sizeof e) == sizeof e;
    close(err[0]);
    close(exp[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;

    const char *why = NULL;
    char want[400] = "";
    if (WIFEXITED(status))
        why = why_exit(WEXITSTATUS(status));
    else if (WTERMSIG(status) == SIGALRM)
        why = "the child hung";
    else if (!said)
        why = "the child died before it said what to expect";
    else if (e.fault) {
        snprintf(want, sizeof want, "SIGSEGV at an address in [0x%lx, 0x%lx]", (unsigned long)e.lo,
                 (unsigned long)e.hi);
        const char *at = strstr(out, "death: SIGSEGV at 0x");
        unsigned long fault = at ? strtoul(at + strlen("death: SIGSEGV at "), NULL, 16) : 0;
        if (WTERMSIG(status) != SIGSEGV || !at || fault < e.lo || fault > e.hi)
            why = "no fault where the guard is";
    } else {
        snprintf(want, sizeof want, "SIGABRT and the line \"mapalloc: %s 0x%lx\"%s%s%s", e.msg,
                 (unsigned long)e.lo, c->alt ? " or the same with \"" : "", c->alt ? c->alt : "",
                 c->alt ? "\"" : "");
        if (WTERMSIG(status) != SIGABRT)
            why = "killed by another signal than SIGABRT";
        else if (!is_the_line(out, e.msg, e.lo) && !(c->alt && is_the_line(out, c->alt, e.lo)))
            why = "stderr is not exactly the line";
    }
    if (why == NULL) {
        printf("%-34s ok: %.*s\n", c->name, (int)strcspn(out, "\n"), out);
        return true;
    }
    printf("%-34s FAILED: %s\n    expected %s\n    status %#x, stderr: %s%s", c->name, why,
           want[0] ? want : "(nothing said)", status, n ? out : "(empty)\n",
           n && out[n - 1] != '\n' ? "\n" : "");
    return false;
}

int death_main(int argc, char **argv, const struct death_case *cases, size_t count)
{
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < count; i++)
            printf("%s\n", cases[i].name);
        return 0;
    }
    for (int a = 1; a < argc; a++) {
        size_t i = 0;
        while (i < count && strcmp(cases[i].name, argv[a]) != 0)
            i++;
        if (i == count) {
            fprintf(stderr, "%s: no case named %s (see --list)\n", argv[0], argv[a]);
            return 2;
        }
    }
    int ran = 0, failed = 0;
    for (size_t i = 0; i < count; i++) {
        bool wanted = argc == 1;
        for (int a = 1; a < argc; a++)
            wanted = wanted || strcmp(cases[i].name, argv[a]) == 0;
        if (!wanted)
            continue;
        ran++;
        failed += !run_case(&cases[i]);
    }
    printf("death: %d of %d cases ended as they must\n", ran - failed, ran);
    return failed == 0 ? 0 : 1;
}
