/* The request-scoped pattern with an explicit arena: one arena, and for each
 * "request" many blocks of mixed sizes that all die together.
 *
 * Per request: generate an arithmetic expression as text, parse it into a
 * tree whose nodes live in the arena, evaluate it; fill a chained hash map
 * (keys copied into the arena, the bucket array grown with realloc) and look
 * every key up again; take a scratch buffer, sometimes a large one. Each
 * result is checked against a value computed without the arena, then the
 * arena is reset for the next request. Prints a checksum over all requests;
 * exits 1 on a mismatch.
 *
 *   request_scoped [requests [keys-per-request]]      (defaults: 2000 500) */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mapalloc.h"
#include "rng.h"

static void *must(void *p)
{
    if (p == NULL) {
        perror("request_scoped: arena allocation");
        exit(2);
    }
    return p;
}

/* ---- an expression: text, parse tree, value ---- */

struct text {
    char *s;
    size_t len, cap;
    mapalloc_arena *arena;
};

static void put(struct text *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->s = must(mapalloc_arena_realloc(t->arena, t->s, t->cap));
    }
    memcpy(t->s + t->len, s, n);
    t->len += n;
    t->s[t->len] = 0;
}

/* Writes a random expression of the given depth and returns its value
 * (arithmetic mod 2^64), computed as it is written. */
static uint64_t gen(struct text *t, wl_rng *rs, int depth)
{
    uint64_t r = wl_next(rs);
    if (depth == 0 || r % 4 == 0) {
        char num[24];
        uint64_t v = (r >> 8) % 1000;
        int n = snprintf(num, sizeof num, "%" PRIu64, v);
        put(t, num, (size_t)n);
        return v;
    }
    static const char ops[] = "+-*";
    char op = ops[(r >> 4) % 3];
    put(t, "(", 1);
    uint64_t a = gen(t, rs, depth - 1);
    put(t, &op, 1);
    uint64_t b = gen(t, rs, depth - 1);
    put(t, ")", 1);
    return op == '+' ? a + b : op == '-' ? a - b : a * b;
}

struct node {
    char op; /* 0 for a number */
    uint64_t value;
    struct node *left, *right;
};

static struct node *parse(mapalloc_arena *arena, const char **p)
{
    struct node *n = must(mapalloc_arena_malloc(arena, sizeof *n));
    if (**p == '(') {
        (*p)++;
        n->left = parse(arena, p);
        n->op = *(*p)++;
        n->right = parse(arena, p);
        (*p)++; /* ')' */
    } else {
        n->op = 0;
        n->value = 0;
        while (**p >= '0' && **p <= '9')
            n->value = n->value * 10 + (uint64_t)(*(*p)++ - '0');
    }
    return n;
}

static uint64_t eval(const struct node *n)
{
    if (n->op == 0)
        return n->value;
    uint64_t a = eval(n->left), b = eval(n->right);
    return n->op == '+' ? a + b : n->op == '-' ? a - b : a * b;
}

/* ---- a hash map with keys in the arena ---- */

struct entry {
    struct entry *next;
    uint64_t hash, value;
    size_t len;
    char key[]; /* the key's bytes follow */
};

struct map {
    struct entry **buckets;
    size_t nbuckets, count;
    mapalloc_arena *arena;
};

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static void map_grow(struct map *m)
{
    size_t old = m->nbuckets, n = old ? old * 2 : 16;
    /* realloc keeps the old chains; they are split by the new bit. */
    m->buckets = must(mapalloc_arena_realloc(m->arena, m->buckets, n * sizeof *m->buckets));
    memset(m->buckets + old, 0, (n - old) * sizeof *m->buckets);
    for (size_t i = 0; i < old; i++) {
        struct entry **keep = &m->buckets[i], *e = *keep;
        struct entry **move = &m->buckets[i + old];
        *keep = NULL;
        while (e) {
            struct entry *nx = e->next;
            struct entry ***to = (e->hash & old) ? &move : &keep;
            **to = e;
            *to = &e->next;
            e->next = NULL;
            e = nx;
        }
    }
    m->nbuckets = n;
}

/* Adds value to the key's entry (creating it). */
static void map_add(struct map *m, const char *key, size_t len, uint64_t value)
{
    uint64_t h = hash_bytes(key, len);
    if (m->count + 1 > m->nbuckets)
        map_grow(m);
    for (struct entry *e = m->buckets[h & (m->nbuckets - 1)]; e; e = e->next)
        if (e->hash == h && e->len == len && memcmp(e->key, key, len) == 0) {
            e->value += value;
            return;
        }
    struct entry *e = must(mapalloc_arena_malloc(m->arena, sizeof *e + len));
    e->hash = h;
    e->len = len;
    e->value = value;
    memcpy(e->key, key, len);
    e->next = m->buckets[h & (m->nbuckets - 1)];
    m->buckets[h & (m->nbuckets - 1)] = e;
    m->count++;
}

static uint64_t map_get(const struct map *m, const char *key, size_t len)
{
    uint64_t h = hash_bytes(key, len);
    for (struct entry *e = m->buckets[h & (m->nbuckets - 1)]; e; e = e->next)
        if (e->hash == h && e->len == len && memcmp(e->key, key, len) == 0)
            return e->value;
    return UINT64_MAX;
}

/* A key of 4..300 bytes from a number: the same number, the same key. */
static size_t make_key(char *buf, uint64_t k)
{
    wl_rng s;
    wl_rng_init(&s, k, 0);
    size_t len = 4 + wl_next(&s) % 297;
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)('a' + wl_next(&s) % 26);
    return len;
}

/* ---- one request ---- */

/* Returns the request's result, or sets *bad. */
static uint64_t request(mapalloc_arena *arena, uint64_t seed, size_t keys, int *bad)
{
    wl_rng rs;
    wl_rng_init(&rs, seed, 17);

    /* An expression of a few hundred nodes. */
    struct text t = {NULL, 0, 0, arena};
    uint64_t expect = gen(&t, &rs, 9);
    const char *p = t.s;
    struct node *tree = parse(arena, &p);
    uint64_t value = eval(tree);
    if (value != expect || *p != 0) {
        fprintf(stderr, "request %" PRIu64 ": expression %" PRIu64 " != %" PRIu64 "\n", seed, value, expect);
        *bad = 1;
    }

    /* A map of keys drawn with repeats from 0..keys/2, each add counted. */
    struct map m = {NULL, 0, 0, arena};
    char key[512];
    uint64_t *adds = must(mapalloc_arena_calloc(arena, keys / 2 + 1, sizeof *adds));
    for (size_t i = 0; i < keys; i++) {
        uint64_t k = wl_next(&rs) % (keys / 2 + 1);
        size_t len = make_key(key, k + seed * 1000003u);
        map_add(&m, key, len, k + 1);
        adds[k] += k + 1;
    }
    uint64_t sum = 0;
    for (size_t k = 0; k <= keys / 2; k++) {
        size_t len = make_key(key, k + seed * 1000003u);
        uint64_t got = map_get(&m, key, len);
        if ((adds[k] == 0 && got != UINT64_MAX) || (adds[k] != 0 && got != adds[k])) {
            fprintf(stderr, "request %" PRIu64 ": key %zu holds %" PRIu64 ", expected %" PRIu64 "\n", seed,
                    k, got, adds[k]);
            *bad = 1;
        }
        if (adds[k])
            sum += got * (k + 1);
    }

    /* Scratch buffers: a few KiB each time, a large one now and then. */
    size_t scratch = 2048 + wl_next(&rs) % 6144;
    if (seed % 16 == 0)
        scratch = 768 * 1024;
    unsigned char *buf = must(mapalloc_arena_malloc(arena, scratch));
    for (size_t i = 0; i < scratch; i++)
        buf[i] = (unsigned char)(i ^ seed);
    uint64_t bsum = 0;
    for (size_t i = 0; i < scratch; i += 61)
        bsum += buf[i];

    return value ^ (sum * 31) ^ (bsum << 17) ^ m.count;
}

int main(int argc, char **argv)
{
    size_t requests = argc > 1 ? strtoul(argv[1], NULL, 10) : 2000;
    size_t keys = argc > 2 ? strtoul(argv[2], NULL, 10) : 500;
    if (keys < 2)
        keys = 2;
    mapalloc_arena *arena = mapalloc_arena_create(NULL);
    if (arena == NULL) {
        perror("mapalloc_arena_create");
        return 2;
    }
    uint64_t checksum = 0;
    size_t max_blocks = 0, max_mapped = 0;
    int bad = 0;
    for (size_t r = 0; r < requests; r++) {
        /* The same request twice, the second in the reset arena: the same
         * answer, and a reset leaves nothing behind. */
        uint64_t first = request(arena, r, keys, &bad);
        struct mapalloc_arena_stats s;
        mapalloc_arena_stats(arena, &s);
        if (s.blocks > max_blocks)
            max_blocks = s.blocks;
        if (s.mapped > max_mapped)
            max_mapped = s.mapped;
        mapalloc_arena_reset(arena);
        mapalloc_arena_stats(arena, &s);
        if (s.blocks != 0 || s.live != 0 || s.committed != 0) {
            fprintf(stderr, "request %zu: after reset, %zu blocks, %zu bytes live\n", r, s.blocks, s.live);
            bad = 1;
        }
        if (r % 64 == 0) {
            uint64_t again = request(arena, r, keys, &bad);
            mapalloc_arena_reset(arena);
            if (again != first) {
                fprintf(stderr, "request %zu: %" PRIu64 " then %" PRIu64 "\n", r, first, again);
                bad = 1;
            }
        }
        checksum = (checksum ^ first) * 0x100000001b3ull;
    }
    mapalloc_arena_destroy(arena);
    printf("requests %zu, keys per request %zu, up to %zu blocks and %zu KiB mapped per request\n",
           requests, keys, max_blocks, max_mapped >> 10);
    printf("checksum %016" PRIx64 "\n", checksum);
    if (bad) {
        fprintf(stderr, "request_scoped: MISMATCH\n");
        return 1;
    }
    return 0;
}
