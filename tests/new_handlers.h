// What the C++ operator tests share (preload_cxx_new.cpp and the module of
// preload_no_cxx.c): a size mapalloc refuses, and new-handlers that count
// their calls.
#ifndef MA_TEST_NEW_HANDLERS_H
#define MA_TEST_NEW_HANDLERS_H

#include <cstddef>
#include <cstdint>
#include <new>

namespace {

// Above PTRDIFF_MAX: refused without trying. Volatile, so that the compiler
// does not warn about a constant that large.
volatile std::size_t huge_size = std::size_t(PTRDIFF_MAX) + 1;

int handler_calls;

// Uninstalls itself: the next failure throws std::bad_alloc.
void handler_gives_up()
{
    handler_calls++;
    std::set_new_handler(nullptr);
}

void handler_throws()
{
    handler_calls++;
    throw std::bad_alloc();
}

} // namespace

#endif
