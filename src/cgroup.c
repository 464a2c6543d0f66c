/* The memory limit of the process's control group, read once at set-up.
 *
 * /proc/self/cgroup names the group: a line "0::PATH" under cgroup v2, or
 * "N:CONTROLLERS:PATH" with "memory" among the controllers under v1 (a
 * hybrid system has both; the memory controller is on v1 there, so that
 * line wins). The limit of a group is the least of its own and of every
 * group above it, so the walk reads the files of PATH and of each of its
 * ancestors up to the root: memory.max and memory.high (v2; "max" is no
 * limit), or memory/PATH/memory.limit_in_bytes (v1, where no limit reads
 * as a number near 2^63). Inside a container with its own cgroup
 * namespace PATH is "/" and the root directory is the container's group,
 * which the walk reads last.
 *
 * No allocation: fixed buffers on the stack, plain open and read. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define PATH_MAX_LEN 4096
#define V1_UNLIMITED ((uint64_t)1 << 62)

/* The whole of a small file into buf, NUL-terminated; its length, or -1. */
static ssize_t read_small(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t n = 0;
    while (n + 1 < cap) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = 0;
    return (ssize_t)n;
}

/* A limit file's value in bytes; 0 when it is absent, "max", or not a
 * number. */
static uint64_t read_limit(const char *path)
{
    char buf[64];
    if (read_small(path, buf, sizeof buf) <= 0 || buf[0] < '0' || buf[0] > '9')
        return 0;
    uint64_t v = 0;
    for (const char *s = buf; *s >= '0' && *s <= '9'; s++) {
        if (v > (UINT64_MAX - 9) / 10)
            return 0;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    return v >= V1_UNLIMITED ? 0 : v;
}

static uint64_t least(uint64_t a, uint64_t b)
{
    if (a == 0)
        return b;
    return b != 0 && b < a ? b : a;
}

/* Appends s (n bytes) to the path of length *len; false when it is full. */
static bool path_add(char *path, size_t *len, const char *s, size_t n)
{
    if (*len + n + 1 > PATH_MAX_LEN)
        return false;
    memcpy(path + *len, s, n);
    *len += n;
    path[*len] = 0;
    return true;
}

/* The least limit of dir's group and of its ancestors down to base (the
 * length of the root part of dir, which is read last), from files of the
 * given names. */
static uint64_t walk_up(char *dir, size_t len, size_t base, const char *const *files)
{
    uint64_t limit = 0;
    for (;;) {
        for (const char *const *f = files; *f != NULL; f++) {
            size_t l = len;
            if (path_add(dir, &l, *f, strlen(*f)))
                limit = least(limit, read_limit(dir));
            dir[len] = 0;
        }
        if (len <= base)
            return limit;
        /* Up one group: drop the last component and its slash. */
        len--;
        while (len > base && dir[len - 1] != '/')
            len--;
        dir[len] = 0;
    }
}

/* The field after the second colon of a line, and whether the controllers
 * between the colons name memory (v1) or are empty (v2, hierarchy 0). */
struct cg_line {
    const char *path;
    size_t path_len;
    bool v1_memory, v2;
};

static bool parse_line(const char *s, const char *end, struct cg_line *out)
{
    const char *c1 = memchr(s, ':', (size_t)(end - s));
    if (c1 == NULL)
        return false;
    const char *c2 = memchr(c1 + 1, ':', (size_t)(end - c1 - 1));
    if (c2 == NULL)
        return false;
    out->path = c2 + 1;
    out->path_len = (size_t)(end - c2 - 1);
    out->v2 = c1 - s == 1 && s[0] == '0' && c2 == c1 + 1;
    out->v1_memory = false;
    for (const char *w = c1 + 1; w < c2;) {
        const char *comma = memchr(w, ',', (size_t)(c2 - w));
        const char *we = comma ? comma : c2;
        if (we - w == 6 && memcmp(w, "memory", 6) == 0)
            out->v1_memory = true;
        w = we + 1;
    }
    return true;
}

uint64_t ma_cgroup_limit_from(const char *root, const char *self_cgroup)
{
    struct cg_line v1 = {0}, v2 = {0}, line;
    for (const char *s = self_cgroup; *s;) {
        const char *nl = strchr(s, '\n');
        const char *end = nl ? nl : s + strlen(s);
        if (parse_line(s, end, &line)) {
            if (line.v1_memory)
                v1 = line;
            else if (line.v2)
                v2 = line;
        }
        s = nl ? nl + 1 : end;
    }
    const struct cg_line *g = v1.path ? &v1 : v2.path ? &v2 : NULL;
    if (g == NULL || g->path_len == 0 || g->path[0] != '/')
        return 0;
    char dir[PATH_MAX_LEN];
    size_t len = 0;
    if (!path_add(dir, &len, root, strlen(root)))
        return 0;
    while (len > 1 && dir[len - 1] == '/')
        dir[--len] = 0;
    if (v1.path && !path_add(dir, &len, "/memory", 7))
        return 0;
    size_t base = len;
    if (!path_add(dir, &len, g->path, g->path_len))
        return 0;
    while (len > base && dir[len - 1] == '/')
        dir[--len] = 0;
    if (!path_add(dir, &len, "/", 1))
        return 0;
    static const char *const v1_files[] = {"memory.limit_in_bytes", NULL};
    static const char *const v2_files[] = {"memory.max", "memory.high", NULL};
    return walk_up(dir, len, base + 1, v1.path ? v1_files : v2_files);
}

uint64_t ma_cgroup_limit(const char *root)
{
    char self[8192];
    int saved = errno;
    uint64_t limit = 0;
    if (read_small("/proc/self/cgroup", self, sizeof self) > 0)
        limit = ma_cgroup_limit_from(root, self);
    errno = saved;
    return limit;
}
