/* Misuse must abort with one line on stderr naming it: "mapalloc: <misuse>
 * 0x<address>". A table of cases for the death harness (death.h): double
 * frees of every kind of block, frees and reallocs of pointers mapalloc
 * never handed out, sizes that do not match.
 *
 * Linked against the library (not preloaded); the misuse goes through the
 * mapalloc_ names, so this works beside AddressSanitizer too.
 */
#include "check.h"
#include "death.h"
#include "mapalloc.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The lines, in one place. */
#define MSG_DOUBLE_FREE "double free of"
#define MSG_INVALID "free of invalid pointer"
#define MSG_BAD_SIZE "free_sized with a size that does not match the block"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

static char global_block[256] __attribute__((aligned(64)));

/* ---- the misuses: each says which address it misuses, then does it ---- */

static void double_free_small(void)
{
    void *p = mapalloc_malloc(32);
    mapalloc_free(p);
    death_expect(p);
    mapalloc_free(p);
}

/* Not the most recently freed block: the check must not only look at the
 * head of the free list. */
static void double_free_small_not_last(void)
{
    void *p = mapalloc_malloc(48);
    void *others[10];
    for (int i = 0; i < 10; i++)
        others[i] = mapalloc_malloc(48);
    mapalloc_free(p);
    for (int i = 0; i < 10; i++)
        mapalloc_free(others[i]);
    death_expect(p);
    mapalloc_free(p);
}

static void double_free_medium(void)
{
    void *p = mapalloc_malloc(100 * KiB);
    void *q = mapalloc_malloc(100 * KiB); /* keeps the page from emptying */
    mapalloc_free(p);
    death_expect(p);
    mapalloc_free(p);
    mapalloc_free(q);
}

static void double_free_large(void)
{
    void *p = mapalloc_malloc(1 * MiB);
    mapalloc_free(p);
    death_expect(p);
    mapalloc_free(p);
}

static void *free_and_return(void *p)
{
    mapalloc_free(p);
    return NULL;
}

/* Freed once by another thread (one atomic push onto the page), then again
 * by the owner. */
static void double_free_remote(void)
{
    void *p = mapalloc_malloc(64);
    void *keep = mapalloc_malloc(64);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, free_and_return, p) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    death_expect(p);
    mapalloc_free(p);
    mapalloc_free(keep);
}

/* Freed twice by other threads (the second push must be caught too). */
static void double_free_remote_twice(void)
{
    void *p = mapalloc_malloc(64);
    void *keep = mapalloc_malloc(64);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, free_and_return, p) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    death_expect(p);
    CHECK(pthread_create(&t, NULL, free_and_return, p) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    mapalloc_free(keep);
}

static void *free_two_then_second_again(void *arg)
{
    void **b = arg;
    mapalloc_free(b[0]);
    mapalloc_free(b[1]); /* joins the list that b[0] began, still the thread's */
    mapalloc_free(b[1]);
    return NULL;
}

/* Freed twice by another thread while the first free still waits, with
 * another block of its page, to be pushed to the owner. */
static void double_free_remote_batched(void)
{
    void *b[2] = {mapalloc_malloc(64), mapalloc_malloc(64)};
    void *keep = mapalloc_malloc(64);
    death_expect(b[1]);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, free_two_then_second_again, b) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    mapalloc_free(keep);
}

/* 1,024 blocks of 256 bytes, all freed but one in 256, so that no page
 * empties; then allocator activity until a freed block's OS page is no
 * longer resident (its page went sparse, its free blocks off the free
 * list): that block, whose free tag is gone with its memory. */
static void *sparse_block(void)
{
    enum { N = 1024, SIZE = 256, KEEP = 256 };
    static unsigned char *blocks[N];
    CHECK(mapalloc_option_set("decay_ms", 5) == 0 || mapalloc_option_get("decay_ms") == 5);
    for (int i = 0; i < N; i++) {
        blocks[i] = mapalloc_malloc(SIZE);
        CHECK(blocks[i] != NULL);
        memset(blocks[i], 1, SIZE);
    }
    for (int i = 0; i < N; i++)
        if (i % KEEP != 0)
            mapalloc_free(blocks[i]);
    long page = sysconf(_SC_PAGESIZE);
    for (int round = 0; round < 2000; round++) {
        for (int i = 1; i < N; i++) {
            unsigned char *os_page = (unsigned char *)((uintptr_t)blocks[i] & ~(uintptr_t)(page - 1));
            unsigned char in = 1;
            if (blocks[i] == os_page && mincore(os_page, (size_t)page, &in) == 0 && !(in & 1))
                return blocks[i];
        }
        mapalloc_free(mapalloc_malloc(100 * KiB)); /* a page of another class empties */
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    CHECKF(false, "no freed block's page went back to the kernel in 2 s");
    return NULL;
}

/* Freed again by its owner. */
static void double_free_sparse(void)
{
    void *p = sparse_block();
    death_expect(p);
    mapalloc_free(p);
}

/* Freed again by another thread: its page's owner finds it when it collects
 * the page's remote frees, at its next pass. */
static void double_free_sparse_remote(void)
{
    void *p = sparse_block();
    death_expect(p);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, free_and_return, p) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    for (int round = 0; round < 2000; round++) {
        mapalloc_free(mapalloc_malloc(100 * KiB));
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
}

/* The second free comes after the block's page emptied and went back to its
 * region: the block no longer exists, so either name is right. */
static void double_free_emptied_page(void)
{
    enum { N = 200 };
    void *p[N];
    for (int i = 0; i < N; i++)
        p[i] = mapalloc_malloc(1000); /* several pages of one class */
    void *other = mapalloc_malloc(5000); /* the region stays in use */
    for (int i = 0; i < N; i++)
        mapalloc_free(p[i]);
    death_expect(p[0]);
    mapalloc_free(p[0]);
    mapalloc_free(other);
}

/* The second free comes after trim gave the whole region back. */
static void double_free_after_trim(void)
{
    void *p = mapalloc_malloc(3000);
    mapalloc_free(p);
    (void)mapalloc_trim(0);
    death_expect(p);
    mapalloc_free(p);
}

/* Many large frees between the two: the record of the first may be gone. */
static void double_free_large_much_later(void)
{
    void *p = mapalloc_malloc(1 * MiB);
    mapalloc_free(p);
    for (int i = 0; i < 300; i++)
        mapalloc_free(mapalloc_malloc(512 * KiB + (size_t)i * 4096));
    death_expect(p);
    mapalloc_free(p);
}

static void free_stack(void)
{
    char local[64] __attribute__((aligned(16)));
    memset(local, 0, sizeof local);
    death_expect(local);
    mapalloc_free(local);
}

static void free_global(void)
{
    death_expect(global_block);
    mapalloc_free(global_block);
}

static void free_interior_small(void)
{
    char *p = mapalloc_malloc(256);
    death_expect(p + 64);
    mapalloc_free(p + 64);
}

static void free_interior_medium(void)
{
    char *p = mapalloc_malloc(64 * KiB);
    death_expect(p + 4096);
    mapalloc_free(p + 4096);
}

static void free_interior_large(void)
{
    char *p = mapalloc_malloc(2 * MiB);
    death_expect(p + 4096);
    mapalloc_free(p + 4096);
}

static void free_misaligned_small(void)
{
    char *p = mapalloc_malloc(64);
    death_expect(p + 1);
    mapalloc_free(p + 1);
}

static void free_misaligned_large(void)
{
    char *p = mapalloc_malloc(1 * MiB);
    death_expect(p + 8);
    mapalloc_free(p + 8);
}

/* A block from the C library's malloc (glibc's, or the sanitizer's). */
static void free_libc_block(void)
{
    void *p = malloc(100);
    CHECK(p != NULL);
    memset(p, 0, 100);
    death_expect(p);
    mapalloc_free(p);
}

/* An address where nothing is mapped. */
static void free_wild(void)
{
    void *p = (void *)(uintptr_t)0x7e0000123450ULL;
    death_expect(p);
    mapalloc_free(p);
}

static void free_sized_wrong_small(void)
{
    void *p = mapalloc_malloc(100);
    death_expect(p);
    mapalloc_free_sized(p, 5000);
}

static void free_sized_wrong_large(void)
{
    void *p = mapalloc_malloc(1 * MiB);
    death_expect(p);
    mapalloc_free_sized(p, 100);
}

/* The sizes just outside a block's class: 100 bytes take a 112-byte block,
 * whose class serves 97 to 112. */
static void free_sized_below_class(void)
{
    void *p = mapalloc_malloc(100);
    death_expect(p);
    mapalloc_free_sized(p, 96);
}

static void free_sized_above_class(void)
{
    void *p = mapalloc_malloc(100);
    death_expect(p);
    mapalloc_free_sized(p, 113);
}

static void realloc_stack(void)
{
    char local[64] __attribute__((aligned(16)));
    memset(local, 0, sizeof local);
    death_expect(local);
    void *q = mapalloc_realloc(local, 1000);
    (void)q;
}

static void realloc_freed_large(void)
{
    void *p = mapalloc_malloc(1 * MiB);
    mapalloc_free(p);
    death_expect(p);
    void *q = mapalloc_realloc(p, 2 * MiB);
    (void)q;
}

/* An address above what the region map covers (user space with 5-level
 * page tables): told from a block without a look at the map. */
static void free_above_map(void)
{
    void *p = (void *)(((uintptr_t)1 << 47) + 64 * KiB);
    death_expect(p);
    mapalloc_free(p);
}

/* An address in the first 2 MiB, whose page-map entries are the table's
 * head read as a page: no block there. */
static void free_low_address(void)
{
    void *p = (void *)(uintptr_t)(192 * KiB + 16);
    death_expect(p);
    mapalloc_free(p);
}

static const struct death_case cases[] = {
    {"double_free_small", double_free_small, MSG_DOUBLE_FREE, NULL, 0},
    {"double_free_small_not_last", double_free_small_not_last, MSG_DOUBLE_FREE, NULL, 0},
    {"double_free_medium", double_free_medium, MSG_DOUBLE_FREE, NULL, 0},
    {"double_free_large", double_free_large, MSG_DOUBLE_FREE, NULL, 0},
    {"double_free_remote", double_free_remote, MSG_DOUBLE_FREE, NULL, 0},
    {"double_free_remote_twice", double_free_remote_twice, MSG_DOUBLE_FREE, NULL, 0},
    {"double_free_remote_batched", double_free_remote_batched, MSG_DOUBLE_FREE, NULL, 0},
    {"double_free_sparse", double_free_sparse, MSG_DOUBLE_FREE, NULL, DEATH_NOT_SECURE},
    {"double_free_sparse_remote", double_free_sparse_remote, MSG_DOUBLE_FREE, NULL, DEATH_NOT_SECURE},
    {"double_free_emptied_page", double_free_emptied_page, MSG_DOUBLE_FREE, MSG_INVALID, 0},
    {"double_free_after_trim", double_free_after_trim, MSG_DOUBLE_FREE, MSG_INVALID, 0},
    {"double_free_large_much_later", double_free_large_much_later, MSG_DOUBLE_FREE, MSG_INVALID, 0},
    {"free_stack", free_stack, MSG_INVALID, NULL, 0},
    {"free_global", free_global, MSG_INVALID, NULL, 0},
    {"free_interior_small", free_interior_small, MSG_INVALID, NULL, 0},
    {"free_interior_medium", free_interior_medium, MSG_INVALID, NULL, 0},
    {"free_interior_large", free_interior_large, MSG_INVALID, NULL, 0},
    {"free_misaligned_small", free_misaligned_small, MSG_INVALID, NULL, 0},
    {"free_misaligned_large", free_misaligned_large, MSG_INVALID, NULL, 0},
    {"free_libc_block", free_libc_block, MSG_INVALID, NULL, 0},
    {"free_wild", free_wild, MSG_INVALID, NULL, 0},
    {"free_above_map", free_above_map, MSG_INVALID, NULL, 0},
    {"free_low_address", free_low_address, MSG_INVALID, NULL, 0},
    {"free_sized_wrong_small", free_sized_wrong_small, MSG_BAD_SIZE, NULL, 0},
    {"free_sized_wrong_large", free_sized_wrong_large, MSG_BAD_SIZE, NULL, 0},
    {"free_sized_below_class", free_sized_below_class, MSG_BAD_SIZE, NULL, 0},
    {"free_sized_above_class", free_sized_above_class, MSG_BAD_SIZE, NULL, 0},
    {"realloc_stack", realloc_stack, MSG_INVALID, NULL, 0},
    {"realloc_freed_large", realloc_freed_large, MSG_DOUBLE_FREE, NULL, 0},
};

int main(int argc, char **argv)
{
    return death_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
