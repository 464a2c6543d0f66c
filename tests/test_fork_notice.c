/* fork() landing inside a remote free's notice, every time on purpose.
 *
 * The first remote free into a full page sends its owner a notice in three
 * steps (the page's state becomes NOTIFYING, the page goes on the owner's
 * notice stack, the state becomes NONE). A fork between the first and the
 * last leaves the child with a NOTIFYING page and no thread to finish it;
 * the owner's exit, which waits for the notice, must not hang there.
 *
 * Chance alone lands a fork there about once in thousands. Here a freer
 * thread frees one block of each of many full pages (each free a notice)
 * while the main thread interrupts it with signals; the handler looks at
 * the page being freed into, and when it is NOTIFYING it holds the freer
 * there while the main thread forks. The child ends its only thread with
 * pthread_exit, so its heap is abandoned at once; it must exit within a few
 * seconds. The parent then lets the freer go and checks that its blocks
 * all came back. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "heap.h"
#include "check.h"
#include "mapalloc.h"
#include "sys.h"

#define PAGES 64
#define BLOCKS_PER_PAGE ((int)(MA_SLICE_SIZE / 64))
#define CATCHES 10          /* forks inside a notice, before and after its push */
#define TIME_CAP 60.0       /* seconds */
#define CHILD_ALARM 5       /* seconds: a child still alive then hangs */

static void *blocks[PAGES + 1][BLOCKS_PER_PAGE];
static ma_page *round_pages[PAGES];     /* the pages the freer frees into */
static atomic_int round_ready, round_done;
static atomic_bool caught, forked, stop;
static atomic_int caught_listed;        /* catches after the page was pushed */
static atomic_int caught_unlisted;      /* catches before */
static int catches;                     /* forks made inside a notice */

/* In the freer, between any two of its instructions. Its frees may wait
 * in a batch and be pushed at its next free, so every page of the round is
 * looked at. */
static void on_signal(int sig)
{
    (void)sig;
    ma_page *page = NULL;
    for (int i = 0; i < PAGES && page == NULL; i++)
        if ((atomic_load(&round_pages[i]->thread_free) & MA_TF_STATE_MASK) == MA_TF_NOTIFYING)
            page = round_pages[i];
    if (page == NULL)
        return;
    ma_heap *owner = atomic_load(&page->heap);
    bool listed = false;
    for (ma_page *n = atomic_load(&owner->notify); n; n = n->notify_next)
        listed |= n == page;
    /* The freer may sit in one state for many signals: a state that has
     * its forks already lets it go on to the other. */
    atomic_int *count = listed ? &caught_listed : &caught_unlisted;
    if (atomic_load(count) >= CATCHES)
        return;
    atomic_fetch_add(count, 1);
    atomic_store(&caught, true);
    while (!atomic_load(&forked))
        sched_yield();
    atomic_store(&forked, false);
}

/* Frees the first block of each full page of a round: each free is a
 * notice. It never allocates: the blocks' pages are the main thread's. */
static void *freer(void *arg)
{
    (void)arg;
    for (int seen = 0; !atomic_load(&stop);) {
        if (atomic_load(&round_ready) == seen) {
            sched_yield();
            continue;
        }
        seen++;
        for (int i = 0; i < PAGES; i++) {
            mapalloc_free(blocks[i][0]);
            blocks[i][0] = NULL;
        }
        atomic_store(&round_done, seen);
    }
    return NULL;
}

static void child(void)
{
    alarm(CHILD_ALARM);
    mapalloc_free(mapalloc_malloc(64));
    pthread_exit(NULL);
}

/* One more page than the freer uses: the last is not full yet. */
static void allocate_round(void)
{
    for (int i = 0; i <= PAGES; i++)
        for (int j = 0; j < BLOCKS_PER_PAGE; j++) {
            blocks[i][j] = mapalloc_malloc(64);
            CHECK(blocks[i][j] != NULL);
        }
    for (int i = 0; i < PAGES; i++)
        round_pages[i] = ma_page_lookup((uintptr_t)blocks[i][0]);
}

static bool enough(void)
{
    return atomic_load(&caught_listed) >= CATCHES && atomic_load(&caught_unlisted) >= CATCHES;
}

static void free_round(void)
{
    for (int i = 0; i <= PAGES; i++)
        for (int j = 0; j < BLOCKS_PER_PAGE; j++)
            if (blocks[i][j] != NULL)
                mapalloc_free(blocks[i][j]);
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, freer, NULL) == 0);
    int rounds = 0;
    double start = wl_now();
    while (!enough() && wl_now() - start < TIME_CAP) {
        allocate_round();
        atomic_store(&round_ready, ++rounds);
        while (atomic_load(&round_done) != rounds) {
            if (!atomic_load(&caught)) {
                if (!enough())
                    pthread_kill(t, SIGUSR1);
                continue;
            }
            atomic_store(&caught, false);
            fflush(stdout);
            pid_t pid = fork();
            CHECK(pid >= 0);
            if (pid == 0)
                child();
            int status;
            CHECK(waitpid(pid, &status, 0) == pid);
            atomic_store(&forked, true);
            CHECKF(!(WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM),
                   "catch %d: the child forked inside a notice did not exit within %d s (it hangs)",
                   catches + 1, CHILD_ALARM);
            CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                   "catch %d: child ended with status %#x", catches + 1, status);
            catches++;
        }
        free_round();
    }
    atomic_store(&stop, true);
    CHECK(pthread_join(t, NULL) == 0);
    CHECKF(enough(), "only %d forks inside a notice (%d after its push) in %.0f s (%d rounds)",
           catches, atomic_load(&caught_listed), TIME_CAP, rounds);
    /* Every block is back: the heap holds nothing live. */
    struct mapalloc_stats st;
    mapalloc_trim(0);
    mapalloc_stats_get(&st);
    CHECKF(st.live_blocks == 0, "%zu blocks still live", st.live_blocks);
    printf("fork_notice: %d forks inside a notice (%d after the page was pushed), %d rounds, "
           "every child exited\n",
           catches, atomic_load(&caught_listed), rounds);
    return 0;
}
