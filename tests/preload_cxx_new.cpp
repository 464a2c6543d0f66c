// The preload's operator new and delete (preload/preload_cxx.c), run under
// LD_PRELOAD=libmapalloc-preload.so (tests/meson.build sets it). Built with
// -fsized-deallocation, so that delete-expressions call the sized forms with
// clang too.
//
// Usage: preload_cxx_new PART    (--list lists the parts)
//   operators        every replaceable form resolves into the preload
//   forms            each form: contents, alignment, new(0), new-expressions
//   huge             sizes mapalloc refuses: std::bad_alloc, or NULL (nothrow)
//   handler          the new-handler: called, its exceptions, nothrow and NULL
//   oom              under RLIMIT_AS: std::bad_alloc, not an abort
//   oom_handler      under RLIMIT_AS: a handler frees a reserve, the retry works
//   misuse_*         one misuse in a forked child, which must abort with
//                    mapalloc's exact line (address included)
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <typeinfo>
#include <vector>

#include <dlfcn.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "death.h"
#include "new_handlers.h"
#include "sys.h"

namespace {

constexpr std::size_t KiB = std::size_t(1) << 10;
constexpr std::size_t MiB = std::size_t(1) << 20;

// Keeps the compiler from removing a new/delete pair, or from assuming
// what a new-expression returns (clang folds an unused nothrow new to
// non-NULL).
template <class T> void escape(T *p)
{
    asm volatile("" : : "g"(p) : "memory");
}

template <class T> T *kept(T *p)
{
    escape(p);
    return p;
}

bool aligned_to(const void *p, std::size_t a)
{
    return reinterpret_cast<std::uintptr_t>(p) % a == 0;
}

void fill(void *p, std::size_t n, unsigned seed)
{
    auto *b = static_cast<unsigned char *>(p);
    for (std::size_t i = 0; i < n; i++)
        b[i] = static_cast<unsigned char>(seed + i * 131);
}

bool filled(const void *p, std::size_t n, unsigned seed)
{
    auto *b = static_cast<const unsigned char *>(p);
    for (std::size_t i = 0; i < n; i++)
        if (b[i] != static_cast<unsigned char>(seed + i * 131))
            return false;
    return true;
}

// ---- operators ----

// The mangled names of every replaceable form of C++17.
const char *const operator_names[] = {
    "_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t",
    "_ZnwmSt11align_val_t", "_ZnamSt11align_val_t",
    "_ZnwmSt11align_val_tRKSt9nothrow_t", "_ZnamSt11align_val_tRKSt9nothrow_t",
    "_ZdlPv", "_ZdaPv", "_ZdlPvRKSt9nothrow_t", "_ZdaPvRKSt9nothrow_t",
    "_ZdlPvm", "_ZdaPvm", "_ZdlPvSt11align_val_t", "_ZdaPvSt11align_val_t",
    "_ZdlPvSt11align_val_tRKSt9nothrow_t", "_ZdaPvSt11align_val_tRKSt9nothrow_t",
    "_ZdlPvmSt11align_val_t", "_ZdaPvmSt11align_val_t",
};

// The definition the program's calls bind to is the preload's, not
// libstdc++'s, for each form.
void part_operators()
{
    for (const char *name : operator_names) {
        void *sym = dlsym(RTLD_DEFAULT, name);
        CHECKF(sym != nullptr, "%s not found", name);
        Dl_info info;
        CHECKF(dladdr(sym, &info) != 0 && info.dli_fname != nullptr, "%s: no dladdr", name);
        CHECKF(std::strstr(info.dli_fname, "libmapalloc-preload") != nullptr,
               "%s is defined in %s, not in the preload", name, info.dli_fname);
    }
    std::printf("operators: %zu forms defined by the preload\n",
                sizeof operator_names / sizeof operator_names[0]);
}

// ---- forms ----

struct alignas(64) Line {
    unsigned char b[64];
};

struct alignas(4096) Page {
    unsigned char b[4096];
};

int live_objects;

// A non-trivial destructor: arrays of it carry a cookie (the count) before
// the elements, and delete[] passes the size including it.
struct Counted {
    std::uint64_t v = 0x1234;
    Counted() { live_objects++; }
    ~Counted() { live_objects--; }
};

struct alignas(256) CountedAligned {
    unsigned char b[300];
    CountedAligned() { live_objects++; }
    ~CountedAligned() { live_objects--; }
};

struct Base {
    virtual ~Base() = default;
    int base = 1;
};

struct Derived : Base {
    char more[500] = {};
};

const std::size_t sizes[] = {0, 1, 15, 16, 17, 100, 1000, 4096, 5000, 70 * KiB, 600 * KiB, 3 * MiB};
const std::size_t alignments[] = {8, 16, 32, 64, 256, 4096, 64 * KiB, 2 * MiB};

// Each operator called directly, with the delete that matches it.
void forms_direct()
{
    unsigned seed = 1;
    for (std::size_t n : sizes) {
        void *p = ::operator new(n);
        fill(p, n, ++seed);
        CHECK(filled(p, n, seed) && aligned_to(p, 16));
        ::operator delete(p, n);

        p = ::operator new[](n);
        fill(p, n, ++seed);
        CHECK(filled(p, n, seed) && aligned_to(p, 16));
        ::operator delete[](p, n);

        p = ::operator new(n, std::nothrow);
        CHECK(p != nullptr);
        fill(p, n, ++seed);
        CHECK(filled(p, n, seed));
        ::operator delete(p, std::nothrow);

        p = ::operator new[](n, std::nothrow);
        CHECK(p != nullptr);
        fill(p, n, ++seed);
        CHECK(filled(p, n, seed));
        ::operator delete[](p, std::nothrow);

        p = ::operator new(n);
        ::operator delete(p);
        p = ::operator new[](n);
        ::operator delete[](p);

        for (std::size_t a : alignments) {
            std::align_val_t al{a};
            p = ::operator new(n, al);
            CHECKF(aligned_to(p, a), "new(%zu, %zu) = %p", n, a, p);
            fill(p, n, ++seed);
            CHECK(filled(p, n, seed));
            ::operator delete(p, n, al);

            p = ::operator new[](n, al);
            CHECKF(aligned_to(p, a), "new[](%zu, %zu) = %p", n, a, p);
            fill(p, n, ++seed);
            CHECK(filled(p, n, seed));
            ::operator delete[](p, n, al);

            p = ::operator new(n, al, std::nothrow);
            CHECK(p != nullptr && aligned_to(p, a));
            fill(p, n, ++seed);
            ::operator delete(p, al, std::nothrow);

            p = ::operator new[](n, al, std::nothrow);
            CHECK(p != nullptr && aligned_to(p, a));
            fill(p, n, ++seed);
            ::operator delete[](p, al, std::nothrow);

            p = ::operator new(n, al);
            ::operator delete(p, al);
            p = ::operator new[](n, al);
            ::operator delete[](p, al);
        }
    }
    // The largest alignment mapalloc promises.
    void *p = ::operator new(100, std::align_val_t(std::size_t(1) << 30));
    CHECK(aligned_to(p, std::size_t(1) << 30));
    fill(p, 100, 7);
    CHECK(filled(p, 100, 7));
    ::operator delete(p, 100, std::align_val_t(std::size_t(1) << 30));
}

// new(0) returns a unique pointer, in every form.
void forms_zero()
{
    void *a = ::operator new(0), *b = ::operator new(0);
    void *c = ::operator new[](0), *d = ::operator new(0, std::nothrow);
    void *e = ::operator new(0, std::align_val_t(4096)), *f = ::operator new(0, std::align_val_t(4096));
    const void *all[] = {a, b, c, d, e, f};
    for (std::size_t i = 0; i < 6; i++) {
        CHECK(all[i] != nullptr);
        for (std::size_t j = 0; j < i; j++)
            CHECKF(all[i] != all[j], "new(0) returned %p twice", all[i]);
    }
    CHECK(aligned_to(e, 4096) && aligned_to(f, 4096));
    ::operator delete(a, std::size_t(0));
    ::operator delete(b);
    ::operator delete[](c, std::size_t(0));
    ::operator delete(d, std::nothrow);
    ::operator delete(e, std::size_t(0), std::align_val_t(4096));
    ::operator delete(f, std::align_val_t(4096));
    char *z1 = kept(new char[0]), *z2 = kept(new char[0]);
    CHECK(z1 != z2);
    delete[] z1;
    delete[] z2;
}

// The forms as the compiler calls them from new- and delete-expressions.
void forms_expressions()
{
    int *i = new int(42); // new; sized delete
    escape(i);
    CHECK(*i == 42);
    delete i;

    Base *b = new Derived; // the deleting destructor passes sizeof(Derived)
    escape(b);
    CHECK(b->base == 1);
    delete b;

    Counted *cs = new Counted[37]; // new[] with a cookie; sized delete[]
    escape(cs);
    CHECK(live_objects == 37 && cs[36].v == 0x1234);
    delete[] cs;
    CHECK(live_objects == 0);

    Line *l = new Line(); // aligned new; sized aligned delete
    escape(l);
    CHECK(aligned_to(l, 64) && l->b[63] == 0);
    delete l;

    Page *pages = new Page[3]; // aligned new[], no cookie; aligned delete[]
    escape(pages);
    CHECK(aligned_to(pages, 4096));
    pages[2].b[4095] = 1;
    delete[] pages;

    CountedAligned *ca = new CountedAligned[5]; // aligned new[] with a cookie
    escape(ca);
    CHECK(aligned_to(ca, 256) && live_objects == 5);
    delete[] ca;
    CHECK(live_objects == 0);

    char *big = kept(new (std::align_val_t(4096)) char[5000]);
    CHECK(aligned_to(big, 4096));
    fill(big, 5000, 3);
    CHECK(filled(big, 5000, 3));
    ::operator delete[](big, std::align_val_t(4096));

    int *zeros = kept(new (std::nothrow) int[100]()); // nothrow new[]
    CHECK(zeros != nullptr);
    for (int k = 0; k < 100; k++)
        CHECK(zeros[k] == 0);
    delete[] zeros;

    Line *lines = kept(new (std::nothrow) Line[10]); // nothrow aligned new[]
    CHECK(lines != nullptr && aligned_to(lines, 64));
    delete[] lines;

    Line *one = kept(new (std::nothrow) Line); // nothrow aligned new
    CHECK(one != nullptr && aligned_to(one, 64));
    delete one;
}

// The library's own allocations (std::allocator: sized and sized+aligned
// deletes), and blocks deleted by another thread than the one that made them.
void forms_containers()
{
    std::vector<Line> v;
    for (int k = 0; k < 10000; k++) {
        Line x;
        std::memset(x.b, k & 0xff, sizeof x.b);
        v.push_back(x);
    }
    CHECK(aligned_to(v.data(), 64));
    for (int k = 0; k < 10000; k++)
        CHECK(v[static_cast<std::size_t>(k)].b[k % 64] == (k & 0xff));
    v.clear();
    v.shrink_to_fit();

    std::map<int, std::string> m;
    for (int k = 0; k < 20000; k++)
        m[k] = std::string(static_cast<std::size_t>(k % 100), static_cast<char>('a' + k % 26));
    for (int k = 0; k < 20000; k += 7)
        m.erase(k);
    std::size_t chars = 0;
    for (const auto &kv : m)
        chars += kv.second.size();
    CHECK(m.size() == 20000 - 2858 && chars > 0);

    std::vector<int *> made(20000);
    std::thread maker([&] {
        for (std::size_t k = 0; k < made.size(); k++)
            made[k] = new int(static_cast<int>(k));
    });
    maker.join();
    std::thread deleter([&] {
        for (std::size_t k = 0; k < made.size(); k++) {
            CHECK(*made[k] == static_cast<int>(k));
            delete made[k];
        }
    });
    deleter.join();
}

void part_forms()
{
    forms_direct();
    forms_zero();
    forms_expressions();
    forms_containers();
    std::printf("forms: ok\n");
}

// ---- huge, handler ----

// Runs f, which must throw exactly std::bad_alloc.
template <class F> bool throws_bad_alloc(F f)
{
    try {
        f();
    } catch (const std::bad_alloc &e) {
        return typeid(e) == typeid(std::bad_alloc);
    }
    return false;
}

struct Guard {
    bool *destroyed;
    ~Guard() { *destroyed = true; }
};

void part_huge()
{
    std::size_t n = huge_size;
    CHECK(throws_bad_alloc([&] { escape(::operator new(n)); }));
    CHECK(throws_bad_alloc([&] { escape(::operator new[](n)); }));
    CHECK(throws_bad_alloc([&] { escape(::operator new(n, std::align_val_t(64))); }));
    CHECK(throws_bad_alloc([&] { escape(::operator new[](n, std::align_val_t(4096))); }));
    CHECK(::operator new(n, std::nothrow) == nullptr);
    CHECK(::operator new[](n, std::nothrow) == nullptr);
    CHECK(::operator new(n, std::align_val_t(64), std::nothrow) == nullptr);
    CHECK(::operator new[](n, std::align_val_t(4096), std::nothrow) == nullptr);
    // An alignment that is not a power of two: as libstdc++ (volatile, so
    // that the compiler does not reject it).
    volatile std::size_t not_pow2 = 48, zero = 0;
    std::align_val_t a48{not_pow2}, a0{zero};
    CHECK(throws_bad_alloc([&] { escape(::operator new(64, a48)); }));
    CHECK(throws_bad_alloc([&] { escape(::operator new(64, a0)); }));
    CHECK(::operator new(64, a48, std::nothrow) == nullptr);
    // The exception unwinds through the operator into the caller's frames.
    bool destroyed = false;
    try {
        Guard g{&destroyed};
        escape(::operator new(n));
    } catch (const std::bad_alloc &) {
        CHECK(destroyed);
    }
    CHECK(destroyed);
    std::printf("huge: ok\n");
}

struct OwnBadAlloc : std::bad_alloc {
};

void handler_throws_derived()
{
    handler_calls++;
    throw OwnBadAlloc();
}

void handler_throws_other()
{
    handler_calls++;
    throw std::runtime_error("not bad_alloc");
}

void part_handler()
{
    std::size_t n = huge_size;
    // A handler that uninstalls itself: called once, then std::bad_alloc.
    std::set_new_handler(handler_gives_up);
    CHECK(throws_bad_alloc([&] { escape(::operator new(n)); }));
    CHECK(handler_calls == 1 && std::get_new_handler() == nullptr);
    std::set_new_handler(handler_gives_up);
    CHECK(throws_bad_alloc([&] { escape(::operator new[](n, std::align_val_t(256))); }));
    CHECK(handler_calls == 2);

    // The handler's own exception reaches the caller of a throwing new.
    std::set_new_handler(handler_throws_derived);
    bool caught = false;
    try {
        escape(::operator new(n));
    } catch (const OwnBadAlloc &) {
        caught = true;
    }
    CHECK(caught && handler_calls == 3);

    // nothrow: the handler is called, and its exception becomes NULL.
    handler_calls = 0;
    std::set_new_handler(handler_throws);
    CHECK(::operator new(n, std::nothrow) == nullptr);
    CHECK(::operator new[](n, std::nothrow) == nullptr);
    CHECK(::operator new(n, std::align_val_t(64), std::nothrow) == nullptr);
    CHECK(::operator new[](n, std::align_val_t(64), std::nothrow) == nullptr);
    CHECKF(handler_calls == 4, "handler called %d times", handler_calls);
    std::set_new_handler(handler_throws_other);
    CHECK(::operator new(n, std::nothrow) == nullptr);
    CHECK(handler_calls == 5);
    std::set_new_handler(handler_gives_up);
    CHECK(::operator new(n, std::nothrow) == nullptr);
    CHECK(handler_calls == 6 && std::get_new_handler() == nullptr);
    // Memory there is still comes without the handler.
    std::set_new_handler(handler_throws);
    int *p = kept(new (std::nothrow) int(5));
    CHECK(p != nullptr && *p == 5 && handler_calls == 6);
    delete p;
    std::set_new_handler(nullptr);
    std::printf("handler: ok\n");
}

// ---- oom, oom_handler: in a child, under RLIMIT_AS ----

// Limits the address space to what the process uses now plus extra.
void limit_address_space(std::size_t extra)
{
    long kib = wl_proc_field("/proc/self/status", "VmSize");
    CHECK(kib > 0);
    std::size_t now = static_cast<std::size_t>(kib) * 1024;
    struct rlimit r = {now + extra, now + extra};
    CHECK(setrlimit(RLIMIT_AS, &r) == 0);
}

// Runs f in a child, which must exit with status 0 (not abort).
template <class F> void in_child(const char *what, F f)
{
    std::fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        f();
        std::fflush(stdout);
        _exit(0);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: the child %s %d", what,
           WIFSIGNALED(status) ? "was killed by signal" : "exited with",
           WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
}

void part_oom()
{
    in_child("oom", [] {
        std::vector<char *> blocks;
        blocks.reserve(100000);
        limit_address_space(128 * MiB);
        CHECK(throws_bad_alloc([] { escape(new char[1024 * MiB]); }));
        bool threw = false;
        try {
            for (;;) {
                char *p = new char[64 * KiB];
                p[0] = p[64 * KiB - 1] = 1;
                blocks.push_back(p);
            }
        } catch (const std::bad_alloc &) {
            threw = true;
        }
        CHECK(threw && blocks.size() > 100);
        CHECK(kept(new (std::nothrow) char[64 * KiB]) == nullptr);
        CHECK(::operator new(64 * KiB, std::align_val_t(4096), std::nothrow) == nullptr);
        CHECK(throws_bad_alloc([] { escape(::operator new(64 * KiB, std::align_val_t(4096))); }));
        std::printf("oom: std::bad_alloc after %zu blocks of 64 KiB\n", blocks.size());
        for (char *p : blocks)
            delete[] p;
        char *again = kept(new char[64 * KiB]);
        again[0] = 1;
        delete[] again;
    });
    std::printf("oom: ok\n");
}

constexpr std::size_t reserve_size = 8 * MiB;
char *reserve;

// Frees the reserve the first time, gives up the second.
void release_reserve()
{
    handler_calls++;
    if (reserve != nullptr) {
        delete[] reserve;
        reserve = nullptr;
    } else {
        std::set_new_handler(nullptr);
    }
}

void part_oom_handler()
{
    in_child("oom_handler", [] {
        std::vector<char *> blocks;
        blocks.reserve(1000);
        limit_address_space(128 * MiB);
        reserve = new char[reserve_size];
        std::set_new_handler(release_reserve);
        std::size_t after_release = 0;
        bool threw = false;
        try {
            for (;;) {
                char *p = new char[reserve_size];
                p[0] = 1;
                blocks.push_back(p);
                if (handler_calls == 1)
                    after_release++;
            }
        } catch (const std::bad_alloc &) {
            threw = true;
        }
        CHECKF(threw && handler_calls == 2 && after_release >= 1,
               "threw %d, handler called %d times, %zu blocks after the reserve went",
               threw, handler_calls, after_release);
        std::printf("oom_handler: %zu blocks, %zu of them after the handler freed the reserve\n",
                    blocks.size(), after_release);
        for (char *p : blocks)
            delete[] p;
    });
    std::printf("oom_handler: ok\n");
}

// ---- misuse ----

const char *const msg_size = "free_sized with a size that does not match the block";
const char *const msg_aligned = "free_aligned_sized with a size or alignment that does not match the block";
const char *const msg_aligned_large = "free_aligned_sized with an alignment that does not match the block";

struct Small {
    char c[16];
};
struct BigDerived : Small {
    char more[240];
};
struct HugeDerived : Small {
    char more[MiB];
};

// The misuses are deliberate.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuse-after-free"
#endif

// delete through a base without a virtual destructor: the sized delete
// passes sizeof(Small) for a block of sizeof(BigDerived).
void misuse_sized_delete_small()
{
    Small *p = new BigDerived;
    escape(p);
    death_expect_line(msg_size, p);
    delete p;
}

void misuse_sized_delete_large()
{
    Small *p = new HugeDerived;
    escape(p);
    death_expect_line(msg_size, p);
    delete p;
}

struct Elem {
    char c[24];
    ~Elem() {}
};
struct WideElem {
    char c[200];
    ~WideElem() {}
};

// delete[] through the wrong element type: the size from the cookie's count
// does not fit the block.
void misuse_sized_delete_array()
{
    Elem *a = new Elem[100];
    escape(a);
    death_expect_line(msg_size, reinterpret_cast<char *>(a) - sizeof(std::size_t));
    delete[] reinterpret_cast<WideElem *>(a);
}

// An aligned sized delete with a size that is not the block's.
void misuse_aligned_sized_delete_small()
{
    Line *p = new Line;
    escape(p);
    death_expect_line(msg_aligned, p);
    ::operator delete(p, sizeof(Line) + 64, std::align_val_t(alignof(Line)));
}

// An aligned delete (without a size) of a block from a plain new.
void misuse_aligned_delete_small()
{
    void *p = ::operator new(320);
    escape(p);
    death_expect_line(msg_aligned, p);
    ::operator delete(p, std::align_val_t(256));
}

// The lowest alignment the address does not have.
std::size_t alignment_not_met(const void *p)
{
    std::uintptr_t u = reinterpret_cast<std::uintptr_t>(p);
    return static_cast<std::size_t>((u & -u) << 1);
}

void misuse_aligned_delete_large()
{
    void *p = ::operator new(MiB);
    escape(p);
    death_expect_line(msg_aligned_large, p);
    ::operator delete(p, std::align_val_t(alignment_not_met(p)));
}

void misuse_aligned_sized_delete_large()
{
    Page *p = new Page[300];
    escape(p);
    death_expect_line(msg_size, p);
    ::operator delete[](p, 100 * sizeof(Page), std::align_val_t(alignof(Page)));
}

// delete (not delete[]) of an array with a cookie: the address is inside
// the block.
void misuse_scalar_delete_of_array()
{
    Counted *p = new Counted[10];
    escape(p);
    death_expect_line("free of invalid pointer", p);
    delete p;
}

void misuse_double_delete()
{
    int *p = new int(1);
    escape(p);
    delete p;
    death_expect_line("double free of", p);
    delete p;
}

#pragma GCC diagnostic pop

// Each runs in a child (death.h): it must die of SIGABRT with stderr
// exactly the line it announced.
const death_case misuses[] = {
#define MISUSE(name) {#name, name, nullptr, nullptr, 0}
    MISUSE(misuse_sized_delete_small),
    MISUSE(misuse_sized_delete_large),
    MISUSE(misuse_sized_delete_array),
    MISUSE(misuse_aligned_sized_delete_small),
    MISUSE(misuse_aligned_delete_small),
    MISUSE(misuse_aligned_delete_large),
    MISUSE(misuse_aligned_sized_delete_large),
    MISUSE(misuse_scalar_delete_of_array),
    MISUSE(misuse_double_delete),
#undef MISUSE
};

struct Part {
    const char *name;
    void (*run)();
};

const Part parts[] = {
    {"operators", part_operators}, {"forms", part_forms}, {"huge", part_huge},
    {"handler", part_handler},     {"oom", part_oom},     {"oom_handler", part_oom_handler},
};

} // namespace

int main(int argc, char **argv)
{
    CHECKF(argc == 2, "usage: %s PART (--list lists them)", argv[0]);
    for (const Part &p : parts) {
        if (std::strcmp(argv[1], "--list") == 0) {
            std::printf("%s\n", p.name);
        } else if (std::strcmp(argv[1], p.name) == 0) {
            p.run();
            return 0;
        }
    }
    return death_main(argc, argv, misuses, sizeof misuses / sizeof misuses[0]);
}
