/*
 * record.c -- records: validation against the schema, canonical packing,
 * and merge patches.
 *
 * Every record that enters the database passes through udb__rec_parse, which
 * checks the msgpack bytes before msgpack-c sees them and then every field
 * against its declaration, naming the type, the field, what was expected and
 * what was found.  Stored records are canonical (schema field order, nils
 * dropped, floats as float64), so equal records are equal bytes and a dump is
 * reproducible.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mpack.h"
#include "record.h"

void udb__rec_init(udb_rec *r)
{
    memset(r, 0, sizeof *r);
    msgpack_unpacked_init(&r->up);
}

void udb__rec_free(udb_rec *r)
{
    udb__mp_done(&r->up);
    free(r->vals);   /* set and extra are in its block */
    memset(r, 0, sizeof *r);
}

static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) { i++; continue; }
        else if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
        else return false;
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

double udb__as_double(const msgpack_object *o)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return (double)o->via.u64;
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return (double)o->via.i64;
    return o->via.f64; /* -0.0 stays -0.0: a value is never changed silently (keys
                          treat it as 0.0, as SQL does) */
}

static void expected(udb_buf *msg, const udb_type *t, const udb_field *f, const char *what,
                     const msgpack_object *o)
{
    udb__buf_printf(msg, "type \"%s\", field \"%s\": expected %s, found %s ", t->name, f->name,
                    what, udb__mp_typename(o));
    udb__mp_render(msg, o, true);
}

/* Check one declared field's value.  0 or UDB_EBADRECORD. */
int udb__check_value(const udb_type *t, const udb_field *f, const msgpack_object *o,
                     udb_buf *msg)
{
    switch (f->type) {
    case UDB_F_ANY:
        return 0;
    case UDB_F_STR:
        if (o->type != MSGPACK_OBJECT_STR)
            break;
        if (!utf8_valid((const unsigned char *)o->via.str.ptr, o->via.str.size)) {
            udb__buf_printf(msg, "type \"%s\", field \"%s\": string is not valid UTF-8",
                            t->name, f->name);
            return UDB_EBADRECORD;
        }
        return 0;
    case UDB_F_INT:
        if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER ||
            (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX))
            return 0;
        if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            expected(msg, t, f, "int (a 64-bit signed integer)", o);
            return UDB_EBADRECORD;
        }
        break;
    case UDB_F_UINT:
        if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            return 0;
        if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
            expected(msg, t, f, "uint (a non-negative integer)", o);
            return UDB_EBADRECORD;
        }
        break;
    case UDB_F_FLOAT:
        if (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64) {
            if (isnan(o->via.f64)) {
                udb__buf_printf(msg, "type \"%s\", field \"%s\": NaN is not a storable float",
                                t->name, f->name);
                return UDB_EBADRECORD;
            }
            return 0;
        }
        /* integers are accepted where they convert exactly (JSON has no 1.0) */
        if ((o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= (1ull << 53)) ||
            (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && o->via.i64 >= -(1ll << 53)))
            return 0;
        break;
    case UDB_F_BOOL:
        if (o->type == MSGPACK_OBJECT_BOOLEAN)
            return 0;
        break;
    case UDB_F_BIN:
        if (o->type == MSGPACK_OBJECT_BIN)
            return 0;
        break;
    case UDB_F_ENUM:
        if (o->type == MSGPACK_OBJECT_STR)
            for (size_t i = 0; i < f->nvalues; i++)
                if (strlen(f->values[i]) == o->via.str.size &&
                    udb__same_bytes(f->values[i], o->via.str.ptr, o->via.str.size))
                    return 0;
        udb__buf_printf(msg, "type \"%s\", field \"%s\": expected one of ", t->name, f->name);
        for (size_t i = 0; i < f->nvalues; i++)
            udb__buf_printf(msg, "%s%s", i ? ", " : "", f->values[i]);
        udb__buf_printf(msg, "; found %s ", udb__mp_typename(o));
        udb__mp_render(msg, o, true);
        return UDB_EBADRECORD;
    }
    expected(msg, t, f, udb__ftype_name(f->type), o);
    return UDB_EBADRECORD;
}

int udb__rec_parse(udb_rec *r, const udb_type *t, const void *buf, size_t len, bool partial,
                   udb_buf *msg)
{
    const char *why = NULL;
    if (buf && len > UDB_MAX_RECORD) {
        udb__buf_printf(msg, "type \"%s\": the record has %zu bytes as msgpack; a record may "
                        "have at most %u bytes (4 MiB)", t->name, len, UDB_MAX_RECORD);
        return UDB_EBADRECORD;
    }
    int rc = udb__mp_parse(&r->up, buf, len, &why);
    if (rc) {
        if (rc == UDB_EBADRECORD)
            udb__buf_printf(msg, "type \"%s\": record is not valid msgpack: %s", t->name,
                            why ? why : "malformed");
        return rc;
    }
    const msgpack_object *m = &r->up.data;
    if (m->type != MSGPACK_OBJECT_MAP) {
        udb__buf_printf(msg, "type \"%s\": a record must be a msgpack map, found %s", t->name,
                        udb__mp_typename(m));
        return UDB_EBADRECORD;
    }
    /* one block: vals, then extra, then set (pointers first: aligned) */
    size_t nx = (size_t)m->via.map.size + 1;
    void *block = calloc(1, t->nfields * sizeof *r->vals + nx * sizeof *r->extra +
                                t->nfields * sizeof *r->set);
    if (!block)
        return UDB_ENOMEM;
    r->vals = block;
    r->extra = (const msgpack_object_kv **)(r->vals + t->nfields);
    r->set = (bool *)(r->extra + nx);
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object_kv *kv = &m->via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR) {
            udb__buf_printf(msg, "type \"%s\": record keys must be strings, found %s", t->name,
                            udb__mp_typename(&kv->key));
            return UDB_EBADRECORD;
        }
        const char *k = kv->key.via.str.ptr;
        size_t kn = kv->key.via.str.size;
        size_t f;
        for (f = 0; f < t->nfields; f++)
            if (t->fields[f].namelen == kn && udb__same_bytes(t->fields[f].name, k, kn))
                break;
        if (f == t->nfields) {
            for (size_t e = 0; e < r->nextra; e++)
                if (r->extra[e]->key.via.str.size == kn &&
                    udb__same_bytes(r->extra[e]->key.via.str.ptr, k, kn)) {
                    udb__buf_printf(msg, "type \"%s\": field \"%.*s\" appears twice", t->name,
                                    (int)(kn > 100 ? 100 : kn), k);
                    return UDB_EBADRECORD;
                }
            if (!utf8_valid((const unsigned char *)k, kn)) {
                udb__buf_printf(msg, "type \"%s\": a field name is not valid UTF-8", t->name);
                return UDB_EBADRECORD;
            }
            if (!t->extra) {
                udb__buf_printf(msg, "type \"%s\": unknown field \"%.*s\" (declared:", t->name,
                                (int)(kn > 100 ? 100 : kn), k);
                for (size_t d = 0; d < t->nfields; d++)
                    udb__buf_printf(msg, "%s %s", d ? "," : "", t->fields[d].name);
                udb__buf_printf(msg, ")");
                return UDB_EBADRECORD;
            }
            r->extra[r->nextra++] = kv;
            continue;
        }
        if (r->set[f]) {
            udb__buf_printf(msg, "type \"%s\": field \"%s\" appears twice", t->name,
                            t->fields[f].name);
            return UDB_EBADRECORD;
        }
        r->set[f] = true;
        if (kv->val.type == MSGPACK_OBJECT_NIL)
            continue;
        if ((rc = udb__check_value(t, &t->fields[f], &kv->val, msg)))
            return rc;
        r->vals[f] = &kv->val;
    }
    return partial ? 0 : udb__rec_required(r, t, msg);
}

int udb__rec_required(const udb_rec *r, const udb_type *t, udb_buf *msg)
{
    for (size_t f = 0; f < t->nfields; f++) {
        if (!t->fields[f].required || r->vals[f])
            continue;
        udb__buf_printf(msg, "type \"%s\": missing required field \"%s\" (%s)", t->name,
                        t->fields[f].name, udb__ftype_name(t->fields[f].type));
        return UDB_EBADRECORD;
    }
    return 0;
}

int udb__rec_pack(udb_buf *out, const udb_rec *r, const udb_type *t, const msgpack_object *key)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, udb__buf_sbuffer_write);
    size_t n = 0;
    for (size_t f = 0; f < t->nfields; f++)
        if (r->vals[f] || (f == t->key && key))
            n++;
    for (size_t e = 0; e < r->nextra; e++)
        if (r->extra[e]->val.type != MSGPACK_OBJECT_NIL)
            n++;
    msgpack_pack_map(&pk, n);
    for (size_t f = 0; f < t->nfields; f++) {
        const msgpack_object *o = f == t->key && key ? key : r->vals[f];
        if (!o)
            continue;
        udb__mp_pack_str(out, t->fields[f].name, t->fields[f].namelen);
        if (t->fields[f].type == UDB_F_FLOAT)
            msgpack_pack_double(&pk, udb__as_double(o));
        else
            udb__mp_pack(&pk, out, o);
    }
    for (size_t e = 0; e < r->nextra; e++) {
        if (r->extra[e]->val.type == MSGPACK_OBJECT_NIL)
            continue;
        udb__mp_pack(&pk, out, &r->extra[e]->key);
        udb__mp_pack(&pk, out, &r->extra[e]->val);
    }
    return out->oom ? UDB_ENOMEM : 0;
}

static const msgpack_object *map_find(const msgpack_object *m, const msgpack_object *key)
{
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && key->type == MSGPACK_OBJECT_STR &&
            k->via.str.size == key->via.str.size &&
            udb__same_bytes(k->via.str.ptr, key->via.str.ptr, k->via.str.size))
            return &m->via.map.ptr[i].val;
    }
    return NULL;
}

static bool is_skip(const msgpack_object *k, const char *skip)
{
    return skip && k->type == MSGPACK_OBJECT_STR && strlen(skip) == k->via.str.size &&
           udb__same_bytes(skip, k->via.str.ptr, k->via.str.size);
}

int udb__rec_merge(udb_buf *out, const msgpack_object *base, const msgpack_object *patch,
                   const char *skip)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, udb__buf_sbuffer_write);
    size_t n = 0;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            msgpack_pack_map(&pk, n);
        for (uint32_t i = 0; i < base->via.map.size; i++) {
            const msgpack_object_kv *kv = &base->via.map.ptr[i];
            const msgpack_object *pv = is_skip(&kv->key, skip) ? NULL : map_find(patch, &kv->key);
            const msgpack_object *v = pv ? pv : &kv->val;
            if (v->type == MSGPACK_OBJECT_NIL)
                continue;
            if (pass == 0) {
                n++;
                continue;
            }
            udb__mp_pack(&pk, out, &kv->key);
            udb__mp_pack(&pk, out, v);
        }
        for (uint32_t i = 0; i < patch->via.map.size; i++) {
            const msgpack_object_kv *kv = &patch->via.map.ptr[i];
            if (kv->val.type == MSGPACK_OBJECT_NIL || is_skip(&kv->key, skip) ||
                map_find(base, &kv->key))
                continue;
            if (pass == 0) {
                n++;
                continue;
            }
            udb__mp_pack(&pk, out, &kv->key);
            udb__mp_pack(&pk, out, &kv->val);
        }
    }
    return out->oom ? UDB_ENOMEM : 0;
}
