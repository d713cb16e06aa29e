/*
 * cli_export.c -- `uniqdb export --postgres`: a database as one SQL script that
 * `psql -v ON_ERROR_STOP=1 -f FILE` loads into PostgreSQL >= 15 in one
 * transaction, keeping every constraint uniqdb enforces: column types with
 * CHECKs for what a type alone does not say (uint range, enum values, no
 * NaN), NOT NULL for required fields, the primary key, every unique index
 * with its WHERE predicate and NULLS NOT DISTINCT, every plain index, every
 * sequence at its current value, auto keys as column defaults; the data in
 * COPY text format.
 *
 * The tables, indexes and sequences are udb_pg_ddl's text: the one mapping
 * the library keeps for PostgreSQL (its backend makes the same tables).  The
 * data is written here, from the public API's records and sequences, with
 * field types from the stored schema JSON (parsed with jansson).  Everything
 * is read from one snapshot.  A value PostgreSQL cannot hold in its
 * column (a str with a NUL byte: text refuses it) stops the export with the
 * record's type, key and the reason -- unless --str-nul=bytea chooses the
 * documented fallback -- so whatever loads is exactly what uniqdb held.  The
 * script ends with COMMIT only when everything was written: a truncated one
 * loads nothing.
 *
 * Mapping (README, "Moving to PostgreSQL"; udb_pg_ddl):
 *   str text COLLATE "C" | int bigint | uint numeric(20,0) CHECK 0..2^64-1 |
 *   float double precision CHECK <> 'NaN' | bool boolean | bin bytea |
 *   enum text COLLATE "C" CHECK (f IN (...)) | any jsonb (see any_json) |
 *   extra fields of an "extra": true type: one jsonb column "$extra";
 *   "$raw" bytea (types with an any field or extra): the msgpack map of the
 *   record's any and extra fields, byte for byte.
 * Names: table "T", primary key "T_pkey", index "T.I", sequences by their
 * uniqdb name ("T.key" for an auto key), all inside the target schema.
 */
#include "cli_common.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PG_NAMELEN 63      /* PostgreSQL's identifier limit (NAMEDATALEN - 1) */
#define ANY_MAX_DEPTH 512  /* deeper `any` values take the lossless form */

enum ftype { F_STR, F_INT, F_UINT, F_FLOAT, F_BOOL, F_BIN, F_ENUM, F_ANY };

static const char *const ftype_names[] = {"str", "int", "uint", "float",
                                          "bool", "bin", "enum", "any"};

typedef struct xfield {
    const char *name;
    enum ftype type;
    int bytea;            /* a str exported as bytea (--str-nul=bytea) */
} xfield;

typedef struct xtype {
    const char *name;
    xfield *fields;
    size_t nfields, key;
    int extra, raw; /* raw: has the "$raw" column (an any field, or extra) */
} xtype;

typedef struct xseq {
    char *name;
    uint64_t value;
} xseq;

typedef struct exporter {
    FILE *out;
    const char *pgschema;
    int create_schema, want_schema, want_data, str_nul_bytea;
    json_t *root;
    xtype *types;
    size_t ntypes;
    xseq *seqs;
    size_t nseqs, seqcap;
    char *ddl_tables, *ddl_indexes; /* udb_pg_ddl's text */
    msgpack_sbuffer buf;
} exporter;

/* ---- Text of names and literals --------------------------------------------- */

/* A schema name PostgreSQL can use as it is: non-empty, at most 63 bytes
 * (longer ones are silently truncated), UTF-8 (the script's encoding). */
static int check_name(const char *what, const char *name)
{
    size_t n = strlen(name);
    json_t *probe = json_stringn(name, n);
    json_decref(probe);
    if (n == 0 || n > PG_NAMELEN || !probe)
        return cli_fail(CLI_EINVALID, NULL,
                        "%s \"%s\" cannot be a PostgreSQL name (1 to %d bytes of UTF-8)", what,
                        name, PG_NAMELEN);
    return CLI_OK;
}

/* "name" with " doubled; inside a string literal (in_literal) ' doubled too. */
static void put_ident_as(FILE *f, const char *name, int in_literal)
{
    putc('"', f);
    for (; *name; name++) {
        if (*name == '"' || (in_literal && *name == '\''))
            putc(*name, f);
        putc(*name, f);
    }
    putc('"', f);
}

static void put_ident(FILE *f, const char *name)
{
    put_ident_as(f, name, 0);
}

static void put_qualified(exporter *e, const char *name)
{
    put_ident(e->out, e->pgschema);
    putc('.', e->out);
    put_ident(e->out, name);
}

/* One field of COPY's text format: \, newline, CR and tab escaped. */
static void put_copy_text(FILE *f, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (p[i]) {
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default: putc(p[i], f); break;
        }
    }
}

/* bytea's hex form inside a COPY field (its backslash doubled). */
static void put_copy_bytea(FILE *f, const char *p, size_t n)
{
    fputs("\\\\x", f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%02x", (unsigned char)p[i]);
}

/* ---- The stored schema ----------------------------------------------------------- */

static int parse_types(exporter *e, const char *schema_text)
{
    json_error_t jerr;
    size_t t = 0;
    e->root = json_loads(schema_text, JSON_REJECT_DUPLICATES, &jerr);
    const json_t *types = json_object_get(e->root, "types");
    if (!json_is_object(types))
        return cli_fail(CLI_EFAIL, NULL, "stored schema unreadable: %s", jerr.text);
    e->ntypes = json_object_size(types);
    e->types = calloc(e->ntypes ? e->ntypes : 1, sizeof *e->types);
    if (!e->types)
        return cli_fail(CLI_EFAIL, NULL, "out of memory");
    const char *tname;
    json_t *tdef;
    json_object_foreach((json_t *)types, tname, tdef) {
        xtype *x = &e->types[t++];
        const json_t *fields = json_object_get(tdef, "fields");
        const char *key = json_string_value(json_object_get(tdef, "key"));
        size_t i = 0;
        x->name = tname;
        x->extra = x->raw = json_is_true(json_object_get(tdef, "extra"));
        x->nfields = json_object_size(fields);
        x->fields = calloc(x->nfields ? x->nfields : 1, sizeof *x->fields);
        if (!x->fields)
            return cli_fail(CLI_EFAIL, NULL, "out of memory");
        const char *fname;
        json_t *fdef;
        json_object_foreach((json_t *)fields, fname, fdef) {
            const char *ty = json_string_value(json_object_get(fdef, "type"));
            size_t k;
            for (k = 0; k < sizeof ftype_names / sizeof ftype_names[0]; k++)
                if (ty && strcmp(ty, ftype_names[k]) == 0)
                    break;
            if (k == sizeof ftype_names / sizeof ftype_names[0])
                return cli_fail(CLI_EFAIL, NULL, "type \"%s\", field \"%s\": unknown field type",
                                tname, fname);
            xfield *f = &x->fields[i];
            f->name = fname;
            f->type = (enum ftype)k;
            if (f->type == F_ANY)
                x->raw = 1;
            if (key && strcmp(key, fname) == 0)
                x->key = i;
            i++;
        }
        if (!key || strcmp(x->fields[x->key].name, key) != 0)
            return cli_fail(CLI_EFAIL, NULL, "type \"%s\": stored schema has no key field",
                            tname);
    }
    return CLI_OK;
}

static int collect_seq(const char *name, uint64_t value, void *payload)
{
    exporter *e = payload;
    if (e->nseqs == e->seqcap) {
        size_t cap = e->seqcap ? e->seqcap * 2 : 16;
        xseq *s = realloc(e->seqs, cap * sizeof *s);
        if (!s)
            return UDB_ENOMEM;
        e->seqs = s;
        e->seqcap = cap;
    }
    if (!(e->seqs[e->nseqs].name = strdup(name)))
        return UDB_ENOMEM;
    e->seqs[e->nseqs++].value = value;
    return 0;
}

/* ---- `any` values as jsonb ------------------------------------------------------
 * A value goes into jsonb as JSON when reading that JSON back gives the same
 * msgpack value: nil, booleans, integers, finite float64 other than -0.0
 * (written positionally with a fraction, "1000…0.0", so jsonb's numeric keeps
 * it a real and exact), UTF-8 strings without NUL, arrays, and maps whose keys
 * are such strings, all distinct.  jsonb does not keep the order of object
 * keys; JSON gives it no meaning.  Anything else -- binary, extension types,
 * float32, -0.0, NaN, infinities, other strings or keys, or a map that is
 * exactly {"$msgpack": ...} -- is stored whole as {"$msgpack": "<base64 of
 * the value's msgpack>"}, which loses nothing. */

static int any_fits_str(const char *p, size_t n)
{
    if (n && memchr(p, '\0', n))
        return 0;
    json_t *probe = json_stringn(p, n); /* jansson checks the UTF-8 */
    json_decref(probe);
    return probe != NULL;
}

/* -1: out of memory, 0: written, 1: needs the lossless form */
static int buf_put(msgpack_sbuffer *b, const char *s, size_t n)
{
    return msgpack_sbuffer_write(b, s, n) ? -1 : 0;
}

static int put_json_string(msgpack_sbuffer *b, const char *p, size_t n)
{
    int rc = buf_put(b, "\"", 1);
    for (size_t i = 0; i < n && rc == 0; i++) {
        unsigned char c = (unsigned char)p[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            rc = buf_put(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            rc = buf_put(b, esc, 6);
        } else {
            rc = buf_put(b, (const char *)&c, 1);
        }
    }
    return rc ? rc : buf_put(b, "\"", 1);
}

/* A finite double as a positional decimal with a fraction: exact once read
 * back (the digits are strtod's shortest round trip). */
static int put_json_real(msgpack_sbuffer *b, double d)
{
    char text[40];
    const char *p = text;
    cli_format_double(text, d);
    char out[400];
    size_t o = 0;
    if (*p == '-')
        out[o++] = *p++;
    char digits[24];
    size_t nd = 0;
    int point = -1;
    for (; *p && *p != 'e'; p++) {
        if (*p == '.')
            point = (int)nd;
        else if (nd < sizeof digits)
            digits[nd++] = *p;
    }
    int exp10 = 0;
    if (*p == 'e')
        exp10 = atoi(p + 1);
    int pos = (point < 0 ? (int)nd : point) + exp10; /* digits before the point */
    if (pos <= 0) {
        o += (size_t)snprintf(out + o, sizeof out - o, "0.");
        for (int z = 0; z < -pos; z++)
            out[o++] = '0';
        memcpy(out + o, digits, nd);
        o += nd;
    } else if ((size_t)pos >= nd) {
        memcpy(out + o, digits, nd);
        o += nd;
        for (size_t z = nd; z < (size_t)pos; z++)
            out[o++] = '0';
        out[o++] = '.';
        out[o++] = '0';
    } else {
        memcpy(out + o, digits, (size_t)pos);
        o += (size_t)pos;
        out[o++] = '.';
        memcpy(out + o, digits + pos, nd - (size_t)pos);
        o += nd - (size_t)pos;
    }
    return buf_put(b, out, o);
}

static int any_json(msgpack_sbuffer *b, const msgpack_object *o, int depth)
{
    if (depth > ANY_MAX_DEPTH)
        return 1;
    char num[32];
    int rc = 0;
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return buf_put(b, "null", 4);
    case MSGPACK_OBJECT_BOOLEAN:
        return o->via.boolean ? buf_put(b, "true", 4) : buf_put(b, "false", 5);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        snprintf(num, sizeof num, "%" PRIu64, o->via.u64);
        return buf_put(b, num, strlen(num));
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        snprintf(num, sizeof num, "%" PRId64, o->via.i64);
        return buf_put(b, num, strlen(num));
    case MSGPACK_OBJECT_FLOAT64:
        if (!isfinite(o->via.f64) || (o->via.f64 == 0 && signbit(o->via.f64)))
            return 1;
        return put_json_real(b, o->via.f64);
    case MSGPACK_OBJECT_STR:
        if (!any_fits_str(o->via.str.ptr, o->via.str.size))
            return 1;
        return put_json_string(b, o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_ARRAY:
        rc = buf_put(b, "[", 1);
        for (uint32_t i = 0; i < o->via.array.size && rc == 0; i++) {
            if (i)
                rc = buf_put(b, ",", 1);
            if (rc == 0)
                rc = any_json(b, &o->via.array.ptr[i], depth + 1);
        }
        return rc ? rc : buf_put(b, "]", 1);
    case MSGPACK_OBJECT_MAP: {
        json_t *seen = json_object();
        if (!seen)
            return -1;
        rc = buf_put(b, "{", 1);
        for (uint32_t i = 0; i < o->via.map.size && rc == 0; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            if (k->type != MSGPACK_OBJECT_STR ||
                !any_fits_str(k->via.str.ptr, k->via.str.size) ||
                json_object_getn(seen, k->via.str.ptr, k->via.str.size) ||
                (o->via.map.size == 1 && k->via.str.size == 8 &&
                 memcmp(k->via.str.ptr, "$msgpack", 8) == 0)) {
                rc = 1;
                break;
            }
            if (json_object_setn_new(seen, k->via.str.ptr, k->via.str.size, json_null()))
                rc = -1;
            if (rc == 0 && i)
                rc = buf_put(b, ",", 1);
            if (rc == 0)
                rc = put_json_string(b, k->via.str.ptr, k->via.str.size);
            if (rc == 0)
                rc = buf_put(b, ":", 1);
            if (rc == 0)
                rc = any_json(b, &o->via.map.ptr[i].val, depth + 1);
        }
        json_decref(seen);
        return rc ? rc : buf_put(b, "}", 1);
    }
    default: /* float32, bin, ext */
        return 1;
    }
}

/* The jsonb text of an `any` value into e->buf.  Returns 0 or -1 (memory). */
static int any_text(exporter *e, const msgpack_object *o)
{
    e->buf.size = 0;
    int rc;
    if ((rc = any_json(&e->buf, o, 0)) <= 0)
        return rc;
    e->buf.size = 0;
    msgpack_sbuffer packed;
    msgpack_sbuffer_init(&packed);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &packed, msgpack_sbuffer_write);
    rc = -1;
    char *b64 = NULL;
    if (msgpack_pack_object(&pk, *o) == 0 &&
        (b64 = cli_b64_encode((const unsigned char *)packed.data, packed.size)) != NULL &&
        buf_put(&e->buf, "{\"$msgpack\":\"", 13) == 0 && buf_put(&e->buf, b64, strlen(b64)) == 0)
        rc = buf_put(&e->buf, "\"}", 2);
    free(b64);
    msgpack_sbuffer_destroy(&packed);
    return rc;
}

/* ---- Records --------------------------------------------------------------------- */

static void key_text(char out[160], const msgpack_object *k)
{
    if (!k) {
        snprintf(out, 160, "(none)");
    } else if (k->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        snprintf(out, 160, "%" PRIu64, k->via.u64);
    } else if (k->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        snprintf(out, 160, "%" PRId64, k->via.i64);
    } else if (k->type == MSGPACK_OBJECT_STR) {
        json_t *s = json_stringn(k->via.str.ptr, k->via.str.size);
        char *t = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
        snprintf(out, 160, "%s", t ? t : "(a string)");
        free(t);
        json_decref(s);
    } else {
        snprintf(out, 160, "(a %d value)", (int)k->type);
    }
}

/* Split a stored record into one value per field (NULL: absent) and the
 * pairs of undeclared fields. */
static int record_slots(const msgpack_object *rec, const xtype *x, const msgpack_object **vals,
                        msgpack_object_kv *extras, uint32_t *nextra)
{
    if (rec->type != MSGPACK_OBJECT_MAP)
        return -1;
    *nextra = 0;
    for (size_t i = 0; i < x->nfields; i++)
        vals[i] = NULL;
    for (uint32_t i = 0; i < rec->via.map.size; i++) {
        const msgpack_object_kv *kv = &rec->via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR)
            return -1;
        size_t f;
        for (f = 0; f < x->nfields; f++)
            if (strlen(x->fields[f].name) == kv->key.via.str.size &&
                memcmp(x->fields[f].name, kv->key.via.str.ptr, kv->key.via.str.size) == 0)
                break;
        if (kv->val.type == MSGPACK_OBJECT_NIL)
            continue;
        if (f < x->nfields)
            vals[f] = &kv->val;
        else
            extras[(*nextra)++] = *kv;
    }
    return 0;
}

static int value_problem(const xtype *x, const msgpack_object *key, const char *field,
                         const char *why)
{
    char k[160];
    key_text(k, key);
    return cli_fail(CLI_EINVALID, NULL, "type \"%s\", key %s, field \"%s\": %s", x->name, k,
                    field, why);
}

/* One COPY field.  Returns CLI_OK or an exit code (reported). */
static int put_value(exporter *e, const xtype *x, const xfield *f, const msgpack_object *v,
                     const msgpack_object *key)
{
    FILE *out = e->out;
    char text[40];
    if (!v) {
        fputs("\\N", out);
        return CLI_OK;
    }
    int rc;
    switch (f->type) {
    case F_STR:
    case F_ENUM:
        if (v->type != MSGPACK_OBJECT_STR)
            break;
        if (f->bytea) {
            put_copy_bytea(out, v->via.str.ptr, v->via.str.size);
            return CLI_OK;
        }
        if (v->via.str.size && memchr(v->via.str.ptr, '\0', v->via.str.size))
            return value_problem(x, key, f->name,
                                 "the string holds a NUL byte, which PostgreSQL's text cannot "
                                 "store (--str-nul=bytea exports such fields as bytea)");
        put_copy_text(out, v->via.str.ptr, v->via.str.size);
        return CLI_OK;
    case F_INT:
    case F_UINT:
        if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            fprintf(out, "%" PRIu64, v->via.u64);
        else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && f->type == F_INT)
            fprintf(out, "%" PRId64, v->via.i64);
        else
            break;
        return CLI_OK;
    case F_FLOAT:
        if (v->type != MSGPACK_OBJECT_FLOAT64 && v->type != MSGPACK_OBJECT_FLOAT32)
            break;
        if (isnan(v->via.f64))
            break;
        if (isinf(v->via.f64)) {
            fputs(v->via.f64 > 0 ? "Infinity" : "-Infinity", out);
        } else {
            cli_format_double(text, v->via.f64); /* float8in reads it back exactly */
            fputs(text, out);
        }
        return CLI_OK;
    case F_BOOL:
        if (v->type != MSGPACK_OBJECT_BOOLEAN)
            break;
        putc(v->via.boolean ? 't' : 'f', out);
        return CLI_OK;
    case F_BIN:
        if (v->type != MSGPACK_OBJECT_BIN)
            break;
        put_copy_bytea(out, v->via.bin.ptr, v->via.bin.size);
        return CLI_OK;
    case F_ANY:
        if ((rc = any_text(e, v)) != 0)
            return cli_fail(CLI_EFAIL, NULL, "out of memory");
        put_copy_text(out, e->buf.data, e->buf.size);
        return CLI_OK;
    }
    return value_problem(x, key, f->name, "stored value does not match the field's type");
}

/* The "$raw" column: the record's any-typed and extra fields as one msgpack
 * map, each pair as stored (in the record's order), or NULL.  CLI_OK or an
 * exit code (reported). */
static int put_raw(exporter *e, const xtype *x, const msgpack_object *rec)
{
    uint32_t n = 0;
    int rc = 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &e->buf, msgpack_sbuffer_write);
    e->buf.size = 0;
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        if (pass == 1 && n == 0) {
            fputs("\\N", e->out);
            return CLI_OK;
        }
        if (pass == 1)
            rc = msgpack_pack_map(&pk, n);
        for (uint32_t i = 0; i < rec->via.map.size && rc == 0; i++) {
            const msgpack_object_kv *kv = &rec->via.map.ptr[i];
            size_t f;
            for (f = 0; f < x->nfields; f++)
                if (strlen(x->fields[f].name) == kv->key.via.str.size &&
                    memcmp(x->fields[f].name, kv->key.via.str.ptr, kv->key.via.str.size) == 0)
                    break;
            if (kv->val.type == MSGPACK_OBJECT_NIL ||
                (f < x->nfields && x->fields[f].type != F_ANY))
                continue;
            if (pass == 0)
                n++;
            else if ((rc = msgpack_pack_object(&pk, kv->key)) == 0)
                rc = msgpack_pack_object(&pk, kv->val);
        }
    }
    if (rc)
        return cli_fail(CLI_EFAIL, NULL, "out of memory");
    put_copy_bytea(e->out, e->buf.data, e->buf.size);
    return CLI_OK;
}

/* Walk every record of x: write its COPY rows, or (scan_nul) only note which
 * str fields hold a NUL somewhere. */
static int walk_records(exporter *e, udb_txn *txn, xtype *x, int scan_nul)
{
    const msgpack_object **vals = calloc(x->nfields ? x->nfields : 1, sizeof *vals);
    msgpack_object_kv *extras = NULL;
    size_t extracap = 0;
    msgpack_unpacked up;
    udb_cursor *cur = NULL;
    msgpack_unpacked_init(&up);
    int ex = CLI_OK;
    if (!vals) {
        ex = cli_fail(CLI_EFAIL, NULL, "out of memory");
        goto out;
    }
    int rc;
    if ((rc = udb_scan(&cur, txn, x->name, NULL, NULL, 0)) != 0) {
        ex = cli_fail_rc(rc, udb_errmsg(txn), NULL, x->name);
        goto out;
    }
    udb_val v;
    while ((rc = udb_cursor_next(&v, cur)) == 0) {
        size_t off = 0;
        if (msgpack_unpack_next(&up, v.data, v.size, &off) != MSGPACK_UNPACK_SUCCESS ||
            off != v.size || up.data.type != MSGPACK_OBJECT_MAP) {
            ex = cli_fail(CLI_EFAIL, NULL, "type \"%s\": a stored record is unreadable",
                          x->name);
            goto out;
        }
        if (up.data.via.map.size > extracap) {
            free(extras);
            extracap = up.data.via.map.size;
            if (!(extras = malloc(extracap * sizeof *extras))) {
                ex = cli_fail(CLI_EFAIL, NULL, "out of memory");
                goto out;
            }
        }
        uint32_t nextra;
        if (record_slots(&up.data, x, vals, extras, &nextra)) {
            ex = cli_fail(CLI_EFAIL, NULL, "type \"%s\": a stored record is not a map of fields",
                          x->name);
            goto out;
        }
        if (scan_nul) {
            for (size_t f = 0; f < x->nfields; f++)
                if (x->fields[f].type == F_STR && vals[f] &&
                    vals[f]->type == MSGPACK_OBJECT_STR && vals[f]->via.str.size &&
                    memchr(vals[f]->via.str.ptr, '\0', vals[f]->via.str.size))
                    x->fields[f].bytea = 1;
            continue;
        }
        for (size_t f = 0; f < x->nfields; f++) {
            if (f)
                putc('\t', e->out);
            if ((ex = put_value(e, x, &x->fields[f], vals[f], vals[x->key])) != CLI_OK)
                goto out;
        }
        if (x->extra) {
            putc('\t', e->out);
            if (nextra == 0) {
                fputs("\\N", e->out);
            } else {
                msgpack_object m;
                m.type = MSGPACK_OBJECT_MAP;
                m.via.map.size = nextra;
                m.via.map.ptr = extras;
                if (any_text(e, &m) != 0) {
                    ex = cli_fail(CLI_EFAIL, NULL, "out of memory");
                    goto out;
                }
                put_copy_text(e->out, e->buf.data, e->buf.size);
            }
        }
        if (x->raw) {
            putc('\t', e->out);
            if ((ex = put_raw(e, x, &up.data)) != CLI_OK)
                goto out;
        }
        putc('\n', e->out);
    }
    if (rc != UDB_ENOTFOUND)
        ex = cli_fail_rc(rc, udb_errmsg(txn), NULL, x->name);
out:
    udb_cursor_close(cur);
    msgpack_unpacked_destroy(&up);
    free(extras);
    free(vals);
    return ex;
}

/* ---- The script ------------------------------------------------------------------ */

/* The tables, sequences and indexes from udb_pg_ddl (which checks every name
 * PostgreSQL would get), and the sequences' values checked: before anything
 * is written. */
static int make_ddl(exporter *e, udb_txn *txn)
{
    const char **seqs = calloc(e->nseqs + 1, sizeof *seqs);
    size_t nbytea = 0;
    for (size_t t = 0; t < e->ntypes; t++)
        for (size_t f = 0; f < e->types[t].nfields; f++)
            nbytea += e->types[t].fields[f].bytea != 0;
    char **bytea = calloc(nbytea + 1, sizeof *bytea);
    int ex = CLI_OK, rc;
    if (!seqs || !bytea) {
        ex = cli_fail(CLI_EFAIL, NULL, "out of memory");
        goto out;
    }
    for (size_t s = 0; s < e->nseqs; s++)
        seqs[s] = e->seqs[s].name;
    nbytea = 0;
    for (size_t t = 0; t < e->ntypes; t++)
        for (size_t f = 0; f < e->types[t].nfields; f++)
            if (e->types[t].fields[f].bytea &&
                asprintf(&bytea[nbytea++], "%s.%s", e->types[t].name,
                         e->types[t].fields[f].name) < 0) {
                bytea[--nbytea] = NULL;
                ex = cli_fail(CLI_EFAIL, NULL, "out of memory");
                goto out;
            }
    udb_pg_ddl_options o = {e->pgschema, UDB_PG_DDL_TABLES | UDB_PG_DDL_SEQUENCES, seqs,
                            (const char *const *)bytea};
    if ((rc = udb_pg_ddl(&e->ddl_tables, txn, &o)) != 0) {
        ex = cli_fail_rc(rc, udb_errmsg(txn), NULL, "PostgreSQL tables");
        goto out;
    }
    o.flags = UDB_PG_DDL_INDEXES;
    if ((rc = udb_pg_ddl(&e->ddl_indexes, txn, &o)) != 0) {
        ex = cli_fail_rc(rc, udb_errmsg(txn), NULL, "PostgreSQL indexes");
        goto out;
    }
    for (size_t s = 0; s < e->nseqs; s++)
        if (e->seqs[s].value >= (uint64_t)INT64_MAX) {
            ex = cli_fail(CLI_EINVALID, NULL,
                          "sequence \"%s\": value %" PRIu64 " is beyond PostgreSQL's bigint "
                          "sequences", e->seqs[s].name, e->seqs[s].value);
            goto out;
        }
out:
    for (size_t b = 0; bytea && bytea[b]; b++)
        free(bytea[b]);
    free(bytea);
    free(seqs);
    return ex;
}

static int put_data(exporter *e, udb_txn *txn)
{
    FILE *out = e->out;
    int ex;
    for (size_t t = 0; t < e->ntypes; t++) {
        fputs("\nCOPY ", out);
        xtype *x = &e->types[t];
        put_qualified(e, x->name);
        fputs(" (", out);
        for (size_t f = 0; f < x->nfields; f++) {
            if (f)
                fputs(", ", out);
            put_ident(out, x->fields[f].name);
        }
        if (x->extra)
            fputs(", \"$extra\"", out);
        if (x->raw)
            fputs(", \"$raw\"", out);
        fputs(") FROM stdin;\n", out);
        if ((ex = walk_records(e, txn, x, 0)) != CLI_OK)
            return ex;
        fputs("\\.\n", out);
    }
    if (e->nseqs)
        putc('\n', out);
    for (size_t s = 0; s < e->nseqs; s++) {
        /* RESTART: no result row to print, unlike setval() */
        fputs("ALTER SEQUENCE ", out);
        put_qualified(e, e->seqs[s].name);
        fprintf(out, " RESTART WITH %" PRIu64 ";\n", e->seqs[s].value + 1);
    }
    return CLI_OK;
}

static int export_script(exporter *e, udb_txn *txn, const char *db)
{
    FILE *out = e->out;
    fprintf(out,
            "-- uniqdb %s: export of %s for PostgreSQL >= 15 (%s%s).\n"
            "-- Load into an empty database: psql -v ON_ERROR_STOP=1 -f FILE\n"
            "-- Everything happens in one transaction: it loads whole or not at all.\n",
            UDB_VERSION_STRING, db,
            e->want_schema && e->want_data ? "schema and data" : e->want_schema ? "schema only"
                                                                                : "data only",
            e->str_nul_bytea ? "; str fields holding a NUL byte as bytea" : "");
    fputs("SET client_encoding = 'UTF8';\n"
          "SET standard_conforming_strings = on;\n"
          "SET client_min_messages = warning;\n"
          "BEGIN;\n",
          out);
    if (e->want_schema) {
        if (e->create_schema) {
            fputs("CREATE SCHEMA ", out);
            put_ident(out, e->pgschema);
            fputs(";\n", out);
        }
        fputs(e->ddl_tables, out);
    }
    int ex;
    if (e->want_data && (ex = put_data(e, txn)) != CLI_OK)
        return ex;
    if (e->want_schema) {
        /* after the data: building an index once is cheaper than maintaining it */
        fputs("\n", out);
        fputs(e->ddl_indexes, out);
    }
    fputs("\nCOMMIT;\n", out);
    return CLI_OK;
}

int cli_cmd_export(int argc, char **argv)
{
    static const struct option opts[] = {
        {"postgres", no_argument, NULL, 'P'},
        {"schema", required_argument, NULL, 's'},
        {"schema-only", no_argument, NULL, 'S'},
        {"data-only", no_argument, NULL, 'D'},
        {"output", required_argument, NULL, 'o'},
        {"str-nul", required_argument, NULL, 'N'},
        CLI_COMMON_LONGOPTS,
    };
    exporter e;
    char *tmpname = NULL;
    int fd = -1;
    memset(&e, 0, sizeof e);
    e.pgschema = "public";
    e.want_schema = e.want_data = 1;
    msgpack_sbuffer_init(&e.buf);
    optind = 0;
    opterr = 0;
    const char *outfile = NULL;
    int c, ex, postgres = 0;
    while ((c = getopt_long(argc, argv, ":ho:", opts, NULL)) != -1) {
        switch (c) {
        case 'P':
            postgres = 1;
            break;
        case 's':
            e.pgschema = optarg;
            e.create_schema = 1;
            break;
        case 'S':
            e.want_data = 0;
            break;
        case 'D':
            e.want_schema = 0;
            break;
        case 'o':
            outfile = optarg;
            break;
        case 'N':
            if (strcmp(optarg, "bytea") != 0)
                return cli_usage("export", "--str-nul takes 'bytea'");
            e.str_nul_bytea = 1;
            break;
        default:
            if ((ex = cli_common_option(c, argv, "--schema, -o and --str-nul need a value")) >= 0)
                return ex;
            break;
        }
    }
    if (argc - optind != 1)
        return cli_usage("export", "expected DB");
    if (!postgres)
        return cli_usage("export", "say the target: --postgres (the only one so far)");
    if (!e.want_schema && !e.want_data)
        return cli_usage("export", "--schema-only and --data-only exclude each other");
    if (!e.pgschema[0] || strlen(e.pgschema) > PG_NAMELEN)
        return cli_usage("export", "--schema takes a name of 1 to 63 bytes");
    if ((ex = check_name("schema", e.pgschema)) != CLI_OK)
        return ex;
    const char *schema_text = NULL;
    udb_env *env = NULL;
    udb_txn *txn = NULL;
    if ((ex = cli_open_snapshot(&env, &txn, &schema_text, argv[optind])) != CLI_OK)
        goto out;
    if ((ex = parse_types(&e, schema_text)) != CLI_OK)
        goto out;
    int rc;
    if ((rc = udb_seq_foreach(txn, collect_seq, &e)) != 0) {
        ex = cli_fail_rc(rc, udb_errmsg(txn), NULL, "sequences");
        goto out;
    }
    if (e.str_nul_bytea) {
        /* which str fields need bytea depends on the data: look first */
        for (size_t t = 0; t < e.ntypes; t++)
            if ((ex = walk_records(&e, txn, &e.types[t], 1)) != CLI_OK)
                goto out;
    }
    if ((ex = make_ddl(&e, txn)) != CLI_OK)
        goto out;
    if (outfile) {
        /* a complete file or none: written aside, renamed at the end */
        if (asprintf(&tmpname, "%s.XXXXXX", outfile) < 0) {
            tmpname = NULL;
            ex = cli_fail(CLI_EFAIL, NULL, "out of memory");
            goto out;
        }
        if ((fd = mkstemp(tmpname)) < 0 || !(e.out = fdopen(fd, "w"))) {
            ex = cli_fail(CLI_EFAIL, NULL, "%s: %s", outfile, strerror(errno));
            goto out;
        }
        fd = -1;
    } else {
        e.out = stdout;
    }
    if ((ex = export_script(&e, txn, argv[optind])) != CLI_OK)
        goto out;
    if (fflush(e.out) == EOF || ferror(e.out)) {
        ex = cli_fail(CLI_EFAIL, NULL, "%s: write error", outfile ? outfile : "stdout");
        goto out;
    }
    if (outfile) {
        rc = fclose(e.out);
        e.out = NULL;
        if (rc != 0 || rename(tmpname, outfile) != 0) {
            ex = cli_fail(CLI_EFAIL, NULL, "%s: %s", outfile, strerror(errno));
            goto out;
        }
        free(tmpname);
        tmpname = NULL;
    }
out:
    if (fd >= 0)
        close(fd);
    if (outfile && e.out)
        fclose(e.out);
    if (tmpname) {
        unlink(tmpname);
        free(tmpname);
    }
    for (size_t t = 0; t < e.ntypes; t++)
        free(e.types[t].fields);
    free(e.types);
    for (size_t s = 0; s < e.nseqs; s++)
        free(e.seqs[s].name);
    free(e.seqs);
    udb_free(e.ddl_tables);
    udb_free(e.ddl_indexes);
    json_decref(e.root);
    msgpack_sbuffer_destroy(&e.buf);
    udb_abort(txn);
    udb_close(env);
    return ex;
}
