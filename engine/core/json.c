/*
 * json.c -- records (any msgpack value) as JSON and back: the public
 * udb_json_to_msgpack() / udb_msgpack_to_json() of uniqdb.h and the
 * jansson-level calls of uniqdb_jansson.h, which the `uniqdb` tool uses.
 * Storage-independent: it knows msgpack and JSON, no schema and no database.
 *
 * jansson parses JSON and escapes strings.  What it cannot do exactly is done
 * here, without any in-band marker a stored string could imitate:
 *
 *  - Integers in (INT64_MAX, UINT64_MAX] (uint fields) overflow json_int_t.
 *    In a json_t tree such a number is a string made of the byte 0xFF and
 *    its decimal digits (udb_jansson_u64).  0xFF never occurs in UTF-8 and
 *    jansson refuses any other string that is not UTF-8 (every string parsed
 *    or converted from msgpack is checked), so no input can make one.  When
 *    parsing, the text of such a number is blanked to a same-length "0"
 *    before jansson sees it and the value is put back by its position among
 *    the integers afterwards, so error columns stay right.
 *  - jansson prints reals with 17 significant digits (0.1 comes out as
 *    0.10000000000000001).  udb_jansson_dumps() writes the structure itself,
 *    every real in its shortest exact form and the big integers as digits,
 *    and hands every other scalar and every key to jansson, so escaping is
 *    jansson's own.
 *
 * Binary values are {"$bin": "<base64>"}; NaN and infinities
 * {"$float": "nan"}; a msgpack float32 (the C API can store one) is
 * {"$float32": 0.1} (the shortest number that reads back as that float32),
 * or {"$float32": "nan"}, "inf", "-inf".  What an `any` field may hold but JSON cannot say
 * directly keeps its exact bytes too: a string that is not UTF-8 is
 * {"$str": "<base64>"}, and a map with a key that is not a UTF-8 string, a
 * key holding a NUL byte, a duplicate key, or whose only key is one of these
 * marker names is
 * {"$map": [[key, value], ...]}.  msgpack extension values are refused both
 * ways: the engine stores none.
 *
 * Internally every step writes its message into a caller's buffer; the
 * public calls hand it to udb_env_errmsg() (error.c, per thread).
 */
#include <jansson.h>
#include <msgpack.h>

#include "base64.h"
#include "error.h"
#include "uniqdb_jansson.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64

/* Room for a conversion message (udb_env_errmsg() holds 1024 bytes). */
#define ERRLEN 512

/* ---- Small helpers -------------------------------------------------------- */

static void seterr(char err[ERRLEN], const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void seterr(char err[ERRLEN], const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, ERRLEN, fmt, ap);
    va_end(ap);
}

/* A growable byte buffer for the printer. */
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
        while (cap < b->len + n + 1) {
            if (cap > SIZE_MAX / 2)
                return -1;
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
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

/* The shortest "%g" text of a finite d that strtod() reads back as exactly d
 * ("-0" for -0.0, "1e+308"); it may lack a "." (1.0 gives "1"). */
static void format_shortest(char out[40], double d)
{
    for (int p = 1; p <= 17; p++) {
        snprintf(out, 40, "%.*g", p, d);
        if (strtod(out, NULL) == d)
            break;
    }
}

/* ---- Integers above INT64_MAX ----------------------------------------------- */

/* The first byte of a big integer's string: never part of UTF-8. */
#define U64_TAG '\xff'

/* The value of a big-integer string, or -1 if v is not one. */
static int big_u64(const json_t *v, uint64_t *out)
{
    const char *s = json_string_value(v);
    if (!s || json_string_length(v) < 2 || s[0] != U64_TAG)
        return -1;
    *out = strtoull(s + 1, NULL, 10);
    return 0;
}

json_t *udb_jansson_u64(uint64_t v)
{
    if (v <= (uint64_t)INT64_MAX)
        return json_integer((json_int_t)v);
    char text[24];
    int n = snprintf(text, sizeof text, "%c%" PRIu64, U64_TAG, v);
    return json_stringn_nocheck(text, (size_t)n);
}

int udb_jansson_to_u64(uint64_t *out, const json_t *v)
{
    if (!out || !v)
        return UDB_EINVAL;
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = (uint64_t)json_integer_value(v);
        return 0;
    }
    return big_u64(v, out) ? UDB_EINVAL : 0;
}

const char *udb_jansson_text(const json_t *v)
{
    uint64_t u;
    return big_u64(v, &u) == 0 ? NULL : json_string_value(v);
}

/* ---- JSON text in ----------------------------------------------------------- */

/* The integer tokens above INT64_MAX of a text, in order: each with its
 * position among all integer tokens and its value. */
typedef struct bigints {
    struct bigint {
        size_t ordinal;
        uint64_t value;
    } *v;
    size_t n, cap;
    size_t integers; /* integer tokens seen in all */
    size_t reals;    /* real tokens seen in all */
    /* the first real token a float64 cannot hold (0: none), blanked to "0.0" */
    struct {
        int kind; /* RANGE_* */
        size_t ordinal, line, column;
        double stored; /* what strtod made of it */
        char text[48];
    } bad;
} bigints;

static int bigints_add(bigints *b, size_t ordinal, uint64_t value)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 8;
        struct bigint *p = cap > SIZE_MAX / sizeof *p ? NULL : realloc(b->v, cap * sizeof *p);
        if (!p)
            return -1;
        b->v = p;
        b->cap = cap;
    }
    b->v[b->n].ordinal = ordinal;
    b->v[b->n].value = value;
    b->n++;
    return 0;
}

enum { RANGE_OK, RANGE_OVER, RANGE_UNDER };

/* Is s[0..n) a number as JSON spells it: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int json_number(const char *s, size_t n)
{
    size_t i = n > 0 && s[0] == '-';
    if (i < n && s[i] == '0')
        i++;
    else
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    if (i == (size_t)(n > 0 && s[0] == '-'))
        return 0;
    size_t d;
    if (i < n && s[i] == '.') {
        for (d = ++i; i < n && s[i] >= '0' && s[i] <= '9';)
            i++;
        if (i == d)
            return 0;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        for (d = i; i < n && s[i] >= '0' && s[i] <= '9';)
            i++;
        if (i == d)
            return 0;
    }
    return i == n;
}

/* Whether the real token s[0..n) (valid JSON) fits a float64: RANGE_OVER
 * past +-DBL_MAX (jansson would fail with "real number overflow");
 * RANGE_UNDER when it is not zero but the float64 nearest to it keeps not
 * even its first significant digit: it is 0, or a subnormal further than
 * half a unit of that digit away (3e-324 becomes 4.9e-324).  Every float64
 * printed in its shortest form is within half a unit of its last digit, so
 * what `dump` writes always reads back.  *stored gets strtod's value.
 * Returns -1 out of memory. */
static int real_range(const char *s, size_t n, double *stored)
{
    char small[64], *t = n < sizeof small ? small : malloc(n + 1);
    if (!t)
        return -1;
    memcpy(t, s, n);
    t[n] = '\0';
    *stored = strtod(t, NULL);
    int kind = RANGE_OK;
    if (isinf(*stored)) {
        kind = RANGE_OVER;
    } else if (fabs(*stored) < DBL_MIN) {
        const char *m;
        /* a nonzero digit before the exponent: the decimal is not zero */
        for (m = t; *m && *m != 'e' && *m != 'E' && (*m < '1' || *m > '9');)
            m++;
        if (*m >= '1' && *m <= '9') {
            /* where long double has no wider range, d is *stored: only 0 is caught */
            long double d = fabsl(strtold(t, NULL));
            if (*stored == 0 ||
                (d > 0 && fabsl(fabs(*stored) - d) > powl(10, floorl(log10l(d))) / 2))
                kind = RANGE_UNDER;
        }
    }
    if (t != small)
        free(t);
    return kind;
}

/* In the copy of text (made on first use), replace the n bytes at start by
 * `with` plus spaces. */
static int blank(char **copy, const char *text, size_t len, size_t start, size_t n,
                 const char *with)
{
    size_t w = strlen(with);
    if (!*copy) {
        if ((*copy = malloc(len + 1)) == NULL)
            return -1;
        memcpy(*copy, text, len);
        (*copy)[len] = '\0';
    }
    memcpy(*copy + start, with, w);
    memset(*copy + start + w, ' ', n - w);
    return 0;
}

/* Find the integer tokens in (INT64_MAX, UINT64_MAX] and blank each to "0"
 * plus spaces in a copy (*copy, NULL if there were none), so jansson parses
 * the text with the same line and column numbers.  The first real token out
 * of float64's range is recorded in big->bad and blanked to "0.0" plus
 * spaces, so that the parsed tree can say which field it was.  Tracks only strings and
 * number tokens: outside strings, a run of number characters starting with
 * '-' or a digit is exactly one number token in any text jansson accepts,
 * and it is an integer token if it has no '.', 'e' or 'E'.  The structure
 * is left to jansson, which still rejects anything malformed. */
static int prescan(char **copy, bigints *big, const char *text, size_t len)
{
    size_t line = 1, line_start = 0;
    int in_string = 0;
    *copy = NULL;
    size_t i = 0;
    while (i < len) {
        char c = text[i];
        if (c == '\n') {
            line++;
            line_start = i + 1;
        }

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
            size_t start = i;
            while (i < len && text[i] && strchr("0123456789+-.eE", text[i]))
                i++;
            size_t j;
            int integer = 1;
            for (j = start + (c == '-'); j < i; j++)
                if (text[j] < '0' || text[j] > '9')
                    integer = 0;
            if (j == start + (c == '-'))
                continue;
            if (!integer) {
                /* only a long token or one with an exponent can leave the range */
                if (!big->bad.kind && (i - start > 300 || memchr(text + start, 'e', i - start) ||
                                          memchr(text + start, 'E', i - start)) &&
                    json_number(text + start, i - start)) {
                    double stored;
                    int kind = real_range(text + start, i - start, &stored);
                    if (kind < 0)
                        return -1;
                    if (kind != RANGE_OK) {
                        size_t n = i - start;
                        if (blank(copy, text, len, start, n, "0.0"))
                            return -1;
                        size_t col = 1;
                        for (size_t k = line_start; k < start; k++) /* jansson counts characters */
                            col += ((unsigned char)text[k] & 0xc0) != 0x80;
                        big->bad.kind = kind;
                        big->bad.ordinal = big->reals;
                        big->bad.line = line;
                        big->bad.column = col;
                        big->bad.stored = stored;
                        if (n >= sizeof big->bad.text)
                            snprintf(big->bad.text, sizeof big->bad.text, "%.20s...%.20s",
                                     text + start, text + i - 20);
                        else
                            snprintf(big->bad.text, sizeof big->bad.text, "%.*s", (int)n,
                                     text + start);
                    }
                }
                big->reals++;
                continue;
            }
            /* 19 digits can exceed INT64_MAX, 21 always exceed UINT64_MAX;
             * a leading zero is jansson's to reject. */
            if (c != '-' && c != '0' && i - start >= 19 && i - start <= 20) {
                char digits[24];
                memcpy(digits, text + start, i - start);
                digits[i - start] = '\0';
                errno = 0;
                unsigned long long v = strtoull(digits, NULL, 10);
                if (errno == 0 && v > (unsigned long long)INT64_MAX &&
                    (bigints_add(big, big->integers, v) ||
                     blank(copy, text, len, start, i - start, "0")))
                    return -1;
            }
            big->integers++;
            continue;
        }
        i++;
    }
    return 0;
}

typedef struct restore {
    const bigints *big;
    size_t seen, next;
} restore;

/* Walk v in document order (jansson keeps objects in insertion order),
 * counting integers; *repl gets the value for an integer prescan() blanked,
 * else NULL.  Returns 0, or -1 out of memory. */
static int put_back(json_t *v, json_t **repl, restore *r)
{
    *repl = NULL;
    json_t *e, *x;
    size_t i;
    void *it;
    switch (json_typeof(v)) {
    case JSON_INTEGER:
        if (r->next < r->big->n && r->big->v[r->next].ordinal == r->seen) {
            if ((*repl = udb_jansson_u64(r->big->v[r->next].value)) == NULL)
                return -1;
            r->next++;
        }
        r->seen++;
        return 0;
    case JSON_ARRAY:
        json_array_foreach(v, i, e) {
            if (put_back(e, &x, r) || (x && json_array_set_new(v, i, x)))
                return -1;
        }
        return 0;
    case JSON_OBJECT:
        for (it = json_object_iter(v); it; it = json_object_iter_next(v, it)) {
            if (put_back(json_object_iter_value(it), &x, r) ||
                (x && json_object_iter_set_new(v, it, x)))
                return -1;
        }
        return 0;
    default:
        return 0;
    }
}

/* The JSON pointer of the real number with the given ordinal (document
 * order) in v, into path[0..size).  Returns 1 once found, else 0. */
static int real_path(const json_t *v, size_t *ordinal, char *path, size_t size)
{
    size_t old = strlen(path), i;
    char seg[24];
    json_t *e;
    void *it;
    switch (json_typeof(v)) {
    case JSON_REAL:
        return (*ordinal)-- == 0;
    case JSON_ARRAY:
        json_array_foreach(v, i, e) {
            snprintf(seg, sizeof seg, "/%zu", i);
            if (old + strlen(seg) < size)
                strcpy(path + old, seg);
            if (real_path(e, ordinal, path, size))
                return 1;
            path[old] = '\0';
        }
        return 0;
    case JSON_OBJECT:
        for (it = json_object_iter((json_t *)v); it; it = json_object_iter_next((json_t *)v, it)) {
            const char *key = json_object_iter_key(it);
            size_t n = json_object_iter_key_len(it);
            if (old + 1 + n < size) {
                path[old] = '/';
                memcpy(path + old + 1, key, n);
                path[old + 1 + n] = '\0';
            }
            if (real_path(json_object_iter_value(it), ordinal, path, size))
                return 1;
            path[old] = '\0';
        }
        return 0;
    default:
        return 0;
    }
}

/* The message for big->bad, a real number float64 cannot hold, in tree v. */
static void range_error(char err[ERRLEN], const json_t *v, const bigints *big)
{
    char path[256] = "", where[300] = "";
    size_t ordinal = big->bad.ordinal;
    if (real_path(v, &ordinal, path, sizeof path) && path[0])
        snprintf(where, sizeof where, strchr(path + 1, '/') ? "at %s: " : "field \"%s\": ",
                 strchr(path + 1, '/') ? path : path + 1);
    if (big->bad.kind == RANGE_OVER) {
        seterr(err, "%s%s is out of the float64 range: finite numbers from "
               "-1.7976931348623157e308 to 1.7976931348623157e308 are allowed (infinity is "
               "{\"$float\": \"inf\"}) (line %zu, column %zu)",
               where, big->bad.text, big->bad.line, big->bad.column);
        return;
    }
    char stored[40];
    format_shortest(stored, big->bad.stored);
    seterr(err, "%s%s is too close to zero for a float64: it would be stored as %s, without "
           "even its first digit (a float64 holds 0 and magnitudes from "
           "4.9406564584124654e-324, printed 5e-324, to 1.7976931348623157e308, with fewer "
           "digits below 2.2250738585072014e-308) (line %zu, column %zu)",
           where, big->bad.text, stored, big->bad.line, big->bad.column);
}

static json_t *parse(const char *text, size_t len, char err[ERRLEN])
{
    bigints big = {0};
    char *copy = NULL;
    json_t *v = NULL;
    restore r = {&big, 0, 0};
    if (prescan(&copy, &big, text, len)) {
        seterr(err, "out of memory");
        goto out;
    }
    json_error_t jerr;
    v = json_loadb(copy ? copy : text, len,
                   JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!v) {
        if (json_error_code(&jerr) == json_error_numeric_overflow)
            seterr(err, "invalid JSON: integer out of range (-2^63 .. 2^64-1) at line %d",
                   jerr.line);
        else
            seterr(err, "invalid JSON: %s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
        goto out;
    }
    if (big.bad.kind) {
        range_error(err, v, &big);
        json_decref(v);
        v = NULL;
        goto out;
    }
    if (big.n == 0)
        goto out;
    json_t *x;
    if (put_back(v, &x, &r)) {
        seterr(err, "out of memory");
    } else if (r.next != big.n || r.seen != big.integers) {
        /* prescan() and jansson disagree on the tokens: a bug, never a guess */
        seterr(err, "invalid JSON: cannot place the integers above 2^63-1");
    } else {
        if (x) {
            json_decref(v);
            v = x;
        }
        goto out;
    }
    json_decref(x);
    json_decref(v);
    v = NULL;
out:
    free(big.v);
    free(copy);
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

/* The bytes of a {"$bin"|"$str": ...} marker, base64 in JSON string s,
 * packed as a msgpack bin or str. */
static int pack_b64(pack_ctx *c, const json_t *s, msgpack_object_type kind)
{
    const char *name = kind == MSGPACK_OBJECT_BIN ? "$bin" : "$str";
    unsigned char *bytes;
    size_t n;
    char what[64];
    if (!udb_jansson_text(s) ||
        udb__b64_decode(&bytes, &n, json_string_value(s), json_string_length(s))) {
        snprintf(what, sizeof what, "\"%s\" must be a base64 string (RFC 4648, padded)", name);
        return pack_fail(c, what);
    }
    int rc;
    if (n > UINT32_MAX)
        rc = -1;
    else if (kind == MSGPACK_OBJECT_BIN)
        rc = msgpack_pack_bin_with_body(&c->pk, bytes, n);
    else
        rc = msgpack_pack_str_with_body(&c->pk, bytes, n);
    free(bytes);
    if (rc) {
        snprintf(what, sizeof what, "\"%s\" value too large", name);
        return pack_fail(c, what);
    }
    return 0;
}

static int pack_special(pack_ctx *c, const json_t *v, int depth, int *done)
{
    *done = 1;
    const json_t *s;
    if ((s = special(v, "$bin")) != NULL)
        return pack_b64(c, s, MSGPACK_OBJECT_BIN);
    if (special(v, "$ext"))
        return pack_fail(c, "\"$ext\": msgpack extension values cannot be stored (records "
                            "hold no extension types)");
    if ((s = special(v, "$str")) != NULL)
        return pack_b64(c, s, MSGPACK_OBJECT_STR);
    if ((s = special(v, "$map")) != NULL) {
        if (!json_is_array(s) || json_array_size(s) > UINT32_MAX)
            return pack_fail(c, "\"$map\" must be an array of [key, value] pairs");
        const json_t *pair;
        size_t i;
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
    if ((s = special(v, "$float32")) != NULL) {
        const char *f = udb_jansson_text(s);
        if (f && strcmp(f, "nan") == 0)
            return msgpack_pack_float(&c->pk, NAN);
        if (f && strcmp(f, "inf") == 0)
            return msgpack_pack_float(&c->pk, INFINITY);
        if (f && strcmp(f, "-inf") == 0)
            return msgpack_pack_float(&c->pk, -INFINITY);
        uint64_t u;
        if (!json_is_number(s) && big_u64(s, &u) != 0)
            return pack_fail(c, "\"$float32\" must be a number, or \"nan\", \"inf\" or \"-inf\"");
        double d = json_is_number(s) ? json_number_value(s) : (double)u;
        /* FLT_MAX plus half its ulp: from there on, a double rounds to infinity */
        if (!(fabs(d) < 0x1.ffffffp+127))
            return pack_fail(c, "\"$float32\": out of the float32 range (finite numbers from "
                                "-3.4028235e38 to 3.4028235e38; infinity is \"inf\")");
        if (d != 0 && (float)d == 0)
            return pack_fail(c, "\"$float32\": too close to zero for a float32, it would be "
                                "stored as 0 (the smallest is 1.4e-45)");
        return msgpack_pack_float(&c->pk, (float)d);
    }
    if ((s = special(v, "$float")) != NULL) {
        const char *f = udb_jansson_text(s);
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
    uint64_t u;
    if (depth > MAX_DEPTH)
        return pack_fail(c, "nested too deeply");
    const char *key;
    size_t i, klen;
    json_t *e;
    int done;
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
        size_t n = json_string_length(v);
        if (big_u64(v, &u) == 0)
            return msgpack_pack_uint64(&c->pk, u);
        if (n > UINT32_MAX)
            return pack_fail(c, "string too long");
        return msgpack_pack_str_with_body(&c->pk, json_string_value(v), n);
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
            if (klen > UINT32_MAX)
                return pack_fail(c, "key too long");
            if (msgpack_pack_str_with_body(&c->pk, key, klen))
                return -1;
            size_t old = path_push(c, key, klen);
            int rc = pack_value(c, e, depth + 1);
            if (rc)
                return rc;
            c->path[old] = '\0';
        }
        return 0;
    }
    return pack_fail(c, "unsupported JSON value");
}

static int pack(msgpack_sbuffer *sb, const json_t *v, char err[ERRLEN])
{
    pack_ctx c;
    size_t start = sb->size;
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

/* ---- msgpack -> JSON value --------------------------------------------------- */

/* msgpack bytes from storage are untrusted (a damaged file).  They are read
 * here in one bounded pass straight into json_t, never through msgpack-c's
 * unpacker, which allocates a map or array by its declared count before it
 * knows the bytes exist: every element read consumes at least one byte, so
 * what is built is bounded by the input. */
typedef struct reader {
    const unsigned char *p, *end;
    char *err;
    int malformed;
} reader;

static json_t *rd_fail(reader *r)
{
    r->malformed = 1;
    return NULL;
}

/* The next n bytes, or NULL (marked malformed) if they are missing. */
static const unsigned char *rd_take(reader *r, uint64_t n)
{
    const unsigned char *p = r->p;
    if ((uint64_t)(r->end - r->p) < n) {
        r->malformed = 1;
        return NULL;
    }
    r->p += n;
    return p;
}

/* A big-endian unsigned number of n bytes (1, 2, 4 or 8). */
static int rd_be(reader *r, unsigned n, uint64_t *out)
{
    const unsigned char *p = rd_take(r, n);
    if (!p)
        return -1;
    *out = 0;
    for (unsigned i = 0; i < n; i++)
        *out = *out << 8 | p[i];
    return 0;
}

/* {"$bin"|"$str": "<base64>"} */
static json_t *bytes_json(const char *name, const unsigned char *p, size_t n)
{
    char *b64 = udb__b64_encode(p, n);
    json_t *r = b64 ? json_pack("{s s}", name, b64) : NULL;
    free(b64);
    return r;
}

/* The shortest text that reads back as exactly d, and reads as a real. */
static void format_double(char out[40], double d)
{
    format_shortest(out, d);
    if (!strpbrk(out, ".e"))
        strcat(out, ".0");
}

static json_t *real_json(double d)
{
    if (isnan(d))
        return json_pack("{s s}", "$float", "nan");
    if (isinf(d))
        return json_pack("{s s}", "$float", d > 0 ? "inf" : "-inf");
    return json_real(d);
}

/* {"$float32": n}, n the double nearest the shortest decimal that reads back
 * (as double, then float32) as exactly f; "nan", "inf", "-inf" for those. */
static json_t *float32_json(float f)
{
    if (isnan(f))
        return json_pack("{s s}", "$float32", "nan");
    if (isinf(f))
        return json_pack("{s s}", "$float32", f > 0 ? "inf" : "-inf");
    char text[40];
    for (int p = 1; p <= 9; p++) {
        snprintf(text, sizeof text, "%.*g", p, (double)f);
        if ((float)strtod(text, NULL) == f)
            break;
    }
    return json_pack("{s f}", "$float32", strtod(text, NULL));
}

static json_t *rd_value(reader *r, int depth);

static int is_marker_name(const char *k, size_t n)
{
    static const char *const names[] = {"$bin", "$ext", "$float", "$float32", "$str", "$map"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (n == strlen(names[i]) && memcmp(k, names[i], n) == 0)
            return 1;
    return 0;
}

/* A map of count pairs as a JSON object when JSON can hold it exactly;
 * otherwise (a key that is not a UTF-8 string, a key holding a NUL byte --
 * JSON can write it, but jansson cannot read it back as an object key --, a
 * duplicate key, or a lone key that would read back as one of our markers) as
 * {"$map": [[key, value], ...]}. */
static json_t *rd_map(reader *r, uint64_t count, int depth)
{
    json_t *pairs = json_array(), *obj = json_object(), *k, *v, *pair;
    if (!pairs || !obj)
        goto fail;
    int as_object = 1;
    for (uint64_t i = 0; i < count; i++) {
        /* a key is a plain string if msgpack says str and it is UTF-8 */
        unsigned char b = r->p < r->end ? *r->p : 0;
        int str_key = (b >= 0xa0 && b <= 0xbf) || (b >= 0xd9 && b <= 0xdb);
        if ((k = rd_value(r, depth + 1)) == NULL)
            goto fail;
        if ((v = rd_value(r, depth + 1)) == NULL) {
            json_decref(k);
            goto fail;
        }
        /* json_pack takes k and v over even when it fails */
        if ((pair = json_pack("[o o]", k, v)) == NULL || json_array_append_new(pairs, pair))
            goto fail;
        if (as_object && (!str_key || !json_is_string(k) ||
                          memchr(json_string_value(k), 0, json_string_length(k)) ||
                          json_object_getn(obj, json_string_value(k), json_string_length(k)) ||
                          (count == 1 && is_marker_name(json_string_value(k),
                                                        json_string_length(k))))) {
            as_object = 0;
            json_object_clear(obj);
        }
        if (as_object && json_object_setn(obj, json_string_value(k), json_string_length(k), v))
            goto fail;
    }
    if (as_object) {
        json_decref(pairs);
        return obj;
    }
    json_decref(obj);
    return json_pack("{s o}", "$map", pairs);
fail:
    json_decref(pairs);
    json_decref(obj);
    return NULL;
}

static json_t *rd_items(reader *r, uint64_t count, int map, int depth)
{
    json_t *e;
    if (count > (uint64_t)(r->end - r->p))
        return rd_fail(r); /* every element takes at least one byte */
    if (map)
        return rd_map(r, count, depth);
    json_t *a;
    if ((a = json_array()) == NULL)
        return NULL;
    for (uint64_t i = 0; i < count; i++) {
        if ((e = rd_value(r, depth + 1)) == NULL || json_array_append_new(a, e)) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

/* A str of n bytes: a JSON string if UTF-8, else {"$str": "<base64>"}. */
static json_t *rd_str(reader *r, uint64_t n)
{
    const unsigned char *p = rd_take(r, n);
    if (!p)
        return NULL;
    json_t *s = json_stringn((const char *)p, n);
    return s ? s : bytes_json("$str", p, n);
}

static json_t *rd_bin(reader *r, uint64_t n)
{
    const unsigned char *p = rd_take(r, n);
    return p ? bytes_json("$bin", p, n) : NULL;
}

static json_t *rd_value(reader *r, int depth)
{
    if (depth > MAX_DEPTH)
        return rd_fail(r);
    const unsigned char *p;
    if ((p = rd_take(r, 1)) == NULL)
        return NULL;
    unsigned char b = *p;
    if (b <= 0x7f)
        return json_integer(b);
    if (b >= 0xe0)
        return json_integer((int8_t)b);
    if (b <= 0x8f)
        return rd_items(r, b & 0x0f, 1, depth);
    if (b <= 0x9f)
        return rd_items(r, b & 0x0f, 0, depth);
    if (b <= 0xbf)
        return rd_str(r, b & 0x1f);
    uint64_t n;
    switch (b) {
    case 0xc0: return json_null();
    case 0xc2: return json_false();
    case 0xc3: return json_true();
    case 0xc4: return rd_be(r, 1, &n) ? NULL : rd_bin(r, n);
    case 0xc5: return rd_be(r, 2, &n) ? NULL : rd_bin(r, n);
    case 0xc6: return rd_be(r, 4, &n) ? NULL : rd_bin(r, n);
    case 0xca: {
        if (rd_be(r, 4, &n))
            return NULL;
        uint32_t bits = (uint32_t)n;
        float f;
        memcpy(&f, &bits, sizeof f);
        return float32_json(f);
    }
    case 0xcb: {
        double d;
        if (rd_be(r, 8, &n))
            return NULL;
        memcpy(&d, &n, sizeof d);
        return real_json(d);
    }
    case 0xcc: return rd_be(r, 1, &n) ? NULL : udb_jansson_u64(n);
    case 0xcd: return rd_be(r, 2, &n) ? NULL : udb_jansson_u64(n);
    case 0xce: return rd_be(r, 4, &n) ? NULL : udb_jansson_u64(n);
    case 0xcf: return rd_be(r, 8, &n) ? NULL : udb_jansson_u64(n);
    case 0xd0: return rd_be(r, 1, &n) ? NULL : json_integer((int8_t)n);
    case 0xd1: return rd_be(r, 2, &n) ? NULL : json_integer((int16_t)n);
    case 0xd2: return rd_be(r, 4, &n) ? NULL : json_integer((int32_t)n);
    case 0xd3: return rd_be(r, 8, &n) ? NULL : json_integer((json_int_t)(int64_t)n);
    case 0xd9: return rd_be(r, 1, &n) ? NULL : rd_str(r, n);
    case 0xda: return rd_be(r, 2, &n) ? NULL : rd_str(r, n);
    case 0xdb: return rd_be(r, 4, &n) ? NULL : rd_str(r, n);
    case 0xdc: return rd_be(r, 2, &n) ? NULL : rd_items(r, n, 0, depth);
    case 0xdd: return rd_be(r, 4, &n) ? NULL : rd_items(r, n, 0, depth);
    case 0xde: return rd_be(r, 2, &n) ? NULL : rd_items(r, n, 1, depth);
    case 0xdf: return rd_be(r, 4, &n) ? NULL : rd_items(r, n, 1, depth);
    case 0xc7: case 0xc8: case 0xc9:            /* ext 8/16/32 */
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: /* fixext */
        if (!r->err[0])
            seterr(r->err, "msgpack extension value (records hold no extension types)");
        return rd_fail(r);
    default: /* 0xc1: never used */
        return rd_fail(r);
    }
}

static json_t *unpack(const void *data, size_t len, char err[ERRLEN])
{
    reader r = {data, (const unsigned char *)data + len, err, 0};
    err[0] = '\0';
    json_t *v = rd_value(&r, 0);
    if (v && r.p != r.end) {
        json_decref(v);
        v = rd_fail(&r);
    }
    if (!v && !err[0] && r.malformed)
        seterr(err, "malformed msgpack value (%zu bytes)", len);
    else if (!v && !err[0])
        seterr(err, "out of memory");
    return v;
}

/* ---- JSON text out ------------------------------------------------------------ */

static int add_cb(const char *s, size_t n, void *b)
{
    return buf_add(b, s, n);
}

/* jansson's layout: with JSON_INDENT(n) a newline and depth * n spaces,
 * else (space) one space unless JSON_COMPACT. */
static int write_indent(buf *b, size_t flags, int depth, int space)
{
    static const char spaces[] = "                                ";
    size_t left = (size_t)depth * (flags & JSON_MAX_INDENT);
    if (!(flags & JSON_MAX_INDENT))
        return space && !(flags & JSON_COMPACT) ? buf_add(b, " ", 1) : 0;
    if (buf_add(b, "\n", 1))
        return -1;
    while (left > 0) {
        size_t n = left < sizeof spaces - 1 ? left : sizeof spaces - 1;
        if (buf_add(b, spaces, n))
            return -1;
        left -= n;
    }
    return 0;
}

/* An object key, escaped by jansson. */
static int write_key(buf *b, const char *key, size_t klen, size_t flags)
{
    json_t *s = json_stringn_nocheck(key, klen); /* keys are UTF-8: jansson checked them */
    int rc = s ? json_dump_callback(s, add_cb, b, flags | JSON_ENCODE_ANY) : -1;
    json_decref(s);
    return rc;
}

static int write_value(buf *b, const json_t *v, size_t flags, int depth)
{
    size_t i, n, klen;
    const char *key;
    json_t *e;
    uint64_t u;
    char text[40];
    switch (json_typeof(v)) {
    case JSON_REAL:
        format_double(text, json_real_value(v));
        return buf_add(b, text, strlen(text));
    case JSON_STRING:
        if (big_u64(v, &u) == 0) {
            snprintf(text, sizeof text, "%" PRIu64, u);
            return buf_add(b, text, strlen(text));
        }
        return json_dump_callback(v, add_cb, b, flags | JSON_ENCODE_ANY);
    case JSON_ARRAY:
        n = json_array_size(v);
        if (buf_add(b, "[", 1) || (n && write_indent(b, flags, depth + 1, 0)))
            return -1;
        json_array_foreach(v, i, e) {
            if (write_value(b, e, flags, depth + 1) ||
                (i + 1 < n ? buf_add(b, ",", 1) || write_indent(b, flags, depth + 1, 1)
                           : write_indent(b, flags, depth, 0)))
                return -1;
        }
        return buf_add(b, "]", 1);
    case JSON_OBJECT:
        n = json_object_size(v);
        i = 0;
        if (buf_add(b, "{", 1) || (n && write_indent(b, flags, depth + 1, 0)))
            return -1;
        json_object_keylen_foreach((json_t *)v, key, klen, e) {
            if (write_key(b, key, klen, flags) ||
                buf_add(b, ": ", flags & JSON_COMPACT ? 1 : 2) ||
                write_value(b, e, flags, depth + 1) ||
                (++i < n ? buf_add(b, ",", 1) || write_indent(b, flags, depth + 1, 1)
                         : write_indent(b, flags, depth, 0)))
                return -1;
        }
        return buf_add(b, "}", 1);
    default: /* null, true, false, integers */
        return json_dump_callback(v, add_cb, b, flags | JSON_ENCODE_ANY);
    }
}

/* ---- The calls of uniqdb_jansson.h and uniqdb.h ----------------------------- */

/* The code for a failed step: its message (err) made the thread's message. */
static int fail(const char *err)
{
    if (!err[0] || strcmp(err, "out of memory") == 0)
        return udb__env_err(UDB_ENOMEM, "out of memory converting between JSON and msgpack");
    return udb__env_err(UDB_EBADRECORD, "%s", err);
}

int udb_jansson_parse(json_t **out, const char *json, size_t len)
{
    if (!out || (!json && len))
        return udb__env_err(UDB_EINVAL, "udb_jansson_parse: out and json must not be NULL");
    char err[ERRLEN] = "";
    json_t *v = parse(json ? json : "", len, err);
    if (!v)
        return fail(err);
    *out = v;
    return 0;
}

/* v packed as a msgpack value: *out (malloc'd: udb_free), *out_len. */
static int pack_out(void **out, size_t *out_len, const json_t *v)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    char err[ERRLEN] = "";
    if (pack(&sb, v, err)) {
        msgpack_sbuffer_destroy(&sb);
        return fail(err);
    }
    *out = sb.data;
    *out_len = sb.size;
    return 0;
}

int udb_jansson_to_msgpack(void **out, size_t *out_len, const json_t *v)
{
    if (!out || !out_len || !v)
        return udb__env_err(UDB_EINVAL, "udb_jansson_to_msgpack: out, out_len and v must not "
                                        "be NULL");
    return pack_out(out, out_len, v);
}

int udb_jansson_from_msgpack(json_t **out, const void *mp, size_t len)
{
    if (!out || (!mp && len))
        return udb__env_err(UDB_EINVAL, "udb_jansson_from_msgpack: out and mp must not be NULL");
    char err[ERRLEN] = "";
    json_t *v = unpack(mp ? mp : "", len, err);
    if (!v)
        return fail(err);
    *out = v;
    return 0;
}

/* v as text with the layout of flags (UDB_JSON_INDENT). */
static int dump_out(char **out, size_t *out_len, const json_t *v, unsigned flags)
{
    buf b = {0};
    size_t jflags = flags ? JSON_INDENT(flags) : JSON_COMPACT;
    if (write_value(&b, v, jflags, 0)) {
        free(b.p);
        return udb__env_err(UDB_ENOMEM, "out of memory writing JSON");
    }
    *out = b.p;
    if (out_len)
        *out_len = b.len;
    return 0;
}

int udb_jansson_dumps(char **out, size_t *out_len, const json_t *v, unsigned flags)
{
    if (!out || !v || flags > UDB_JSON_INDENT(31))
        return udb__env_err(UDB_EINVAL, "udb_jansson_dumps: out and v must not be NULL; flags "
                                        "0 or UDB_JSON_INDENT(1 to 31)");
    return dump_out(out, out_len, v, flags);
}

int udb_json_to_msgpack(void **out, size_t *out_len, const char *json, size_t len)
{
    if (!out || !out_len || (!json && len))
        return udb__env_err(UDB_EINVAL, "udb_json_to_msgpack: out, out_len and json must not "
                                        "be NULL");
    json_t *v;
    int rc = udb_jansson_parse(&v, json, len);
    if (rc)
        return rc;
    rc = pack_out(out, out_len, v);
    json_decref(v);
    return rc;
}

int udb_msgpack_to_json(char **out, size_t *out_len, const void *mp, size_t len, unsigned flags)
{
    if (!out || (!mp && len) || flags > UDB_JSON_INDENT(31))
        return udb__env_err(UDB_EINVAL, "udb_msgpack_to_json: out and mp must not be NULL; "
                                        "flags 0 or UDB_JSON_INDENT(1 to 31)");
    json_t *v;
    int rc = udb_jansson_from_msgpack(&v, mp, len);
    if (rc)
        return rc;
    rc = dump_out(out, out_len, v, flags);
    json_decref(v);
    return rc;
}
