/* Stacks and symbols for the heap profiler (unwind.c): the calling
 * thread's return addresses from the call frame information every x86-64
 * object carries (.eh_frame, found through .eh_frame_hdr), whether or not
 * it keeps frame pointers, and the names of addresses from the dynamic
 * symbol tables of the loaded objects.
 *
 * Contract: nothing here allocates, takes a lock or calls anything that
 * does: objects are found with _dl_find_object (lock-free, made for
 * unwinders), stack bounds from /proc/self/maps (open and read), so both
 * run inside the dynamic loader, inside another allocator call and in a
 * signal handler. Every read of the stack is first checked against the
 * bounds of the mapping that holds it: a frame that cannot be read safely
 * ends the stack there (truncated, never a fault). */
#ifndef MA_UNWIND_H
#define MA_UNWIND_H

#include "internal.h"

#define MA_UNWIND_MAX 64 /* frames kept per stack */

/* Up to max return addresses of the caller's stack, innermost first,
 * leaving out the frames of the allocator's own object (when it is a
 * shared library: the preload or libmapalloc.so). Returns the count. */
unsigned ma_unwind(uintptr_t *pcs, unsigned max);

/* The dynamic symbol that holds pc: its name (NULL if none) and pc's offset
 * from it, or from the object's load address when no symbol holds it; the
 * object's file name (NULL when pc is in no loaded object). */
struct ma_symbol {
    const char *name;
    const char *object;
    uintptr_t offset;
};
void ma_symbolize(uintptr_t pc, struct ma_symbol *out);

/* The readable mapping that holds addr, from /proc/self/maps. */
bool ma_mapping_of(uintptr_t addr, uintptr_t *lo, uintptr_t *hi);

#endif
