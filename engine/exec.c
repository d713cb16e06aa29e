/*
 * exec.c -- udb_exec: a unit of record operations given as data, run as one
 * atomic step through udb_write's group commit.
 *
 * The unit is checked whole before anything runs (argument errors never
 * reach a transaction).  Inside the transaction each op is the public call of
 * the same name; whatever it returns -- the record, the conflict detail, the
 * message -- is copied at once into the results' own arena, because the
 * transaction's memory dies with it (and udb_write may run the unit on
 * another thread, or twice when the map grows: each run starts the results
 * afresh).  The first failing op fails the unit: udb_write then rolls back
 * the unit's nested transaction, so nothing of it is written.
 */
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "env.h"
#include "error.h"
#include "mpack.h"

struct udb_results {
    size_t count;
    size_t failed;        /* the op that failed the unit, or count */
    udb_result *items;
    udb_arena arena;      /* records, messages, conflict detail */
};

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

static int check_unit(const udb_op *ops, size_t n)
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
        msgpack_unpacked_destroy(&up);
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
    msgpack_unpacked_destroy(&up);
    if (out->oom) {
        *why = "out of memory";
        return UDB_ENOMEM;
    }
    return 0;
}

typedef struct unit {
    const udb_op *ops;
    size_t n;
    udb_results *res;
    size_t failed;     /* the op that failed in the last run, or n */
    int failed_rc;
} unit;

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
static int run_op(udb_result *r, const char **why, udb_txn *txn, const unit *u, size_t i)
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

/* udb_write's fn: every op in order; the first failure ends the unit. */
static int run_unit(udb_txn *txn, void *arg)
{
    unit *u = arg;
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

int udb_exec(udb_results **results, udb_env *env, const udb_op *ops, size_t n)
{
    if (results)
        *results = NULL;
    if (!results || !env || !ops)
        return udb__env_err(UDB_EINVAL, "udb_exec: results, env and ops are required");
    int rc = check_unit(ops, n);
    if (rc || (rc = udb__env_thread_holds(env, "udb_exec")))
        return rc;
    udb_results *res = calloc(1, sizeof *res);
    if (!res || !(res->items = calloc(n, sizeof *res->items))) {
        free(res);
        return udb__env_err(UDB_ENOMEM, "udb_exec: out of memory for %zu results", n);
    }
    res->count = n;
    res->failed = n;
    results_clear(res, (size_t)-1);
    unit u = {ops, n, res, n, 0};
    rc = udb_write(env, run_unit, &u);
    if (rc) {
        /* the unit is not written: only the failed op's result stays */
        bool op_failed = u.failed < n && rc == u.failed_rc;
        res->failed = op_failed ? u.failed : n;
        results_clear(res, res->failed);
        if (op_failed)
            udb__env_err(rc, "udb_exec: ops[%zu] (%s): %s", u.failed,
                         KINDS[ops[u.failed].kind].name, res->items[u.failed].errmsg);
    }
    *results = res;
    return rc;
}

const udb_result *udb_result_at(const udb_results *res, size_t i)
{
    return res && i < res->count ? &res->items[i] : NULL;
}

size_t udb_results_failed(const udb_results *res)
{
    return res ? res->failed : (size_t)-1;
}

void udb_results_free(udb_results *res)
{
    if (!res)
        return;
    udb__arena_free(&res->arena);
    free(res->items);
    free(res);
}
