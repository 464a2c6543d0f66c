/* Misuse reports and raw output. Nothing here may allocate: these run while
 * the heap may be corrupt, and before libc is ready. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

int ma_report_fd = 2;

void ma_report_keep_stderr(void)
{
    int fd = fcntl(2, F_DUPFD_CLOEXEC, 3);
    if (fd >= 0)
        ma_report_fd = fd;
}

void ma_write_str(int fd, const char *s)
{
    int saved = errno;
    size_t len = strlen(s);
    while (len > 0) {
        ssize_t n = write(fd, s, len);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            break;
        }
        s += n;
        len -= (size_t)n;
    }
    errno = saved;
}

size_t ma_format_u64(char *buf, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = 0;
    return n;
}

size_t ma_format_hex(char *buf, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = digits[v & 15];
        v >>= 4;
    } while (v);
    buf[0] = '0';
    buf[1] = 'x';
    for (size_t i = 0; i < n; i++)
        buf[2 + i] = tmp[n - 1 - i];
    buf[2 + n] = 0;
    return 2 + n;
}

/* bytes in tenths of 2^shift, rounded half up, from the quotient and the
 * remainder (bytes * 10 would overflow in the EiB range). */
static uint64_t tenths_of(uint64_t bytes, unsigned shift)
{
    uint64_t rest = bytes & (((uint64_t)1 << shift) - 1);
    return (bytes >> shift) * 10 + ((rest * 10 + ((uint64_t)1 << (shift - 1))) >> shift);
}

size_t ma_format_size(char *buf, uint64_t bytes)
{
    static const char units[][4] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (bytes < 1024) {
        size_t n = ma_format_u64(buf, bytes);
        memcpy(buf + n, " B", 3);
        return n + 2;
    }
    unsigned k = 0; /* the unit: 2^(10 (k + 1)) */
    while (k + 1 < sizeof units / sizeof units[0] && tenths_of(bytes, 10 * (k + 1)) >= 10240)
        k++;
    uint64_t tenths = tenths_of(bytes, 10 * (k + 1));
    size_t n = ma_format_u64(buf, tenths / 10);
    buf[n++] = '.';
    buf[n++] = (char)('0' + tenths % 10);
    buf[n++] = ' ';
    memcpy(buf + n, units[k], 4);
    return n + 3;
}

/* One line, "mapalloc: <what> <address>", then SIGABRT. */
void ma_fatal(const char *what, const void *addr)
{
    char line[160];
    size_t n = 0;
    const char *head = "mapalloc: ";
    size_t hl = strlen(head), wl = strlen(what);
    if (wl > 100)
        wl = 100;
    memcpy(line, head, hl), n = hl;
    memcpy(line + n, what, wl), n += wl;
    line[n++] = ' ';
    n += ma_format_hex(line + n, (uint64_t)(uintptr_t)addr);
    line[n++] = '\n';
    line[n] = 0;
    ma_write_str(2, line);
    abort();
}
