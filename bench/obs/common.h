/* What the observability benchmarks measure, from the kernel's point of
 * view: resident memory now (/proc/self/statm), its peak (VmHWM in
 * /proc/self/status) and transparent huge pages in use (AnonHugePages in
 * /proc/self/smaps_rollup); a monotonic clock; a random generator. */
#ifndef MA_BENCH_OBS_COMMON_H
#define MA_BENCH_OBS_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void bench_sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static inline double resident_mib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &res) != 2)
            res = 0;
        fclose(f);
    }
    return (double)res * (double)sysconf(_SC_PAGESIZE) / (double)MiB;
}

/* A "Name: N kB" field of a /proc file, in MiB; -1 when missing. */
static inline double proc_field_mib(const char *path, const char *field)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    char line[256];
    double v = -1;
    size_t len = strlen(field);
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, field, len) == 0 && line[len] == ':') {
            v = (double)strtol(line + len + 1, NULL, 10) / 1024.0;
            break;
        }
    fclose(f);
    return v;
}

static inline double peak_resident_mib(void)
{
    return proc_field_mib("/proc/self/status", "VmHWM");
}

static inline uint64_t bench_rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

#endif
