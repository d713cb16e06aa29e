/*
 * convert.c -- JS values to msgpack and back, in C, with every value copied
 * (no external buffers: Electron's memory cage forbids them).
 *
 * JS -> msgpack
 *   null (and undefined inside arrays) -> nil; boolean -> bool;
 *   number: a safe integer other than -0 -> int, anything else (-0, NaN,
 *   fractions, +-Infinity, integers beyond 2^53) -> float64;
 *   bigint -> int (from -2^63 to 2^64-1; outside: TypeError);
 *   string -> str (UTF-8); Buffer / Uint8Array / ArrayBuffer -> bin;
 *   Array -> array; Map -> map (keys converted like values);
 *   a plain object (prototype Object.prototype or null) -> map of its own
 *   enumerable string keys, `undefined` members left out;
 *   Float32 -> float32; RawString -> str with its bytes as they are.
 *   Anything else (symbol, function, Date, RegExp, Set, class instances,
 *   other typed arrays, a cycle, nesting deeper than MAX_DEPTH) is a
 *   TypeError naming where it sits ("field \"note.tags[2]\"").
 * msgpack -> JS
 *   ints -> number when |v| <= 2^53 - 1, else bigint; float32/float64 ->
 *   number; str -> string, or RawString when the bytes are not UTF-8; bin ->
 *   Buffer (a copy); array -> Array; map -> plain object when every key is
 *   a UTF-8 string, else Map; ext -> an Error (uniqdb stores none).
 */
#include "addon.h"

#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64 /* below the engine's own nesting limit */
#define SAFE_MAX 9007199254740991.0

void mbuf_free(mbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

static uint8_t *grow(mbuf *b, size_t n)
{
    if (b->oom)
        return NULL;
    if (n > SIZE_MAX / 2 - b->len) {
        b->oom = 1;
        return NULL;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return NULL;
        }
        b->p = p;
        b->cap = cap;
    }
    uint8_t *at = b->p + b->len;
    b->len += n;
    return at;
}

static void put_be(mbuf *b, uint8_t tag, uint64_t v, int bytes)
{
    uint8_t *p = grow(b, 1 + (size_t)bytes);
    if (!p)
        return;
    p[0] = tag;
    for (int i = 0; i < bytes; i++)
        p[1 + i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
}

static void put_u64(mbuf *b, uint64_t v)
{
    if (v < 128)
        put_be(b, (uint8_t)v, 0, 0);
    else if (v <= UINT8_MAX)
        put_be(b, 0xcc, v, 1);
    else if (v <= UINT16_MAX)
        put_be(b, 0xcd, v, 2);
    else if (v <= UINT32_MAX)
        put_be(b, 0xce, v, 4);
    else
        put_be(b, 0xcf, v, 8);
}

static void put_i64(mbuf *b, int64_t v)
{
    if (v >= 0)
        put_u64(b, (uint64_t)v);
    else if (v >= -32)
        put_be(b, (uint8_t)(int8_t)v, 0, 0);
    else if (v >= INT8_MIN)
        put_be(b, 0xd0, (uint64_t)v & 0xff, 1);
    else if (v >= INT16_MIN)
        put_be(b, 0xd1, (uint64_t)v & 0xffff, 2);
    else if (v >= INT32_MIN)
        put_be(b, 0xd2, (uint64_t)v & 0xffffffff, 4);
    else
        put_be(b, 0xd3, (uint64_t)v, 8);
}

static void put_f64(mbuf *b, double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    put_be(b, 0xcb, u, 8);
}

static void put_f32(mbuf *b, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    put_be(b, 0xca, u, 4);
}

/* The header of a str (0xa0/d9/da/db), bin (c4/c5/c6), array or map. */
static void put_str_hdr(mbuf *b, size_t n)
{
    if (n < 32)
        put_be(b, (uint8_t)(0xa0 | n), 0, 0);
    else if (n <= UINT8_MAX)
        put_be(b, 0xd9, n, 1);
    else if (n <= UINT16_MAX)
        put_be(b, 0xda, n, 2);
    else
        put_be(b, 0xdb, n, 4);
}

static void put_bin(mbuf *b, const void *data, size_t n)
{
    if (n <= UINT8_MAX)
        put_be(b, 0xc4, n, 1);
    else if (n <= UINT16_MAX)
        put_be(b, 0xc5, n, 2);
    else
        put_be(b, 0xc6, n, 4);
    uint8_t *p = grow(b, n);
    if (p && n)
        memcpy(p, data, n);
}

static void put_container(mbuf *b, bool map, size_t n)
{
    if (n < 16)
        put_be(b, (uint8_t)((map ? 0x80 : 0x90) | n), 0, 0);
    else if (n <= UINT16_MAX)
        put_be(b, map ? 0xde : 0xdc, n, 2);
    else
        put_be(b, map ? 0xdf : 0xdd, n, 4);
}

/* ---- errors ---------------------------------------------------------------- */

static int oom_error(napi_env env)
{
    napi_throw_error(env, "UDB_ENOMEM", "uniqdb: out of memory converting a value");
    return -1;
}

/* ---- JS -> msgpack --------------------------------------------------------- */

/* Where the value being encoded sits: one frame per container entered (an
 * array's index or a map's key), formatted only when an error is thrown. */
typedef struct frame {
    napi_value key; /* a map's key, or NULL for an array's index */
    uint32_t idx;
} frame;

typedef struct enc {
    napi_env env;
    realm *r;
    mbuf *b;
    const char *root;
    napi_value stack[MAX_DEPTH]; /* the objects being encoded, to find cycles */
    int depth;
    frame fr[MAX_DEPTH + 2];
    int nfr;
} enc;

static bool frame_push(enc *c, napi_value key, uint32_t idx)
{
    if (c->nfr >= (int)(sizeof c->fr / sizeof c->fr[0]))
        return false;
    c->fr[c->nfr].key = key;
    c->fr[c->nfr++].idx = idx;
    return true;
}

/* The path of the value being encoded, as "note.tags[2]" after root. */
static size_t path_string(enc *c, char *out, size_t cap)
{
    size_t len = 0;
    int n = snprintf(out, cap, "%s", c->root);
    len = n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
    for (int i = 0; i < c->nfr && len < cap - 1; i++) {
        char name[128];
        if (c->fr[i].key) {
            napi_valuetype t;
            napi_typeof(c->env, c->fr[i].key, &t);
            size_t got = 0;
            if (t == napi_string)
                napi_get_value_string_utf8(c->env, c->fr[i].key, name, sizeof name, &got);
            else
                snprintf(name, sizeof name, "<key>");
            bool dot = len && out[len - 1] != '.';
            n = snprintf(out + len, cap - len, dot ? ".%s" : "%s", name);
        } else {
            n = snprintf(out + len, cap - len, "[%u]", c->fr[i].idx);
        }
        if (n > 0)
            len += (size_t)n < cap - len ? (size_t)n : cap - 1 - len;
    }
    return len;
}

/* Throw TypeError "uniqdb: field \"<path>\": <why>" with err.field = the path. */
static int type_error(enc *c, const char *why)
{
    char path[256], msg[512];
    size_t plen = path_string(c, path, sizeof path);
    if (plen)
        snprintf(msg, sizeof msg, "uniqdb: field \"%s\": %s", path, why);
    else
        snprintf(msg, sizeof msg, "uniqdb: %s", why);
    napi_value m, e, f;
    napi_create_string_utf8(c->env, msg, NAPI_AUTO_LENGTH, &m);
    napi_create_type_error(c->env, NULL, m, &e);
    napi_create_string_utf8(c->env, path, plen, &f);
    napi_set_named_property(c->env, e, "field", f);
    napi_throw(c->env, e);
    return -1;
}

static int enc_any(enc *c, napi_value v, bool member);

static napi_value ref_value(napi_env env, napi_ref ref)
{
    napi_value v = NULL;
    napi_get_reference_value(env, ref, &v);
    return v;
}

static bool is_instance(napi_env env, napi_value v, napi_ref ctor)
{
    bool yes = false;
    napi_value c = ref_value(env, ctor);
    if (c)
        napi_instanceof(env, v, c, &yes);
    return yes;
}

/* The bytes of a str header for a body of n bytes. */
static size_t str_hdr_size(size_t n)
{
    return n < 32 ? 1 : n <= UINT8_MAX ? 2 : n <= UINT16_MAX ? 3 : 5;
}

/* One conversion of the string: a UTF-16 unit takes at most 3 bytes of UTF-8
 * (a lone surrogate becomes U+FFFD), so the body is written after room for
 * the largest header it can need, then moved up to its own header. */
static int enc_string(enc *c, napi_value v)
{
    size_t units = 0, n = 0;
    if (napi_get_value_string_utf16(c->env, v, NULL, 0, &units) != napi_ok)
        return type_error(c, "could not read the string");
    if (units > (INT_MAX - 16) / 3)
        return oom_error(c->env);
    size_t max = 3 * units, h = str_hdr_size(max), at = c->b->len;
    uint8_t *p = grow(c->b, h + max + 1); /* napi writes a terminating NUL */
    if (!p)
        return oom_error(c->env);
    napi_get_value_string_utf8(c->env, v, (char *)p + h, max + 1, &n);
    size_t h2 = str_hdr_size(n);
    if (h2 != h)
        memmove(p + h2, p + h, n);
    c->b->len = at;
    put_str_hdr(c->b, n); /* h2 bytes, within the room grown above */
    c->b->len = at + h2 + n;
    return 0;
}

static int enc_number(enc *c, napi_value v)
{
    double d = 0;
    napi_get_value_double(c->env, v, &d);
    if (isfinite(d) && d == floor(d) && fabs(d) <= SAFE_MAX && !(d == 0 && signbit(d)))
        put_i64(c->b, (int64_t)d);
    else
        put_f64(c->b, d);
    return 0;
}

static int enc_bigint(enc *c, napi_value v)
{
    int sign = 0;
    size_t count = 2;
    uint64_t words[2] = {0, 0};
    if (napi_get_value_bigint_words(c->env, v, &sign, &count, words) != napi_ok)
        return type_error(c, "could not read the bigint");
    if (count > 1 || (sign && words[0] > (uint64_t)INT64_MAX + 1))
        return type_error(c,
                          "bigint out of range (a stored integer is from -2^63 to 2^64-1)");
    if (!sign)
        put_u64(c->b, words[0]);
    else if (words[0] == (uint64_t)INT64_MAX + 1)
        put_i64(c->b, INT64_MIN);
    else
        put_i64(c->b, -(int64_t)words[0]);
    return 0;
}

/* Enter an object: refuse cycles and nesting deeper than MAX_DEPTH. */
static int enter(enc *c, napi_value v)
{
    for (int i = 0; i < c->depth; i++) {
        bool same = false;
        napi_strict_equals(c->env, c->stack[i], v, &same);
        if (same)
            return type_error(c, "a cycle (the object contains itself)");
    }
    if (c->depth >= MAX_DEPTH)
        return type_error(c, "nested deeper than 64 levels");
    c->stack[c->depth++] = v;
    return 0;
}

static int enc_array(enc *c, napi_value v)
{
    uint32_t n = 0;
    napi_get_array_length(c->env, v, &n);
    put_container(c->b, false, n);
    for (uint32_t i = 0; i < n; i++) {
        napi_value e;
        if (napi_get_element(c->env, v, i, &e) != napi_ok)
            return -1;
        bool pushed = frame_push(c, NULL, i);
        int rc = enc_any(c, e, false);
        if (rc)
            return rc;
        c->nfr -= pushed;
    }
    return 0;
}

static int enc_entry(enc *c, napi_value k, napi_value val, bool key_is_str)
{
    bool pushed = frame_push(c, k, 0);
    int rc = key_is_str ? enc_string(c, k) : enc_any(c, k, false);
    if (!rc)
        rc = enc_any(c, val, false);
    if (!rc) /* on an error the frame stays: the path is read as it is thrown */
        c->nfr -= pushed;
    return rc;
}

static int enc_object(enc *c, napi_value v)
{
    napi_value keys;
    if (napi_get_all_property_names(c->env, v, napi_key_own_only,
                                    napi_key_enumerable | napi_key_skip_symbols,
                                    napi_key_numbers_to_strings, &keys) != napi_ok)
        return -1;
    uint32_t n = 0;
    napi_get_array_length(c->env, keys, &n);
    /* count the members that are not undefined (left out) */
    napi_value *vals = calloc(n ? n : 1, sizeof *vals);
    napi_value *ks = calloc(n ? n : 1, sizeof *ks);
    int rc = 0;
    if (!vals || !ks) {
        rc = oom_error(c->env);
        goto out;
    }
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++) {
        napi_value k, val;
        napi_valuetype t;
        napi_get_element(c->env, keys, i, &k);
        if (napi_get_property(c->env, v, k, &val) != napi_ok) {
            rc = -1;
            goto out;
        }
        napi_typeof(c->env, val, &t);
        if (t == napi_undefined)
            continue;
        ks[m] = k;
        vals[m++] = val;
    }
    put_container(c->b, true, m);
    for (uint32_t i = 0; i < m && !rc; i++)
        rc = enc_entry(c, ks[i], vals[i], true);
out:
    free(vals);
    free(ks);
    return rc;
}

static int enc_map(enc *c, napi_value v)
{
    /* Array.from(map) gives [[k, v], ...] without calling back into JS iterators
     * by hand: use the global Array.from. */
    napi_value global, array_ctor, from, pairs;
    napi_get_global(c->env, &global);
    napi_get_named_property(c->env, global, "Array", &array_ctor);
    napi_get_named_property(c->env, array_ctor, "from", &from);
    if (napi_call_function(c->env, array_ctor, from, 1, &v, &pairs) != napi_ok)
        return -1;
    uint32_t n = 0;
    napi_get_array_length(c->env, pairs, &n);
    put_container(c->b, true, n);
    for (uint32_t i = 0; i < n; i++) {
        napi_value pair, k, val;
        napi_get_element(c->env, pairs, i, &pair);
        napi_get_element(c->env, pair, 0, &k);
        napi_get_element(c->env, pair, 1, &val);
        if (enc_entry(c, k, val, false))
            return -1;
    }
    return 0;
}

static int enc_object_kind(enc *c, napi_value v)
{
    napi_env env = c->env;
    bool yes = false;
    if (napi_is_array(env, v, &yes) == napi_ok && yes)
        return enc_array(c, v);
    if (napi_is_typedarray(env, v, &yes) == napi_ok && yes) {
        napi_typedarray_type tt;
        size_t n;
        void *data;
        napi_get_typedarray_info(env, v, &tt, &n, &data, NULL, NULL);
        if (tt != napi_uint8_array)
            return type_error(c, "a typed array other than Uint8Array cannot be "
                              "stored (use a Buffer or Uint8Array for bytes)");
        put_bin(c->b, data, n);
        return 0;
    }
    /* typed arrays first: napi_is_buffer() is true of every ArrayBufferView */
    if (napi_is_dataview(env, v, &yes) == napi_ok && yes)
        return type_error(c, "a DataView cannot be stored (use a Buffer or "
                          "Uint8Array for bytes)");
    if (napi_is_arraybuffer(env, v, &yes) == napi_ok && yes) {
        void *data;
        size_t n;
        napi_get_arraybuffer_info(env, v, &data, &n);
        put_bin(c->b, data, n);
        return 0;
    }
    if (napi_is_date(env, v, &yes) == napi_ok && yes)
        return type_error(c, "a Date cannot be stored: store date.toISOString() in "
                          "a str field or date.getTime() in an int field");
    if (is_instance(env, v, c->r->float32)) {
        napi_value x;
        double d = 0;
        napi_get_named_property(env, v, "value", &x);
        napi_get_value_double(env, x, &d);
        put_f32(c->b, (float)d);
        return 0;
    }
    if (is_instance(env, v, c->r->raw_string)) {
        napi_value x;
        void *data = NULL;
        size_t n = 0;
        napi_get_named_property(env, v, "bytes", &x);
        if (napi_get_buffer_info(env, x, &data, &n) != napi_ok)
            return type_error(c, "a RawString whose bytes are not a Buffer");
        put_str_hdr(c->b, n);
        uint8_t *p = grow(c->b, n);
        if (p && n)
            memcpy(p, data, n);
        return 0;
    }
    if (is_instance(env, v, c->r->map_ctor))
        return enc_map(c, v);
    napi_value proto, objproto = ref_value(env, c->r->object_proto), null;
    napi_get_prototype(env, v, &proto);
    napi_get_null(env, &null);
    bool plain = false, isnull = false;
    napi_strict_equals(env, proto, objproto, &plain);
    napi_strict_equals(env, proto, null, &isnull);
    if (!plain && !isnull) {
        char why[200];
        napi_value ctor, name;
        char cname[64] = "an object";
        if (napi_get_named_property(env, v, "constructor", &ctor) == napi_ok &&
            napi_get_named_property(env, ctor, "name", &name) == napi_ok) {
            size_t got = 0;
            char nm[48] = "";
            if (napi_get_value_string_utf8(env, name, nm, sizeof nm, &got) == napi_ok && got)
                snprintf(cname, sizeof cname, "a %s", nm);
        }
        snprintf(why, sizeof why, "%s cannot be stored (plain objects, arrays, Maps, Buffers "
                 "and Uint8Arrays can)", cname);
        return type_error(c, why);
    }
    return enc_object(c, v);
}

static int enc_any(enc *c, napi_value v, bool member)
{
    napi_valuetype t;
    napi_typeof(c->env, v, &t);
    switch (t) {
    case napi_undefined:
    case napi_null:
        put_be(c->b, 0xc0, 0, 0);
        break;
    case napi_boolean: {
        bool yes = false;
        napi_get_value_bool(c->env, v, &yes);
        put_be(c->b, yes ? 0xc3 : 0xc2, 0, 0);
        break;
    }
    case napi_number:
        return enc_number(c, v);
    case napi_bigint:
        return enc_bigint(c, v);
    case napi_string:
        return enc_string(c, v);
    case napi_symbol:
        return type_error(c, "a symbol cannot be stored");
    case napi_function:
        return type_error(c, "a function cannot be stored");
    case napi_external:
        return type_error(c, "an external value cannot be stored");
    case napi_object: {
        if (enter(c, v))
            return -1;
        int rc = enc_object_kind(c, v);
        c->depth--;
        return rc;
    }
    }
    (void)member;
    return c->b->oom ? oom_error(c->env) : 0;
}

int enc_value(napi_env env, realm *r, napi_value v, mbuf *b, const char *root)
{
    enc c; /* the ancestor and frame stacks are filled as they are used */
    c.env = env;
    c.r = r;
    c.b = b;
    c.root = root;
    c.depth = 0;
    c.nfr = 0;
    int rc = enc_any(&c, v, false);
    if (!rc && b->oom)
        rc = oom_error(env);
    return rc;
}

/* ---- msgpack -> JS --------------------------------------------------------- */

typedef struct dec {
    napi_env env;
    realm *r;
    const uint8_t *p, *end;
} dec;

static int malformed(napi_env env)
{
    napi_throw_error(env, "UDB_ECORRUPT", "uniqdb: malformed msgpack from the engine");
    return -1;
}

static int need(dec *d, size_t n)
{
    return (size_t)(d->end - d->p) >= n ? 0 : -1;
}

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

napi_value js_u64(napi_env env, uint64_t v)
{
    napi_value out;
    if (v <= (uint64_t)SAFE_MAX)
        napi_create_double(env, (double)v, &out);
    else
        napi_create_bigint_uint64(env, v, &out);
    return out;
}

static napi_value js_i64(napi_env env, int64_t v)
{
    napi_value out;
    if (v >= -(int64_t)SAFE_MAX && v <= (int64_t)SAFE_MAX)
        napi_create_double(env, (double)v, &out);
    else
        napi_create_bigint_int64(env, v, &out);
    return out;
}

/* Whether [s, s+n) is UTF-8 (*ascii: and all of it ASCII, which V8 takes
 * as Latin-1 without decoding). */
static bool utf8_valid(const uint8_t *s, size_t n, bool *ascii)
{
    size_t i = 0;
    while (i < n && s[i] < 0x80)
        i++;
    *ascii = i == n;
    while (i < n) {
        uint8_t c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            k = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i <= k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

static int dec_any(dec *d, napi_value *out, int depth);

/* A str body of n bytes at d->p: a string, or a RawString when not UTF-8.
 * *is_str (may be NULL): whether it became a string. */
static int dec_str_body(dec *d, size_t n, napi_value *out, bool *is_str)
{
    if (need(d, n))
        return malformed(d->env);
    const uint8_t *s = d->p;
    d->p += n;
    bool ascii = false, valid = utf8_valid(s, n, &ascii);
    if (is_str)
        *is_str = valid;
    if (ascii)
        return napi_create_string_latin1(d->env, (const char *)s, n, out) == napi_ok ? 0 : -1;
    if (valid)
        return napi_create_string_utf8(d->env, (const char *)s, n, out) == napi_ok ? 0 : -1;
    napi_value bytes, ctor = ref_value(d->env, d->r->raw_string);
    napi_create_buffer_copy(d->env, n, s, NULL, &bytes);
    return napi_new_instance(d->env, ctor, 1, &bytes, out) == napi_ok ? 0 : -1;
}

static int dec_str(dec *d, size_t n, napi_value *out)
{
    return dec_str_body(d, n, out, NULL);
}

/* If the next value is a str, its body's length (its header is consumed). */
static bool str_header(dec *d, size_t *n)
{
    uint8_t c = *d->p;
    int nb = c == 0xd9 ? 1 : c == 0xda ? 2 : c == 0xdb ? 4 : 0;
    if ((c & 0xe0) == 0xa0) {
        *n = c & 0x1f;
    } else if (!nb || (size_t)(d->end - d->p) < 1 + (size_t)nb) {
        return false;
    } else {
        *n = (size_t)be(d->p + 1, nb);
    }
    d->p += 1 + nb;
    return true;
}

static int dec_bin(dec *d, size_t n, napi_value *out)
{
    if (need(d, n))
        return malformed(d->env);
    int rc = napi_create_buffer_copy(d->env, n, d->p, NULL, out) == napi_ok ? 0 : -1;
    d->p += n;
    return rc;
}

static int dec_array(dec *d, size_t n, napi_value *out, int depth)
{
    if (n > (size_t)(d->end - d->p)) /* each element takes at least a byte */
        return malformed(d->env);
    napi_create_array_with_length(d->env, n, out);
    for (size_t i = 0; i < n; i++) {
        napi_value e;
        if (dec_any(d, &e, depth + 1))
            return -1;
        napi_set_element(d->env, *out, (uint32_t)i, e);
    }
    return 0;
}

static int dec_map(dec *d, size_t n, napi_value *out, int depth)
{
    if (n > (size_t)(d->end - d->p) / 2)
        return malformed(d->env);
    /* keys and values, and which keys are "__proto__"; on the stack for records
       of up to 16 fields */
    napi_value small[32];
    bool small_proto[16];
    napi_value *kv = n <= 16 ? small : calloc(2 * n, sizeof *kv);
    bool *proto = n <= 16 ? small_proto : calloc(n, sizeof *proto);
    int rc = 0;
    bool all_str = true;
    if (!kv || !proto) {
        rc = oom_error(d->env);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        size_t kn;
        bool is_str = false;
        proto[i] = false;
        if (depth + 1 > 2 * MAX_DEPTH || need(d, 1)) {
            rc = malformed(d->env);
            goto out;
        }
        if (str_header(d, &kn)) {
            proto[i] = kn == 9 && !need(d, 9) && !memcmp(d->p, "__proto__", 9);
            rc = dec_str_body(d, kn, &kv[2 * i], &is_str);
        } else {
            rc = dec_any(d, &kv[2 * i], depth + 1);
        }
        all_str = all_str && is_str;
        if (rc || (rc = dec_any(d, &kv[2 * i + 1], depth + 1)))
            goto out;
    }
    if (all_str) {
        napi_create_object(d->env, out);
        for (size_t i = 0; i < n; i++) {
            /* a key "__proto__" is defined, not set, to become a member like any
             * other; every other key is set (the faster call) */
            if (proto[i]) {
                napi_property_descriptor pd = {NULL, kv[2 * i], NULL, NULL, NULL, kv[2 * i + 1],
                                               napi_writable | napi_enumerable |
                                               napi_configurable, NULL};
                napi_define_properties(d->env, *out, 1, &pd);
            } else {
                napi_set_property(d->env, *out, kv[2 * i], kv[2 * i + 1]);
            }
        }
    } else {
        napi_value ctor = ref_value(d->env, d->r->map_ctor), set;
        napi_new_instance(d->env, ctor, 0, NULL, out);
        napi_get_named_property(d->env, *out, "set", &set);
        for (size_t i = 0; i < n && !rc; i++) {
            napi_value ignored;
            if (napi_call_function(d->env, *out, set, 2, &kv[2 * i], &ignored) != napi_ok)
                rc = -1;
        }
    }
out:
    if (kv != small)
        free(kv);
    if (proto != small_proto)
        free(proto);
    return rc;
}

static int dec_any(dec *d, napi_value *out, int depth)
{
    napi_env env = d->env;
    if (depth > 2 * MAX_DEPTH || need(d, 1))
        return malformed(env);
    uint8_t c = *d->p++;
    if (c <= 0x7f) {
        napi_create_uint32(env, c, out);
        return 0;
    }
    if (c >= 0xe0) {
        napi_create_int32(env, (int8_t)c, out);
        return 0;
    }
    if ((c & 0xe0) == 0xa0)
        return dec_str(d, c & 0x1f, out);
    if ((c & 0xf0) == 0x90)
        return dec_array(d, c & 0x0f, out, depth);
    if ((c & 0xf0) == 0x80)
        return dec_map(d, c & 0x0f, out, depth);
    /* fixed-size bodies */
    static const int body[256] = {
        [0xcc] = 1, [0xcd] = 2, [0xce] = 4, [0xcf] = 8, [0xd0] = 1, [0xd1] = 2, [0xd2] = 4,
        [0xd3] = 8, [0xca] = 4, [0xcb] = 8, [0xd9] = 1, [0xda] = 2, [0xdb] = 4, [0xc4] = 1,
        [0xc5] = 2, [0xc6] = 4, [0xdc] = 2, [0xdd] = 4, [0xde] = 2, [0xdf] = 4,
    };
    int nb = body[c];
    if (need(d, (size_t)nb))
        return malformed(env);
    uint64_t v = be(d->p, nb);
    d->p += nb;
    switch (c) {
    case 0xc0:
        napi_get_null(env, out);
        return 0;
    case 0xc2:
    case 0xc3:
        napi_get_boolean(env, c == 0xc3, out);
        return 0;
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf:
        *out = js_u64(env, v);
        return 0;
    case 0xd0:
        *out = js_i64(env, (int8_t)v);
        return 0;
    case 0xd1:
        *out = js_i64(env, (int16_t)v);
        return 0;
    case 0xd2:
        *out = js_i64(env, (int32_t)v);
        return 0;
    case 0xd3:
        *out = js_i64(env, (int64_t)v);
        return 0;
    case 0xca: {
        uint32_t u = (uint32_t)v;
        float f;
        memcpy(&f, &u, 4);
        napi_create_double(env, (double)f, out);
        return 0;
    }
    case 0xcb: {
        double f;
        memcpy(&f, &v, 8);
        napi_create_double(env, f, out);
        return 0;
    }
    case 0xd9:
    case 0xda:
    case 0xdb:
        return dec_str(d, (size_t)v, out);
    case 0xc4:
    case 0xc5:
    case 0xc6:
        return dec_bin(d, (size_t)v, out);
    case 0xdc:
    case 0xdd:
        return dec_array(d, (size_t)v, out, depth);
    case 0xde:
    case 0xdf:
        return dec_map(d, (size_t)v, out, depth);
    default:
        napi_throw_error(env, "UDB_ECORRUPT",
                         "uniqdb: a msgpack extension value (uniqdb stores none)");
        return -1;
    }
}

int dec_value(napi_env env, realm *r, const uint8_t *p, size_t len, napi_value *out)
{
    dec d = {env, r, p, p + len};
    if (dec_any(&d, out, 0))
        return -1;
    return d.p == d.end ? 0 : malformed(env);
}
