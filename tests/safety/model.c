/* See model.h. The model's own bookkeeping uses libc's allocator (these
 * programs link libmapalloc, which does not replace malloc). */
#include "model.h"
#include "rng.h"
#include "../check.h"

#include <errno.h>
#include <pthread.h>
#include <search.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char model_context[192];
static int trace; /* MODEL_TRACE=1 in the environment: every operation on stderr */

/* ---- operations and their weights (out of 256) ---- */

enum op {
    OP_MALLOC, OP_CALLOC, OP_REALLOC, OP_REALLOCARRAY, OP_ALIGNED_ALLOC, OP_POSIX_MEMALIGN,
    OP_MEMALIGN, OP_VALLOC, OP_PVALLOC, OP_FREE, OP_FREE_SIZED, OP_FREE_ALIGNED_SIZED,
    OP_USABLE, OP_TRIM, OP_ARENA_CREATE, OP_ARENA_MALLOC, OP_ARENA_CALLOC, OP_ARENA_REALLOC,
    OP_ARENA_ALIGNED, OP_ARENA_FREE, OP_ARENA_RESET, OP_ARENA_DESTROY, OP_HANDOFF, OP_TAKE,
    OP_ERRORS, OP_STATS, OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
    "malloc", "calloc", "realloc", "reallocarray", "aligned_alloc", "posix_memalign",
    "memalign", "valloc", "pvalloc", "free", "free_sized", "free_aligned_sized",
    "usable_size", "trim", "arena_create", "arena_malloc", "arena_calloc", "arena_realloc",
    "arena_aligned_alloc", "arena_free", "arena_reset", "arena_destroy", "handoff", "take",
    "errors", "stats",
};

static const uint8_t op_weight[OP_COUNT] = {
    38, 14, 24, 6, 10, 6, 5, 3, 2, 40, 16, 8, 10, 1, 3, 20, 6, 8, 6, 12, 2, 1, 6, 6, 2, 1,
};

static uint8_t op_table[256];
static pthread_once_t model_once = PTHREAD_ONCE_INIT;

/* Once per process: the trace switch and the table of operations by weight. */
static void model_setup(void)
{
    trace = getenv("MODEL_TRACE") != NULL;
    unsigned n = 0;
    for (unsigned op = 0; op < OP_COUNT; op++)
        for (unsigned k = 0; k < op_weight[op]; k++)
            if (n < 256)
                op_table[n++] = (uint8_t)op;
    if (n != 256) {
        fprintf(stderr, "model: operation weights add up to %u, not 256\n", n);
        abort();
    }
}

/* ---- the model of one block ---- */

enum kind {
    K_PLAIN,   /* malloc, calloc, realloc: free_sized applies */
    K_ALIGNED, /* aligned_alloc and friends: free_aligned_sized applies */
    K_ARENA,   /* in m->arena[arena] */
};

struct mblock {
    uintptr_t lo, hi;  /* the usable bytes (at least one), for the interval set */
    void *p;
    size_t size;       /* requested */
    size_t usable;     /* mapalloc_usable_size when it was made */
    size_t align;      /* requested alignment (16 for the plain kinds) */
    uint64_t id;       /* the contents are pattern(id) */
    uint8_t kind, arena;
};

void model_failed(const struct model *m, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "model: FAILED: %s [thread %d, operation %llu; %s]\n", msg, m ? m->thread : -1,
            m ? (unsigned long long)m->ops : 0ull, model_context);
    fflush(stderr);
    abort();
}

/* ---- contents: byte i of block id is byte (i % 8) of key(id), xor i / 8 ---- */

static uint64_t pattern_key(uint64_t id)
{
    return wl_mix(id * WL_WEYL + 0x632be59bd9b4e019ull);
}

static uint8_t pattern_byte(uint64_t key, size_t i)
{
    return (uint8_t)(key >> (8 * (i & 7))) ^ (uint8_t)(i >> 3);
}

static uint64_t pattern_word(uint64_t key, size_t i) /* i % 8 == 0 */
{
    return key ^ (0x0101010101010101ull * (uint8_t)(i >> 3));
}

static void fill(uint8_t *p, size_t from, size_t to, uint64_t id)
{
    uint64_t key = pattern_key(id);
    size_t i = from;
    for (; i < to && (i & 7) != 0; i++)
        p[i] = pattern_byte(key, i);
    for (; i + 8 <= to; i += 8) {
        uint64_t w = pattern_word(key, i);
        memcpy(p + i, &w, 8);
    }
    for (; i < to; i++)
        p[i] = pattern_byte(key, i);
}

/* The first offset in [from, to) that does not hold the pattern, or to. */
static size_t first_wrong(const uint8_t *p, size_t from, size_t to, uint64_t id)
{
    uint64_t key = pattern_key(id);
    size_t i = from;
    for (; i < to && (i & 7) != 0; i++)
        if (p[i] != pattern_byte(key, i))
            return i;
    for (; i + 8 <= to; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w != pattern_word(key, i))
            break;
    }
    for (; i < to; i++)
        if (p[i] != pattern_byte(key, i))
            return i;
    return to;
}

static void verify_range(const struct model *m, const struct mblock *b, const void *p,
                         size_t to, const char *when)
{
    size_t bad = first_wrong(p, 0, to, b->id);
    if (bad != to)
        model_failed(m, "%s: block %p (id %llx, size %zu, usable %zu) lost its contents at offset "
                     "%zu: 0x%02x, expected 0x%02x", when, p, (unsigned long long)b->id, b->size,
                     b->usable, bad, ((const uint8_t *)p)[bad],
                     pattern_byte(pattern_key(b->id), bad));
}

static void verify(const struct model *m, const struct mblock *b, const char *when)
{
    verify_range(m, b, b->p, b->usable, when);
}

/* ---- the interval set of live blocks, shared by all threads ---- */

static pthread_mutex_t track_lock = PTHREAD_MUTEX_INITIALIZER;
static void *track_root;
static size_t track_count;

/* Overlapping intervals compare equal: among disjoint intervals this is a
 * total order, and a search for a new interval meets any one it overlaps. */
static int interval_cmp(const void *a, const void *b)
{
    const struct mblock *x = a, *y = b;
    if (x->hi <= y->lo)
        return -1;
    if (y->hi <= x->lo)
        return 1;
    return 0;
}

static void set_interval(struct mblock *b)
{
    b->lo = (uintptr_t)b->p;
    b->hi = b->lo + (b->usable ? b->usable : 1);
}

static void track(const struct model *m, struct mblock *b)
{
    set_interval(b);
    pthread_mutex_lock(&track_lock);
    struct mblock **r = tsearch(b, &track_root, interval_cmp);
    if (r == NULL) {
        pthread_mutex_unlock(&track_lock);
        model_failed(m, "tsearch: out of memory");
    }
    if (*r != b) {
        struct mblock *o = *r;
        pthread_mutex_unlock(&track_lock);
        model_failed(m, "new block [%p, +%zu) (size %zu) overlaps the live block [%p, +%zu) "
                     "(size %zu, id %llx)", b->p, b->usable, b->size, o->p, o->usable, o->size,
                     (unsigned long long)o->id);
    }
    track_count++;
    pthread_mutex_unlock(&track_lock);
}

/* Before the block goes back: once freed, its address may be handed to
 * another thread at once. */
static void untrack(const struct model *m, struct mblock *b)
{
    pthread_mutex_lock(&track_lock);
    struct mblock **r = tfind(b, &track_root, interval_cmp);
    bool ok = r != NULL && *r == b && tdelete(b, &track_root, interval_cmp) != NULL;
    if (ok)
        track_count--;
    pthread_mutex_unlock(&track_lock);
    if (!ok)
        model_failed(m, "block %p is not in the interval set", b->p);
}

size_t model_tracked(void)
{
    pthread_mutex_lock(&track_lock);
    size_t n = track_count;
    pthread_mutex_unlock(&track_lock);
    return n;
}

/* ---- blocks handed to other threads ---- */

#define MAILBOX 512
static pthread_mutex_t mail_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mblock *mailbox[MAILBOX];
static unsigned mail_count;

static bool mail_put(struct mblock *b)
{
    pthread_mutex_lock(&mail_lock);
    bool ok = mail_count < MAILBOX;
    if (ok)
        mailbox[mail_count++] = b;
    pthread_mutex_unlock(&mail_lock);
    return ok;
}

static struct mblock *mail_take(unsigned pick)
{
    struct mblock *b = NULL;
    pthread_mutex_lock(&mail_lock);
    if (mail_count > 0) {
        unsigned i = pick % mail_count;
        b = mailbox[i];
        mailbox[i] = mailbox[--mail_count];
    }
    pthread_mutex_unlock(&mail_lock);
    return b;
}

/* ---- decoding a record ---- */

/* Sizes: 9/16 small, 4/16 up to a page, 2/16 medium, 3/64 up to and
 * across the large threshold, 1/64 large. */
static size_t rec_size(const struct model *m, const uint8_t *rec)
{
    uint32_t v = (uint32_t)rec[2] | (uint32_t)rec[3] << 8 | (uint32_t)rec[4] << 16;
    unsigned sel = rec[4] >> 4;
    if (sel < 9)
        return v % 129;
    if (sel < 13)
        return v % 4097;
    if (sel < 15)
        return v % 65537;
    if ((rec[6] & 3) != 0)
        return v % (512 * 1024 + 64);
    return 500 * 1024 + (size_t)v * 7 % m->max_large;
}

/* Alignments 16 to 64 KiB, 8, 1 MiB, 2 MiB. */
static size_t rec_align(const uint8_t *rec)
{
    unsigned e = rec[5] & 15;
    if (e < 13)
        return (size_t)16 << e;
    if (e == 13)
        return 8;
    return (size_t)1 << (e == 14 ? 20 : 21);
}

static size_t pow2_at_least(size_t a)
{
    size_t r = 16;
    while (r < a)
        r <<= 1;
    return r;
}

/* ---- making and releasing blocks ---- */

#define SENTINEL 4242 /* errno before a call that should not set it */

static void free_slot(struct model *m, unsigned i, unsigned variant);

/* p was returned for (size, align); on NULL, may_fail says whether ENOMEM
 * is an acceptable answer. */
static void adopt(struct model *m, unsigned slot, void *p, size_t size, size_t align,
                  enum kind kind, unsigned arena, bool may_fail, bool zeroed, const char *call)
{
    if (p == NULL) {
        if (may_fail && errno == ENOMEM)
            return;
        model_failed(m, "%s(%zu, align %zu) returned NULL, errno %d", call, size, align, errno);
    }
    if (errno != SENTINEL)
        model_failed(m, "%s(%zu) succeeded but changed errno to %d", call, size, errno);
    size_t need = align < 16 ? 16 : align;
    if ((uintptr_t)p % need != 0)
        model_failed(m, "%s(%zu, align %zu) returned %p, not aligned to %zu", call, size, align, p,
                     need);
    size_t usable = mapalloc_usable_size(p);
    if (usable < size)
        model_failed(m, "%s(%zu) returned %p with usable size %zu", call, size, p, usable);
    if (zeroed)
        for (size_t i = 0; i < size; i++)
            if (((uint8_t *)p)[i] != 0)
                model_failed(m, "%s(%zu) returned %p with byte %zu not zero", call, size, p, i);
    struct mblock *b = malloc(sizeof *b);
    if (b == NULL)
        model_failed(m, "out of libc memory");
    if (trace)
        fprintf(stderr, "  -> %p usable %zu\n", p, usable);
    *b = (struct mblock){.p = p, .size = size, .usable = usable, .align = align,
                         .id = m->next_id++, .kind = (uint8_t)kind, .arena = (uint8_t)arena};
    track(m, b);
    fill(p, 0, usable, b->id);
    if (m->slot[slot] != NULL)
        free_slot(m, slot, 0);
    m->slot[slot] = b;
}

/* Checks b, takes it out of the model and frees it by one of the calls that
 * fit its kind. */
static void release(struct model *m, struct mblock *b, unsigned variant)
{
    verify(m, b, "before free");
    untrack(m, b);
    void *p = b->p;
    errno = SENTINEL;
    switch (b->kind) {
    case K_PLAIN:
        switch (variant % 4) {
        case 0: mapalloc_free(p); break;
        case 1: mapalloc_free_sized(p, b->size); break;
        case 2: mapalloc_free_sized(p, b->usable); break; /* any size up to the usable one */
        default:
            if (mapalloc_realloc(p, 0) != NULL)
                model_failed(m, "realloc(%p, 0) did not return NULL", p);
            errno = SENTINEL; /* realloc may set errno; free must not */
        }
        break;
    case K_ALIGNED:
        if (variant & 1)
            mapalloc_free_aligned_sized(p, b->align, b->size);
        else
            mapalloc_free(p);
        break;
    default:
        if (m->arena[b->arena] == NULL)
            model_failed(m, "arena block %p outlived its arena", p);
        if (variant & 1)
            mapalloc_arena_free(m->arena[b->arena], p);
        else
            mapalloc_free(p);
    }
    if (errno != SENTINEL)
        model_failed(m, "free of %p changed errno to %d", p, errno);
    free(b);
}

static void free_slot(struct model *m, unsigned i, unsigned variant)
{
    struct mblock *b = m->slot[i];
    m->slot[i] = NULL;
    release(m, b, variant);
}

/* The slot at or after i that holds a block, or -1. */
static int find_used(const struct model *m, unsigned i)
{
    for (unsigned k = 0; k < MODEL_SLOTS; k++) {
        unsigned s = (i + k) % MODEL_SLOTS;
        if (m->slot[s])
            return (int)s;
    }
    return -1;
}

/* realloc of the block in slot (or of NULL) to size, through
 * mapalloc_realloc, mapalloc_reallocarray (count elements) or the realloc of
 * arena use_arena (>= 0); checked. */
static void do_realloc(struct model *m, unsigned slot, size_t size, int use_arena, bool is_array,
                       size_t count)
{
    struct mblock *b = m->slot[slot];
    mapalloc_arena *arena = use_arena >= 0 ? m->arena[use_arena] : NULL;
    /* mapalloc_realloc keeps an arena block in its arena, limit and all. */
    bool may_fail = (use_arena >= 0 && m->arena_limited[use_arena]) ||
                    (b && b->kind == K_ARENA && m->arena_limited[b->arena]);
    if (b == NULL) {
        errno = SENTINEL;
        void *p = arena ? mapalloc_arena_realloc(arena, NULL, size)
                  : is_array ? mapalloc_reallocarray(NULL, count, size / count)
                             : mapalloc_realloc(NULL, size);
        if (is_array)
            size = size / count * count;
        adopt(m, slot, p, size, 16, arena ? K_ARENA : K_PLAIN, arena ? (unsigned)use_arena : 0,
              may_fail, false, "realloc(NULL)");
        return;
    }
    if (is_array)
        size = size / count * count;
    verify(m, b, "before realloc");
    untrack(m, b);
    errno = SENTINEL;
    void *q = arena ? mapalloc_arena_realloc(arena, b->p, size)
              : is_array ? mapalloc_reallocarray(b->p, count, size / count)
                         : mapalloc_realloc(b->p, size);
    if (size == 0) { /* glibc: freed, NULL */
        if (q != NULL)
            model_failed(m, "realloc(%p, 0) returned %p", b->p, q);
        m->slot[slot] = NULL;
        free(b);
        return;
    }
    if (q == NULL) {
        if (!(may_fail && errno == ENOMEM))
            model_failed(m, "realloc(%p, %zu) returned NULL, errno %d", b->p, size, errno);
        track(m, b);
        verify(m, b, "after a failed realloc");
        return;
    }
    if (errno != SENTINEL)
        model_failed(m, "realloc(%p, %zu) succeeded but changed errno to %d", b->p, size, errno);
    if ((uintptr_t)q % 16 != 0)
        model_failed(m, "realloc returned %p, not aligned to 16", q);
    size_t usable = mapalloc_usable_size(q);
    if (usable < size)
        model_failed(m, "realloc(%zu) returned %p with usable size %zu", size, q, usable);
    size_t kept = b->usable < size ? b->usable : size;
    if (trace)
        fprintf(stderr, "  %p -> %p usable %zu\n", b->p, q, usable);
    verify_range(m, b, q, kept, "after realloc");
    fill(q, kept, usable, b->id);
    b->p = q;
    b->size = size;
    b->usable = usable;
    b->align = 16;
    if (b->kind == K_ALIGNED)
        b->kind = K_PLAIN;
    track(m, b);
}

/* Drops every block of arena a from the model (reset and destroy). */
static void forget_arena_blocks(struct model *m, unsigned a)
{
    for (unsigned i = 0; i < MODEL_SLOTS; i++) {
        struct mblock *b = m->slot[i];
        if (b && b->kind == K_ARENA && b->arena == a) {
            verify(m, b, "before arena reset");
            untrack(m, b);
            free(b);
            m->slot[i] = NULL;
        }
    }
}

/* Under ThreadSanitizer no arena maps /dev/zero. A race report names the
 * mapping that holds the address as its module, and llvm-symbolizer, asked
 * to read /dev/zero as an object file, never answers: the report's frames
 * are then left unnamed and tests/tsan.supp cannot match them. */
#define MODEL_DEVZERO (TEST_TSAN ? 0 : MAPALLOC_ARENA_DEVZERO)

static void arena_create(struct model *m, unsigned a, const uint8_t *rec)
{
    struct mapalloc_arena_options opt = {0};
    opt.flags = rec[6] & (MAPALLOC_ARENA_HUGE | MAPALLOC_ARENA_NORESERVE | MODEL_DEVZERO |
                          MAPALLOC_ARENA_RESET_RETURNS);
    opt.limit = (rec[7] & 3) == 0 ? (size_t)8 << 20 : 0;
    opt.reserve = (rec[7] & 4) ? (size_t)1 << 20 : 0;
    errno = SENTINEL;
    m->arena[a] = mapalloc_arena_create(&opt);
    if (m->arena[a] == NULL)
        model_failed(m, "arena_create(flags %u, limit %zu, reserve %zu) failed, errno %d",
                     opt.flags, opt.limit, opt.reserve, errno);
    m->arena_limited[a] = opt.limit != 0;
}

static void arena_drop(struct model *m, unsigned a)
{
    forget_arena_blocks(m, a);
    mapalloc_arena_destroy(m->arena[a]);
    m->arena[a] = NULL;
}

static mapalloc_arena *arena_get(struct model *m, unsigned a)
{
    if (m->arena[a] == NULL) {
        errno = SENTINEL;
        m->arena[a] = mapalloc_arena_create(NULL);
        if (m->arena[a] == NULL)
            model_failed(m, "arena_create(NULL) failed, errno %d", errno);
        m->arena_limited[a] = false;
    }
    return m->arena[a];
}

/* Calls that must fail, and how. */
static void check_errors(struct model *m, unsigned slot)
{
    void *q = NULL;
    errno = 0;
    if (mapalloc_aligned_alloc(24, 10) != NULL || errno != EINVAL)
        model_failed(m, "aligned_alloc(24, 10): not NULL with EINVAL");
    if (mapalloc_posix_memalign(&q, 4, 8) != EINVAL || mapalloc_posix_memalign(&q, 24, 8) != EINVAL)
        model_failed(m, "posix_memalign with a bad alignment did not return EINVAL");
    errno = 0;
    if (mapalloc_malloc((size_t)PTRDIFF_MAX + 1) != NULL || errno != ENOMEM)
        model_failed(m, "malloc(PTRDIFF_MAX + 1): not NULL with ENOMEM");
    errno = 0;
    if (mapalloc_calloc(SIZE_MAX / 2 + 2, 2) != NULL || errno != ENOMEM)
        model_failed(m, "calloc overflow: not NULL with ENOMEM");
    errno = 0;
    if (mapalloc_arena_create(&(struct mapalloc_arena_options){.flags = 1u << 20}) != NULL ||
        errno != EINVAL)
        model_failed(m, "arena_create with an unknown flag: not NULL with EINVAL");
    errno = 0;
    if (mapalloc_arena_create(&(struct mapalloc_arena_options){.limit = 1 << 20,
                                                                .reserve = 4 << 20}) != NULL ||
        errno != EINVAL)
        model_failed(m, "arena_create with reserve > limit: not NULL with EINVAL");
    if (mapalloc_usable_size(NULL) != 0)
        model_failed(m, "usable_size(NULL) != 0");
    errno = SENTINEL;
    mapalloc_free(NULL);
    mapalloc_free_sized(NULL, 10);
    mapalloc_free_aligned_sized(NULL, 64, 10);
    if (errno != SENTINEL)
        model_failed(m, "free(NULL) changed errno");
    struct mblock *b = m->slot[slot];
    if (b == NULL)
        return;
    /* A failed realloc leaves the block as it was. */
    errno = 0;
    void *r = b->kind == K_ARENA ? mapalloc_arena_realloc(m->arena[b->arena], b->p,
                                                          (size_t)PTRDIFF_MAX + 1)
                                 : mapalloc_realloc(b->p, (size_t)PTRDIFF_MAX + 1);
    if (r != NULL || errno != ENOMEM)
        model_failed(m, "realloc(p, PTRDIFF_MAX + 1): not NULL with ENOMEM");
    if (b->kind != K_ARENA) {
        errno = 0;
        if (mapalloc_reallocarray(b->p, SIZE_MAX / 2 + 2, 2) != NULL || errno != ENOMEM)
            model_failed(m, "reallocarray overflow: not NULL with ENOMEM");
    } else if (m->arena_limited[b->arena]) {
        errno = 0;
        if (mapalloc_arena_malloc(m->arena[b->arena], (size_t)9 << 20) != NULL || errno != ENOMEM)
            model_failed(m, "arena_malloc past the limit: not NULL with ENOMEM");
    }
    verify(m, b, "after failed calls");
    if (mapalloc_usable_size(b->p) != b->usable)
        model_failed(m, "usable size of %p changed", b->p);
}

static void check_stats(struct model *m, unsigned a)
{
    struct mapalloc_stats st;
    mapalloc_stats_get(&st);
    if (st.mapped < st.small_mapped || st.mapped < st.large_mapped || st.peak_mapped < st.mapped)
        model_failed(m, "statistics: mapped %zu, small %zu, large %zu, peak %zu", st.mapped,
                     st.small_mapped, st.large_mapped, st.peak_mapped);
    if (m->arena[a] == NULL)
        return;
    size_t blocks = 0;
    for (unsigned i = 0; i < MODEL_SLOTS; i++)
        if (m->slot[i] && m->slot[i]->kind == K_ARENA && m->slot[i]->arena == a)
            blocks++;
    struct mapalloc_arena_stats as;
    mapalloc_arena_stats(m->arena[a], &as);
    /* The arena is this thread's alone: the figure is exact. */
    if (as.blocks != blocks)
        model_failed(m, "arena_stats: %zu blocks, the model holds %zu", as.blocks, blocks);
}

void model_init(struct model *m, int thread, bool handoff)
{
    pthread_once(&model_once, model_setup);
    memset(m, 0, sizeof *m);
    m->thread = thread;
    m->handoff = handoff;
    m->next_id = (uint64_t)(unsigned)thread << 40;
    m->max_large = (size_t)4 << 20;
}

void model_step(struct model *m, const uint8_t rec[8])
{
    enum op op = (enum op)op_table[rec[0]];
    unsigned slot = rec[1];
    size_t size = rec_size(m, rec);
    size_t align = rec_align(rec);
    unsigned a = rec[5] % MODEL_ARENAS;
    unsigned variant = rec[7];
    size_t count = 1 + (rec[6] & 7);
    void *p = NULL;
    int used;
    m->ops++;
    if (trace)
        fprintf(stderr, "[t%d #%llu] %s slot %u size %zu align %zu arena %u v %u/%u\n", m->thread,
                (unsigned long long)m->ops, op_names[op], slot, size, align, a, rec[6], variant);

    errno = SENTINEL;
    switch (op) {
    case OP_MALLOC:
        adopt(m, slot, mapalloc_malloc(size), size, 16, K_PLAIN, 0, false, false, op_names[op]);
        break;
    case OP_CALLOC:
        adopt(m, slot, mapalloc_calloc(count, size / count), size / count * count, 16, K_PLAIN, 0,
              false, true, op_names[op]);
        break;
    case OP_REALLOC:
        do_realloc(m, slot, size, -1, false, 1);
        break;
    case OP_REALLOCARRAY:
        do_realloc(m, slot, size, -1, true, count);
        break;
    case OP_ALIGNED_ALLOC:
        if (align < 16)
            align = 16;
        adopt(m, slot, mapalloc_aligned_alloc(align, size), size, align, K_ALIGNED, 0, false,
              false, op_names[op]);
        break;
    case OP_POSIX_MEMALIGN: {
        int r = mapalloc_posix_memalign(&p, align, size);
        if (r != 0)
            model_failed(m, "posix_memalign(%zu, %zu) returned %d", align, size, r);
        adopt(m, slot, p, size, align, K_ALIGNED, 0, false, false, op_names[op]);
        break;
    }
    case OP_MEMALIGN: {
        /* Not a power of two sometimes: rounded up, as glibc. */
        size_t asked = (rec[6] & 8) ? align - align / 4 : (rec[6] & 16) ? 0 : align;
        size_t got = pow2_at_least(asked);
        adopt(m, slot, mapalloc_memalign(asked, size), size, got, K_ALIGNED, 0, false, false,
              op_names[op]);
        break;
    }
    case OP_VALLOC:
        adopt(m, slot, mapalloc_valloc(size), size, 4096, K_ALIGNED, 0, false, false,
              op_names[op]);
        break;
    case OP_PVALLOC: {
        size_t rounded = size == 0 ? 4096 : (size + 4095) & ~(size_t)4095;
        adopt(m, slot, mapalloc_pvalloc(size), rounded, 4096, K_ALIGNED, 0, false, false,
              op_names[op]);
        break;
    }
    case OP_FREE:
    case OP_FREE_SIZED:
    case OP_FREE_ALIGNED_SIZED:
        if ((used = find_used(m, slot)) >= 0)
            free_slot(m, (unsigned)used, op == OP_FREE ? 0 : op == OP_FREE_SIZED ? 1 + variant % 2
                                                                                  : 1);
        break;
    case OP_USABLE:
        if ((used = find_used(m, slot)) >= 0) {
            struct mblock *b = m->slot[used];
            if (mapalloc_usable_size(b->p) != b->usable)
                model_failed(m, "usable size of %p is %zu, was %zu", b->p,
                             mapalloc_usable_size(b->p), b->usable);
            verify(m, b, "usable_size");
        }
        break;
    case OP_TRIM:
        mapalloc_trim(variant);
        if ((used = find_used(m, slot)) >= 0)
            verify(m, m->slot[used], "after trim");
        break;
    case OP_ARENA_CREATE:
        if (m->arena[a])
            arena_drop(m, a);
        arena_create(m, a, rec);
        break;
    case OP_ARENA_MALLOC:
        adopt(m, slot, mapalloc_arena_malloc(arena_get(m, a), size), size, 16, K_ARENA, a,
              m->arena_limited[a], false, op_names[op]);
        break;
    case OP_ARENA_CALLOC:
        adopt(m, slot, mapalloc_arena_calloc(arena_get(m, a), count, size / count),
              size / count * count, 16, K_ARENA, a, m->arena_limited[a], true, op_names[op]);
        break;
    case OP_ARENA_ALIGNED:
        if (align < 16)
            align = 16;
        adopt(m, slot, mapalloc_arena_aligned_alloc(arena_get(m, a), align, size), size, align,
              K_ARENA, a, m->arena_limited[a], false, op_names[op]);
        break;
    case OP_ARENA_REALLOC: {
        struct mblock *b = m->slot[slot];
        if (b == NULL)
            do_realloc(m, slot, size, (int)a, false, 1);
        else if (b->kind == K_ARENA)
            do_realloc(m, slot, size, (variant & 1) ? -1 : (int)b->arena, false, 1);
        else
            do_realloc(m, slot, size, -1, false, 1);
        /* mapalloc_realloc keeps an arena block in its arena: the model's
         * record keeps its kind and arena through do_realloc. */
        break;
    }
    case OP_ARENA_FREE:
        if ((used = find_used(m, slot)) >= 0)
            free_slot(m, (unsigned)used, m->slot[used]->kind == K_ARENA ? 1 : variant);
        break;
    case OP_ARENA_RESET:
        if (m->arena[a]) {
            forget_arena_blocks(m, a);
            mapalloc_arena_reset(m->arena[a]);
        }
        break;
    case OP_ARENA_DESTROY:
        if (m->arena[a])
            arena_drop(m, a);
        break;
    case OP_HANDOFF: {
        struct mblock *b = m->slot[slot];
        if (m->handoff && b && b->kind != K_ARENA) {
            verify(m, b, "before handoff");
            if (mail_put(b))
                m->slot[slot] = NULL;
        }
        break;
    }
    case OP_TAKE: {
        struct mblock *b = m->handoff ? mail_take(variant) : NULL;
        if (b)
            release(m, b, rec[6]);
        break;
    }
    case OP_ERRORS:
        check_errors(m, slot);
        break;
    case OP_STATS:
        check_stats(m, a);
        break;
    case OP_COUNT:
        break;
    }
}

void model_finish(struct model *m)
{
    for (unsigned i = 0; i < MODEL_SLOTS; i++)
        if (m->slot[i])
            free_slot(m, i, i);
    for (unsigned a = 0; a < MODEL_ARENAS; a++)
        if (m->arena[a])
            arena_drop(m, a);
}

void model_leave(struct model *m)
{
    for (unsigned i = 0; i < MODEL_SLOTS; i++) {
        struct mblock *b = m->slot[i];
        if (b && m->handoff && b->kind != K_ARENA && (i & 1) && mail_put(b))
            m->slot[i] = NULL;
    }
    model_finish(m);
}

void model_drain_handoffs(struct model *m)
{
    for (struct mblock *b; (b = mail_take(0)) != NULL;)
        release(m, b, (unsigned)b->id);
}
