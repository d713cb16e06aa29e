/*
 * mpack.c -- msgpack bytes from outside, made safe before msgpack-c sees them.
 *
 * msgpack-c allocates arrays and maps by their declared count before it
 * checks that the bytes exist (5 bytes can ask for 64 GiB), reports deep
 * nesting as out-of-memory, and accepts trailing bytes.  So every untrusted
 * buffer is walked here first: each count must be backed by bytes, nesting and
 * total object count are capped, and the object must end exactly at the end
 * of the buffer.  Only then is it handed to msgpack-c's msgpack_unpack().
 * A map of scalar values (most records) is decoded here instead, checked as
 * it goes, into the objects msgpack_unpack() would make: one pass, not two.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <string.h>

#include "mpack.h"

typedef struct walker {
    const unsigned char *p, *end;
    unsigned max_depth;
    size_t objects;
    const char *why;
} walker;

static int fail(walker *w, const char *why)
{
    w->why = why;
    return UDB_EBADRECORD;
}

/* Consume n bytes. */
static int take(walker *w, uint64_t n)
{
    if ((uint64_t)(w->end - w->p) < n)
        return fail(w, "truncated msgpack (a length runs past the end)");
    w->p += n;
    return 0;
}

static int walk(walker *w, unsigned depth);

static int walk_items(walker *w, uint64_t count, unsigned per, unsigned depth)
{
    if (depth >= w->max_depth)
        return fail(w, "nested too deeply: at most 16 levels of maps and arrays, the record "
                    "map itself counting as one");
    /* every object takes at least one byte: a count the remaining bytes
       cannot hold is a lie, refuse it before anyone allocates for it */
    if (count > (uint64_t)(w->end - w->p) / per)
        return fail(w, "msgpack array or map count exceeds the bytes present");
    for (uint64_t i = 0; i < count * per; i++) {
        int rc = walk(w, depth + 1);
        if (rc)
            return rc;
    }
    return 0;
}

static int walk(walker *w, unsigned depth)
{
    if (w->p >= w->end)
        return fail(w, "truncated msgpack");
    if (++w->objects > UDB_MAX_ELEMS)
        return fail(w, "msgpack has too many objects");
    unsigned char c = *w->p++;
    if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3)
        return 0;
    if ((c & 0xf0) == 0x80)
        return walk_items(w, c & 0x0f, 2, depth);
    if ((c & 0xf0) == 0x90)
        return walk_items(w, c & 0x0f, 1, depth);
    if ((c & 0xe0) == 0xa0)
        return take(w, c & 0x1f);
    switch (c) {
    case 0xc4: case 0xd9:                       /* bin8, str8 */
        if (take(w, 1)) return UDB_EBADRECORD;
        return take(w, w->p[-1]);
    case 0xc5: case 0xda:                       /* bin16, str16 */
        if (take(w, 2)) return UDB_EBADRECORD;
        return take(w, udb__get_be(w->p - 2, 2));
    case 0xc6: case 0xdb:                       /* bin32, str32 */
        if (take(w, 4)) return UDB_EBADRECORD;
        return take(w, udb__get_be(w->p - 4, 4));
    case 0xca: return take(w, 4);
    case 0xcb: return take(w, 8);
    case 0xcc: case 0xd0: return take(w, 1);
    case 0xcd: case 0xd1: return take(w, 2);
    case 0xce: case 0xd2: return take(w, 4);
    case 0xcf: case 0xd3: return take(w, 8);
    case 0xdc:
        if (take(w, 2)) return UDB_EBADRECORD;
        return walk_items(w, udb__get_be(w->p - 2, 2), 1, depth);
    case 0xdd:
        if (take(w, 4)) return UDB_EBADRECORD;
        return walk_items(w, udb__get_be(w->p - 4, 4), 1, depth);
    case 0xde:
        if (take(w, 2)) return UDB_EBADRECORD;
        return walk_items(w, udb__get_be(w->p - 2, 2), 2, depth);
    case 0xdf:
        if (take(w, 4)) return UDB_EBADRECORD;
        return walk_items(w, udb__get_be(w->p - 4, 4), 2, depth);
    case 0xc1:
        return fail(w, "invalid msgpack byte 0xc1");
    default:                                    /* 0xc7-0xc9, 0xd4-0xd8 */
        return fail(w, "msgpack extension types are not supported");
    }
}

int udb__mp_check(const void *buf, size_t len, unsigned max_depth, const char **why)
{
    walker w = {buf, (const unsigned char *)buf + len, max_depth, 0, NULL};
    int rc;
    if (!buf || len == 0)
        rc = fail(&w, "empty msgpack");
    else if (len > UDB_MAX_RECORD)
        rc = fail(&w, "msgpack larger than the 4 MiB record limit");
    else if ((rc = walk(&w, 0)) == 0 && w.p != w.end)
        rc = fail(&w, "trailing bytes after the msgpack object");
    if (why)
        *why = rc ? w.why : NULL;
    return rc;
}

/* Zones let go of by udb__mp_done, for the next unpack: every record written
 * is unpacked, and msgpack_unpack_next() would malloc and free a zone and its
 * 8 KiB first chunk each time.  A zone is emptied down to that first chunk
 * before it is kept, so the spares hold SPARE_ZONES chunks at most. */
#define SPARE_ZONES 8
static _Atomic(msgpack_zone *) spare_zones[SPARE_ZONES];

static msgpack_zone *zone_take(void)
{
    for (unsigned i = 0; i < SPARE_ZONES; i++) {
        msgpack_zone *z = atomic_exchange_explicit(&spare_zones[i], NULL, memory_order_acquire);
        if (z)
            return z;
    }
    return msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
}

static void zone_give(msgpack_zone *z)
{
    msgpack_zone_clear(z);
    for (unsigned i = 0; i < SPARE_ZONES; i++) {
        msgpack_zone *none = NULL;
        if (atomic_compare_exchange_strong_explicit(&spare_zones[i], &none, z,
                                                    memory_order_release, memory_order_relaxed))
            return;
    }
    msgpack_zone_free(z);
}

void udb__mp_done(msgpack_unpacked *up)
{
    if (up->zone) {
        zone_give(up->zone);
        up->zone = NULL;
    }
    memset(&up->data, 0, sizeof up->data);
}

int udb__mp_unpack(msgpack_unpacked *up, const void *buf, size_t len)
{
    udb__mp_done(up);
    msgpack_zone *z = zone_take();
    if (!z)
        return UDB_ENOMEM;
    size_t off = 0;
    /* msgpack-c's header calls it obsolete: it is msgpack_unpack_next() with the
       zone the caller's, which is what lets a zone be used again */
    msgpack_unpack_return r = msgpack_unpack(buf, len, &off, z, &up->data);
    if (r != MSGPACK_UNPACK_SUCCESS || off != len) {
        zone_give(z);
        memset(&up->data, 0, sizeof up->data);
        return r == MSGPACK_UNPACK_NOMEM_ERROR ? UDB_ENOMEM : UDB_EBADRECORD;
    }
    up->zone = z;
    return 0;
}

const char *udb__mp_typename(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return "nil";
    case MSGPACK_OBJECT_BOOLEAN: return "bool";
    case MSGPACK_OBJECT_POSITIVE_INTEGER: return "uint";
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "int";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return "float";
    case MSGPACK_OBJECT_STR: return "str";
    case MSGPACK_OBJECT_BIN: return "bin";
    case MSGPACK_OBJECT_ARRAY: return "array";
    case MSGPACK_OBJECT_MAP: return "map";
    default: return "ext";
    }
}

/* The headers msgpack-c picks (pack_template.h): the smallest that holds
 * the value.  Each writes at h, which has room for 9 bytes, and returns the
 * header's length. */
static inline size_t head(unsigned char *h, unsigned char tag, uint64_t v, unsigned n)
{
    h[0] = tag;
    for (unsigned i = 0; i < n; i++)
        h[1 + i] = (unsigned char)(v >> (8 * (n - 1 - i)));
    return 1 + n;
}

static inline size_t head_uint(unsigned char *h, uint64_t v)
{
    if (v < 128) {
        h[0] = (unsigned char)v;
        return 1;
    }
    return v < 256 ? head(h, 0xcc, v, 1) : v < 65536 ? head(h, 0xcd, v, 2)
         : v <= UINT32_MAX ? head(h, 0xce, v, 4) : head(h, 0xcf, v, 8);
}

static inline size_t head_int(unsigned char *h, int64_t v)
{
    if (v >= 0)
        return head_uint(h, (uint64_t)v);
    uint64_t u = (uint64_t)v;
    if (v >= -32) {
        h[0] = (unsigned char)u;
        return 1;
    }
    return v >= -128 ? head(h, 0xd0, u, 1) : v >= -32768 ? head(h, 0xd1, u, 2)
         : v >= INT32_MIN ? head(h, 0xd2, u, 4) : head(h, 0xd3, u, 8);
}

/* str and bin: fixstr below 32 bytes (str only), then 8, 16, 32-bit lengths. */
static inline size_t head_len(unsigned char *h, uint32_t n, bool str)
{
    unsigned char tag = str ? 0xd9 : 0xc4;
    if (str && n < 32) {
        h[0] = (unsigned char)(0xa0 | n);
        return 1;
    }
    return n < 256 ? head(h, tag, n, 1) : n < 65536 ? head(h, tag + 1, n, 2)
                                                    : head(h, tag + 2, n, 4);
}

/* Room in b for a header and n more bytes (and the NUL): where the header
 * goes, or NULL once b is out of memory. */
static inline unsigned char *room(udb_buf *b, size_t n)
{
    if ((b->oom || n + 9 >= b->cap - b->len) && udb__buf_reserve(b, n + 9))
        return NULL;
    return b->p + b->len;
}

/* The header of hn bytes written at b's end, then n bytes of body. */
static inline void done(udb_buf *b, size_t hn, const void *body, size_t n)
{
    if (n)
        memcpy(b->p + b->len + hn, body, n);
    b->len += hn + n;
    b->p[b->len] = 0;
}

static void pack_bytes(udb_buf *b, const void *p, uint32_t n, bool str)
{
    unsigned char *h = room(b, n);
    if (h)
        done(b, head_len(h, n, str), p, n);
}

void udb__mp_pack_str(udb_buf *b, const void *s, size_t n)
{
    if (n > UINT32_MAX)
        b->oom = true;   /* longer than a msgpack string can be */
    else
        pack_bytes(b, s, (uint32_t)n, true);
}

void udb__mp_pack(msgpack_packer *pk, udb_buf *b, const msgpack_object *o)
{
    unsigned char *h;
    switch (o->type) {
    case MSGPACK_OBJECT_STR:
        pack_bytes(b, o->via.str.ptr, o->via.str.size, true);
        return;
    case MSGPACK_OBJECT_BIN:
        pack_bytes(b, o->via.bin.ptr, o->via.bin.size, false);
        return;
    case MSGPACK_OBJECT_NIL:
    case MSGPACK_OBJECT_BOOLEAN:
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        if (!(h = room(b, 0)))
            return;
        if (o->type == MSGPACK_OBJECT_NIL)
            h[0] = 0xc0;
        else if (o->type == MSGPACK_OBJECT_BOOLEAN)
            h[0] = o->via.boolean ? 0xc3 : 0xc2;
        done(b, o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? head_uint(h, o->via.u64)
                : o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER ? head_int(h, o->via.i64) : 1,
             NULL, 0);
        return;
    default:
        msgpack_pack_object(pk, *o);
    }
}

void udb__mp_render(udb_buf *b, const msgpack_object *o, bool quote)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: udb__buf_printf(b, "null"); break;
    case MSGPACK_OBJECT_BOOLEAN: udb__buf_printf(b, o->via.boolean ? "true" : "false"); break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: udb__buf_printf(b, "%" PRIu64, o->via.u64); break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: udb__buf_printf(b, "%" PRId64, o->via.i64); break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: udb__buf_printf(b, "%.17g", o->via.f64); break;
    case MSGPACK_OBJECT_STR: {
        size_t n = o->via.str.size > 200 ? 200 : o->via.str.size;
        if (quote)
            udb__buf_byte(b, '"');
        udb__buf_put(b, o->via.str.ptr, n);
        if (n < o->via.str.size)
            udb__buf_printf(b, "...");
        if (quote)
            udb__buf_byte(b, '"');
        break;
    }
    case MSGPACK_OBJECT_BIN: udb__buf_printf(b, "<%" PRIu32 " bytes>", o->via.bin.size); break;
    case MSGPACK_OBJECT_ARRAY: udb__buf_printf(b, "<array of %" PRIu32 ">", o->via.array.size); break;
    case MSGPACK_OBJECT_MAP: udb__buf_printf(b, "<map of %" PRIu32 ">", o->via.map.size); break;
    default: udb__buf_printf(b, "<ext>"); break;
    }
}

/* Read one scalar at *pp without allocating (keys, index values and the
 * fields of most records are decoded here: every lookup and every write).
 * Strings point into the buffer.  Every length is checked against end;
 * arrays, maps, ext and 0xc1 are refused. */
static int read_scalar(msgpack_object *o, const unsigned char **pp, const unsigned char *end)
{
    const unsigned char *p = *pp;
    if (p >= end)
        return UDB_EBADRECORD;
    unsigned char c = *p++;
    size_t left = (size_t)(end - p);
    memset(o, 0, sizeof *o);
    if (c <= 0x7f) {
        o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o->via.u64 = c;
    } else if (c >= 0xe0) {
        o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
        o->via.i64 = (int8_t)c;
    } else if ((c & 0xe0) == 0xa0 || c == 0xd9 || c == 0xda || c == 0xdb ||
               c == 0xc4 || c == 0xc5 || c == 0xc6) {
        unsigned lb = (c & 0xe0) == 0xa0 ? 0 : (c == 0xd9 || c == 0xc4) ? 1
                      : (c == 0xda || c == 0xc5) ? 2 : 4;
        if (left < lb)
            return UDB_EBADRECORD;
        uint32_t n = lb ? (uint32_t)udb__get_be(p, lb) : (uint32_t)(c & 0x1f);
        p += lb;
        if (left - lb < n)
            return UDB_EBADRECORD;
        bool bin = c >= 0xc4 && c <= 0xc6;
        o->type = bin ? MSGPACK_OBJECT_BIN : MSGPACK_OBJECT_STR;
        o->via.str.size = n;
        o->via.str.ptr = (const char *)p;
        p += n;
    } else {
        /* the bytes after the header: 1, 2, 4 or 8 for numbers */
        unsigned n = c >= 0xcc && c <= 0xcf ? 1u << (c - 0xcc)
                   : c >= 0xd0 && c <= 0xd3 ? 1u << (c - 0xd0)
                   : c == 0xca ? 4 : c == 0xcb ? 8 : 0;
        if (left < n)
            return UDB_EBADRECORD;
        switch (c) {
        case 0xc0: o->type = MSGPACK_OBJECT_NIL; break;
        case 0xc2: case 0xc3:
            o->type = MSGPACK_OBJECT_BOOLEAN;
            o->via.boolean = c == 0xc3;
            break;
        case 0xcc: case 0xcd: case 0xce: case 0xcf:
            o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
            o->via.u64 = udb__get_be(p, n);
            break;
        case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
            uint64_t u = udb__get_be(p, n);
            int64_t v = n == 1 ? (int8_t)u : n == 2 ? (int16_t)u : n == 4 ? (int32_t)u
                                                                          : (int64_t)u;
            o->type = v < 0 ? MSGPACK_OBJECT_NEGATIVE_INTEGER : MSGPACK_OBJECT_POSITIVE_INTEGER;
            o->via.i64 = v;
            break;
        }
        case 0xca: {
            uint32_t u = (uint32_t)udb__get_be(p, 4);
            float f;
            memcpy(&f, &u, 4);
            o->type = MSGPACK_OBJECT_FLOAT32;
            o->via.f64 = f;
            break;
        }
        case 0xcb: {
            uint64_t u = udb__get_be(p, 8);
            o->type = MSGPACK_OBJECT_FLOAT64;
            memcpy(&o->via.f64, &u, 8);
            break;
        }
        default:
            return UDB_EBADRECORD;   /* arrays, maps, ext, 0xc1: not scalars */
        }
        p += n;
    }
    *pp = p;
    return 0;
}

/* A map of scalars -- what most records are -- decoded in one pass into a
 * zone, the objects msgpack_unpack() would make (test_codec compares them):
 * 0, UDB_ENOMEM, or 1 when buf is anything else, well-formed or not (the
 * caller then goes msgpack-c's way, which also says what is wrong). */
static int flat_map(msgpack_unpacked *up, const unsigned char *p, size_t len)
{
    const unsigned char *end = p + len;
    unsigned char c = *p++;
    uint64_t n;
    if ((c & 0xf0) == 0x80) {
        n = c & 0x0f;
    } else if (c == 0xde && end - p >= 2) {
        n = udb__get_be(p, 2);
        p += 2;
    } else if (c == 0xdf && end - p >= 4) {
        n = udb__get_be(p, 4);
        p += 4;
    } else {
        return 1;
    }
    /* the limits udb__mp_check holds a map to: bytes for every count, and
       at most UDB_MAX_ELEMS objects */
    if (n > (uint64_t)(end - p) / 2 || 2 * n + 1 > UDB_MAX_ELEMS)
        return 1;
    udb__mp_done(up);
    msgpack_zone *z = zone_take();
    if (!z)
        return UDB_ENOMEM;
    msgpack_object_kv *kv = msgpack_zone_malloc(z, (size_t)n * sizeof *kv);
    if (!kv) {
        zone_give(z);
        return UDB_ENOMEM;
    }
    for (uint64_t i = 0; i < n; i++)
        if (read_scalar(&kv[i].key, &p, end) || read_scalar(&kv[i].val, &p, end)) {
            zone_give(z);
            return 1;
        }
    if (p != end) {
        zone_give(z);
        return 1;
    }
    up->zone = z;
    up->data.type = MSGPACK_OBJECT_MAP;
    up->data.via.map.size = (uint32_t)n;
    up->data.via.map.ptr = kv;
    return 0;
}

int udb__mp_parse(msgpack_unpacked *up, const void *buf, size_t len, const char **why)
{
    int rc;
    if (buf && len && len <= UDB_MAX_RECORD && (rc = flat_map(up, buf, len)) != 1) {
        if (why)
            *why = NULL;
        return rc;
    }
    if ((rc = udb__mp_check(buf, len, UDB_MAX_DEPTH, why)))
        return rc;
    rc = udb__mp_unpack(up, buf, len);
    if (rc == UDB_EBADRECORD && why)
        *why = "msgpack rejected by the decoder";
    return rc;
}

int udb__mp_scalars(msgpack_object *out, size_t max, size_t *n, bool array, const void *buf,
                    size_t len, const char **why)
{
    const unsigned char *p = buf, *end = p + len;
    size_t count = 1;
    *why = NULL;
    if (!buf || len == 0) {
        *why = "empty msgpack";
        return UDB_EBADRECORD;
    }
    if (array) {
        unsigned char c = *p++;
        if ((c & 0xf0) == 0x90) {
            count = c & 0x0f;
        } else if (c == 0xdc && end - p >= 2) {
            count = (size_t)udb__get_be(p, 2);
            p += 2;
        } else if (c == 0xdd && end - p >= 4) {
            count = (size_t)udb__get_be(p, 4);
            p += 4;
        } else {
            *why = "expected a msgpack array of scalar values";
            return UDB_EBADRECORD;
        }
        if (count > max) {
            *why = "too many values";
            return UDB_EBADRECORD;
        }
    }
    for (size_t i = 0; i < count; i++) {
        if (read_scalar(&out[i], &p, end)) {
            *why = "expected scalar msgpack values (nil, bool, int, float, str, bin), complete";
            return UDB_EBADRECORD;
        }
    }
    if (p != end) {
        *why = "trailing bytes after the msgpack value";
        return UDB_EBADRECORD;
    }
    *n = count;
    return 0;
}
