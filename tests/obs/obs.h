/* Helpers shared by the tests of options, statistics, purging and huge
 * pages: the mappings as the kernel reports them (/proc/self/smaps and
 * maps), and running a copy of the test itself in a child with another
 * MAPALLOC_OPTIONS, its output captured. The clock, the random generator
 * and the readers of resident memory and of "Field: N kB" lines
 * (wl_now, wl_rand, wl_resident, wl_proc_field) are the ones of every
 * test, in bench/common's sys.h and rng.h.
 *
 * Everything here uses the process's own malloc (glibc's in the tests
 * linked with libmapalloc, mapalloc's in the preloaded ones), never
 * mapalloc_* directly, so that reading a figure does not change it.
 */
#ifndef MA_TEST_OBS_H
#define MA_TEST_OBS_H

#include "../check.h"
#include "rng.h"
#include "sys.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define GiB ((size_t)1 << 30)

static inline void obs_sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* The mapping of /proc/self/smaps that contains addr: its bounds, and the
 * value of one of its fields ("VmFlags", "THPeligible", "AnonHugePages"...)
 * copied into value. False if no mapping contains addr or it lacks the
 * field. */
static inline bool obs_smaps_field(const void *addr, const char *field, uintptr_t *start,
                                   uintptr_t *end, char *value, size_t value_size)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    CHECK(f != NULL);
    char line[512];
    bool inside = false, found = false;
    size_t len = strlen(field);
    uintptr_t a = (uintptr_t)addr;
    while (!found && fgets(line, sizeof line, f) != NULL) {
        unsigned long lo, hi;
        char dash;
        /* A mapping's header line: "lo-hi perms offset dev inode path". */
        /* Header lines start with the address in lower-case hex; field
         * names start with a capital letter. */
        bool header = (line[0] >= '0' && line[0] <= '9') || (line[0] >= 'a' && line[0] <= 'f');
        if (header && sscanf(line, "%lx%c%lx", &lo, &dash, &hi) == 3 && dash == '-') {
            inside = a >= lo && a < hi;
            if (inside) {
                *start = lo;
                *end = hi;
            }
            continue;
        }
        if (inside && strncmp(line, field, len) == 0 && line[len] == ':') {
            const char *v = line + len + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t n = strcspn(v, "\n");
            if (n >= value_size)
                n = value_size - 1;
            memcpy(value, v, n);
            value[n] = '\0';
            found = true;
        }
    }
    fclose(f);
    return found;
}

/* True if a VmFlags value contains the two-letter flag. */
static inline bool obs_vmflag(const char *flags, const char *flag)
{
    for (const char *p = flags; *p; p++)
        if ((p == flags || p[-1] == ' ') && p[0] == flag[0] && p[1] == flag[1] &&
            (p[2] == ' ' || p[2] == '\0'))
            return true;
    return false;
}

/* The line of /proc/self/maps of the mapping that contains addr, into line;
 * false if none does. */
static inline bool obs_maps_line(const void *addr, char *line, size_t size)
{
    FILE *f = fopen("/proc/self/maps", "r");
    CHECK(f != NULL);
    bool found = false;
    while (!found && fgets(line, (int)size, f) != NULL) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2)
            found = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
    }
    fclose(f);
    if (found)
        line[strcspn(line, "\n")] = '\0';
    return found;
}

/* A whole file into a NUL-terminated buffer of glibc's malloc (free it). */
static inline char *obs_read_fd(int fd)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    CHECK(buf != NULL);
    CHECK(lseek(fd, 0, SEEK_SET) == 0);
    for (;;) {
        if (len + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            CHECK(buf != NULL);
        }
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        CHECK(r >= 0);
        if (r == 0)
            break;
        len += (size_t)r;
    }
    buf[len] = '\0';
    return buf;
}

struct obs_child {
    int status;  /* exit status, or 128 + signal */
    char *out;   /* its standard output */
    char *err;   /* its standard error */
};

static inline int obs_tmpfile(void)
{
    char name[] = "/tmp/mapalloc-obs.XXXXXX";
    int fd = mkstemp(name);
    CHECK(fd >= 0);
    unlink(name);
    return fd;
}

/* Runs this program again (/proc/self/exe) with args, MAPALLOC_OPTIONS set
 * to options (unset when NULL), and returns its status and output. */
static inline struct obs_child obs_run_self(const char *options, char *const args[])
{
    int out = obs_tmpfile(), err = obs_tmpfile();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        if (options)
            setenv("MAPALLOC_OPTIONS", options, 1);
        else
            unsetenv("MAPALLOC_OPTIONS");
        dup2(out, 1);
        dup2(err, 2);
        char *argv[16] = {"obs-child"};
        for (int i = 0; args[i] != NULL && i < 14; i++)
            argv[i + 1] = args[i];
        execv("/proc/self/exe", argv);
        _exit(126);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    struct obs_child c;
    c.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    c.out = obs_read_fd(out);
    c.err = obs_read_fd(err);
    close(out);
    close(err);
    return c;
}

static inline void obs_child_free(struct obs_child *c)
{
    free(c->out);
    free(c->err);
}

/* The number of lines of s (a last line without '\n' counts). */
static inline size_t obs_lines(const char *s)
{
    size_t n = 0;
    for (const char *p = s; *p; p++)
        if (*p == '\n' || p[1] == '\0')
            n++;
    return n;
}

#endif
