/* What the observability benchmarks measure, from the kernel's point of
 * view: resident memory now (VmRSS in /proc/self/status), its peak (VmHWM)
 * and transparent huge pages in use (AnonHugePages in
 * /proc/self/smaps_rollup), through bench/common's /proc reader; its clock
 * (wl_now) and random generator (wl_rng) come from there too. */
#ifndef MA_BENCH_OBS_COMMON_H
#define MA_BENCH_OBS_COMMON_H

#include "rng.h"
#include "sys.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

static inline void bench_sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* A "Name: N kB" field of a /proc file, in MiB; -1 when missing. */
static inline double proc_field_mib(const char *path, const char *field)
{
    long kib = wl_proc_field(path, field);
    return kib < 0 ? -1 : (double)kib / 1024.0;
}

/* Resident now (VmRSS: the same counters as statm's second column). */
static inline double resident_mib(void) { return proc_field_mib("/proc/self/status", "VmRSS"); }

static inline double peak_resident_mib(void) { return proc_field_mib("/proc/self/status", "VmHWM"); }

#endif
