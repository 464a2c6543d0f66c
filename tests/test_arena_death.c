/* Arena misuse that must abort with one exact line: a table of cases for
 * the death harness (death.h). A block freed after its arena's reset or
 * destroy may be named as an invalid pointer or as a double free: which,
 * depends on whether its page was used again. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "death.h"
#include "mapalloc.h"

/* ---- the cases: each must not return ---- */

static mapalloc_arena *destroyed(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    mapalloc_arena_destroy(a);
    return a;
}

static void malloc_after_destroy(void)
{
    mapalloc_arena *a = destroyed();
    death_expect(a);
    void *p = mapalloc_arena_malloc(a, 32);
    (void)p;
}

/* The thread had the arena in its cache of recent arenas. */
static void malloc_after_destroy_cached(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    for (int i = 0; i < 10; i++)
        mapalloc_arena_free(a, mapalloc_arena_malloc(a, 32));
    mapalloc_arena_destroy(a);
    death_expect(a);
    void *p = mapalloc_arena_malloc(a, 32);
    (void)p;
}

static mapalloc_arena *thread_arena;
static void *use_arena(void *arg)
{
    (void)arg;
    void *p = mapalloc_arena_malloc(thread_arena, 100);
    mapalloc_arena_free(thread_arena, p);
    return NULL;
}

/* Another thread used the arena and is still running when it is destroyed;
 * its next call aborts. */
static pthread_barrier_t barrier;
static void *use_destroy_use(void *arg)
{
    (void)arg;
    void *p = mapalloc_arena_malloc(thread_arena, 100);
    mapalloc_arena_free(thread_arena, p);
    pthread_barrier_wait(&barrier); /* main destroys */
    pthread_barrier_wait(&barrier);
    death_expect(thread_arena);
    p = mapalloc_arena_malloc(thread_arena, 100);
    return p;
}

static void malloc_after_destroy_other_thread(void)
{
    thread_arena = mapalloc_arena_create(NULL);
    pthread_barrier_init(&barrier, NULL, 2);
    pthread_t t;
    pthread_create(&t, NULL, use_destroy_use, NULL);
    pthread_barrier_wait(&barrier);
    mapalloc_arena_destroy(thread_arena);
    pthread_barrier_wait(&barrier);
    pthread_join(t, NULL);
}

static void calloc_after_destroy(void)
{
    mapalloc_arena *a = destroyed();
    death_expect(a);
    void *p = mapalloc_arena_calloc(a, 4, 8);
    (void)p;
}

static void realloc_after_destroy(void)
{
    mapalloc_arena *a = destroyed();
    death_expect(a);
    void *p = mapalloc_arena_realloc(a, NULL, 64);
    (void)p;
}

static void aligned_after_destroy(void)
{
    mapalloc_arena *a = destroyed();
    death_expect(a);
    void *p = mapalloc_arena_aligned_alloc(a, 256, 64);
    (void)p;
}

static void large_after_destroy(void)
{
    mapalloc_arena *a = destroyed();
    death_expect(a);
    void *p = mapalloc_arena_malloc(a, 4 << 20);
    (void)p;
}

static void free_after_destroy(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    void *p = mapalloc_arena_malloc(a, 32);
    mapalloc_arena_destroy(a);
    death_expect(a);
    mapalloc_arena_free(a, p);
}

static void reset_after_destroy(void)
{
    mapalloc_arena *a = destroyed();
    death_expect(a);
    mapalloc_arena_reset(a);
}

static void stats_after_destroy(void)
{
    mapalloc_arena *a = destroyed();
    struct mapalloc_arena_stats s;
    death_expect(a);
    mapalloc_arena_stats(a, &s);
}

/* A thread that used the arena exited; the arena is destroyed after. */
static void use_after_destroy_exited_thread(void)
{
    thread_arena = mapalloc_arena_create(NULL);
    pthread_t t;
    pthread_create(&t, NULL, use_arena, NULL);
    pthread_join(t, NULL);
    mapalloc_arena_destroy(thread_arena);
    death_expect(thread_arena);
    void *p = mapalloc_arena_malloc(thread_arena, 10);
    (void)p;
}

static void destroy_twice(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    void *p = mapalloc_arena_malloc(a, 100);
    (void)p;
    mapalloc_arena_destroy(a);
    death_expect(a);
    mapalloc_arena_destroy(a);
}

static void destroy_twice_after_others(void)
{
    /* Other arenas created and destroyed in between do not hide it. */
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    mapalloc_arena_destroy(a);
    for (int i = 0; i < 20; i++)
        mapalloc_arena_destroy(mapalloc_arena_create(NULL));
    death_expect(a);
    mapalloc_arena_destroy(a);
}

static void wrong_arena_small(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL), *b = mapalloc_arena_create(NULL);
    void *p = mapalloc_arena_malloc(a, 100);
    void *q = mapalloc_arena_malloc(b, 100);
    (void)q;
    death_expect(p);
    mapalloc_arena_free(b, p);
}

static void wrong_arena_large(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL), *b = mapalloc_arena_create(NULL);
    void *p = mapalloc_arena_malloc(a, 3 << 20);
    death_expect(p);
    mapalloc_arena_free(b, p);
}

static void wrong_arena_aligned(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL), *b = mapalloc_arena_create(NULL);
    void *p = mapalloc_arena_aligned_alloc(a, 1 << 20, 1000);
    death_expect(p);
    mapalloc_arena_free(b, p);
}

static void wrong_arena_realloc(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL), *b = mapalloc_arena_create(NULL);
    void *p = mapalloc_arena_malloc(a, 100);
    death_expect(p);
    p = mapalloc_arena_realloc(b, p, 5000);
}

static void heap_block_into_arena(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    void *p = mapalloc_malloc(100);
    death_expect(p);
    mapalloc_arena_free(a, p);
}

static void heap_large_into_arena(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    void *p = mapalloc_malloc(3 << 20);
    death_expect(p);
    mapalloc_arena_free(a, p);
}

static void heap_block_realloc_in_arena(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    void *p = mapalloc_malloc(100);
    death_expect(p);
    p = mapalloc_arena_realloc(a, p, 200);
}

/* A block of the reset arena: gone, whichever free is used. */
static void free_after_reset(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    void *keep = mapalloc_arena_malloc(a, 100);
    void *p = mapalloc_arena_malloc(a, 100);
    (void)keep;
    mapalloc_arena_reset(a);
    death_expect(p);
    mapalloc_arena_free(a, p);
}

static void mapalloc_free_after_reset(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    void *p = mapalloc_arena_malloc(a, 3000);
    mapalloc_arena_reset(a);
    death_expect(p);
    mapalloc_free(p);
}

static void large_free_after_reset(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    void *p = mapalloc_arena_malloc(a, 3 << 20);
    mapalloc_arena_reset(a);
    death_expect(p);
    mapalloc_arena_free(a, p);
}

/* The page stays in place through the reset; a thread that did not
 * allocate the block frees it after. */
static void *free_thread_arena_block(void *arg)
{
    mapalloc_arena_free(thread_arena, arg);
    return NULL;
}

static void free_after_reset_other_thread(void)
{
    thread_arena = mapalloc_arena_create(NULL);
    void *p = mapalloc_arena_malloc(thread_arena, 100);
    mapalloc_arena_reset(thread_arena);
    death_expect(p);
    pthread_t t;
    pthread_create(&t, NULL, free_thread_arena_block, p);
    pthread_join(t, NULL);
}

/* Reset with RESET_RETURNS and a reservation: the region stays mapped. */
static void free_after_reset_returns(void)
{
    struct mapalloc_arena_options o = {MAPALLOC_ARENA_RESET_RETURNS, 0, 4 << 20};
    mapalloc_arena *a = mapalloc_arena_create(&o);
    void *p = mapalloc_arena_malloc(a, 64);
    mapalloc_arena_reset(a);
    death_expect(p);
    mapalloc_arena_free(a, p);
}

/* After destroy, a block of the arena freed with mapalloc_free. */
static void mapalloc_free_after_destroy(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    void *p = mapalloc_arena_malloc(a, 64);
    mapalloc_arena_destroy(a);
    death_expect(p);
    mapalloc_free(p);
}

static void double_free_in_arena(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    void *p = mapalloc_arena_malloc(a, 64);
    void *q = mapalloc_arena_malloc(a, 64);
    (void)q;
    mapalloc_arena_free(a, p);
    death_expect(p);
    mapalloc_arena_free(a, p);
}

/* Past the first few, a page's blocks are handed out fresh, never having
 * been on a free list: a double free is still caught, and so is a free of
 * the next block, not handed out yet. The 20th block of 64 bytes is one. */
static mapalloc_arena *fresh_arena;
static char *fresh_block(void)
{
    fresh_arena = mapalloc_arena_create(NULL);
    char *p = NULL;
    for (int i = 0; i < 20; i++)
        p = mapalloc_arena_malloc(fresh_arena, 64);
    return p;
}

static void double_free_fresh_in_arena(void)
{
    char *p = fresh_block();
    mapalloc_arena_free(fresh_arena, p);
    death_expect(p);
    mapalloc_arena_free(fresh_arena, p);
}

static void free_not_handed_out_in_arena(void)
{
    char *next = fresh_block() + 64;
    death_expect(next);
    mapalloc_arena_free(fresh_arena, next);
}

static void double_free_large_in_arena(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    void *p = mapalloc_arena_malloc(a, 3 << 20);
    mapalloc_arena_free(a, p);
    death_expect(p);
    mapalloc_arena_free(a, p);
}

static void invalid_pointer_into_arena(void)
{
    mapalloc_arena *a = mapalloc_arena_create(NULL);
    char *p = mapalloc_arena_malloc(a, 64);
    death_expect(p + 8);
    mapalloc_arena_free(a, p + 8);
}

static const struct death_case cases[] = {
    {"malloc_after_destroy", malloc_after_destroy, "use of a destroyed arena", NULL, DEATH_NOT_SECURE},
    {"malloc_after_destroy_cached", malloc_after_destroy_cached, "use of a destroyed arena", NULL, DEATH_NOT_SECURE},
    {"malloc_after_destroy_other_thread", malloc_after_destroy_other_thread, "use of a destroyed arena", NULL, DEATH_NOT_SECURE},
    {"use_after_destroy_exited_thread", use_after_destroy_exited_thread, "use of a destroyed arena", NULL, DEATH_NOT_SECURE},
    {"calloc_after_destroy", calloc_after_destroy, "use of a destroyed arena", NULL, DEATH_NOT_SECURE},
    {"realloc_after_destroy", realloc_after_destroy, "use of a destroyed arena", NULL, DEATH_NOT_SECURE},
    {"aligned_after_destroy", aligned_after_destroy, "use of a destroyed arena", NULL, DEATH_NOT_SECURE},
    {"large_after_destroy", large_after_destroy, "use of a destroyed arena", NULL, DEATH_NOT_SECURE},
    {"free_after_destroy", free_after_destroy, "use of a destroyed arena", NULL, DEATH_NOT_SECURE},
    {"reset_after_destroy", reset_after_destroy, "use of a destroyed arena", NULL, DEATH_NOT_SECURE},
    {"stats_after_destroy", stats_after_destroy, "use of a destroyed arena", NULL, DEATH_NOT_SECURE},
    {"destroy_twice", destroy_twice, "arena destroyed twice", NULL, DEATH_NOT_SECURE},
    {"destroy_twice_after_others", destroy_twice_after_others, "arena destroyed twice", NULL, DEATH_NOT_SECURE},
    {"wrong_arena_small", wrong_arena_small, "free into the wrong arena of", NULL, DEATH_NOT_SECURE},
    {"wrong_arena_large", wrong_arena_large, "free into the wrong arena of", NULL, DEATH_NOT_SECURE},
    {"wrong_arena_aligned", wrong_arena_aligned, "free into the wrong arena of", NULL, DEATH_NOT_SECURE},
    {"wrong_arena_realloc", wrong_arena_realloc, "free into the wrong arena of", NULL, DEATH_NOT_SECURE},
    {"heap_block_into_arena", heap_block_into_arena, "free into the wrong arena of", NULL, DEATH_NOT_SECURE},
    {"heap_large_into_arena", heap_large_into_arena, "free into the wrong arena of", NULL, DEATH_NOT_SECURE},
    {"heap_block_realloc_in_arena", heap_block_realloc_in_arena, "free into the wrong arena of", NULL, DEATH_NOT_SECURE},
    {"free_after_reset", free_after_reset, "free of invalid pointer", "double free of", DEATH_NOT_SECURE},
    {"mapalloc_free_after_reset", mapalloc_free_after_reset, "free of invalid pointer", "double free of", DEATH_NOT_SECURE},
    {"large_free_after_reset", large_free_after_reset, "free of invalid pointer", "double free of", DEATH_NOT_SECURE},
    {"free_after_reset_returns", free_after_reset_returns, "free of invalid pointer", "double free of", DEATH_NOT_SECURE},
    {"free_after_reset_other_thread", free_after_reset_other_thread, "free of invalid pointer", "double free of", DEATH_NOT_SECURE},
    {"mapalloc_free_after_destroy", mapalloc_free_after_destroy, "free of invalid pointer", "double free of", DEATH_NOT_SECURE},
    {"double_free_in_arena", double_free_in_arena, "double free of", NULL, DEATH_NOT_SECURE},
    {"double_free_fresh_in_arena", double_free_fresh_in_arena, "double free of", NULL, DEATH_NOT_SECURE},
    {"free_not_handed_out_in_arena", free_not_handed_out_in_arena, "free of invalid pointer", NULL, DEATH_NOT_SECURE},
    {"double_free_large_in_arena", double_free_large_in_arena, "double free of", "free of invalid pointer", DEATH_NOT_SECURE},
    {"invalid_pointer_into_arena", invalid_pointer_into_arena, "free of invalid pointer", NULL, DEATH_NOT_SECURE},
};

int main(int argc, char **argv)
{
    return death_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
