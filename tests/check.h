/* A tiny assertion helper for the tests.
 *
 * CHECK(expr) prints "file:line: CHECK failed: expr" and ends the process with
 * status 1. CHECKF(expr, fmt, ...) adds a printf-style explanation (the values
 * that made expr false). Both stay on in release builds (no NDEBUG).
 *
 * The process ends with _Exit after flushing stdout: a failing check in one
 * thread must not wait on locks that other threads (or the allocator under
 * test) may hold, as exit() and its atexit handlers could.
 */
#ifndef MA_TEST_CHECK_H
#define MA_TEST_CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* Meson's exit status for a test that did not run. */
#define TEST_SKIP 77

#if defined(__GNUC__)
#define CHECK_NORETURN __attribute__((noreturn, unused, format(printf, 4, 5)))
#else
#define CHECK_NORETURN
#endif

static CHECK_NORETURN void check_fail(const char *file, int line, const char *expr,
                                      const char *fmt, ...);

static void check_fail(const char *file, int line, const char *expr, const char *fmt, ...)
{
    fflush(stdout);
    fprintf(stderr, "%s:%d: CHECK failed: %s", file, line, expr);
    if (fmt != NULL && fmt[0] != '\0') {
        va_list ap;
        va_start(ap, fmt);
        fputs(": ", stderr);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
    }
    fputc('\n', stderr);
    _Exit(1);
}

#define CHECK(expr)                                                            \
    do {                                                                       \
        if (!(expr))                                                           \
            check_fail(__FILE__, __LINE__, #expr, "%s", "");                   \
    } while (0)

#define CHECKF(expr, ...)                                                      \
    do {                                                                       \
        if (!(expr))                                                           \
            check_fail(__FILE__, __LINE__, #expr, __VA_ARGS__);                \
    } while (0)

/* True when the test is built with AddressSanitizer (gcc or clang). */
#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#ifndef TEST_ASAN
#define TEST_ASAN 0
#endif

/* True when the test is built with ThreadSanitizer (gcc or clang). */
#if defined(__SANITIZE_THREAD__)
#define TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEST_TSAN 1
#endif
#endif
#ifndef TEST_TSAN
#define TEST_TSAN 0
#endif

#endif
