/* Memory limits of control groups: the limit is read from the files of
 * the process's group and of every group above it, for cgroup v1 and v2
 * layouts built in a temporary directory, and under a limit what mapalloc
 * holds for reuse is fitted to it.
 *
 * Usage: test_cgroup PART
 *   parse    ma_cgroup_limit_from over made-up /proc/self/cgroup texts and
 *            directory trees: v2 (memory.max, memory.high, "max", a lower
 *            limit higher up), v1 (memory.limit_in_bytes, its "no limit"
 *            number, a controller list), hybrid, no limit, no group
 *   effects  a child started with cgroup_root=DIR over a tree that gives
 *            this process's own group a limit: the options in force, and a
 *            freed 8 MiB block unmapped rather than cached; unlimited, and
 *            with the bound set explicitly, the control
 */
#include "internal.h"
#include "mapalloc.h"
#include "obs.h"

#include <errno.h>

static char root[64];

/* Writes text to root/rel, making the directories on the way. */
static void put(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    for (char *s = path + strlen(root) + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = 0;
        CHECKF(mkdir(path, 0755) == 0 || errno == EEXIST, "mkdir %s", path);
        *s = '/';
    }
    FILE *f = fopen(path, "w");
    CHECKF(f != NULL, "%s", path);
    fputs(text, f);
    fclose(f);
}

static void new_root(void)
{
    if (root[0] != 0) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", root);
        CHECK(system(cmd) == 0);
    }
    strcpy(root, "/tmp/mapalloc-cgroup.XXXXXX");
    CHECK(mkdtemp(root) != NULL);
}

static void expect(const char *what, const char *self, uint64_t want)
{
    uint64_t got = ma_cgroup_limit_from(root, self);
    CHECKF(got == want, "%s: limit %llu, expected %llu", what, (unsigned long long)got,
           (unsigned long long)want);
}

static void part_parse(void)
{
    const char *v2 = "0::/app/worker\n";
    new_root();
    expect("v2, no files", v2, 0);
    put("app/worker/memory.max", "max\n");
    put("app/worker/memory.high", "max\n");
    expect("v2, max everywhere", v2, 0);
    put("app/worker/memory.max", "536870912\n");
    expect("v2, memory.max", v2, 536870912);
    put("app/worker/memory.high", "268435456\n");
    expect("v2, memory.high below memory.max", v2, 268435456);
    put("app/memory.max", "104857600\n");
    expect("v2, a parent's lower limit", v2, 104857600);
    put("memory.max", "52428800\n");
    expect("v2, the root directory's (a container's own group)", v2, 52428800);
    expect("v2, the group's parent", "0::/app\n", 52428800);
    expect("v2, the root group", "0::/\n", 52428800);
    expect("v2, with a trailing slash", "0::/app/worker/\n", 52428800);
    expect("no group line", "", 0);
    expect("a malformed line", "garbage\n", 0);

    new_root();
    const char *v1 = "12:pids:/x\n5:cpu,memory,blkio:/box/job\n0::/elsewhere\n";
    put("memory.max", "1048576\n"); /* v2 files beside: not the memory controller's */
    expect("v1, no files", v1, 0);
    put("memory/box/job/memory.limit_in_bytes", "9223372036854771712\n");
    expect("v1, its number for no limit", v1, 0);
    put("memory/box/job/memory.limit_in_bytes", "805306368\n");
    expect("v1, memory.limit_in_bytes", v1, 805306368);
    put("memory/box/memory.limit_in_bytes", "402653184\n");
    expect("v1, a parent's lower limit", v1, 402653184);
    put("memory/memory.limit_in_bytes", "9223372036854771712\n");
    expect("v1, an unlimited root", v1, 402653184);
    expect("v2 line only, same tree", "0::/\n", 1048576);
    expect("v1 without memory: the v2 line", "4:cpu:/box/job\n0::/\n", 1048576);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    CHECK(system(cmd) == 0);
}

/* The child: a freed 8 MiB block, and the options in force. */
static int child_effects(void)
{
    struct mapalloc_stats s0, s1;
    void *p = mapalloc_malloc(8 * MiB);
    CHECK(p != NULL);
    memset(p, 1, 8 * MiB);
    mapalloc_stats_get(&s0);
    mapalloc_free(p);
    mapalloc_stats_get(&s1);
    printf("dirty_max_kb=%ld large_cache_mb=%ld unmapped=%d\n", mapalloc_option_get("dirty_max_kb"),
           mapalloc_option_get("large_cache_mb"), s1.munmap_calls > s0.munmap_calls);
    return 0;
}

/* This process's group, from the line the allocator will choose. */
static void own_group(char *kind, char *path, size_t cap)
{
    FILE *f = fopen("/proc/self/cgroup", "r");
    CHECK(f != NULL);
    char line[1024];
    kind[0] = path[0] = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c2 == NULL)
            continue;
        *c2 = 0;
        bool mem = strstr(c1 + 1, "memory") != NULL, v2 = strcmp(line, "0:") == 0;
        if (mem || (v2 && strcmp(kind, "v1") != 0)) {
            strcpy(kind, mem ? "v1" : "v2");
            snprintf(path, cap, "%s", c2 + 1);
        }
    }
    fclose(f);
    CHECKF(kind[0] != 0, "no group in /proc/self/cgroup");
}

static struct obs_child run_child(const char *extra)
{
    char options[256];
    snprintf(options, sizeof options, "cgroup_root=%s%s", root, extra);
    char *args[] = {"effects_child", NULL};
    struct obs_child c = obs_run_self(options, args);
    CHECKF(c.status == 0, "child with %s: status %d, %s", options, c.status, c.err);
    return c;
}

static void part_effects(void)
{
    char kind[4], path[512], file[640];
    own_group(kind, path, sizeof path);
    new_root();
    const char *name = strcmp(kind, "v1") == 0 ? "memory.limit_in_bytes" : "memory.max";
    snprintf(file, sizeof file, "%s%s%s/%s", strcmp(kind, "v1") == 0 ? "memory" : "",
             path[0] == '/' ? "" : "/", path, name);
    const char *rel = file[0] == '/' ? file + 1 : file;

    /* Unlimited: the defaults, and the 8 MiB block waits in the cache. */
    put(rel, strcmp(kind, "v1") == 0 ? "9223372036854771712\n" : "max\n");
    struct obs_child c = run_child("");
    CHECKF(strcmp(c.out, "dirty_max_kb=4096 large_cache_mb=64 unmapped=0\n") == 0, "unlimited: %s",
           c.out);
    obs_child_free(&c);

    /* 256 MiB: a 32nd of it in empty pages and in the large cache. */
    put(rel, "268435456\n");
    c = run_child(",verbose=1");
    CHECKF(strcmp(c.out, "dirty_max_kb=4096 large_cache_mb=8 unmapped=1\n") == 0, "256 MiB: %s",
           c.out);
    CHECKF(strstr(c.err, " memory_limit_kb=262144\n") != NULL, "verbose line: %s", c.err);
    obs_child_free(&c);

    /* 64 MiB: the dirty bound too. */
    put(rel, "67108864\n");
    c = run_child("");
    CHECKF(strcmp(c.out, "dirty_max_kb=2048 large_cache_mb=2 unmapped=1\n") == 0, "64 MiB: %s",
           c.out);
    obs_child_free(&c);

    /* Bounds the environment sets win; an empty root reads no limit. */
    c = run_child(",large_cache_mb=64,dirty_max_kb=4096");
    CHECKF(strcmp(c.out, "dirty_max_kb=4096 large_cache_mb=64 unmapped=0\n") == 0, "explicit: %s",
           c.out);
    obs_child_free(&c);
    char *args[] = {"effects_child", NULL};
    c = obs_run_self("cgroup_root=", args);
    CHECKF(strcmp(c.out, "dirty_max_kb=4096 large_cache_mb=64 unmapped=0\n") == 0, "no root: %s",
           c.out);
    obs_child_free(&c);
    snprintf(file, sizeof file, "rm -rf %s", root);
    CHECK(system(file) == 0);
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "effects_child") == 0)
        return child_effects();
    if (argc == 2 && strcmp(argv[1], "parse") == 0)
        part_parse();
    else if (argc == 2 && strcmp(argv[1], "effects") == 0)
        part_effects();
    else {
        fprintf(stderr, "usage: %s parse|effects\n", argv[0]);
        return 2;
    }
    printf("cgroup %s: ok\n", argv[1]);
    return 0;
}
