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

#include "keycodec.h"
#include "mpack.h"
#include "txn_int.h"

const udb_conflict *udb_conflict_info(const udb_txn *txn)
{
    return txn && txn->has_conflict ? &txn->conflict : NULL;
}

void udb__conflict_begin(udb_txn *txn, const udb_type *t)
{
    txn->has_conflict = false;
    txn->conflict.type = t->name;
    txn->conflict.count = 0;
    txn->cbuf.len = 0;
    txn->cbuf.oom = false;
}

int udb__conflict_add(udb_txn *txn, const udb_type *t, const udb_index *ix,
                      const msgpack_object *const *vals, const void *pk, size_t pklen)
{
    size_t n = txn->conflict.count;
    if (n == txn->ccap) {
        size_t cap = txn->ccap ? txn->ccap * 2 : 4;
        udb_conflict_index *ci = realloc(txn->cidx, cap * sizeof *ci);
        if (!ci)
            return UDB_ENOMEM;
        txn->cidx = ci;
        size_t (*co)[2] = realloc(txn->coff, cap * sizeof *co);
        if (!co)
            return UDB_ENOMEM;
        txn->coff = co;
        txn->ccap = cap;
    }
    udb_conflict_index *c = &txn->cidx[n];
    c->index = ix->name;
    c->nfields = ix->nfields;
    c->fields = ix->fnames;

    msgpack_packer pk_;
    msgpack_packer_init(&pk_, &txn->cbuf, udb__buf_sbuffer_write);
    size_t start = txn->cbuf.len;
    msgpack_pack_array(&pk_, ix->nfields);
    for (size_t i = 0; i < ix->nfields; i++) {
        const msgpack_object *o = vals[ix->fields[i]];
        if (o)
            msgpack_pack_object(&pk_, *o);
        else
            msgpack_pack_nil(&pk_);
    }
    c->values.size = txn->cbuf.len - start;
    txn->coff[n][0] = start;

    start = txn->cbuf.len;
    const unsigned char *p = pk, *end = p + pklen;
    int rc = udb__tk_to_msgpack(&pk_, &p, end);
    if (rc)
        return rc;
    c->existing_key.size = txn->cbuf.len - start;
    txn->coff[n][1] = start;
    if (txn->cbuf.oom)
        return UDB_ENOMEM;
    txn->conflict.count = n + 1;
    (void)t;
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
    msgpack_unpacked_destroy(&up);
}

int udb__conflict_finish(udb_txn *txn)
{
    udb_conflict *c = &txn->conflict;
    for (size_t i = 0; i < c->count; i++) {
        txn->cidx[i].values.data = txn->cbuf.p + txn->coff[i][0];
        txn->cidx[i].existing_key.data = txn->cbuf.p + txn->coff[i][1];
    }
    c->indexes = txn->cidx;
    txn->has_conflict = c->count > 0;
    if (!c->count)
        return 0;

    const udb_conflict_index *ci = &txn->cidx[0];
    const udb_type *t = udb__schema_type(txn->schema, c->type);
    udb_buf m = {0};
    udb__buf_printf(&m, "duplicate key in unique index \"%s.%s\": (", c->type, ci->index);
    for (size_t i = 0; i < ci->nfields; i++)
        udb__buf_printf(&m, "%s%s", i ? ", " : "", ci->fields[i]);
    udb__buf_printf(&m, ")=(");
    render_list(&m, ci->values.data, ci->values.size);
    udb__buf_printf(&m, ") already exists as %s ", t ? t->fields[t->key].name : "key");
    render_list(&m, ci->existing_key.data, ci->existing_key.size);
    if (c->count > 1)
        udb__buf_printf(&m, " (and %zu more unique indexes violated)", c->count - 1);
    int rc = udb__err(txn, UDB_ECONFLICT, "%s", m.p ? (const char *)m.p : "duplicate key");
    udb__buf_free(&m);
    return rc;
}
