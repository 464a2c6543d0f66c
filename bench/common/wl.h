/* Shared helpers for the whole-workload benchmarks in bench/workloads/.
 *
 * Every workload program:
 *  - takes the same flags (see wl_parse): -t threads (default: nproc),
 *    -n size (workload-specific unit, a default and a "tiny" value each),
 *    -s seed, -v verbose, and where the program supports it -d seconds
 *    (run for a fixed time instead of a fixed amount of work);
 *  - draws all its randomness from wl_rng (rng.h), seeded from -s, so a run
 *    is reproducible;
 *  - stamps what it allocates and checks the stamps before freeing, and
 *    ends with wl_finish(), which compares a checksum of what it did with a
 *    value computed independently of the allocator (closed form or a replay
 *    of the random stream that allocates nothing) and exits non-zero on a
 *    mismatch, so that a broken allocator cannot look fast.
 *
 * The programs call plain malloc/free; the allocator under test comes in
 * through LD_PRELOAD. Nothing here allocates except through those calls.
 */
#ifndef MAPALLOC_BENCH_WL_H
#define MAPALLOC_BENCH_WL_H

#include "rng.h"
#include "sys.h"

#include <pthread.h>
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct wl_args {
    int threads;     /* -t: worker threads, default nproc */
    int threads_set; /* -t was given (a program with another default checks it) */
    long n;          /* -n: workload size, unit stated by each program */
    uint64_t seed;   /* -s: PRNG seed */
    double duration; /* -d: seconds of a fixed-time run; 0: fixed work (-n) */
    int verbose;     /* -v */
};

/* Parses argv into a (threads = nproc, n = default_n, seed = 42 unless
 * given). `what` names the unit of -n for --help. Exits on a bad flag.
 * wl_parse_timed also takes -d (the program has a fixed-time mode), and
 * when default_seconds > 0 and neither -n nor -d is given, runs that long. */
void wl_parse_timed(int argc, char **argv, struct wl_args *a, long default_n, const char *what,
                    double default_seconds);
static inline void wl_parse(int argc, char **argv, struct wl_args *a, long default_n, const char *what)
{
    wl_parse_timed(argc, argv, a, default_n, what, -1);
}

/* ---- Fixed-time runs (-d) -------------------------------------------------
 * A timed program loops until wl_past(1.0); wl_past(f) is true once the
 * fraction f of the -d seconds since wl_parse has passed (a program in
 * phases ends phase k of K at wl_past((k + 1.0) / K)), and always false in
 * a fixed-work run. It reads the clock: call it every few hundred
 * operations (wl_more does). */
int wl_past(double fraction);

/* The loop condition of a timed or fixed-work loop: op i runs while
 * i < limit (LONG_MAX in a timed run) and, every 256 ops, the fraction f of
 * the duration has not yet passed. */
static inline int wl_more(long i, long limit, double f)
{
    return i < limit && ((i & 255) != 0 || !wl_past(f));
}

/* Errors seen by wl_check and wl_fail (summed over threads). */
extern _Atomic uint64_t wl_errors;
void wl_fail(const char *what, uint64_t detail);

/* ---- Block stamps -------------------------------------------------------
 * A stamped block of size >= 16 holds its id in the first word and a keyed
 * hash of the id in the last word; the bytes between are filled so that the
 * memory is really touched. Two live blocks that overlap, or a block whose
 * memory the allocator reuses while it is live, break a stamp. */
#define WL_STAMP_MIN 16
#define WL_FILL_MAX 4096 /* bytes beyond this are not filled (large blocks) */

static inline uint64_t wl_tag(uint64_t id) { return wl_mix(id ^ 0x5bd1e9955bd1e995ull); }

static inline void wl_stamp(void *p, size_t size, uint64_t id)
{
    unsigned char *b = p;
    uint64_t tag = wl_tag(id);
    if (size > 2 * sizeof(uint64_t))
        memset(b + 8, (int)(id & 0xff), (size < WL_FILL_MAX ? size : WL_FILL_MAX) - 16);
    memcpy(b, &id, 8);
    memcpy(b + size - 8, &tag, 8);
}

/* Returns the block's id; on a broken stamp counts an error (wl_errors)
 * and returns the id read anyway. */
uint64_t wl_check(const void *p, size_t size);

/* Blocks of 8 to 15 bytes hold the id alone (and the fill); the caller,
 * which must know the id, compares. wl_stamp_any and wl_check_id take any
 * size from 8 and check the id against the one expected. */
static inline void wl_stamp_any(void *p, size_t size, uint64_t id)
{
    if (size >= WL_STAMP_MIN) {
        wl_stamp(p, size, id);
    } else {
        memcpy(p, &id, 8);
        memset((unsigned char *)p + 8, (int)(id & 0xff), size - 8);
    }
}
void wl_check_id(const void *p, size_t size, uint64_t id);

/* malloc(size) stamped with `id` (wl_stamp_any), or NULL with an error
 * counted. */
static inline void *wl_malloc_stamped(size_t size, uint64_t id)
{
    void *p = malloc(size);
    if (!p)
        wl_fail("malloc returned NULL, size", size);
    else
        wl_stamp_any(p, size, id);
    return p;
}

/* The sum of the ids base, base + 1, ..., base + m - 1 (in closed form, for
 * the expected checksums). */
static inline uint64_t wl_id_sum(uint64_t base, uint64_t m) { return base * m + m * (m - 1) / 2; }

/* ---- Page stamps, for blocks of many pages ----------------------------------
 * The first word of every 4 KiB page (of those that hold a whole word) is
 * derived from (block id, page number). wl_stamp_pages writes the pages
 * from byte offset `from` (a multiple of WL_PAGE) on; wl_check_pages checks
 * the pages of the first `size` bytes and returns how many it checked (it
 * stops at the first broken one, counting an error). */
#define WL_PAGE 4096
static inline uint64_t wl_pages_of(size_t size) { return (size + WL_PAGE - 8) / WL_PAGE; }
void wl_stamp_pages(unsigned char *p, size_t size, size_t from, uint64_t id);
uint64_t wl_check_pages(const unsigned char *p, size_t size, uint64_t id);


/* ---- Threads -------------------------------------------------------------*/
/* Runs fn(i, arg) on threads 0..n-1 and joins them; returns the seconds
 * from the first start to the last join. Thread 0 runs on a new thread as
 * well, so the main thread's heap stays out of the measurement. */
double wl_run_threads(int n, void *(*fn)(void *), void *args, size_t arg_size);

/* The argument of the workloads whose threads each work alone and return
 * a sum: thread id, the size -n, the seed, and the sum it computed. */
struct wl_worker {
    int id;
    long n;
    uint64_t seed, sum;
    char pad[64]; /* no false sharing between neighbours */
};

/* Runs fn on a->threads workers and checks the sum of their sums against
 * the sum over threads of expect(thread, n, seed), computed without
 * allocating; returns wl_finish's exit status. */
int wl_run_checked(const char *name, const struct wl_args *a, void *(*fn)(void *),
                   uint64_t (*expect)(int thread, long n, uint64_t seed));

/* A reusable barrier for n threads. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n, waiting;
    unsigned long generation;
} wl_barrier;
void wl_barrier_init(wl_barrier *b, int n);
void wl_barrier_wait(wl_barrier *b);

/* A bounded FIFO of pointers behind one mutex, for handing batches of
 * blocks between threads (one lock per batch keeps it out of the way of the
 * allocator under test). The caller gives the storage for `cap` items.
 * Push waits while the queue is full; pop waits while it is empty and
 * returns NULL once every one of the `producers` has called
 * wl_queue_done and the queue is empty. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    void **items;
    int cap, head, count, producers;
} wl_queue;
void wl_queue_init(wl_queue *q, void **items, int cap, int producers);
void wl_queue_push(wl_queue *q, void *item);
void *wl_queue_pop(wl_queue *q);
void wl_queue_done(wl_queue *q);

/* ---- Result --------------------------------------------------------------
 * Prints one line:
 *   <name> threads=T n=N seed=S checksum=0x.. expected=0x.. errors=E ms=..
 *     [notes] peak_kib=<VmHWM> malloc=<object providing malloc> OK|FAIL
 * and returns the exit status (0 only if got == expected and no errors). */
int wl_finish(const char *name, const struct wl_args *a, uint64_t got, uint64_t expected);

/* Adds "key=value" words to the result line (at most a few hundred bytes
 * in all), before peak_kib. */
void wl_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The operations done in `seconds`, for the result line:
 * "ops=N unit=<unit> ops_per_s=R"; fixed-time runs compare on ops_per_s. */
void wl_note_ops(uint64_t ops, const char *unit, double seconds);

/* The file name of the object that defines the function at `fn` ("?" if
 * unknown): which library provides malloc, or free_sized. */
const char *wl_provider(const void *fn);

#endif
