/*
 * keycodec.c -- order-preserving tuple encoding of LMDB keys, after
 * FoundationDB's tuple layer.
 *
 * LMDB compares keys with memcmp, so every index key is a byte string whose
 * order is the order of the values it encodes.  Each element starts with a
 * type code (so types never mix), strings escape 0x00 as 0x00 0xFF and end
 * in 0x00 (so ("ab","c") != ("a","bc") and a tuple prefix is a key range),
 * integers carry their byte length in the code (so they sort numerically,
 * negatives first), and doubles flip bits so memcmp equals numeric order.
 */
#include <inttypes.h>
#include <string.h>

#include "keycodec.h"

void udb__tk_nil(udb_buf *b)
{
    udb__buf_byte(b, UDB_TC_NIL);
}

void udb__tk_str(udb_buf *b, udb_tkind kind, const void *p, size_t n)
{
    const unsigned char *s = p;
    udb__buf_byte(b, kind == UDB_TK_BYTES ? UDB_TC_BYTES : UDB_TC_STR);
    const unsigned char *z;
    while (n && (z = memchr(s, 0, n)) != NULL) {
        size_t run = (size_t)(z - s) + 1;
        udb__buf_put(b, s, run);
        udb__buf_byte(b, 0xFF);
        s += run;
        n -= run;
    }
    udb__buf_put(b, s, n);
    udb__buf_byte(b, 0x00);
}

static void put_be(udb_buf *b, uint64_t v, unsigned n)
{
    unsigned char tmp[8];
    for (unsigned i = 0; i < n; i++)
        tmp[i] = (unsigned char)(v >> (8 * (n - 1 - i)));
    udb__buf_put(b, tmp, n);
}

static unsigned byte_len(uint64_t v)
{
    unsigned n = 0;
    while (v) {
        n++;
        v >>= 8;
    }
    return n;
}

void udb__tk_uint(udb_buf *b, uint64_t v)
{
    unsigned n = byte_len(v);
    udb__buf_byte(b, (unsigned char)(UDB_TC_INT0 + n));
    put_be(b, v, n);
}

void udb__tk_int(udb_buf *b, int64_t v)
{
    if (v >= 0) {
        udb__tk_uint(b, (uint64_t)v);
        return;
    }
    uint64_t mag = (uint64_t)(-(v + 1)) + 1;   /* |v| without overflow at INT64_MIN */
    unsigned n = byte_len(mag);
    uint64_t mask = n == 8 ? UINT64_MAX : (((uint64_t)1 << (8 * n)) - 1);
    udb__buf_byte(b, (unsigned char)(UDB_TC_INT0 - n));
    put_be(b, ~mag & mask, n);
}

void udb__tk_float(udb_buf *b, double v)
{
    uint64_t bits;
    if (v == 0)
        v = 0.0;              /* -0.0 and 0.0 are one key, as in SQL */
    memcpy(&bits, &v, sizeof bits);
    if (bits >> 63)
        bits = ~bits;
    else
        bits |= (uint64_t)1 << 63;
    udb__buf_byte(b, UDB_TC_FLOAT);
    put_be(b, bits, 8);
}

void udb__tk_bool(udb_buf *b, bool v)
{
    udb__buf_byte(b, v ? UDB_TC_TRUE : UDB_TC_FALSE);
}

int udb__tk_object(udb_buf *b, const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: udb__tk_nil(b); return 0;
    case MSGPACK_OBJECT_BOOLEAN: udb__tk_bool(b, o->via.boolean); return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: udb__tk_uint(b, o->via.u64); return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: udb__tk_int(b, o->via.i64); return 0;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: udb__tk_float(b, o->via.f64); return 0;
    case MSGPACK_OBJECT_STR: udb__tk_str(b, UDB_TK_STR, o->via.str.ptr, o->via.str.size); return 0;
    case MSGPACK_OBJECT_BIN: udb__tk_str(b, UDB_TK_BYTES, o->via.bin.ptr, o->via.bin.size); return 0;
    default: return UDB_EBADRECORD;
    }
}

int udb__tk_decode(udb_telem *out, udb_buf *scratch, const unsigned char **pos,
                   const unsigned char *end)
{
    const unsigned char *p = *pos;
    if (p >= end)
        return UDB_ECORRUPT;
    unsigned char code = *p++;
    if (code == UDB_TC_NIL) {
        out->kind = UDB_TK_NIL;
    } else if (code == UDB_TC_STR || code == UDB_TC_BYTES) {
        out->kind = code == UDB_TC_STR ? UDB_TK_STR : UDB_TK_BYTES;
        out->v.s.off = scratch->len;
        for (;;) {
            if (p >= end)
                return UDB_ECORRUPT;
            if (*p == 0) {
                if (p + 1 < end && p[1] == 0xFF) {
                    udb__buf_byte(scratch, 0);
                    p += 2;
                    continue;
                }
                p++;
                break;
            }
            const unsigned char *z = memchr(p, 0, (size_t)(end - p));
            if (!z)
                return UDB_ECORRUPT;
            udb__buf_put(scratch, p, (size_t)(z - p));
            p = z;
        }
        if (scratch->oom)
            return UDB_ENOMEM;
        out->v.s.n = scratch->len - out->v.s.off;
    } else if (code >= UDB_TC_INT0 - 8 && code <= UDB_TC_INT0 + 8) {
        int n = (int)code - UDB_TC_INT0;
        unsigned an = (unsigned)(n < 0 ? -n : n);
        if ((size_t)(end - p) < an)
            return UDB_ECORRUPT;
        uint64_t v = udb__get_be(p, an);
        p += an;
        if (n >= 0) {
            out->kind = UDB_TK_UINT;
            out->v.u = v;
        } else {
            uint64_t mask = an == 8 ? UINT64_MAX : (((uint64_t)1 << (8 * an)) - 1);
            uint64_t mag = ~v & mask;
            if (mag == 0 || mag > (uint64_t)INT64_MAX + 1)
                return UDB_ECORRUPT;
            out->kind = UDB_TK_INT;
            out->v.i = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
        }
    } else if (code == UDB_TC_FLOAT) {
        if (end - p < 8)
            return UDB_ECORRUPT;
        uint64_t bits = udb__get_be(p, 8);
        p += 8;
        if (bits >> 63)
            bits &= ~((uint64_t)1 << 63);
        else
            bits = ~bits;
        out->kind = UDB_TK_FLOAT;
        memcpy(&out->v.f, &bits, sizeof bits);
    } else if (code == UDB_TC_FALSE || code == UDB_TC_TRUE) {
        out->kind = UDB_TK_BOOL;
        out->v.b = code == UDB_TC_TRUE;
    } else {
        return UDB_ECORRUPT;
    }
    *pos = p;
    return 0;
}

int udb__tk_skip(const unsigned char **pos, const unsigned char *end)
{
    const unsigned char *p = *pos;
    if (p >= end)
        return UDB_ECORRUPT;
    unsigned char code = *p;
    if (code == UDB_TC_STR || code == UDB_TC_BYTES) {
        p++;
        for (;;) {
            const unsigned char *z = memchr(p, 0, (size_t)(end - p));
            if (!z)
                return UDB_ECORRUPT;
            p = z + 1;
            if (p < end && *p == 0xFF)
                p++;
            else
                break;
        }
        *pos = p;
        return 0;
    }
    udb_telem t;
    udb_buf none = {0};
    int rc = udb__tk_decode(&t, &none, pos, end);
    udb__buf_free(&none);
    return rc;
}

int udb__tk_to_msgpack(msgpack_packer *pk, const unsigned char **pos, const unsigned char *end)
{
    udb_buf scratch = {0};
    udb_telem t;
    int rc = udb__tk_decode(&t, &scratch, pos, end);
    if (rc)
        goto out;
    switch (t.kind) {
    case UDB_TK_NIL: msgpack_pack_nil(pk); break;
    case UDB_TK_BOOL: t.v.b ? msgpack_pack_true(pk) : msgpack_pack_false(pk); break;
    case UDB_TK_INT: msgpack_pack_int64(pk, t.v.i); break;
    case UDB_TK_UINT: msgpack_pack_uint64(pk, t.v.u); break;
    case UDB_TK_FLOAT: msgpack_pack_double(pk, t.v.f); break;
    case UDB_TK_STR:
        msgpack_pack_str(pk, t.v.s.n);
        msgpack_pack_str_body(pk, scratch.p ? scratch.p + t.v.s.off : (const unsigned char *)"", t.v.s.n);
        break;
    case UDB_TK_BYTES:
        msgpack_pack_bin(pk, t.v.s.n);
        msgpack_pack_bin_body(pk, scratch.p ? scratch.p + t.v.s.off : (const unsigned char *)"", t.v.s.n);
        break;
    }
out:
    udb__buf_free(&scratch);
    return rc;
}

void udb__tk_render(udb_buf *b, const void *data, size_t len)
{
    const unsigned char *p = data, *end = p + len;
    udb_buf scratch = {0};
    udb__buf_byte(b, '(');
    for (int i = 0; p < end; i++) {
        udb_telem e;
        scratch.len = 0;
        if (udb__tk_decode(&e, &scratch, &p, end)) {
            udb__buf_printf(b, "%s<damaged>", i ? ", " : "");
            break;
        }
        if (i)
            udb__buf_printf(b, ", ");
        switch (e.kind) {
        case UDB_TK_NIL: udb__buf_printf(b, "null"); break;
        case UDB_TK_BOOL: udb__buf_printf(b, e.v.b ? "true" : "false"); break;
        case UDB_TK_INT: udb__buf_printf(b, "%" PRId64, e.v.i); break;
        case UDB_TK_UINT: udb__buf_printf(b, "%" PRIu64, e.v.u); break;
        case UDB_TK_FLOAT: udb__buf_printf(b, "%.17g", e.v.f); break;
        case UDB_TK_STR:
            udb__buf_printf(b, "\"%.*s\"", (int)(e.v.s.n > 80 ? 80 : e.v.s.n),
                            scratch.p ? (char *)scratch.p + e.v.s.off : "");
            break;
        case UDB_TK_BYTES: udb__buf_printf(b, "<%zu bytes>", e.v.s.n); break;
        }
    }
    udb__buf_byte(b, ')');
    udb__buf_free(&scratch);
}
