/* A program that forks while its other threads allocate, for the preload
 * tests. Each child allocates, frees, runs a shell command through system()
 * (which forks again) and exits with a status computed from its data; the
 * parent prints the statuses, which do not depend on the malloc. A child that
 * does not end within the timeout is reported (and killed) as a deadlock.
 */
#include "rng.h"
#include "sys.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define FORKS 30
#define TIMEOUT_MS 10000

static atomic_bool stop;

static void *churn(void *arg)
{
    uint64_t rs = wl_seed(2463534242ULL, (uintptr_t)arg);
    void *ring[128] = {0};
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        uint64_t x = wl_rand(&rs);
        unsigned k = (unsigned)(x % 128);
        free(ring[k]);
        size_t n = (x >> 8) % 5 == 0 ? (size_t)(x >> 16) % (2 << 20) : (size_t)(x >> 16) % 512;
        ring[k] = malloc(n + 1);
        memset(ring[k], 1, n + 1);
    }
    for (int i = 0; i < 128; i++)
        free(ring[i]);
    return NULL;
}

static int child(int k)
{
    unsigned sum = 0;
    char **v = malloc(1000 * sizeof *v);
    for (int i = 0; i < 1000; i++) {
        v[i] = malloc((size_t)(i % 100) * 37 + 1 + (i % 50 == 0 ? 1u << 20 : 0));
        snprintf(v[i], 32, "%d:%d", k, i);
    }
    for (int i = 0; i < 1000; i++) {
        sum += (unsigned)strlen(v[i]);
        free(v[i]);
    }
    free(v);
    if (k % 10 == 0 && system("exit 3") != 3 << 8)
        return 99;
    return (int)(sum % 200);
}

int main(void)
{
    pthread_t t[2];
    for (uintptr_t i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, churn, (void *)i);
    int bad = 0;
    for (int k = 0; k < FORKS; k++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0)
            return 2;
        if (pid == 0)
            _exit(child(k));
        double t0 = wl_now();
        int status = 0;
        pid_t w;
        while ((w = waitpid(pid, &status, WNOHANG)) == 0 && wl_now() - t0 < TIMEOUT_MS / 1e3)
            poll(NULL, 0, 1);
        if (w == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            printf("child %d: DEADLOCK (killed after %d ms)\n", k, TIMEOUT_MS);
            bad = 1;
            continue;
        }
        if (WIFEXITED(status))
            printf("child %d: exit %d\n", k, WEXITSTATUS(status));
        else
            printf("child %d: signal %d\n", k, WTERMSIG(status)), bad = 1;
    }
    atomic_store(&stop, true);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    return bad;
}
