/* The split of the profiler's estimate tests: three functions allocate
 * 60, 30 and 10% of a total, interleaved at random. prof_next says which
 * allocates next, in proportion to what each still has to allocate of its
 * share, and -1 once all three have it. For C and C++. */
#ifndef MA_TEST_PROF_SPLIT_H
#define MA_TEST_PROF_SPLIT_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"

static const unsigned prof_share[3] = {60, 30, 10};

static inline int prof_next(wl_rng *pick, size_t total, const size_t done[3])
{
    size_t left[3], sum = 0;
    for (int f = 0; f < 3; f++) {
        size_t target = total / 100 * prof_share[f];
        left[f] = done[f] < target ? target - done[f] : 0;
        sum += left[f];
    }
    if (sum == 0)
        return -1;
    uint64_t x = wl_below(pick, sum);
    return x < left[0] ? 0 : x < left[0] + left[1] ? 1 : 2;
}

#endif
