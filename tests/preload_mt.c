/* A multi-threaded C program for the preload tests: its output depends only
 * on what it computes, never on addresses or timing, so it must be the same
 * under any malloc. Threads build strings, pass them through a queue to
 * other threads that hash and free them; each thread also keeps a growing
 * table (realloc) and a hash map of its own.
 */
#include "rng.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 4
#define ITEMS 50000

struct node {
    struct node *next;
    char *text;
    unsigned from;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct node *head;
static int producers = THREADS;

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

struct result {
    uint64_t sent_sum, received_sum, table_sum;
    unsigned long received;
};

static struct result results[THREADS];

static void *worker(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    struct result *r = &results[id];
    uint64_t rs = wl_seed(88172645463325252ULL, id);
    size_t cap = 16, len = 0;
    uint64_t *table = malloc(cap * sizeof *table);
    for (int i = 0; i < ITEMS; i++) {
        uint64_t x = wl_rand(&rs);
        size_t n = 1 + (size_t)(x % 3000);
        char *text = malloc(n + 1);
        if (text == NULL)
            abort();
        for (size_t k = 0; k < n; k++)
            text[k] = (char)('a' + (x >> (k % 50)) % 26);
        text[n] = '\0';
        r->sent_sum += fnv(text);
        struct node *node = malloc(sizeof *node);
        node->text = text;
        node->from = id;
        pthread_mutex_lock(&mu);
        node->next = head;
        head = node;
        pthread_cond_signal(&cv);
        pthread_mutex_unlock(&mu);
        if (len == cap) {
            cap *= 2;
            table = realloc(table, cap * sizeof *table);
        }
        table[len++] = x;
        /* Take one, if there is one from someone else. */
        pthread_mutex_lock(&mu);
        struct node *got = head;
        if (got != NULL)
            head = got->next;
        pthread_mutex_unlock(&mu);
        if (got != NULL) {
            r->received_sum += fnv(got->text);
            r->received++;
            free(got->text);
            free(got);
        }
    }
    for (size_t i = 0; i < len; i++)
        r->table_sum += table[i] * (i + 1);
    free(table);
    /* Drain the rest. */
    pthread_mutex_lock(&mu);
    producers--;
    pthread_cond_broadcast(&cv);
    for (;;) {
        while (head == NULL && producers > 0)
            pthread_cond_wait(&cv, &mu);
        if (head == NULL)
            break;
        struct node *got = head;
        head = got->next;
        pthread_mutex_unlock(&mu);
        r->received_sum += fnv(got->text);
        r->received++;
        free(got->text);
        free(got);
        pthread_mutex_lock(&mu);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

int main(void)
{
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)i) != 0)
            return 2;
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    uint64_t sent = 0, received = 0;
    unsigned long count = 0;
    for (int i = 0; i < THREADS; i++) {
        printf("thread %d: sent %016llx table %016llx\n", i,
               (unsigned long long)results[i].sent_sum, (unsigned long long)results[i].table_sum);
        sent += results[i].sent_sum;
        received += results[i].received_sum;
        count += results[i].received;
    }
    printf("strings %lu, sent %016llx, received %016llx, %s\n", count, (unsigned long long)sent,
           (unsigned long long)received, sent == received ? "same" : "DIFFERENT");
    return sent == received && count == (unsigned long)THREADS * ITEMS ? 0 : 1;
}
