/*
 * tracegen.c -- random operations for the PostgreSQL trace tests (see
 * tracegen.h).  Moved out of trace.c so that pg_diff.c draws from the same
 * generator; for trace.c's two types the sequence of draws is unchanged, so
 * a seed reproduces the same traces as before.
 */
#include "tracegen.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "uniqdb.h"

static const fdef select_fields[] = {{"key", K_INT}, {"a", K_INT},    {"b", K_STR},
                                     {"User", K_STR}, {"status", K_STR}, {"flag", K_BOOL},
                                     {"n", K_UINT}};
static const fdef mixed_fields[] = {{"id", K_STR}, {"x", K_STR}, {"y", K_INT}, {"e", K_STR}};
/* "zz" is not declared: an extra field */
static const fdef doc_fields[] = {{"id", K_UINT},    {"slug", K_STR}, {"owner", K_INT},
                                  {"body", K_ANY},   {"score", K_FLOAT}, {"tag", K_STR},
                                  {"zz", K_ANY}};
const tdef tg_types[3] = {{"select", select_fields, 7, 0},
                          {"Mixed", mixed_fields, 4, 0},
                          {"doc", doc_fields, 7, 1}};

const char *const tg_op_names[4] = {"insert", "replace", "merge", "delete"};

/* ---- randomness (xorshift64*: reproducible from the seed) -------------------------- */

uint64_t tg_rng;

uint64_t tg_next(void)
{
    tg_rng ^= tg_rng >> 12;
    tg_rng ^= tg_rng << 25;
    tg_rng ^= tg_rng >> 27;
    return tg_rng * 2685821657736338717ull;
}

unsigned tg_pick(unsigned n)
{
    return (unsigned)(tg_next() % n);
}

static void set_text(val *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_text(val *v, const char *fmt, ...)
{
    va_list ap;
    v->st = V_TEXT;
    va_start(ap, fmt);
    vsnprintf(v->text, sizeof v->text, fmt, ap);
    va_end(ap);
}

static void doc_value(val *v, const char *name, int bad)
{
    /* any: maps, arrays, nested, floats, bin-free JSON; equal JSON packs equal */
    static const char *const any[] = {"{\"k\": [1, 2.5, \"x\"]}", "[true, null, -3]", "\"s\"",
                                      "{\"b\": {\"c\": {}}, \"a\": []}", "1.25",
                                      "18446744073709551615", "-9223372036854775808",
                                      "{\"\": \"\\u00e9\"}"};
    static const char *const slug[] = {"Ab", "aB", "x", "X", "\xc3\xa9", "\xc3\x89"};
    /* -0.0 is 0.0 to a unique index; 0.1 and the extremes must come back
       exactly (PostgreSQL's float8 text is shortest-exact) */
    static const char *const score[] = {"0", "1", "1.5", "-0.0", "0.1", "0.0", "-1e300",
                                        "5e-324"};
    if (strcmp(name, "id") == 0)
        set_text(v, "%u", tg_pick(8) + 1);
    else if (strcmp(name, "slug") == 0)
        set_text(v, "%s", slug[tg_pick(6)]);
    else if (strcmp(name, "owner") == 0)
        set_text(v, "%d", (int)tg_pick(3) - 1);
    else if (strcmp(name, "body") == 0 || strcmp(name, "zz") == 0)
        set_text(v, "%s", any[tg_pick(8)]);
    else if (strcmp(name, "score") == 0)
        set_text(v, "%s", score[tg_pick(8)]);
    else if (strcmp(name, "tag") == 0)
        set_text(v, "%s", bad && tg_pick(6) == 0 ? "bogus" : tg_pick(3) ? "pub" : "draft");
}

void tg_random_value(val *v, const tdef *t, size_t f, int bad)
{
    static const char *const status[] = {"active", "archived", "deleted"};
    const char *name = t->fields[f].name;
    if (t == &tg_types[2]) {
        doc_value(v, name, bad);
    } else if (f == 0) {
        if (t == &tg_types[0])
            set_text(v, "%d", (int)tg_pick(10) - 2);
        else
            set_text(v, "k%u", tg_pick(8));
    } else if (strcmp(name, "a") == 0) {
        set_text(v, "%u", tg_pick(6));
    } else if (strcmp(name, "y") == 0) {
        set_text(v, "%u", tg_pick(3));
    } else if (strcmp(name, "b") == 0) {
        set_text(v, "%s", tg_pick(2) ? "x" : "y");
    } else if (strcmp(name, "User") == 0) {
        set_text(v, "u%u", tg_pick(2));
    } else if (strcmp(name, "status") == 0) {
        /* mostly active: the partial index has something to hold */
        set_text(v, "%s",
                 bad && tg_pick(6) == 0 ? "bogus" : status[tg_pick(5) < 3 ? 0 : tg_pick(3)]);
    } else if (strcmp(name, "flag") == 0) {
        set_text(v, "%s", tg_pick(4) ? "true" : "false");
    } else if (strcmp(name, "n") == 0) {
        unsigned r = tg_pick(6);
        if (bad && tg_pick(6) == 0)
            set_text(v, "-1");
        else if (r == 5)
            set_text(v, "18446744073709551615");
        else
            set_text(v, "%u", r);
    } else if (strcmp(name, "x") == 0) {
        set_text(v, "%c", "pqrst"[tg_pick(5)]);
    } else if (strcmp(name, "e") == 0) {
        /* "collate": "nocase": ASCII case variants collide, É and é do not */
        static const char *const es[] = {"Ab", "aB", "AB", "ab", "\xc3\x89", "\xc3\xa9", "Z@",
                                         "z@", "_", "\x7f"};
        set_text(v, "%s", es[tg_pick(10)]);
    }
}

void tg_random_op(op *o, int allow_bad, size_t ntypes)
{
    unsigned r = tg_pick(10);
    memset(o, 0, sizeof *o);
    unsigned t = tg_pick(10);
    o->t = &tg_types[ntypes < 3 ? (t < 7 ? 0 : 1) : (t < 4 ? 0 : t < 7 ? 1 : 2)];
    o->kind = r < 5 ? OP_INSERT : r < 7 ? OP_REPLACE : r < 9 ? OP_MERGE : OP_DELETE;
    tg_random_value(&o->v[0], o->t, 0, 0);
    if (o->kind == OP_DELETE)
        return;
    if (o->t->auto_key && o->kind == OP_INSERT && tg_pick(3))
        o->v[0].st = V_ABSENT; /* the sequence's next value */
    for (size_t f = 1; f < o->t->nfields; f++) {
        unsigned p = tg_pick(8);
        if (o->kind == OP_MERGE) {
            if (p < 4)
                continue; /* not in the patch */
            if (p == 4) {
                o->v[f].st = V_NULL; /* removes the field */
                continue;
            }
        } else if (p < 2 && !(strcmp(o->t->fields[f].name, "status") == 0 && !allow_bad)) {
            continue; /* absent: NULL in PostgreSQL */
        }
        tg_random_value(&o->v[f], o->t, f, allow_bad);
    }
}

/* ---- packing ------------------------------------------------------------------------ */

int tg_pack_val(msgpack_packer *pk, const fdef *f, const val *v)
{
    if (v->st == V_NULL)
        return msgpack_pack_nil(pk);
    switch (f->kind) {
    case K_INT:
    case K_UINT:
        if (v->text[0] == '-')
            return msgpack_pack_int64(pk, strtoll(v->text, NULL, 10));
        return msgpack_pack_uint64(pk, strtoull(v->text, NULL, 10));
    case K_FLOAT:
        /* "1" is an int given to a float field (stored as float64) */
        if (strpbrk(v->text, ".eE"))
            return msgpack_pack_double(pk, strtod(v->text, NULL));
        return msgpack_pack_int64(pk, strtoll(v->text, NULL, 10));
    case K_STR:
        msgpack_pack_str(pk, strlen(v->text));
        return msgpack_pack_str_body(pk, v->text, strlen(v->text));
    case K_BOOL:
        if (strcmp(v->text, "true") == 0)
            return msgpack_pack_true(pk);
        return msgpack_pack_false(pk);
    case K_ANY: {
        void *mp = NULL;
        size_t len = 0;
        if (udb_json_to_msgpack(&mp, &len, v->text, strlen(v->text)) != 0)
            return -1;
        int rc = pk->callback(pk->data, mp, len);
        udb_free(mp);
        return rc;
    }
    }
    return -1;
}

int tg_pack_op(msgpack_sbuffer *rec, msgpack_sbuffer *key, const op *o)
{
    msgpack_packer pk;
    int rc = 0;
    msgpack_packer_init(&pk, key, msgpack_sbuffer_write);
    if (o->v[0].st != V_ABSENT)
        rc |= tg_pack_val(&pk, &o->t->fields[0], &o->v[0]);
    msgpack_packer_init(&pk, rec, msgpack_sbuffer_write);
    size_t n = 0, first = o->kind == OP_INSERT ? 0 : 1;
    for (size_t f = first; f < o->t->nfields; f++)
        n += o->v[f].st != V_ABSENT;
    msgpack_pack_map(&pk, n);
    for (size_t f = first; f < o->t->nfields; f++) {
        if (o->v[f].st == V_ABSENT)
            continue;
        msgpack_pack_str(&pk, strlen(o->t->fields[f].name));
        msgpack_pack_str_body(&pk, o->t->fields[f].name, strlen(o->t->fields[f].name));
        rc |= tg_pack_val(&pk, &o->t->fields[f], &o->v[f]);
    }
    return rc ? -1 : 0;
}

void tg_describe(char *out, size_t cap, const op *o)
{
    size_t len = (size_t)snprintf(out, cap, "%s %s key=%s {", tg_op_names[o->kind],
                                  o->t->name, o->v[0].st == V_ABSENT ? "(auto)" : o->v[0].text);
    for (size_t f = 1; f < o->t->nfields && len < cap; f++)
        if (o->v[f].st != V_ABSENT)
            len += (size_t)snprintf(out + len, cap - len, " %s=%s", o->t->fields[f].name,
                                    o->v[f].st == V_NULL ? "null" : o->v[f].text);
    if (len < cap)
        snprintf(out + len, cap - len, " }");
}

int tg_run_cmd(char *const argv[])
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execvp(argv[0], argv);
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) < 0)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
