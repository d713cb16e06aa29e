/*
 * test_json.c -- records as JSON (udb_json_to_msgpack, udb_msgpack_to_json,
 * uniqdb_jansson.h): every form the `uniqdb` tool documents, byte for byte
 * in both directions, every error with its message, and the calls used on a
 * real database (a JSON number into a float field, a bin field).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "uniqdb_jansson.h"

static const char *hexof(const void *p, size_t n)
{
    char *s = tu_keep(calloc(1, n * 2 + 1));
    for (size_t i = 0; i < n; i++)
        snprintf(s + 2 * i, 3, "%02x", ((const unsigned char *)p)[i]);
    return s;
}

/* json -> msgpack must be the bytes hex, and those bytes -> JSON must be out
 * (NULL: json itself). */
static void form(const char *json, const char *hex, const char *out)
{
    void *mp = NULL;
    size_t n = 0;
    if (!CHECK_OK(udb_json_to_msgpack(&mp, &n, json, strlen(json)))) {
        tu_fail(__FILE__, __LINE__, json, "%s", udb_env_errmsg(NULL));
        return;
    }
    if (strcmp(hexof(mp, n), hex) != 0)
        tu_fail(__FILE__, __LINE__, json, "packed as %s, expected %s", hexof(mp, n), hex);
    char *text = NULL;
    size_t len = 0;
    if (CHECK_OK(udb_msgpack_to_json(&text, &len, mp, n, 0))) {
        CHECK_STR(text, out ? out : json);
        CHECK(len == strlen(text));
        /* and the jansson-level calls, which the tool uses, say the same */
        json_t *v = NULL;
        char *again = NULL;
        if (CHECK_OK(udb_jansson_from_msgpack(&v, mp, n)) &&
            CHECK_OK(udb_jansson_dumps(&again, NULL, v, 0)))
            CHECK_STR(again, text);
        json_decref(v);
        udb_free(again);
    }
    udb_free(text);
    udb_free(mp);
}

static void t_forms(tu *t)
{
    (void)t;
    /* the record of README's "Records as JSON" */
    form("{\"psychologist\":\"p1\",\"date\":\"2026-01-15\",\"n\":1}",
         "83ac70737963686f6c6f67697374a27031a464617465aa323032362d30312d3135a16e01", NULL);
    form("[null,true,false,[],{}]", "95c0c3c29080", NULL);
    /* integers, exact to the ends of int64 and uint64 */
    form("0", "00", NULL);
    form("-1", "ff", NULL);
    form("128", "cc80", NULL);
    form("-33", "d0df", NULL);
    form("9007199254740993", "cf0020000000000001", NULL);
    form("9223372036854775807", "cf7fffffffffffffff", NULL);
    form("9223372036854775808", "cf8000000000000000", NULL);
    form("18446744073709551615", "cfffffffffffffffff", NULL);
    form("-9223372036854775808", "d38000000000000000", NULL);
    form("[18446744073709551614,{\"u\":18446744073709551615},1]",
         "93cffffffffffffffffe81a175cfffffffffffffffff01", NULL);
    /* reals: float64, shortest exact text, always with "." or "e" */
    form("0.1", "cb3fb999999999999a", NULL);
    form("1.0", "cb3ff0000000000000", NULL);
    form("1e2", "cb4059000000000000", "1e+02");   /* the shortest %g text */
    form("-0.0", "cb8000000000000000", NULL);
    form("5e-324", "cb0000000000000001", NULL);
    form("1.7976931348623157e308", "cb7fefffffffffffff", "1.7976931348623157e+308");
    form("{\"$float\":\"nan\"}", "cb7ff8000000000000", NULL);
    form("{\"$float\":\"inf\"}", "cb7ff0000000000000", NULL);
    form("{\"$float\":\"-inf\"}", "cbfff0000000000000", NULL);
    /* float32 */
    form("{\"$float32\":0.1}", "ca3dcccccd", NULL);
    form("{\"$float32\":0.30000001192092896}", "ca3e99999a", "{\"$float32\":0.3}");
    form("{\"$float32\":-0.0}", "ca80000000", NULL);
    form("{\"$float32\":\"nan\"}", "ca7fc00000", NULL);
    form("{\"$float32\":\"inf\"}", "ca7f800000", NULL);
    form("{\"$float32\":\"-inf\"}", "caff800000", NULL);
    /* bytes */
    form("{\"$bin\":\"AAH/\"}", "c4030001ff", NULL);
    form("{\"$bin\":\"\"}", "c400", NULL);
    form("{\"$str\":\"/w==\"}", "a1ff", NULL);                 /* a str that is not UTF-8 */
    /* strings: jansson's escapes, UTF-8 kept, NUL as \u0000 */
    form("\"a\\\"b\\\\\\u0000\xc3\xa9\"", "a76122625c00c3a9", NULL);
    form("\"\\u00e9\\ud83d\\ude00\"", "a6c3a9f09f9880", "\"\xc3\xa9\xf0\x9f\x98\x80\"");
    /* maps JSON cannot hold as objects */
    form("{\"$map\":[[1,\"a\"]]}", "8101a161", NULL);
    form("{\"$map\":[[\"a\",1],[\"a\",2]]}", "82a16101a16102", NULL);      /* duplicate key */
    form("{\"$map\":[[\"$bin\",\"x\"]]}", "81a42462696ea178", NULL);      /* a marker name */
    form("{\"$map\":[[\"a\\u0000b\",1]]}", "81a361006201", NULL);         /* a NUL in a key */
    form("{\"$map\":[[{\"$str\":\"/w==\"},null]]}", "81a1ffc0", NULL);
    form("{\"$map\":[]}", "80", "{}");
    /* two keys, one a marker name: an ordinary object */
    form("{\"$bin\":1,\"b\":2}", "82a42462696e01a16202", NULL);
    /* layout is not kept: compact output */
    form(" { \"a\" : [ 1 , 2 ] }\n", "81a161920102", "{\"a\":[1,2]}");
}

/* msgpack the JSON writer must print as text (the only forms of input that
 * JSON cannot give back byte for byte: wider encodings shrink, a NaN loses
 * its payload), and what that text packs to. */
static void t_noncanonical_msgpack(tu *t)
{
    (void)t;
    static const struct {
        const char *mp;
        size_t n;
        const char *json, *back;
    } c[] = {
        {"\xcf\x00\x00\x00\x00\x00\x00\x00\x05", 9, "5", "05"},
        {"\xd3\xff\xff\xff\xff\xff\xff\xff\xff", 9, "-1", "ff"},
        {"\xd9\x01x", 3, "\"x\"", "a178"},
        {"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x01", 9, "{\"$float\":\"nan\"}", "cb7ff8000000000000"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char *text = NULL;
        void *mp = NULL;
        size_t n;
        if (CHECK_OK(udb_msgpack_to_json(&text, NULL, c[i].mp, c[i].n, 0)) &&
            CHECK_STR(text, c[i].json) &&
            CHECK_OK(udb_json_to_msgpack(&mp, &n, text, strlen(text))))
            CHECK_STR(hexof(mp, n), c[i].back);
        udb_free(text);
        udb_free(mp);
    }
}

static void t_indent(tu *t)
{
    (void)t;
    udb_val v = mp("{s:[i, i], s:{}, s:[]}", "a", 1, 2, "b", "c");
    char *text = NULL;
    if (CHECK_OK(udb_msgpack_to_json(&text, NULL, v.data, v.size, UDB_JSON_INDENT(2))))
        CHECK_STR(text, "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": {},\n  \"c\": []\n}");
    udb_free(text);
}

/* json must be refused with UDB_EBADRECORD and a message holding each needle;
 * *out stays untouched. */
static void bad_json(const char *json, const char *needle1, const char *needle2)
{
    void *out = (void *)"untouched";
    size_t n = 12345;
    if (!CHECK_RC(udb_json_to_msgpack(&out, &n, json, strlen(json)), UDB_EBADRECORD))
        tu_fail(__FILE__, __LINE__, json, "was not refused");
    CHECK(strcmp((const char *)out, "untouched") == 0 && n == 12345);
    CHECK_HAS(udb_env_errmsg(NULL), needle1, needle2);
    /* the jansson-level calls refuse it with the same message */
    json_t *v = NULL;
    void *p = NULL;
    int rc = udb_jansson_parse(&v, json, strlen(json));
    if (rc == 0) {
        CHECK_RC(udb_jansson_to_msgpack(&p, &n, v), UDB_EBADRECORD);
        udb_free(p);
    } else {
        CHECK_RC(rc, UDB_EBADRECORD);
    }
    CHECK_HAS(udb_env_errmsg(NULL), needle1, needle2);
    json_decref(v);
}

static void t_json_errors(tu *t)
{
    (void)t;
    bad_json("{\"a\": 1,}", "invalid JSON", "(line 1, column 9)");
    bad_json("{\"a\": 1,\n \"b\": tru}", "invalid JSON", "line 2");
    bad_json("", "invalid JSON", "line 1");
    bad_json("{\"a\": 1} x", "invalid JSON", "end of file expected");
    bad_json("{\"a\": 1, \"a\": 2}", "invalid JSON", "duplicate");
    bad_json("18446744073709551616", "integer out of range", "-2^63 .. 2^64-1");
    bad_json("[-9223372036854775809]", "integer out of range", "line 1");
    bad_json("{\"f\": 1e400}", "field \"f\": 1e400 is out of the float64 range", "column 7");
    bad_json("{\"f\": [1e-400]}", "at /f/0: 1e-400 is too close to zero", "stored as 0");
    bad_json("{\"photo\": {\"$bin\": \"abc\"}}", "field \"photo\"",
             "\"$bin\" must be a base64 string");
    bad_json("{\"a\": [{\"$str\": 5}]}", "at /a/0", "\"$str\" must be a base64 string");
    bad_json("{\"x\": {\"$ext\": [1, \"AA==\"]}}", "field \"x\"", "extension");
    bad_json("{\"x\": {\"$float\": \"big\"}}", "field \"x\"", "\"$float\" must be");
    bad_json("{\"x\": {\"$float32\": 1e39}}", "field \"x\"", "out of the float32 range");
    bad_json("{\"x\": {\"$float32\": 1e-46}}", "field \"x\"", "too close to zero for a float32");
    bad_json("{\"x\": {\"$float32\": \"1\"}}", "field \"x\"", "\"$float32\" must be a number");
    bad_json("{\"x\": {\"$map\": [[1]]}}", "field \"x\"", "[key, value] pairs");
    bad_json("{\"x\": {\"$map\": {}}}", "field \"x\"", "[key, value] pairs");
    char deep[200] = "";
    for (int i = 0; i < 70; i++)
        strcat(deep, "[");
    for (int i = 0; i < 70; i++)
        strcat(deep, "]");
    bad_json(deep, "nested too deeply", "/0/0/0");
    /* json need not be NUL-terminated: only len bytes are read */
    void *mp = NULL;
    size_t n;
    if (CHECK_OK(udb_json_to_msgpack(&mp, &n, "[1]garbage", 3)))
        CHECK_STR(hexof(mp, n), "9101");
    udb_free(mp);
}

/* mp must be refused with UDB_EBADRECORD and a message holding needle. */
static void bad_msgpack(const char *mp, size_t n, const char *needle)
{
    char *out = (char *)"untouched";
    if (!CHECK_RC(udb_msgpack_to_json(&out, NULL, mp, n, 0), UDB_EBADRECORD))
        tu_fail(__FILE__, __LINE__, hexof(mp, n), "was not refused");
    CHECK_STR(out, "untouched");
    CHECK_HAS(udb_env_errmsg(NULL), needle);
    json_t *v = NULL;
    CHECK_RC(udb_jansson_from_msgpack(&v, mp, n), UDB_EBADRECORD);
    CHECK(v == NULL);
}

static void t_msgpack_errors(tu *t)
{
    (void)t;
    bad_msgpack("", 0, "malformed msgpack value (0 bytes)");
    bad_msgpack("\x92\x01", 2, "malformed msgpack value (2 bytes)");   /* truncated */
    bad_msgpack("\x01\x02", 2, "malformed");                           /* trailing byte */
    bad_msgpack("\xc1", 1, "malformed");                               /* never used */
    bad_msgpack("\xdd\xff\xff\xff\xff", 5, "malformed");               /* a count bomb */
    bad_msgpack("\xdb\xff\xff\xff\xff", 5, "malformed");               /* a length bomb */
    bad_msgpack("\x81\xa1k\xd4\x01\x00", 6, "msgpack extension value"); /* fixext 1 */
    bad_msgpack("\xc7\x00\x05", 3, "extension");                       /* ext 8 */
    char deep[80];
    memset(deep, 0x91, 70);
    deep[70] = 0x01;
    bad_msgpack(deep, 71, "malformed");                                /* deeper than 64 */
}

static void t_arguments(tu *t)
{
    (void)t;
    void *mp = NULL;
    size_t n;
    char *text = NULL;
    CHECK_RC(udb_json_to_msgpack(NULL, &n, "1", 1), UDB_EINVAL);
    CHECK_RC(udb_json_to_msgpack(&mp, NULL, "1", 1), UDB_EINVAL);
    CHECK_RC(udb_json_to_msgpack(&mp, &n, NULL, 1), UDB_EINVAL);
    CHECK_HAS(udb_env_errmsg(NULL), "udb_json_to_msgpack");
    CHECK_RC(udb_msgpack_to_json(NULL, NULL, "\x01", 1, 0), UDB_EINVAL);
    CHECK_RC(udb_msgpack_to_json(&text, NULL, NULL, 1, 0), UDB_EINVAL);
    CHECK_RC(udb_msgpack_to_json(&text, NULL, "\x01", 1, 32), UDB_EINVAL);
    CHECK_HAS(udb_env_errmsg(NULL), "UDB_JSON_INDENT");
    CHECK(mp == NULL && text == NULL);
    CHECK_RC(udb_jansson_parse(NULL, "1", 1), UDB_EINVAL);
    CHECK_RC(udb_jansson_to_msgpack(&mp, &n, NULL), UDB_EINVAL);
    CHECK_RC(udb_jansson_from_msgpack(NULL, "\x01", 1), UDB_EINVAL);
    CHECK_RC(udb_jansson_dumps(&text, NULL, NULL, 0), UDB_EINVAL);
}

/* The jansson-level form of integers above INT64_MAX. */
static void t_jansson_u64(tu *t)
{
    (void)t;
    json_t *big = udb_jansson_u64(UINT64_MAX), *small = udb_jansson_u64(7), *v = NULL;
    uint64_t u = 0;
    CHECK(big && small && json_is_integer(small));
    CHECK(udb_jansson_text(big) == NULL);       /* not a string to its readers */
    CHECK(udb_jansson_to_u64(&u, big) == 0 && u == UINT64_MAX);
    CHECK(udb_jansson_to_u64(&u, small) == 0 && u == 7);
    json_t *neg = json_integer(-1), *str = json_string("5");
    CHECK_RC(udb_jansson_to_u64(&u, neg), UDB_EINVAL);
    CHECK_RC(udb_jansson_to_u64(&u, str), UDB_EINVAL);
    CHECK_STR(udb_jansson_text(str), "5");
    /* parsed text gives the same form; the writer prints digits */
    char *text = NULL;
    if (CHECK_OK(udb_jansson_parse(&v, "[18446744073709551615, 0.1]", 27))) {
        CHECK(udb_jansson_to_u64(&u, json_array_get(v, 0)) == 0 && u == UINT64_MAX);
        json_array_append(v, big);
        if (CHECK_OK(udb_jansson_dumps(&text, NULL, v, 0)))
            CHECK_STR(text, "[18446744073709551615,0.1,18446744073709551615]");
    }
    udb_free(text);
    json_decref(v);
    json_decref(big);
    json_decref(small);
    json_decref(neg);
    json_decref(str);
}

static const char BOOKINGS[] =
    "{`types`: {`booking`: {`key`: `id`, `fields`: {"
    "`id`: {`type`: `uint`, `auto`: true},"
    "`psychologist`: {`type`: `str`, `required`: true},"
    "`date`: {`type`: `str`, `required`: true},"
    "`time`: {`type`: `str`, `required`: true},"
    "`status`: {`type`: `enum`, `values`: [`pending`, `confirmed`, `cancelled`],"
    " `required`: true},"
    "`fee`: {`type`: `float`}, `photo`: {`type`: `bin`}, `note`: {`type`: `any`}},"
    "`unique`: {`active_slot`: {`fields`: [`psychologist`, `date`, `time`],"
    " `where`: `status IN ('pending', 'confirmed')`}}}}}";

/* JSON in, JSON out of a real database; conversion knows no schema, the
 * record calls check what it packs. */
static void t_database(tu *t)
{
    tu_setup(t, BOOKINGS);
    udb_txn *txn = tu_w(t);
    const char *rec = "{\"psychologist\": \"p1\", \"date\": \"2026-01-15\", \"time\": \"10:00\", "
                      "\"status\": \"pending\", \"fee\": 80, \"photo\": {\"$bin\": \"AAE=\"}, "
                      "\"note\": {\"big\": 18446744073709551615, \"x\": -0.0}}";
    void *mp = NULL;
    size_t n;
    udb_val out;
    char *text = NULL;
    if (CHECK_OK(udb_json_to_msgpack(&mp, &n, rec, strlen(rec))) &&
        CHECK_OK(udb_insert(&out, txn, "booking", mp, n)) &&
        CHECK_OK(udb_msgpack_to_json(&text, NULL, out.data, out.size, 0)))
        /* the integer 80 is stored as the float 80.0 (the float field's rule), printed
           in the shortest text that reads back exactly */
        CHECK_STR(text, "{\"id\":1,\"psychologist\":\"p1\",\"date\":\"2026-01-15\","
                        "\"time\":\"10:00\",\"status\":\"pending\",\"fee\":8e+01,"
                        "\"photo\":{\"$bin\":\"AAE=\"},"
                        "\"note\":{\"big\":18446744073709551615,\"x\":-0.0}}");
    udb_free(mp);
    udb_free(text);
    text = NULL;
    mp = NULL;
    /* the same slot again: the conflict's values and holder, as JSON */
    if (CHECK_OK(udb_json_to_msgpack(&mp, &n, rec, strlen(rec))) &&
        CHECK_RC(udb_insert(NULL, txn, "booking", mp, n), UDB_ECONFLICT)) {
        const udb_conflict *c = udb_conflict_info(txn);
        char *key = NULL;
        if (CHECK(c && c->count == 1) &&
            CHECK_OK(udb_msgpack_to_json(&text, NULL, c->indexes[0].values.data,
                                         c->indexes[0].values.size, 0)) &&
            CHECK_OK(udb_msgpack_to_json(&key, NULL, c->indexes[0].existing_key.data,
                                         c->indexes[0].existing_key.size, 0))) {
            CHECK_STR(text, "[\"p1\",\"2026-01-15\",\"10:00\"]");
            CHECK_STR(key, "1");
        }
        udb_free(key);
    }
    udb_free(mp);
    udb_free(text);
    mp = NULL;
    /* a bin field wants {"$bin": ...}: a JSON string is a msgpack str */
    const char *str_photo = "{\"psychologist\": \"p2\", \"date\": \"d\", \"time\": \"t\", "
                            "\"status\": \"pending\", \"photo\": \"AAE=\"}";
    if (CHECK_OK(udb_json_to_msgpack(&mp, &n, str_photo, strlen(str_photo))))
        CHECK_RC(udb_insert(NULL, txn, "booking", mp, n), UDB_EBADRECORD);
    CHECK_HAS(udb_errmsg(txn), "photo");
    udb_free(mp);
    /* a key from JSON */
    mp = NULL;
    if (CHECK_OK(udb_json_to_msgpack(&mp, &n, "1", 1)))
        CHECK_OK(udb_get(&out, txn, "booking", mp, n));
    udb_free(mp);
    tu_commit(txn);
}

TU_MAIN(TU_CASE(t_forms), TU_CASE(t_noncanonical_msgpack), TU_CASE(t_indent),
        TU_CASE(t_json_errors), TU_CASE(t_msgpack_errors), TU_CASE(t_arguments),
        TU_CASE(t_jansson_u64), TU_CASE(t_database))
