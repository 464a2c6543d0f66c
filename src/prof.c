/* The sampling heap profiler: see prof.h.
 *
 * Its tables live in mappings of their own (the OS layer), never in the
 * heap it watches: the stacks (each distinct stack once, with its counts),
 * appended and never removed, so a dump walks them without a lock (a
 * signal handler may dump while another thread holds it); and the live
 * samples, keyed by block address, under ma_prof_lock, which is taken only
 * by samples and by frees of blocks that are in no page. No system call is
 * made under the lock. Profiles are written in the heap-profile text of
 * gperftools (google-pprof reads it): one line per stack with its
 * estimated live and allocated objects and bytes, then the process's
 * mappings. */
#include "prof.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mapalloc.h"
#include "os.h"
#include "unwind.h"

ma_spinlock ma_prof_lock;

/* Counts of objects are kept in 1/65536ths: an estimate of a sample's
 * objects is 1 / its probability. */
#define COUNT_ONE 65536.0

/* ---- numbers: the interval, random gaps, probabilities ---- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

static uint64_t rng_seed(const void *salt)
{
    uint64_t s = ma_secret[2] ^ (uint64_t)(uintptr_t)salt ^ ((uint64_t)(uintptr_t)ma_thread_id() << 17);
    s = (s ^ (s >> 31)) * 0x9e3779b97f4a7c15ull;
    return s ? s : 1;
}

/* ln(x) for x in (0, 1], without libm: the exponent, and the series of
 * atanh for the mantissa brought into [0.71, 1.42] (error below 1e-9). */
static double log_unit(double x)
{
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    int e = (int)((bits >> 52) & 0x7ff) - 1023;
    bits = (bits & (((uint64_t)1 << 52) - 1)) | ((uint64_t)1023 << 52);
    double m;
    memcpy(&m, &bits, sizeof m);
    if (m > 1.4142135623730951) {
        m *= 0.5;
        e++;
    }
    double z = (m - 1) / (m + 1), z2 = z * z;
    double s = z * (2 + z2 * (2.0 / 3 + z2 * (2.0 / 5 + z2 * (2.0 / 7 + z2 * (2.0 / 9)))));
    return s + e * 0.6931471805599453;
}

/* 1 - exp(-x), x >= 0: the probability that a block of x intervals is
 * sampled. */
static double sample_probability(double x)
{
    if (x < 1e-4)
        return x * (1 - x * (0.5 - x / 6));
    if (x > 40)
        return 1;
    int k = (int)(x / 0.6931471805599453);
    double r = x - k * 0.6931471805599453, term = 1, e = 1;
    for (int i = 1; i <= 16; i++) {
        term *= -r / i;
        e += term;
    }
    while (k-- > 0)
        e *= 0.5;
    return 1 - e;
}

static double interval_bytes(void)
{
    return (double)ma_option(MA_OPT_PROF_SAMPLE_KB) * 1024;
}

/* Bytes to the next sample: exponential, of mean the interval (at least 1;
 * always 1 with prof_sample_kb=0, so that every allocation is sampled). */
static int64_t draw_gap(uint64_t *rng)
{
    double mean = interval_bytes();
    double u = (double)((rng_next(rng) >> 11) + 1) * (1.0 / 9007199254740992.0); /* (0, 1] */
    double gap = -mean * log_unit(u);
    return gap < 1 ? 1 : gap > 1e15 ? (int64_t)1e15 : (int64_t)gap;
}

/* ---- the tables ---- */

/* One distinct stack and its counts. Counts are written under the lock and
 * read without it by dumps: each is atomic, their sum a snapshot. */
struct stack {
    struct stack *next;  /* every stack, newest first */
    struct stack *chain; /* its hash bucket */
    uint64_t hash;
    _Atomic uint64_t live_count, live_bytes, live_samples; /* counts in 1/65536ths */
    _Atomic uint64_t alloc_count, alloc_bytes;
    _Atomic uint64_t peak_count, peak_bytes;   /* the live set at the peak (prof_peak) */
    uint32_t depth;
    uintptr_t pcs[];
};

struct sample {
    uintptr_t addr; /* 0: empty slot */
    struct stack *stack;
    uint64_t count, bytes; /* its estimates */
};

#define BUCKETS 16384
#define STACK_CHUNK ((size_t)256 << 10)
#define STACK_BYTES_MAX (sizeof(struct stack) + MA_UNWIND_MAX * sizeof(uintptr_t))

static struct stack **buckets;
static _Atomic(struct stack *) all_stacks;
static uint8_t *chunk_next, *chunk_end;
static struct sample *samples;
static size_t samples_cap, samples_used;
static _Atomic size_t mapped_bytes;
/* The estimated live bytes of every sample, and their highest since the
 * last snapshot of the peak. */
static uint64_t live_total, peak_total;

static void *table_map(size_t size)
{
    void *p = ma_os_map(size, MA_OS_PAGE, ma_os_default_flags() & ~(unsigned)MA_MAP_HUGE);
    if (p != NULL)
        atomic_fetch_add_explicit(&mapped_bytes, size, memory_order_relaxed);
    return p;
}

static void table_unmap(void *p, size_t size)
{
    ma_os_unmap(p, size);
    atomic_fetch_sub_explicit(&mapped_bytes, size, memory_order_relaxed);
}

size_t ma_prof_mapped(void)
{
    return atomic_load_explicit(&mapped_bytes, memory_order_relaxed);
}

static size_t sample_slot(uintptr_t addr, size_t cap)
{
    return (size_t)(((addr >> 4) * 0x9e3779b97f4a7c15ull) >> 32) & (cap - 1);
}

static struct sample *sample_find(uintptr_t addr)
{
    if (samples_cap == 0)
        return NULL;
    for (size_t i = sample_slot(addr, samples_cap);; i = (i + 1) & (samples_cap - 1)) {
        if (samples[i].addr == addr)
            return &samples[i];
        if (samples[i].addr == 0)
            return NULL;
    }
}

static void sample_put(struct sample *tab, size_t cap, const struct sample *s)
{
    size_t i = sample_slot(s->addr, cap);
    while (tab[i].addr != 0)
        i = (i + 1) & (cap - 1);
    tab[i] = *s;
}

/* Linear probing deletion: later members of the cluster move back. */
static void sample_erase(struct sample *e)
{
    size_t i = (size_t)(e - samples);
    for (size_t j = (i + 1) & (samples_cap - 1); samples[j].addr != 0; j = (j + 1) & (samples_cap - 1)) {
        size_t home = sample_slot(samples[j].addr, samples_cap);
        bool movable = i <= j ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            samples[i] = samples[j];
            i = j;
        }
    }
    samples[i].addr = 0;
    samples_used--;
}

/* Takes the lock with room for one more sample and one more stack; maps
 * what is missing with the lock dropped. False: no memory (unlocked). */
static bool lock_with_room(void)
{
    for (;;) {
        ma_lock(&ma_prof_lock);
        bool need_buckets = buckets == NULL;
        bool need_chunk = (size_t)(chunk_end - chunk_next) < STACK_BYTES_MAX;
        bool need_samples = (samples_used + 1) * 2 > samples_cap;
        size_t old_cap = samples_cap;
        if (!need_buckets && !need_chunk && !need_samples)
            return true;
        ma_unlock(&ma_prof_lock);
        void *b = need_buckets ? table_map(BUCKETS * sizeof(struct stack *)) : NULL;
        void *c = need_chunk ? table_map(STACK_CHUNK) : NULL;
        size_t cap = old_cap ? old_cap * 2 : 4096;
        struct sample *t = need_samples ? table_map(cap * sizeof(struct sample)) : NULL;
        if ((need_buckets && !b) || (need_chunk && !c) || (need_samples && !t)) {
            if (b) table_unmap(b, BUCKETS * sizeof(struct stack *));
            if (c) table_unmap(c, STACK_CHUNK);
            if (t) table_unmap(t, cap * sizeof(struct sample));
            return false;
        }
        struct sample *old = NULL;
        ma_lock(&ma_prof_lock);
        if (b && buckets == NULL) {
            buckets = b;
            b = NULL;
        }
        /* A chunk's unused tail is left behind: stacks never move, and it
         * is less than one stack. */
        if (c && (size_t)(chunk_end - chunk_next) < STACK_BYTES_MAX) {
            chunk_next = c;
            chunk_end = (uint8_t *)c + STACK_CHUNK;
            c = NULL;
        }
        if (t && samples_cap == old_cap) {
            for (size_t i = 0; i < old_cap; i++)
                if (samples[i].addr)
                    sample_put(t, cap, &samples[i]);
            old = samples;
            samples = t;
            samples_cap = cap;
            t = NULL;
        }
        ma_unlock(&ma_prof_lock);
        if (b) table_unmap(b, BUCKETS * sizeof(struct stack *));
        if (c) table_unmap(c, STACK_CHUNK);
        if (t) table_unmap(t, cap * sizeof(struct sample));
        if (old) table_unmap(old, old_cap * sizeof(struct sample));
    }
}

static uint64_t stack_hash(const uintptr_t *pcs, unsigned depth)
{
    uint64_t h = 0xcbf29ce484222325ull ^ depth;
    for (unsigned i = 0; i < depth; i++)
        h = (h ^ pcs[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

/* The stack's entry, made if new. Lock held, room reserved. */
static struct stack *stack_intern(const uintptr_t *pcs, unsigned depth)
{
    uint64_t h = stack_hash(pcs, depth);
    struct stack **bucket = &buckets[h & (BUCKETS - 1)];
    for (struct stack *s = *bucket; s; s = s->chain)
        if (s->hash == h && s->depth == depth && memcmp(s->pcs, pcs, depth * sizeof *pcs) == 0)
            return s;
    struct stack *s = (struct stack *)chunk_next;
    chunk_next += (sizeof(struct stack) + depth * sizeof(uintptr_t) + 15) & ~(size_t)15;
    s->hash = h;
    s->depth = depth;
    memcpy(s->pcs, pcs, depth * sizeof *pcs);
    s->chain = *bucket;
    *bucket = s;
    s->next = atomic_load_explicit(&all_stacks, memory_order_relaxed);
    atomic_store_explicit(&all_stacks, s, memory_order_release); /* complete before it is seen */
    return s;
}

static void add(_Atomic uint64_t *counter, uint64_t v)
{
    atomic_fetch_add_explicit(counter, v, memory_order_relaxed);
}

/* The live set becomes the peak's, when it is a new high by a margin (a
 * sample interval, or 1/64): a copy of every stack's counts each time. */
static void note_peak(void)
{
    uint64_t margin = peak_total / 64 > (uint64_t)interval_bytes() ? peak_total / 64 : (uint64_t)interval_bytes();
    if (live_total <= peak_total + margin)
        return;
    peak_total = live_total;
    for (struct stack *s = atomic_load_explicit(&all_stacks, memory_order_relaxed); s; s = s->next) {
        atomic_store_explicit(&s->peak_count, atomic_load_explicit(&s->live_count, memory_order_relaxed),
                              memory_order_relaxed);
        atomic_store_explicit(&s->peak_bytes, atomic_load_explicit(&s->live_bytes, memory_order_relaxed),
                              memory_order_relaxed);
    }
}

static void live_file_note(void);

/* Records the sampled block p (size bytes, counted as block_size) with the
 * stack pcs. False: no memory for the tables. */
static bool record(void *p, size_t size, size_t block_size, const uintptr_t *pcs, unsigned depth)
{
    double interval = interval_bytes();
    double prob = interval > 0 ? sample_probability((double)block_size / interval) : 1;
    struct sample smp = {(uintptr_t)p, NULL, (uint64_t)(COUNT_ONE / prob + 0.5),
                         (uint64_t)((double)size / prob + 0.5)};
    if (!lock_with_room())
        return false;
    smp.stack = stack_intern(pcs, depth);
    sample_put(samples, samples_cap, &smp);
    samples_used++;
    add(&smp.stack->live_count, smp.count);
    add(&smp.stack->live_bytes, smp.bytes);
    add(&smp.stack->live_samples, 1);
    add(&smp.stack->alloc_count, smp.count);
    add(&smp.stack->alloc_bytes, smp.bytes);
    live_total += smp.bytes;
    if (ma_option(MA_OPT_PROF_PEAK))
        note_peak();
    ma_unlock(&ma_prof_lock);
    live_file_note();
    return true;
}

void ma_prof_free(const void *p)
{
    if (__atomic_load_n(&samples_used, __ATOMIC_RELAXED) == 0)
        return;
    ma_lock(&ma_prof_lock);
    struct sample *e = sample_find((uintptr_t)p);
    bool found = e != NULL;
    if (found) {
        struct stack *s = e->stack;
        atomic_fetch_sub_explicit(&s->live_count, e->count, memory_order_relaxed);
        atomic_fetch_sub_explicit(&s->live_bytes, e->bytes, memory_order_relaxed);
        atomic_fetch_sub_explicit(&s->live_samples, 1, memory_order_relaxed);
        live_total -= e->bytes;
        sample_erase(e);
    }
    ma_unlock(&ma_prof_lock);
    if (found)
        live_file_note();
}

/* ---- starting: options that act once, the signal, exit ---- */

static char prof_file[512];     /* MAPALLOC_PROF_FILE, or empty */
static char live_file[512];     /* MAPALLOC_PROF_LIVE, or empty */
static int start_pid;           /* the process whose profile prof_file names */
static _Atomic unsigned dump_seq;
static void on_signal(int sig);

static void copy_env(char *dst, size_t cap, const char *name)
{
    const char *v = getenv(name);
    size_t n = v ? strlen(v) : 0;
    if (n >= cap)
        n = 0; /* too long to be kept whole: the default instead */
    memcpy(dst, v ? v : "", n);
    dst[n] = 0;
}

/* Once, on the first sampled path: the signal handler, which writes a
 * profile without allocating (prof_signal). */
static void start_once(void)
{
    static _Atomic int started;
    if (atomic_load_explicit(&started, memory_order_acquire) || atomic_exchange(&started, 1))
        return;
    int sig = (int)ma_option(MA_OPT_PROF_SIGNAL);
    if (sig > 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        sigaction(sig, &sa, NULL);
    }
}

/* ---- the handout of pages ---- */

/* A class's first gap is drawn at its first handout (left 0: none yet;
 * after a handout left is always at least 1), so that a thread that uses
 * few classes, or lives briefly, draws few. */
static void heap_start(ma_prof_heap *ph)
{
    ph->rng = rng_seed(ph);
    start_once();
}

/* Blocks on the page's free list, at most max (a list the fast path has
 * drained is empty: the usual case). */
static unsigned count_free(const ma_page *page, unsigned max)
{
    unsigned n = 0;
    for (const ma_block *b = page->free; b && n < max; b = ma_link_decode(page, b->link)) {
        if (!ma_page_has_block(page, (uintptr_t)b))
            break;
        n++;
    }
    return n;
}

void ma_prof_settle(ma_heap *heap, unsigned c)
{
    ma_prof_class *st = &heap->prof.cls[c];
    ma_page *page = st->page;
    if (page == NULL)
        return;
    st->page = NULL;
    /* A page freed and set up anew since (other keys), or now another
     * heap's: what was taken from it is not known any more. */
    if (page->link_key != st->page_key || page->class_idx != c ||
        atomic_load_explicit(&page->heap, memory_order_relaxed) != heap)
        return;
    unsigned listed = count_free(page, st->listed);
    unsigned fresh = page->fresh_left < st->fresh ? page->fresh_left : st->fresh;
    st->left -= (int64_t)(st->listed - listed + st->fresh - fresh) * page->block_size;
}

/* Blocks handed out at a time from a page that holds the next sample: the
 * cut below walks (or carves) that many at most, so that a page with a long
 * free list that many short-lived threads take a block from in turn is not
 * walked through by each; the fast path comes back after them and the
 * handout goes on from where it left. */
#define LIMIT_RUN 64

/* The page gives the fast path only the blocks that fit in the left bytes
 * before the next sample (j more blocks keep the count above 0 while
 * j * block_size < left): the first k of its free list, with fresh blocks
 * carved into it when there are too few. The rest waits on the local list,
 * as blocks the owner freed do, which also keeps the fast path from its
 * fresh blocks; the slow path takes them back when the k are gone. Returns
 * the blocks left on the free list. */
static unsigned limit_page(ma_page *page, int64_t left)
{
    unsigned listed = ma_page_capacity(page) - ma_page_used(page); /* local list empty */
    uint64_t size = page->block_size, avail = listed + (uint64_t)page->fresh_left;
    if (avail * size < (uint64_t)left) /* the usual case: the whole page, no division */
        return listed;
    uint64_t k = (uint64_t)(left - 1) / size;
    if (k > LIMIT_RUN)
        k = LIMIT_RUN;
    while (listed <= k && page->fresh_left) {
        ma_page_extend(page);
        listed = ma_page_capacity(page) - ma_page_used(page);
    }
    ma_block *rest = page->free;
    if (k == 0) {
        page->free = NULL;
    } else {
        ma_block *last = page->free;
        for (uint64_t i = 1;; i++) {
            if (!ma_page_has_block(page, (uintptr_t)last)) /* a link not written by us */
                ma_page_corrupt(page, last);
            if (i == k)
                break;
            last = ma_link_decode(page, last->link);
        }
        rest = ma_link_decode(page, last->link);
        last->link = ma_link_encode(page, NULL);
    }
    page->local_free = rest;
    return (unsigned)k;
}

void *ma_prof_handout(ma_heap *heap, ma_page *page)
{
    ma_prof_heap *ph = &heap->prof;
    if (ma_unlikely(ph->rng == 0))
        heap_start(ph);
    ma_prof_class *st = &ph->cls[page->class_idx];
    int64_t size = page->block_size;
    void *b;
    if (ma_unlikely(st->left == 0))
        st->left = draw_gap(&ph->rng);
    st->left -= size;
    if (st->left <= 0) {
        st->left = draw_gap(&ph->rng);
        b = MA_PROF_DUE;
    } else {
        b = ma_page_take_checked(page);
    }
    st->listed = limit_page(page, st->left);
    st->fresh = page->fresh_left;
    st->page = page;
    st->page_key = page->link_key;
    return b;
}

/* ---- samples ---- */

static MA_THREAD_LOCAL struct {
    int64_t left;
    uint64_t rng;
} thread_count;

bool ma_prof_tick(size_t block_size)
{
    if (ma_unlikely(thread_count.rng == 0)) {
        thread_count.rng = rng_seed(&thread_count);
        thread_count.left = draw_gap(&thread_count.rng);
        start_once();
    }
    thread_count.left -= (int64_t)block_size;
    if (thread_count.left > 0)
        return false;
    thread_count.left = draw_gap(&thread_count.rng);
    return true;
}

/* The largest power of two that divides the block size: the alignment its
 * blocks have in their pages, and so the one a sampled block keeps. */
static size_t natural_alignment(size_t block_size)
{
    size_t a = block_size & (~block_size + 1);
    return a > MA_OS_PAGE ? a : 0;
}

void *ma_prof_sample(size_t size, size_t alignment, size_t block_size, bool zero)
{
    uintptr_t pcs[MA_UNWIND_MAX];
    unsigned depth = ma_unwind(pcs, MA_UNWIND_MAX);
    size_t natural = natural_alignment(block_size);
    if (natural > alignment)
        alignment = natural;
    /* Room for the whole class, so that realloc keeps the block in place
     * within its class as it would keep it in its page (api.c); not in
     * the secure profile, whose guard page follows the request. */
    size_t room = ma_secure ? size : block_size;
    void *p = ma_arena_large_malloc_room(&ma_default_arena, size ? size : 1, room ? room : 1, alignment,
                                         zero);
    if (p == NULL)
        return NULL;
    if (!record(p, size, block_size, pcs, depth)) {
        ma_arena_large_free(p, 0, 0);
        return NULL;
    }
    return p;
}

void ma_prof_large(void *p, size_t size)
{
    if (!ma_prof_tick(size))
        return;
    uintptr_t pcs[MA_UNWIND_MAX];
    unsigned depth = ma_unwind(pcs, MA_UNWIND_MAX);
    record(p, size, size, pcs, depth); /* no memory for the tables: unsampled */
}

/* ---- output without stdio ---- */

struct out {
    int fd;
    size_t n;
    char buf[4096];
};

static void out_flush(struct out *o)
{
    for (size_t done = 0; done < o->n;) {
        ssize_t w = write(o->fd, o->buf + done, o->n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    o->n = 0;
}

static void out_mem(struct out *o, const char *s, size_t len)
{
    while (len > 0) {
        if (o->n == sizeof o->buf)
            out_flush(o);
        size_t k = sizeof o->buf - o->n < len ? sizeof o->buf - o->n : len;
        memcpy(o->buf + o->n, s, k);
        o->n += k;
        s += k;
        len -= k;
    }
}

static void out_str(struct out *o, const char *s)
{
    out_mem(o, s, strlen(s));
}

static void out_u64(struct out *o, uint64_t v)
{
    char num[24];
    out_mem(o, num, ma_format_u64(num, v));
}

static void out_hex(struct out *o, uint64_t v)
{
    char num[24];
    out_mem(o, num, ma_format_hex(num, v));
}

static uint64_t whole(uint64_t count)
{
    return (uint64_t)((double)count / COUNT_ONE + 0.5);
}

/* ---- profiles ---- */

enum which { LIVE, PEAK };

static void stack_counts(const struct stack *s, enum which w, uint64_t v[4])
{
    v[0] = whole(atomic_load_explicit(w == LIVE ? &s->live_count : &s->peak_count, memory_order_relaxed));
    v[1] = atomic_load_explicit(w == LIVE ? &s->live_bytes : &s->peak_bytes, memory_order_relaxed);
    v[2] = whole(atomic_load_explicit(&s->alloc_count, memory_order_relaxed));
    v[3] = atomic_load_explicit(&s->alloc_bytes, memory_order_relaxed);
}

static void out_counts(struct out *o, const uint64_t v[4])
{
    out_u64(o, v[0]);
    out_str(o, ": ");
    out_u64(o, v[1]);
    out_str(o, " [");
    out_u64(o, v[2]);
    out_str(o, ": ");
    out_u64(o, v[3]);
    out_str(o, "] @");
}

static void copy_maps(struct out *o)
{
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    out_flush(o);
    for (;;) {
        ssize_t n = read(fd, o->buf, sizeof o->buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        o->n = (size_t)n;
        out_flush(o);
    }
    close(fd);
}

/* The profile as gperftools' heap profiler writes it: totals, a line per
 * stack, the mappings. Reads the stacks without the lock: safe in a signal
 * handler and at any moment, a snapshot of counts that may be moving. */
static void write_profile(int fd, enum which w)
{
    struct out o = {.fd = fd, .n = 0};
    uint64_t total[4] = {0, 0, 0, 0}, v[4];
    struct stack *first = atomic_load_explicit(&all_stacks, memory_order_acquire);
    for (const struct stack *s = first; s; s = s->next) {
        stack_counts(s, w, v);
        for (int i = 0; i < 4; i++)
            total[i] += v[i];
    }
    out_str(&o, "heap profile: ");
    out_counts(&o, total);
    out_str(&o, " heapprofile\n");
    for (const struct stack *s = first; s; s = s->next) {
        stack_counts(s, w, v);
        if (v[1] == 0 && v[3] == 0)
            continue;
        out_counts(&o, v);
        for (uint32_t i = 0; i < s->depth; i++) {
            out_str(&o, " ");
            out_hex(&o, s->pcs[i]);
        }
        out_str(&o, "\n");
    }
    out_str(&o, "\nMAPPED_LIBRARIES:\n");
    copy_maps(&o);
    out_flush(&o);
}

/* The path of a profile: prof_file (MAPALLOC_PROF_FILE) in the process it
 * is for (MAPALLOC_PROF_PID, or the one that started with it), else with
 * ".<pid>" (a forked child, another program of a pipeline: each writes its
 * own), or mapalloc.<pid>.heap; suffix after (".peak", ".<n>"). */
static void profile_path(char *buf, size_t cap, const char *suffix, uint64_t seq)
{
    size_t n = 0;
    char num[24];
    int pid = (int)getpid();
#define PUT(s) do { size_t l_ = strlen(s); if (n + l_ < cap) { memcpy(buf + n, s, l_); n += l_; } } while (0)
    ma_format_u64(num, (uint64_t)pid);
    if (prof_file[0]) {
        PUT(prof_file);
        if (pid != start_pid) {
            PUT(".");
            PUT(num);
        }
    } else {
        PUT("mapalloc.");
        PUT(num);
        PUT(".heap");
    }
    if (suffix)
        PUT(suffix);
    if (seq) {
        ma_format_u64(num, seq);
        PUT(".");
        PUT(num);
    }
#undef PUT
    buf[n] = 0;
}

static int dump_to(const char *path, enum which w)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    write_profile(fd, w);
    close(fd);
    return 0;
}

/* prof_signal: a profile to <path>.<n>, written from the handler itself
 * (it allocates nothing and takes no lock). */
static void on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    char path[600];
    profile_path(path, sizeof path, NULL, atomic_fetch_add(&dump_seq, 1) + 1);
    dump_to(path, LIVE);
    errno = saved;
}

MA_API int mapalloc_prof_dump(const char *path)
{
    if (!ma_prof_on) {
        errno = ENOENT;
        return -1;
    }
    char buf[600];
    if (path == NULL) {
        profile_path(buf, sizeof buf, NULL, atomic_fetch_add(&dump_seq, 1) + 1);
        path = buf;
    }
    int saved = errno;
    int rc = dump_to(path, LIVE);
    if (rc == 0)
        errno = saved;
    return rc;
}

/* ---- the live bytes over time (MAPALLOC_PROF_LIVE, for mapalloc-run --timeline) ---- */

/* At most one line per 50 ms, from the sampled paths: "<ms> <bytes>", ms
 * on CLOCK_MONOTONIC (the launcher's clock), bytes the estimated live bytes.
 * Lines stop when the program stops allocating and freeing sampled blocks:
 * then the live bytes do not move. */
#define LIVE_INTERVAL_MS 50
static _Atomic int live_fd = -1;
static _Atomic uint64_t live_last_ms;

static void live_file_note(void)
{
    if (live_file[0] == 0)
        return;
    uint64_t now = ma_clock_ms(), last = atomic_load_explicit(&live_last_ms, memory_order_relaxed);
    if (now - last < LIVE_INTERVAL_MS ||
        !atomic_compare_exchange_strong_explicit(&live_last_ms, &last, now, memory_order_relaxed,
                                                 memory_order_relaxed))
        return;
    int fd = atomic_load(&live_fd);
    if (fd < 0) {
        int saved = errno;
        fd = open(live_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        errno = saved;
        if (fd < 0)
            return;
        int none = -1;
        if (!atomic_compare_exchange_strong(&live_fd, &none, fd)) {
            close(fd);
            fd = none;
        }
    }
    struct out o = {.fd = fd, .n = 0};
    out_u64(&o, now);
    out_str(&o, " ");
    out_u64(&o, __atomic_load_n(&live_total, __ATOMIC_RELAXED));
    out_str(&o, "\n");
    int saved = errno;
    out_flush(&o);
    errno = saved;
}

/* ---- the leak report ---- */

#define LEAK_ROWS 20
#define LEAK_FRAMES 16

static void out_frame(struct out *o, unsigned i, uintptr_t pc)
{
    struct ma_symbol sym;
    ma_symbolize(pc, &sym);
    out_str(o, "mapalloc:     #");
    out_u64(o, i);
    out_str(o, " ");
    out_hex(o, pc);
    out_str(o, " ");
    if (sym.name) {
        out_str(o, sym.name);
        out_str(o, "+");
    }
    out_hex(o, sym.offset);
    if (sym.object) {
        out_str(o, " (");
        out_str(o, sym.object);
        out_str(o, ")");
    }
    out_str(o, "\n");
}

/* The stack with the most live bytes below the bound (by bytes, then by
 * address, so that equal ones come one after another). */
static const struct stack *next_largest(const struct stack *first, uint64_t below, const struct stack *after)
{
    const struct stack *best = NULL;
    uint64_t best_bytes = 0;
    for (const struct stack *s = first; s; s = s->next) {
        uint64_t b = atomic_load_explicit(&s->live_bytes, memory_order_relaxed);
        if (b == 0 || b > below || (b == below && (uintptr_t)s <= (uintptr_t)after))
            continue;
        if (best == NULL || b > best_bytes || (b == best_bytes && (uintptr_t)s < (uintptr_t)best)) {
            best = s;
            best_bytes = b;
        }
    }
    return best;
}

static void report_leaks(int fd)
{
    struct out o = {.fd = fd, .n = 0};
    const struct stack *first = atomic_load_explicit(&all_stacks, memory_order_acquire);
    uint64_t bytes = 0, count = 0, sampled = 0, stacks = 0;
    for (const struct stack *s = first; s; s = s->next) {
        uint64_t b = atomic_load_explicit(&s->live_bytes, memory_order_relaxed);
        if (b == 0)
            continue;
        bytes += b;
        count += atomic_load_explicit(&s->live_count, memory_order_relaxed);
        sampled += atomic_load_explicit(&s->live_samples, memory_order_relaxed);
        stacks++;
    }
    out_str(&o, "mapalloc: leaks: ");
    out_u64(&o, bytes);
    out_str(&o, " bytes in ");
    out_u64(&o, whole(count));
    out_str(&o, " blocks still live at exit (estimated from ");
    out_u64(&o, sampled);
    out_str(&o, " sampled blocks) from ");
    out_u64(&o, stacks);
    out_str(&o, stacks == 1 ? " stack" : " stacks");
    out_str(&o, stacks ? ", largest first:\n" : "\n");
    const struct stack *s = NULL;
    uint64_t below = UINT64_MAX;
    for (unsigned row = 0; row < LEAK_ROWS && (s = next_largest(first, below, s)) != NULL; row++) {
        below = atomic_load_explicit(&s->live_bytes, memory_order_relaxed);
        out_str(&o, "mapalloc: ");
        out_u64(&o, below);
        out_str(&o, " bytes in ");
        out_u64(&o, whole(atomic_load_explicit(&s->live_count, memory_order_relaxed)));
        out_str(&o, " blocks allocated at:\n");
        for (uint32_t i = 0; i < s->depth && i < LEAK_FRAMES; i++)
            out_frame(&o, i, s->pcs[i]);
    }
    if (stacks > LEAK_ROWS) {
        out_str(&o, "mapalloc: and ");
        out_u64(&o, stacks - LEAK_ROWS);
        out_str(&o, " more stacks\n");
    }
    out_flush(&o);
}

/* ---- at exit ---- */

static void prof_at_exit(void)
{
    if (atomic_load(&ma_init_state) != 2 || !ma_prof_on)
        return;
    char path[600];
    if (ma_option(MA_OPT_PROF) && ma_option(MA_OPT_PROF_FINAL)) {
        profile_path(path, sizeof path, NULL, 0);
        dump_to(path, LIVE);
    }
    if (ma_option(MA_OPT_PROF) && ma_option(MA_OPT_PROF_PEAK)) {
        profile_path(path, sizeof path, ".peak", 0);
        dump_to(path, PEAK);
    }
    if (ma_option(MA_OPT_LEAKS))
        report_leaks(ma_report_fd);
}

__attribute__((constructor)) static void prof_constructor(void)
{
    copy_env(prof_file, sizeof prof_file, "MAPALLOC_PROF_FILE");
    copy_env(live_file, sizeof live_file, "MAPALLOC_PROF_LIVE");
    /* mapalloc-run names the process whose profile is the file (the one it
     * execs): the others that inherit the environment write their own. */
    const char *pid = getenv("MAPALLOC_PROF_PID");
    start_pid = pid ? atoi(pid) : (int)getpid();
    atexit(prof_at_exit);
}
