/* What tests/ and bench/ ask of the system: a monotonic clock, the one
 * reader of /proc files, and the one count of resident pages (mincore).
 * Header only, C and C++; it lives in bench/common beside rng.h
 * (tests/meson.build declares the include directory once, as common_inc,
 * for both trees).
 *
 * Nothing here allocates: every file is read with open/read, a buffer on
 * the stack at a time, and handed out a line at a time (wl_proc_lines), so
 * that a figure can be read at any point of a measurement, and in a program
 * whose malloc is the allocator under test (LD_PRELOAD). */
#ifndef MAPALLOC_BENCH_SYS_H
#define MAPALLOC_BENCH_SYS_H

#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* Monotonic time in seconds. */
static inline double wl_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* What wl_proc_lines calls for each line: nonzero stops the reading. */
typedef int wl_line_fn(const char *line, void *ctx);

/* Each line of the file at path, in order, to fn, NUL-terminated, without
 * its '\n' (a line longer than 8 KiB is cut there), until fn returns
 * nonzero. Returns what fn returned last (0 when it took every line), or -1
 * when the file cannot be opened. */
static inline int wl_proc_lines(const char *path, wl_line_fn *fn, void *ctx)
{
    char buf[8192];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;          /* bytes in buf not handed out yet */
    int r = 0, skip = 0;     /* skip: the rest of a line that was cut */
    for (;;) {
        ssize_t got = read(fd, buf + len, sizeof buf - 1 - len);
        if (got <= 0) {
            buf[len] = 0;
            if (len > 0 && !skip) /* a last line without '\n' */
                r = fn(buf, ctx);
            break;
        }
        len += (size_t)got;
        char *line = buf, *end = buf + len, *nl;
        while (r == 0 && (nl = (char *)memchr(line, '\n', (size_t)(end - line))) != NULL) {
            *nl = 0;
            if (!skip)
                r = fn(line, ctx);
            skip = 0;
            line = nl + 1;
        }
        if (r != 0)
            break;
        len = (size_t)(end - line);
        if (len == sizeof buf - 1) { /* no '\n' in the whole buffer */
            buf[len] = 0;
            if (!skip)
                r = fn(buf, ctx);
            skip = 1;
            len = 0;
            if (r != 0)
                break;
        } else {
            memmove(buf, line, len);
        }
    }
    close(fd);
    return r;
}

struct wl_proc_field_ctx {
    const char *field;
    size_t len;
    long value;
};

static inline int wl_proc_field_line(const char *line, void *ctx)
{
    struct wl_proc_field_ctx *c = (struct wl_proc_field_ctx *)ctx;
    if (strncmp(line, c->field, c->len) != 0 || line[c->len] != ':')
        return 0;
    c->value = strtol(line + c->len + 1, NULL, 10);
    return 1;
}

/* N of a "Field:   N" or "Field:   N kB" line of a /proc file (status,
 * smaps_rollup, meminfo), or -1 when the file or the field is missing.
 * /proc/self/status has VmSize (the address space, statm's first column,
 * in kB), VmRSS (resident now) and VmHWM (its peak); smaps_rollup has
 * AnonHugePages and LazyFree; meminfo has HugePages_Total (a count). */
static inline long wl_proc_field(const char *path, const char *field)
{
    struct wl_proc_field_ctx c = {field, strlen(field), -1};
    wl_proc_lines(path, wl_proc_field_line, &c);
    return c.value;
}

/* Where a line is copied to, cut to size - 1 bytes. */
struct wl_proc_out {
    char *s;
    size_t size;
};

static inline void wl_proc_copy(struct wl_proc_out *o, const char *s)
{
    size_t n = strlen(s);
    if (n >= o->size)
        n = o->size - 1;
    memcpy(o->s, s, n);
    o->s[n] = 0;
}

static inline int wl_proc_first_line(const char *line, void *ctx)
{
    wl_proc_copy((struct wl_proc_out *)ctx, line);
    return 1;
}

/* The first line of the file at path (in /proc or /sys) into line, cut to
 * size - 1 bytes: false when the file cannot be opened or is empty. */
static inline bool wl_proc_head(const char *path, char *line, size_t size)
{
    struct wl_proc_out o = {line, size};
    return wl_proc_lines(path, wl_proc_first_line, &o) == 1;
}

/* The number a /proc file starts with (/proc/sys/vm/overcommit_memory,
 * nr_hugepages, max_map_count), or -1 when the file cannot be read. */
static inline long wl_proc_number(const char *path)
{
    char line[64], *end;
    if (!wl_proc_head(path, line, sizeof line))
        return -1;
    long v = strtol(line, &end, 10);
    return end == line ? -1 : v;
}

/* Column col (from 0) of /proc/self/statm, in bytes (the file counts
 * pages), or 0 when it cannot be read. */
static inline size_t wl_statm(int col)
{
    char line[256], *p = line;
    if (!wl_proc_head("/proc/self/statm", line, sizeof line))
        return 0;
    unsigned long pages = strtoul(p, &p, 10);
    for (int i = 0; i < col; i++)
        pages = strtoul(p, &p, 10);
    return (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
}

/* Resident bytes of this process now (statm's second column: the counters
 * of status's VmRSS, to the page), or 0 when it cannot be read. */
static inline size_t wl_resident(void)
{
    return wl_statm(1);
}

/* The anonymous part of it: resident less the file-backed and shared pages
 * (statm's third column), so code that a call first runs is not counted. */
static inline size_t wl_resident_anon(void)
{
    size_t resident = wl_statm(1), shared = wl_statm(2);
    return resident > shared ? resident - shared : 0;
}

/* Resident OS pages of [p, p + n), p page-aligned (mincore), or SIZE_MAX
 * when part of the range is not mapped at all. */
static inline size_t wl_resident_pages(const void *p, size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), pages = n / page, count = 0;
    unsigned char vec[4096];
    for (size_t done = 0; done < pages;) {
        size_t chunk = pages - done < sizeof vec ? pages - done : sizeof vec;
        if (mincore((char *)(uintptr_t)p + done * page, chunk * page, vec) != 0)
            return SIZE_MAX;
        for (size_t i = 0; i < chunk; i++)
            count += vec[i] & 1;
        done += chunk;
    }
    return count;
}

/* ---- mappings: /proc/self/maps and smaps ---- */

/* The bounds of a mapping's header line, "lo-hi perms offset dev inode
 * path" (every line of maps; in smaps, the line before the mapping's
 * fields): false for another line. */
static inline bool wl_maps_bounds(const char *line, uintptr_t *lo, uintptr_t *hi)
{
    char *end;
    unsigned long a = strtoul(line, &end, 16);
    if (end == line || *end != '-')
        return false;
    const char *b = end + 1;
    unsigned long z = strtoul(b, &end, 16);
    if (end == b || *end != ' ')
        return false;
    *lo = (uintptr_t)a;
    *hi = (uintptr_t)z;
    return true;
}

struct wl_mapping_ctx {
    uintptr_t addr, lo, hi;
    const char *field; /* smaps: the field wanted; maps: NULL */
    size_t len;
    struct wl_proc_out out;
    int inside;
};

/* 1: found; 2: the mapping that holds addr has no such field. */
static inline int wl_mapping_line(const char *line, void *ctx)
{
    struct wl_mapping_ctx *c = (struct wl_mapping_ctx *)ctx;
    uintptr_t lo, hi;
    if (wl_maps_bounds(line, &lo, &hi)) {
        if (c->inside)
            return 2;
        c->inside = c->addr >= lo && c->addr < hi;
        if (c->inside) {
            c->lo = lo;
            c->hi = hi;
            if (c->field == NULL) {
                wl_proc_copy(&c->out, line);
                return 1;
            }
        }
        return 0;
    }
    if (c->inside && strncmp(line, c->field, c->len) == 0 && line[c->len] == ':') {
        const char *v = line + c->len + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        wl_proc_copy(&c->out, v);
        return 1;
    }
    return 0;
}

/* The line of /proc/self/maps of the mapping that holds addr, into line
 * (cut to size - 1 bytes); false if none holds it. */
static inline bool wl_maps_line(const void *addr, char *line, size_t size)
{
    struct wl_mapping_ctx c = {(uintptr_t)addr, 0, 0, NULL, 0, {line, size}, 0};
    return wl_proc_lines("/proc/self/maps", wl_mapping_line, &c) == 1;
}

/* The entry of /proc/self/smaps of the mapping that holds addr: its bounds,
 * and the value of one of its fields ("VmFlags", "THPeligible",
 * "AnonHugePages"...) into value (cut to size - 1 bytes). False if no
 * mapping holds addr or it lacks the field. */
static inline bool wl_smaps_field(const void *addr, const char *field, uintptr_t *lo,
                                  uintptr_t *hi, char *value, size_t size)
{
    struct wl_mapping_ctx c = {(uintptr_t)addr, 0, 0, field, strlen(field), {value, size}, 0};
    if (wl_proc_lines("/proc/self/smaps", wl_mapping_line, &c) != 1)
        return false;
    *lo = c.lo;
    *hi = c.hi;
    return true;
}

/* True if a VmFlags value ("rd wr mr mw me ac nr") holds the two-letter
 * flag. */
static inline bool wl_vmflag(const char *flags, const char *flag)
{
    for (const char *p = flags; *p; p++)
        if ((p == flags || p[-1] == ' ') && p[0] == flag[0] && p[1] == flag[1] &&
            (p[2] == ' ' || p[2] == '\0'))
            return true;
    return false;
}

#endif
