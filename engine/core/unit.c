/*
 * unit.c -- a udb_exec() unit: checked whole before anything runs (argument
 * errors never reach a transaction), run op by op in a write transaction,
 * its results kept, and its bytes for shipping to another process's leader.
 *
 * Inside the transaction each op is the public call of the same name;
 * whatever it returns -- the record, the conflict detail, the message -- is
 * copied at once into the results' own arena, because the transaction's
 * memory dies with it (and udb_write may run the unit on another thread, or
 * twice when the map grows: each run starts the results afresh).  The first
 * failing op fails the unit: the caller's nested transaction is then rolled
 * back, so nothing of it is written.
 */
#include <limits.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "mpack.h"
#include "unit.h"

/* ---- checking the unit ---------------------------------------------------- */

enum {
    F_TYPE = 1 << 0, F_INDEX = 1 << 1, F_REC = 1 << 2, F_KEY = 1 << 3, F_ONINS = 1 << 4,
    F_CANDS = 1 << 5, F_FLAGS = 1 << 6, F_SEQ = 1 << 7, F_FEED = 1 << 8
};

static const struct {
    const char *name;
    unsigned takes;
} KINDS[] = {
    [UDB_OP_INSERT] = {"insert", F_TYPE | F_REC | F_FEED},
    [UDB_OP_INSERT_OR_GET] = {"insert_or_get", F_TYPE | F_INDEX | F_REC | F_FEED},
    [UDB_OP_UPSERT] = {"upsert", F_TYPE | F_INDEX | F_REC | F_ONINS | F_FEED},
    [UDB_OP_UPDATE] = {"update", F_TYPE | F_KEY | F_REC | F_FLAGS | F_FEED},
    [UDB_OP_DELETE] = {"delete", F_TYPE | F_KEY},
    [UDB_OP_INSERT_FIRST] = {"insert_first", F_TYPE | F_CANDS},
    [UDB_OP_SEQ_NEXT] = {"seq_next", F_SEQ},
};
#define NKINDS (sizeof KINDS / sizeof KINDS[0])

static bool has_val(udb_val v)
{
    return v.data || v.size;
}

/* The size of one op as a caller built against `version` lays it out. */
static size_t op_size(unsigned version)
{
    return version == 1 ? sizeof(udb_op) : 0;
}

/* The fields op sets that its kind does not take, as a bit set. */
static unsigned fields_set(const udb_op *op)
{
    return (op->type ? F_TYPE : 0u) | (op->index ? F_INDEX : 0u) |
           (has_val(op->rec) ? F_REC : 0u) | (has_val(op->key) ? F_KEY : 0u) |
           (has_val(op->on_insert) ? F_ONINS : 0u) |
           (op->candidates || op->ncandidates ? F_CANDS : 0u) | (op->flags ? F_FLAGS : 0u) |
           (op->seq ? F_SEQ : 0u) | (op->seq_field || op->seq_op ? F_FEED : 0u);
}

static const char *field_name(unsigned f)
{
    switch (f) {
    case F_TYPE: return "type";
    case F_INDEX: return "index";
    case F_REC: return "rec";
    case F_KEY: return "key";
    case F_ONINS: return "on_insert";
    case F_CANDS: return "candidates";
    case F_FLAGS: return "flags";
    case F_SEQ: return "seq";
    default: return "seq_field";
    }
}

static int check_op(const udb_op *ops, size_t i)
{
    const udb_op *op = &ops[i];
    if (op->version != ops[0].version)
        return udb__env_err(UDB_EINVAL, "udb_exec: ops[%zu]: version %u, but ops[0] has %u: "
                            "every op of a call must come from the same UDB_OP_INIT", i,
                            op->version, ops[0].version);
    if (op->kind == 0 || op->kind >= NKINDS)
        return udb__env_err(UDB_EINVAL, "udb_exec: ops[%zu]: unknown kind %u (UDB_OP_INSERT, "
                            "UDB_OP_INSERT_OR_GET, UDB_OP_UPSERT, UDB_OP_UPDATE, UDB_OP_DELETE, "
                            "UDB_OP_INSERT_FIRST, UDB_OP_SEQ_NEXT)", i, op->kind);
    const char *kind = KINDS[op->kind].name;
    unsigned extra = fields_set(op) & ~KINDS[op->kind].takes;
    if (extra)
        return udb__env_err(UDB_EINVAL, "udb_exec: ops[%zu] (%s): %s is set, but %s takes no %s",
                            i, kind, field_name(extra & -extra), kind,
                            field_name(extra & -extra));
    const char *missing = NULL;
    if (op->kind != UDB_OP_SEQ_NEXT && !op->type)
        missing = "type (the record type)";
    else if ((KINDS[op->kind].takes & F_REC) && !op->rec.data)
        missing = "rec (a msgpack map)";
    else if ((KINDS[op->kind].takes & F_KEY) && !op->key.data)
        missing = "key (the primary key, a msgpack value)";
    else if (op->kind == UDB_OP_INSERT_FIRST && (!op->candidates || !op->ncandidates))
        missing = "candidates (and ncandidates >= 1)";
    else if (op->kind == UDB_OP_SEQ_NEXT && !op->seq)
        missing = "seq (the sequence name)";
    if (missing)
        return udb__env_err(UDB_EINVAL, "udb_exec: ops[%zu] (%s): needs %s", i, kind, missing);
    if (op->on_insert.size && !op->on_insert.data)
        return udb__env_err(UDB_EINVAL, "udb_exec: ops[%zu] (%s): on_insert has a size but no "
                            "data", i, kind);
    if (op->flags & ~UDB_MERGE)
        return udb__env_err(UDB_EINVAL, "udb_exec: ops[%zu] (%s): unknown flags 0x%x (0 or "
                            "UDB_MERGE)", i, kind, op->flags);
    if (op->seq_op && !op->seq_field)
        return udb__env_err(UDB_EINVAL, "udb_exec: ops[%zu] (%s): seq_op is set but seq_field "
                            "is not", i, kind);
    if (op->seq_field && (op->seq_op >= i || ops[op->seq_op].kind != UDB_OP_SEQ_NEXT))
        return udb__env_err(UDB_EINVAL, "udb_exec: ops[%zu] (%s): seq_op %zu must name an "
                            "earlier op of kind UDB_OP_SEQ_NEXT", i, kind, op->seq_op);
    return 0;
}

int udb__unit_check(const udb_op *ops, size_t n)
{
    if (n == 0 || n > UDB_EXEC_MAX)
        return udb__env_err(UDB_EINVAL, "udb_exec: n is %zu; a unit has 1 to %d ops", n,
                            UDB_EXEC_MAX);
    if (!op_size(ops[0].version))
        return udb__env_err(UDB_EINVAL, "udb_exec: ops[0]: version %u is not one this library "
                            "knows (%d); start every op from UDB_OP_INIT", ops[0].version,
                            UDB_OP_VERSION);
    for (size_t i = 0; i < n; i++) {
        int rc = check_op(ops, i);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- copying results out of the transaction --------------------------------- */

static int keep_val(udb_val *out, udb_arena *a, udb_val v)
{
    void *p = udb__arena_dup(a, v.data, v.size);
    if (!p)
        return UDB_ENOMEM;
    out->data = p;
    out->size = v.size;
    return 0;
}

static const char *keep_str(udb_arena *a, const char *s)
{
    return s ? udb__arena_dup(a, s, strlen(s) + 1) : NULL;
}

/* A deep copy of c (udb_conflict_info's detail) in a. */
static int keep_conflict(const udb_conflict **out, udb_arena *a, const udb_conflict *c)
{
    udb_conflict *d = udb__arena_alloc(a, sizeof *d);
    udb_conflict_index *ix = udb__arena_alloc(a, (c->count ? c->count : 1) * sizeof *ix);
    if (!d || !ix || !(d->type = keep_str(a, c->type)))
        return UDB_ENOMEM;
    d->count = c->count;
    d->indexes = ix;
    for (size_t i = 0; i < c->count; i++) {
        const udb_conflict_index *s = &c->indexes[i];
        const char **f = udb__arena_alloc(a, (s->nfields ? s->nfields : 1) * sizeof *f);
        if (!f || !(ix[i].index = keep_str(a, s->index)))
            return UDB_ENOMEM;
        for (size_t j = 0; j < s->nfields; j++)
            if (!(f[j] = keep_str(a, s->fields[j])))
                return UDB_ENOMEM;
        ix[i].nfields = s->nfields;
        ix[i].fields = f;
        if (keep_val(&ix[i].values, a, s->values) ||
            keep_val(&ix[i].existing_key, a, s->existing_key))
            return UDB_ENOMEM;
    }
    *out = d;
    return 0;
}

/* ---- running the unit ------------------------------------------------------- */

/* rec with `field` set to v (added, or replacing the value it has). */
static int with_field(udb_buf *out, const char **why, udb_val rec, const char *field,
                      uint64_t v)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    int rc = udb__mp_parse(&up, rec.data, rec.size, why);
    if (!rc && up.data.type != MSGPACK_OBJECT_MAP) {
        *why = "rec is not a msgpack map";
        rc = UDB_EBADRECORD;
    }
    if (rc) {
        udb__mp_done(&up);
        return rc;
    }
    const msgpack_object_map *m = &up.data.via.map;
    size_t flen = strlen(field);
    bool found = false;
    for (uint32_t i = 0; i < m->size && !found; i++) {
        const msgpack_object *k = &m->ptr[i].key;
        found = k->type == MSGPACK_OBJECT_STR && k->via.str.size == flen &&
                udb__same_bytes(k->via.str.ptr, field, flen);
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, udb__buf_sbuffer_write);
    msgpack_pack_map(&pk, m->size + !found);
    for (uint32_t i = 0; i < m->size; i++) {
        const msgpack_object *k = &m->ptr[i].key;
        msgpack_pack_object(&pk, *k);
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == flen &&
            udb__same_bytes(k->via.str.ptr, field, flen))
            msgpack_pack_uint64(&pk, v);
        else
            msgpack_pack_object(&pk, m->ptr[i].val);
    }
    if (!found) {
        msgpack_pack_str_with_body(&pk, field, flen);
        msgpack_pack_uint64(&pk, v);
    }
    udb__mp_done(&up);
    if (out->oom) {
        *why = "out of memory";
        return UDB_ENOMEM;
    }
    return 0;
}

static void results_clear(udb_results *res, size_t keep)
{
    for (size_t i = 0; i < res->count; i++) {
        if (i == keep)
            continue;
        memset(&res->items[i], 0, sizeof res->items[i]);
        res->items[i].errmsg = "";
    }
}

/* Run one op; *why (set only by exec.c's own failures) overrides udb_errmsg. */
static int run_op(udb_result *r, const char **why, udb_txn *txn, const udb_unit *u, size_t i)
{
    const udb_op *op = &u->ops[i];
    udb_arena *a = &u->res->arena;
    udb_val out = {NULL, 0}, rec = op->rec;
    udb_buf fed = {0};
    int rc = 0;
    if (op->seq_field) {
        if ((rc = with_field(&fed, why, op->rec, op->seq_field, u->res->items[op->seq_op].value)))
            goto out;
        rec.data = fed.p;
        rec.size = fed.len;
    }
    switch (op->kind) {
    case UDB_OP_INSERT:
        rc = udb_insert(&out, txn, op->type, rec.data, rec.size);
        r->created = !rc;
        break;
    case UDB_OP_INSERT_OR_GET:
        rc = udb_insert_or_get(&out, &r->created, txn, op->type, op->index, rec.data, rec.size);
        break;
    case UDB_OP_UPSERT:
        rc = udb_upsert(&out, &r->created, txn, op->type, op->index, rec.data, rec.size,
                        op->on_insert.data, op->on_insert.size);
        break;
    case UDB_OP_UPDATE:
        rc = udb_update(&out, txn, op->type, op->key.data, op->key.size, rec.data, rec.size,
                        op->flags);
        break;
    case UDB_OP_DELETE:
        rc = udb_delete(txn, op->type, op->key.data, op->key.size);
        break;
    case UDB_OP_INSERT_FIRST:
        rc = udb_insert_first(&out, &r->chosen, txn, op->type, op->candidates,
                              op->ncandidates);
        break;
    case UDB_OP_SEQ_NEXT:
        rc = udb_seq_next(&r->value, txn, op->seq);
        break;
    }
    if (!rc && out.data && keep_val(&r->record, a, out)) {
        *why = "out of memory keeping the result";
        rc = UDB_ENOMEM;
    }
out:
    udb__buf_free(&fed);
    return rc;
}

int udb__unit_run(udb_txn *txn, void *arg)
{
    udb_unit *u = arg;
    udb_results *res = u->res;
    udb__arena_free(&res->arena);   /* a rerun (the map grew) starts afresh */
    results_clear(res, (size_t)-1);
    u->failed = u->n;
    for (size_t i = 0; i < u->n; i++) {
        udb_result *r = &res->items[i];
        const char *why = NULL;
        int rc = run_op(r, &why, txn, u, i);
        if (!rc)
            continue;
        u->failed = i;
        u->failed_rc = rc;
        r->rc = rc;
        const udb_conflict *c = rc == UDB_ECONFLICT ? udb_conflict_info(txn) : NULL;
        const char *msg = why ? why : udb_errmsg(txn)[0] ? udb_errmsg(txn) : udb_strerror(rc);
        if (!(r->errmsg = keep_str(&res->arena, msg)))
            r->errmsg = udb_strerror(UDB_ENOMEM);
        if (c && keep_conflict(&r->conflict, &res->arena, c))
            r->conflict = NULL;   /* the code and message still say what happened */
        return rc;
    }
    return 0;
}

bool udb__unit_may_be_held(const udb_unit *u)
{
    for (size_t i = 0; i < u->n; i++)
        if (u->ops[i].kind != UDB_OP_INSERT_OR_GET || u->ops[i].seq_field)
            return false;
    return true;
}

bool udb__unit_held(udb_txn *txn, udb_unit *u)
{
    udb_results *res = u->res;
    if (!udb__unit_may_be_held(u))
        return false;
    udb__arena_free(&res->arena);
    results_clear(res, (size_t)-1);
    bool held = true;
    for (size_t i = 0; i < u->n && held; i++) {
        const udb_op *op = &u->ops[i];
        udb_val out = {NULL, 0};
        bool h = false;
        int rc = udb__insert_or_get_held(&out, &h, txn, op->type, op->index, op->rec.data,
                                         op->rec.size);
        held = !rc && h && out.data && !keep_val(&res->items[i].record, &res->arena, out);
    }
    if (!held) {
        udb__arena_free(&res->arena);
        results_clear(res, (size_t)-1);
        return false;
    }
    u->failed = u->n;
    return true;
}

const char *udb__unit_kind(unsigned kind)
{
    return kind && kind < NKINDS ? KINDS[kind].name : "?";
}

udb_results *udb__results_new(size_t n)
{
    udb_results *res = calloc(1, sizeof *res);
    if (!res || !(res->items = calloc(n, sizeof *res->items))) {
        free(res);
        return NULL;
    }
    res->count = n;
    res->failed = n;
    results_clear(res, (size_t)-1);
    return res;
}

void udb__unit_settle(udb_unit *u, int rc)
{
    udb_results *res = u->res;
    if (!rc)
        return;
    /* the unit is not written: only the failed op's result stays */
    bool op_failed = u->failed < u->n && rc == u->failed_rc;
    res->failed = op_failed ? u->failed : u->n;
    results_clear(res, res->failed);
    if (op_failed)
        udb__env_err(rc, "udb_exec: ops[%zu] (%s): %s", u->failed,
                     KINDS[u->ops[u->failed].kind].name, res->items[u->failed].errmsg);
}

/* ---- as bytes ---------------------------------------------------------------- */

/* Both sides are this library: the version only lets a leader of another
 * version refuse (bounce) a unit it would misread. */
#define WIRE_VERSION 1
#define OP_FIELDS 11
#define RESULT_FIELDS 7

static void enc_str(msgpack_packer *pk, const char *s)
{
    if (s)
        msgpack_pack_str_with_body(pk, s, strlen(s));
    else
        msgpack_pack_nil(pk);
}

static void enc_val(msgpack_packer *pk, udb_val v)
{
    if (v.data)
        msgpack_pack_bin_with_body(pk, v.data, v.size);
    else
        msgpack_pack_nil(pk);
}

void udb__unit_encode(udb_buf *b, const udb_op *ops, size_t n)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, udb__buf_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_unsigned_int(&pk, WIRE_VERSION);
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++) {
        const udb_op *op = &ops[i];
        msgpack_pack_array(&pk, OP_FIELDS);
        msgpack_pack_unsigned_int(&pk, op->kind);
        enc_str(&pk, op->type);
        enc_str(&pk, op->index);
        enc_val(&pk, op->rec);
        enc_val(&pk, op->key);
        enc_val(&pk, op->on_insert);
        if (op->candidates) {
            msgpack_pack_array(&pk, op->ncandidates);
            for (size_t j = 0; j < op->ncandidates; j++)
                enc_val(&pk, op->candidates[j]);
        } else {
            msgpack_pack_nil(&pk);
        }
        msgpack_pack_unsigned_int(&pk, op->flags);
        enc_str(&pk, op->seq);
        enc_str(&pk, op->seq_field);
        msgpack_pack_uint64(&pk, op->seq_op);
    }
}

static bool is_uint(const msgpack_object *o, uint64_t max)
{
    return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= max;
}

static bool is_array(const msgpack_object *o, uint32_t n)
{
    return o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == n;
}

/* A string (nil: NULL when nil_ok) copied NUL-terminated into a. */
static bool dec_str(const char **out, udb_arena *a, const msgpack_object *o, bool nil_ok)
{
    if (o->type == MSGPACK_OBJECT_NIL) {
        *out = NULL;
        return nil_ok;
    }
    size_t n = o->type == MSGPACK_OBJECT_STR ? o->via.str.size : 0;
    if (o->type != MSGPACK_OBJECT_STR || (n && memchr(o->via.str.ptr, 0, n)))
        return false;
    char *s = udb__arena_alloc(a, n + 1);
    if (!s)
        return false;
    if (n)
        memcpy(s, o->via.str.ptr, n);
    s[n] = 0;
    *out = s;
    return true;
}

/* Bytes (nil: {NULL, 0}) copied into a. */
static bool dec_val(udb_val *out, udb_arena *a, const msgpack_object *o)
{
    static const char none[1];
    out->data = NULL;
    out->size = 0;
    if (o->type == MSGPACK_OBJECT_NIL)
        return true;
    if (o->type != MSGPACK_OBJECT_BIN)
        return false;
    out->size = o->via.bin.size;
    out->data = out->size ? udb__arena_dup(a, o->via.bin.ptr, out->size) : none;
    return out->data != NULL;
}

static bool dec_op(udb_op *op, udb_arena *a, const msgpack_object *o)
{
    udb_op init = UDB_OP_INIT;
    *op = init;
    if (!is_array(o, OP_FIELDS))
        return false;
    const msgpack_object *f = o->via.array.ptr;
    if (!is_uint(&f[0], UINT_MAX) || !is_uint(&f[7], UINT_MAX) || !is_uint(&f[10], SIZE_MAX))
        return false;
    op->kind = (unsigned)f[0].via.u64;
    op->flags = (unsigned)f[7].via.u64;
    op->seq_op = (size_t)f[10].via.u64;
    if (!dec_str(&op->type, a, &f[1], true) || !dec_str(&op->index, a, &f[2], true) ||
        !dec_val(&op->rec, a, &f[3]) || !dec_val(&op->key, a, &f[4]) ||
        !dec_val(&op->on_insert, a, &f[5]) || !dec_str(&op->seq, a, &f[8], true) ||
        !dec_str(&op->seq_field, a, &f[9], true))
        return false;
    if (f[6].type == MSGPACK_OBJECT_NIL)
        return true;
    if (f[6].type != MSGPACK_OBJECT_ARRAY || !f[6].via.array.size)
        return false;
    size_t nc = f[6].via.array.size;
    udb_val *c = udb__arena_alloc(a, nc * sizeof *c);
    if (!c)
        return false;
    for (size_t j = 0; j < nc; j++)
        if (!dec_val(&c[j], a, &f[6].via.array.ptr[j]) || !c[j].data)
            return false;
    op->candidates = c;
    op->ncandidates = nc;
    return true;
}

int udb__unit_decode(udb_op **ops, size_t *n, udb_arena *a, const void *p, size_t len)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    const char *why = NULL;
    int rc = udb__mp_parse(&up, p, len, &why);
    const msgpack_object *o = &up.data;
    bool ok = !rc && is_array(o, 2) && is_uint(&o->via.array.ptr[0], WIRE_VERSION) &&
              o->via.array.ptr[0].via.u64 == WIRE_VERSION &&
              o->via.array.ptr[1].type == MSGPACK_OBJECT_ARRAY;
    size_t count = ok ? o->via.array.ptr[1].via.array.size : 0;
    udb_op *v = NULL;
    if (ok && (count == 0 || count > UDB_EXEC_MAX || !(v = udb__arena_alloc(a, count * sizeof *v))))
        ok = false;
    for (size_t i = 0; ok && i < count; i++)
        ok = dec_op(&v[i], a, &o->via.array.ptr[1].via.array.ptr[i]);
    udb__mp_done(&up);
    if (!ok)
        return udb__env_err(UDB_EINVAL, "udb_exec: a shipped unit is not one this version "
                            "reads (%s)", why ? why : "layout");
    *ops = v;
    *n = count;
    return udb__unit_check(v, count);
}

static void enc_conflict(msgpack_packer *pk, const udb_conflict *c)
{
    msgpack_pack_array(pk, 2);
    enc_str(pk, c->type);
    msgpack_pack_array(pk, c->count);
    for (size_t i = 0; i < c->count; i++) {
        const udb_conflict_index *x = &c->indexes[i];
        msgpack_pack_array(pk, 4);
        enc_str(pk, x->index);
        msgpack_pack_array(pk, x->nfields);
        for (size_t j = 0; j < x->nfields; j++)
            enc_str(pk, x->fields[j]);
        enc_val(pk, x->values);
        enc_val(pk, x->existing_key);
    }
}

void udb__results_encode(udb_buf *b, const udb_unit *u)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, udb__buf_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint64(&pk, u->failed);
    msgpack_pack_int64(&pk, u->failed_rc);
    msgpack_pack_array(&pk, u->n);
    for (size_t i = 0; i < u->n; i++) {
        const udb_result *r = &u->res->items[i];
        msgpack_pack_array(&pk, RESULT_FIELDS);
        msgpack_pack_int64(&pk, r->rc);
        msgpack_pack_int64(&pk, r->created);
        enc_val(&pk, r->record);
        msgpack_pack_uint64(&pk, r->chosen);
        msgpack_pack_uint64(&pk, r->value);
        enc_str(&pk, r->errmsg);
        if (r->conflict)
            enc_conflict(&pk, r->conflict);
        else
            msgpack_pack_nil(&pk);
    }
}

static bool is_int(const msgpack_object *o)
{
    return (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT_MAX) ||
           (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && o->via.i64 >= INT_MIN);
}

static bool dec_conflict(const udb_conflict **out, udb_arena *a, const msgpack_object *o)
{
    if (o->type == MSGPACK_OBJECT_NIL)
        return true;
    if (!is_array(o, 2) || o->via.array.ptr[1].type != MSGPACK_OBJECT_ARRAY)
        return false;
    const msgpack_object_array *xs = &o->via.array.ptr[1].via.array;
    udb_conflict *c = udb__arena_alloc(a, sizeof *c);
    udb_conflict_index *ix = udb__arena_alloc(a, (xs->size ? xs->size : 1) * sizeof *ix);
    if (!c || !ix || !dec_str(&c->type, a, &o->via.array.ptr[0], false))
        return false;
    c->count = xs->size;
    c->indexes = ix;
    for (size_t i = 0; i < xs->size; i++) {
        const msgpack_object *x = &xs->ptr[i];
        if (!is_array(x, 4) || x->via.array.ptr[1].type != MSGPACK_OBJECT_ARRAY)
            return false;
        const msgpack_object_array *fs = &x->via.array.ptr[1].via.array;
        const char **f = udb__arena_alloc(a, (fs->size ? fs->size : 1) * sizeof *f);
        if (!f || !dec_str(&ix[i].index, a, &x->via.array.ptr[0], false))
            return false;
        for (size_t j = 0; j < fs->size; j++)
            if (!dec_str(&f[j], a, &fs->ptr[j], false))
                return false;
        ix[i].nfields = fs->size;
        ix[i].fields = f;
        if (!dec_val(&ix[i].values, a, &x->via.array.ptr[2]) ||
            !dec_val(&ix[i].existing_key, a, &x->via.array.ptr[3]))
            return false;
    }
    *out = c;
    return true;
}

static bool dec_result(udb_result *r, udb_arena *a, const msgpack_object *o)
{
    if (!is_array(o, RESULT_FIELDS))
        return false;
    const msgpack_object *f = o->via.array.ptr;
    if (!is_int(&f[0]) || !is_int(&f[1]) || !is_uint(&f[3], SIZE_MAX) ||
        !is_uint(&f[4], UINT64_MAX))
        return false;
    r->rc = (int)f[0].via.i64;
    r->created = (int)f[1].via.i64;
    r->chosen = (size_t)f[3].via.u64;
    r->value = f[4].via.u64;
    const char *msg;
    if (!dec_val(&r->record, a, &f[2]) || !dec_str(&msg, a, &f[5], false) ||
        !dec_conflict(&r->conflict, a, &f[6]))
        return false;
    r->errmsg = msg;
    return true;
}

int udb__results_decode(udb_results *res, size_t *failed, int *failed_rc, const void *p,
                        size_t len)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    int rc = udb__mp_parse(&up, p, len, NULL);
    const msgpack_object *o = &up.data;
    bool ok = !rc && is_array(o, 3) && is_uint(&o->via.array.ptr[0], res->count) &&
              is_int(&o->via.array.ptr[1]) && is_array(&o->via.array.ptr[2], (uint32_t)res->count);
    udb__arena_free(&res->arena);
    results_clear(res, (size_t)-1);
    for (size_t i = 0; ok && i < res->count; i++)
        ok = dec_result(&res->items[i], &res->arena, &o->via.array.ptr[2].via.array.ptr[i]);
    if (ok) {
        *failed = (size_t)o->via.array.ptr[0].via.u64;
        *failed_rc = (int)o->via.array.ptr[1].via.i64;
    } else {
        udb__arena_free(&res->arena);
        results_clear(res, (size_t)-1);
    }
    udb__mp_done(&up);
    return ok ? 0 : UDB_EINVAL;
}
