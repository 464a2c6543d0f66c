/* The drop-in for C++: every replaceable global operator new and delete of
 * C++17, defined in C under its Itanium-mangled name and mapped onto
 * mapalloc's public API, so that C++ programs get mapalloc's blocks and
 * checks without libstdc++'s wrappers in between.
 *
 * Sized deletes go through mapalloc_free_sized and aligned ones through
 * mapalloc_free_aligned_sized: a delete with the wrong size or alignment
 * aborts with mapalloc's line, as free_sized does.
 *
 * No C++ run-time dependency: a C program preloaded with this library must
 * not load libstdc++. The two entry points of libstdc++ that a failing new
 * needs (std::get_new_handler, std::__throw_bad_alloc) are weak references,
 * which the dynamic linker binds when the program links libstdc++ and leaves
 * NULL otherwise. When libstdc++ came in later (a C program that dlopens a
 * C++ library), they are looked up in the loaded libstdc++ on the failure
 * path. This file is compiled with -fexceptions: std::bad_alloc, and whatever
 * a new-handler throws, unwind through its frames. */
#include <dlfcn.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

#include "mapalloc.h"

typedef void (*new_handler)(void);

/* std::get_new_handler() and std::__throw_bad_alloc(), libstdc++'s. */
extern new_handler _ZSt15get_new_handlerv(void) __attribute__((weak));
extern void _ZSt17__throw_bad_allocv(void) __attribute__((weak, noreturn));

/* ---- the C++ run time, reached only when mapalloc has no memory ---- */

static bool is_pow2(size_t a)
{
    return a != 0 && (a & (a - 1)) == 0;
}

/* libstdc++'s own definition of name when libstdc++ is in the process,
 * whichever way it came; NULL otherwise. RTLD_NOLOAD never loads it, and
 * the reference taken is dropped at once: the C++ code calling new keeps
 * libstdc++ loaded. dlopen and dlsym may call malloc, which is this
 * library's and does not come back here. */
static void *libstdcxx_sym(const char *name)
{
    void *lib = dlopen("libstdc++.so.6", RTLD_NOLOAD | RTLD_LAZY);
    if (lib == NULL)
        return NULL;
    void *sym = dlsym(lib, name);
    dlclose(lib);
    return sym;
}

static new_handler current_new_handler(void)
{
    new_handler (*get)(void) = _ZSt15get_new_handlerv;
    if (get == NULL)
        get = (new_handler (*)(void))libstdcxx_sym("_ZSt15get_new_handlerv");
    return get ? get() : NULL;
}

__attribute__((noreturn, cold)) static void throw_bad_alloc(void)
{
    void (*thrower)(void) = _ZSt17__throw_bad_allocv;
    if (thrower == NULL)
        thrower = (void (*)(void))libstdcxx_sym("_ZSt17__throw_bad_allocv");
    if (thrower != NULL)
        thrower();
    /* A throwing new called where there is no libstdc++ to throw with: it
     * must not return NULL, so the process ends. */
    static const char msg[] =
        "mapalloc: operator new has no memory and no libstdc++ to throw std::bad_alloc\n";
    ssize_t n = write(2, msg, sizeof msg - 1);
    (void)n;
    abort();
}

/* A throwing new that mapalloc could not serve (alignment 1 for the forms
 * without one): as the standard asks, the new-handler runs until it gets
 * memory or there is none, then std::bad_alloc. An alignment that is not a
 * power of two throws at once, as libstdc++'s does. */
__attribute__((noinline, cold)) static void *new_failed(size_t size, size_t align)
{
    if (!is_pow2(align))
        throw_bad_alloc();
    for (;;) {
        new_handler handler = current_new_handler();
        if (handler == NULL)
            throw_bad_alloc();
        handler();
        void *p = mapalloc_aligned_alloc(align, size);
        if (p != NULL)
            return p;
    }
}

typedef void *nothrow_new(size_t size, const void *tag);
typedef void *nothrow_new_aligned(size_t size, size_t align, const void *tag);

/* A nothrow new (align 0 for the forms without one) that mapalloc could
 * not serve. Without a new-handler: NULL at once. With one, the standard
 * wants the handler called as by the throwing form, and NULL when that ends
 * in an exception, whatever the handler threw. C cannot catch, and letting
 * the exception out of a noexcept function would end the program in
 * std::terminate. So the request goes to libstdc++'s own nothrow operator,
 * which calls the throwing form (its call binds to this library's, above)
 * inside a catch-all and returns NULL from it. Without libstdc++'s
 * operator: NULL, without the handler. */
__attribute__((noinline, cold)) static void *nothrow_failed(size_t size, size_t align, const void *tag)
{
    if (align != 0 && !is_pow2(align))
        return NULL;
    if (current_new_handler() == NULL)
        return NULL;
    if (align == 0) {
        nothrow_new *runtime_new = (nothrow_new *)libstdcxx_sym("_ZnwmRKSt9nothrow_t");
        return runtime_new ? runtime_new(size, tag) : NULL;
    }
    nothrow_new_aligned *runtime_new =
        (nothrow_new_aligned *)libstdcxx_sym("_ZnwmSt11align_val_tRKSt9nothrow_t");
    return runtime_new ? runtime_new(size, align, tag) : NULL;
}

/* An aligned delete without a size. The public API checks a block against
 * a size and an alignment; the block's usable size stands in for the size
 * (any size from the request to the usable size is accepted), so what is
 * checked is the alignment: a small or medium block must be of a class that
 * an allocation with this alignment is served from, a large one must start
 * at an address with this alignment. A block from a plain new, or from a
 * new with a smaller alignment, aborts (unless it is of such a class by
 * chance: then it has the alignment). */
static void free_aligned(void *p, size_t align)
{
    mapalloc_free_aligned_sized(p, align, mapalloc_usable_size(p));
}

/* ---- the operators; new[] and delete[] are aliases of new and delete ---- */

/* operator new(size_t), new[](size_t) */
void *_Znwm(size_t size)
{
    void *p = mapalloc_malloc(size);
    return __builtin_expect(p != NULL, 1) ? p : new_failed(size, 1);
}
void *_Znam(size_t size) __attribute__((alias("_Znwm")));

/* operator new(size_t, std::align_val_t), new[](size_t, std::align_val_t) */
void *_ZnwmSt11align_val_t(size_t size, size_t align)
{
    void *p = mapalloc_aligned_alloc(align, size);
    return __builtin_expect(p != NULL, 1) ? p : new_failed(size, align);
}
void *_ZnamSt11align_val_t(size_t size, size_t align) __attribute__((alias("_ZnwmSt11align_val_t")));

/* operator new(size_t, const std::nothrow_t &) and new[] */
void *_ZnwmRKSt9nothrow_t(size_t size, const void *tag)
{
    void *p = mapalloc_malloc(size);
    return __builtin_expect(p != NULL, 1) ? p : nothrow_failed(size, 0, tag);
}
void *_ZnamRKSt9nothrow_t(size_t size, const void *tag) __attribute__((alias("_ZnwmRKSt9nothrow_t")));

/* operator new(size_t, std::align_val_t, const std::nothrow_t &) and new[] */
void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t size, size_t align, const void *tag)
{
    void *p = mapalloc_aligned_alloc(align, size);
    return __builtin_expect(p != NULL, 1) ? p : nothrow_failed(size, align, tag);
}
void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t size, size_t align, const void *tag)
    __attribute__((alias("_ZnwmSt11align_val_tRKSt9nothrow_t")));

/* operator delete(void *), delete[](void *) */
void _ZdlPv(void *p)
{
    mapalloc_free(p);
}
void _ZdaPv(void *p) __attribute__((alias("_ZdlPv")));

/* operator delete(void *, const std::nothrow_t &) and delete[] */
void _ZdlPvRKSt9nothrow_t(void *p, const void *tag)
{
    (void)tag;
    mapalloc_free(p);
}
void _ZdaPvRKSt9nothrow_t(void *p, const void *tag) __attribute__((alias("_ZdlPvRKSt9nothrow_t")));

/* operator delete(void *, size_t) and delete[] */
void _ZdlPvm(void *p, size_t size)
{
    mapalloc_free_sized(p, size);
}
void _ZdaPvm(void *p, size_t size) __attribute__((alias("_ZdlPvm")));

/* operator delete(void *, std::align_val_t) and delete[] */
void _ZdlPvSt11align_val_t(void *p, size_t align)
{
    free_aligned(p, align);
}
void _ZdaPvSt11align_val_t(void *p, size_t align) __attribute__((alias("_ZdlPvSt11align_val_t")));

/* operator delete(void *, std::align_val_t, const std::nothrow_t &) and delete[] */
void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t align, const void *tag)
{
    (void)tag;
    free_aligned(p, align);
}
void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t align, const void *tag)
    __attribute__((alias("_ZdlPvSt11align_val_tRKSt9nothrow_t")));

/* operator delete(void *, size_t, std::align_val_t) and delete[] */
void _ZdlPvmSt11align_val_t(void *p, size_t size, size_t align)
{
    mapalloc_free_aligned_sized(p, align, size);
}
void _ZdaPvmSt11align_val_t(void *p, size_t size, size_t align) __attribute__((alias("_ZdlPvmSt11align_val_t")));
