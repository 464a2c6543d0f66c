// A C++ program for the preload tests: operator new and delete (plain,
// sized, aligned, arrays), the standard containers, strings, shared_ptr,
// exceptions and threads. Its output depends only on what it computes, so it
// must be the same under any malloc.
#include "rng.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

std::string word(std::uint64_t &x)
{
    std::string w;
    std::size_t n = 1 + wl_rand(&x) % 12;
    for (std::size_t i = 0; i < n; i++)
        w += static_cast<char>('a' + wl_rand(&x) % 6);
    return w;
}

struct alignas(64) Line {
    unsigned char bytes[64];
};

struct alignas(4096) Page {
    unsigned char bytes[4096];
};

// Over-aligned new and delete, arrays, nothrow.
int check_aligned_new()
{
    int bad = 0;
    std::vector<std::unique_ptr<Line>> lines;
    for (int i = 0; i < 1000; i++) {
        lines.emplace_back(new Line());
        if (reinterpret_cast<std::uintptr_t>(lines.back().get()) % 64 != 0)
            bad++;
    }
    std::unique_ptr<Page[]> pages(new Page[8]);
    if (reinterpret_cast<std::uintptr_t>(pages.get()) % 4096 != 0)
        bad++;
    pages[7].bytes[4095] = 1;
    void *raw = ::operator new(1000, std::align_val_t(1 << 16));
    if (reinterpret_cast<std::uintptr_t>(raw) % (1 << 16) != 0)
        bad++;
    ::operator delete(raw, std::align_val_t(1 << 16));
    int *n = new (std::nothrow) int[100]();
    for (int i = 0; i < 100; i++)
        bad += n[i] != 0;
    delete[] n;
    return bad;
}

// Word counts in parallel, merged under a mutex.
std::map<std::string, long> count_words(int threads, int words_each)
{
    std::map<std::string, long> total;
    std::mutex mu;
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; t++) {
        pool.emplace_back([&, t] {
            std::uint64_t x = wl_seed(1, static_cast<std::uint64_t>(t));
            std::unordered_map<std::string, long> local;
            std::vector<std::shared_ptr<std::string>> keep;
            for (int i = 0; i < words_each; i++) {
                std::string w = word(x);
                local[w]++;
                if (i % 7 == 0)
                    keep.push_back(std::make_shared<std::string>(w + w));
            }
            std::lock_guard<std::mutex> lock(mu);
            for (const auto &kv : local)
                total[kv.first] += kv.second;
            total["#kept"] += static_cast<long>(keep.size());
        });
    }
    for (auto &th : pool)
        th.join();
    return total;
}

long exceptions(int n)
{
    long caught = 0;
    for (int i = 0; i < n; i++) {
        try {
            if (i % 3 == 0)
                throw std::runtime_error(std::string(static_cast<std::size_t>(i % 200), 'x'));
            std::vector<int> v(static_cast<std::size_t>(i % 50));
            (void)v.at(static_cast<std::size_t>(i % 60));
        } catch (const std::exception &e) {
            caught += static_cast<long>(std::string(e.what()).size() % 7) + 1;
        }
    }
    return caught;
}

} // namespace

int main()
{
    int bad = check_aligned_new();

    auto counts = count_words(4, 60000);
    std::vector<std::pair<long, std::string>> by_count;
    for (const auto &kv : counts)
        by_count.emplace_back(kv.second, kv.first);
    std::sort(by_count.begin(), by_count.end(),
              [](const auto &a, const auto &b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
    std::cout << "distinct words " << counts.size() << "\n";
    for (std::size_t i = 0; i < 20 && i < by_count.size(); i++)
        std::cout << by_count[i].second << " " << by_count[i].first << "\n";

    std::ostringstream big;
    for (int i = 0; i < 100000; i++)
        big << i << ',';
    std::string s = big.str();
    std::cout << "string length " << s.size() << "\n";

    std::vector<std::vector<int>> grid(500);
    long sum = 0;
    for (std::size_t i = 0; i < grid.size(); i++) {
        grid[i].resize(i * 10);
        for (std::size_t j = 0; j < grid[i].size(); j++)
            grid[i][j] = static_cast<int>(i ^ j);
        grid[i].shrink_to_fit();
        for (int v : grid[i])
            sum += v;
    }
    std::cout << "grid sum " << sum << "\n";
    std::cout << "exceptions " << exceptions(3000) << "\n";
    std::cout << "aligned new " << (bad == 0 ? "ok" : "BAD") << "\n";
    return bad == 0 ? 0 : 1;
}
