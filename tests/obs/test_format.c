/* Unit test of the sizes that the text statistics print (ma_format_size,
 * src/error.c): exact bytes below 1 KiB, then one decimal and a binary
 * unit, rounded to the nearest tenth, half up, with the unit chosen after
 * rounding. */
#include "../check.h"
#include "internal.h"

#include <stdint.h>
#include <string.h>

#define KiB ((uint64_t)1 << 10)
#define MiB ((uint64_t)1 << 20)
#define GiB ((uint64_t)1 << 30)
#define TiB ((uint64_t)1 << 40)
#define PiB ((uint64_t)1 << 50)
#define EiB ((uint64_t)1 << 60)

static const struct {
    uint64_t bytes;
    const char *text;
} cases[] = {
    {0, "0 B"},
    {1, "1 B"},
    {999, "999 B"},
    {1023, "1023 B"},
    {KiB, "1.0 KiB"},
    {1075, "1.0 KiB"},          /* 1.0498 */
    {1076, "1.1 KiB"},          /* 1.0508 */
    {1279, "1.2 KiB"},          /* 1.2490 */
    {1280, "1.3 KiB"},          /* 1.25 exactly: half up */
    {1536, "1.5 KiB"},
    {10 * KiB, "10.0 KiB"},
    {64 * KiB, "64.0 KiB"},
    {1048524, "1023.9 KiB"},    /* 1023.949 */
    {1048525, "1.0 MiB"},       /* 1023.950: 1024.0 KiB, so MiB */
    {MiB - 1, "1.0 MiB"},
    {MiB, "1.0 MiB"},
    {13002342, "12.4 MiB"},     /* 12.39999 */
    {13002343, "12.4 MiB"},
    {12 * MiB + 256 * KiB - 1, "12.2 MiB"},
    {12 * MiB + 256 * KiB, "12.3 MiB"}, /* 12.25 exactly: half up */
    {256 * MiB, "256.0 MiB"},
    {GiB - 1, "1.0 GiB"},
    {GiB, "1.0 GiB"},
    {5 * GiB + GiB / 2, "5.5 GiB"},
    {TiB, "1.0 TiB"},
    {PiB - 1, "1.0 PiB"},
    {3 * PiB, "3.0 PiB"},
    {EiB, "1.0 EiB"},
    {UINT64_MAX, "16.0 EiB"},
};

int main(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[MA_SIZE_TEXT + 8];
        memset(buf, 'x', sizeof buf);
        size_t len = ma_format_size(buf, cases[i].bytes);
        CHECKF(strcmp(buf, cases[i].text) == 0, "%llu bytes: \"%s\", expected \"%s\"",
               (unsigned long long)cases[i].bytes, buf, cases[i].text);
        CHECKF(len == strlen(buf) && len < MA_SIZE_TEXT, "%llu bytes: length %zu for \"%s\"",
               (unsigned long long)cases[i].bytes, len, buf);
    }
    /* Below 1024 of its unit, and never smaller than the text of a
     * smaller size. */
    double last = 0;
    for (uint64_t b = 1000; b < 3 * MiB; b += 997) {
        char buf[MA_SIZE_TEXT];
        ma_format_size(buf, b);
        char *unit;
        double v = strtod(buf, &unit);
        CHECKF(v < 1024.0, "%llu bytes: \"%s\"", (unsigned long long)b, buf);
        double scaled = strcmp(unit, " B") == 0 ? v : strcmp(unit, " KiB") == 0 ? v * 1024 : v * 1048576;
        CHECKF(strcmp(unit, " B") == 0 || strcmp(unit, " KiB") == 0 || strcmp(unit, " MiB") == 0,
               "%llu bytes: \"%s\"", (unsigned long long)b, buf);
        CHECKF(scaled >= last, "%llu bytes: \"%s\" after a larger text", (unsigned long long)b, buf);
        last = scaled;
    }
    printf("format: %zu sizes ok\n", sizeof cases / sizeof cases[0]);
    return 0;
}
