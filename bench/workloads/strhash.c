/* strhash: a string- and hash-table-heavy workload.
 *
 * Modelled on the word-counting and symbol-table phases of compilers and
 * interpreters (the cfrac/espresso/"lean" style workloads of mimalloc-bench,
 * and the STL string/map churn of many server programs): each operation
 * builds a key string in a freshly allocated buffer, looks it up in a
 * chained hash table that doubles its bucket array as it fills, and either
 * frees the temporary (key seen before: its count goes up and its value
 * string is replaced by a new one) or keeps it as the key of a new entry.
 * At the end of each of 4 rounds the table is walked and everything freed.
 *
 * -n: operations per thread per round (keys drawn from n/4 distinct ones,
 * 5..40 characters; values 16..72 bytes).
 *
 * Check: the walk verifies each key string against the key number it
 * encodes and each value's stamp, and sums (key number + 1) * count. The
 * expected sum is a replay of the random key numbers alone, without the
 * table or any allocation.
 */
#include "wl.h"

#include <stdio.h>
#include <stdlib.h>

enum { ROUNDS = 4, MAX_KEY = 14 + 1 + 26 }; /* base-26 digits of 2^64, '_', tail */

struct entry {
    struct entry *next;
    char *key;
    char *value;
    uint64_t k, count;
    uint32_t hash, value_size;
};

struct table {
    struct entry **buckets;
    size_t mask, entries;
};

/* Writes key number k as a string into buf and returns its length: k in
 * base 26 (lowercase letters), '_', then 3..26 letters that follow from k.
 * The part before '_' makes the strings of different k differ. */
static size_t encode(uint64_t k, char *buf)
{
    size_t len = 0;
    uint64_t d = k;
    do {
        buf[len++] = (char)('a' + d % 26);
        d /= 26;
    } while (d);
    buf[len++] = '_';
    size_t tail = 3 + (size_t)(wl_mix(k) % 24);
    uint64_t h = 0;
    for (size_t i = 0; i < tail; i++) {
        if (i % 12 == 0)
            h = wl_mix(k * 64 + i);
        buf[len++] = (char)('a' + h % 26);
        h /= 26;
    }
    buf[len] = 0;
    return len;
}

/* FNV-1a over the string. */
static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static int grow(struct table *t)
{
    size_t nb = (t->mask + 1) * 2;
    struct entry **b = calloc(nb, sizeof *b);
    if (!b)
        return -1;
    for (size_t i = 0; i <= t->mask; i++) {
        struct entry *e = t->buckets[i], *next;
        for (; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->mask = nb - 1;
    return 0;
}

/* A new value string for an entry: its size and stamp follow from the key
 * number and count, so the walk can check it. */
static void set_value(struct entry *e)
{
    size_t sz = 8 + (size_t)(wl_mix(e->k ^ (e->count << 32)) % 65);
    char *v = malloc(sz < WL_STAMP_MIN ? WL_STAMP_MIN : sz);
    if (!v) {
        wl_fail("malloc returned NULL for a value, key", e->k);
        return;
    }
    sz = sz < WL_STAMP_MIN ? WL_STAMP_MIN : sz;
    wl_stamp(v, sz, e->k * 1000003u + e->count);
    free(e->value);
    e->value = v;
    e->value_size = (uint32_t)sz;
}

static void op(struct table *t, uint64_t k)
{
    char buf[MAX_KEY + 1];
    size_t len = encode(k, buf);
    char *key = malloc(len + 1);
    if (!key) {
        wl_fail("malloc returned NULL for a key, key", k);
        return;
    }
    memcpy(key, buf, len + 1);
    uint32_t h = hash_str(key);
    for (struct entry *e = t->buckets[h & t->mask]; e; e = e->next) {
        if (e->hash == h && !strcmp(e->key, key)) {
            free(key);
            e->count++;
            set_value(e);
            return;
        }
    }
    struct entry *e = malloc(sizeof *e);
    if (!e) {
        wl_fail("malloc returned NULL for an entry, key", k);
        free(key);
        return;
    }
    *e = (struct entry){.next = t->buckets[h & t->mask], .key = key, .k = k, .count = 1, .hash = h};
    set_value(e);
    t->buckets[h & t->mask] = e;
    if (++t->entries > t->mask + 1 && grow(t))
        wl_fail("could not grow the table, entries", t->entries);
}

static uint64_t walk_and_free(struct table *t)
{
    uint64_t sum = 0;
    char buf[MAX_KEY + 1];
    for (size_t i = 0; i <= t->mask; i++) {
        struct entry *e = t->buckets[i], *next;
        for (; e; e = next) {
            next = e->next;
            encode(e->k, buf);
            if (strcmp(buf, e->key))
                wl_fail("key string broken, key", e->k);
            if (e->value && wl_check(e->value, e->value_size) != e->k * 1000003u + e->count)
                wl_fail("value does not belong to its entry, key", e->k);
            sum += (e->k + 1) * e->count;
            free(e->key);
            free(e->value);
            free(e);
        }
    }
    free(t->buckets);
    return sum;
}

static void *run(void *arg)
{
    struct wl_worker *w = arg;
    wl_rng rng;
    wl_rng_init(&rng, w->seed, (uint64_t)w->id);
    uint64_t distinct = (uint64_t)w->n / 4 + 1;
    for (int round = 0; round < ROUNDS; round++) {
        struct table t = {calloc(16, sizeof(struct entry *)), 15, 0};
        if (!t.buckets) {
            wl_fail("calloc returned NULL for buckets", 16);
            return NULL;
        }
        for (long i = 0; i < w->n; i++)
            op(&t, wl_below(&rng, distinct));
        w->sum += walk_and_free(&t);
    }
    return NULL;
}

/* The key numbers a thread draws, replayed without a table. */
static uint64_t expected_sum(int thread, long n, uint64_t seed)
{
    uint64_t sum = 0, distinct = (uint64_t)n / 4 + 1;
    wl_rng rng;
    wl_rng_init(&rng, seed, (uint64_t)thread);
    for (long i = 0; i < (long)ROUNDS * n; i++)
        sum += wl_below(&rng, distinct) + 1;
    return sum;
}

int main(int argc, char **argv)
{
    struct wl_args a;
    wl_parse(argc, argv, &a, 800000, "operations per thread per round");
    return wl_run_checked("strhash", &a, run, expected_sum);
}
