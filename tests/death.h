/* The one harness of the death tests: a table of cases, each a misuse that
 * must end its process with one exact line.
 *
 * Each case runs in a child. Before it misuses, it says what must happen:
 * death_expect(addr) (the line is "mapalloc: <the case's msg> <addr>"),
 * death_expect_line(msg, addr) (the case decides the wording), or
 * death_expect_fault(lo, hi) (a guard page: SIGSEGV at an address in
 * [lo, hi], no line). The parent checks that the child died of SIGABRT (or
 * SIGSEGV) and that its stderr is exactly that line; a child that returns
 * from the misuse, or lives 10 s, fails the case.
 *
 * Usage of a program built on it: PROG [CASE]... (every case when none is
 * named), PROG --list (the names). */
#ifndef MA_TEST_DEATH_H
#define MA_TEST_DEATH_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The profile a case runs in: the secure one, the default one, or (neither
 * flag) whatever the environment chose. */
enum {
    DEATH_SECURE = 1u << 0,
    DEATH_NOT_SECURE = 1u << 1,
};

struct death_case {
    const char *name;
    void (*run)(void);
    const char *msg; /* "double free of": the misuse the line names (death_expect) */
    const char *alt; /* another wording the line may have instead, or NULL */
    unsigned flags;  /* DEATH_* */
};

void death_expect(const void *addr);
void death_expect_line(const char *msg, const void *addr);
void death_expect_fault(const void *lo, const void *hi);

/* Runs the cases named in argv (all when none); returns the exit status. */
int death_main(int argc, char **argv, const struct death_case *cases, size_t count);

#ifdef __cplusplus
}
#endif

#endif
