/* Options: one table, read once from MAPALLOC_OPTIONS ("name=value,...")
 * without allocating, settable from code before the first allocation. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "mapalloc.h"

#ifndef MAPALLOC_SECURE_DEFAULT
#define MAPALLOC_SECURE_DEFAULT 0
#endif

struct option_desc {
    const char *name;
    long def, min, max;
    bool runtime; /* may change after the allocator started */
    const char *doc;
};

static const struct option_desc table[MA_OPT_COUNT] = {
    [MA_OPT_VERBOSE] = {"verbose", 0, 0, 1, true, "print the options in force at start-up"},
    [MA_OPT_HUGE] = {"huge", 0, 0, 1, false, "map regions with MAP_HUGETLB, falling back to ordinary pages"},
    [MA_OPT_THP] = {"thp", 0, 0, 1, false, "madvise(MADV_HUGEPAGE) on regions (transparent huge pages)"},
    [MA_OPT_NORESERVE] = {"noreserve", 0, 0, 1, false, "map with MAP_NORESERVE"},
    [MA_OPT_DEVZERO] = {"devzero", 0, 0, 1, false, "map /dev/zero privately instead of MAP_ANONYMOUS"},
    [MA_OPT_PURGE_FREE] = {"purge_free", 0, 0, 1, true, "purge with MADV_FREE instead of MADV_DONTNEED"},
    [MA_OPT_DECAY_MS] = {"decay_ms", 100, 0, 3600000, true, "milliseconds an empty page stays before it is purged"},
    [MA_OPT_DIRTY_MAX_KB] = {"dirty_max_kb", 4096, 0, 1 << 30, true, "per arena: past this many KiB of empty pages, those idle for decay_ms/8 are purged"},
    [MA_OPT_LARGE_CACHE] = {"large_cache", 8, 0, 64, true, "freed large mappings kept for reuse"},
    [MA_OPT_LARGE_CACHE_MB] = {"large_cache_mb", 64, 0, 1 << 20, true,
                               "the most MiB the large cache holds; it keeps mappings of at most half that"},
    [MA_OPT_LARGE_THP] = {"large_thp", 1, 0, 1, true,
                          "madvise(MADV_HUGEPAGE) on large blocks of 2 MiB and more, mapped 2 MiB-aligned"},
    [MA_OPT_HOLLOW_KB] = {"hollow_kb", 16, 0, 512, true,
                          "free blocks of this many KiB or more in pages still in use give back their "
                          "whole OS pages after decay_ms, pages of smaller ones the OS pages that hold "
                          "only free blocks (0: neither)"},
    [MA_OPT_BACKGROUND] = {"background", 1, 0, 1, true,
                           "a thread gives back what is held for reuse while the program is idle"},
    [MA_OPT_STATS] = {"stats", 0, 0, 2, true, "print statistics at exit (1 text, 2 JSON)"},
    [MA_OPT_SECURE] = {"secure", MAPALLOC_SECURE_DEFAULT, 0, 1, false,
                       "secure profile: canaries, zero on free, guard pages, random order"},
    [MA_OPT_PROF] = {"prof", 0, 0, 1, false, "sample allocations for a heap profile"},
    [MA_OPT_PROF_SAMPLE_KB] = {"prof_sample_kb", 512, 0, 1 << 20, false,
                               "mean KiB between samples (0: every allocation)"},
    [MA_OPT_PROF_FINAL] = {"prof_final", 1, 0, 1, true, "with prof=1, write the profile at exit"},
    [MA_OPT_PROF_PEAK] = {"prof_peak", 0, 0, 1, false, "with prof=1, write the profile of the peak at exit"},
    [MA_OPT_PROF_SIGNAL] = {"prof_signal", 0, 0, 64, false, "a signal that writes a profile (SIGUSR2 or 12)"},
    [MA_OPT_LEAKS] = {"leaks", 0, 0, 1, false, "print the sampled blocks still live at exit"},
};

/* Signal names that prof_signal takes besides numbers. */
static const struct {
    const char *name;
    long number;
} signal_names[] = {{"SIGUSR1", SIGUSR1}, {"SIGUSR2", SIGUSR2}, {"SIGPROF", SIGPROF},
                    {"SIGURG", SIGURG}, {"SIGWINCH", SIGWINCH}};

long ma_options[MA_OPT_COUNT];
static bool options_ready;
static uint32_t explicitly_set; /* bit i: option i set by the program or the environment */

/* Where the control groups are mounted (cgroup_root=DIR, a path of its own
 * kind, so outside the table); empty: the limit is not read. */
#define CGROUP_ROOT_MAX 256
static char cgroup_root[CGROUP_ROOT_MAX] = "/sys/fs/cgroup";
/* The memory limit of the process's control group, found at set-up (0:
 * none); the options' bounds on what is held for reuse are fitted to it. */
static uint64_t ma_memory_limit;

static void set_defaults(void)
{
    for (int i = 0; i < MA_OPT_COUNT; i++)
        ma_options[i] = table[i].def;
    options_ready = true;
}

static int find_option(const char *name, size_t len)
{
    for (int i = 0; i < MA_OPT_COUNT; i++)
        if (strlen(table[i].name) == len && memcmp(table[i].name, name, len) == 0)
            return i;
    return -1;
}

/* Parses a decimal value; false if it is not one or is out of range. */
static bool parse_value(const char *s, size_t len, const struct option_desc *d, long *out)
{
    if (d == &table[MA_OPT_PROF_SIGNAL])
        for (size_t i = 0; i < sizeof signal_names / sizeof signal_names[0]; i++)
            if (strlen(signal_names[i].name) == len && memcmp(signal_names[i].name, s, len) == 0) {
                *out = signal_names[i].number;
                return true;
            }
    if (len == 0 || len > 12)
        return false;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v < d->min || v > d->max)
        return false;
    *out = v;
    return true;
}

static void warn_option(const char *what, const char *s, size_t len, const struct option_desc *d)
{
    char buf[512]; /* every name fits, with the longest name echoed */
    size_t n = 0;
    const char *head = "mapalloc: warning: ";
    size_t hl = strlen(head), wl = strlen(what);
    memcpy(buf + n, head, hl), n += hl;
    memcpy(buf + n, what, wl), n += wl;
    if (len > 64)
        len = 64;
    buf[n++] = '\'';
    memcpy(buf + n, s, len), n += len;
    buf[n++] = '\'';
    if (d) {
        const char *mid = " (accepted: ";
        memcpy(buf + n, mid, strlen(mid)), n += strlen(mid);
        n += ma_format_u64(buf + n, (uint64_t)d->min);
        buf[n++] = '.', buf[n++] = '.';
        n += ma_format_u64(buf + n, (uint64_t)d->max);
        buf[n++] = ')';
    } else {
        const char *mid = " (known:";
        memcpy(buf + n, mid, strlen(mid)), n += strlen(mid);
        for (int i = 0; i < MA_OPT_COUNT && n < sizeof buf - 24; i++) {
            size_t l = strlen(table[i].name);
            buf[n++] = ' ';
            memcpy(buf + n, table[i].name, l), n += l;
        }
        buf[n++] = ')';
    }
    const char *tail = "; ignored\n";
    memcpy(buf + n, tail, strlen(tail)), n += strlen(tail);
    buf[n] = 0;
    ma_write_str(2, buf);
}

static bool parse_cgroup_root(const char *s, size_t len)
{
    static const char name[] = "cgroup_root=";
    size_t n = sizeof name - 1;
    if (len < n || memcmp(s, name, n) != 0)
        return false;
    if (len - n >= CGROUP_ROOT_MAX || (len > n && s[n] != '/')) {
        warn_option("bad value for option ", s, len, NULL);
        return true;
    }
    memcpy(cgroup_root, s + n, len - n);
    cgroup_root[len - n] = 0;
    return true;
}

static void parse_item(const char *s, size_t len)
{
    if (parse_cgroup_root(s, len))
        return;
    const char *eq = memchr(s, '=', len);
    size_t name_len = eq ? (size_t)(eq - s) : len;
    int id = find_option(s, name_len);
    if (id < 0) {
        warn_option("unknown option ", s, name_len, NULL);
        return;
    }
    long v;
    const char *val = eq ? eq + 1 : "1";
    size_t val_len = eq ? len - name_len - 1 : 1;
    if (!parse_value(val, val_len, &table[id], &v)) {
        warn_option("bad value for option ", s, len, &table[id]);
        return;
    }
    ma_options[id] = v;
    explicitly_set |= 1u << id;
}

/* getenv is fine before libc's constructors too, but scanning environ
 * ourselves keeps this free of any library call that might change. */
static const char *find_env(const char *name)
{
    extern char **environ;
    size_t len = strlen(name);
    if (environ == NULL)
        return NULL;
    for (char **e = environ; *e; e++)
        if (strncmp(*e, name, len) == 0 && (*e)[len] == '=')
            return *e + len + 1;
    return NULL;
}

static void print_options(void)
{
    ma_write_str(2, "mapalloc: options:");
    for (int i = 0; i < MA_OPT_COUNT; i++) {
        char buf[96];
        size_t n = 0, l = strlen(table[i].name);
        buf[n++] = ' ';
        memcpy(buf + n, table[i].name, l), n += l;
        buf[n++] = '=';
        n += ma_format_u64(buf + n, (uint64_t)ma_options[i]);
        buf[n] = 0;
        ma_write_str(2, buf);
    }
    if (ma_memory_limit != 0) {
        char buf[48] = " memory_limit_kb=";
        size_t n = strlen(buf);
        n += ma_format_u64(buf + n, ma_memory_limit / 1024);
        buf[n] = 0;
        ma_write_str(2, buf);
    }
    ma_write_str(2, "\n");
}

/* Under a memory limit, what is held for reuse stays a small part of it:
 * at most a 32nd in empty pages and a 32nd in the large cache, unless the
 * program or the environment chose those bounds itself. */
static void fit_limit(uint64_t limit)
{
    ma_memory_limit = limit;
    if (limit == 0)
        return;
    long kb = (long)(limit / 32 / 1024), mb = kb / 1024;
    if (!(explicitly_set & (1u << MA_OPT_DIRTY_MAX_KB)) && ma_options[MA_OPT_DIRTY_MAX_KB] > kb)
        ma_options[MA_OPT_DIRTY_MAX_KB] = kb;
    if (!(explicitly_set & (1u << MA_OPT_LARGE_CACHE_MB)) && ma_options[MA_OPT_LARGE_CACHE_MB] > mb)
        ma_options[MA_OPT_LARGE_CACHE_MB] = mb;
}

void ma_options_init(void)
{
    /* Values set from code before the first allocation win over defaults;
     * the environment wins over both. */
    if (!options_ready)
        set_defaults();
    const char *s = find_env("MAPALLOC_OPTIONS");
    while (s && *s) {
        const char *end = strchr(s, ',');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        if (len)
            parse_item(s, len);
        s = end ? end + 1 : NULL;
    }
    if (cgroup_root[0] != 0)
        fit_limit(ma_cgroup_limit(cgroup_root));
    if (ma_options[MA_OPT_VERBOSE])
        print_options();
}

MA_API int mapalloc_option_set(const char *name, long value)
{
    int id = name ? find_option(name, strlen(name)) : -1;
    if (id < 0 || value < table[id].min || value > table[id].max) {
        errno = EINVAL;
        return -1;
    }
    if (!table[id].runtime && atomic_load(&ma_init_state) != 0) {
        errno = EBUSY;
        return -1;
    }
    if (!options_ready)
        set_defaults();
    ma_options[id] = value;
    explicitly_set |= 1u << id;
    return 0;
}

MA_API long mapalloc_option_get(const char *name)
{
    int id = name ? find_option(name, strlen(name)) : -1;
    if (id < 0) {
        errno = EINVAL;
        return -1;
    }
    if (!options_ready)
        set_defaults();
    return ma_options[id];
}
