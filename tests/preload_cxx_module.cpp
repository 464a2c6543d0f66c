// The C++ library that preload_no_cxx.c loads with dlopen(RTLD_LOCAL):
// libstdc++ comes with it, after the preload's weak references to it were
// bound (to nothing). Its operators must still be the preload's and behave
// as the standard says.
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <new>
#include <typeinfo>

#include <dlfcn.h>

#include "new_handlers.h"

namespace {

int failed;

#define MODULE_CHECK(expr)                                                          \
    do {                                                                            \
        if (!(expr)) {                                                              \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr); \
            failed++;                                                               \
        }                                                                           \
    } while (0)

bool in_preload(const void *addr)
{
    Dl_info info;
    return dladdr(addr, &info) != 0 && info.dli_fname != nullptr &&
           std::strstr(info.dli_fname, "libmapalloc-preload") != nullptr;
}

template <class F> const void *address_of(F f)
{
    const void *p;
    static_assert(sizeof f == sizeof p, "a function pointer is one word");
    std::memcpy(&p, &f, sizeof p);
    return p;
}

} // namespace

extern "C" int preload_cxx_module_run()
{
    MODULE_CHECK(in_preload(address_of(static_cast<void *(*)(std::size_t)>(&::operator new))));
    MODULE_CHECK(in_preload(address_of(static_cast<void (*)(void *, std::size_t)>(&::operator delete))));

    int *p = new int(3);
    MODULE_CHECK(*p == 3);
    delete p;

    std::size_t n = huge_size;
    bool threw = false;
    try {
        void *q = ::operator new(n);
        ::operator delete(q);
    } catch (const std::bad_alloc &e) {
        threw = typeid(e) == typeid(std::bad_alloc);
    }
    MODULE_CHECK(threw);

    std::set_new_handler(handler_gives_up);
    threw = false;
    try {
        void *q = ::operator new(n, std::align_val_t(64));
        ::operator delete(q, std::align_val_t(64));
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    MODULE_CHECK(threw && handler_calls == 1);

    std::set_new_handler(handler_throws);
    MODULE_CHECK(::operator new(n, std::nothrow) == nullptr);
    MODULE_CHECK(::operator new[](n, std::align_val_t(64), std::nothrow) == nullptr);
    MODULE_CHECK(handler_calls == 3);
    std::set_new_handler(nullptr);
    return failed;
}
