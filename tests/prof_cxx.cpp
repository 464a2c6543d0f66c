// The heap profiler's C++ program (tests/prof_test.py): objects made with
// new, new[], std::vector and std::string from three known functions in
// 60/30/10 proportions of bytes, kept live until exit; prints the bytes
// each function asked for.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "prof_split.h"
#include "rng.h"

namespace {

struct node {
    node *next;
    char payload[40];
};

// Never destroyed: the objects are still live when the profile is written
// at exit (static destructors run before it).
auto &nodes = *new std::vector<std::unique_ptr<node>>;
auto &arrays = *new std::vector<std::unique_ptr<char[]>>;
auto &vectors = *new std::vector<std::vector<int>>;
auto &strings = *new std::vector<std::string>;

} // namespace

// Small objects from new: 48 bytes each.
__attribute__((noinline)) size_t make_sixty(wl_rng &)
{
    nodes.emplace_back(new node());
    return sizeof(node);
}

// Arrays from new[] and strings.
__attribute__((noinline)) size_t make_thirty(wl_rng &r)
{
    if (wl_below(&r, 2)) {
        size_t n = wl_range(&r, 1000, 40000);
        arrays.emplace_back(new char[n]());
        return n;
    }
    size_t n = wl_range(&r, 100, 5000);
    strings.emplace_back(n, 'x');
    return n + 1;
}

// Vectors reserved to a size, some of them large.
__attribute__((noinline)) size_t make_ten(wl_rng &r)
{
    size_t n = wl_below(&r, 8) == 0 ? wl_range(&r, 200000, 400000) : wl_range(&r, 100, 20000);
    vectors.emplace_back();
    vectors.back().reserve(n);
    return n * sizeof(int);
}

int main(int argc, char **argv)
{
    size_t total = (argc > 1 ? std::stoul(argv[1]) : 200) << 20;
    size_t (*const fns[3])(wl_rng &) = {make_sixty, make_thirty, make_ten};
    const char *names[3] = {"make_sixty", "make_thirty", "make_ten"};
    size_t bytes[3] = {0, 0, 0};
    wl_rng r[3], pick;
    for (int f = 0; f < 3; f++)
        wl_rng_init(&r[f], 3, (uint64_t)f);
    wl_rng_init(&pick, 3, 9);
    nodes.reserve(4 << 20);
    for (int f; (f = prof_next(&pick, total, bytes)) >= 0;) {
        bytes[f] += fns[f](r[f]);
    }
    for (int f = 0; f < 3; f++)
        std::printf("%s %zu\n", names[f], bytes[f]);
    return 0;
}
