/*
 * fuzz_keycodec.c -- the order-preserving tuple key codec (engine/core/keycodec.c).
 *
 * LMDB orders keys with memcmp, so every unique check and every scan relies
 * on two properties of the codec, checked here on tuples built from the
 * input bytes:
 *   1. decode(encode(t)) == t, element by element (through udb__tk_decode,
 *      udb__tk_skip and udb__tk_to_msgpack alike);
 *   2. for any two tuples a and b, the sign of memcmp-then-length on their
 *      encodings equals the sign of comparing a and b by value: element by
 *      element, a proper prefix first; across types by type code (nil <
 *      bytes < str < integers < floats < false < true); integers by numeric
 *      value whatever their msgpack signedness; floats numerically, with
 *      -0.0 == 0.0 (one key, as in SQL).  NaN is not a storable float (the
 *      record layer rejects it), so generated NaNs are replaced by +inf.
 * Equal values must give equal bytes (that is what makes a unique index).
 *
 * Input: byte 0 selects the mode.  Modes 0-2 build two tuples from the rest
 * and check both properties; mode 3 hands the rest to the decoder as raw
 * (possibly damaged) key bytes: it must reject or decode without reading out
 * of bounds, skip must agree with decode, and what decodes must survive a
 * trip through msgpack and back.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "keycodec.h"
#include "mpack.h"

#define MAX_ELEMS 5
#define MAX_STR 1100   /* room for strings past LMDB's 511-byte key limit */

typedef struct elem {
    udb_tkind kind;   /* as the decoder reports it: UINT for integers >= 0 */
    int64_t i;
    uint64_t u;
    double f;
    bool b;
    uint8_t s[MAX_STR];
    size_t n;
} elem;

typedef struct tuple {
    size_t n;
    elem e[MAX_ELEMS];
} tuple;

static void gen_elem(elem *e, fuzz_reader *r)
{
    uint8_t c = fuzz_u8(r);
    memset(e, 0, sizeof *e);
    switch (c % 8) {
    case 0:
        e->kind = UDB_TK_NIL;
        break;
    case 1:
    case 2: {
        e->kind = c % 8 == 1 ? UDB_TK_BYTES : UDB_TK_STR;
        uint8_t len = fuzz_u8(r);
        const uint8_t *p;
        if (len & 0x80) {
            /* long: a run of one byte (so two strings share long prefixes)
               of 500-1010 bytes, then a few bytes of the input */
            size_t run = 500 + (size_t)(len & 0x7f) * 4;
            memset(e->s, fuzz_u8(r) & 0x81, run);   /* 0x00, 0x01, 0x80 or 0x81 */
            e->n = run + fuzz_bytes(r, &p, fuzz_u8(r) % 13);
            memcpy(e->s + run, p, e->n - run);
        } else {
            e->n = fuzz_bytes(r, &p, len % 13);
            memcpy(e->s, p, e->n);
        }
        break;
    }
    case 3:
    case 4: {
        /* an integer of 0-8 significant bytes: every length class of the
           encoding is reached.  Case 3 sign-extends it and encodes through
           udb__tk_int, case 4 through udb__tk_uint (so > INT64_MAX too). */
        unsigned w = fuzz_u8(r) % 9;
        uint64_t v = 0;
        for (unsigned k = 0; k < w; k++)
            v = v << 8 | fuzz_u8(r);
        if (c % 8 == 3) {
            if (w && w < 8 && (v >> (8 * w - 1)) & 1)
                v |= UINT64_MAX << (8 * w);
            e->kind = UDB_TK_INT;
            e->i = (int64_t)v;
        } else {
            e->kind = UDB_TK_UINT;
            e->u = v;
        }
        break;
    }
    case 5:
    case 6: {
        e->kind = UDB_TK_FLOAT;
        if (c & 0x80) {
            uint64_t bits = fuzz_u64(r);
            memcpy(&e->f, &bits, sizeof bits);
        } else {
            /* small values collide more: integers, halves, signed zeros */
            int8_t k = (int8_t)fuzz_u8(r);
            e->f = (c & 0x40) ? k / 2.0 : (k == 0 && (c & 0x20) ? -0.0 : (double)k);
        }
        if (isnan(e->f))
            e->f = INFINITY;
        break;
    }
    default:
        e->kind = UDB_TK_BOOL;
        e->b = c & 0x80;
        break;
    }
}

static void gen_tuple(tuple *t, fuzz_reader *r)
{
    t->n = fuzz_u8(r) % (MAX_ELEMS + 1);
    for (size_t i = 0; i < t->n; i++)
        gen_elem(&t->e[i], r);
}

static void encode_elem(udb_buf *b, const elem *e)
{
    switch (e->kind) {
    case UDB_TK_NIL: udb__tk_nil(b); break;
    case UDB_TK_BYTES:
    case UDB_TK_STR: udb__tk_str(b, e->kind, e->s, e->n); break;
    case UDB_TK_INT: udb__tk_int(b, e->i); break;
    case UDB_TK_UINT: udb__tk_uint(b, e->u); break;
    case UDB_TK_FLOAT: udb__tk_float(b, e->f); break;
    case UDB_TK_BOOL: udb__tk_bool(b, e->b); break;
    }
}

/* The same element as msgpack-c would hand it to the engine. */
static msgpack_object as_object(const elem *e)
{
    msgpack_object o;
    memset(&o, 0, sizeof o);
    switch (e->kind) {
    case UDB_TK_NIL: o.type = MSGPACK_OBJECT_NIL; break;
    case UDB_TK_BYTES:
        o.type = MSGPACK_OBJECT_BIN;
        o.via.bin.ptr = (const char *)e->s;
        o.via.bin.size = (uint32_t)e->n;
        break;
    case UDB_TK_STR:
        o.type = MSGPACK_OBJECT_STR;
        o.via.str.ptr = (const char *)e->s;
        o.via.str.size = (uint32_t)e->n;
        break;
    case UDB_TK_INT:
        o.type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
        o.via.i64 = e->i;
        break;
    case UDB_TK_UINT:
        o.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o.via.u64 = e->u;
        break;
    case UDB_TK_FLOAT:
        o.type = MSGPACK_OBJECT_FLOAT64;
        o.via.f64 = e->f;
        break;
    case UDB_TK_BOOL:
        o.type = MSGPACK_OBJECT_BOOLEAN;
        o.via.boolean = e->b;
        break;
    }
    return o;
}

/* ---- value order --------------------------------------------------------- */

static int type_rank(const elem *e)
{
    switch (e->kind) {
    case UDB_TK_NIL: return 0;
    case UDB_TK_BYTES: return 1;
    case UDB_TK_STR: return 2;
    case UDB_TK_INT:
    case UDB_TK_UINT: return 3;
    case UDB_TK_FLOAT: return 4;
    case UDB_TK_BOOL: return e->b ? 6 : 5;
    }
    return -1;
}

static int sign(long long v)
{
    return (v > 0) - (v < 0);
}

static int cmp_elem(const elem *a, const elem *b)
{
    int ra = type_rank(a), rb = type_rank(b);
    if (ra != rb)
        return sign(ra - rb);
    switch (a->kind) {
    case UDB_TK_BYTES:
    case UDB_TK_STR: {
        size_t n = a->n < b->n ? a->n : b->n;
        int c = n ? memcmp(a->s, b->s, n) : 0;
        return c ? sign(c) : sign((long long)a->n - (long long)b->n);
    }
    case UDB_TK_INT:
    case UDB_TK_UINT: {
        bool an = a->kind == UDB_TK_INT && a->i < 0, bn = b->kind == UDB_TK_INT && b->i < 0;
        if (an != bn)
            return an ? -1 : 1;
        if (an)
            return (a->i > b->i) - (a->i < b->i);
        uint64_t au = a->kind == UDB_TK_INT ? (uint64_t)a->i : a->u;
        uint64_t bu = b->kind == UDB_TK_INT ? (uint64_t)b->i : b->u;
        return (au > bu) - (au < bu);
    }
    case UDB_TK_FLOAT:
        return (a->f > b->f) - (a->f < b->f);   /* -0.0 == 0.0 */
    default:
        return 0;
    }
}

static int cmp_tuple(const tuple *a, const tuple *b)
{
    for (size_t i = 0; i < a->n && i < b->n; i++) {
        int c = cmp_elem(&a->e[i], &b->e[i]);
        if (c)
            return c;
    }
    return sign((long long)a->n - (long long)b->n);
}

/* LMDB's default key order. */
static int cmp_bytes(const udb_buf *a, const udb_buf *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    int c = n ? memcmp(a->p, b->p, n) : 0;
    return c ? sign(c) : sign((long long)a->len - (long long)b->len);
}

static void describe(char *out, size_t cap, const tuple *t)
{
    size_t used = 0;
    out[0] = 0;
    for (size_t i = 0; i < t->n && used < cap; i++) {
        const elem *e = &t->e[i];
        int w = 0;
        switch (e->kind) {
        case UDB_TK_NIL: w = snprintf(out + used, cap - used, "nil "); break;
        case UDB_TK_BYTES: w = snprintf(out + used, cap - used, "bin[%zu] ", e->n); break;
        case UDB_TK_STR: w = snprintf(out + used, cap - used, "str[%zu] ", e->n); break;
        case UDB_TK_INT: w = snprintf(out + used, cap - used, "int %lld ", (long long)e->i); break;
        case UDB_TK_UINT:
            w = snprintf(out + used, cap - used, "uint %llu ", (unsigned long long)e->u);
            break;
        case UDB_TK_FLOAT: w = snprintf(out + used, cap - used, "float %a ", e->f); break;
        case UDB_TK_BOOL: w = snprintf(out + used, cap - used, e->b ? "true " : "false "); break;
        }
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

/* ---- round trip ---------------------------------------------------------- */

/* The element as it must decode: non-negative ints as UINT, -0.0 as 0.0. */
static elem normalized(const elem *e)
{
    elem n = *e;
    if (n.kind == UDB_TK_INT && n.i >= 0) {
        n.kind = UDB_TK_UINT;
        n.u = (uint64_t)n.i;
    }
    if (n.kind == UDB_TK_FLOAT && n.f == 0)
        n.f = 0.0;
    return n;
}

static void check_decoded(const elem *want, const udb_telem *got, const udb_buf *scratch)
{
    elem w = normalized(want);
    FUZZ_CHECK(got->kind == w.kind, "decoded kind %d, encoded kind %d", got->kind, w.kind);
    switch (w.kind) {
    case UDB_TK_BYTES:
    case UDB_TK_STR:
        FUZZ_CHECK(got->v.s.n == w.n, "string length %zu decoded as %zu", w.n, got->v.s.n);
        FUZZ_CHECK(w.n == 0 || memcmp(scratch->p + got->v.s.off, w.s, w.n) == 0,
                   "string bytes differ after decoding");
        break;
    case UDB_TK_INT:
        FUZZ_CHECK(got->v.i == w.i, "int %lld decoded as %lld", (long long)w.i,
                   (long long)got->v.i);
        break;
    case UDB_TK_UINT:
        FUZZ_CHECK(got->v.u == w.u, "uint %llu decoded as %llu", (unsigned long long)w.u,
                   (unsigned long long)got->v.u);
        break;
    case UDB_TK_FLOAT:
        FUZZ_CHECK(memcmp(&got->v.f, &w.f, sizeof w.f) == 0, "float %a decoded as %a", w.f,
                   got->v.f);
        break;
    case UDB_TK_BOOL:
        FUZZ_CHECK(got->v.b == w.b, "bool decoded wrong");
        break;
    case UDB_TK_NIL:
        break;
    }
}

/* A decoded element as the elem it stands for. */
static elem from_telem(const udb_telem *t, const udb_buf *scratch)
{
    elem e;
    memset(&e, 0, sizeof e);
    e.kind = t->kind;
    switch (t->kind) {
    case UDB_TK_BYTES:
    case UDB_TK_STR:
        e.n = t->v.s.n > MAX_STR ? MAX_STR : t->v.s.n;
        if (e.n)
            memcpy(e.s, scratch->p + t->v.s.off, e.n);
        break;
    case UDB_TK_INT: e.i = t->v.i; break;
    case UDB_TK_UINT: e.u = t->v.u; break;
    case UDB_TK_FLOAT: e.f = t->v.f; break;
    case UDB_TK_BOOL: e.b = t->v.b; break;
    case UDB_TK_NIL: break;
    }
    return e;
}

/* Two decoded elements stand for the same value (-0.0 == 0.0). */
static bool same_telem(const udb_telem *a, const udb_buf *sa, const udb_telem *b,
                       const udb_buf *sb)
{
    if (a->kind != b->kind)
        return false;
    switch (a->kind) {
    case UDB_TK_BYTES:
    case UDB_TK_STR:
        return a->v.s.n == b->v.s.n &&
               (a->v.s.n == 0 || memcmp(sa->p + a->v.s.off, sb->p + b->v.s.off, a->v.s.n) == 0);
    case UDB_TK_INT: return a->v.i == b->v.i;
    case UDB_TK_UINT: return a->v.u == b->v.u;
    case UDB_TK_FLOAT:
        return a->v.f == b->v.f || memcmp(&a->v.f, &b->v.f, sizeof a->v.f) == 0;
    case UDB_TK_BOOL: return a->v.b == b->v.b;
    case UDB_TK_NIL: return true;
    }
    return false;
}

/* Re-encode one element through msgpack: udb__tk_to_msgpack, then the
 * engine's checker and msgpack-c, then udb__tk_object.  Canonical input
 * (what the encoders write) must come back byte for byte; raw input (exact
 * false) may be non-canonical, so it must come back as the same value. */
static void check_via_msgpack(const unsigned char *start, const unsigned char *stop, bool exact)
{
    udb_buf mp = {0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &mp, udb__buf_sbuffer_write);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    const unsigned char *p = start;
    FUZZ_CHECK(udb__tk_to_msgpack(&pk, &p, stop) == 0, "to_msgpack rejects a decodable element");
    FUZZ_CHECK(p == stop, "to_msgpack consumed %td bytes, decode %td", p - start, stop - start);
    FUZZ_CHECK(!mp.oom, "out of memory");
    const char *why = NULL;
    FUZZ_CHECK(udb__mp_parse(&up, mp.p, mp.len, &why) == 0,
               "to_msgpack wrote msgpack the engine rejects: %s", why ? why : "?");
    udb_buf again = {0};
    FUZZ_CHECK(udb__tk_object(&again, &up.data) == 0, "tk_object rejects a scalar");
    udb_buf s1 = {0}, s2 = {0};
    if (exact) {
        FUZZ_CHECK(again.len == (size_t)(stop - start) && memcmp(again.p, start, again.len) == 0,
                   "element changed on the way through msgpack");
    } else {
        udb_telem a, b;
        const unsigned char *pa = start, *pb = again.p;
        FUZZ_CHECK(udb__tk_decode(&a, &s1, &pa, stop) == 0 &&
                   udb__tk_decode(&b, &s2, &pb, again.p + again.len) == 0 &&
                   pb == again.p + again.len,
                   "re-encoded element does not decode");
        FUZZ_CHECK(same_telem(&a, &s1, &b, &s2), "element changed value through msgpack");
    }
    msgpack_unpacked_destroy(&up);
    udb__buf_free(&mp);
    udb__buf_free(&again);
    udb__buf_free(&s1);
    udb__buf_free(&s2);
}

static void check_roundtrip(const tuple *t, const udb_buf *enc)
{
    /* an empty tuple encodes to nothing (and the buffer may be unallocated) */
    const unsigned char *p = enc->p ? enc->p : (const unsigned char *)"", *end = p + enc->len;
    udb_buf scratch = {0}, viaobj = {0};
    for (size_t i = 0; i < t->n; i++) {
        const unsigned char *start = p, *q = p;
        scratch.len = 0;
        udb_telem got;
        FUZZ_CHECK(udb__tk_decode(&got, &scratch, &p, end) == 0,
                   "element %zu of an encoded tuple does not decode", i);
        check_decoded(&t->e[i], &got, &scratch);
        FUZZ_CHECK(udb__tk_skip(&q, end) == 0 && q == p,
                   "skip and decode disagree on element %zu", i);
        check_via_msgpack(start, p, true);
        msgpack_object o = as_object(&t->e[i]);
        FUZZ_CHECK(udb__tk_object(&viaobj, &o) == 0, "tk_object rejects a scalar");
    }
    FUZZ_CHECK(p == end, "%td bytes left after decoding the whole tuple", end - p);
    FUZZ_CHECK(viaobj.len == enc->len && (enc->len == 0 || memcmp(viaobj.p, enc->p, enc->len) == 0),
               "tk_object and the typed encoders disagree");
    udb__buf_free(&scratch);
    udb__buf_free(&viaobj);
}

static void typed_mode(fuzz_reader *r)
{
    tuple a, b;
    gen_tuple(&a, r);
    gen_tuple(&b, r);
    udb_buf ea = {0}, eb = {0};
    for (size_t i = 0; i < a.n; i++)
        encode_elem(&ea, &a.e[i]);
    for (size_t i = 0; i < b.n; i++)
        encode_elem(&eb, &b.e[i]);
    FUZZ_CHECK(!ea.oom && !eb.oom, "out of memory");
    check_roundtrip(&a, &ea);
    check_roundtrip(&b, &eb);

    int cv = cmp_tuple(&a, &b), ck = cmp_bytes(&ea, &eb);
    if (cv != ck) {
        char da[512], db[512];
        describe(da, sizeof da, &a);
        describe(db, sizeof db, &b);
        FUZZ_FAIL("order: values compare %d, keys compare %d\n  a: %s\n  b: %s", cv, ck, da, db);
    }
    udb__buf_free(&ea);
    udb__buf_free(&eb);
}

/* Raw, possibly damaged key bytes (as udb_check meets them on disk). */
static void raw_mode(const uint8_t *data, size_t size)
{
    /* an exact-size copy: reads past the end are caught by ASan */
    unsigned char *copy = malloc(size ? size : 1);
    FUZZ_CHECK(copy != NULL, "out of memory");
    if (size)
        memcpy(copy, data, size);
    const unsigned char *p = copy, *end = copy + size;
    udb_buf scratch = {0};
    while (p < end) {
        const unsigned char *start = p, *q = p;
        scratch.len = 0;
        udb_telem got;
        int rc = udb__tk_decode(&got, &scratch, &p, end);
        int src = udb__tk_skip(&q, end);
        FUZZ_CHECK(rc == 0 || rc == UDB_ECORRUPT, "decode returned %d", rc);
        if (rc) {
            FUZZ_CHECK(p == start, "a failed decode moved the position");
            /* skip may accept a string decode refuses only if the bytes are
               the same: both scan for the same terminator */
            FUZZ_CHECK(src != 0, "skip accepts an element decode rejects");
            break;
        }
        FUZZ_CHECK(src == 0 && q == p, "skip and decode disagree on an element");
        check_via_msgpack(start, p, false);
        /* decoded values re-encode to a key that decodes to the same value
           (raw bytes may be non-canonical, e.g. integers with leading zero
           bytes, so bytes need not match) */
        udb_buf re = {0};
        if (got.kind != UDB_TK_STR && got.kind != UDB_TK_BYTES) {
            elem e = from_telem(&got, &scratch);
            encode_elem(&re, &e);
            const unsigned char *rp = re.p;
            udb_telem again;
            udb_buf s2 = {0};
            FUZZ_CHECK(udb__tk_decode(&again, &s2, &rp, re.p + re.len) == 0,
                       "re-encoded element does not decode");
            check_decoded(&e, &again, &s2);
            udb__buf_free(&s2);
        }
        udb__buf_free(&re);
    }
    udb__buf_free(&scratch);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] % 4 == 3) {
        raw_mode(data + 1, size - 1);
        return 0;
    }
    fuzz_reader r;
    fuzz_reader_init(&r, data + 1, size - 1);
    typed_mode(&r);
    return 0;
}
