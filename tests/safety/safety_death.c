/* Misuse the general death tests do not cover: the secure profile's
 * canaries, write-after-free check and guard pages, and default-profile
 * cases that need a workload before the misuse (a free-list link
 * overwritten, a double free after much churn, a pointer into a region that
 * went back to the kernel, queries on a stack address).
 *
 * `safety_death CASE` runs CASE in a forked child whose stderr goes to a
 * pipe. Before the misuse the child sends the parent the address the report
 * must name (or, for a guard page, the range the fault must fall in). The
 * parent then checks the child died of the expected signal and that stderr
 * holds exactly one "mapalloc:" line, equal to the expected message and
 * address. The parent never calls mapalloc, so every child starts from an
 * allocator that was never initialised and reads MAPALLOC_OPTIONS afresh.
 * `safety_death --list` prints the case names. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mapalloc.h>

static int addr_fd = -1;

/* The child: the report must name exactly p. */
static void expect_at(const void *p)
{
    uintptr_t msg[2] = {(uintptr_t)p, 0};
    if (write(addr_fd, msg, sizeof msg) != (ssize_t)sizeof msg)
        _exit(5);
}

/* The child: a fault must happen at an address in [lo, hi]. */
static void expect_fault_in(const void *lo, const void *hi)
{
    uintptr_t msg[2] = {(uintptr_t)lo, (uintptr_t)hi};
    if (write(addr_fd, msg, sizeof msg) != (ssize_t)sizeof msg)
        _exit(5);
}

/* Keeps the compiler from removing stores to memory it believes dead. */
static void touch(volatile char *p, size_t i, char v)
{
    p[i] = v;
}

static void *opaque(void *p)
{
    __asm__ volatile("" : "+r"(p));
    return p;
}

/* ---- the secure profile ---- */

static void secure_canary_small(void)
{
    char *p = mapalloc_malloc(20);
    expect_at(p);
    touch(p, 20, 0); /* the pattern byte is odd: 0 and even bytes always differ */
    mapalloc_free(p);
}

static void secure_canary_medium(void)
{
    char *p = mapalloc_malloc(3000);
    expect_at(p);
    touch(p, 3000, 0);
    mapalloc_free(p);
}

/* Overflow by one byte, found when realloc frees the old block. */
static void secure_canary_realloc(void)
{
    char *p = mapalloc_malloc(100);
    expect_at(p);
    touch(p, 100, 'x');
    p = mapalloc_realloc(p, 5000);
    mapalloc_free(p);
}

/* Free one block among many of its class, write into it, then allocate that
 * class until the block comes back. Bytes 0 to 15 hold the list link and the
 * free tag; the write lands after them. */
static void secure_write_after_free(void)
{
    enum { N = 2000 };
    static char *blocks[N];
    for (int i = 0; i < N; i++)
        blocks[i] = mapalloc_malloc(64);
    char *victim = blocks[N / 2];
    mapalloc_free(victim);
    expect_at(victim);
    touch(victim, 40, 0x5a);
    for (long i = 0; i < 1000000; i++)
        if (mapalloc_malloc(64) == NULL)
            break;
}

/* The same with a medium block written at its last requested byte: the
 * check on reuse covers the whole block, not only its first words. */
static void secure_write_after_free_end(void)
{
    enum { N = 200, SIZE = 3000 };
    static char *blocks[N];
    for (int i = 0; i < N; i++)
        blocks[i] = mapalloc_malloc(SIZE);
    char *victim = blocks[N / 2];
    mapalloc_free(victim);
    expect_at(victim);
    touch(victim, SIZE - 1, 1);
    for (long i = 0; i < 100000; i++)
        if (mapalloc_malloc(SIZE) == NULL)
            break;
}

static void segv_handler(int sig, siginfo_t *si, void *ctx)
{
    (void)ctx;
    char line[64] = "safety_death: SIGSEGV at 0x";
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
        /* nothing to do: the parent sees the signal anyway */
    }
    signal(sig, SIG_DFL); /* the faulting store runs again and kills us */
}

static void catch_segv(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = segv_handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
}

/* A linear overflow out of a small block runs into the guard at the end of
 * its page (at most 2 MiB further). */
static void secure_guard_small(void)
{
    catch_segv();
    char *p = mapalloc_malloc(100);
    expect_fault_in(p, p + (2u << 20));
    for (size_t i = 0;; i += 16)
        touch(p, i, 1);
}

static void secure_guard_medium(void)
{
    catch_segv();
    char *p = mapalloc_malloc(100000);
    expect_fault_in(p + 100000, p + (2u << 20));
    for (size_t i = 100000;; i++)
        touch(p, i, 1);
}

/* A large block: the first byte after its last page faults. */
static void secure_guard_large(void)
{
    catch_segv();
    size_t size = (1u << 20) + 100;
    char *p = mapalloc_malloc(size);
    size_t end = (size + 4095) & ~(size_t)4095;
    expect_fault_in(p + size, p + end);
    for (size_t i = size;; i++)
        touch(p, i, 1);
}

/* ---- the default profile ---- */

/* A use-after-free write over the link of a freed block: the next
 * allocations of its class must stop at it, never return a wild pointer. */
static void link_overwrite(size_t size)
{
    enum { N = 64 };
    char *keep[N];
    for (int i = 0; i < N; i++)
        keep[i] = mapalloc_malloc(size);
    char *p = keep[N / 2];
    mapalloc_free(p);
    expect_at(p);
    memset(opaque(p), 0x41, 8);
    for (long i = 0; i < 1000000; i++) {
        char *q = mapalloc_malloc(size);
        if (q == NULL)
            break;
        /* A returned address must be a block we did not already hold. */
        for (int k = 0; k < N; k++)
            if (k != N / 2 && q == keep[k])
                _exit(6);
    }
}

static void link_overwrite_small(void)
{
    link_overwrite(48);
}

static void link_overwrite_medium(void)
{
    link_overwrite(6000);
}

static void *free_in_thread(void *p)
{
    mapalloc_free(p);
    return NULL;
}

/* The same through another thread's free: the block sits on the page's
 * remote list when its link is overwritten. */
static void link_overwrite_remote(void)
{
    enum { N = 64 };
    char *keep[N];
    for (int i = 0; i < N; i++)
        keep[i] = mapalloc_malloc(32);
    char *p = keep[N / 2];
    pthread_t t;
    if (pthread_create(&t, NULL, free_in_thread, p) != 0 || pthread_join(t, NULL) != 0)
        _exit(7);
    expect_at(p);
    memset(opaque(p), 0xee, 8);
    for (long i = 0; i < 1000000; i++)
        if (mapalloc_malloc(32) == NULL)
            break;
}

/* Allocations and frees of every other class between the two frees. Blocks
 * of p's own class are never asked for, so p cannot come back legitimately. */
static void churn_except(size_t lo, size_t hi, unsigned rounds)
{
    enum { LIVE = 512 };
    static void *live[LIVE];
    uint64_t x = 88172645463325252ull;
    for (unsigned i = 0; i < rounds; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t size = 1 + (size_t)(x % 70000);
        if (size >= lo && size <= hi)
            size = hi + 1 + size % 1000;
        unsigned k = (unsigned)(x >> 40) % LIVE;
        mapalloc_free(live[k]);
        live[k] = mapalloc_malloc(size);
    }
    for (unsigned k = 0; k < LIVE; k++) {
        mapalloc_free(live[k]);
        live[k] = NULL;
    }
}

/* A neighbour in the same page stays live, so the page stays p's: the
 * second free must be named a double free. */
static void double_free_churn_small(void)
{
    char *neighbour = mapalloc_malloc(40); /* class 33..48 */
    char *p = mapalloc_malloc(40);
    mapalloc_free(p);
    churn_except(33, 48, 200000);
    expect_at(p);
    mapalloc_free(p);
    mapalloc_free(neighbour);
}

static void double_free_churn_medium(void)
{
    char *neighbour = mapalloc_malloc(20000);
    char *p = mapalloc_malloc(20000);
    size_t usable = mapalloc_usable_size(p);
    mapalloc_free(p);
    churn_except(16385, usable, 200000); /* the class below 20000 ends at 16 KiB */
    expect_at(p);
    mapalloc_free(p);
    mapalloc_free(neighbour);
}

/* Without a neighbour the page empties and its slices serve other classes:
 * the block no longer exists, and either name is right. */
static void double_free_churn_emptied(void)
{
    char *p = mapalloc_malloc(40);
    mapalloc_free(p);
    churn_except(33, 48, 200000);
    expect_at(p);
    mapalloc_free(p);
}

/* A large block: churn of small and medium blocks only, so that no new
 * mapping can be placed at p (which would make p a live block again). */
static void double_free_churn_large(void)
{
    char *p = mapalloc_malloc(3u << 20);
    mapalloc_free(p);
    churn_except(70001, (size_t)-2, 200000); /* sizes up to 70000 only */
    expect_at(p);
    mapalloc_free(p);
}

static void *churn_thread(void *arg)
{
    (void)arg;
    churn_except(33, 48, 50000);
    return NULL;
}

/* Other threads come, allocate, free and exit between the two frees. */
static void double_free_after_threads(void)
{
    char *p = mapalloc_malloc(48);
    mapalloc_free(p);
    for (int i = 0; i < 4; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, churn_thread, NULL) != 0 || pthread_join(t, NULL) != 0)
            _exit(7);
    }
    expect_at(p);
    mapalloc_free(p);
}

static bool is_unmapped(const void *p)
{
    unsigned char v;
    void *page = (void *)((uintptr_t)p & ~(uintptr_t)4095);
    return mincore(page, 4096, &v) != 0 && errno == ENOMEM;
}

/* Fill more than two regions with blocks of one class, free them all and
 * trim: a pointer whose memory is gone. */
static char *pointer_into_returned_region(void)
{
    enum { N = 3 * 4096 }; /* 12 MiB of 1 KiB blocks */
    static char *blocks[N];
    for (int i = 0; i < N; i++) {
        blocks[i] = mapalloc_malloc(1024);
        if (blocks[i] == NULL)
            _exit(8);
        memset(blocks[i], 0x11, 1024);
    }
    for (int i = 0; i < N; i++)
        mapalloc_free(blocks[i]);
    mapalloc_trim(0);
    for (int i = N - 1; i >= 0; i--)
        if (is_unmapped(blocks[i]))
            return blocks[i];
    _exit(9); /* no region went back: nothing to test, and a finding */
}

static void trim_free_unmapped(void)
{
    char *p = pointer_into_returned_region();
    expect_at(p);
    mapalloc_free(p);
}

static void trim_realloc_unmapped(void)
{
    char *p = pointer_into_returned_region();
    expect_at(p);
    p = mapalloc_realloc(p, 10);
}

static void trim_usable_size_unmapped(void)
{
    char *p = pointer_into_returned_region();
    expect_at(p);
    (void)mapalloc_usable_size(p);
}

/* Any block of the regions that went back, even one still mapped. */
static void trim_free_each(void)
{
    enum { N = 3 * 4096 };
    static char *blocks[N];
    for (int i = 0; i < N; i++)
        blocks[i] = mapalloc_malloc(1024);
    for (int i = 0; i < N; i++)
        mapalloc_free(blocks[i]);
    mapalloc_trim(0);
    char *p = blocks[N / 3];
    expect_at(p);
    mapalloc_free(p);
}

static void usable_size_stack(void)
{
    char local[64];
    memset(local, 0, sizeof local);
    char *p = opaque(local + 16);
    mapalloc_free(mapalloc_malloc(16)); /* the allocator is running */
    expect_at(p);
    (void)mapalloc_usable_size(p);
}

static void realloc_stack_running(void)
{
    char local[64];
    memset(local, 0, sizeof local);
    char *p = opaque(local);
    for (int i = 0; i < 1000; i++)
        mapalloc_free(mapalloc_malloc((size_t)i * 37));
    expect_at(p);
    p = mapalloc_realloc(p, 100);
}

/* ---- the table and the parent ---- */

#define DOUBLE "double free of"
#define INVALID "free of invalid pointer"
#define LINK "corrupted free list (use after free or overflow) at"
#define CANARY "heap overflow (canary) detected at the end of block"
#define WAF "write after free detected in block"

struct death_case {
    const char *name;
    void (*run)(void);
    bool secure;
    const char *msg;  /* NULL: SIGSEGV, in the range the child gave */
    const char *alt;  /* another acceptable message, or NULL */
};

static const struct death_case cases[] = {
    {"secure_canary_small", secure_canary_small, true, CANARY, NULL},
    {"secure_canary_medium", secure_canary_medium, true, CANARY, NULL},
    {"secure_canary_realloc", secure_canary_realloc, true, CANARY, NULL},
    {"secure_write_after_free", secure_write_after_free, true, WAF, NULL},
    {"secure_write_after_free_end", secure_write_after_free_end, true, WAF, NULL},
    {"secure_guard_small", secure_guard_small, true, NULL, NULL},
    {"secure_guard_medium", secure_guard_medium, true, NULL, NULL},
    {"secure_guard_large", secure_guard_large, true, NULL, NULL},
    {"link_overwrite_small", link_overwrite_small, false, LINK, NULL},
    {"link_overwrite_medium", link_overwrite_medium, false, LINK, NULL},
    {"link_overwrite_remote", link_overwrite_remote, false, LINK, NULL},
    {"double_free_churn_small", double_free_churn_small, false, DOUBLE, NULL},
    {"double_free_churn_medium", double_free_churn_medium, false, DOUBLE, NULL},
    {"double_free_churn_emptied", double_free_churn_emptied, false, DOUBLE, INVALID},
    {"double_free_churn_large", double_free_churn_large, false, DOUBLE, NULL},
    {"double_free_after_threads", double_free_after_threads, false, DOUBLE, NULL},
    {"trim_free_unmapped", trim_free_unmapped, false, INVALID, DOUBLE},
    {"trim_realloc_unmapped", trim_realloc_unmapped, false, INVALID, DOUBLE},
    {"trim_usable_size_unmapped", trim_usable_size_unmapped, false, INVALID, DOUBLE},
    {"trim_free_each", trim_free_each, false, INVALID, DOUBLE},
    {"usable_size_stack", usable_size_stack, false, INVALID, NULL},
    {"realloc_stack_running", realloc_stack_running, false, INVALID, NULL},
};
#define NCASES (sizeof cases / sizeof cases[0])

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

/* The one "mapalloc:" line of out, or NULL if there is not exactly one. */
static const char *the_report(const char *out, size_t *len)
{
    const char *found = NULL;
    for (const char *line = out; *line; ) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        if (strncmp(line, "mapalloc:", 9) == 0) {
            if (found)
                return NULL;
            found = line;
            *len = n;
        }
        line += n + (end != NULL);
    }
    return found;
}

static int run_case(const struct death_case *c)
{
    int err[2], addr[2];
    if (pipe(err) != 0 || pipe(addr) != 0) {
        perror("pipe");
        return 1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        close(err[0]);
        close(addr[0]);
        dup2(err[1], 2);
        addr_fd = addr[1];
        /* Explicit both ways: a -Dsecure=true build defaults to secure. */
        setenv("MAPALLOC_OPTIONS", c->secure ? "secure=1" : "secure=0", 1);
        c->run();
        _exit(3); /* the misuse went unnoticed */
    }
    close(err[1]);
    close(addr[1]);
    static char out[1 << 16];
    size_t n = read_all(err[0], out, sizeof out - 1);
    out[n] = 0;
    uintptr_t want[2] = {0, 0};
    size_t got = read_all(addr[0], (char *)want, sizeof want);
    close(err[0]);
    close(addr[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;

    int sig = c->msg ? SIGABRT : SIGSEGV;
    bool ok = WIFSIGNALED(status) && WTERMSIG(status) == sig && got == sizeof want;
    if (ok && c->msg) {
        char line[256], alt[256];
        snprintf(line, sizeof line, "mapalloc: %s 0x%lx", c->msg, (unsigned long)want[0]);
        snprintf(alt, sizeof alt, "mapalloc: %s 0x%lx", c->alt ? c->alt : "", (unsigned long)want[0]);
        size_t len = 0;
        const char *r = the_report(out, &len);
        ok = r && ((len == strlen(line) && memcmp(r, line, len) == 0) ||
                   (c->alt && len == strlen(alt) && memcmp(r, alt, len) == 0));
        if (!ok)
            fprintf(stderr, "%s: expected the line \"%s\"%s%s%s\n", c->name, line,
                    c->alt ? " or \"" : "", c->alt ? alt : "", c->alt ? "\"" : "");
    } else if (ok) {
        const char *at = strstr(out, "safety_death: SIGSEGV at 0x");
        unsigned long fault = at ? strtoul(at + strlen("safety_death: SIGSEGV at "), NULL, 16) : 0;
        ok = at && fault >= want[0] && fault <= want[1];
        if (!ok)
            fprintf(stderr, "%s: expected a fault in [0x%lx, 0x%lx]\n", c->name,
                    (unsigned long)want[0], (unsigned long)want[1]);
        else
            printf("%s: fault at 0x%lx, %lu bytes after the first address checked\n", c->name, fault,
                   fault - (unsigned long)want[0]);
    }
    if (WIFEXITED(status))
        fprintf(stderr, "%s: child exited with status %d (3: no abort; 9: nothing was unmapped)\n",
                c->name, WEXITSTATUS(status));
    else if (WIFSIGNALED(status) && WTERMSIG(status) != sig)
        fprintf(stderr, "%s: child died of signal %d, expected %d\n", c->name, WTERMSIG(status), sig);
    fprintf(stderr, "%s: child stderr:\n%s", c->name, out);
    printf("%s: %s\n", c->name, ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < NCASES; i++)
            printf("%s\n", cases[i].name);
        return 0;
    }
    int failures = 0, ran = 0;
    for (size_t i = 0; i < NCASES; i++) {
        if (argc > 1) {
            bool wanted = false;
            for (int k = 1; k < argc; k++)
                wanted |= strcmp(argv[k], cases[i].name) == 0;
            if (!wanted)
                continue;
        }
        failures += run_case(&cases[i]);
        ran++;
    }
    if (ran == 0) {
        fprintf(stderr, "safety_death: no such case (see --list)\n");
        return 2;
    }
    return failures != 0;
}
