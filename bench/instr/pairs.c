/* pairs N: N malloc(16)/free pairs, for counting instructions per pair.
 *
 * run.py --instructions runs this under valgrind --tool=callgrind with N and
 * with 2N pairs for each allocator (through LD_PRELOAD) and reports
 * (count(2N) - count(N)) / N, so the start-up cost of the process and the
 * allocator's first-call initialisation cancel out.
 */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 0) : 1000000;
    size_t size = argc > 2 ? (size_t)strtoul(argv[2], NULL, 0) : 16;
    unsigned long sum = 0;
    for (long i = 0; i < n; i++) {
        char *p = malloc(size);
        if (!p)
            return 1;
        /* An escape, so the compiler keeps the pair. */
        __asm__ volatile("" : : "g"(p) : "memory");
        sum += (unsigned long)p & 1;
        free(p);
    }
    printf("pairs=%ld size=%zu odd=%lu\n", n, size, sum);
    return sum != 0; /* malloc results are at least 2-aligned */
}
