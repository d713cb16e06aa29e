/*
 * fuzz_record.c -- untrusted msgpack records, keys and value lists against a
 * fixed schema.
 *
 * Every byte string is either refused with a clear error (UDB_EBADRECORD, or
 * UDB_EKEYTOOLONG / UDB_ECONFLICT where they apply, always with a message)
 * or stored such that it reads back as what was given, and converts to JSON
 * and back (udb_msgpack_to_json, udb_json_to_msgpack) to the very same bytes.  msgpack bombs (huge
 * declared counts, deep nesting, 4 GiB lengths, truncation, trailing bytes)
 * must be refused before msgpack-c allocates for them: run under
 * -rss_limit_mb=512 -malloc_limit_mb=128.
 *
 * Input: byte 0 picks what the rest is:
 *   0  a record of type "r" (every field type, unique, partial and
 *      not-distinct indexes): insert, read back, compare field by field,
 *      re-insert (conflict), replace by itself (same bytes), commit, check;
 *   1  a record of type "x" (auto key, extra fields): the same;
 *   2  a merge patch, then a full replacement, for the stored record "base";
 *   3  a primary key / value list: get, find, scan, delete.
 * One environment stays open; each input leaves it as it found it.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "mpack.h"
#include "uniqdb_jansson.h"
#include "record.h"
#include "txn.h"

static const char SCHEMA[] =
    "{\"types\": {"
    " \"r\": {\"key\": \"k\", \"fields\": {"
    "   \"k\": {\"type\": \"str\"}, \"i\": {\"type\": \"int\"}, \"u\": {\"type\": \"uint\"},"
    "   \"f\": {\"type\": \"float\"}, \"b\": {\"type\": \"bool\"}, \"bin\": {\"type\": \"bin\"},"
    "   \"e\": {\"type\": \"enum\", \"values\": [\"x\", \"y\", \"z\"], \"required\": true},"
    "   \"a\": {\"type\": \"any\"}, \"s\": {\"type\": \"str\"}},"
    "  \"unique\": {\"iu\": {\"fields\": [\"i\", \"u\"]},"
    "              \"fb\": {\"fields\": [\"f\", \"b\"], \"nulls\": \"not_distinct\"},"
    "              \"ps\": {\"fields\": [\"s\"], \"where\": \"e IN ('x', 'y') AND i != 3\"}},"
    "  \"indexes\": {\"by_e\": {\"fields\": [\"e\", \"bin\"]}}},"
    " \"x\": {\"key\": \"id\", \"extra\": true, \"fields\": {"
    "   \"id\": {\"type\": \"uint\", \"auto\": true},"
    " \"name\": {\"type\": \"str\", \"required\": true},"
    "   \"n\": {\"type\": \"int\"}},"
    "  \"unique\": {\"name\": {\"fields\": [\"name\"]}}}"
    "}}";

static udb_env *env;
static unsigned char base_rec[256];   /* the stored form of "base" */
static size_t base_len;
static unsigned char base_key[8];     /* msgpack "base" */

static void pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

static void check_clean(size_t nrecords_r)
{
    fuzz_expect_check(env, "after a write");
    udb_txn *txn;
    FUZZ_CHECK(udb_begin(&txn, env, UDB_RDONLY) == 0, "begin");
    udb_type_stat st;
    FUZZ_CHECK(udb_type_stat_get(&st, txn, "r") == 0 && st.records == nrecords_r,
               "type r holds %llu records, expected %zu", (unsigned long long)st.records,
               nrecords_r);
    if (nrecords_r == 1) {
        udb_val v;
        FUZZ_CHECK(udb_get(&v, txn, "r", base_key, 5) == 0 && v.size == base_len &&
                       memcmp(v.data, base_rec, base_len) == 0,
                   "record \"base\" changed");
    }
    udb_abort(txn);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    env = fuzz_open_scratch(SCHEMA);

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 7);
    pack_str(&pk, "k"), pack_str(&pk, "base");
    pack_str(&pk, "i"), msgpack_pack_int(&pk, 1);
    pack_str(&pk, "u"), msgpack_pack_uint64(&pk, 1);
    pack_str(&pk, "f"), msgpack_pack_double(&pk, 1.5);
    pack_str(&pk, "b"), msgpack_pack_true(&pk);
    pack_str(&pk, "e"), pack_str(&pk, "x");
    pack_str(&pk, "s"), pack_str(&pk, "base");
    udb_txn *txn;
    FUZZ_CHECK(udb_begin(&txn, env, 0) == 0, "begin");
    udb_val out;
    int rc = udb_insert(&out, txn, "r", sb.data, sb.size);
    FUZZ_CHECK(rc == 0 && out.size <= sizeof base_rec, "insert base: %s", udb_errmsg(txn));
    memcpy(base_rec, out.data, out.size);
    base_len = out.size;
    FUZZ_CHECK(udb_commit(txn) == 0, "commit");
    msgpack_sbuffer_destroy(&sb);
    memcpy(base_key, "\xa4" "base", 5);
    check_clean(1);
    return 0;
}

/* ---- comparing records ----------------------------------------------------- */

static const msgpack_object *map_get(const msgpack_object *m, const char *k, size_t kn)
{
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *key = &m->via.map.ptr[i].key;
        /* msgpack-c may give an empty string a NULL pointer */
        if (key->type == MSGPACK_OBJECT_STR && key->via.str.size == kn &&
            (kn == 0 || memcmp(key->via.str.ptr, k, kn) == 0))
            return &m->via.map.ptr[i].val;
    }
    return NULL;
}

static bool is_float_field(const udb_type *t, const msgpack_object *key)
{
    for (size_t f = 0; f < t->nfields; f++)
        if (t->fields[f].type == UDB_F_FLOAT && strlen(t->fields[f].name) == key->via.str.size &&
            memcmp(t->fields[f].name, key->via.str.ptr, key->via.str.size) == 0)
            return true;
    return false;
}

/* Is v (given) stored as s?  Float fields compare as numbers (-0.0 is 0.0,
 * ints given for floats are stored as float64). */
/* Packed the same way, byte for byte: unlike msgpack_object_equal this holds
 * for a NaN inside an `any` value (NaN != NaN as doubles). */
static bool same_bytes_packed(const msgpack_object *a, const msgpack_object *b)
{
    msgpack_sbuffer sa, sb;
    msgpack_packer pa, pb;
    msgpack_sbuffer_init(&sa);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pa, &sa, msgpack_sbuffer_write);
    msgpack_packer_init(&pb, &sb, msgpack_sbuffer_write);
    msgpack_pack_object(&pa, *a);
    msgpack_pack_object(&pb, *b);
    bool same = sa.size == sb.size && (sa.size == 0 || memcmp(sa.data, sb.data, sa.size) == 0);
    msgpack_sbuffer_destroy(&sa);
    msgpack_sbuffer_destroy(&sb);
    return same;
}

static bool same_value(const udb_type *t, const msgpack_object *key, const msgpack_object *v,
                       const msgpack_object *s)
{
    if (is_float_field(t, key))
        return s->type == MSGPACK_OBJECT_FLOAT64 && udb__as_double(v) == s->via.f64;
    return same_bytes_packed(v, s);
}

/* stored must hold exactly the non-nil fields of patch, except that:
 *  - with base (an update), the key field is base's, and with keep (a merge)
 *    base's other fields that patch does not mention are kept;
 *  - without base (an insert), a missing auto key has been assigned. */
static void expect_fields(const udb_type *t, const msgpack_object *stored,
                          const msgpack_object *patch, const msgpack_object *base, bool keep)
{
    const char *kname = t->fields[t->key].name;
    size_t kn = strlen(kname), want = 0;
    FUZZ_CHECK(stored->type == MSGPACK_OBJECT_MAP, "stored record is not a map");
    for (uint32_t i = 0; i < patch->via.map.size; i++) {
        const msgpack_object *k = &patch->via.map.ptr[i].key, *v = &patch->via.map.ptr[i].val;
        const msgpack_object *s = map_get(stored, k->via.str.ptr, k->via.str.size);
        bool is_key = k->via.str.size == kn && memcmp(k->via.str.ptr, kname, kn) == 0;
        if (base && is_key)
            continue;
        if (v->type == MSGPACK_OBJECT_NIL) {
            FUZZ_CHECK(!s || (is_key && t->fields[t->key].autoinc),
                       "field \"%.*s\" was given as nil but is stored", (int)k->via.str.size,
                       k->via.str.ptr);
            continue;
        }
        want++;
        FUZZ_CHECK(s && same_value(t, k, v, s), "field \"%.*s\" is not stored as given",
                   (int)k->via.str.size, k->via.str.ptr);
    }
    const msgpack_object *pkey = map_get(patch, kname, kn);
    if (!base && (!pkey || pkey->type == MSGPACK_OBJECT_NIL)) {
        const msgpack_object *s = map_get(stored, kname, kn);
        FUZZ_CHECK(t->fields[t->key].autoinc && s && s->type == MSGPACK_OBJECT_POSITIVE_INTEGER,
                   "inserted without a key, stored without an auto key");
        want++;
    }
    for (uint32_t i = 0; base && i < base->via.map.size; i++) {
        const msgpack_object *k = &base->via.map.ptr[i].key;
        bool is_key = k->via.str.size == kn && memcmp(k->via.str.ptr, kname, kn) == 0;
        if (!is_key && (!keep || map_get(patch, k->via.str.ptr, k->via.str.size)))
            continue;
        want++;
        const msgpack_object *s = map_get(stored, k->via.str.ptr, k->via.str.size);
        FUZZ_CHECK(s && same_bytes_packed(s, &base->via.map.ptr[i].val),
                   "field \"%.*s\" not in the patch changed", (int)k->via.str.size,
                   k->via.str.ptr);
    }
    FUZZ_CHECK(stored->via.map.size == want, "stored record has %u fields, expected %zu",
               stored->via.map.size, want);
}

static void unpack_trusted(msgpack_unpacked *up, const void *p, size_t n, const char *what)
{
    const char *why = NULL;
    int rc = udb__mp_parse(up, p, n, &why);
    FUZZ_CHECK(rc == 0, "%s is not valid msgpack: %s", what, why ? why : udb_strerror(rc));
}

static void expect_refusal(udb_txn *txn, int rc, const char *op, bool conflict_ok)
{
    FUZZ_CHECK(rc == UDB_EBADRECORD || rc == UDB_EKEYTOOLONG ||
               (conflict_ok && rc == UDB_ECONFLICT),
               "%s returned %d (%s): %s", op, rc, udb_strerror(rc), udb_errmsg(txn));
    FUZZ_CHECK(*udb_errmsg(txn), "%s refused without a message", op);
    FUZZ_CHECK((rc == UDB_ECONFLICT) == (udb_conflict_info(txn) != NULL),
               "%s: conflict detail present iff UDB_ECONFLICT", op);
}

/* ---- the modes ------------------------------------------------------------- */

/* The msgpack checker must agree with msgpack-c on what it accepts, and
 * never accept at a smaller depth what it refuses at a larger one. */
static bool checked(const uint8_t *data, size_t size)
{
    bool prev = false;
    for (unsigned d = 1; d <= 33; d += 8) {
        bool ok = udb__mp_check(data, size, d, NULL) == 0;
        FUZZ_CHECK(!prev || ok, "accepted at a smaller depth, refused at depth %u", d);
        prev = ok;
    }
    bool ok = udb__mp_check(data, size, UDB_MAX_DEPTH, NULL) == 0;
    if (ok) {
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        FUZZ_CHECK(udb__mp_unpack(&up, data, size) == 0, "msgpack-c refuses what the checker "
                   "accepted");
        msgpack_unpacked_destroy(&up);
    }
    return ok;
}

/* a and b are the same value, packed the same way, but that a NaN equals any
 * NaN: JSON has one NaN, {"$float": "nan"}, so a NaN's sign and payload (which
 * an `any` value keeps) come back as the quiet NaN of its width. */
static bool same_but_nan(const msgpack_object *a, const msgpack_object *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return (isnan(a->via.f64) && isnan(b->via.f64)) ||
               memcmp(&a->via.f64, &b->via.f64, sizeof a->via.f64) == 0;
    case MSGPACK_OBJECT_ARRAY:
        if (a->via.array.size != b->via.array.size)
            return false;
        for (uint32_t i = 0; i < a->via.array.size; i++)
            if (!same_but_nan(&a->via.array.ptr[i], &b->via.array.ptr[i]))
                return false;
        return true;
    case MSGPACK_OBJECT_MAP:
        if (a->via.map.size != b->via.map.size)
            return false;
        for (uint32_t i = 0; i < a->via.map.size; i++)
            if (!same_but_nan(&a->via.map.ptr[i].key, &b->via.map.ptr[i].key) ||
                !same_but_nan(&a->via.map.ptr[i].val, &b->via.map.ptr[i].val))
                return false;
        return true;
    default:
        return same_bytes_packed(a, b);
    }
}

/* A record as the engine hands it out, as JSON (compact and indented) and
 * back, is the very same bytes -- but for a NaN's sign and payload, see
 * same_but_nan --, and from then on the very same text and bytes; the
 * jansson-level calls the `uniqdb` tool frames its output with print the
 * same text (uniqdb.h, "Records as JSON"). */
static void json_round_trip(const void *rec, size_t n)
{
    for (unsigned flags = 0; flags <= UDB_JSON_INDENT(2); flags += 2) {
        char *text = NULL, *text2 = NULL;
        void *back = NULL;
        size_t blen;
        json_t *v = NULL;
        FUZZ_CHECK(udb_msgpack_to_json(&text, NULL, rec, n, flags) == 0,
                   "a stored record does not convert to JSON: %s", udb_env_errmsg(NULL));
        FUZZ_CHECK(udb_json_to_msgpack(&back, &blen, text, strlen(text)) == 0,
                   "the JSON of a stored record does not read back: %s\n  %s",
                   udb_env_errmsg(NULL), text);
        if (blen != n || memcmp(back, rec, n) != 0) {
            msgpack_unpacked ua, ub;
            msgpack_unpacked_init(&ua);
            msgpack_unpacked_init(&ub);
            unpack_trusted(&ua, rec, n, "the stored record");
            unpack_trusted(&ub, back, blen, "the record from JSON");
            FUZZ_CHECK(same_but_nan(&ua.data, &ub.data),
                       "record -> JSON -> record changed the value\n  %s", text);
            msgpack_unpacked_destroy(&ua);
            msgpack_unpacked_destroy(&ub);
            char *again = NULL;
            FUZZ_CHECK(udb_msgpack_to_json(&again, NULL, back, blen, flags) == 0 &&
                           strcmp(again, text) == 0,
                       "record -> JSON -> record -> JSON changed the text\n  %s", text);
            udb_free(again);
        }
        FUZZ_CHECK(udb_jansson_from_msgpack(&v, rec, n) == 0 &&
                       udb_jansson_dumps(&text2, NULL, v, flags) == 0 && strcmp(text, text2) == 0,
                   "the jansson-level calls print a record otherwise\n  %s", text);
        json_decref(v);
        udb_free(text);
        udb_free(text2);
        udb_free(back);
    }
}

static void mode_insert(const char *type, const uint8_t *data, size_t size)
{
    bool ok = checked(data, size);
    udb_txn *txn;
    FUZZ_CHECK(udb_begin(&txn, env, 0) == 0, "begin");
    udb_type *t = udb__schema_type(udb__txn_schema(txn), type);
    udb_val out;
    int rc = udb_insert(&out, txn, type, data, size);
    if (rc) {
        expect_refusal(txn, rc, "insert", true);
        FUZZ_CHECK(ok || rc == UDB_EBADRECORD, "bad msgpack refused with %s", udb_strerror(rc));
        udb_abort(txn);
        check_clean(1);
        return;
    }
    FUZZ_CHECK(ok, "insert accepted msgpack the checker refuses");

    msgpack_unpacked in, st;
    msgpack_unpacked_init(&in);
    msgpack_unpacked_init(&st);
    unpack_trusted(&in, data, size, "the input");
    unpack_trusted(&st, out.data, out.size, "the stored record");
    expect_fields(t, &st.data, &in.data, NULL, false);

    /* read back by primary key */
    const msgpack_object *key = map_get(&st.data, t->fields[t->key].name,
                                        strlen(t->fields[t->key].name));
    FUZZ_CHECK(key, "stored record has no key");
    msgpack_sbuffer kb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&kb);
    msgpack_packer_init(&pk, &kb, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, *key);
    udb_val again;
    rc = udb_get(&again, txn, type, kb.data, kb.size);
    FUZZ_CHECK(rc == 0 && again.size == out.size && memcmp(again.data, out.data, out.size) == 0,
               "get does not return what insert stored: %s", udb_errmsg(txn));
    json_round_trip(out.data, out.size);

    /* the stored form is canonical: a fixpoint of replacing and re-inserting */
    rc = udb_insert(NULL, txn, type, out.data, out.size);
    FUZZ_CHECK(rc == UDB_ECONFLICT, "re-inserting a stored record: %s", udb_strerror(rc));
    const udb_conflict *c = udb_conflict_info(txn);
    FUZZ_CHECK(c && c->count >= 1 && strcmp(c->indexes[0].index, t->fields[t->key].name) == 0,
               "conflict detail does not start with the primary key");
    rc = udb_update(&again, txn, type, kb.data, kb.size, out.data, out.size, 0);
    FUZZ_CHECK(rc == 0 && again.size == out.size && memcmp(again.data, out.data, out.size) == 0,
               "replacing a record by itself changed it: %s", udb_errmsg(txn));
    /* merging the input again changes nothing (unless it names the key as
       nil, which a merge refuses: it would remove the key) */
    const msgpack_object *given = map_get(&in.data, t->fields[t->key].name,
                                          strlen(t->fields[t->key].name));
    rc = udb_update(&again, txn, type, kb.data, kb.size, data, size, UDB_MERGE);
    if (given && given->type == MSGPACK_OBJECT_NIL)
        FUZZ_CHECK(rc == UDB_EBADRECORD, "a merge removed the key: %s", udb_strerror(rc));
    else
        FUZZ_CHECK(rc == 0 && again.size == out.size &&
                       memcmp(again.data, out.data, out.size) == 0,
                   "merging a record into itself changed it: %s", udb_errmsg(txn));

    FUZZ_CHECK(udb_commit(txn) == 0, "commit");
    check_clean(strcmp(type, "r") == 0 ? 2 : 1);
    FUZZ_CHECK(udb_begin(&txn, env, 0) == 0, "begin");
    FUZZ_CHECK(udb_delete(txn, type, kb.data, kb.size) == 0, "delete: %s", udb_errmsg(txn));
    if (t->seqname)
        FUZZ_CHECK(udb_seq_set(txn, t->seqname, 0) == 0, "seq_set");
    FUZZ_CHECK(udb_commit(txn) == 0, "commit");
    check_clean(1);
    msgpack_sbuffer_destroy(&kb);
    msgpack_unpacked_destroy(&in);
    msgpack_unpacked_destroy(&st);
}

static void restore_base(void)
{
    udb_txn *txn;
    FUZZ_CHECK(udb_begin(&txn, env, 0) == 0, "begin");
    int rc = udb_update(NULL, txn, "r", base_key, 5, base_rec, base_len, 0);
    FUZZ_CHECK(rc == 0, "restoring base: %s", udb_errmsg(txn));
    FUZZ_CHECK(udb_commit(txn) == 0, "commit");
    check_clean(1);
}

static void mode_update(const uint8_t *data, size_t size)
{
    bool ok = checked(data, size);
    msgpack_unpacked in, st, base;
    msgpack_unpacked_init(&in);
    msgpack_unpacked_init(&st);
    msgpack_unpacked_init(&base);
    unpack_trusted(&base, base_rec, base_len, "base");
    if (ok)
        unpack_trusted(&in, data, size, "the input");
    for (int merge = 1; merge >= 0; merge--) {
        udb_txn *txn;
        FUZZ_CHECK(udb_begin(&txn, env, 0) == 0, "begin");
        const udb_type *t = udb__schema_type(udb__txn_schema(txn), "r");
        udb_val out;
        int rc = udb_update(&out, txn, "r", base_key, 5, data, size, merge ? UDB_MERGE : 0);
        if (rc) {
            expect_refusal(txn, rc, merge ? "merge" : "update", true);
            udb_abort(txn);
            continue;
        }
        FUZZ_CHECK(ok, "update accepted msgpack the checker refuses");
        unpack_trusted(&st, out.data, out.size, "the stored record");
        expect_fields(t, &st.data, &in.data, &base.data, merge);
        FUZZ_CHECK(udb_commit(txn) == 0, "commit");
        restore_base();
    }
    msgpack_unpacked_destroy(&in);
    msgpack_unpacked_destroy(&st);
    msgpack_unpacked_destroy(&base);
}

static void mode_key(const uint8_t *data, size_t size)
{
    static const char *const finds[] = {"iu", "fb", "ps", NULL};
    bool ok = checked(data, size);
    udb_txn *txn;
    FUZZ_CHECK(udb_begin(&txn, env, 0) == 0, "begin");
    udb_val v;
    int rc;
    for (int ty = 0; ty < 2; ty++) {
        const char *type = ty ? "x" : "r";
        rc = udb_get(&v, txn, type, data, size);
        FUZZ_CHECK(rc == 0 || rc == UDB_ENOTFOUND || rc == UDB_EBADRECORD, "get: %s",
                   udb_strerror(rc));
        FUZZ_CHECK(ok || rc == UDB_EBADRECORD, "get accepted bad msgpack");
        FUZZ_CHECK(rc != 0 || (ty == 0 && v.size == base_len &&
                               memcmp(v.data, base_rec, base_len) == 0),
                   "get found a record that does not exist");
    }
    for (int i = 0; finds[i]; i++) {
        rc = udb_find(&v, txn, "r", finds[i], data, size);
        FUZZ_CHECK(rc == 0 || rc == UDB_ENOTFOUND || rc == UDB_EBADRECORD, "find: %s",
                   udb_strerror(rc));
        FUZZ_CHECK(ok || rc == UDB_EBADRECORD, "find accepted bad msgpack");
        FUZZ_CHECK(rc != 0 || (v.size == base_len && memcmp(v.data, base_rec, base_len) == 0),
                   "find found a record that does not exist");
    }
    for (int i = 0; i < 4; i++) {
        const char *ix = i == 3 ? "by_e" : finds[i];
        udb_cursor *cur;
        rc = udb_scan(&cur, txn, "r", ix, data, size);
        FUZZ_CHECK(rc == 0 || rc == UDB_EBADRECORD, "scan: %s", udb_strerror(rc));
        FUZZ_CHECK(ok || rc == UDB_EBADRECORD, "scan accepted bad msgpack");
        if (rc)
            continue;
        int n = 0;
        while ((rc = udb_cursor_next(&v, cur)) == 0) {
            FUZZ_CHECK(v.size == base_len && memcmp(v.data, base_rec, base_len) == 0,
                       "scan found a record that does not exist");
            n++;
        }
        FUZZ_CHECK(rc == UDB_ENOTFOUND && n <= 1, "scan ended with %s after %d records",
                   udb_strerror(rc), n);
        udb_cursor_close(cur);
    }
    rc = udb_delete(txn, "r", data, size);
    FUZZ_CHECK(rc == 0 || rc == UDB_ENOTFOUND || rc == UDB_EBADRECORD, "delete: %s",
               udb_strerror(rc));
    FUZZ_CHECK(ok || rc == UDB_EBADRECORD, "delete accepted bad msgpack");
    udb_abort(txn);
}

/* udb__mp_parse decodes a map of scalars itself: it must agree with
 * udb__mp_check + msgpack-c's msgpack_unpack on the verdict, and on the
 * objects, compared as the bytes they pack to and their types. */
static void parse_agrees(const uint8_t *p, size_t n)
{
    msgpack_unpacked ours;
    msgpack_unpacked_init(&ours);
    int rc = udb__mp_parse(&ours, p, n, NULL);
    int their = udb__mp_check(p, n, UDB_MAX_DEPTH, NULL);
    msgpack_zone z;
    msgpack_zone_init(&z, 1024);
    msgpack_object o = {0};
    size_t off = 0;
    if (!their && (msgpack_unpack((const char *)p, n, &off, &z, &o) != MSGPACK_UNPACK_SUCCESS ||
                   off != n))
        their = UDB_EBADRECORD;
    FUZZ_CHECK(rc == their || rc == UDB_ENOMEM, "udb__mp_parse says %d, msgpack-c %d", rc, their);
    if (!rc && !their) {
        /* what udb__mp_parse decodes itself is a map of scalars: types one
           level down, and the bytes */
        bool types = ours.data.type == o.type;
        if (types && o.type == MSGPACK_OBJECT_MAP)
            for (uint32_t i = 0; i < o.via.map.size; i++)
                types = types && ours.data.via.map.ptr[i].key.type == o.via.map.ptr[i].key.type &&
                        ours.data.via.map.ptr[i].val.type == o.via.map.ptr[i].val.type;
        FUZZ_CHECK(types && same_bytes_packed(&ours.data, &o),
                   "udb__mp_parse's objects differ from msgpack-c's");
    }
    udb__mp_done(&ours);
    msgpack_zone_destroy(&z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    /* an exact-size copy: reads past the end are caught by ASan */
    uint8_t *copy = malloc(size);
    FUZZ_CHECK(copy != NULL, "out of memory");
    memcpy(copy, data, size);
    parse_agrees(copy + 1, size - 1);
    switch (copy[0] % 4) {
    case 0: mode_insert("r", copy + 1, size - 1); break;
    case 1: mode_insert("x", copy + 1, size - 1); break;
    case 2: mode_update(copy + 1, size - 1); break;
    default: mode_key(copy + 1, size - 1); break;
    }
    free(copy);
    return 0;
}
