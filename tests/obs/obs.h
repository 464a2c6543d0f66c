/* Helpers shared by the tests of options, statistics, purging and huge
 * pages: running a copy of the test itself in a child with another
 * MAPALLOC_OPTIONS, its output captured, and sleeping. The clock, the
 * random generator and the readers of /proc (resident memory, "Field: N kB"
 * lines, the mapping that holds an address) are the ones of every test, in
 * bench/common's sys.h and rng.h.
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
#define REGION (4 * MiB) /* mapalloc maps its regions aligned to their size */
#define GiB ((size_t)1 << 30)

static inline void obs_sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
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
