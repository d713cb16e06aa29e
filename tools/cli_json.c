/*
 * cli_json.c -- JSON <-> msgpack for the command-line tool.
 *
 * Records live as msgpack; people and scripts speak JSON.  jansson does all
 * the JSON parsing and printing.  Two things it cannot do exactly are patched
 * around it rather than re-implemented:
 *
 *  - Integers in (INT64_MAX, UINT64_MAX] (uint fields) overflow json_int_t.
 *    Before parsing, such number tokens are rewritten into marker strings
 *    ("\x01udb<nonce>:<digits>") that the packer turns back into uint64; when
 *    printing, the same markers are replaced by the bare digits afterwards.
 *  - jansson prints reals with 17 significant digits (0.1 comes out as
 *    0.10000000000000001).  Reals go through the same marker with their
 *    shortest exact form, so output is both exact and readable.
 *
 * The nonce is random per process, so no stored string can impersonate a
 * marker; a string that happens to begin with the marker is refused.
 * Binary values are {"$bin": "<base64>"}; extension values
 * {"$ext": [type, "<base64>"]}; NaN and infinities {"$float": "nan"}.  What an
 * `any` field may hold but JSON cannot say directly keeps its exact bytes too:
 * a string that is not UTF-8 is {"$str": "<base64>"}, and a map with a key
 * that is not a UTF-8 string, with a duplicate key, or whose only key is one
 * of these marker names is {"$map": [[key, value], ...]}.
 */
#include "cli_common.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define MAX_DEPTH 64

/* ---- Markers ------------------------------------------------------------- */

/* "\x01udb" + 16 hex digits + ":" */
#define MARKER_LEN 21
static char marker[MARKER_LEN + 1];
/* The marker as jansson escapes it inside a JSON string: "\u0001udb…:" */
#define MARKER_JSON_LEN (MARKER_LEN + 5)
static char marker_json[MARKER_JSON_LEN + 1];

static void marker_init(void)
{
    uint64_t nonce = 0;

    if (marker[0])
        return;
    if (getrandom(&nonce, sizeof nonce, 0) != (ssize_t)sizeof nonce)
        nonce = (uint64_t)time(NULL) * 6364136223846793005u ^ (uint64_t)getpid() ^
                (uint64_t)(uintptr_t)&nonce;
    snprintf(marker, sizeof marker, "\x01udb%016" PRIx64 ":", nonce);
    snprintf(marker_json, sizeof marker_json, "\\u0001udb%016" PRIx64 ":", nonce);
}

static int is_marker(const char *s, size_t len)
{
    return len >= MARKER_LEN && memcmp(s, marker, MARKER_LEN) == 0;
}

static json_t *marker_string(const char *text)
{
    char buf[MARKER_LEN + 64];

    snprintf(buf, sizeof buf, "%s%s", marker, text);
    return json_string(buf);
}

/* ---- Small helpers -------------------------------------------------------- */

static void seterr(char err[CLI_ERRLEN], const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void seterr(char err[CLI_ERRLEN], const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, CLI_ERRLEN, fmt, ap);
    va_end(ap);
}

/* A growable byte buffer for the pre-scan and the printer. */
typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static int buf_add(buf *b, const char *s, size_t n)
{
    if (n > SIZE_MAX - b->len - 1)
        return -1;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *p;

        while (cap < b->len + n + 1) {
            if (cap > SIZE_MAX / 2)
                return -1;
            cap *= 2;
        }
        p = realloc(b->p, cap);
        if (!p)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

/* ---- Base64 (RFC 4648, standard alphabet, padded) ------------------------- */

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *b64_encode(const unsigned char *in, size_t n)
{
    size_t outlen, i, o = 0;
    char *out;

    if (n > (SIZE_MAX - 1) / 4 * 3 - 3)
        return NULL;
    outlen = (n + 2) / 3 * 4;
    out = malloc(outlen + 1);
    if (!out)
        return NULL;
    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64chars[v >> 18 & 63];
        out[o++] = b64chars[v >> 12 & 63];
        out[o++] = b64chars[v >> 6 & 63];
        out[o++] = b64chars[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = b64chars[v >> 18 & 63];
        out[o++] = b64chars[v >> 12 & 63];
        out[o++] = i + 1 < n ? b64chars[v >> 6 & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
    return out;
}

static int b64_value(char c)
{
    const char *p = c ? strchr(b64chars, c) : NULL;

    return p ? (int)(p - b64chars) : -1;
}

/* Decode strict, padded base64; *out is malloc'd (never NULL on success). */
static int b64_decode(unsigned char **out, size_t *outlen, const char *in, size_t n)
{
    unsigned char *p;
    size_t i, o = 0;

    if (n % 4 != 0)
        return -1;
    p = malloc(n / 4 * 3 + 1);
    if (!p)
        return -1;
    for (i = 0; i < n; i += 4) {
        int a = b64_value(in[i]), b = b64_value(in[i + 1]);
        int c = in[i + 2] == '=' ? -2 : b64_value(in[i + 2]);
        int d = in[i + 3] == '=' ? -2 : b64_value(in[i + 3]);
        int last = i + 4 == n;

        if (a < 0 || b < 0 || c == -1 || d == -1 || (c == -2 && d != -2) ||
            ((c == -2 || d == -2) && !last))
            goto bad;
        p[o++] = (unsigned char)(a << 2 | b >> 4);
        if (c >= 0) {
            p[o++] = (unsigned char)((b & 15) << 4 | c >> 2);
            if (d >= 0)
                p[o++] = (unsigned char)((c & 3) << 6 | d);
            else if (c & 3)
                goto bad; /* non-canonical trailing bits */
        } else if (b & 15) {
            goto bad;
        }
    }
    *out = p;
    *outlen = o;
    return 0;
bad:
    free(p);
    return -1;
}

/* ---- JSON text in ----------------------------------------------------------- */

/* Rewrite integer tokens in (INT64_MAX, UINT64_MAX] into marker strings, so
 * jansson can parse the text.  Only tracks strings and number tokens: the
 * structure is left to jansson, which still rejects anything malformed.
 * On return b holds the text (b->p NULL if nothing changed). */
static int prescan(buf *b, size_t *count, const char *text, size_t len)
{
    size_t i = 0, copied = 0;
    int in_string = 0;

    *count = 0;
    while (i < len) {
        char c = text[i];

        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = 0;
            i++;
            continue;
        }
        if (c == '"') {
            in_string = 1;
            i++;
            continue;
        }
        if (c == '-' || (c >= '0' && c <= '9')) {
            size_t start = i, j;
            int integer = 1;

            while (i < len && text[i] && strchr("0123456789+-.eE", text[i]))
                i++;
            for (j = start; j < i; j++)
                if (text[j] < '0' || text[j] > '9')
                    integer = 0;
            /* 19 digits can exceed INT64_MAX, 21 always exceed UINT64_MAX;
             * a leading zero is jansson's to reject. */
            if (integer && text[start] != '0' && i - start >= 19 && i - start <= 20) {
                char digits[24], tok[64];
                unsigned long long v;

                memcpy(digits, text + start, i - start);
                digits[i - start] = '\0';
                errno = 0;
                v = strtoull(digits, NULL, 10);
                if (errno == 0 && v > (unsigned long long)INT64_MAX) {
                    snprintf(tok, sizeof tok, "\"%s%s\"", marker_json, digits);
                    if (buf_add(b, text + copied, start - copied) ||
                        buf_add(b, tok, strlen(tok)))
                        return -1;
                    copied = i;
                    (*count)++;
                }
            }
            continue;
        }
        i++;
    }
    if (b->p && buf_add(b, text + copied, len - copied))
        return -1;
    return 0;
}

static size_t count_markers(const json_t *v)
{
    size_t n = 0, i;
    const char *k;
    json_t *e;

    switch (json_typeof(v)) {
    case JSON_STRING:
        return is_marker(json_string_value(v), json_string_length(v));
    case JSON_ARRAY:
        json_array_foreach(v, i, e) n += count_markers(e);
        return n;
    case JSON_OBJECT:
        json_object_foreach((json_t *)v, k, e) n += count_markers(e);
        return n;
    default:
        return 0;
    }
}

json_t *cli_json_parse(const char *text, size_t len, char err[CLI_ERRLEN])
{
    buf b = {0};
    size_t subst = 0;
    json_error_t jerr;
    json_t *v = NULL;

    marker_init();
    if (prescan(&b, &subst, text, len)) {
        seterr(err, "out of memory");
        goto out;
    }
    v = json_loadb(b.p ? b.p : text, b.p ? b.len : len,
                   JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!v) {
        if (json_error_code(&jerr) == json_error_numeric_overflow)
            seterr(err, "invalid JSON: integer out of range (-2^63 .. 2^64-1) at line %d",
                   jerr.line);
        else if (b.p)
            seterr(err, "invalid JSON: %s (line %d)", jerr.text, jerr.line);
        else
            seterr(err, "invalid JSON: %s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
        goto out;
    }
    if (count_markers(v) != subst) {
        seterr(err, "invalid JSON: a string begins with a reserved marker");
        json_decref(v);
        v = NULL;
    }
out:
    free(b.p);
    return v;
}

/* ---- JSON value -> msgpack -------------------------------------------------- */

typedef struct pack_ctx {
    msgpack_packer pk;
    char path[256]; /* JSON pointer of the value being packed, for errors */
    char *err;
} pack_ctx;

static size_t path_push(pack_ctx *c, const char *seg, size_t seglen)
{
    size_t old = strlen(c->path), n = old;

    if (n + 1 + seglen < sizeof c->path) {
        c->path[n++] = '/';
        memcpy(c->path + n, seg, seglen);
        n += seglen;
        c->path[n] = '\0';
    }
    return old;
}

static int pack_fail(pack_ctx *c, const char *what)
{
    if (c->path[0] && !strchr(c->path + 1, '/'))
        seterr(c->err, "field \"%s\": %s", c->path + 1, what);
    else if (c->path[0])
        seterr(c->err, "at %s: %s", c->path, what);
    else
        seterr(c->err, "%s", what);
    return -1;
}

/* A one-member object {"$name": value}, or NULL. */
static const json_t *special(const json_t *v, const char *name)
{
    return json_object_size(v) == 1 ? json_object_get(v, name) : NULL;
}

static int pack_value(pack_ctx *c, const json_t *v, int depth);

/* Pack v, naming it by path segment seg in errors. */
static int pack_at(pack_ctx *c, const char *seg, const json_t *v, int depth)
{
    size_t old = path_push(c, seg, strlen(seg));
    int rc = pack_value(c, v, depth);

    if (!rc)
        c->path[old] = '\0';
    return rc;
}

/* The bytes of a {"$bin"|"$str"|"$ext": ...} marker, base64 in JSON string s,
 * packed as a msgpack bin, str or ext (of ext_type). */
static int pack_b64(pack_ctx *c, const json_t *s, msgpack_object_type kind, int8_t ext_type)
{
    const char *name = kind == MSGPACK_OBJECT_BIN ? "$bin" : kind == MSGPACK_OBJECT_STR ? "$str"
                                                                                          : "$ext";
    unsigned char *bytes;
    size_t n;
    char what[64];
    int rc;

    if (!json_is_string(s) || b64_decode(&bytes, &n, json_string_value(s), json_string_length(s))) {
        if (kind == MSGPACK_OBJECT_EXT)
            return pack_fail(c, "\"$ext\" must be [type -128..127, \"<base64>\"]");
        snprintf(what, sizeof what, "\"%s\" must be a base64 string (RFC 4648, padded)", name);
        return pack_fail(c, what);
    }
    if (n > UINT32_MAX)
        rc = -1;
    else if (kind == MSGPACK_OBJECT_BIN)
        rc = msgpack_pack_bin_with_body(&c->pk, bytes, n);
    else if (kind == MSGPACK_OBJECT_STR)
        rc = msgpack_pack_str_with_body(&c->pk, bytes, n);
    else
        rc = msgpack_pack_ext_with_body(&c->pk, bytes, n, ext_type);
    free(bytes);
    if (rc) {
        snprintf(what, sizeof what, "\"%s\" value too large", name);
        return pack_fail(c, what);
    }
    return 0;
}

static int pack_special(pack_ctx *c, const json_t *v, int depth, int *done)
{
    const json_t *s;

    *done = 1;
    if ((s = special(v, "$bin")) != NULL)
        return pack_b64(c, s, MSGPACK_OBJECT_BIN, 0);
    if ((s = special(v, "$ext")) != NULL) {
        const json_t *t = json_array_get(s, 0);

        if (json_array_size(s) != 2 || !json_is_integer(t) || json_integer_value(t) < -128 ||
            json_integer_value(t) > 127)
            return pack_fail(c, "\"$ext\" must be [type -128..127, \"<base64>\"]");
        return pack_b64(c, json_array_get(s, 1), MSGPACK_OBJECT_EXT, (int8_t)json_integer_value(t));
    }
    if ((s = special(v, "$str")) != NULL)
        return pack_b64(c, s, MSGPACK_OBJECT_STR, 0);
    if ((s = special(v, "$map")) != NULL) {
        const json_t *pair;
        size_t i;

        if (!json_is_array(s) || json_array_size(s) > UINT32_MAX)
            return pack_fail(c, "\"$map\" must be an array of [key, value] pairs");
        json_array_foreach(s, i, pair) {
            if (json_array_size(pair) != 2)
                return pack_fail(c, "\"$map\" must be an array of [key, value] pairs");
        }
        if (msgpack_pack_map(&c->pk, json_array_size(s)))
            return -1;
        json_array_foreach(s, i, pair) {
            char seg[2][40];

            snprintf(seg[0], sizeof seg[0], "$map/%zu/0", i);
            snprintf(seg[1], sizeof seg[1], "$map/%zu/1", i);
            if (pack_at(c, seg[0], json_array_get(pair, 0), depth + 1) ||
                pack_at(c, seg[1], json_array_get(pair, 1), depth + 1))
                return -1;
        }
        return 0;
    }
    if ((s = special(v, "$float")) != NULL) {
        const char *f = json_string_value(s);

        if (f && strcmp(f, "nan") == 0)
            return msgpack_pack_double(&c->pk, NAN);
        if (f && strcmp(f, "inf") == 0)
            return msgpack_pack_double(&c->pk, INFINITY);
        if (f && strcmp(f, "-inf") == 0)
            return msgpack_pack_double(&c->pk, -INFINITY);
        return pack_fail(c, "\"$float\" must be \"nan\", \"inf\" or \"-inf\"");
    }
    *done = 0;
    return 0;
}

static int pack_value(pack_ctx *c, const json_t *v, int depth)
{
    const char *key;
    size_t i, old, klen;
    json_t *e;
    int done;

    if (depth > MAX_DEPTH)
        return pack_fail(c, "nested too deeply");
    switch (json_typeof(v)) {
    case JSON_NULL:
        return msgpack_pack_nil(&c->pk);
    case JSON_TRUE:
        return msgpack_pack_true(&c->pk);
    case JSON_FALSE:
        return msgpack_pack_false(&c->pk);
    case JSON_INTEGER: {
        json_int_t n = json_integer_value(v);

        return n < 0 ? msgpack_pack_int64(&c->pk, (int64_t)n)
                     : msgpack_pack_uint64(&c->pk, (uint64_t)n);
    }
    case JSON_REAL:
        return msgpack_pack_double(&c->pk, json_real_value(v));
    case JSON_STRING: {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);

        if (is_marker(s, n)) /* a big integer rewritten by prescan() */
            return msgpack_pack_uint64(&c->pk, strtoull(s + MARKER_LEN, NULL, 10));
        if (n > UINT32_MAX)
            return pack_fail(c, "string too long");
        return msgpack_pack_str_with_body(&c->pk, s, n);
    }
    case JSON_ARRAY:
        if (json_array_size(v) > UINT32_MAX)
            return pack_fail(c, "array too long");
        if (msgpack_pack_array(&c->pk, json_array_size(v)))
            return -1;
        json_array_foreach(v, i, e) {
            char seg[24];

            snprintf(seg, sizeof seg, "%zu", i);
            if (pack_at(c, seg, e, depth + 1))
                return -1;
        }
        return 0;
    case JSON_OBJECT:
        if (pack_special(c, v, depth, &done) != 0)
            return -1;
        if (done)
            return 0;
        if (json_object_size(v) > UINT32_MAX)
            return pack_fail(c, "object too large");
        if (msgpack_pack_map(&c->pk, json_object_size(v)))
            return -1;
        json_object_keylen_foreach((json_t *)v, key, klen, e) {
            int rc;

            if (klen > UINT32_MAX)
                return pack_fail(c, "key too long");
            if (msgpack_pack_str_with_body(&c->pk, key, klen))
                return -1;
            old = path_push(c, key, klen);
            rc = pack_value(c, e, depth + 1);
            if (rc)
                return rc;
            c->path[old] = '\0';
        }
        return 0;
    }
    return pack_fail(c, "unsupported JSON value");
}

int cli_json_to_msgpack(msgpack_sbuffer *sb, const json_t *v, char err[CLI_ERRLEN])
{
    pack_ctx c;
    size_t start = sb->size;

    marker_init();
    msgpack_packer_init(&c.pk, sb, msgpack_sbuffer_write);
    c.path[0] = '\0';
    c.err = err;
    err[0] = '\0';
    if (pack_value(&c, v, 0)) {
        if (!err[0])
            seterr(err, "out of memory");
        sb->size = start;
        return -1;
    }
    return 0;
}

int cli_text_to_msgpack(msgpack_sbuffer *sb, const char *text, size_t len, char err[CLI_ERRLEN])
{
    json_t *v = cli_json_parse(text, len, err);
    int rc;

    if (!v)
        return -1;
    rc = cli_json_to_msgpack(sb, v, err);
    json_decref(v);
    return rc;
}

/* ---- msgpack -> JSON value --------------------------------------------------- */

/* The shortest text that reads back as exactly d, and reads as a real. */
static void format_double(char out[40], double d)
{
    int p;

    for (p = 1; p <= 17; p++) {
        snprintf(out, 40, "%.*g", p, d);
        if (strtod(out, NULL) == d)
            break;
    }
    if (!strpbrk(out, ".e"))
        strcat(out, ".0");
}

static json_t *obj_to_json(const msgpack_object *o, char err[CLI_ERRLEN], int depth);
static json_t *map_json(const msgpack_object *o, char err[CLI_ERRLEN], int depth);

static json_t *bytes_json(const char *name, const char *p, size_t n, json_t *ext_type)
{
    char *b64 = b64_encode((const unsigned char *)p, n);
    json_t *r = NULL, *val;

    if (!b64) {
        json_decref(ext_type);
        return NULL;
    }
    val = ext_type ? json_pack("[o s]", ext_type, b64) : json_string(b64);
    if (val)
        r = json_pack("{s o}", name, val);
    free(b64);
    return r;
}

static json_t *obj_to_json(const msgpack_object *o, char err[CLI_ERRLEN], int depth)
{
    json_t *r = NULL;
    uint32_t i;

    if (depth > MAX_DEPTH) {
        seterr(err, "stored value nested too deeply");
        return NULL;
    }
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return json_null();
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return cli_json_from_u64(o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer((json_int_t)o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: {
        double d = o->via.f64;
        char text[40];

        if (isnan(d))
            return json_pack("{s s}", "$float", "nan");
        if (isinf(d))
            return json_pack("{s s}", "$float", d > 0 ? "inf" : "-inf");
        format_double(text, d);
        return marker_string(text);
    }
    case MSGPACK_OBJECT_STR:
        if (is_marker(o->via.str.ptr, o->via.str.size)) {
            seterr(err, "stored string collides with the tool's internal marker");
            return NULL;
        }
        r = json_stringn(o->via.str.ptr, o->via.str.size);
        if (!r) /* not UTF-8: keep the bytes */
            r = bytes_json("$str", o->via.str.ptr, o->via.str.size, NULL);
        break;
    case MSGPACK_OBJECT_BIN:
        r = bytes_json("$bin", o->via.bin.ptr, o->via.bin.size, NULL);
        break;
    case MSGPACK_OBJECT_EXT:
        r = bytes_json("$ext", o->via.ext.ptr, o->via.ext.size, json_integer(o->via.ext.type));
        break;
    case MSGPACK_OBJECT_ARRAY:
        r = json_array();
        for (i = 0; r && i < o->via.array.size; i++) {
            json_t *e = obj_to_json(&o->via.array.ptr[i], err, depth + 1);

            if (!e || json_array_append_new(r, e)) {
                json_decref(r);
                return NULL;
            }
        }
        break;
    case MSGPACK_OBJECT_MAP:
        return map_json(o, err, depth);
    default:
        seterr(err, "unsupported msgpack type %d", (int)o->type);
        return NULL;
    }
    if (!r && !err[0])
        seterr(err, "out of memory");
    return r;
}

/* A map as a JSON object when JSON can hold it exactly; otherwise (a key that
 * is not a UTF-8 string, a duplicate key, or a lone key that would read back
 * as one of our markers) as {"$map": [[key, value], ...]}. */
static json_t *map_pairs_json(const msgpack_object *o, char err[CLI_ERRLEN], int depth)
{
    json_t *pairs = json_array();

    for (uint32_t i = 0; pairs && i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        json_t *k = obj_to_json(&kv->key, err, depth + 1);
        json_t *v = k ? obj_to_json(&kv->val, err, depth + 1) : NULL;
        json_t *pair = v ? json_pack("[o o]", k, v) : NULL;

        if (!pair || json_array_append_new(pairs, pair)) {
            if (!v)
                json_decref(k);
            json_decref(pairs);
            return NULL;
        }
    }
    return pairs ? json_pack("{s o}", "$map", pairs) : NULL;
}

static int is_marker_name(const msgpack_object *k)
{
    static const char *const names[] = {"$bin", "$ext", "$float", "$str", "$map"};

    for (size_t i = 0; k->type == MSGPACK_OBJECT_STR && i < sizeof names / sizeof names[0]; i++)
        if (k->via.str.size == strlen(names[i]) &&
            memcmp(k->via.str.ptr, names[i], k->via.str.size) == 0)
            return 1;
    return 0;
}

static json_t *map_json(const msgpack_object *o, char err[CLI_ERRLEN], int depth)
{
    json_t *r;

    if (o->via.map.size == 1 && is_marker_name(&o->via.map.ptr[0].key))
        return map_pairs_json(o, err, depth);
    r = json_object();
    for (uint32_t i = 0; r && i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        json_t *e;

        if (kv->key.type != MSGPACK_OBJECT_STR ||
            json_object_getn(r, kv->key.via.str.ptr, kv->key.via.str.size)) {
            json_decref(r);
            return map_pairs_json(o, err, depth);
        }
        e = obj_to_json(&kv->val, err, depth + 1);
        if (!e) {
            json_decref(r);
            return NULL;
        }
        if (json_object_setn_new(r, kv->key.via.str.ptr, kv->key.via.str.size, e)) {
            /* setn_new freed e: only the key can be at fault (not UTF-8) */
            json_decref(r);
            return map_pairs_json(o, err, depth);
        }
    }
    return r;
}

/* Walk one msgpack object at *off without allocating: msgpack-c allocates
 * array and map counts before it sees the bytes, so a damaged record saying
 * "4 billion elements" in 5 bytes is refused here first.  Returns 0 or -1. */
static int mp_skip(const unsigned char *p, size_t len, size_t *off, int depth)
{
    size_t n = 0, data = 0, i, o = *off;
    unsigned char b;

    if (o >= len || depth > MAX_DEPTH)
        return -1;
    b = p[o++];
#define NEED(k)                \
    do {                       \
        if (len - o < (k))     \
            return -1;         \
    } while (0)
#define BE(k, out)                                 \
    do {                                           \
        NEED(k);                                   \
        (out) = 0;                                 \
        for (i = 0; i < (k); i++)                  \
            (out) = (out) << 8 | p[o++];           \
    } while (0)
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
        data = 0;
    } else if (b >= 0xa0 && b <= 0xbf) {
        data = b & 0x1f;
    } else if ((b >= 0x80 && b <= 0x8f) || (b >= 0x90 && b <= 0x9f)) {
        n = (size_t)(b & 0x0f) * (b <= 0x8f ? 2 : 1);
    } else {
        switch (b) {
        case 0xc4: case 0xd9: BE(1, data); break;
        case 0xc5: case 0xda: BE(2, data); break;
        case 0xc6: case 0xdb: BE(4, data); break;
        case 0xc7: BE(1, data); data++; break;
        case 0xc8: BE(2, data); data++; break;
        case 0xc9: BE(4, data); data++; break;
        case 0xca: data = 4; break;
        case 0xcb: data = 8; break;
        case 0xcc: case 0xd0: data = 1; break;
        case 0xcd: case 0xd1: data = 2; break;
        case 0xce: case 0xd2: data = 4; break;
        case 0xcf: case 0xd3: data = 8; break;
        case 0xd4: data = 2; break;
        case 0xd5: data = 3; break;
        case 0xd6: data = 5; break;
        case 0xd7: data = 9; break;
        case 0xd8: data = 17; break;
        case 0xdc: BE(2, n); break;
        case 0xdd: BE(4, n); break;
        case 0xde: BE(2, n); n *= 2; break;
        case 0xdf: BE(4, n); n *= 2; break;
        default: return -1; /* 0xc1: never used */
        }
    }
#undef BE
    NEED(data);
    o += data;
    if (n > len - o) /* every element takes at least one byte */
        return -1;
#undef NEED
    for (i = 0; i < n; i++)
        if (mp_skip(p, len, &o, depth + 1))
            return -1;
    *off = o;
    return 0;
}

json_t *cli_msgpack_to_json(const void *data, size_t len, char err[CLI_ERRLEN])
{
    msgpack_unpacked msg;
    size_t off = 0;
    msgpack_unpack_return ur;
    json_t *r = NULL;

    marker_init();
    err[0] = '\0';
    if (mp_skip(data, len, &off, 0) || off != len) {
        seterr(err, "malformed msgpack value (%zu bytes)", len);
        return NULL;
    }
    off = 0;
    msgpack_unpacked_init(&msg);
    ur = msgpack_unpack_next(&msg, data, len, &off);
    if (ur != MSGPACK_UNPACK_SUCCESS || off != len)
        seterr(err, "malformed msgpack value (%zu bytes)", len);
    else
        r = obj_to_json(&msg.data, err, 0);
    msgpack_unpacked_destroy(&msg);
    return r;
}

json_t *cli_json_from_u64(uint64_t v)
{
    char digits[24];

    marker_init();
    if (v <= (uint64_t)INT64_MAX)
        return json_integer((json_int_t)v);
    snprintf(digits, sizeof digits, "%" PRIu64, v);
    return marker_string(digits);
}

int cli_json_to_u64(const json_t *v, uint64_t *out)
{
    marker_init();
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = (uint64_t)json_integer_value(v);
        return 0;
    }
    if (json_is_string(v) && is_marker(json_string_value(v), json_string_length(v))) {
        *out = strtoull(json_string_value(v) + MARKER_LEN, NULL, 10);
        return 0;
    }
    return -1;
}

/* ---- JSON text out ------------------------------------------------------------ */

char *cli_json_dumps(const json_t *v, size_t flags)
{
    char *text;
    const char *p, *q;
    buf b = {0};

    marker_init();
    if (!flags)
        flags = JSON_COMPACT;
    text = json_dumps(v, flags | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    if (!text || !strstr(text, marker_json))
        return text;
    /* Replace each "\u0001udb<nonce>:TEXT" (quotes included) by TEXT. */
    p = text;
    while ((q = strstr(p, marker_json)) != NULL) {
        const char *num = q + MARKER_JSON_LEN, *end = strchr(num, '"');

        if (q == text || q[-1] != '"' || !end || buf_add(&b, p, (size_t)(q - 1 - p)) ||
            buf_add(&b, num, (size_t)(end - num))) {
            free(b.p);
            free(text);
            return NULL;
        }
        p = end + 1;
    }
    if (buf_add(&b, p, strlen(p))) {
        free(b.p);
        b.p = NULL;
    }
    free(text);
    return b.p;
}

int cli_print_json(const json_t *v)
{
    char *text = cli_json_dumps(v, 0);
    int rc;

    if (!text) {
        fprintf(stderr, "uniqdb: out of memory printing JSON\n");
        return CLI_EFAIL;
    }
    rc = cli_put_line(text);
    free(text);
    return rc;
}

/* ---- Conflicts ---------------------------------------------------------------- */

static json_t *conflict_index_json(const char *type, const udb_conflict_index *ci)
{
    char err[CLI_ERRLEN];
    json_t *o = json_object(), *fields = json_array(), *values, *key;
    char *name = NULL;
    size_t i;

    if (!o || !fields)
        goto fail;
    for (i = 0; i < ci->nfields; i++)
        if (json_array_append_new(fields, json_string(ci->fields[i])))
            goto fail;
    values = ci->values.data ? cli_msgpack_to_json(ci->values.data, ci->values.size, err) : NULL;
    key = ci->existing_key.data
              ? cli_msgpack_to_json(ci->existing_key.data, ci->existing_key.size, err)
              : NULL;
    if (asprintf(&name, "%s.%s", type, ci->index) < 0) {
        name = NULL;
        json_decref(values);
        json_decref(key);
        goto fail;
    }
    json_object_set_new(o, "index", json_string(name));
    json_object_set_new(o, "fields", fields);
    json_object_set_new(o, "values", values ? values : json_null());
    json_object_set_new(o, "existing_key", key ? key : json_null());
    free(name);
    return o;
fail:
    json_decref(fields);
    json_decref(o);
    return NULL;
}

json_t *cli_conflict_json(const udb_conflict *c)
{
    json_t *first, *all, *o;
    size_t i;

    if (!c || c->count == 0 || !c->indexes)
        return NULL;
    first = conflict_index_json(c->type, &c->indexes[0]);
    all = json_array();
    if (!first || !all) {
        json_decref(first);
        json_decref(all);
        return NULL;
    }
    o = json_deep_copy(first);
    for (i = 0; o && i < c->count; i++) {
        json_t *ci = i == 0 ? json_incref(first) : conflict_index_json(c->type, &c->indexes[i]);

        if (!ci || json_array_append_new(all, ci)) {
            json_decref(o);
            o = NULL;
        }
    }
    if (o) {
        json_object_set_new(o, "record_type", json_string(c->type));
        json_object_set(o, "conflicts", all);
    }
    json_decref(all);
    json_decref(first);
    return o;
}
