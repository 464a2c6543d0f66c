/* tree: build, mutate and tear down a large pointer-rich tree.
 *
 * Modelled on the tree-building workloads of the allocator literature
 * (the GC "binary-trees" benchmark, espresso/cfrac-style pointer structures
 * in mimalloc-bench): many small nodes of mixed sizes, linked by pointers,
 * allocated in one order and freed in an unrelated one. Each thread, per
 * round, inserts -n nodes with pseudo-random keys into an unbalanced binary
 * search tree (nodes of 48..112 bytes), deletes the odd-numbered half by
 * key, inserts n/2 new nodes, walks the tree in order, then frees it in
 * post-order. Three rounds per thread.
 *
 * Check: keys are a bijective mix of (thread, round, index), so they are
 * distinct; the in-order walk verifies strictly increasing keys and each
 * node's payload, and sums key + 1 per node. The expected sum is computed
 * by the main thread from the same key formula, without allocating.
 */
#include "wl.h"

#include <stdio.h>
#include <stdlib.h>

enum { ROUNDS = 3, MAX_PAYLOAD = 64 };

struct node {
    struct node *l, *r;
    uint64_t key;
    uint32_t payload; /* bytes of data[] */
    unsigned char data[];
};

static uint64_t key_of(int t, int round, uint64_t i)
{
    return wl_mix(((uint64_t)t << 48) | ((uint64_t)round << 40) | i);
}

static struct node **find(struct node **link, uint64_t key)
{
    while (*link && (*link)->key != key)
        link = key < (*link)->key ? &(*link)->l : &(*link)->r;
    return link;
}

static void insert(struct node **root, uint64_t key, wl_rng *rng)
{
    uint32_t payload = (uint32_t)wl_below(rng, MAX_PAYLOAD + 1);
    struct node *n = malloc(sizeof *n + payload);
    if (!n) {
        wl_fail("malloc returned NULL for a node, key", key);
        return;
    }
    n->l = n->r = NULL;
    n->key = key;
    n->payload = payload;
    memset(n->data, (int)(key & 0xff), payload);
    *find(root, key) = n;
}

/* Removes the node *link points to, relinking its in-order successor in
 * its place when it has two children. */
static void unlink_node(struct node **link)
{
    struct node *n = *link;
    if (!n->l) {
        *link = n->r;
    } else if (!n->r) {
        *link = n->l;
    } else {
        struct node **s = &n->r;
        while ((*s)->l)
            s = &(*s)->l;
        struct node *succ = *s;
        *s = succ->r;
        succ->l = n->l;
        succ->r = n->r;
        *link = succ;
    }
}

struct walk {
    uint64_t last, sum;
    int first;
};

static void walk(const struct node *n, struct walk *w)
{
    while (n) {
        walk(n->l, w);
        if (!w->first && n->key <= w->last)
            wl_fail("tree out of order at key", n->key);
        for (uint32_t i = 0; i < n->payload; i += 16)
            if (n->data[i] != (unsigned char)(n->key & 0xff))
                wl_fail("node payload broken, key", n->key);
        w->first = 0;
        w->last = n->key;
        w->sum += n->key + 1;
        n = n->r; /* iterate on the right spine, recurse on the left */
    }
}

static void destroy(struct node *n)
{
    while (n) {
        destroy(n->l);
        struct node *r = n->r;
        free(n);
        n = r;
    }
}

static void *run(void *arg)
{
    struct wl_worker *w = arg;
    wl_rng rng;
    wl_rng_init(&rng, w->seed, (uint64_t)w->id);
    uint64_t n = (uint64_t)w->n;
    for (int round = 0; round < ROUNDS; round++) {
        struct node *root = NULL;
        for (uint64_t i = 0; i < n; i++)
            insert(&root, key_of(w->id, round, i), &rng);
        for (uint64_t i = 1; i < n; i += 2) {
            struct node **link = find(&root, key_of(w->id, round, i));
            if (!*link) {
                wl_fail("key missing from tree, index", i);
                continue;
            }
            struct node *dead = *link;
            unlink_node(link);
            free(dead);
        }
        for (uint64_t i = n; i < n + n / 2; i++)
            insert(&root, key_of(w->id, round, i), &rng);
        struct walk wk = {0, 0, 1};
        walk(root, &wk);
        w->sum += wk.sum;
        destroy(root);
    }
    return NULL;
}

/* The keys a thread's trees keep, computed without building them. */
static uint64_t expected_sum(int thread, long nodes, uint64_t seed)
{
    (void)seed;
    uint64_t sum = 0, n = (uint64_t)nodes;
    for (int round = 0; round < ROUNDS; round++) {
        for (uint64_t i = 0; i < n; i += 2)
            sum += key_of(thread, round, i) + 1;
        for (uint64_t i = n; i < n + n / 2; i++)
            sum += key_of(thread, round, i) + 1;
    }
    return sum;
}

int main(int argc, char **argv)
{
    struct wl_args a;
    wl_parse(argc, argv, &a, 300000, "nodes per tree");
    return wl_run_checked("tree", &a, run, expected_sum);
}
