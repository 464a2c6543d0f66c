/* What bench/ asks of the system, shared by every program there: a
 * monotonic clock and the one reader of /proc files. Header only; nothing
 * here allocates, so it can be called at any point of a measurement. */
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

/* A "Field:   N kB" line of a /proc file (status, smaps_rollup, meminfo):
 * N, or -1 when the file or the field is missing. Read with open/read into
 * a stack buffer: no allocation. /proc/self/status has VmRSS (resident
 * now, the same counters as statm's second column) and VmHWM (its peak);
 * /proc/self/smaps_rollup has AnonHugePages. */
static inline long wl_proc_kib(const char *path, const char *field)
{
    char buf[8192];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    ssize_t got;
    while (len < sizeof buf - 1 && (got = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)got;
    close(fd);
    buf[len] = 0;
    size_t flen = strlen(field);
    for (const char *p = buf; (p = strstr(p, field)) != NULL; p += flen)
        if ((p == buf || p[-1] == '\n') && p[flen] == ':')
            return strtol(p + flen + 1, NULL, 10);
    return -1;
}

#endif
