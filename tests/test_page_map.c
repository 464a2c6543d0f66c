/* The page map's reach (src/region.h): the whole 47-bit address space
 * when there is room for its 16 GiB reservation, and a shorter table, with
 * every region below its end, when RLIMIT_AS leaves less: small blocks must
 * still be served, not refused.
 *
 *   full     no limit: 2^31 entries
 *   limited  1 GiB of address space left: 2^26 entries, blocks below 4 TiB
 *   tight    200 MiB left: 2^22 entries, blocks below 256 GiB
 *
 * The limit is set before the first allocation of the process, which makes
 * the table. Not under AddressSanitizer, whose shadow needs the address
 * space that the limit takes away. */
#include "check.h"
#include "mapalloc.h"
#include "region.h"
#include "sys.h"

#include <stdint.h>
#include <string.h>
#include <sys/resource.h>

#define MiB ((size_t)1 << 20)
#define BLOCK 256

static void limit_address_space(size_t room)
{
    long kb = wl_proc_field("/proc/self/status", "VmSize");
    CHECK(kb > 0);
    struct rlimit rl = {(rlim_t)kb * 1024 + room, (rlim_t)kb * 1024 + room};
    CHECKF(setrlimit(RLIMIT_AS, &rl) == 0, "setrlimit RLIMIT_AS");
}

/* bytes of small blocks, in several regions: each served below top,
 * written and read back, then freed. */
static void serve_below(size_t bytes, uintptr_t top)
{
    size_t n = bytes / BLOCK;
    unsigned char **blocks = mapalloc_malloc(n * sizeof *blocks);
    CHECK(blocks != NULL);
    for (size_t i = 0; i < n; i++) {
        blocks[i] = mapalloc_malloc(BLOCK);
        CHECKF(blocks[i] != NULL, "block %zu of %zu refused", i, n);
        CHECKF((uintptr_t)blocks[i] + BLOCK <= top, "block %p above the table's end %#lx",
               (void *)blocks[i], (unsigned long)top);
        memset(blocks[i], (int)(i & 0xff), BLOCK);
    }
    for (size_t i = 0; i < n; i++) {
        CHECKF(blocks[i][0] == (unsigned char)i && blocks[i][BLOCK - 1] == (unsigned char)i,
               "block %zu written over", i);
        mapalloc_free(blocks[i]);
    }
    mapalloc_free(blocks);
}

static void expect(unsigned bits, size_t room, size_t bytes)
{
    if (room != 0)
        limit_address_space(room);
    void *first = mapalloc_malloc(16);
    CHECK(first != NULL);
    size_t slots = (size_t)1 << (bits - MA_SLICE_SHIFT);
    CHECKF(ma_page_map[-1] == slots, "the table has %lu entries, not %zu (%u bits)",
           (unsigned long)ma_page_map[-1], slots, bits);
    serve_below(bytes, (uintptr_t)1 << bits);
    mapalloc_free(first);
}

int main(int argc, char **argv)
{
    if (TEST_ASAN)
        return TEST_SKIP;
    const char *part = argc > 1 ? argv[1] : "full";
    if (strcmp(part, "full") == 0)
        expect(MA_ADDRESS_BITS, 0, 64 * MiB);
    else if (strcmp(part, "limited") == 0)
        expect(42, 1024 * MiB, 64 * MiB);
    else if (strcmp(part, "tight") == 0)
        expect(38, 200 * MiB, 40 * MiB);
    else
        CHECKF(0, "unknown part %s", part);
    printf("page_map %s: ok\n", part);
    return 0;
}
