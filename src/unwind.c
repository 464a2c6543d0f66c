/* Stacks and symbols for the heap profiler: see unwind.h.
 *
 * A small DWARF call-frame interpreter for x86-64, as the compiler's
 * unwinder does it but without its locks and caches: for each frame,
 * _dl_find_object gives the object of the return address and its
 * .eh_frame_hdr, a binary search of that table gives the FDE, and running
 * the CIE's and FDE's instructions up to the address gives the rule for
 * the canonical frame address (CFA) and for each saved register. The
 * caller's registers are then read from the stack, each read checked
 * against the bounds of the stack's mapping. A signal frame is recognised
 * by its return address (the rt_sigreturn trampoline, as libgcc does) and
 * crossed through the ucontext the kernel left on the stack. Code with no
 * frame information (generated code) is crossed by its frame pointer when
 * it keeps one; anything else ends the stack. */
#include "unwind.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

/* ---- the mapping that holds an address, from /proc/self/maps ---- */

static uintptr_t parse_hex(const char **s, const char *end)
{
    uintptr_t v = 0;
    for (; *s < end; (*s)++) {
        char c = **s;
        unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                                            : 16u;
        if (d == 16)
            break;
        v = v * 16 + d;
    }
    return v;
}

/* "lo-hi rwxp ...": true when the line's mapping is readable and holds addr. */
static bool line_holds(const char *s, const char *end, uintptr_t addr, uintptr_t *lo, uintptr_t *hi)
{
    uintptr_t a = parse_hex(&s, end);
    if (s >= end || *s++ != '-')
        return false;
    uintptr_t b = parse_hex(&s, end);
    if (s + 1 >= end || *s != ' ' || s[1] != 'r')
        return false;
    if (addr < a || addr >= b)
        return false;
    *lo = a;
    *hi = b;
    return true;
}

bool ma_mapping_of(uintptr_t addr, uintptr_t *lo, uintptr_t *hi)
{
    int saved = errno;
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        errno = saved;
        return false;
    }
    char buf[1024];
    size_t have = 0;
    bool found = false, rest_of_long_line = false;
    while (!found) {
        ssize_t n = read(fd, buf + have, sizeof buf - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        have += (size_t)n;
        size_t start = 0;
        char *nl;
        while (!found && (nl = memchr(buf + start, '\n', have - start)) != NULL) {
            if (!rest_of_long_line)
                found = line_holds(buf + start, nl, addr, lo, hi);
            rest_of_long_line = false;
            start = (size_t)(nl - buf) + 1;
        }
        memmove(buf, buf + start, have - start);
        have -= start;
        if (have == sizeof buf && !found) { /* a long path: its start has the fields */
            found = line_holds(buf, buf + have, addr, lo, hi);
            have = 0;
            rest_of_long_line = true;
        }
    }
    close(fd);
    errno = saved;
    return found;
}

#if defined(__x86_64__)

/* ---- registers and safe reads ---- */

enum { REG_COUNT = 17, R_RBP = 6, R_RSP = 7, R_RA = 16 };

struct frame {
    uintptr_t r[REG_COUNT]; /* DWARF numbering: rax rdx rcx rbx rsi rdi rbp rsp r8-r15, rip */
    uint32_t known;         /* bit i: r[i] is known */
    bool exact;             /* r[R_RA] is the address of the next instruction to run,
                             * not a return address (the first frame, an interrupted one) */
};

/* The stack mapping being read: every read of the stack falls inside it. */
struct bounds {
    uintptr_t lo, hi;
};

/* The thread's stack mapping, found once per thread (and again when the
 * stack pointer is outside it: a signal stack, a grown main stack). */
static MA_THREAD_LOCAL struct bounds thread_stack;

static bool bounds_for(struct bounds *b, uintptr_t sp)
{
    if (sp >= b->lo && sp < b->hi)
        return true;
    if (sp >= thread_stack.lo && sp < thread_stack.hi) {
        *b = thread_stack;
        return true;
    }
    uintptr_t lo, hi;
    if (!ma_mapping_of(sp, &lo, &hi))
        return false;
    b->lo = lo;
    b->hi = hi;
    thread_stack = *b;
    return true;
}

static bool read_word(const struct bounds *b, uintptr_t addr, uintptr_t *out)
{
    if (addr < b->lo || addr > b->hi - sizeof(uintptr_t) || (addr & 7) != 0)
        return false;
    *out = *(const uintptr_t *)addr;
    return true;
}

/* ---- reading DWARF data inside one object ---- */

struct reader {
    const uint8_t *p, *end; /* end: the object's end; nothing past it is read */
    bool ok;
};

static uint8_t rd_u8(struct reader *r)
{
    if (r->p >= r->end) {
        r->ok = false;
        return 0;
    }
    return *r->p++;
}

static uint64_t rd_fixed(struct reader *r, unsigned n)
{
    if ((size_t)(r->end - r->p) < n) {
        r->ok = false;
        return 0;
    }
    uint64_t v = 0;
    memcpy(&v, r->p, n); /* little-endian */
    r->p += n;
    return v;
}

static uint64_t rd_uleb(struct reader *r)
{
    uint64_t v = 0;
    for (unsigned shift = 0; r->ok; shift += 7) {
        uint8_t b = rd_u8(r);
        if (shift < 64)
            v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            break;
    }
    return v;
}

static int64_t rd_sleb(struct reader *r)
{
    uint64_t v = 0;
    unsigned shift = 0;
    uint8_t b;
    do {
        b = rd_u8(r);
        if (shift < 64)
            v |= (uint64_t)(b & 0x7f) << shift;
        shift += 7;
    } while ((b & 0x80) && r->ok);
    if (shift < 64 && (b & 0x40))
        v |= ~(uint64_t)0 << shift;
    return (int64_t)v;
}

enum {
    PE_OMIT = 0xff, PE_ABSPTR = 0x00, PE_ULEB = 0x01, PE_UDATA2 = 0x02, PE_UDATA4 = 0x03,
    PE_UDATA8 = 0x04, PE_SLEB = 0x09, PE_SDATA2 = 0x0a, PE_SDATA4 = 0x0b, PE_SDATA8 = 0x0c,
    PE_PCREL = 0x10, PE_DATAREL = 0x30, PE_INDIRECT = 0x80,
};

/* A pointer in encoding enc (DW_EH_PE_*); datarel: the .eh_frame_hdr. */
static uintptr_t rd_encoded(struct reader *r, uint8_t enc, uintptr_t datarel)
{
    const uint8_t *at = r->p;
    uintptr_t v;
    switch (enc & 0x0f) {
    case PE_ABSPTR: v = (uintptr_t)rd_fixed(r, 8); break;
    case PE_ULEB: v = (uintptr_t)rd_uleb(r); break;
    case PE_UDATA2: v = (uintptr_t)rd_fixed(r, 2); break;
    case PE_UDATA4: v = (uintptr_t)rd_fixed(r, 4); break;
    case PE_UDATA8: v = (uintptr_t)rd_fixed(r, 8); break;
    case PE_SLEB: v = (uintptr_t)rd_sleb(r); break;
    case PE_SDATA2: v = (uintptr_t)(int16_t)rd_fixed(r, 2); break;
    case PE_SDATA4: v = (uintptr_t)(int32_t)rd_fixed(r, 4); break;
    case PE_SDATA8: v = (uintptr_t)rd_fixed(r, 8); break;
    default: r->ok = false; return 0;
    }
    switch (enc & 0x70) {
    case 0: break;
    case PE_PCREL: v += (uintptr_t)at; break;
    case PE_DATAREL: v += datarel; break;
    default: r->ok = false; return 0;
    }
    if (enc & PE_INDIRECT) /* only in personality pointers, which are skipped */
        r->ok = false;
    return v;
}

/* ---- finding the FDE of an address ---- */

struct fde {
    const uint8_t *insns, *insns_end;     /* the FDE's instructions */
    const uint8_t *cie_insns, *cie_end;   /* the CIE's initial instructions */
    uintptr_t pc_begin;
    uint64_t code_align;
    int64_t data_align;
    unsigned ra_reg;
};

/* The length field of a CIE or FDE at r: the entry ends at *end. */
static bool entry_bounds(struct reader *r, const uint8_t **end)
{
    uint64_t len = rd_fixed(r, 4);
    if (len == 0xffffffffu)
        len = rd_fixed(r, 8);
    if (!r->ok || len == 0 || len > (uint64_t)(r->end - r->p))
        return false;
    *end = r->p + len;
    return true;
}

static bool parse_cie(const uint8_t *cie, const uint8_t *obj_end, struct fde *f, uint8_t *fde_enc,
                      bool *has_aug)
{
    struct reader r = {cie, obj_end, true};
    const uint8_t *end;
    if (!entry_bounds(&r, &end) || rd_fixed(&r, 4) != 0)
        return false;
    r.end = end;
    uint8_t version = rd_u8(&r);
    const char *aug = (const char *)r.p;
    while (r.ok && rd_u8(&r) != 0) {
    }
    if (!r.ok || (version != 1 && version != 3) || (aug[0] != 0 && aug[0] != 'z'))
        return false;
    f->code_align = rd_uleb(&r);
    f->data_align = rd_sleb(&r);
    f->ra_reg = version == 1 ? rd_u8(&r) : (unsigned)rd_uleb(&r);
    *fde_enc = PE_ABSPTR;
    *has_aug = aug[0] == 'z';
    if (*has_aug) {
        uint64_t len = rd_uleb(&r);
        const uint8_t *aug_end = r.p + len;
        for (const char *a = aug + 1; *a && r.ok; a++) {
            if (*a == 'R')
                *fde_enc = rd_u8(&r);
            else if (*a == 'L')
                rd_u8(&r);
            else if (*a == 'P')
                rd_encoded(&r, rd_u8(&r) & (uint8_t)~PE_INDIRECT, 0); /* skipped */
            else if (*a != 'S' && *a != 'B')
                return false;
        }
        if (!r.ok || aug_end > end)
            return false;
        r.p = aug_end;
    }
    f->cie_insns = r.p;
    f->cie_end = end;
    return r.ok && f->ra_reg < REG_COUNT;
}

/* The FDE that covers pc in the object described by o. */
static bool find_fde(const struct dl_find_object *o, uintptr_t pc, struct fde *f)
{
    const uint8_t *hdr = o->dlfo_eh_frame;
    const uint8_t *obj_end = (const uint8_t *)o->dlfo_map_end;
    if (hdr == NULL)
        return false;
    struct reader r = {hdr, obj_end, true};
    uint8_t version = rd_u8(&r), frame_enc = rd_u8(&r), count_enc = rd_u8(&r), table_enc = rd_u8(&r);
    rd_encoded(&r, frame_enc, (uintptr_t)hdr);
    uintptr_t count = rd_encoded(&r, count_enc, (uintptr_t)hdr);
    /* The table that linkers write: pairs of 4-byte offsets from the header. */
    if (!r.ok || version != 1 || table_enc != (PE_DATAREL | PE_SDATA4) || count == 0 ||
        count > (uintptr_t)(obj_end - r.p) / 8)
        return false;
    const int32_t *table = (const int32_t *)r.p;
    size_t lo = 0, hi = count;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if ((uintptr_t)hdr + (intptr_t)table[2 * mid] <= pc)
            lo = mid;
        else
            hi = mid;
    }
    if ((uintptr_t)hdr + (intptr_t)table[2 * lo] > pc)
        return false;
    const uint8_t *fde = hdr + table[2 * lo + 1];
    if (fde < (const uint8_t *)o->dlfo_map_start || fde >= obj_end)
        return false;
    r = (struct reader){fde, obj_end, true};
    const uint8_t *end;
    if (!entry_bounds(&r, &end))
        return false;
    const uint8_t *id_at = r.p;
    uint32_t cie_off = (uint32_t)rd_fixed(&r, 4);
    const uint8_t *cie = id_at - cie_off;
    if (cie_off == 0 || cie < (const uint8_t *)o->dlfo_map_start)
        return false;
    uint8_t enc;
    bool has_aug;
    if (!parse_cie(cie, obj_end, f, &enc, &has_aug))
        return false;
    r.end = end;
    f->pc_begin = rd_encoded(&r, enc, (uintptr_t)hdr);
    uintptr_t range = rd_encoded(&r, enc & 0x0f, 0);
    if (has_aug)
        r.p += rd_uleb(&r);
    if (!r.ok || r.p > end || pc < f->pc_begin || pc - f->pc_begin >= range)
        return false;
    f->insns = r.p;
    f->insns_end = end;
    return true;
}

/* ---- running the call frame instructions ---- */

enum rule_kind { RULE_SAME, RULE_UNDEFINED, RULE_OFFSET, RULE_VAL_OFFSET, RULE_REGISTER,
                 RULE_EXPR, RULE_VAL_EXPR };

struct rule {
    const uint8_t *expr;
    int32_t value;           /* offset, register, or the expression's length */
    uint8_t kind;
};

struct cfa_state {
    struct rule reg[REG_COUNT];
    unsigned cfa_reg;
    int64_t cfa_offset;
    const uint8_t *cfa_expr; /* non-NULL: the CFA is this expression's value */
    int64_t cfa_expr_len;
};

#define STATE_STACK 4 /* what compilers emit is one or two deep */

static bool set_rule(struct cfa_state *s, uint64_t reg, uint8_t kind, int64_t value, const uint8_t *expr)
{
    if (reg < REG_COUNT) /* other registers (vector ones) do not matter here */
        s->reg[reg] = (struct rule){expr, (int32_t)value, kind};
    return true;
}

/* Runs insns until the location passes pc; init: the CIE's rules, for
 * DW_CFA_restore. */
static bool run_cfa(struct cfa_state *s, const struct cfa_state *init, const uint8_t *p,
                    const uint8_t *end, const struct fde *f, uintptr_t pc)
{
    struct cfa_state stack[STATE_STACK];
    unsigned depth = 0;
    uintptr_t loc = f->pc_begin;
    struct reader r = {p, end, true};
    while (r.ok && r.p < r.end) {
        uint8_t op = rd_u8(&r);
        uint8_t low = op & 0x3f;
        uint64_t reg, a;
        switch (op >> 6) {
        case 1: /* DW_CFA_advance_loc */
            loc += low * f->code_align;
            if (loc > pc)
                return true;
            continue;
        case 2: /* DW_CFA_offset */
            set_rule(s, low, RULE_OFFSET, (int64_t)rd_uleb(&r) * f->data_align, NULL);
            continue;
        case 3: /* DW_CFA_restore */
            if (low < REG_COUNT && init)
                s->reg[low] = init->reg[low];
            continue;
        }
        switch (op) {
        case 0x00: break; /* nop */
        case 0x01: loc = rd_encoded(&r, PE_ABSPTR, 0); if (loc > pc) return true; break;
        case 0x02: loc += rd_fixed(&r, 1) * f->code_align; if (loc > pc) return true; break;
        case 0x03: loc += rd_fixed(&r, 2) * f->code_align; if (loc > pc) return true; break;
        case 0x04: loc += rd_fixed(&r, 4) * f->code_align; if (loc > pc) return true; break;
        case 0x05: /* offset_extended */
            reg = rd_uleb(&r);
            set_rule(s, reg, RULE_OFFSET, (int64_t)rd_uleb(&r) * f->data_align, NULL);
            break;
        case 0x06: /* restore_extended */
            reg = rd_uleb(&r);
            if (reg < REG_COUNT && init)
                s->reg[reg] = init->reg[reg];
            break;
        case 0x07: set_rule(s, rd_uleb(&r), RULE_UNDEFINED, 0, NULL); break;
        case 0x08: set_rule(s, rd_uleb(&r), RULE_SAME, 0, NULL); break;
        case 0x09: /* register */
            reg = rd_uleb(&r);
            set_rule(s, reg, RULE_REGISTER, (int64_t)rd_uleb(&r), NULL);
            break;
        case 0x0a: /* remember_state */
            if (depth == STATE_STACK)
                return false;
            stack[depth++] = *s;
            break;
        case 0x0b: /* restore_state */
            if (depth == 0)
                return false;
            *s = stack[--depth];
            break;
        case 0x0c: /* def_cfa */
            s->cfa_reg = (unsigned)rd_uleb(&r);
            s->cfa_offset = (int64_t)rd_uleb(&r);
            s->cfa_expr = NULL;
            break;
        case 0x0d: s->cfa_reg = (unsigned)rd_uleb(&r); s->cfa_expr = NULL; break;
        case 0x0e: s->cfa_offset = (int64_t)rd_uleb(&r); break;
        case 0x0f: /* def_cfa_expression */
            a = rd_uleb(&r);
            if (a > (uint64_t)(r.end - r.p))
                return false; /* an expression past its FDE: not read */
            s->cfa_expr = r.p;
            s->cfa_expr_len = (int64_t)a;
            r.p += a;
            break;
        case 0x10: /* expression */
        case 0x16: /* val_expression */
            reg = rd_uleb(&r);
            a = rd_uleb(&r);
            if (a > (uint64_t)(r.end - r.p))
                return false;
            set_rule(s, reg, op == 0x10 ? RULE_EXPR : RULE_VAL_EXPR, (int64_t)a, r.p);
            r.p += a;
            break;
        case 0x11: /* offset_extended_sf */
            reg = rd_uleb(&r);
            set_rule(s, reg, RULE_OFFSET, rd_sleb(&r) * f->data_align, NULL);
            break;
        case 0x12: /* def_cfa_sf */
            s->cfa_reg = (unsigned)rd_uleb(&r);
            s->cfa_offset = rd_sleb(&r) * f->data_align;
            s->cfa_expr = NULL;
            break;
        case 0x13: s->cfa_offset = rd_sleb(&r) * f->data_align; break; /* def_cfa_offset_sf */
        case 0x14: /* val_offset */
            reg = rd_uleb(&r);
            set_rule(s, reg, RULE_VAL_OFFSET, (int64_t)rd_uleb(&r) * f->data_align, NULL);
            break;
        case 0x15: /* val_offset_sf */
            reg = rd_uleb(&r);
            set_rule(s, reg, RULE_VAL_OFFSET, rd_sleb(&r) * f->data_align, NULL);
            break;
        case 0x2e: rd_uleb(&r); break; /* GNU_args_size */
        case 0x2f: /* GNU_negative_offset_extended */
            reg = rd_uleb(&r);
            set_rule(s, reg, RULE_OFFSET, -(int64_t)rd_uleb(&r) * f->data_align, NULL);
            break;
        default:
            return false;
        }
    }
    return r.ok;
}

/* ---- DWARF expressions: the few that frame information uses ---- */

static bool eval_expr(const uint8_t *p, int64_t len, const struct frame *fr, const struct bounds *b,
                      bool push_cfa, uintptr_t cfa, uintptr_t *out)
{
    uintptr_t st[16];
    unsigned n = 0;
    if (push_cfa)
        st[n++] = cfa;
    struct reader r = {p, p + len, true};
#define NEED(k) do { if (n < (k)) return false; } while (0)
#define PUSH(v) do { uintptr_t v_ = (v); if (n == 16) return false; st[n++] = v_; } while (0)
    while (r.ok && r.p < r.end) {
        uint8_t op = rd_u8(&r);
        uintptr_t x;
        if (op >= 0x30 && op <= 0x4f) { /* lit0..31 */
            PUSH(op - 0x30u);
            continue;
        }
        if (op >= 0x70 && op <= 0x8f) { /* breg0..31 */
            unsigned reg = op - 0x70u;
            int64_t off = rd_sleb(&r);
            if (reg >= REG_COUNT || !(fr->known & (1u << reg)))
                return false;
            PUSH(fr->r[reg] + (uintptr_t)off);
            continue;
        }
        switch (op) {
        case 0x06: NEED(1); if (!read_word(b, st[n - 1], &st[n - 1])) return false; break;
        case 0x08: PUSH(rd_fixed(&r, 1)); break;
        case 0x09: PUSH((uintptr_t)(int8_t)rd_fixed(&r, 1)); break;
        case 0x0a: PUSH(rd_fixed(&r, 2)); break;
        case 0x0b: PUSH((uintptr_t)(int16_t)rd_fixed(&r, 2)); break;
        case 0x0c: PUSH(rd_fixed(&r, 4)); break;
        case 0x0d: PUSH((uintptr_t)(int32_t)rd_fixed(&r, 4)); break;
        case 0x0e: case 0x0f: PUSH(rd_fixed(&r, 8)); break;
        case 0x10: PUSH(rd_uleb(&r)); break;
        case 0x11: PUSH((uintptr_t)rd_sleb(&r)); break;
        case 0x12: NEED(1); PUSH(st[n - 1]); break;
        case 0x13: NEED(1); n--; break;
        case 0x14: NEED(2); PUSH(st[n - 2]); break;
        case 0x16: NEED(2); x = st[n - 1]; st[n - 1] = st[n - 2]; st[n - 2] = x; break;
        case 0x23: NEED(1); st[n - 1] += rd_uleb(&r); break;
        case 0x92: { /* bregx */
            uint64_t reg = rd_uleb(&r);
            int64_t off = rd_sleb(&r);
            if (reg >= REG_COUNT || !(fr->known & (1u << reg)))
                return false;
            PUSH(fr->r[reg] + (uintptr_t)off);
            break;
        }
        case 0x96: break;
        case 0x1a: case 0x1c: case 0x1e: case 0x21: case 0x22: case 0x24: case 0x25:
        case 0x29: case 0x2a: case 0x2b: case 0x2c: case 0x2d: case 0x2e: {
            NEED(2);
            uintptr_t b2 = st[--n], a2 = st[n - 1];
            switch (op) {
            case 0x1a: x = a2 & b2; break;
            case 0x1c: x = a2 - b2; break;
            case 0x1e: x = a2 * b2; break;
            case 0x21: x = a2 | b2; break;
            case 0x22: x = a2 + b2; break;
            case 0x24: x = b2 < 64 ? a2 << b2 : 0; break;
            case 0x25: x = b2 < 64 ? a2 >> b2 : 0; break;
            case 0x29: x = a2 == b2; break;
            case 0x2a: x = (intptr_t)a2 >= (intptr_t)b2; break;
            case 0x2b: x = (intptr_t)a2 > (intptr_t)b2; break;
            case 0x2c: x = (intptr_t)a2 <= (intptr_t)b2; break;
            case 0x2d: x = (intptr_t)a2 < (intptr_t)b2; break;
            default: x = a2 != b2; break;
            }
            st[n - 1] = x;
            break;
        }
        default:
            return false;
        }
    }
#undef NEED
#undef PUSH
    if (!r.ok || n == 0)
        return false;
    *out = st[n - 1];
    return true;
}

/* ---- one step: the caller's frame ---- */

/* mov $15, %rax; syscall: the rt_sigreturn trampoline that a signal
 * handler returns into, as glibc writes it (__restore_rt). */
static bool is_sigreturn(const struct dl_find_object *o, uintptr_t pc)
{
    static const uint8_t code[9] = {0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05};
    if (pc < (uintptr_t)o->dlfo_map_start || pc + sizeof code > (uintptr_t)o->dlfo_map_end)
        return false;
    return memcmp((const void *)pc, code, sizeof code) == 0;
}

/* The frame the signal interrupted, from the ucontext at the stack pointer. */
static bool step_signal(struct frame *f, struct bounds *b)
{
    static const uint8_t greg[REG_COUNT] = {REG_RAX, REG_RDX, REG_RCX, REG_RBX, REG_RSI, REG_RDI,
                                            REG_RBP, REG_RSP, REG_R8,  REG_R9,  REG_R10, REG_R11,
                                            REG_R12, REG_R13, REG_R14, REG_R15, REG_RIP};
    uintptr_t uc = f->r[R_RSP];
    struct frame next = {.known = 0, .exact = true};
    for (unsigned i = 0; i < REG_COUNT; i++) {
        uintptr_t at = uc + offsetof(ucontext_t, uc_mcontext.gregs) + greg[i] * sizeof(greg_t);
        if (!read_word(b, at, &next.r[i]))
            return false;
        next.known |= 1u << i;
    }
    *f = next;
    return bounds_for(b, f->r[R_RSP]);
}

/* Frame-pointer code without frame information: rbp points at the saved
 * rbp, the return address above it. */
static bool step_frame_pointer(struct frame *f, const struct bounds *b)
{
    uintptr_t fp = f->r[R_RBP];
    if (!(f->known & (1u << R_RBP)) || fp < f->r[R_RSP])
        return false;
    uintptr_t saved, ra;
    if (!read_word(b, fp, &saved) || !read_word(b, fp + 8, &ra))
        return false;
    f->r[R_RBP] = saved;
    f->r[R_RSP] = fp + 16;
    f->r[R_RA] = ra;
    f->known = (1u << R_RBP) | (1u << R_RSP) | (1u << R_RA);
    f->exact = false;
    return true;
}

/* ---- the rules of addresses already seen ----
 *
 * Running an FDE's instructions costs a few thousand instructions per
 * frame; a profile's stacks pass the same few hundred return addresses
 * again and again. Their rules, when they are the plain kind that compiled
 * code has (the CFA a register plus an offset, the return address and the
 * callee-saved registers at offsets from it, every other register
 * unchanged), are kept by address in a table of fixed size, which every
 * thread reads and writes without a lock: each entry is a sequence lock
 * (odd while written; a reader that sees it change takes the long way, a
 * writer that finds it taken does not wait). An object unloaded and another
 * mapped at the same address could meet a stale entry: its reads are
 * checked as any other, so a wrong frame at worst. */

#define RULE_SLOTS 1024                     /* a power of two */
#define RULE_SAVED_MAX 8                    /* registers kept at offsets, per entry */

struct compact_rule {
    uintptr_t pc;
    int32_t cfa_offset;
    uint8_t cfa_reg;
    uint32_t saved;                         /* bit i: register i is at an offset */
    int8_t offset[RULE_SAVED_MAX];          /* in words from the CFA, in register order */
};

struct rule_slot {
    _Atomic uint64_t seq;
    _Atomic uint64_t word[3];
};

static struct rule_slot rule_slots[RULE_SLOTS];

static struct rule_slot *rule_slot_of(uintptr_t pc)
{
    return &rule_slots[((uint64_t)pc * 0x9e3779b97f4a7c15ull) >> (64 - 10)];
}
_Static_assert(RULE_SLOTS == 1 << 10, "the slot index takes 10 bits");

static void rule_pack(const struct compact_rule *c, uint64_t w[3])
{
    w[0] = c->pc;
    w[1] = (uint64_t)(uint32_t)c->cfa_offset | (uint64_t)c->cfa_reg << 32 | (uint64_t)c->saved << 40;
    memcpy(&w[2], c->offset, sizeof w[2]);
}

static void rule_unpack(const uint64_t w[3], struct compact_rule *c)
{
    c->pc = (uintptr_t)w[0];
    c->cfa_offset = (int32_t)(uint32_t)w[1];
    c->cfa_reg = (uint8_t)(w[1] >> 32);
    c->saved = (uint32_t)(w[1] >> 40);
    memcpy(c->offset, &w[2], sizeof w[2]);
}
_Static_assert(REG_COUNT <= 24 && sizeof(int8_t[RULE_SAVED_MAX]) == sizeof(uint64_t),
               "a rule packs into three words");

static bool rule_find(uintptr_t pc, struct compact_rule *out)
{
    struct rule_slot *slot = rule_slot_of(pc);
    uint64_t seq = atomic_load_explicit(&slot->seq, memory_order_acquire);
    if (seq & 1)
        return false;
    uint64_t w[3];
    for (int i = 0; i < 3; i++)
        w[i] = atomic_load_explicit(&slot->word[i], memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&slot->seq, memory_order_relaxed) != seq || w[0] != pc || seq == 0)
        return false;
    rule_unpack(w, out);
    return true;
}

static void rule_store(const struct compact_rule *c)
{
    struct rule_slot *slot = rule_slot_of(c->pc);
    uint64_t seq = atomic_load_explicit(&slot->seq, memory_order_relaxed);
    if ((seq & 1) || !atomic_compare_exchange_strong_explicit(&slot->seq, &seq, seq + 1,
                                                              memory_order_acquire, memory_order_relaxed))
        return;
    uint64_t w[3];
    rule_pack(c, w);
    for (int i = 0; i < 3; i++)
        atomic_store_explicit(&slot->word[i], w[i], memory_order_relaxed);
    atomic_store_explicit(&slot->seq, seq + 2, memory_order_release);
}

/* cfa_reg of a rule that ends the stack: the outermost frame (_start,
 * a thread's start), whose return address is undefined. */
#define RULE_END REG_COUNT

/* The rules of state s as a compact rule, if they are of the plain kind. */
static bool rule_compact(const struct cfa_state *s, const struct fde *fde, uintptr_t pc,
                         struct compact_rule *out)
{
    if (fde->ra_reg == R_RA && s->reg[R_RA].kind == RULE_UNDEFINED) {
        *out = (struct compact_rule){.pc = pc, .cfa_reg = RULE_END};
        return true;
    }
    if (s->cfa_expr || s->cfa_reg >= REG_COUNT || fde->ra_reg != R_RA)
        return false;
    *out = (struct compact_rule){.pc = pc, .cfa_offset = (int32_t)s->cfa_offset,
                                 .cfa_reg = (uint8_t)s->cfa_reg};
    if (out->cfa_offset != s->cfa_offset)
        return false;
    unsigned n = 0;
    for (unsigned i = 0; i < REG_COUNT; i++) {
        const struct rule *r = &s->reg[i];
        if (r->kind == RULE_SAME && i != R_RA)
            continue;
        if (r->kind != RULE_OFFSET || r->value % 8 != 0 || r->value / 8 < -128 || r->value / 8 > 127 ||
            n == RULE_SAVED_MAX)
            return false;
        out->saved |= 1u << i;
        out->offset[n++] = (int8_t)(r->value / 8);
    }
    return (out->saved >> R_RA) & 1u;
}

/* One step by a compact rule: what step_dwarf does with the same rules,
 * in place (the saved registers are read at offsets from the CFA, which is
 * computed first). */
static bool step_compact(struct frame *f, const struct bounds *b, const struct compact_rule *c)
{
    if (c->cfa_reg == RULE_END || !(f->known & (1u << c->cfa_reg)))
        return false;
    uintptr_t cfa = f->r[c->cfa_reg] + (uintptr_t)(intptr_t)c->cfa_offset;
    uint32_t known = f->known;
    unsigned n = 0;
    for (uint32_t rest = c->saved; rest != 0; rest &= rest - 1) {
        unsigned i = (unsigned)__builtin_ctz(rest);
        uintptr_t at = cfa + (uintptr_t)((intptr_t)c->offset[n++] * 8);
        if (read_word(b, at, &f->r[i]))
            known |= 1u << i;
        else
            known &= ~(1u << i);
    }
    f->r[R_RSP] = cfa;
    f->known = known | 1u << R_RSP;
    f->exact = false;
    return true;
}

/* ---- one step by the frame information ---- */

static bool step_dwarf(struct frame *f, const struct bounds *b, const struct fde *fde, uintptr_t pc)
{
    struct cfa_state init = {.cfa_reg = R_RSP, .cfa_offset = 8};
    for (unsigned i = 0; i < REG_COUNT; i++)
        init.reg[i].kind = RULE_SAME;
    if (!run_cfa(&init, NULL, fde->cie_insns, fde->cie_end, fde, (uintptr_t)-1))
        return false;
    struct cfa_state s = init;
    if (!run_cfa(&s, &init, fde->insns, fde->insns_end, fde, pc))
        return false;
    struct compact_rule c;
    if (rule_compact(&s, fde, pc, &c))
        rule_store(&c); /* the next time, step_compact: test_unwind compares the two */
    uintptr_t cfa;
    if (s.cfa_expr) {
        if (!eval_expr(s.cfa_expr, s.cfa_expr_len, f, b, false, 0, &cfa))
            return false;
    } else {
        if (s.cfa_reg >= REG_COUNT || !(f->known & (1u << s.cfa_reg)))
            return false;
        cfa = f->r[s.cfa_reg] + (uintptr_t)s.cfa_offset;
    }
    struct frame next = {.known = 0, .exact = false};
    for (unsigned i = 0; i < REG_COUNT; i++) {
        const struct rule *rule = &s.reg[i];
        uintptr_t v = 0, at;
        bool known = true;
        switch (rule->kind) {
        case RULE_SAME:
            known = i != R_RA && (f->known & (1u << i)) != 0;
            v = f->r[i];
            break;
        case RULE_UNDEFINED: known = false; break;
        case RULE_OFFSET: known = read_word(b, cfa + (uintptr_t)rule->value, &v); break;
        case RULE_VAL_OFFSET: v = cfa + (uintptr_t)rule->value; break;
        case RULE_REGISTER:
            known = rule->value < REG_COUNT && (f->known & (1u << rule->value)) != 0;
            v = known ? f->r[rule->value] : 0;
            break;
        case RULE_EXPR:
            known = eval_expr(rule->expr, rule->value, f, b, true, cfa, &at) && read_word(b, at, &v);
            break;
        case RULE_VAL_EXPR: known = eval_expr(rule->expr, rule->value, f, b, true, cfa, &v); break;
        }
        if (known) {
            next.r[i] = v;
            next.known |= 1u << i;
        }
    }
    /* The return address goes into rip; the caller's stack pointer is the CFA. */
    if (fde->ra_reg != R_RA) {
        next.r[R_RA] = next.r[fde->ra_reg];
        next.known = (next.known & ~(1u << R_RA)) | (((next.known >> fde->ra_reg) & 1u) << R_RA);
    }
    next.r[R_RSP] = cfa;
    next.known |= 1u << R_RSP;
    *f = next;
    return true;
}

/* The object of the allocator itself, whose frames lead every stack. */
static _Atomic uintptr_t self_lo, self_hi;

static void find_self(void)
{
    struct dl_find_object o;
    if (_dl_find_object((void *)(uintptr_t)&find_self, &o) != 0)
        return;
    /* Linked into the program itself, the allocator's frames cannot be told
     * from the program's by their object: keep them all. */
    const struct link_map *map = o.dlfo_link_map;
    if (map == NULL || map->l_name == NULL || map->l_name[0] == 0)
        return;
    atomic_store_explicit(&self_lo, (uintptr_t)o.dlfo_map_start, memory_order_relaxed);
    atomic_store_explicit(&self_hi, (uintptr_t)o.dlfo_map_end, memory_order_relaxed);
}

static unsigned unwind_from(struct frame *f, uintptr_t *pcs, unsigned max)
{
    static _Atomic int self_known;
    if (!atomic_load_explicit(&self_known, memory_order_acquire)) {
        find_self();
        atomic_store_explicit(&self_known, 1, memory_order_release);
    }
    uintptr_t lo = atomic_load_explicit(&self_lo, memory_order_relaxed);
    uintptr_t hi = atomic_load_explicit(&self_hi, memory_order_relaxed);
    struct bounds b = thread_stack;
    if (!bounds_for(&b, f->r[R_RSP]))
        return 0;
    unsigned n = 0;
    bool leading = true; /* still in the allocator's own frames */
    for (unsigned steps = 0; n < max && steps < max + 32; steps++) {
        uintptr_t pc = f->r[R_RA];
        if (!(f->known & (1u << R_RA)) || pc < 4096)
            break;
        if (leading && !(pc >= lo && pc < hi))
            leading = false;
        if (!leading && steps > 0)
            pcs[n++] = pc;
        uintptr_t sp = f->r[R_RSP];
        uintptr_t lookup = f->exact ? pc : pc - 1;
        struct dl_find_object o;
        struct compact_rule c;
        bool ok;
        if (rule_find(lookup, &c)) {
            ok = step_compact(f, &b, &c);
        } else if (_dl_find_object((void *)lookup, &o) != 0) {
            ok = step_frame_pointer(f, &b);
        } else if (!f->exact && is_sigreturn(&o, pc)) {
            ok = step_signal(f, &b);
            sp = 0; /* the interrupted frame may be on another stack */
        } else {
            struct fde fde;
            ok = find_fde(&o, lookup, &fde) ? step_dwarf(f, &b, &fde, lookup) : step_frame_pointer(f, &b);
        }
        /* Each caller's frame lies above its callee's: anything else is a
         * loop or garbage, and ends the stack. */
        if (!ok || (sp != 0 && f->r[R_RSP] <= sp) || !bounds_for(&b, f->r[R_RSP]))
            break;
    }
    return n;
}

MA_NOINLINE unsigned ma_unwind(uintptr_t *pcs, unsigned max)
{
    struct frame f = {.known = (1u << R_RA) | (1u << R_RSP) | (1u << R_RBP) | (1u << 3) |
                               (0xfu << 12),
                      .exact = true};
    /* One instruction's registers: the address of the lea and the stack
     * pointer there agree with this function's frame information. */
    uintptr_t pc;
    __asm__ volatile("lea 0(%%rip), %0\n\t"
                     "mov %%rsp, %1\n\t"
                     "mov %%rbp, %2\n\t"
                     "mov %%rbx, %3\n\t"
                     "mov %%r12, %4\n\t"
                     "mov %%r13, %5\n\t"
                     "mov %%r14, %6\n\t"
                     "mov %%r15, %7\n\t"
                     : "=&r"(pc), "=m"(f.r[R_RSP]), "=m"(f.r[R_RBP]), "=m"(f.r[3]),
                       "=m"(f.r[12]), "=m"(f.r[13]), "=m"(f.r[14]), "=m"(f.r[15]));
    f.r[R_RA] = pc;
    return unwind_from(&f, pcs, max);
}

#else /* no unwinder for this architecture: empty stacks */

MA_NOINLINE unsigned ma_unwind(uintptr_t *pcs, unsigned max)
{
    (void)pcs;
    (void)max;
    return 0;
}

#endif

/* ---- symbols, from the dynamic symbol tables ---- */

/* A d_ptr of the dynamic section: relocated by the loader in most objects,
 * not in those whose dynamic section is read-only (the vDSO). */
static uintptr_t dyn_ptr(const struct link_map *map, uintptr_t v)
{
    return v < map->l_addr ? v + map->l_addr : v;
}

/* The number of dynamic symbols: DT_HASH says it, DT_GNU_HASH only through
 * its last chain. */
static size_t symbol_count(const struct link_map *map, uintptr_t hash, uintptr_t gnu_hash)
{
    if (hash)
        return ((const uint32_t *)hash)[1];
    if (!gnu_hash)
        return 0;
    const uint32_t *h = (const uint32_t *)gnu_hash;
    uint32_t nbuckets = h[0], symoffset = h[1], bloom = h[2];
    const uint32_t *buckets = (const uint32_t *)(gnu_hash + 16 + (size_t)bloom * sizeof(ElfW(Addr)));
    const uint32_t *chain = buckets + nbuckets;
    uint32_t last = 0;
    for (uint32_t i = 0; i < nbuckets; i++)
        if (buckets[i] > last)
            last = buckets[i];
    if (last < symoffset)
        return symoffset;
    while (!(chain[last - symoffset] & 1))
        last++;
    (void)map;
    return last + 1;
}

void ma_symbolize(uintptr_t pc, struct ma_symbol *out)
{
    out->name = NULL;
    out->object = NULL;
    out->offset = pc;
    struct dl_find_object o;
    if (_dl_find_object((void *)pc, &o) != 0 || o.dlfo_link_map == NULL)
        return;
    const struct link_map *map = o.dlfo_link_map;
    out->object = map->l_name && map->l_name[0] ? map->l_name : "[program]";
    out->offset = pc - map->l_addr;
    uintptr_t symtab = 0, strtab = 0, hash = 0, gnu_hash = 0, strsz = 0;
    for (const ElfW(Dyn) *d = map->l_ld; d && d->d_tag != DT_NULL; d++) {
        switch (d->d_tag) {
        case DT_SYMTAB: symtab = dyn_ptr(map, d->d_un.d_ptr); break;
        case DT_STRTAB: strtab = dyn_ptr(map, d->d_un.d_ptr); break;
        case DT_STRSZ: strsz = d->d_un.d_val; break;
        case DT_HASH: hash = dyn_ptr(map, d->d_un.d_ptr); break;
        case DT_GNU_HASH: gnu_hash = dyn_ptr(map, d->d_un.d_ptr); break;
        }
    }
    if (!symtab || !strtab)
        return;
    size_t count = symbol_count(map, hash, gnu_hash);
    const ElfW(Sym) *best = NULL;
    for (size_t i = 0; i < count; i++) {
        const ElfW(Sym) *s = (const ElfW(Sym) *)symtab + i;
        if (s->st_shndx == SHN_UNDEF || s->st_value == 0 || ELF64_ST_TYPE(s->st_info) != STT_FUNC)
            continue;
        uintptr_t start = map->l_addr + s->st_value;
        if (pc >= start && pc < start + (s->st_size ? s->st_size : 1) && s->st_name < strsz &&
            (best == NULL || s->st_value > best->st_value))
            best = s;
    }
    if (best) {
        out->name = (const char *)strtab + best->st_name;
        out->offset = pc - (map->l_addr + best->st_value);
    }
}
