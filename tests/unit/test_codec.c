/*
 * test_codec.c -- the internals every key and record passes through: the
 * order-preserving tuple codec (keycodec.c) and the untrusted-msgpack walker
 * (mpack.c), tested directly on bytes.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "keycodec.h"
#include "mpack.h"
#include "testutil.h"

/* LMDB's default key order: memcmp over the common length, shorter first. */
static int keycmp(const udb_buf *a, const udb_buf *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    int c = n ? memcmp(a->p, b->p, n) : 0;
    if (c)
        return c;
    return a->len < b->len ? -1 : a->len > b->len;
}

static const char *hex(const udb_buf *b)
{
    char *s = tu_keep(calloc(1, b->len * 2 + 1));
    for (size_t i = 0; i < b->len; i++)
        snprintf(s + 2 * i, 3, "%02x", b->p[i]);
    return s;
}

/* Encoded keys bufs[0..n) must sort strictly ascending. */
static void check_ascending(const udb_buf *bufs, size_t n, const char *what)
{
    for (size_t i = 1; i < n; i++)
        if (keycmp(&bufs[i - 1], &bufs[i]) >= 0)
            tu_fail(__FILE__, __LINE__, what, "element %zu (%s) does not sort before %zu (%s)",
                    i - 1, hex(&bufs[i - 1]), i, hex(&bufs[i]));
}

static void free_bufs(udb_buf *bufs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        udb__buf_free(&bufs[i]);
}

static void t_int_order(tu *t)
{
    (void)t;
    static const int64_t v[] = {
        INT64_MIN, INT64_MIN + 1, -(1ll << 40), -65537, -65536, -65535, -257, -256, -255,
        -2, -1, 0, 1, 2, 255, 256, 65535, 65536, 1ll << 40, INT64_MAX,
    };
    enum { N = sizeof v / sizeof v[0] };
    udb_buf b[N] = {{0}};
    for (size_t i = 0; i < N; i++) {
        udb__tk_int(&b[i], v[i]);
        /* decodes back to the same number */
        udb_telem e;
        udb_buf scratch = {0};
        const unsigned char *p = b[i].p;
        CHECK_OK(udb__tk_decode(&e, &scratch, &p, b[i].p + b[i].len));
        CHECK(p == b[i].p + b[i].len);
        if (v[i] < 0)
            CHECK(e.kind == UDB_TK_INT && e.v.i == v[i]);
        else
            CHECK(e.kind == UDB_TK_UINT && e.v.u == (uint64_t)v[i]);
        udb__buf_free(&scratch);
    }
    check_ascending(b, N, "signed integers sort numerically, negatives first");
    free_bufs(b, N);
}

static void t_uint_order_and_int_uint_agree(tu *t)
{
    (void)t;
    static const uint64_t v[] = {0, 1, 255, 256, (uint64_t)INT64_MAX, (uint64_t)INT64_MAX + 1,
                                 UINT64_MAX - 1, UINT64_MAX};
    enum { N = sizeof v / sizeof v[0] };
    udb_buf b[N] = {{0}};
    for (size_t i = 0; i < N; i++)
        udb__tk_uint(&b[i], v[i]);
    check_ascending(b, N, "unsigned integers sort numerically");
    /* one number, one key: int and uint encodings of a value agree */
    udb_buf a = {0};
    udb__tk_int(&a, 256);
    CHECK(a.len == b[3].len && memcmp(a.p, b[3].p, a.len) == 0);
    udb__buf_free(&a);
    free_bufs(b, N);
}

static void t_str_order_and_nul_escape(tu *t)
{
    (void)t;
    /* bytewise order, a prefix first; embedded NULs included */
    static const struct { const char *s; size_t n; } v[] = {
        {"", 0}, {"\0", 1}, {"\0\0", 2}, {"\0\xff", 2}, {"\x01", 1}, {"a", 1},
        {"a\0", 2}, {"a\0b", 3}, {"ab", 2}, {"b", 1}, {"\xc3\xa9", 2}, {"\xff", 1},
    };
    enum { N = sizeof v / sizeof v[0] };
    udb_buf b[N] = {{0}};
    for (size_t i = 0; i < N; i++) {
        udb__tk_str(&b[i], UDB_TK_STR, v[i].s, v[i].n);
        udb_telem e;
        udb_buf scratch = {0};
        const unsigned char *p = b[i].p;
        CHECK_OK(udb__tk_decode(&e, &scratch, &p, b[i].p + b[i].len));
        CHECK(e.kind == UDB_TK_STR && e.v.s.n == v[i].n &&
              (v[i].n == 0 || memcmp(scratch.p + e.v.s.off, v[i].s, v[i].n) == 0));
        const unsigned char *q = b[i].p;
        CHECK_OK(udb__tk_skip(&q, b[i].p + b[i].len));
        CHECK(q == b[i].p + b[i].len);
        udb__buf_free(&scratch);
    }
    check_ascending(b, N, "strings sort bytewise");
    free_bufs(b, N);
}

static void tuple2(udb_buf *b, const char *x, const char *y)
{
    udb__tk_str(b, UDB_TK_STR, x, strlen(x));
    if (y)
        udb__tk_str(b, UDB_TK_STR, y, strlen(y));
}

static void t_compound_boundaries(tu *t)
{
    (void)t;
    udb_buf ab_c = {0}, a_bc = {0}, a = {0}, ab = {0};
    tuple2(&ab_c, "ab", "c");
    tuple2(&a_bc, "a", "bc");
    tuple2(&a, "a", NULL);
    tuple2(&ab, "ab", NULL);
    CHECK(keycmp(&ab_c, &a_bc) != 0);
    CHECK(keycmp(&a_bc, &ab_c) < 0);    /* ("a", ..) sorts before ("ab", ..) */
    /* a tuple prefix is a byte prefix -- of its own extensions only */
    CHECK(a.len < a_bc.len && memcmp(a.p, a_bc.p, a.len) == 0);
    CHECK(!(a.len < ab_c.len && memcmp(a.p, ab_c.p, a.len) == 0));
    CHECK(ab.len < ab_c.len && memcmp(ab.p, ab_c.p, ab.len) == 0);
    /* NUL bytes at the boundary cannot fake one either */
    udb_buf n1 = {0}, n2 = {0};
    udb__tk_str(&n1, UDB_TK_STR, "a\0", 2);
    udb__tk_str(&n1, UDB_TK_STR, "b", 1);
    udb__tk_str(&n2, UDB_TK_STR, "a", 1);
    udb__tk_str(&n2, UDB_TK_STR, "\0b", 2);
    CHECK(keycmp(&n1, &n2) != 0);
    /* bytes and strings with equal content never meet */
    udb_buf s = {0}, x = {0};
    udb__tk_str(&s, UDB_TK_STR, "k", 1);
    udb__tk_str(&x, UDB_TK_BYTES, "k", 1);
    CHECK(keycmp(&s, &x) != 0);
    udb_buf all[] = {ab_c, a_bc, a, ab, n1, n2, s, x};
    free_bufs(all, sizeof all / sizeof all[0]);
}

static void t_float_order(tu *t)
{
    (void)t;
    static const double v[] = {-INFINITY, -1e300, -2.5, -1.0, -1e-300, 0.0, 1e-300, 1.0,
                               2.5, 1e300, INFINITY};
    enum { N = sizeof v / sizeof v[0] };
    udb_buf b[N] = {{0}};
    for (size_t i = 0; i < N; i++) {
        udb__tk_float(&b[i], v[i]);
        udb_telem e;
        udb_buf scratch = {0};
        const unsigned char *p = b[i].p;
        CHECK_OK(udb__tk_decode(&e, &scratch, &p, b[i].p + b[i].len));
        CHECK(e.kind == UDB_TK_FLOAT && e.v.f == v[i]);
        udb__buf_free(&scratch);
    }
    check_ascending(b, N, "doubles sort numerically");
    udb_buf neg0 = {0};
    udb__tk_float(&neg0, -0.0);
    CHECK(keycmp(&neg0, &b[5]) == 0);   /* -0.0 and 0.0 are one key */
    udb__buf_free(&neg0);
    free_bufs(b, N);
}

static void t_cross_type_order(tu *t)
{
    (void)t;
    enum { N = 9 };
    udb_buf b[N] = {{0}};
    udb__tk_nil(&b[0]);
    udb__tk_str(&b[1], UDB_TK_BYTES, "zz", 2);
    udb__tk_str(&b[2], UDB_TK_STR, "", 0);
    udb__tk_int(&b[3], INT64_MIN);
    udb__tk_int(&b[4], 0);
    udb__tk_uint(&b[5], UINT64_MAX);
    udb__tk_float(&b[6], -INFINITY);
    udb__tk_bool(&b[7], false);
    udb__tk_bool(&b[8], true);
    check_ascending(b, N, "nil < bytes < str < int < float < false < true");
    free_bufs(b, N);
}

static int decode_raw(const char *bytes, size_t n)
{
    udb_telem e;
    udb_buf scratch = {0};
    const unsigned char *p = (const unsigned char *)bytes;
    int rc = udb__tk_decode(&e, &scratch, &p, p + n);
    udb__buf_free(&scratch);
    return rc;
}

static void t_decode_rejects_damage(tu *t)
{
    (void)t;
    CHECK_RC(decode_raw("", 0), UDB_ECORRUPT);
    CHECK_RC(decode_raw("\x16\x01", 2), UDB_ECORRUPT);          /* 2-byte int, 1 byte there */
    CHECK_RC(decode_raw("\x02" "abc", 4), UDB_ECORRUPT);        /* string never terminated */
    CHECK_RC(decode_raw("\x21\x00\x00", 3), UDB_ECORRUPT);      /* short double */
    CHECK_RC(decode_raw("\x13\xff", 2), UDB_ECORRUPT);          /* "negative zero" */
    CHECK_RC(decode_raw("\x50", 1), UDB_ECORRUPT);              /* unknown type code */
    CHECK_RC(decode_raw("\x15\x07", 2), 0);
    const unsigned char s[] = {0x02, 'a', 0x00};
    const unsigned char *p = s;
    CHECK_RC(udb__tk_skip(&p, s + 2), UDB_ECORRUPT);            /* cut before terminator */
}

static void t_to_msgpack_roundtrip(tu *t)
{
    (void)t;
    udb_buf key = {0}, out = {0};
    udb__tk_int(&key, -300);
    udb__tk_uint(&key, 7);
    udb__tk_str(&key, UDB_TK_STR, "x\0y", 3);
    udb__tk_str(&key, UDB_TK_BYTES, "\0", 1);
    udb__tk_bool(&key, true);
    udb__tk_nil(&key);
    udb__tk_float(&key, -2.5);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &out, udb__buf_sbuffer_write);
    msgpack_pack_array(&pk, 7);
    const unsigned char *p = key.p, *end = key.p + key.len;
    for (int i = 0; i < 7; i++)
        CHECK_OK(udb__tk_to_msgpack(&pk, &p, end));
    CHECK(p == end);
    CHECK_STR(tu_render(mpraw(out.p, out.len)), "[-300,7,\"x\",<bin 1>,true,null,-2.5]");
    /* "x\0y" is rendered by %.*s up to the NUL; check the bytes themselves */
    CHECK(memchr(out.p, 'y', out.len) != NULL);
    udb__buf_free(&key);
    udb__buf_free(&out);
}

static int mpcheck(udb_val v, unsigned depth, const char **why)
{
    return udb__mp_check(v.data, v.size, depth, why);
}

static void t_mp_check_bombs(tu *t)
{
    (void)t;
    const char *why = NULL;
    CHECK_RC(mpcheck(mpraw("\xdd\xff\xff\xff\xff", 5), UDB_MAX_DEPTH, &why), UDB_EBADRECORD);
    CHECK_HAS(why, "count");
    CHECK_RC(mpcheck(mpraw("\xdf\xff\xff\xff\xff", 5), UDB_MAX_DEPTH, NULL), UDB_EBADRECORD);
    CHECK_RC(mpcheck(mpraw("\xdb\xff\xff\xff\xff", 5), UDB_MAX_DEPTH, NULL), UDB_EBADRECORD);
    CHECK_RC(mpcheck(mpraw("\xc6\xff\xff\xff\xff" "ab", 7), UDB_MAX_DEPTH, NULL), UDB_EBADRECORD);
    CHECK_RC(mpcheck(mpraw("\xc4", 1), UDB_MAX_DEPTH, NULL), UDB_EBADRECORD);  /* bin8, no length */
    CHECK_RC(mpcheck(mpraw("\xa5" "ab", 3), UDB_MAX_DEPTH, &why), UDB_EBADRECORD);
    CHECK_HAS(why, "truncated");
    CHECK_RC(mpcheck(mpraw("\x92\x01", 2), UDB_MAX_DEPTH, NULL), UDB_EBADRECORD);
    CHECK_RC(mpcheck(mpraw("\xc0\xc0", 2), UDB_MAX_DEPTH, &why), UDB_EBADRECORD);
    CHECK_HAS(why, "trailing");
    CHECK_RC(mpcheck(mpraw("\xc1", 1), UDB_MAX_DEPTH, NULL), UDB_EBADRECORD);
    CHECK_RC(mpcheck(mpraw("\xd4\x01\x02", 3), UDB_MAX_DEPTH, NULL), UDB_EBADRECORD); /* ext */
    CHECK_RC(udb__mp_check(NULL, 0, UDB_MAX_DEPTH, NULL), UDB_EBADRECORD);
    CHECK_RC(udb__mp_check("", 0, UDB_MAX_DEPTH, NULL), UDB_EBADRECORD);

    /* nesting: 100 arrays deep is refused; up to the limit is fine */
    unsigned char deep[101];
    memset(deep, 0x91, 100);
    deep[100] = 0xc0;
    CHECK_RC(mpcheck(mpraw(deep, sizeof deep), UDB_MAX_DEPTH, &why), UDB_EBADRECORD);
    CHECK_HAS(why, "deep");
    CHECK_RC(mpcheck(mpraw(deep + 100 - 4, 5), 4, NULL), 0);
    CHECK_RC(mpcheck(mpraw(deep + 100 - 5, 6), 4, NULL), UDB_EBADRECORD);

    /* well-formed values of every kind pass, and decode */
    udb_val ok = mp("{s:[i, I, U, f, F, b, n], s:x, s:{}, s:[]}", "a", -1, -5000000000ll,
                    18446744073709551615ull, 1.5, 2.5, 1, "b", "\0\1", (size_t)2, "c", "d");
    CHECK_RC(mpcheck(ok, UDB_MAX_DEPTH, NULL), 0);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    CHECK_RC(udb__mp_parse(&up, ok.data, ok.size, &why), 0);
    CHECK(up.data.type == MSGPACK_OBJECT_MAP && up.data.via.map.size == 4);
    msgpack_unpacked_destroy(&up);
}

/* udb__mp_unpack's zones are used again once udb__mp_done gives them back:
 * two records held at once never share one, a zone that grew comes back
 * usable, a failed unpack leaves nothing behind, and threads parsing at once
 * each keep their own values (ThreadSanitizer watches the hand-overs). */
static int uint_array_ok(const msgpack_object *o, uint32_t n, uint64_t base)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != n)
        return 0;
    for (uint32_t i = 0; i < n; i++)
        if (o->via.array.ptr[i].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
            o->via.array.ptr[i].via.u64 != base + i)
            return 0;
    return 1;
}

static udb_buf uint_array(uint32_t n, uint64_t base)
{
    udb_buf b = {0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, udb__buf_sbuffer_write);
    msgpack_pack_array(&pk, n);
    for (uint32_t i = 0; i < n; i++)
        msgpack_pack_uint64(&pk, base + i);
    return b;
}

static void *zone_worker(void *arg)
{
    uint64_t base = (uint64_t)(uintptr_t)arg * 1000000;
    long bad = 0;
    for (uint32_t round = 0; round < 300; round++) {
        udb_buf a = uint_array(3 + round % 50, base + round), c = uint_array(7, base + 500000);
        msgpack_unpacked x, y;
        msgpack_unpacked_init(&x);
        msgpack_unpacked_init(&y);
        if (udb__mp_unpack(&x, a.p, a.len) || udb__mp_unpack(&y, c.p, c.len))
            bad++;
        bad += !uint_array_ok(&x.data, 3 + round % 50, base + round);
        bad += !uint_array_ok(&y.data, 7, base + 500000);
        udb__mp_done(&x);
        bad += !uint_array_ok(&y.data, 7, base + 500000);   /* x's zone went back, not y's */
        udb__mp_done(&y);
        udb__buf_free(&a);
        udb__buf_free(&c);
    }
    return (void *)bad;
}

static void t_mp_zone_reuse(tu *t)
{
    (void)t;
    /* a zone made to grow well past its 8 KiB first chunk, then given back */
    udb_buf big = uint_array(5000, 1), small = uint_array(3, 40);
    msgpack_unpacked a, b;
    msgpack_unpacked_init(&a);
    msgpack_unpacked_init(&b);
    for (int round = 0; round < 3; round++) {
        CHECK_RC(udb__mp_unpack(&a, big.p, big.len), 0);
        CHECK(uint_array_ok(&a.data, 5000, 1));
        CHECK_RC(udb__mp_unpack(&b, small.p, small.len), 0);
        CHECK(a.zone != b.zone);
        CHECK(uint_array_ok(&a.data, 5000, 1) && uint_array_ok(&b.data, 3, 40));
        udb__mp_done(&a);
        CHECK(a.zone == NULL && a.data.type == MSGPACK_OBJECT_NIL);
        CHECK(uint_array_ok(&b.data, 3, 40));
        /* unpacking into a held one lets go of what it held first */
        CHECK_RC(udb__mp_unpack(&b, big.p, big.len), 0);
        CHECK(uint_array_ok(&b.data, 5000, 1));
        udb__mp_done(&b);
    }
    /* a failed unpack leaves nothing behind, even over a held one */
    CHECK_RC(udb__mp_unpack(&a, small.p, small.len), 0);
    CHECK_RC(udb__mp_unpack(&a, "\xc0\xc0", 2), UDB_EBADRECORD);
    CHECK(a.zone == NULL && a.data.type == MSGPACK_OBJECT_NIL);
    udb__mp_done(&a);   /* twice is harmless */
    udb__buf_free(&big);
    udb__buf_free(&small);

    pthread_t th[4];
    for (uintptr_t i = 0; i < 4; i++)
        CHECK(pthread_create(&th[i], NULL, zone_worker, (void *)(i + 1)) == 0);
    long bad = 0;
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(th[i], &r);
        bad += (long)r;
    }
    CHECK(bad == 0);
}

/* udb__mp_pack writes what msgpack-c's msgpack_pack_object writes, byte for
 * byte (records are stored and compared as bytes), at every header size's
 * edges; and objects it does not write itself still come out through pk. */
static void pack_same(const msgpack_object *o, const char *what, uint64_t v)
{
    udb_buf ours = {0}, theirs = {0};
    msgpack_packer pk, pt;
    msgpack_packer_init(&pk, &ours, udb__buf_sbuffer_write);
    msgpack_packer_init(&pt, &theirs, udb__buf_sbuffer_write);
    udb__buf_put(&ours, "x", 1);    /* after bytes already there */
    udb__buf_put(&theirs, "x", 1);
    udb__mp_pack(&pk, &ours, o);
    msgpack_pack_object(&pt, *o);
    if (ours.oom || ours.len != theirs.len || memcmp(ours.p, theirs.p, ours.len) != 0)
        tu_fail(__FILE__, __LINE__, "udb__mp_pack == msgpack_pack_object",
                "%s %llu: ours %s, msgpack-c's %s", what, (unsigned long long)v, hex(&ours),
                hex(&theirs));
    udb__buf_free(&ours);
    udb__buf_free(&theirs);
}

static void t_mp_pack_as_msgpack_c(tu *t)
{
    (void)t;
    /* unsigned header edges, and (negated, +-1) the signed ones: 32, 128,
       32768, 2^31 and 2^63 */
    static const uint64_t edges[] = {0,          1,          31,         32,        127,
                                     128,        255,        256,        32768,     65535,
                                     65536,      70000,      1ull << 31, UINT32_MAX,
                                     1ull << 32, INT64_MAX,  1ull << 63, UINT64_MAX};
    msgpack_object o;
    for (size_t i = 0; i < sizeof edges / sizeof *edges; i++) {
        o.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o.via.u64 = edges[i];
        pack_same(&o, "uint", edges[i]);
        if (edges[i] && edges[i] <= (uint64_t)INT64_MAX + 1) {
            /* -v, -v + 1 and -v - 1 around each edge */
            for (int d = -1; d <= 1; d++) {
                uint64_t m = edges[i] + (uint64_t)(int64_t)d;
                if (!m || m > (uint64_t)INT64_MAX + 1)
                    continue;
                o.type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
                o.via.i64 = (int64_t)(0 - m);
                pack_same(&o, "-int", m);
            }
        }
        /* a NEGATIVE_INTEGER made by hand with a value >= 0 (not from msgpack-c's
           unpacker, which never makes one) packs as msgpack_pack_int64 does */
        if (edges[i] <= INT64_MAX) {
            o.type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
            o.via.i64 = (int64_t)edges[i];
            pack_same(&o, "int >= 0", edges[i]);
        }
    }
    static const size_t lens[] = {0, 1, 31, 32, 255, 256, 65535, 65536, 70000};
    char *bytes = tu_keep(calloc(1, 70000));
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        o.type = MSGPACK_OBJECT_STR;
        o.via.str.size = (uint32_t)lens[i];
        o.via.str.ptr = lens[i] ? bytes : NULL;
        pack_same(&o, "str of length", lens[i]);
        o.type = MSGPACK_OBJECT_BIN;
        o.via.bin.size = (uint32_t)lens[i];
        o.via.bin.ptr = lens[i] ? bytes : NULL;
        pack_same(&o, "bin of length", lens[i]);
    }
    o.type = MSGPACK_OBJECT_NIL;
    pack_same(&o, "nil", 0);
    o.type = MSGPACK_OBJECT_BOOLEAN;
    for (int v = 0; v < 2; v++) {
        o.via.boolean = v;
        pack_same(&o, "bool", (uint64_t)v);
    }
    o.type = MSGPACK_OBJECT_FLOAT64;
    o.via.f64 = -0.0;
    pack_same(&o, "float64", 0);
    o.type = MSGPACK_OBJECT_FLOAT32;
    o.via.f64 = 1.5;
    pack_same(&o, "float32", 0);
    /* containers and ext go through the packer: a map of an array and an ext */
    udb_buf src = {0};
    msgpack_packer ps;
    msgpack_packer_init(&ps, &src, udb__buf_sbuffer_write);
    msgpack_pack_map(&ps, 2);
    msgpack_pack_str_with_body(&ps, "a", 1);
    msgpack_pack_array(&ps, 2);
    msgpack_pack_int(&ps, -70000);
    msgpack_pack_str_with_body(&ps, "bb", 2);
    msgpack_pack_str_with_body(&ps, "e", 1);
    msgpack_pack_ext_with_body(&ps, "\1\2\3", 3, 7);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    CHECK_RC(udb__mp_unpack(&up, src.p, src.len), 0);
    pack_same(&up.data, "map", 2);
    udb__mp_done(&up);
    udb__buf_free(&src);
}

/* Types of two object trees match, all the way down. */
static bool same_types(const msgpack_object *a, const msgpack_object *b)
{
    if (a->type != b->type)
        return false;
    if (a->type == MSGPACK_OBJECT_MAP) {
        if (a->via.map.size != b->via.map.size)
            return false;
        for (uint32_t i = 0; i < a->via.map.size; i++)
            if (!same_types(&a->via.map.ptr[i].key, &b->via.map.ptr[i].key) ||
                !same_types(&a->via.map.ptr[i].val, &b->via.map.ptr[i].val))
                return false;
    }
    if (a->type == MSGPACK_OBJECT_ARRAY) {
        if (a->via.array.size != b->via.array.size)
            return false;
        for (uint32_t i = 0; i < a->via.array.size; i++)
            if (!same_types(&a->via.array.ptr[i], &b->via.array.ptr[i]))
                return false;
    }
    return true;
}

/* udb__mp_parse (which decodes maps of scalars itself) gives what
 * udb__mp_check + msgpack-c's msgpack_unpack give: the same verdict and
 * reason, and objects of the same types that pack to the same bytes. */
static void parse_same(const void *buf, size_t len, const char *what)
{
    msgpack_unpacked ours;
    msgpack_unpacked_init(&ours);
    const char *why = NULL, *their_why = NULL;
    int rc = udb__mp_parse(&ours, buf, len, &why);
    int their = udb__mp_check(buf, len, UDB_MAX_DEPTH, &their_why);
    msgpack_zone z;
    msgpack_zone_init(&z, 1024);
    msgpack_object o = {0};
    if (!their) {
        size_t off = 0;
        if (msgpack_unpack(buf, len, &off, &z, &o) != MSGPACK_UNPACK_SUCCESS || off != len) {
            their = UDB_EBADRECORD;
            their_why = "msgpack rejected by the decoder";
        }
    }
    if (rc != their || (rc && strcmp(why ? why : "", their_why ? their_why : "") != 0))
        tu_fail(__FILE__, __LINE__, "udb__mp_parse's verdict == msgpack-c's",
                "%s: ours %d (%s), theirs %d (%s)", what, rc, why ? why : "", their,
                their_why ? their_why : "");
    else if (!rc) {
        udb_buf a = {0}, b = {0};
        msgpack_packer pa, pb;
        msgpack_packer_init(&pa, &a, udb__buf_sbuffer_write);
        msgpack_packer_init(&pb, &b, udb__buf_sbuffer_write);
        msgpack_pack_object(&pa, ours.data);
        msgpack_pack_object(&pb, o);
        if (!same_types(&ours.data, &o) || a.len != b.len || memcmp(a.p, b.p, a.len) != 0)
            tu_fail(__FILE__, __LINE__, "udb__mp_parse's objects == msgpack-c's", "%s: %s vs %s",
                    what, hex(&a), hex(&b));
        udb__buf_free(&a);
        udb__buf_free(&b);
    }
    udb__mp_done(&ours);
    msgpack_zone_destroy(&z);
}

#define PARSE_SAME(lit) parse_same(lit, sizeof lit - 1, #lit)

static void t_mp_parse_maps_as_msgpack_c(tu *t)
{
    (void)t;
    udb_buf r = {0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &r, udb__buf_sbuffer_write);
    static const int64_t ints[] = {0, 1, 127, 128, 255, 256, 65535, 65536, -1, -32, -33, -128,
                                   -129, -32768, -32769, INT32_MIN, (int64_t)INT32_MIN - 1,
                                   INT64_MIN, INT64_MAX};
    static const size_t lens[] = {0, 1, 31, 32, 255, 256, 70000};
    char *bytes = tu_keep(calloc(1, 70000));
    size_t n = 10 + sizeof ints / sizeof *ints + 2 * sizeof lens / sizeof *lens;
    msgpack_pack_map(&pk, n);
    size_t k = 0;
    char key[16];
#define KEY() (snprintf(key, sizeof key, "k%zu", k++), msgpack_pack_str_with_body(&pk, key, strlen(key)))
    KEY(), msgpack_pack_nil(&pk);
    KEY(), msgpack_pack_true(&pk);
    KEY(), msgpack_pack_false(&pk);
    KEY(), msgpack_pack_uint64(&pk, UINT64_MAX);
    KEY(), msgpack_pack_uint64(&pk, 1ull << 32);
    KEY(), msgpack_pack_float(&pk, 1.5f);
    KEY(), msgpack_pack_double(&pk, -0.0);
    KEY(), msgpack_pack_double(&pk, NAN);
    KEY(), msgpack_pack_float(&pk, -INFINITY);
    KEY(), udb__buf_put(&r, "\xd0\x05", 2);   /* int8 holding a positive value */
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++)
        KEY(), msgpack_pack_int64(&pk, ints[i]);
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        KEY(), msgpack_pack_str_with_body(&pk, bytes, lens[i]);
        KEY(), msgpack_pack_bin_with_body(&pk, bytes, lens[i]);
    }
#undef KEY
    CHECK(k == n);
    parse_same(r.p, r.len, "a map of every scalar");
    /* each of its lengths cut short, and a byte too many */
    for (size_t cut = 1; cut < r.len; cut += cut < 64 ? 1 : 997)
        parse_same(r.p, r.len - cut, "the map cut short");
    udb__buf_put(&r, "\xc0", 1);
    parse_same(r.p, r.len, "the map and a trailing byte");
    udb__buf_free(&r);
    PARSE_SAME("\x80");                                     /* empty */
    PARSE_SAME("\xde\x00\x01\xa1" "a\x01");                 /* map16 */
    PARSE_SAME("\xdf\x00\x00\x00\x01\xa1" "a\xa0");         /* map32, empty str */
    PARSE_SAME("\x82\x01\x02\xc3\xc2");                     /* keys not strings */
    PARSE_SAME("\x82\xa1" "a\x01\xa1" "a\x02");             /* a key twice */
    PARSE_SAME("\x81\xa1" "a\x92\x01\x02");                 /* an array value */
    PARSE_SAME("\x81\xa1" "a\x81\xa1" "b\xc0");             /* a map value */
    PARSE_SAME("\x81\xa1" "a\xd4\x01\x00");                 /* ext */
    PARSE_SAME("\x81\xa1" "a\xc1");                         /* 0xc1 */
    PARSE_SAME("\x8f\xa1" "a\x01");                         /* a count the bytes cannot hold */
    PARSE_SAME("\xdf\xff\xff\xff\xff\xa1" "a");             /* the same, map32 */
    PARSE_SAME("\x81\xa1" "a\xda\xff\xff" "abc");           /* a length past the end */
    PARSE_SAME("\x81\xa5" "a");                             /* a key past the end */
    PARSE_SAME("\x92\x01\x02");                             /* not a map */
    PARSE_SAME("\x05");
}

TU_MAIN(TU_CASE(t_int_order), TU_CASE(t_uint_order_and_int_uint_agree),
        TU_CASE(t_str_order_and_nul_escape), TU_CASE(t_compound_boundaries),
        TU_CASE(t_float_order), TU_CASE(t_cross_type_order), TU_CASE(t_decode_rejects_damage),
        TU_CASE(t_to_msgpack_roundtrip), TU_CASE(t_mp_check_bombs), TU_CASE(t_mp_zone_reuse),
        TU_CASE(t_mp_pack_as_msgpack_c), TU_CASE(t_mp_parse_maps_as_msgpack_c))
