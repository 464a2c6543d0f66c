/* Tests that fork while other threads run, under ASan.
 *
 * ASan's allocator lock is not taken across fork (gcc 12), so a child can
 * inherit it held by a thread that was in ASan's malloc at that moment, and
 * hang in its next malloc for a reason not ours. A thread's start calls
 * that malloc, and mapalloc's purger thread starts whenever memory is held
 * for reuse: under ASan these tests turn it off before they start any
 * thread (one that runs sees it and exits within decay_ms / 2). Where
 * mapalloc is the process's malloc, threads start and fork safely, and the
 * other builds test that with the purger on. */
#ifndef TESTS_ASAN_FORK_H
#define TESTS_ASAN_FORK_H

#include <time.h>

#include "check.h"
#include "mapalloc.h"

static inline void asan_fork_purger_off(void)
{
    if (!TEST_ASAN)
        return;
    CHECK(mapalloc_option_set("background", 0) == 0);
    struct timespec ts = {0, 200 * 1000000L};
    nanosleep(&ts, NULL);
}

#endif
