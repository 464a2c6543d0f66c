/* The one random-number generator of tests/ and bench/: deterministic,
 * seeded, header only, allocating nothing (so the allocator under test sees
 * only the program's own calls, also under LD_PRELOAD). It lives in
 * bench/common; tests/meson.build declares the include directory once
 * (common_inc) for both trees. C and C++.
 *
 * A 64-bit multiply-xorshift generator: the state advances by a Weyl
 * constant and the output is the state through a 64-bit finaliser. Good
 * enough statistically for choosing sizes, slots and orders, and a single
 * add and mix per number. Every state is valid, 0 included.
 *
 * Two forms of one generator: wl_rand on a bare uint64_t state (tests keep
 * one per thread or per loop), and wl_rng, the same state in a struct, with
 * wl_below, wl_range and wl_shuffle on top. Independent streams of one seed
 * (one per thread) come from wl_seed's or wl_rng_init's `stream`. */
#ifndef MAPALLOC_BENCH_RNG_H
#define MAPALLOC_BENCH_RNG_H

#include <stddef.h>
#include <stdint.h>

/* The Weyl increment: 2^64 divided by the golden ratio, odd. */
#define WL_WEYL 0x9e3779b97f4a7c15ull

typedef struct { uint64_t s; } wl_rng;

static inline uint64_t wl_mix(uint64_t z)
{
    /* A bijective 64-bit mixer (xor-shift / odd multiply rounds). */
    z ^= z >> 31;
    z *= 0xd6e8feb86659fd93ull;
    z ^= z >> 32;
    z *= 0xd6e8feb86659fd93ull;
    z ^= z >> 32;
    return z;
}

/* A starting state for stream `stream` of `seed`. The streams of one seed
 * do not overlap: a state of seed + k * WL_WEYL, by contrast, would give
 * stream 0 again, k numbers later. */
static inline uint64_t wl_seed(uint64_t seed, uint64_t stream)
{
    return wl_mix(seed * WL_WEYL + stream + 1);
}

/* The next number of the generator whose state is *state. */
static inline uint64_t wl_rand(uint64_t *state)
{
    *state += WL_WEYL;
    return wl_mix(*state);
}

static inline void wl_rng_init(wl_rng *r, uint64_t seed, uint64_t stream)
{
    r->s = wl_seed(seed, stream);
}

static inline uint64_t wl_next(wl_rng *r)
{
    return wl_rand(&r->s);
}

/* Uniform in [0, n), n > 0 (multiply-shift, bias negligible for our n). */
static inline uint64_t wl_below(wl_rng *r, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)wl_next(r) * n) >> 64);
}

/* Uniform in [lo, hi]. */
static inline size_t wl_range(wl_rng *r, size_t lo, size_t hi)
{
    return lo + (size_t)wl_below(r, (uint64_t)(hi - lo) + 1);
}

/* Fisher-Yates: a uniformly random order of the n elements of `v`, each
 * `size` bytes (at most 64). */
static inline void wl_shuffle(wl_rng *r, void *v, size_t n, size_t size)
{
    unsigned char *b = (unsigned char *)v, t[64];
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)wl_below(r, i);
        __builtin_memcpy(t, b + (i - 1) * size, size);
        __builtin_memcpy(b + (i - 1) * size, b + j * size, size);
        __builtin_memcpy(b + j * size, t, size);
    }
}

#endif
