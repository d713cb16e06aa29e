/*
 * conflict.c -- the structured detail of a unique-constraint violation.
 *
 * A conflict is never a generic error: besides UDB_ECONFLICT the transaction
 * keeps a structured list of every violated index (names, field names, the
 * values as msgpack, the holder's primary key as msgpack) so an application
 * can build a 409 response without parsing text.  The human message mimics
 * PostgreSQL's "duplicate key ... already exists".
 */
#include <stdlib.h>

#include "conflict.h"
#include "keycodec.h"
#include "mpack.h"

void udb__conflicts_free(udb_conflicts *c)
{
    udb__buf_free(&c->cbuf);
    free(c->cidx);
    free(c->coff);
}

void udb__conflicts_begin(udb_conflicts *c, const udb_type *t)
{
    c->has = false;
    c->t = t;
    c->conflict.type = t->name;
    c->conflict.count = 0;
    c->cbuf.len = 0;
    c->cbuf.oom = false;
}

int udb__conflicts_add(udb_conflicts *cs, const udb_index *ix, const msgpack_object *const *vals,
                       const void *pk, size_t pklen)
{
    size_t n = cs->conflict.count;
    if (n == cs->ccap) {
        size_t cap = cs->ccap ? cs->ccap * 2 : 4;
        udb_conflict_index *ci = realloc(cs->cidx, cap * sizeof *ci);
        if (!ci)
            return UDB_ENOMEM;
        cs->cidx = ci;
        size_t (*co)[2] = realloc(cs->coff, cap * sizeof *co);
        if (!co)
            return UDB_ENOMEM;
        cs->coff = co;
        cs->ccap = cap;
    }
    udb_conflict_index *c = &cs->cidx[n];
    c->index = ix->name;
    c->nfields = ix->nfields;
    c->fields = ix->fnames;

    msgpack_packer pk_;
    msgpack_packer_init(&pk_, &cs->cbuf, udb__buf_sbuffer_write);
    size_t start = cs->cbuf.len;
    msgpack_pack_array(&pk_, ix->nfields);
    for (size_t i = 0; i < ix->nfields; i++) {
        const msgpack_object *o = vals[ix->fields[i]];
        if (o)
            msgpack_pack_object(&pk_, *o);
        else
            msgpack_pack_nil(&pk_);
    }
    c->values.size = cs->cbuf.len - start;
    cs->coff[n][0] = start;

    start = cs->cbuf.len;
    const unsigned char *p = pk, *end = p + pklen;
    int rc = udb__tk_to_msgpack(&pk_, &p, end);
    if (rc)
        return rc;
    c->existing_key.size = cs->cbuf.len - start;
    cs->coff[n][1] = start;
    if (cs->cbuf.oom)
        return UDB_ENOMEM;
    cs->conflict.count = n + 1;
    return 0;
}

/* Render one msgpack array (values) as "a, b, c" for the message. */
static void render_list(udb_buf *b, const void *data, size_t size)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    if (udb__mp_unpack(&up, data, size) == 0 && up.data.type == MSGPACK_OBJECT_ARRAY) {
        for (uint32_t i = 0; i < up.data.via.array.size; i++) {
            if (i)
                udb__buf_printf(b, ", ");
            udb__mp_render(b, &up.data.via.array.ptr[i], false);
        }
    } else if (udb__mp_unpack(&up, data, size) == 0) {
        udb__mp_render(b, &up.data, false);
    }
    udb__mp_done(&up);
}

int udb__conflicts_finish(udb_conflicts *cs, udb_buf *msg)
{
    const udb_type *t = cs->t;
    udb_conflict *c = &cs->conflict;
    for (size_t i = 0; i < c->count; i++) {
        cs->cidx[i].values.data = cs->cbuf.p + cs->coff[i][0];
        cs->cidx[i].existing_key.data = cs->cbuf.p + cs->coff[i][1];
    }
    c->indexes = cs->cidx;
    cs->has = c->count > 0;
    if (!c->count)
        return 0;

    const udb_conflict_index *ci = &cs->cidx[0];
    udb__buf_printf(msg, "duplicate key in unique index \"%s.%s\": (", c->type, ci->index);
    for (size_t i = 0; i < ci->nfields; i++)
        udb__buf_printf(msg, "%s%s", i ? ", " : "", ci->fields[i]);
    udb__buf_printf(msg, ")=(");
    render_list(msg, ci->values.data, ci->values.size);
    udb__buf_printf(msg, ") already exists as %s ", t->fields[t->key].name);
    render_list(msg, ci->existing_key.data, ci->existing_key.size);
    if (c->count > 1)
        udb__buf_printf(msg, " (and %zu more unique indexes violated)", c->count - 1);
    return UDB_ECONFLICT;
}
