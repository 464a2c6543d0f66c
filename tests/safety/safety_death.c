/* Misuse the general death tests do not cover: the secure profile's
 * canaries, write-after-free check and guard pages, and default-profile
 * cases that need a workload before the misuse (a free-list link
 * overwritten, a double free after much churn, a pointer into a region that
 * went back to the kernel, queries on a stack address).
 *
 * A table of cases for the death harness (../death.h); the secure ones run
 * in the secure profile, the others in the default one. The parent never
 * calls mapalloc, so every child starts from an allocator that was never
 * initialised. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mapalloc.h>

#include "../death.h"
#include "rng.h"

/* Keeps the compiler from removing stores to memory it believes dead. */
static void touch(volatile char *p, size_t i, char v)
{
    p[i] = v;
}

static void *opaque(void *p)
{
    __asm__ volatile("" : "+r"(p));
    return p;
}

/* ---- the secure profile ---- */

static void secure_canary_small(void)
{
    char *p = mapalloc_malloc(20);
    death_expect(p);
    touch(p, 20, 0); /* the pattern byte is odd: 0 and even bytes always differ */
    mapalloc_free(p);
}

static void secure_canary_medium(void)
{
    char *p = mapalloc_malloc(3000);
    death_expect(p);
    touch(p, 3000, 0);
    mapalloc_free(p);
}

/* Overflow by one byte, found when realloc frees the old block. */
static void secure_canary_realloc(void)
{
    char *p = mapalloc_malloc(100);
    death_expect(p);
    touch(p, 100, 'x');
    p = mapalloc_realloc(p, 5000);
    mapalloc_free(p);
}

/* Free one block among many of its class, write into it, then allocate that
 * class until the block comes back. Bytes 0 to 15 hold the list link and the
 * free tag; the write lands after them. */
static void secure_write_after_free(void)
{
    enum { N = 2000 };
    static char *blocks[N];
    for (int i = 0; i < N; i++)
        blocks[i] = mapalloc_malloc(64);
    char *victim = blocks[N / 2];
    mapalloc_free(victim);
    death_expect(victim);
    touch(victim, 40, 0x5a);
    for (long i = 0; i < 1000000; i++)
        if (mapalloc_malloc(64) == NULL)
            break;
}

/* The same with a medium block written at its last requested byte: the
 * check on reuse covers the whole block, not only its first words. */
static void secure_write_after_free_end(void)
{
    enum { N = 200, SIZE = 3000 };
    static char *blocks[N];
    for (int i = 0; i < N; i++)
        blocks[i] = mapalloc_malloc(SIZE);
    char *victim = blocks[N / 2];
    mapalloc_free(victim);
    death_expect(victim);
    touch(victim, SIZE - 1, 1);
    for (long i = 0; i < 100000; i++)
        if (mapalloc_malloc(SIZE) == NULL)
            break;
}

/* A linear overflow out of a small block runs into the guard at the end of
 * its page (at most 2 MiB further). */
static void secure_guard_small(void)
{
    char *p = mapalloc_malloc(100);
    death_expect_fault(p, p + (2u << 20));
    for (size_t i = 0;; i += 16)
        touch(p, i, 1);
}

static void secure_guard_medium(void)
{
    char *p = mapalloc_malloc(100000);
    death_expect_fault(p + 100000, p + (2u << 20));
    for (size_t i = 100000;; i++)
        touch(p, i, 1);
}

/* A large block: the first byte after its last page faults. */
static void secure_guard_large(void)
{
    size_t size = (1u << 20) + 100;
    char *p = mapalloc_malloc(size);
    size_t end = (size + 4095) & ~(size_t)4095;
    death_expect_fault(p + size, p + end);
    for (size_t i = size;; i++)
        touch(p, i, 1);
}

/* ---- the default profile ---- */

/* A use-after-free write over the link of a freed block: the next
 * allocations of its class must stop at it, never return a wild pointer. */
static void link_overwrite(size_t size)
{
    enum { N = 64 };
    char *keep[N];
    for (int i = 0; i < N; i++)
        keep[i] = mapalloc_malloc(size);
    char *p = keep[N / 2];
    mapalloc_free(p);
    death_expect(p);
    memset(opaque(p), 0x41, 8);
    for (long i = 0; i < 1000000; i++) {
        char *q = mapalloc_malloc(size);
        if (q == NULL)
            break;
        /* A returned address must be a block we did not already hold. */
        for (int k = 0; k < N; k++)
            if (k != N / 2 && q == keep[k])
                _exit(6);
    }
}

static void link_overwrite_small(void)
{
    link_overwrite(48);
}

static void link_overwrite_medium(void)
{
    link_overwrite(6000);
}

/* A use-after-free write of 0 over a freed block's link: the list ends
 * there, and the blocks after it are missed. The page must stop when it
 * fills, naming the first of them, rather than leak them. */
static void link_zeroed(size_t size)
{
    enum { N = 64 };
    char *keep[N];
    for (int i = 0; i < N; i++)
        keep[i] = mapalloc_malloc(size);
    /* Two blocks of one page: handed out one after the other, adjacent. */
    int a = 10;
    while (a < N - 1 && keep[a + 1] != keep[a] + mapalloc_usable_size(keep[a]))
        a++;
    if (a == N - 1)
        _exit(8);
    mapalloc_free(keep[a]);
    mapalloc_free(keep[a + 1]); /* the owner's list: keep[a + 1], then keep[a] */
    death_expect(keep[a]);
    memset(opaque(keep[a + 1]), 0, 8);
    for (long i = 0; i < 1000000; i++)
        if (mapalloc_malloc(size) == NULL)
            break;
}

static void link_zeroed_small(void)
{
    link_zeroed(48);
}

static void link_zeroed_medium(void)
{
    link_zeroed(6000);
}

static void *free_in_thread(void *p)
{
    mapalloc_free(p);
    return NULL;
}

/* The same through another thread's free: the block sits on the page's
 * remote list when its link is overwritten. */
static void link_overwrite_remote(void)
{
    enum { N = 64 };
    char *keep[N];
    for (int i = 0; i < N; i++)
        keep[i] = mapalloc_malloc(32);
    char *p = keep[N / 2];
    pthread_t t;
    if (pthread_create(&t, NULL, free_in_thread, p) != 0 || pthread_join(t, NULL) != 0)
        _exit(7);
    death_expect(p);
    memset(opaque(p), 0xee, 8);
    for (long i = 0; i < 1000000; i++)
        if (mapalloc_malloc(32) == NULL)
            break;
}

/* Allocations and frees of every other class between the two frees. Blocks
 * of p's own class are never asked for, so p cannot come back legitimately. */
static void churn_except(size_t lo, size_t hi, unsigned rounds)
{
    enum { LIVE = 512 };
    static void *live[LIVE];
    uint64_t rs = 88172645463325252ull;
    for (unsigned i = 0; i < rounds; i++) {
        uint64_t x = wl_rand(&rs);
        size_t size = 1 + (size_t)(x % 70000);
        if (size >= lo && size <= hi)
            size = hi + 1 + size % 1000;
        unsigned k = (unsigned)(x >> 40) % LIVE;
        mapalloc_free(live[k]);
        live[k] = mapalloc_malloc(size);
    }
    for (unsigned k = 0; k < LIVE; k++) {
        mapalloc_free(live[k]);
        live[k] = NULL;
    }
}

/* A neighbour in the same page stays live, so the page stays p's: the
 * second free must be named a double free. */
static void double_free_churn_small(void)
{
    char *neighbour = mapalloc_malloc(40); /* class 33..48 */
    char *p = mapalloc_malloc(40);
    mapalloc_free(p);
    churn_except(33, 48, 200000);
    death_expect(p);
    mapalloc_free(p);
    mapalloc_free(neighbour);
}

static void double_free_churn_medium(void)
{
    char *neighbour = mapalloc_malloc(20000);
    char *p = mapalloc_malloc(20000);
    size_t usable = mapalloc_usable_size(p);
    mapalloc_free(p);
    churn_except(16385, usable, 200000); /* the class below 20000 ends at 16 KiB */
    death_expect(p);
    mapalloc_free(p);
    mapalloc_free(neighbour);
}

/* Without a neighbour the page empties and its slices serve other classes:
 * the block no longer exists, and either name is right. */
static void double_free_churn_emptied(void)
{
    char *p = mapalloc_malloc(40);
    mapalloc_free(p);
    churn_except(33, 48, 200000);
    death_expect(p);
    mapalloc_free(p);
}

/* A large block: churn of small and medium blocks only, so that no new
 * mapping can be placed at p (which would make p a live block again). */
static void double_free_churn_large(void)
{
    char *p = mapalloc_malloc(3u << 20);
    mapalloc_free(p);
    churn_except(70001, (size_t)-2, 200000); /* sizes up to 70000 only */
    death_expect(p);
    mapalloc_free(p);
}

static void *churn_thread(void *arg)
{
    (void)arg;
    churn_except(33, 48, 50000);
    return NULL;
}

/* Other threads come, allocate, free and exit between the two frees. */
static void double_free_after_threads(void)
{
    char *p = mapalloc_malloc(48);
    mapalloc_free(p);
    for (int i = 0; i < 4; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, churn_thread, NULL) != 0 || pthread_join(t, NULL) != 0)
            _exit(7);
    }
    death_expect(p);
    mapalloc_free(p);
}

static bool is_unmapped(const void *p)
{
    unsigned char v;
    void *page = (void *)((uintptr_t)p & ~(uintptr_t)4095);
    return mincore(page, 4096, &v) != 0 && errno == ENOMEM;
}

/* Fill more than two regions with blocks of one class, free them all and
 * trim: a pointer whose memory is gone. */
static char *pointer_into_returned_region(void)
{
    enum { N = 3 * 4096 }; /* 12 MiB of 1 KiB blocks */
    static char *blocks[N];
    for (int i = 0; i < N; i++) {
        blocks[i] = mapalloc_malloc(1024);
        if (blocks[i] == NULL)
            _exit(8);
        memset(blocks[i], 0x11, 1024);
    }
    for (int i = 0; i < N; i++)
        mapalloc_free(blocks[i]);
    mapalloc_trim(0);
    for (int i = N - 1; i >= 0; i--)
        if (is_unmapped(blocks[i]))
            return blocks[i];
    _exit(9); /* no region went back: nothing to test, and a finding */
}

static void trim_free_unmapped(void)
{
    char *p = pointer_into_returned_region();
    death_expect(p);
    mapalloc_free(p);
}

static void trim_realloc_unmapped(void)
{
    char *p = pointer_into_returned_region();
    death_expect(p);
    p = mapalloc_realloc(p, 10);
}

static void trim_usable_size_unmapped(void)
{
    char *p = pointer_into_returned_region();
    death_expect(p);
    (void)mapalloc_usable_size(p);
}

/* Any block of the regions that went back, even one still mapped. */
static void trim_free_each(void)
{
    enum { N = 3 * 4096 };
    static char *blocks[N];
    for (int i = 0; i < N; i++)
        blocks[i] = mapalloc_malloc(1024);
    for (int i = 0; i < N; i++)
        mapalloc_free(blocks[i]);
    mapalloc_trim(0);
    char *p = blocks[N / 3];
    death_expect(p);
    mapalloc_free(p);
}

static void usable_size_stack(void)
{
    char local[64];
    memset(local, 0, sizeof local);
    char *p = opaque(local + 16);
    mapalloc_free(mapalloc_malloc(16)); /* the allocator is running */
    death_expect(p);
    (void)mapalloc_usable_size(p);
}

static void realloc_stack_running(void)
{
    char local[64];
    memset(local, 0, sizeof local);
    char *p = opaque(local);
    for (int i = 0; i < 1000; i++)
        mapalloc_free(mapalloc_malloc((size_t)i * 37));
    death_expect(p);
    p = mapalloc_realloc(p, 100);
}

/* ---- the table and the parent ---- */

#define DOUBLE "double free of"
#define INVALID "free of invalid pointer"
#define LINK "corrupted free list (use after free or overflow) at"
#define CANARY "heap overflow (canary) detected at the end of block"
#define WAF "write after free detected in block"

static const struct death_case cases[] = {
    {"secure_canary_small", secure_canary_small, CANARY, NULL, DEATH_SECURE},
    {"secure_canary_medium", secure_canary_medium, CANARY, NULL, DEATH_SECURE},
    {"secure_canary_realloc", secure_canary_realloc, CANARY, NULL, DEATH_SECURE},
    {"secure_write_after_free", secure_write_after_free, WAF, NULL, DEATH_SECURE},
    {"secure_write_after_free_end", secure_write_after_free_end, WAF, NULL, DEATH_SECURE},
    {"secure_guard_small", secure_guard_small, NULL, NULL, DEATH_SECURE},
    {"secure_guard_medium", secure_guard_medium, NULL, NULL, DEATH_SECURE},
    {"secure_guard_large", secure_guard_large, NULL, NULL, DEATH_SECURE},
    {"link_overwrite_small", link_overwrite_small, LINK, NULL, DEATH_NOT_SECURE},
    {"link_overwrite_medium", link_overwrite_medium, LINK, NULL, DEATH_NOT_SECURE},
    {"link_overwrite_remote", link_overwrite_remote, LINK, NULL, DEATH_NOT_SECURE},
    {"link_zeroed_small", link_zeroed_small, LINK, NULL, DEATH_NOT_SECURE},
    {"link_zeroed_medium", link_zeroed_medium, LINK, NULL, DEATH_NOT_SECURE},
    {"double_free_churn_small", double_free_churn_small, DOUBLE, NULL, DEATH_NOT_SECURE},
    {"double_free_churn_medium", double_free_churn_medium, DOUBLE, NULL, DEATH_NOT_SECURE},
    {"double_free_churn_emptied", double_free_churn_emptied, DOUBLE, INVALID, DEATH_NOT_SECURE},
    {"double_free_churn_large", double_free_churn_large, DOUBLE, NULL, DEATH_NOT_SECURE},
    {"double_free_after_threads", double_free_after_threads, DOUBLE, NULL, DEATH_NOT_SECURE},
    {"trim_free_unmapped", trim_free_unmapped, INVALID, DOUBLE, DEATH_NOT_SECURE},
    {"trim_realloc_unmapped", trim_realloc_unmapped, INVALID, DOUBLE, DEATH_NOT_SECURE},
    {"trim_usable_size_unmapped", trim_usable_size_unmapped, INVALID, DOUBLE, DEATH_NOT_SECURE},
    {"trim_free_each", trim_free_each, INVALID, DOUBLE, DEATH_NOT_SECURE},
    {"usable_size_stack", usable_size_stack, INVALID, NULL, DEATH_NOT_SECURE},
    {"realloc_stack_running", realloc_stack_running, INVALID, NULL, DEATH_NOT_SECURE},
};

int main(int argc, char **argv)
{
    return death_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
