/*
 * schema.c -- the JSON schema: parsing, validation, canonical printing.
 *
 * The schema is the contract between an application and its data, stored in
 * the database so that any tool can read any database.  It is parsed once into
 * the structs of schema.h; the canonical text printed back from those structs
 * is what is stored, so "apply the same schema again" is a string comparison
 * and key order or spacing in the app's file never matters.
 */
#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "schema.h"

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > UDB_MAX_NAME)
        return false;
    if (!isalpha((unsigned char)s[0]) && s[0] != '_')
        return false;
    for (size_t i = 1; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_')
            return false;
    return true;
}

void udb__schema_free(udb_schema *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->ntypes; i++) {
        udb_type *t = &s->types[i];
        for (size_t f = 0; f < t->nfields; f++) {
            free(t->fields[f].name);
            for (size_t v = 0; v < t->fields[f].nvalues; v++)
                free(t->fields[f].values[v]);
            free(t->fields[f].values);
        }
        free(t->fields);
        for (size_t x = 0; x < t->nidx; x++) {
            if (!t->idx[x].is_pk)
                free(t->idx[x].name);
            free(t->idx[x].where);
            udb__pred_free(&t->idx[x].pred);
        }
        free(t->idx);
        free(t->name);
        free(t->seqname);
    }
    if (s->store_free)
        s->store_free(s->store);
    free(s->types);
    free(s->type_names);
    free(s->json);
    free(s);
}

udb_type *udb__schema_type(const udb_schema *s, const char *name)
{
    if (!s || !name)
        return NULL;
    for (size_t i = 0; i < s->ntypes; i++)
        if (strcmp(s->types[i].name, name) == 0)
            return &s->types[i];
    return NULL;
}

const char *udb__index_name(const udb_type *t, const char *name)
{
    size_t n = strlen(t->name);
    if (name && strncmp(name, t->name, n) == 0 && name[n] == '.')
        return name + n + 1;
    return name;
}

udb_index *udb__type_index(const udb_type *t, const char *name)
{
    if (!name)
        return &t->idx[0];
    name = udb__index_name(t, name);
    for (size_t i = 0; i < t->nidx; i++)
        if (strcmp(t->idx[i].name, name) == 0)
            return &t->idx[i];
    return NULL;
}

static ssize_t field_pos(const udb_type *t, const char *name)
{
    for (size_t i = 0; i < t->nfields; i++)
        if (strcmp(t->fields[i].name, name) == 0)
            return (ssize_t)i;
    return -1;
}

#define FAIL(...) do { udb__buf_printf(msg, __VA_ARGS__); return UDB_ESCHEMA; } while (0)

/* Reject keys of obj not in allowed (typos must not pass silently). */
static int only_keys(json_t *obj, const char *const *allowed, const char *where, udb_buf *msg)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        bool ok = false;
        for (size_t i = 0; allowed[i]; i++)
            if (strcmp(k, allowed[i]) == 0)
                ok = true;
        if (!ok) {
            udb__buf_printf(msg, "%s: unknown key \"%s\" (allowed:", where, k);
            for (size_t i = 0; allowed[i]; i++)
                udb__buf_printf(msg, "%s %s", i ? "," : "", allowed[i]);
            udb__buf_printf(msg, ")");
            return UDB_ESCHEMA;
        }
    }
    return 0;
}

static int get_bool(bool *out, json_t *obj, const char *key, const char *where, udb_buf *msg)
{
    json_t *v = json_object_get(obj, key);
    *out = false;
    if (!v)
        return 0;
    if (!json_is_boolean(v))
        FAIL("%s: \"%s\" must be true or false", where, key);
    *out = json_is_true(v);
    return 0;
}

static int parse_field(udb_field *f, const char *tname, const char *fname, json_t *def,
                       udb_buf *msg)
{
    static const char *const keys[] = {"type", "required", "auto", "values", NULL};
    char where[160];
    snprintf(where, sizeof where, "type \"%s\", field \"%s\"", tname, fname);
    if (!valid_name(fname))
        FAIL("type \"%s\": invalid field name \"%s\" (letters, digits and _, at most %d)",
             tname, fname, UDB_MAX_NAME);
    if (!json_is_object(def))
        FAIL("%s: definition must be an object like {\"type\": \"str\"}", where);
    int rc = only_keys(def, keys, where, msg);
    if (rc)
        return rc;
    f->name = xstrdup(fname);
    if (!f->name)
        return UDB_ENOMEM;
    f->namelen = strlen(fname);
    const char *ty = json_string_value(json_object_get(def, "type"));
    if (!ty)
        FAIL("%s: missing \"type\" (one of str, int, uint, float, bool, bin, enum, any)", where);
    size_t k;
    for (k = 0; k <= UDB_F_ANY; k++)
        if (strcmp(ty, udb__ftype_name(k)) == 0)
            break;
    if (k > UDB_F_ANY)
        FAIL("%s: unknown type \"%s\" (one of str, int, uint, float, bool, bin, enum, any)",
             where, ty);
    f->type = (udb_ftype)k;
    if ((rc = get_bool(&f->required, def, "required", where, msg)) ||
        (rc = get_bool(&f->autoinc, def, "auto", where, msg)))
        return rc;
    json_t *vals = json_object_get(def, "values");
    if (f->type == UDB_F_ENUM) {
        if (!json_is_array(vals) || json_array_size(vals) == 0)
            FAIL("%s: an enum needs \"values\", a non-empty array of strings", where);
        f->values = calloc(json_array_size(vals), sizeof *f->values);
        if (!f->values)
            return UDB_ENOMEM;
        size_t i;
        json_t *v;
        json_array_foreach(vals, i, v) {
            if (!json_is_string(v) || json_string_length(v) == 0 ||
                strlen(json_string_value(v)) != json_string_length(v))
                FAIL("%s: enum values must be non-empty strings", where);
            for (size_t j = 0; j < f->nvalues; j++)
                if (strcmp(f->values[j], json_string_value(v)) == 0)
                    FAIL("%s: enum value \"%s\" listed twice", where, f->values[j]);
            if (!(f->values[f->nvalues] = xstrdup(json_string_value(v))))
                return UDB_ENOMEM;
            f->nvalues++;
        }
    } else if (vals) {
        FAIL("%s: \"values\" is only for enum fields", where);
    }
    return 0;
}

/* An index field given as {"field": "email", "collate": "nocase"}: *v
 * becomes the name (a string, or NULL for the caller's error), *nocase the
 * collation.  "binary" (the default, SQLite's name) is allowed and not kept. */
static int field_collate(json_t **v, bool *nocase, const char *where, udb_buf *msg)
{
    static const char *const keys[] = {"field", "collate", NULL};
    int rc = only_keys(*v, keys, where, msg);
    if (rc)
        return rc;
    json_t *c = json_object_get(*v, "collate");
    const char *cv = json_string_value(c);
    if (c && (!cv || (strcmp(cv, "nocase") != 0 && strcmp(cv, "binary") != 0)))
        FAIL("%s: \"collate\" must be \"nocase\" (ASCII letters compare without case) or "
             "\"binary\" (the default: bytes as they are)", where);
    *nocase = cv && strcmp(cv, "nocase") == 0;
    *v = json_object_get(*v, "field");
    if (!json_is_string(*v))
        FAIL("%s: an index field given as an object needs \"field\", the field's name, as "
             "in {\"field\": \"email\", \"collate\": \"nocase\"}", where);
    return 0;
}

static int parse_index(udb_index *ix, udb_type *t, const char *iname, json_t *def,
                       bool unique, udb_buf *msg)
{
    static const char *const ukeys[] = {"fields", "where", "nulls", NULL};
    static const char *const pkeys[] = {"fields", "where", NULL};
    char where[160];
    snprintf(where, sizeof where, "type \"%s\", %s \"%s\"", t->name,
             unique ? "unique index" : "index", iname);
    if (!valid_name(iname))
        FAIL("type \"%s\": invalid index name \"%s\"", t->name, iname);
    if (!json_is_object(def))
        FAIL("%s: definition must be an object like {\"fields\": [\"a\", \"b\"]}", where);
    int rc = only_keys(def, unique ? ukeys : pkeys, where, msg);
    if (rc)
        return rc;
    if (!(ix->name = xstrdup(iname)))
        return UDB_ENOMEM;
    ix->unique = unique;
    json_t *fields = json_object_get(def, "fields");
    if (!json_is_array(fields) || json_array_size(fields) < 1 ||
        json_array_size(fields) > UDB_MAX_IDX_FIELDS)
        FAIL("%s: \"fields\" must be an array of 1 to %d field names (or objects like "
             "{\"field\": \"email\", \"collate\": \"nocase\"})", where, UDB_MAX_IDX_FIELDS);
    size_t i;
    json_t *v;
    json_array_foreach(fields, i, v) {
        bool nocase = false;
        if (json_is_object(v) && (rc = field_collate(&v, &nocase, where, msg)))
            return rc;
        const char *fn = json_string_value(v);
        ssize_t pos = fn ? field_pos(t, fn) : -1;
        if (pos < 0)
            FAIL("%s: \"%s\" is not a declared field", where, fn ? fn : "(not a string)");
        if (nocase && t->fields[pos].type != UDB_F_STR)
            FAIL("%s: field \"%s\" has type %s; \"collate\": \"nocase\" is only for str "
                 "fields", where, fn, udb__ftype_name(t->fields[pos].type));
        if (t->fields[pos].type == UDB_F_ANY)
            FAIL("%s: field \"%s\" has type any, which cannot be indexed", where, fn);
        for (size_t j = 0; j < ix->nfields; j++)
            if (ix->fields[j] == (size_t)pos)
                FAIL("%s: field \"%s\" listed twice", where, fn);
        ix->fields[ix->nfields] = (size_t)pos;
        ix->fnames[ix->nfields] = t->fields[pos].name;
        ix->nocase[ix->nfields] = nocase;
        ix->any_nocase |= nocase;
        ix->nfields++;
    }
    json_t *nulls = json_object_get(def, "nulls");
    if (nulls) {
        const char *nv = json_string_value(nulls);
        if (nv && strcmp(nv, "not_distinct") == 0)
            ix->nulls_not_distinct = true;
        else if (!nv || strcmp(nv, "distinct") != 0)
            FAIL("%s: \"nulls\" must be \"distinct\" or \"not_distinct\"", where);
    }
    json_t *w = json_object_get(def, "where");
    if (w) {
        if (!json_is_string(w))
            FAIL("%s: \"where\" must be a string", where);
        udb_buf pm = {0};
        rc = udb__pred_parse(&ix->pred, t->fields, t->nfields, json_string_value(w), &pm);
        if (rc) {
            udb__buf_printf(msg, "%s: where: %s", where, pm.p ? (char *)pm.p : "invalid");
            udb__buf_free(&pm);
            return rc;
        }
        udb__pred_print(&pm, &ix->pred, t->fields);
        if (pm.oom) {
            udb__buf_free(&pm);
            return UDB_ENOMEM;
        }
        ix->where = (char *)pm.p;   /* canonical text; ownership moves */
    }
    return 0;
}

static int parse_indexes(udb_type *t, json_t *obj, bool unique, udb_buf *msg)
{
    if (!obj)
        return 0;
    if (!json_is_object(obj))
        FAIL("type \"%s\": \"%s\" must be an object of named indexes", t->name,
             unique ? "unique" : "indexes");
    const char *name;
    json_t *def;
    json_object_foreach(obj, name, def) {
        if (udb__type_index(t, name))
            FAIL("type \"%s\": index name \"%s\" is used twice (the primary key is named "
                 "after its field)", t->name, name);
        udb_index *ix = &t->idx[t->nidx++];
        int rc = parse_index(ix, t, name, def, unique, msg);
        if (rc)
            return rc;
        if (unique)
            t->nunique++;
        else
            t->nplain++;
    }
    return 0;
}

static int parse_type(udb_type *t, const char *tname, json_t *def, udb_buf *msg)
{
    static const char *const keys[] = {"key", "fields", "unique", "indexes", "extra", NULL};
    char where[100];
    snprintf(where, sizeof where, "type \"%s\"", tname);
    if (!valid_name(tname))
        FAIL("invalid type name \"%s\" (letters, digits and _, at most %d)", tname, UDB_MAX_NAME);
    if (!json_is_object(def))
        FAIL("%s: definition must be an object", where);
    int rc = only_keys(def, keys, where, msg);
    if (rc)
        return rc;
    if (!(t->name = xstrdup(tname)))
        return UDB_ENOMEM;
    if ((rc = get_bool(&t->extra, def, "extra", where, msg)))
        return rc;
    json_t *fields = json_object_get(def, "fields");
    if (!json_is_object(fields) || json_object_size(fields) == 0)
        FAIL("%s: \"fields\" must be a non-empty object", where);
    if (!(t->fields = calloc(json_object_size(fields), sizeof *t->fields)))
        return UDB_ENOMEM;
    const char *fname;
    json_t *fdef;
    json_object_foreach(fields, fname, fdef) {
        rc = parse_field(&t->fields[t->nfields], tname, fname, fdef, msg);
        t->nfields++;
        if (rc)
            return rc;
    }
    const char *key = json_string_value(json_object_get(def, "key"));
    if (!key)
        FAIL("%s: missing \"key\" (the name of the primary-key field)", where);
    ssize_t kp = field_pos(t, key);
    if (kp < 0)
        FAIL("%s: key \"%s\" is not a declared field", where, key);
    t->key = (size_t)kp;
    udb_field *kf = &t->fields[kp];
    if (kf->type != UDB_F_STR && kf->type != UDB_F_INT && kf->type != UDB_F_UINT)
        FAIL("%s: key field \"%s\" must be str, int or uint, not %s", where, key,
             udb__ftype_name(kf->type));
    for (size_t i = 0; i < t->nfields; i++)
        if (t->fields[i].autoinc && (i != t->key || t->fields[i].type != UDB_F_UINT))
            FAIL("%s, field \"%s\": \"auto\" is only for a uint key field", where,
                 t->fields[i].name);
    /* A plain key is always required; an auto key never is (a record without
       it gets the next value) -- whatever "required" said, since the
       canonical text does not keep it for the key field. */
    kf->required = !kf->autoinc;
    if (kf->autoinc && asprintf(&t->seqname, "%s.%s", t->name, kf->name) < 0)
        return UDB_ENOMEM;

    json_t *uq = json_object_get(def, "unique"), *ix = json_object_get(def, "indexes");
    size_t cap = 1 + (json_is_object(uq) ? json_object_size(uq) : 0) +
                 (json_is_object(ix) ? json_object_size(ix) : 0);
    if (!(t->idx = calloc(cap, sizeof *t->idx)))
        return UDB_ENOMEM;
    udb_index *pk = &t->idx[t->nidx++];
    pk->name = kf->name;
    pk->unique = pk->is_pk = true;
    pk->nfields = 1;
    pk->fields[0] = t->key;
    pk->fnames[0] = kf->name;
    if ((rc = parse_indexes(t, uq, true, msg)) || (rc = parse_indexes(t, ix, false, msg)))
        return rc;
    return 0;
}

static json_t *index_json(const udb_index *ix)
{
    json_t *o = json_object(), *f = json_array();
    for (size_t i = 0; i < ix->nfields; i++) {
        if (!ix->nocase[i]) {
            json_array_append_new(f, json_string(ix->fnames[i]));
            continue;
        }
        json_t *fo = json_object();
        json_object_set_new(fo, "field", json_string(ix->fnames[i]));
        json_object_set_new(fo, "collate", json_string("nocase"));
        json_array_append_new(f, fo);
    }
    json_object_set_new(o, "fields", f);
    if (ix->where)
        json_object_set_new(o, "where", json_string(ix->where));
    if (ix->nulls_not_distinct)
        json_object_set_new(o, "nulls", json_string("not_distinct"));
    return o;
}

static json_t *type_json(const udb_type *t)
{
    json_t *o = json_object(), *fields = json_object();
    json_object_set_new(o, "key", json_string(t->fields[t->key].name));
    if (t->extra)
        json_object_set_new(o, "extra", json_true());
    for (size_t i = 0; i < t->nfields; i++) {
        const udb_field *f = &t->fields[i];
        json_t *fo = json_object();
        json_object_set_new(fo, "type", json_string(udb__ftype_name(f->type)));
        if (f->required && i != t->key)
            json_object_set_new(fo, "required", json_true());
        if (f->autoinc)
            json_object_set_new(fo, "auto", json_true());
        if (f->type == UDB_F_ENUM) {
            json_t *vals = json_array();
            for (size_t v = 0; v < f->nvalues; v++)
                json_array_append_new(vals, json_string(f->values[v]));
            json_object_set_new(fo, "values", vals);
        }
        json_object_set_new(fields, f->name, fo);
    }
    json_object_set_new(o, "fields", fields);
    for (int pass = 0; pass < 2; pass++) {
        json_t *set = json_object();
        for (size_t i = 1; i < t->nidx; i++)
            if (t->idx[i].unique == (pass == 0))
                json_object_set_new(set, t->idx[i].name, index_json(&t->idx[i]));
        if (json_object_size(set))
            json_object_set_new(o, pass == 0 ? "unique" : "indexes", set);
        else
            json_decref(set);
    }
    return o;
}

int udb__schema_parse(udb_schema **out, const char *json, size_t len, udb_buf *msg)
{
    json_error_t err;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
    udb_schema *s = NULL;
    int rc = UDB_ESCHEMA;
    if (!root) {
        udb__buf_printf(msg, "schema is not valid JSON: %s at line %d column %d", err.text,
                        err.line, err.column);
        goto out;
    }
    static const char *const keys[] = {"types", NULL};
    if (!json_is_object(root)) {
        udb__buf_printf(msg, "schema must be a JSON object with \"types\"");
        goto out;
    }
    if ((rc = only_keys(root, keys, "schema", msg)))
        goto out;
    json_t *types = json_object_get(root, "types");
    rc = UDB_ESCHEMA;
    if (!json_is_object(types)) {
        udb__buf_printf(msg, "schema: \"types\" must be an object of record types");
        goto out;
    }
    rc = UDB_ENOMEM;
    if (!(s = calloc(1, sizeof *s)) ||
        !(s->types = calloc(json_object_size(types) + 1, sizeof *s->types)) ||
        !(s->type_names = calloc(json_object_size(types) + 1, sizeof *s->type_names)))
        goto out;
    const char *tname;
    json_t *tdef;
    json_object_foreach(types, tname, tdef) {
        udb_type *t = &s->types[s->ntypes++];
        if ((rc = parse_type(t, tname, tdef, msg)))
            goto out;
        s->type_names[s->ntypes - 1] = t->name;
        for (size_t x = 0; x < t->nidx; x++)
            t->idx[x].ord = s->nord++;
    }
    /* canonical text */
    json_t *canon = json_object(), *ct = json_object();
    for (size_t i = 0; i < s->ntypes; i++)
        json_object_set_new(ct, s->types[i].name, type_json(&s->types[i]));
    json_object_set_new(canon, "types", ct);
    s->json = json_dumps(canon, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(canon);
    rc = UDB_ENOMEM;
    if (!s->json)
        goto out;
    s->json_len = strlen(s->json);
    rc = 0;
out:
    json_decref(root);
    if (rc) {
        udb__schema_free(s);
        s = NULL;
    }
    *out = s;
    return rc;
}
