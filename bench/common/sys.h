/* What tests/ and bench/ ask of the system: a monotonic clock and the one
 * reader of /proc files. Header only, C and C++; it lives in bench/common
 * beside rng.h (tests/meson.build declares the include directory once, as
 * common_inc, for both trees).
 *
 * Nothing here allocates: files are read with open/read into a buffer on
 * the stack, so a figure can be read at any point of a measurement, and in
 * a program whose malloc is the allocator under test (LD_PRELOAD). */
#ifndef MAPALLOC_BENCH_SYS_H
#define MAPALLOC_BENCH_SYS_H

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Monotonic time in seconds. */
static inline double wl_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The start of the file at path, at most size - 1 bytes, into buf, and a
 * NUL after it: the number of bytes read, or -1 when the file cannot be
 * opened. */
static inline long wl_proc_read(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    ssize_t got;
    while (len < size - 1 && (got = read(fd, buf + len, size - 1 - len)) > 0)
        len += (size_t)got;
    close(fd);
    buf[len] = 0;
    return (long)len;
}

/* N of a "Field:   N" or "Field:   N kB" line of a /proc file (status,
 * smaps_rollup, meminfo), or -1 when the file or the field is missing.
 * /proc/self/status has VmSize (the address space, statm's first column,
 * in kB), VmRSS (resident now) and VmHWM (its peak); smaps_rollup has
 * AnonHugePages and LazyFree; meminfo has HugePages_Total (a count). */
static inline long wl_proc_field(const char *path, const char *field)
{
    char buf[8192];
    if (wl_proc_read(path, buf, sizeof buf) < 0)
        return -1;
    size_t flen = strlen(field);
    for (const char *p = buf; (p = strstr(p, field)) != NULL; p += flen)
        if ((p == buf || p[-1] == '\n') && p[flen] == ':')
            return strtol(p + flen + 1, NULL, 10);
    return -1;
}

/* The number a /proc file starts with (/proc/sys/vm/overcommit_memory,
 * nr_hugepages, max_map_count), or -1 when the file cannot be read. */
static inline long wl_proc_number(const char *path)
{
    char buf[64], *end;
    if (wl_proc_read(path, buf, sizeof buf) <= 0)
        return -1;
    long v = strtol(buf, &end, 10);
    return end == buf ? -1 : v;
}

/* Resident bytes of this process now (/proc/self/statm's second column, in
 * pages: the counters of status's VmRSS, to the page), or 0 when it cannot
 * be read. */
static inline size_t wl_resident(void)
{
    char buf[256], *p;
    if (wl_proc_read("/proc/self/statm", buf, sizeof buf) <= 0)
        return 0;
    (void)strtoul(buf, &p, 10); /* the first column: the address space */
    return (size_t)strtoul(p, NULL, 10) * (size_t)sysconf(_SC_PAGESIZE);
}

#endif
