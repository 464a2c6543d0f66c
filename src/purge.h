/* The background purger (purge.c): a thread that gives back, while the
 * program does not call the allocator, what the default arena holds for
 * reuse (its dirty slices, its abandoned pages whose blocks have all come
 * back, its empty regions) and the large cache, once each has waited
 * decay_ms. Without it, that memory would wait for the next slow path,
 * which an idle process never takes. */
#ifndef MA_PURGE_H
#define MA_PURGE_H

#include "arena.h"
#include "large.h"

/* Starts the purger when it is not running and at least MA_PURGER_MIN
 * bytes are held for reuse. Called where held memory may have grown, at the
 * end of an allocator call: the calling thread's heap is consistent and no
 * allocator lock is held, as pthread_create allocates (from us, under the
 * preload). A few loads when there is nothing to do. */
void ma_purger_kick(void);
#define MA_PURGER_MIN ((size_t)1 << 20)

/* In a forked child: the parent's purger did not come along. */
void ma_purger_fork_child(void);

#endif
