/*
 * addon.c -- the native half of the Node.js binding (index.js is the other):
 * databases shared per process, synchronous reads, writes as promises handed
 * to udb_exec_async(), and transactions on the JS thread.
 *
 * One environment per database per process.  LMDB forbids opening one
 * database twice in a process, so every open() of the same directory (from
 * any module or worker thread: this table is process-wide) shares one
 * udb_env, found by the directory's realpath (a PostgreSQL URL: by the URL as
 * given) and counted.  The count also
 * holds one reference per write in flight, so close() with writes in flight
 * closes the handle at once and the environment when the last write is done.
 *
 * Writes: the JS thread converts the arguments to msgpack (a bad value is a
 * TypeError before anything runs) and hands the unit to udb_exec_async():
 * units in flight group their commits in the engine (and go to another
 * process's leader), and the promise settles, on the JS thread, only once the
 * unit is durable.  Nothing here serializes writes or holds a libuv thread.
 *
 * Reads and transactionSync run on the JS thread, each in its own short
 * transaction; a scan holds its read transaction until it ends or is closed.
 */
#include "addon.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uniqdb.h"

/* ---- the process-wide table of environments -------------------------------- */

typedef struct shared_env {
    struct shared_env *next;
    char *path;      /* realpath of the directory */
    udb_env *env;
    unsigned refs;   /* open handles + writes in flight */
    bool rdonly;
} shared_env;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static shared_env *g_envs;

static void env_ref(shared_env *se)
{
    pthread_mutex_lock(&g_lock);
    se->refs++;
    pthread_mutex_unlock(&g_lock);
}

static void env_release(shared_env *se)
{
    pthread_mutex_lock(&g_lock);
    bool last = --se->refs == 0;
    if (last) {
        for (shared_env **pp = &g_envs; *pp; pp = &(*pp)->next)
            if (*pp == se) {
                *pp = se->next;
                break;
            }
    }
    pthread_mutex_unlock(&g_lock);
    if (last) {
        udb_close(se->env);
        free(se->path);
        free(se);
    }
}

/* ---- handles ----------------------------------------------------------------
 * Every External handed to JS starts with a kind, and is type-tagged. */
enum { H_DB = 1, H_TX, H_CURSOR };
static const napi_type_tag HANDLE_TAG = {0x756e697164626e6fULL, 0x64652d68616e646cULL};

typedef struct cursor cursor;
typedef struct curlist {
    cursor *head;
} curlist;

typedef struct db {
    int kind;
    shared_env *se;   /* NULL once closed */
    curlist cursors;  /* scans open outside transactions */
    bool rdonly;      /* this handle was opened read-only */
    udb_txn *kept;    /* the read snapshot kept between reads (see reader()), or NULL */
    struct db *kept_next, **kept_prevp; /* in t_kept while kept */
} db;

/* The handles of this thread (one JS realm) that keep a read snapshot: every one is ended
 * before this thread writes (a thread with a transaction open may not begin a write, and a map
 * resize waits for it). */
static _Thread_local db *t_kept;

static void unkeep(db *d)
{
    if (!d->kept)
        return;
    udb_abort(d->kept);
    d->kept = NULL;
    *d->kept_prevp = d->kept_next;
    if (d->kept_next)
        d->kept_next->kept_prevp = d->kept_prevp;
}

static void unkeep_all(void)
{
    while (t_kept)
        unkeep(t_kept);
}

typedef struct tx {
    int kind;
    shared_env *se;   /* the reference this transaction holds while open */
    udb_txn *txn;     /* NULL once ended */
    curlist cursors;
} tx;

struct cursor {
    int kind;
    cursor *next, **prevp; /* in the owner's list while open */
    udb_txn *txn;          /* own read transaction (NULL inside a transaction) */
    udb_cursor *cur;       /* NULL once closed */
};

static void cursor_close(cursor *c)
{
    if (!c->cur)
        return;
    udb_cursor_close(c->cur);
    c->cur = NULL;
    if (c->txn)
        udb_abort(c->txn);
    c->txn = NULL;
    *c->prevp = c->next;
    if (c->next)
        c->next->prevp = c->prevp;
}

static void curlist_close(curlist *l)
{
    while (l->head)
        cursor_close(l->head);
}

static void db_close(db *d)
{
    if (!d->se)
        return;
    unkeep(d);
    curlist_close(&d->cursors);
    shared_env *se = d->se;
    d->se = NULL;
    env_release(se);
}

static void tx_end(tx *t, bool commit, int *rc)
{
    curlist_close(&t->cursors);
    if (!t->txn)
        return;
    if (commit)
        *rc = udb_commit(t->txn);
    else
        udb_abort(t->txn);
    t->txn = NULL;
    env_release(t->se);
    t->se = NULL;
}

static void finalize_handle(napi_env env, void *data, void *hint)
{
    int kind = *(int *)data;
    if (kind == H_DB)
        db_close(data);
    else if (kind == H_TX)
        tx_end(data, false, NULL);
    else if (kind == H_CURSOR)
        cursor_close(data);
    free(data);
}

static napi_value wrap_handle(napi_env env, void *h)
{
    napi_value v;
    if (napi_create_external(env, h, finalize_handle, NULL, &v) != napi_ok) {
        finalize_handle(env, h, NULL); /* closes what h holds, frees it */
        return NULL;
    }
    napi_type_tag_object(env, v, &HANDLE_TAG);
    return v;
}

static realm *get_realm(napi_env env)
{
    realm *r = NULL;
    napi_get_instance_data(env, (void **)&r);
    return r;
}

/* Whether path is a PostgreSQL URL (udb_open's postgresql:// or postgres://). */
static bool is_url(const char *path)
{
    return strncmp(path, "postgresql://", 13) == 0 || strncmp(path, "postgres://", 11) == 0;
}

/* ---- errors ------------------------------------------------------------------ */

static const char *code_name(int rc)
{
    switch (rc) {
    case UDB_ECONFLICT: return "UDB_ECONFLICT";
    case UDB_ENOTFOUND: return "UDB_ENOTFOUND";
    case UDB_EBADRECORD: return "UDB_EBADRECORD";
    case UDB_ESCHEMA: return "UDB_ESCHEMA";
    case UDB_EKEYTOOLONG: return "UDB_EKEYTOOLONG";
    case UDB_ECORRUPT: return "UDB_ECORRUPT";
    case UDB_EINVAL: return "UDB_EINVAL";
    case UDB_ESIZELIMIT: return "UDB_ESIZELIMIT";
    case UDB_ENOMEM: return "UDB_ENOMEM";
    case UDB_EREADONLY: return "UDB_EREADONLY";
    case UDB_EFORMAT: return "UDB_EFORMAT";
    case UDB_EEXHAUSTED: return "UDB_EEXHAUSTED";
    case UDB_EBUSY: return "UDB_EBUSY";
    case UDB_EFLUSHFAILED: return "UDB_EFLUSHFAILED";
    case UDB_EMAPFULL: return "UDB_EMAPFULL";
    case UDB_EDBSFULL: return "UDB_EDBSFULL";
    case UDB_ECONNECT: return "UDB_ECONNECT";
    case UDB_EAUTH: return "UDB_EAUTH";
    case UDB_ESERVER: return "UDB_ESERVER";
    case UDB_ERETRY: return "UDB_ERETRY";
    case UDB_EINDOUBT: return "UDB_EINDOUBT";
    default: break;
    }
    if (rc > 0) {
        const char *n = strerrorname_np(rc);
        return n ? n : "UDB_EERRNO";
    }
    return "UDB_ELMDB";
}

static napi_value str(napi_env env, const char *s)
{
    napi_value v;
    napi_create_string_utf8(env, s ? s : "", NAPI_AUTO_LENGTH, &v);
    return v;
}

static napi_value decode_or_undefined(napi_env env, realm *r, udb_val v)
{
    napi_value out;
    if (!v.data || dec_value(env, r, v.data, v.size, &out)) {
        bool pending = false;
        napi_is_exception_pending(env, &pending);
        if (pending) {
            napi_value ignored;
            napi_get_and_clear_last_exception(env, &ignored);
        }
        napi_get_undefined(env, &out);
    }
    return out;
}

static napi_value conflict_js(napi_env env, realm *r, const udb_conflict *cf)
{
    napi_value o, list;
    napi_create_object(env, &o);
    napi_set_named_property(env, o, "type", str(env, cf->type));
    napi_create_array_with_length(env, cf->count, &list);
    for (size_t i = 0; i < cf->count; i++) {
        const udb_conflict_index *ci = &cf->indexes[i];
        napi_value c, fields;
        napi_create_object(env, &c);
        napi_set_named_property(env, c, "index", str(env, ci->index));
        napi_create_array_with_length(env, ci->nfields, &fields);
        for (size_t f = 0; f < ci->nfields; f++)
            napi_set_element(env, fields, (uint32_t)f, str(env, ci->fields[f]));
        napi_set_named_property(env, c, "fields", fields);
        napi_set_named_property(env, c, "values", decode_or_undefined(env, r, ci->values));
        napi_set_named_property(env, c, "existingKey",
                                decode_or_undefined(env, r, ci->existing_key));
        napi_set_element(env, list, (uint32_t)i, c);
    }
    napi_set_named_property(env, o, "conflicts", list);
    return o;
}

/* The Error for engine code rc: index.js's makeError builds the class. */
static napi_value make_error(napi_env env, int rc, const char *msg, const udb_conflict *cf,
                             long op)
{
    realm *r = get_realm(env);
    napi_value desc, fn, global, err = NULL, v;
    napi_create_object(env, &desc);
    napi_create_int32(env, rc, &v);
    napi_set_named_property(env, desc, "rc", v);
    napi_set_named_property(env, desc, "code", str(env, code_name(rc)));
    char buf[1200];
    snprintf(buf, sizeof buf, "%s%s%s", udb_strerror(rc), msg && *msg ? ": " : "",
             msg ? msg : "");
    napi_set_named_property(env, desc, "message", str(env, buf));
    napi_set_named_property(env, desc, "detail", str(env, msg));
    if (cf)
        napi_set_named_property(env, desc, "conflict", conflict_js(env, r, cf));
    if (op >= 0) {
        napi_create_int64(env, op, &v);
        napi_set_named_property(env, desc, "opIndex", v);
    }
    napi_get_global(env, &global);
    if (r && napi_get_reference_value(env, r->make_error, &fn) == napi_ok && fn)
        napi_call_function(env, global, fn, 1, &desc, &err);
    if (!err)
        napi_create_error(env, str(env, code_name(rc)), str(env, buf), &err);
    return err;
}

static void throw_udb(napi_env env, int rc, const char *msg, const udb_conflict *cf)
{
    napi_throw(env, make_error(env, rc, msg, cf, -1));
}

static void throw_closed(napi_env env)
{
    napi_throw_error(env, "UDB_ECLOSED", "uniqdb: the database is closed (db.close() was "
                     "called); open it again");
}

/* ---- argument helpers ---------------------------------------------------------- */

#define ARGS(n)                                                                   \
    size_t argc = n;                                                              \
    napi_value argv[n];                                                           \
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);                         \
    for (size_t i_ = argc; i_ < n; i_++)                                          \
        napi_get_undefined(env, &argv[i_]);

static void *handle_of(napi_env env, napi_value v, int kind)
{
    bool tagged = false;
    void *h = NULL;
    napi_valuetype t;
    napi_typeof(env, v, &t);
    if (t == napi_external && napi_check_object_type_tag(env, v, &HANDLE_TAG, &tagged) ==
        napi_ok && tagged)
        napi_get_value_external(env, v, &h);
    if (!h || *(int *)h != kind) {
        napi_throw_type_error(env, "UDB_EINVAL", "uniqdb: not a handle of this binding");
        return NULL;
    }
    return h;
}

/* The open database behind handle v, or NULL having thrown (not a database
 * handle, or closed). */
static db *open_db(napi_env env, napi_value v)
{
    db *d = handle_of(env, v, H_DB);
    if (d && !d->se) {
        throw_closed(env);
        return NULL;
    }
    return d;
}

/* A string argument copied into malloc'd memory, or NULL for null/undefined
 * (when optional).  On error: throws, *bad = true. */
static char *opt_string(napi_env env, napi_value v, const char *what, bool optional, bool *bad)
{
    napi_valuetype t;
    napi_typeof(env, v, &t);
    if (optional && (t == napi_undefined || t == napi_null))
        return NULL;
    if (t != napi_string) {
        char m[160];
        snprintf(m, sizeof m, "uniqdb: %s must be a string", what);
        napi_throw_type_error(env, "UDB_EINVAL", m);
        *bad = true;
        return NULL;
    }
    size_t n = 0;
    napi_get_value_string_utf8(env, v, NULL, 0, &n);
    char *s = malloc(n + 1);
    if (!s) {
        napi_throw_error(env, "UDB_ENOMEM", "uniqdb: out of memory");
        *bad = true;
        return NULL;
    }
    napi_get_value_string_utf8(env, v, s, n + 1, &n);
    if (strlen(s) != n) {
        char m[160];
        snprintf(m, sizeof m, "uniqdb: %s must not contain a NUL character", what);
        napi_throw_type_error(env, "UDB_EINVAL", m);
        free(s);
        *bad = true;
        return NULL;
    }
    return s;
}

/* A string argument read into buf (cap bytes) in one call when it fits, else
 * as opt_string (which also throws the errors); free it when it is not buf. */
static char *str_arg(napi_env env, napi_value v, const char *what, char *buf, size_t cap,
                     bool *bad)
{
    size_t n = 0;
    if (napi_get_value_string_utf8(env, v, buf, cap, &n) == napi_ok && n + 1 < cap &&
        strlen(buf) == n)
        return buf;
    return opt_string(env, v, what, false, bad);
}

static napi_value get_prop(napi_env env, napi_value o, const char *name)
{
    napi_value v;
    if (napi_get_named_property(env, o, name, &v) != napi_ok)
        napi_get_undefined(env, &v);
    return v;
}

static bool is_nullish(napi_env env, napi_value v)
{
    napi_valuetype t;
    napi_typeof(env, v, &t);
    return t == napi_undefined || t == napi_null;
}

static double num_prop(napi_env env, napi_value o, const char *name, double dflt)
{
    napi_value v = get_prop(env, o, name);
    double d = dflt;
    napi_valuetype t;
    napi_typeof(env, v, &t);
    if (t == napi_number)
        napi_get_value_double(env, v, &d);
    return d;
}

/* Encode v into b with the path rooted at root.  0 or -1 (thrown). */
static int encode(napi_env env, napi_value v, mbuf *b, const char *root)
{
    return enc_value(env, get_realm(env), v, b, root);
}

static void async_unref(async_state *st);
static async_state *async_new(napi_env env);

/* ---- init, open, close ----------------------------------------------------------- */

static void realm_free(napi_env env, void *data, void *hint)
{
    realm *r = data;
    napi_delete_reference(env, r->make_error);
    napi_delete_reference(env, r->float32);
    napi_delete_reference(env, r->raw_string);
    napi_delete_reference(env, r->map_ctor);
    napi_delete_reference(env, r->object_proto);
    if (r->rbuf_ref)
        napi_delete_reference(env, r->rbuf_ref);
    mbuf_free(&r->kbuf);
    for (uint32_t i = 0; i < r->nnames; i++)
        free(r->names[i]);
    free(r->names);
    if (r->async)
        async_unref(r->async);
    free(r);
}

/* init(makeError, Float32, RawString, readBuffer) */
static napi_value js_init(napi_env env, napi_callback_info info)
{
    ARGS(4);
    realm *r = calloc(1, sizeof *r);
    if (!r) {
        napi_throw_error(env, "UDB_ENOMEM", "uniqdb: out of memory");
        return NULL;
    }
    napi_value global, map, object, proto;
    napi_get_global(env, &global);
    napi_get_named_property(env, global, "Map", &map);
    napi_get_named_property(env, global, "Object", &object);
    napi_get_named_property(env, object, "prototype", &proto);
    napi_create_reference(env, argv[0], 1, &r->make_error);
    napi_create_reference(env, argv[1], 1, &r->float32);
    napi_create_reference(env, argv[2], 1, &r->raw_string);
    napi_create_reference(env, map, 1, &r->map_ctor);
    napi_create_reference(env, proto, 1, &r->object_proto);
    void *rb = NULL;
    size_t rcap = 0;
    if (napi_get_buffer_info(env, argv[3], &rb, &rcap) == napi_ok && rb) {
        napi_create_reference(env, argv[3], 1, &r->rbuf_ref);
        r->rbuf = rb;
        r->rcap = rcap;
    }
    r->async = async_new(env);
    napi_set_instance_data(env, r, realm_free, NULL);
    return NULL;
}

/* open(path, {schema, schemaFlags, mapSize, maxMapSize, maxDbs, flags, mode, growWaitMs,
 *            lockWaitMs})
 * -> [handle, changes] */
static napi_value js_open(napi_env env, napi_callback_info info)
{
    ARGS(2);
    bool bad = false;
    napi_value result = NULL;
    char *path = opt_string(env, argv[0], "path", false, &bad);
    char *schema = NULL, *changes = NULL, *rp = NULL;
    db *d = NULL;
    shared_env *se = NULL;
    if (bad)
        goto out;
    napi_value o = argv[1];
    if (is_nullish(env, o))
        napi_create_object(env, &o);
    schema = opt_string(env, get_prop(env, o, "schema"), "options.schema", true, &bad);
    if (bad)
        goto out;
    udb_options opts = UDB_OPTIONS_INIT;
    opts.map_size = (size_t)num_prop(env, o, "mapSize", 0);
    opts.max_map_size = (size_t)num_prop(env, o, "maxMapSize", 0);
    opts.max_dbs = (unsigned)num_prop(env, o, "maxDbs", 0);
    opts.flags = (unsigned)num_prop(env, o, "flags", 0);
    opts.mode = (unsigned)num_prop(env, o, "mode", 0);
    opts.grow_wait_ms = (unsigned)num_prop(env, o, "growWaitMs", 0);
    opts.lock_wait_ms = (unsigned)num_prop(env, o, "lockWaitMs", 0);
    unsigned sflags = (unsigned)num_prop(env, o, "schemaFlags", 0);
    bool rdonly = (opts.flags & UDB_RDONLY_ENV) != 0;

    /* a PostgreSQL URL is no file: its environment is found by the URL as given */
    bool url = is_url(path);
    pthread_mutex_lock(&g_lock);
    rp = url ? strdup(path) : realpath(path, NULL);
    if (rp)
        for (se = g_envs; se; se = se->next)
            if (!strcmp(se->path, rp))
                break;
    if (se && se->rdonly && !rdonly) {
        pthread_mutex_unlock(&g_lock);
        se = NULL;
        throw_udb(env, UDB_EREADONLY, "this database is already open read-only in this "
                  "process; close every handle first to open it for writing", NULL);
        goto out;
    }
    if (se) {
        se->refs++;
    } else {
        udb_env *e = NULL;
        int rc = udb_open(&e, path, &opts);
        if (!rc && !rp && !(rp = url ? strdup(path) : realpath(path, NULL)))
            rc = url ? UDB_ENOMEM : errno ? errno : ENOENT;
        if (!rc && !(se = calloc(1, sizeof *se)))
            rc = UDB_ENOMEM;
        if (rc) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s (opening %s)", udb_env_errmsg(NULL), path);
            udb_close(e);
            pthread_mutex_unlock(&g_lock);
            throw_udb(env, rc, msg, NULL);
            goto out;
        }
        se->path = rp;
        rp = NULL;
        se->env = e;
        se->refs = 1;
        se->rdonly = rdonly;
        se->next = g_envs;
        g_envs = se;
    }
    pthread_mutex_unlock(&g_lock);

    if (schema) {
        unkeep_all(); /* applying a schema writes */
        int rc = udb_schema_apply(&changes, se->env, schema, strlen(schema), sflags);
        if (rc) {
            throw_udb(env, rc, udb_env_errmsg(se->env), NULL);
            env_release(se);
            goto out;
        }
    }
    d = calloc(1, sizeof *d);
    if (!d) {
        env_release(se);
        napi_throw_error(env, "UDB_ENOMEM", "uniqdb: out of memory");
        goto out;
    }
    d->kind = H_DB;
    d->se = se;
    d->rdonly = rdonly;
    napi_value h = wrap_handle(env, d);
    if (!h)
        goto out;
    napi_create_array_with_length(env, 2, &result);
    napi_set_element(env, result, 0, h);
    napi_set_element(env, result, 1, str(env, changes ? changes : ""));
out:
    udb_free(changes);
    free(rp);
    free(path);
    free(schema);
    return result;
}

static napi_value js_close(napi_env env, napi_callback_info info)
{
    ARGS(1);
    db *d = handle_of(env, argv[0], H_DB);
    if (d)
        db_close(d);
    return NULL;
}

/* ---- reads (in a transaction of their own, or in a transactionSync's) ------------ */

/* The transaction to read in: the tx's; or, for a database handle, a new read-only one (*own,
 * for a scan, which holds it), or with keep the snapshot the handle keeps between reads.  A kept
 * snapshot serves the next read only while udb_txn_latest says nothing was committed since it
 * began (by any thread or process), so every read still sees each write committed before it
 * started; it is ended before this thread writes, when the handle is closed, and at the end of
 * the event loop's turn (index.js: native.unkeep from setImmediate), so it never holds LMDB's
 * pages for long.  On PostgreSQL (udb_txn_latest always 0) nothing is kept. */
static udb_txn *reader(napi_env env, napi_value h, bool *own, curlist **cursors, bool keep)
{
    void *p = NULL;
    napi_get_value_external(env, h, &p);
    if (p && *(int *)p == H_TX) {
        tx *t = handle_of(env, h, H_TX);
        if (!t)
            return NULL;
        if (!t->txn) {
            napi_throw_error(env, "UDB_ECLOSED", "uniqdb: the transaction has ended (use tx "
                             "only inside the function given to transactionSync)");
            return NULL;
        }
        *own = false;
        if (cursors)
            *cursors = &t->cursors;
        return t->txn;
    }
    db *d = open_db(env, h);
    if (!d)
        return NULL;
    if (keep && d->kept) {
        int latest = 0;
        if (!udb_txn_latest(&latest, d->kept) && latest) {
            *own = false;
            return d->kept;
        }
        unkeep(d);
    }
    udb_txn *txn = NULL;
    int rc = udb_begin(&txn, d->se->env, UDB_RDONLY);
    if (rc) {
        throw_udb(env, rc, udb_env_errmsg(d->se->env), NULL);
        return NULL;
    }
    if (keep) { /* a snapshot that cannot tell (PostgreSQL's) is not kept */
        int latest = 0;
        keep = !udb_txn_latest(&latest, txn) && latest;
    }
    *own = !keep;
    if (keep) {
        d->kept = txn;
        d->kept_next = t_kept;
        d->kept_prevp = &t_kept;
        if (t_kept)
            t_kept->kept_prevp = &d->kept_next;
        t_kept = d;
    }
    if (cursors)
        *cursors = &d->cursors;
    return txn;
}

static void reader_done(udb_txn *txn, bool own)
{
    if (own)
        udb_abort(txn);
}

/* A record read, or undefined when missing; an error is thrown.  A record that fits the
 * realm's read buffer is copied there and its length returned, for decode.js (a number);
 * a larger one is decoded here. */
static napi_value read_result(napi_env env, udb_txn *txn, int rc, udb_val out)
{
    napi_value v = NULL;
    realm *r = get_realm(env);
    if (rc == UDB_ENOTFOUND) {
        napi_get_undefined(env, &v);
    } else if (rc) {
        throw_udb(env, rc, udb_errmsg(txn), NULL);
    } else if (r && r->rbuf && out.size <= r->rcap) {
        memcpy(r->rbuf, out.data, out.size);
        napi_create_uint32(env, (uint32_t)out.size, &v);
    } else if (dec_value(env, r, out.data, out.size, &v)) {
        v = NULL;
    }
    return v;
}

/* unkeep(h): end the read snapshot the handle keeps (index.js, at the end of a turn). */
static napi_value js_unkeep(napi_env env, napi_callback_info info)
{
    ARGS(1);
    db *d = handle_of(env, argv[0], H_DB);
    if (d)
        unkeep(d);
    return NULL;
}

/* The buffer to encode a read's key into: the realm's, or key (a fresh one) when that is in
 * use.  Its length is 0. */
static mbuf *key_buf(realm *r, mbuf *key)
{
    if (!r || r->kbusy)
        return key;
    r->kbusy = 1;
    r->kbuf.len = 0;
    r->kbuf.oom = 0;
    return &r->kbuf;
}

static void key_done(realm *r, mbuf *b)
{
    if (r && b == &r->kbuf) {
        r->kbusy = 0;
        if (b->cap > 4096) /* a huge key once: do not keep its memory */
            mbuf_free(b);
    } else {
        mbuf_free(b);
    }
}

/* get(h, type, key) */
static napi_value js_get(napi_env env, napi_callback_info info)
{
    ARGS(3);
    bool bad = false, own = false;
    realm *r = get_realm(env);
    mbuf fresh = {0}, *key = key_buf(r, &fresh);
    napi_value v = NULL;
    char tbuf[128];
    char *type = str_arg(env, argv[1], "type", tbuf, sizeof tbuf, &bad);
    if (bad || encode(env, argv[2], key, "key"))
        goto out;
    udb_txn *txn = reader(env, argv[0], &own, NULL, true);
    if (!txn)
        goto out;
    udb_val rec = {0};
    int rc = udb_get(&rec, txn, type, key->p, key->len);
    v = read_result(env, txn, rc, rec);
    reader_done(txn, own);
out:
    if (type != tbuf)
        free(type);
    key_done(r, key);
    return v;
}

/* find(h, type, index, values) */
static napi_value js_find(napi_env env, napi_callback_info info)
{
    ARGS(4);
    bool bad = false, own = false;
    realm *r = get_realm(env);
    mbuf fresh = {0}, *vals = key_buf(r, &fresh);
    napi_value v = NULL;
    char tbuf[128], ibuf[128];
    char *type = str_arg(env, argv[1], "type", tbuf, sizeof tbuf, &bad);
    char *index = bad ? NULL : str_arg(env, argv[2], "index", ibuf, sizeof ibuf, &bad);
    if (bad || encode(env, argv[3], vals, "values"))
        goto out;
    udb_txn *txn = reader(env, argv[0], &own, NULL, true);
    if (!txn)
        goto out;
    udb_val rec = {0};
    int rc = udb_find(&rec, txn, type, index, vals->p, vals->len);
    v = read_result(env, txn, rc, rec);
    reader_done(txn, own);
out:
    if (type != tbuf)
        free(type);
    if (index && index != ibuf)
        free(index);
    key_done(r, vals);
    return v;
}

/* intern(name) -> id: a type or index name kept for getk and findk (index.js keeps at most
 * a few thousand; a name that is no string, or holds a NUL, throws as a type argument does). */
static napi_value js_intern(napi_env env, napi_callback_info info)
{
    ARGS(1);
    realm *r = get_realm(env);
    bool bad = false;
    char *name = opt_string(env, argv[0], "type", false, &bad);
    if (bad || !r)
        return NULL;
    if (r->nnames == r->capnames) {
        uint32_t cap = r->capnames ? 2 * r->capnames : 16;
        char **n = realloc(r->names, cap * sizeof *n);
        if (!n) {
            free(name);
            napi_throw_error(env, "UDB_ENOMEM", "uniqdb: out of memory");
            return NULL;
        }
        r->names = n;
        r->capnames = cap;
    }
    r->names[r->nnames] = name;
    napi_value v;
    napi_create_uint32(env, r->nnames++, &v);
    return v;
}

/* The interned name of id v, or NULL having thrown. */
static const char *name_of(napi_env env, realm *r, napi_value v)
{
    uint32_t id = UINT32_MAX;
    napi_get_value_uint32(env, v, &id);
    if (!r || id >= r->nnames) {
        napi_throw_type_error(env, "UDB_EINVAL", "uniqdb: not a name interned by this realm");
        return NULL;
    }
    return r->names[id];
}

/* The key index.js encoded at the start of the realm's read buffer: klen bytes, copied (the
 * record read is copied over them).  0, or -1 having thrown. */
static int key_of(napi_env env, realm *r, napi_value v, mbuf *key)
{
    uint32_t klen = UINT32_MAX;
    napi_get_value_uint32(env, v, &klen);
    if (!r || !r->rbuf || klen > r->rcap) {
        napi_throw_type_error(env, "UDB_EINVAL", "uniqdb: a key length beyond the read buffer");
        return -1;
    }
    key->len = 0;
    uint8_t *p = klen ? NULL : key->p;
    if (klen && key->cap >= klen) {
        p = key->p;
    } else if (klen) {
        mbuf_free(key);
        if (!(p = key->p = malloc(klen))) {
            napi_throw_error(env, "UDB_ENOMEM", "uniqdb: out of memory");
            return -1;
        }
        key->cap = klen;
    }
    if (klen)
        memcpy(p, r->rbuf, klen);
    key->len = klen;
    return 0;
}

/* getk and findk: the key (or index values) as msgpack that index.js encoded into the read
 * buffer, the type and index names interned. */
static napi_value lookup_k(napi_env env, napi_callback_info info, bool by_index)
{
    ARGS(4);
    bool own = false;
    realm *r = get_realm(env);
    mbuf fresh = {0}, *key = key_buf(r, &fresh);
    napi_value v = NULL;
    const char *type = name_of(env, r, argv[1]);
    const char *index = type && by_index ? name_of(env, r, argv[2]) : NULL;
    if (!type || (by_index && !index) || key_of(env, r, argv[by_index ? 3 : 2], key))
        goto out;
    udb_txn *txn = reader(env, argv[0], &own, NULL, true);
    if (!txn)
        goto out;
    udb_val rec = {0};
    int rc = by_index ? udb_find(&rec, txn, type, index, key->p, key->len)
                      : udb_get(&rec, txn, type, key->p, key->len);
    v = read_result(env, txn, rc, rec);
    reader_done(txn, own);
out:
    key_done(r, key);
    return v;
}

/* getk(h, typeId, klen): get with the key's msgpack encoded by index.js into the read buffer,
 * and the type interned; the result as get's. */
static napi_value js_getk(napi_env env, napi_callback_info info)
{
    return lookup_k(env, info, false);
}

/* findk(h, typeId, indexId, klen): find as getk. */
static napi_value js_findk(napi_env env, napi_callback_info info)
{
    return lookup_k(env, info, true);
}

/* seqGet(h, name) -> number | bigint | undefined */
static napi_value js_seq_get(napi_env env, napi_callback_info info)
{
    ARGS(2);
    bool bad = false, own = false;
    napi_value v = NULL;
    char *name = opt_string(env, argv[1], "name", false, &bad);
    if (bad)
        goto out;
    udb_txn *txn = reader(env, argv[0], &own, NULL, true);
    if (!txn)
        goto out;
    uint64_t n = 0;
    int rc = udb_seq_get(&n, txn, name);
    if (rc == UDB_ENOTFOUND)
        napi_get_undefined(env, &v);
    else if (rc)
        throw_udb(env, rc, udb_errmsg(txn), NULL);
    else
        v = js_u64(env, n);
    reader_done(txn, own);
out:
    free(name);
    return v;
}

/* scanOpen(h, type, index, prefix, lo, hi, flags, after) -> cursor handle: lo, hi
 * and after are lists (or undefined), flags udb_range's. */
static napi_value js_scan_open(napi_env env, napi_callback_info info)
{
    ARGS(8);
    bool bad = false, own = false;
    mbuf prefix = {0}, lo = {0}, hi = {0}, after = {0};
    napi_value v = NULL;
    curlist *list = NULL;
    uint32_t flags = 0;
    char *type = opt_string(env, argv[1], "type", false, &bad);
    char *index = bad ? NULL : opt_string(env, argv[2], "options.index", true, &bad);
    if (bad)
        goto out;
    if (!is_nullish(env, argv[3]) && encode(env, argv[3], &prefix, "options.prefix"))
        goto out;
    if (!is_nullish(env, argv[4]) && encode(env, argv[4], &lo, "options lower bound"))
        goto out;
    if (!is_nullish(env, argv[5]) && encode(env, argv[5], &hi, "options upper bound"))
        goto out;
    napi_get_value_uint32(env, argv[6], &flags);
    if (!is_nullish(env, argv[7]) && encode(env, argv[7], &after, "options.after"))
        goto out;
    udb_range range = UDB_RANGE_INIT;
    range.lo = (udb_val){lo.p, lo.len};
    range.hi = (udb_val){hi.p, hi.len};
    range.after = (udb_val){after.p, after.len};
    range.flags = flags;
    udb_txn *txn = reader(env, argv[0], &own, &list, false);
    if (!txn)
        goto out;
    cursor *c = calloc(1, sizeof *c);
    udb_cursor *cur = NULL;
    /* a prefix is the range from it to it: either is given, not both (index.js) */
    int rc = !c ? UDB_ENOMEM
             : prefix.p ? udb_scan(&cur, txn, type, index, prefix.p, prefix.len)
                        : udb_scan_range(&cur, txn, type, index, &range);
    if (rc) {
        throw_udb(env, rc, udb_errmsg(txn), NULL);
        free(c);
        reader_done(txn, own);
        goto out;
    }
    c->kind = H_CURSOR;
    c->cur = cur;
    c->txn = own ? txn : NULL;
    c->next = list->head;
    c->prevp = &list->head;
    if (list->head)
        list->head->prevp = &c->next;
    list->head = c;
    v = wrap_handle(env, c);
out:
    free(type);
    free(index);
    mbuf_free(&prefix);
    mbuf_free(&lo);
    mbuf_free(&hi);
    mbuf_free(&after);
    return v;
}

/* scanNext(cursor, n, keys) -> up to n records; [] at the end (the scan is then
 * closed).  With keys, each record is followed by its sort key (udb_cursor_key). */
static napi_value js_scan_next(napi_env env, napi_callback_info info)
{
    ARGS(3);
    cursor *c = handle_of(env, argv[0], H_CURSOR);
    if (!c)
        return NULL;
    uint32_t n = 64;
    napi_get_value_uint32(env, argv[1], &n);
    bool keys = false;
    napi_get_value_bool(env, argv[2], &keys);
    napi_value arr;
    napi_create_array(env, &arr);
    uint32_t got = 0, recs = 0;   /* array elements; records */
    while (c->cur && recs < n) {
        recs++;
        udb_val rec;
        int rc = udb_cursor_next(&rec, c->cur);
        if (rc == UDB_ENOTFOUND) {
            cursor_close(c);
            break;
        }
        if (rc) {
            throw_udb(env, rc, "reading the next record of a scan", NULL);
            cursor_close(c);
            return NULL;
        }
        napi_value v;
        if (dec_value(env, get_realm(env), rec.data, rec.size, &v)) {
            cursor_close(c);
            return NULL;
        }
        napi_set_element(env, arr, got++, v);
        if (!keys)
            continue;
        udb_val key;
        if ((rc = udb_cursor_key(&key, c->cur)) != 0) {
            throw_udb(env, rc, "reading the sort key of a scan's record", NULL);
            cursor_close(c);
            return NULL;
        }
        if (dec_value(env, get_realm(env), key.data, key.size, &v)) {
            cursor_close(c);
            return NULL;
        }
        napi_set_element(env, arr, got++, v);
    }
    return arr;
}

static napi_value js_scan_close(napi_env env, napi_callback_info info)
{
    ARGS(1);
    cursor *c = handle_of(env, argv[0], H_CURSOR);
    if (c)
        cursor_close(c);
    return NULL;
}

/* ---- ops: JS descriptors to udb_op ------------------------------------------------- */

/* Memory an op list owns. */
typedef struct oplist {
    size_t n;
    udb_op *ops;
    void **allocs;
    size_t nallocs, capallocs;
} oplist;

static void oplist_free(oplist *l)
{
    for (size_t i = 0; i < l->nallocs; i++)
        free(l->allocs[i]);
    free(l->allocs);
    free(l->ops);
    memset(l, 0, sizeof *l);
}

static int keep(oplist *l, void *p)
{
    if (!p)
        return 0;
    if (l->nallocs == l->capallocs) {
        size_t cap = l->capallocs ? 2 * l->capallocs : 16;
        void **a = realloc(l->allocs, cap * sizeof *a);
        if (!a) {
            free(p);
            return -1;
        }
        l->allocs = a;
        l->capallocs = cap;
    }
    l->allocs[l->nallocs++] = p;
    return 0;
}

static int kept_string(napi_env env, oplist *l, napi_value o, const char *name,
                       const char *what, bool optional, const char **out)
{
    bool bad = false;
    char *s = opt_string(env, get_prop(env, o, name), what, optional, &bad);
    if (bad)
        return -1;
    if (keep(l, s)) {
        napi_throw_error(env, "UDB_ENOMEM", "uniqdb: out of memory");
        return -1;
    }
    *out = s;
    return 0;
}

static int kept_value(napi_env env, oplist *l, napi_value v, const char *root, udb_val *out)
{
    mbuf b = {0};
    if (encode(env, v, &b, root)) {
        mbuf_free(&b);
        return -1;
    }
    if (keep(l, b.p)) {
        napi_throw_error(env, "UDB_ENOMEM", "uniqdb: out of memory");
        return -1;
    }
    out->data = b.p;
    out->size = b.len;
    return 0;
}

/* One op {kind, type, index, record, key, onInsert, candidates, merge, seq,
 * seqField, seqOp}; kind is UDB_OP_*.  pre is "" or "ops[i]." for paths. */
static int op_from_js(napi_env env, oplist *l, napi_value o, udb_op *op, const char *pre)
{
    char what[64];
    op->kind = (unsigned)num_prop(env, o, "kind", 0);
    if (op->kind < UDB_OP_INSERT || op->kind > UDB_OP_SEQ_NEXT) {
        snprintf(what, sizeof what, "uniqdb: %skind: unknown operation", pre);
        napi_throw_type_error(env, "UDB_EINVAL", what);
        return -1;
    }
    snprintf(what, sizeof what, "%stype", pre);
    if (op->kind != UDB_OP_SEQ_NEXT && kept_string(env, l, o, "type", what, false, &op->type))
        return -1;
    snprintf(what, sizeof what, "%sindex", pre);
    if (kept_string(env, l, o, "index", what, true, &op->index))
        return -1;
    napi_value v = get_prop(env, o, "record");
    snprintf(what, sizeof what, "%s", pre);
    if (!is_nullish(env, v) && kept_value(env, l, v, what, &op->rec))
        return -1;
    v = get_prop(env, o, "key");
    snprintf(what, sizeof what, "%skey", pre);
    if (!is_nullish(env, v) && kept_value(env, l, v, what, &op->key))
        return -1;
    v = get_prop(env, o, "onInsert");
    snprintf(what, sizeof what, "%sonInsert.", pre);
    if (!is_nullish(env, v) && kept_value(env, l, v, what, &op->on_insert))
        return -1;
    v = get_prop(env, o, "candidates");
    if (!is_nullish(env, v)) {
        uint32_t n = 0;
        bool arr = false;
        napi_is_array(env, v, &arr);
        if (arr)
            napi_get_array_length(env, v, &n);
        if (!arr || n == 0) {
            snprintf(what, sizeof what, "uniqdb: %scandidates must be a non-empty array", pre);
            napi_throw_type_error(env, "UDB_EINVAL", what);
            return -1;
        }
        udb_val *c = calloc(n, sizeof *c);
        if (keep(l, c) || !c) {
            napi_throw_error(env, "UDB_ENOMEM", "uniqdb: out of memory");
            return -1;
        }
        for (uint32_t i = 0; i < n; i++) {
            napi_value e;
            napi_get_element(env, v, i, &e);
            snprintf(what, sizeof what, "%scandidates[%u].", pre, i);
            if (kept_value(env, l, e, what, &c[i]))
                return -1;
        }
        op->candidates = c;
        op->ncandidates = n;
    }
    bool merge = false;
    napi_get_value_bool(env, get_prop(env, o, "merge"), &merge);
    op->flags = merge ? UDB_MERGE : 0;
    snprintf(what, sizeof what, "%sseq", pre);
    if (kept_string(env, l, o, "seq", what, true, &op->seq))
        return -1;
    snprintf(what, sizeof what, "%sseqField", pre);
    if (kept_string(env, l, o, "seqField", what, true, &op->seq_field))
        return -1;
    op->seq_op = (size_t)num_prop(env, o, "seqOp", 0);
    return 0;
}

/* Fix up paths: records are encoded with root "" / "ops[i]." so that a field
 * reads "email" or "ops[1].email".  (kept_value's root is the prefix.) */

static int ops_from_js(napi_env env, napi_value arr, oplist *l)
{
    uint32_t n = 0;
    bool isarr = false;
    napi_is_array(env, arr, &isarr);
    if (isarr)
        napi_get_array_length(env, arr, &n);
    if (!isarr || n == 0 || n > UDB_EXEC_MAX) {
        napi_throw_type_error(env, "UDB_EINVAL", "uniqdb: ops must be an array of 1 to 65536 "
                              "operations");
        return -1;
    }
    l->ops = calloc(n, sizeof *l->ops);
    if (!l->ops) {
        napi_throw_error(env, "UDB_ENOMEM", "uniqdb: out of memory");
        return -1;
    }
    l->n = n;
    static const udb_op init = UDB_OP_INIT;
    for (uint32_t i = 0; i < n; i++) {
        napi_value o;
        char pre[32] = "";
        if (n > 1)
            snprintf(pre, sizeof pre, "ops[%u].", i);
        l->ops[i] = init;
        napi_get_element(env, arr, i, &o);
        if (op_from_js(env, l, o, &l->ops[i], pre))
            return -1;
    }
    return 0;
}

/* {created, record, chosen, value} of one op's outcome. */
static napi_value result_js(napi_env env, int created, udb_val rec, size_t chosen,
                            uint64_t value, unsigned kind)
{
    napi_value o, v;
    napi_create_object(env, &o);
    napi_get_boolean(env, created != 0, &v);
    napi_set_named_property(env, o, "created", v);
    if (rec.data) {
        if (dec_value(env, get_realm(env), rec.data, rec.size, &v))
            return NULL;
        napi_set_named_property(env, o, "record", v);
    }
    if (kind == UDB_OP_INSERT_FIRST) {
        napi_create_int64(env, (int64_t)chosen, &v);
        napi_set_named_property(env, o, "chosen", v);
    }
    if (kind == UDB_OP_SEQ_NEXT)
        napi_set_named_property(env, o, "value", js_u64(env, value));
    return o;
}

/* ---- writes: exec(h, ops) -> Promise<results[]> through udb_exec_async -------------
 * The unit is handed to the engine (udb_exec_async copies it); its done()
 * runs on an engine thread and passes the outcome to this realm's JS thread
 * through a thread-safe function, where the promise settles.  The state the
 * two sides share outlives either: the realm may be torn down (a worker
 * thread ending) while units are in flight. */

struct async_state {
    pthread_mutex_t lock;
    napi_threadsafe_function tsfn;
    bool open;        /* tsfn may be called (false once it is finalized) */
    unsigned refs;    /* 1 for the realm + 1 per unit in flight */
    unsigned inflight; /* JS thread only: units whose promise is pending */
};

typedef struct work {
    napi_deferred deferred;
    async_state *st;
    shared_env *se;
    unsigned *kinds;  /* each op's kind, for its result */
    size_t n;
    udb_results *res;
    int rc;
    char *errmsg;     /* done()'s errmsg, copied */
} work;

static void async_unref(async_state *st)
{
    pthread_mutex_lock(&st->lock);
    bool last = --st->refs == 0;
    pthread_mutex_unlock(&st->lock);
    if (last) {
        pthread_mutex_destroy(&st->lock);
        free(st);
    }
}

static void work_free(work *k)
{
    udb_results_free(k->res);
    free(k->kinds);
    free(k->errmsg);
    free(k);
}

/* Settle k's promise (JS thread). */
static void work_settle(napi_env env, work *k)
{
    napi_value out = NULL;
    size_t failed = udb_results_failed(k->res);
    if (k->rc) {
        const udb_result *r = k->res ? udb_result_at(k->res, failed) : NULL;
        const char *msg = r && r->errmsg && *r->errmsg ? r->errmsg : k->errmsg;
        napi_value e = make_error(env, k->rc, msg, r ? r->conflict : NULL,
                                  r ? (long)failed : -1);
        napi_reject_deferred(env, k->deferred, e);
        return;
    }
    napi_create_array_with_length(env, k->n, &out);
    for (size_t i = 0; i < k->n; i++) {
        const udb_result *r = udb_result_at(k->res, i);
        napi_value v = r ? result_js(env, r->created, r->record, r->chosen, r->value,
                                     k->kinds[i]) : NULL;
        if (!v) {
            napi_value e;
            napi_get_and_clear_last_exception(env, &e);
            napi_reject_deferred(env, k->deferred, e);
            return;
        }
        napi_set_element(env, out, (uint32_t)i, v);
    }
    napi_resolve_deferred(env, k->deferred, out);
}

/* The thread-safe function's call: on the JS thread, or with env NULL when the
 * realm is going away (then only free). */
static void exec_call_js(napi_env env, napi_value js_cb, void *context, void *data)
{
    work *k = data;
    async_state *st = k->st;
    if (env) {
        work_settle(env, k);
        if (--st->inflight == 0)
            napi_unref_threadsafe_function(env, st->tsfn);
        env_release(k->se);
    } else {
        /* no JS thread to close on, and done() may not udb_close(): keep the
         * environment open rather than close it from here */
        pthread_mutex_lock(&g_lock);
        if (k->se->refs > 1)
            k->se->refs--;
        pthread_mutex_unlock(&g_lock);
    }
    work_free(k);
    async_unref(st);
}

/* udb_exec_async's done(): on an engine thread. */
static void exec_done(int rc, udb_results *results, const char *errmsg, void *payload)
{
    work *k = payload;
    k->rc = rc;
    k->res = results;
    k->errmsg = strdup(errmsg ? errmsg : "");
    async_state *st = k->st;
    pthread_mutex_lock(&st->lock);
    napi_status status = st->open ? napi_call_threadsafe_function(st->tsfn, k,
                                                                  napi_tsfn_nonblocking)
                                  : napi_closing;
    pthread_mutex_unlock(&st->lock);
    if (status != napi_ok)
        exec_call_js(NULL, NULL, NULL, k);
}

static void tsfn_finalized(napi_env env, void *data, void *hint)
{
    async_state *st = data;
    pthread_mutex_lock(&st->lock);
    st->open = false;
    pthread_mutex_unlock(&st->lock);
    async_unref(st);
}

/* The realm's async state, made at init. */
static async_state *async_new(napi_env env)
{
    async_state *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    pthread_mutex_init(&st->lock, NULL);
    st->refs = 2; /* the realm, and the thread-safe function until it is finalized */
    napi_value name;
    napi_create_string_utf8(env, "uniqdb.exec", NAPI_AUTO_LENGTH, &name);
    if (napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, st, tsfn_finalized, NULL,
                                        exec_call_js, &st->tsfn) != napi_ok) {
        pthread_mutex_destroy(&st->lock);
        free(st);
        return NULL;
    }
    st->open = true;
    /* only units in flight keep the process alive */
    napi_unref_threadsafe_function(env, st->tsfn);
    return st;
}

static napi_value js_exec(napi_env env, napi_callback_info info)
{
    ARGS(2);
    db *d = open_db(env, argv[0]);
    realm *r = get_realm(env);
    if (!d)
        return NULL;
    if (d->rdonly) {
        throw_udb(env, UDB_EREADONLY, "this handle was opened with readOnly: true", NULL);
        return NULL;
    }
    if (!r || !r->async) {
        napi_throw_error(env, "UDB_EINVAL", "uniqdb: the binding was not initialized");
        return NULL;
    }
    oplist ops = {0};
    work *k = calloc(1, sizeof *k);
    if (!k) {
        napi_throw_error(env, "UDB_ENOMEM", "uniqdb: out of memory");
        return NULL;
    }
    napi_value promise = NULL;
    if (ops_from_js(env, argv[1], &ops))
        goto out;
    k->n = ops.n;
    k->kinds = calloc(ops.n, sizeof *k->kinds);
    if (!k->kinds) {
        napi_throw_error(env, "UDB_ENOMEM", "uniqdb: out of memory");
        goto out;
    }
    for (size_t i = 0; i < ops.n; i++)
        k->kinds[i] = ops.ops[i].kind;
    async_state *st = r->async;
    k->st = st;
    k->se = d->se;
    napi_create_promise(env, &k->deferred, &promise);
    env_ref(k->se);
    pthread_mutex_lock(&st->lock);
    st->refs++;
    pthread_mutex_unlock(&st->lock);
    if (st->inflight++ == 0)
        napi_ref_threadsafe_function(env, st->tsfn);
    /* beyond UDB_EXEC_ASYNC_MAX units in flight this waits for room, and the units may wait
     * for a map resize, which waits for this thread's transactions */
    unkeep_all();
    int rc = udb_exec_async(k->se->env, ops.ops, ops.n, exec_done, k);
    if (rc) {
        /* not queued: done() will not run; settle here */
        k->rc = rc;
        k->errmsg = strdup(udb_env_errmsg(k->se->env));
        exec_call_js(env, NULL, NULL, k);
    }
    k = NULL;
out:
    oplist_free(&ops);
    if (k)
        work_free(k);
    return promise;
}

/* ---- transactionSync: txBegin / txOp / txCommit / txAbort ------------------------- */

/* txBegin(h, readOnly) -> transaction handle */
static napi_value js_tx_begin(napi_env env, napi_callback_info info)
{
    ARGS(2);
    db *d = open_db(env, argv[0]);
    bool rdonly = false;
    napi_get_value_bool(env, argv[1], &rdonly);
    if (!d)
        return NULL;
    if (d->rdonly && !rdonly) {
        throw_udb(env, UDB_EREADONLY, "this handle was opened with readOnly: true", NULL);
        return NULL;
    }
    tx *t = calloc(1, sizeof *t);
    if (!t) {
        napi_throw_error(env, "UDB_ENOMEM", "uniqdb: out of memory");
        return NULL;
    }
    if (!rdonly)
        unkeep_all(); /* a thread with a transaction open may not begin a write */
    int rc = udb_begin(&t->txn, d->se->env, rdonly ? UDB_RDONLY : 0);
    if (rc) {
        free(t);
        throw_udb(env, rc, udb_env_errmsg(d->se->env), NULL);
        return NULL;
    }
    t->kind = H_TX;
    /* the transaction holds the environment while it is open */
    t->se = d->se;
    env_ref(t->se);
    return wrap_handle(env, t); /* on failure the finalizer ran: aborted, released */
}

/* txOp(t, op) -> {created, record, chosen, value}; runs the record call itself */
static napi_value js_tx_op(napi_env env, napi_callback_info info)
{
    ARGS(2);
    tx *t = handle_of(env, argv[0], H_TX);
    if (!t)
        return NULL;
    if (!t->txn) {
        napi_throw_error(env, "UDB_ECLOSED", "uniqdb: the transaction has ended (use tx only "
                         "inside the function given to transactionSync)");
        return NULL;
    }
    oplist l = {0};
    static const udb_op init = UDB_OP_INIT;
    udb_op op = init;
    napi_value v = NULL;
    if (op_from_js(env, &l, argv[1], &op, ""))
        goto out;
    udb_val out = {0};
    int created = 0, rc;
    size_t chosen = 0;
    uint64_t value = 0;
    switch (op.kind) {
    case UDB_OP_INSERT:
        rc = udb_insert(&out, t->txn, op.type, op.rec.data, op.rec.size);
        created = 1;
        break;
    case UDB_OP_INSERT_OR_GET:
        rc = udb_insert_or_get(&out, &created, t->txn, op.type, op.index, op.rec.data,
                               op.rec.size);
        break;
    case UDB_OP_UPSERT:
        rc = udb_upsert(&out, &created, t->txn, op.type, op.index, op.rec.data, op.rec.size,
                        op.on_insert.data, op.on_insert.size);
        break;
    case UDB_OP_UPDATE:
        rc = udb_update(&out, t->txn, op.type, op.key.data, op.key.size, op.rec.data,
                        op.rec.size, op.flags);
        break;
    case UDB_OP_DELETE:
        rc = udb_delete(t->txn, op.type, op.key.data, op.key.size);
        break;
    case UDB_OP_INSERT_FIRST:
        rc = udb_insert_first(&out, &chosen, t->txn, op.type, op.candidates, op.ncandidates);
        break;
    default:
        rc = udb_seq_next(&value, t->txn, op.seq);
        break;
    }
    if (rc)
        throw_udb(env, rc, udb_errmsg(t->txn), rc == UDB_ECONFLICT ?
                  udb_conflict_info(t->txn) : NULL);
    else
        v = result_js(env, created, out, chosen, value, op.kind);
out:
    l.ops = NULL;
    oplist_free(&l);
    return v;
}

static napi_value js_tx_end(napi_env env, napi_callback_info info)
{
    ARGS(2);
    tx *t = handle_of(env, argv[0], H_TX);
    if (!t)
        return NULL;
    bool commit = false;
    napi_get_value_bool(env, argv[1], &commit);
    if (!t->txn)
        return NULL;
    int rc = 0;
    tx_end(t, commit, &rc);
    if (rc)
        throw_udb(env, rc, udb_env_errmsg(NULL), NULL);
    return NULL;
}

/* ---- inspection ------------------------------------------------------------------ */

static void report_problem(const char *problem, void *payload)
{
    napi_env env = ((void **)payload)[0];
    napi_value arr = ((void **)payload)[1];
    uint32_t n = 0;
    napi_get_array_length(env, arr, &n);
    if (n < 1000)
        napi_set_element(env, arr, n, str(env, problem));
}

/* check(h) -> [problem, ...] ([] when consistent) */
static napi_value js_check(napi_env env, napi_callback_info info)
{
    ARGS(1);
    db *d = open_db(env, argv[0]);
    if (!d)
        return NULL;
    napi_value arr;
    napi_create_array(env, &arr);
    void *payload[2] = {env, arr};
    size_t problems = 0;
    int rc = udb_check(&problems, d->se->env, report_problem, payload);
    if (rc && rc != UDB_ECORRUPT) {
        throw_udb(env, rc, udb_env_errmsg(d->se->env), NULL);
        return NULL;
    }
    return arr;
}

/* schema(h) -> the stored schema's JSON text, or undefined */
static napi_value js_schema(napi_env env, napi_callback_info info)
{
    ARGS(1);
    db *d = open_db(env, argv[0]);
    if (!d)
        return NULL;
    char *json = NULL;
    napi_value v;
    int rc = udb_schema_json(&json, d->se->env);
    if (rc == UDB_ENOTFOUND) {
        napi_get_undefined(env, &v);
        return v;
    }
    if (rc) {
        throw_udb(env, rc, udb_env_errmsg(d->se->env), NULL);
        return NULL;
    }
    v = str(env, json);
    udb_free(json);
    return v;
}

/* decode(buffer): msgpack bytes to a JS value (for tests and tools). */
static napi_value js_decode(napi_env env, napi_callback_info info)
{
    ARGS(1);
    void *data = NULL;
    size_t n = 0;
    if (napi_get_buffer_info(env, argv[0], &data, &n) != napi_ok) {
        napi_throw_type_error(env, "UDB_EINVAL", "uniqdb: decode takes a Buffer");
        return NULL;
    }
    napi_value v;
    return dec_value(env, get_realm(env), data, n, &v) ? NULL : v;
}

/* encode(value) -> Buffer of msgpack */
static napi_value js_encode(napi_env env, napi_callback_info info)
{
    ARGS(1);
    mbuf b = {0};
    napi_value v = NULL;
    if (!encode(env, argv[0], &b, ""))
        napi_create_buffer_copy(env, b.len, b.p ? (void *)b.p : (void *)"", NULL, &v);
    mbuf_free(&b);
    return v;
}

static napi_value js_open_count(napi_env env, napi_callback_info info)
{
    unsigned n = 0;
    pthread_mutex_lock(&g_lock);
    for (shared_env *se = g_envs; se; se = se->next)
        n++;
    pthread_mutex_unlock(&g_lock);
    napi_value v;
    napi_create_uint32(env, n, &v);
    return v;
}

/* ---- backup -------------------------------------------------------------------- */

/* A backup copies the whole data file: it runs on a libuv worker thread, and
 * its promise settles on the JS thread once the copy is on disk.  The job
 * holds a reference on the environment, so close() meanwhile closes only the
 * handle. */
typedef struct backup_job {
    shared_env *se;
    char *dest;
    unsigned flags;
    int rc;
    char msg[1024];
    napi_deferred deferred;
    napi_async_work work;
} backup_job;

static void backup_execute(napi_env env, void *data)
{
    backup_job *j = data;
    j->rc = udb_backup(j->se->env, j->dest, j->flags);
    if (j->rc) /* the calling thread's message: read it on this thread */
        snprintf(j->msg, sizeof j->msg, "%s", udb_env_errmsg(j->se->env));
}

static void backup_complete(napi_env env, napi_status status, void *data)
{
    backup_job *j = data;
    if (status == napi_ok && !j->rc) {
        napi_value u;
        napi_get_undefined(env, &u);
        napi_resolve_deferred(env, j->deferred, u);
    } else {
        napi_reject_deferred(env, j->deferred,
                             make_error(env, j->rc ? j->rc : UDB_EINVAL,
                                        j->rc ? j->msg : "the backup was cancelled", NULL, -1));
    }
    napi_delete_async_work(env, j->work);
    env_release(j->se);
    free(j->dest);
    free(j);
}

/* backup(h, dest, compact) -> a promise settled once the copy is on disk */
static napi_value js_backup(napi_env env, napi_callback_info info)
{
    ARGS(3);
    db *d = open_db(env, argv[0]);
    if (!d)
        return NULL;
    bool bad = false, compact = false;
    char *dest = opt_string(env, argv[1], "dest", false, &bad);
    if (bad)
        return NULL;
    napi_get_value_bool(env, argv[2], &compact);
    backup_job *j = calloc(1, sizeof *j);
    napi_value promise, name;
    if (!j) {
        free(dest);
        napi_throw_error(env, "UDB_ENOMEM", "uniqdb: out of memory");
        return NULL;
    }
    j->se = d->se;
    j->dest = dest;
    j->flags = compact ? UDB_BACKUP_COMPACT : 0;
    napi_create_string_utf8(env, "uniqdb.backup", NAPI_AUTO_LENGTH, &name);
    if (napi_create_async_work(env, NULL, name, backup_execute, backup_complete, j,
                               &j->work) != napi_ok) {
        free(dest);
        free(j);
        napi_throw_error(env, "UDB_ENOMEM", "uniqdb: cannot start the backup");
        return NULL;
    }
    napi_create_promise(env, &j->deferred, &promise);
    env_ref(j->se);
    if (napi_queue_async_work(env, j->work) != napi_ok)
        backup_complete(env, napi_generic_failure, j);
    return promise;
}

NAPI_MODULE_INIT()
{
    static const struct {
        const char *name;
        napi_callback fn;
    } fns[] = {
        {"init", js_init},         {"open", js_open},          {"close", js_close},
        {"get", js_get},           {"find", js_find},          {"seqGet", js_seq_get},
        {"scanOpen", js_scan_open}, {"scanNext", js_scan_next}, {"scanClose", js_scan_close},
        {"exec", js_exec},         {"txBegin", js_tx_begin},   {"txOp", js_tx_op},
        {"txEnd", js_tx_end},      {"check", js_check},        {"schema", js_schema},
        {"decode", js_decode},     {"encode", js_encode},      {"openCount", js_open_count},
        {"backup", js_backup},     {"unkeep", js_unkeep},      {"intern", js_intern},
        {"getk", js_getk},         {"findk", js_findk},
    };
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        napi_value f;
        napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f);
        napi_set_named_property(env, exports, fns[i].name, f);
    }
    napi_value v;
    napi_create_string_utf8(env, udb_version(NULL, NULL, NULL), NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, exports, "libraryVersion", v);
    return exports;
}
