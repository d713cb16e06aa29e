/*
 * mpack.c -- msgpack bytes from outside, made safe before msgpack-c sees them.
 *
 * msgpack-c allocates arrays and maps by their declared count before it
 * checks that the bytes exist (5 bytes can ask for 64 GiB), reports deep
 * nesting as out-of-memory, and accepts trailing bytes.  So every untrusted
 * buffer is walked here first: each count must be backed by bytes, nesting and
 * total object count are capped, and the object must end exactly at the end
 * of the buffer.  Only then is it handed to msgpack_unpack_next().
 */
#include <inttypes.h>
#include <string.h>

#include "internal.h"

typedef struct walker {
    const unsigned char *p, *end;
    unsigned max_depth;
    size_t objects;
    const char *why;
} walker;

static uint64_t rd(const unsigned char *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static int fail(walker *w, const char *why)
{
    w->why = why;
    return UDB_EINVALID;
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
        return fail(w, "msgpack nested too deeply");
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
        if (take(w, 1)) return UDB_EINVALID;
        return take(w, w->p[-1]);
    case 0xc5: case 0xda:                       /* bin16, str16 */
        if (take(w, 2)) return UDB_EINVALID;
        return take(w, rd(w->p - 2, 2));
    case 0xc6: case 0xdb:                       /* bin32, str32 */
        if (take(w, 4)) return UDB_EINVALID;
        return take(w, rd(w->p - 4, 4));
    case 0xca: return take(w, 4);
    case 0xcb: return take(w, 8);
    case 0xcc: case 0xd0: return take(w, 1);
    case 0xcd: case 0xd1: return take(w, 2);
    case 0xce: case 0xd2: return take(w, 4);
    case 0xcf: case 0xd3: return take(w, 8);
    case 0xdc:
        if (take(w, 2)) return UDB_EINVALID;
        return walk_items(w, rd(w->p - 2, 2), 1, depth);
    case 0xdd:
        if (take(w, 4)) return UDB_EINVALID;
        return walk_items(w, rd(w->p - 4, 4), 1, depth);
    case 0xde:
        if (take(w, 2)) return UDB_EINVALID;
        return walk_items(w, rd(w->p - 2, 2), 2, depth);
    case 0xdf:
        if (take(w, 4)) return UDB_EINVALID;
        return walk_items(w, rd(w->p - 4, 4), 2, depth);
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

int udb__mp_unpack(msgpack_unpacked *up, const void *buf, size_t len)
{
    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack_next(up, buf, len, &off);
    if (r == MSGPACK_UNPACK_NOMEM_ERROR)
        return UDB_ENOMEM;
    if (r != MSGPACK_UNPACK_SUCCESS || off != len)
        return UDB_EINVALID;
    return 0;
}

int udb__mp_parse(msgpack_unpacked *up, const void *buf, size_t len, const char **why)
{
    int rc = udb__mp_check(buf, len, UDB_MAX_DEPTH, why);
    if (rc)
        return rc;
    rc = udb__mp_unpack(up, buf, len);
    if (rc == UDB_EINVALID && why)
        *why = "msgpack rejected by the decoder";
    return rc;
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
