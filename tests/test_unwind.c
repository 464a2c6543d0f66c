/* The heap profiler's unwinder (src/unwind.c), called directly: each stack
 * is taken twice from the same place, the first time by the frame
 * information (which stores the rules of each address), the second by the
 * stored rules; the two must be the same frames, named with dladdr
 * (-rdynamic), and reach main.
 *
 *   test_unwind recursion   20 frames of this program's own recursion
 *   test_unwind libc        from a qsort comparator: through the C
 *                           library's frames (built without frame pointers)
 *   test_unwind symbols     ma_symbolize names this program's functions and
 *                           the C library's, with offsets inside them */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "unwind.h"

#define NOINLINE __attribute__((noinline, used))

struct capture {
    uintptr_t pcs[MA_UNWIND_MAX];
    unsigned n;
};

static struct capture first, second;

/* Both captures from one function: they see the same frames but the first
 * (the compiler may give each its own call site). */
NOINLINE void capture_twice(void)
{
    for (int i = 0; i < 2; i++) {
        struct capture *c = i == 0 ? &first : &second;
        c->n = ma_unwind(c->pcs, MA_UNWIND_MAX);
    }
}

static const char *name_of(uintptr_t pc)
{
    Dl_info info;
    return dladdr((void *)(pc - 1), &info) != 0 && info.dli_sname ? info.dli_sname : "?";
}

static unsigned count_named(const struct capture *c, const char *fn)
{
    unsigned k = 0;
    for (unsigned i = 0; i < c->n; i++)
        k += strcmp(name_of(c->pcs[i]), fn) == 0;
    return k;
}

static void print(const struct capture *c)
{
    for (unsigned i = 0; i < c->n; i++)
        printf("  #%u %#lx %s\n", i, (unsigned long)c->pcs[i], name_of(c->pcs[i]));
}

/* The stored rules give what the frame information gave, and main is
 * reached. */
static void check_same(void)
{
    print(&first);
    CHECKF(first.n == second.n, "%u frames the first time, %u from the stored rules", first.n, second.n);
    CHECKF(first.n > 1 && memcmp(first.pcs + 1, second.pcs + 1, (first.n - 1) * sizeof first.pcs[0]) == 0,
           "the stored rules give other frames");
    CHECK(strcmp(name_of(first.pcs[0]), "capture_twice") == 0);
    CHECKF(count_named(&first, "main") == 1, "the stack does not reach main");
}

/* Called through a pointer the compiler cannot see through: a frame per
 * level, never inlined, cloned or unrolled. */
NOINLINE int descend(int depth);
static int (*volatile descend_ptr)(int) = descend;

NOINLINE int descend(int depth)
{
    if (depth == 0) {
        capture_twice();
        return 0;
    }
    int r = descend_ptr(depth - 1);
    __asm__ volatile("" : : : "memory");
    return r + 1;
}

static void part_recursion(void)
{
    descend(20);
    check_same();
    CHECKF(count_named(&first, "descend") == 21, "%u frames of descend, not 21",
           count_named(&first, "descend"));
}

NOINLINE int compare_and_capture(const void *a, const void *b)
{
    static int done;
    if (!done) {
        done = 1;
        capture_twice();
    }
    return *(const int *)a - *(const int *)b;
}

static void part_libc(void)
{
    int v[64];
    for (int i = 0; i < 64; i++)
        v[i] = (i * 37) % 64;
    qsort(v, 64, sizeof v[0], compare_and_capture);
    check_same();
    CHECK(count_named(&first, "compare_and_capture") == 1);
}

static void part_symbols(void)
{
    descend(3);
    struct ma_symbol sym;
    ma_symbolize((uintptr_t)&descend + 5, &sym);
    CHECKF(sym.name && strcmp(sym.name, "descend") == 0 && sym.offset == 5, "descend+5: %s+%#lx",
           sym.name ? sym.name : "(none)", (unsigned long)sym.offset);
    CHECK(sym.object != NULL);
    /* A function of the C library that sanitizers do not intercept. */
    ma_symbolize((uintptr_t)&getpid + 1, &sym);
    CHECKF(sym.name && strstr(sym.name, "getpid") && sym.offset == 1, "getpid+1: %s+%#lx",
           sym.name ? sym.name : "(none)", (unsigned long)sym.offset);
    CHECK(sym.object && strstr(sym.object, "libc"));
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        void (*run)(void);
    } parts[] = {{"recursion", part_recursion}, {"libc", part_libc}, {"symbols", part_symbols}};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        if (argc > 1 && strcmp(argv[1], parts[i].name) == 0) {
            parts[i].run();
            printf("ok %s\n", parts[i].name);
            return 0;
        }
    fprintf(stderr, "usage: test_unwind recursion|libc|symbols\n");
    return 2;
}
