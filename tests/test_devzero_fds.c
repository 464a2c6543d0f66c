/* The /dev/zero path against a program that closes and reuses descriptors,
 * as daemons do: after the allocator has mapped from /dev/zero once, the
 * program closes every descriptor from 3 up and opens a data file, which
 * gets the lowest free number. Every later mapping must still be of
 * /dev/zero (zeroed memory, not the file's bytes, and no SIGBUS past the
 * end of a short file), or fail with ENOMEM.
 *
 * Each case runs in a child. The allocator maps from /dev/zero because the
 * build has no MAP_ANONYMOUS or because the test asks for devzero=1. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "mapalloc.h"

#define MiB ((size_t)1 << 20)

static char path[64];

/* A data file of n bytes, every byte 0xab, opened on the lowest free
 * descriptor. */
static int open_data_file(size_t n)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    static unsigned char buf[1 << 16];
    memset(buf, 0xab, sizeof buf);
    for (size_t done = 0; done < n;) {
        size_t k = n - done < sizeof buf ? n - done : sizeof buf;
        CHECK(write(fd, buf, k) == (ssize_t)k);
        done += k;
    }
    return fd;
}

/* What a daemon does before it settles down. */
static void close_descriptors(void)
{
    for (int fd = 3; fd < 1024; fd++)
        close(fd);
}

/* The allocator has opened /dev/zero and mapped from it. */
static void warm_up(void)
{
    void *small = mapalloc_malloc(100), *large = mapalloc_malloc(2 * MiB);
    CHECK(small != NULL && large != NULL);
    mapalloc_free(large);
    mapalloc_free(small);
}

static bool all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return false;
    return true;
}

/* calloc of a fresh large mapping must be zero, not the file's bytes; so
 * must a new region's blocks. */
static void case_file_contents(void)
{
    warm_up();
    close_descriptors();
    int fd = open_data_file(16 * MiB);
    unsigned char *p = mapalloc_calloc(1, 8 * MiB);
    CHECKF(p != NULL, "calloc(8 MiB): errno %d", errno);
    CHECKF(all_zero(p, 8 * MiB), "calloc(8 MiB) after the descriptors were reused is not zero");
    /* Small blocks from regions mapped after the reuse (a new region each
     * 4 MiB). */
    for (int i = 0; i < 3000; i++) {
        unsigned char *q = mapalloc_calloc(1, 4096);
        CHECKF(q != NULL, "calloc(4096) #%d: errno %d", i, errno);
        CHECKF(all_zero(q, 4096), "calloc(4096) #%d after the reuse is not zero", i);
    }
    close(fd);
}

/* A private mapping of a 4 KiB file raises SIGBUS past its first page. */
static void case_short_file(void)
{
    warm_up();
    close_descriptors();
    int fd = open_data_file(4096);
    unsigned char *p = mapalloc_malloc(1 * MiB);
    CHECKF(p != NULL, "malloc(1 MiB): errno %d", errno);
    memset(p, 0x5a, 1 * MiB);
    for (int i = 0; i < 300; i++) {
        unsigned char *q = mapalloc_malloc(16384);
        CHECK(q != NULL);
        memset(q, 0x5a, 16384);
    }
    close(fd);
}

static void run_case(const char *name, void (*fn)(void))
{
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        fn();
        _exit(0);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: child ended with status %#x (signal %d)",
           name, status, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    printf("%s: ok\n", name);
}

int main(void)
{
    CHECK(mapalloc_option_set("devzero", 1) == 0);
    snprintf(path, sizeof path, "/tmp/mapalloc-devzero-%d", (int)getpid());
    run_case("file_contents", case_file_contents);
    run_case("short_file", case_short_file);
    unlink(path);
    return 0;
}
