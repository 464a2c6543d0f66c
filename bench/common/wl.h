/* Shared helpers for the whole-workload benchmarks in bench/workloads/.
 *
 * Every workload program:
 *  - takes the same flags (see wl_parse): -t threads (default: nproc),
 *    -n size (workload-specific unit, a default and a "tiny" value each),
 *    -s seed, -v verbose;
 *  - draws all its randomness from wl_rng, seeded from -s, so a run is
 *    reproducible;
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

#include <pthread.h>
#include <stdint.h>
#include <stddef.h>
#include <string.h>

struct wl_args {
    int threads;   /* -t: worker threads, default nproc */
    long n;        /* -n: workload size, unit stated by each program */
    uint64_t seed; /* -s: PRNG seed */
    int verbose;   /* -v */
};

/* Parses argv into a (threads = nproc, n = default_n, seed = 42 unless
 * given). `what` names the unit of -n for --help. Exits on a bad flag. */
void wl_parse(int argc, char **argv, struct wl_args *a, long default_n, const char *what);

/* ---- Deterministic random numbers --------------------------------------
 * A 64-bit multiply-xorshift generator: state advances by a Weyl constant,
 * output is the state through a 64-bit finaliser. Good enough statistically
 * for choosing sizes and slots, and a single add + mix per number. */
typedef struct { uint64_t s; } wl_rng;

static inline uint64_t wl_mix(uint64_t z)
{
    /* A bijective 64-bit mixer (xor-shift / odd multiply rounds). */
    z ^= z >> 31;
    z *= 0xd6e8feb86659fd93ull;
    z ^= z >> 32;
    z *= 0xd6e8feb86659fd93ull;
    z ^= z >> 32;
    return z;
}

static inline void wl_rng_init(wl_rng *r, uint64_t seed, uint64_t stream)
{
    r->s = wl_mix(seed * 0x9e3779b97f4a7c15ull + stream + 1);
}

static inline uint64_t wl_next(wl_rng *r)
{
    r->s += 0x9e3779b97f4a7c15ull;
    return wl_mix(r->s);
}

/* Uniform in [0, n), n > 0 (multiply-shift, bias negligible for our n). */
static inline uint64_t wl_below(wl_rng *r, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)wl_next(r) * n) >> 64);
}

/* Uniform in [lo, hi]. */
static inline size_t wl_range(wl_rng *r, size_t lo, size_t hi)
{
    return lo + (size_t)wl_below(r, (uint64_t)(hi - lo) + 1);
}

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

/* Errors seen by wl_check and wl_fail (summed over threads). */
extern _Atomic uint64_t wl_errors;
void wl_fail(const char *what, uint64_t detail);

/* ---- Threads -------------------------------------------------------------*/
/* Runs fn(i, arg) on threads 0..n-1 and joins them. Thread 0 runs on a new
 * thread as well, so the main thread's heap stays out of the measurement. */
void wl_run_threads(int n, void *(*fn)(void *), void *args, size_t arg_size);

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

/* ---- Result --------------------------------------------------------------
 * Prints one line:
 *   <name> threads=T n=N seed=S checksum=0x.. expected=0x.. errors=E ms=..
 *     peak_kib=<VmHWM> malloc=<object providing malloc> OK|FAIL
 * and returns the exit status (0 only if got == expected and no errors). */
int wl_finish(const char *name, const struct wl_args *a, uint64_t got, uint64_t expected);

/* Monotonic time in seconds. */
double wl_now(void);

#endif
