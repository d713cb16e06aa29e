/*
 * test_indexes.c -- unique, partial and non-unique indexes: compound keys,
 * scan order, NULLs, partial predicates on update, conflict detail, and that
 * every write moves (or frees) exactly the index entries it should.
 */
#include <stdlib.h>
#include <string.h>

#include "keycodec.h"
#include "layout.h"
#include "longkey.h"
#include "schema.h"
#include "txn.h"
#include "testutil.h"

static const char *const SCHEMA =
    "{`types`: {"
    "`item`: {`key`: `id`, `fields`: {`id`: {`type`: `uint`, `auto`: true},"
    "  `a`: {`type`: `str`}, `b`: {`type`: `str`}, `n`: {`type`: `int`},"
    "  `s`: {`type`: `str`}, `grp`: {`type`: `str`}, `w`: {`type`: `float`}},"
    "  `unique`: {`ab`: {`fields`: [`a`, `b`]}},"
    "  `indexes`: {`by_n`: {`fields`: [`n`]}, `by_s`: {`fields`: [`s`]},"
    "    `by_grp_n`: {`fields`: [`grp`, `n`]}, `by_w`: {`fields`: [`w`]}}},"
    "`neg`: {`key`: `k`, `fields`: {`k`: {`type`: `int`}, `tag`: {`type`: `str`}}},"
    "`slot`: {`key`: `id`, `fields`: {`id`: {`type`: `uint`, `auto`: true},"
    "  `room`: {`type`: `str`, `required`: true}, `day`: {`type`: `str`, `required`: true},"
    "  `state`: {`type`: `enum`, `values`: [`held`, `booked`, `cancelled`]},"
    "  `vip`: {`type`: `bool`}},"
    "  `unique`: {`active`: {`fields`: [`room`, `day`],"
    "    `where`: `state IN ('held', 'booked')`},"
    "   `vip_day`: {`fields`: [`day`], `where`: `vip = true AND state != 'cancelled'`}}},"
    "`nd`: {`key`: `id`, `fields`: {`id`: {`type`: `uint`, `auto`: true},"
    "  `x`: {`type`: `str`}, `y`: {`type`: `str`}},"
    "  `unique`: {`xy`: {`fields`: [`x`, `y`]}}},"
    "`nnd`: {`key`: `id`, `fields`: {`id`: {`type`: `uint`, `auto`: true},"
    "  `x`: {`type`: `str`}, `y`: {`type`: `str`}},"
    "  `unique`: {`xy`: {`fields`: [`x`, `y`], `nulls`: `not_distinct`}}},"
    "`multi`: {`key`: `code`, `fields`: {`code`: {`type`: `str`},"
    "  `email`: {`type`: `str`}, `phone`: {`type`: `str`}, `n`: {`type`: `int`}},"
    "  `unique`: {`phone`: {`fields`: [`phone`]}, `email`: {`fields`: [`email`]},"
    "    `pair`: {`fields`: [`email`, `n`]}}},"
    "`num`: {`key`: `id`, `fields`: {`id`: {`type`: `uint`, `auto`: true},"
    "  `w`: {`type`: `float`}, `ok`: {`type`: `bool`}, `raw`: {`type`: `bin`}},"
    "  `unique`: {`w`: {`fields`: [`w`]}, `ok_raw`: {`fields`: [`ok`, `raw`]}}}"
    "}}";

static void t_compound_keys_do_not_collide_across_boundaries(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    udb_txn *txn = tu_w(t);
    udb_val out;
    CHECK_OK(tu_ins(NULL, txn, "item", mp("{s:s, s:s}", "a", "ab", "b", "c")));
    CHECK_OK(tu_ins(NULL, txn, "item", mp("{s:s, s:s}", "a", "a", "b", "bc")));
    CHECK_OK(tu_ins(NULL, txn, "item", mp("{s:S, s:s}", "a", "a\0", (size_t)2, "b", "b")));
    CHECK_OK(tu_ins(NULL, txn, "item", mp("{s:s, s:S}", "a", "a", "b", "\0b", (size_t)2)));
    CHECK_OK(tu_find(&out, txn, "item", "ab", mp("[s, s]", "ab", "c")));
    CHECK(tu_fu(out, "id") == 1);
    CHECK_OK(tu_find(&out, txn, "item", "ab", mp("[s, s]", "a", "bc")));
    CHECK(tu_fu(out, "id") == 2);
    CHECK_OK(tu_find(&out, txn, "item", "ab", mp("[S, s]", "a\0", (size_t)2, "b")));
    CHECK(tu_fu(out, "id") == 3);
    CHECK_OK(tu_find(&out, txn, "item", "ab", mp("[s, S]", "a", "\0b", (size_t)2)));
    CHECK(tu_fu(out, "id") == 4);
    CHECK_RC(tu_find(&out, txn, "item", "ab", mp("[s, s]", "abc", "")), UDB_ENOTFOUND);
    CHECK_RC(tu_ins(NULL, txn, "item", mp("{s:s, s:s}", "a", "ab", "b", "c")), UDB_ECONFLICT);
    CHECK_STR(tu_conflict(txn), "item: ab(a, b)=[\"ab\",\"c\"] held by 1");
    /* a prefix scan of the compound index sees only whole first elements:
       ("a\0", "b") must not show up under the prefix ("a") */
    CHECK_STR(tu_scan(txn, "item", "ab", mp("[s]", "a"), "id"), "4,2");
    CHECK_STR(tu_scan(txn, "item", "ab", mp("[S]", "a\0", (size_t)2), "id"), "3");
    CHECK_STR(tu_scan(txn, "item", "ab", mp("[s]", "ab"), "id"), "1");
    tu_commit(txn);
}

static void t_scans_order_integers_numerically(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    udb_txn *txn = tu_w(t);
    static const long long ns[] = {300, -1, 0, -300, 5, -9223372036854775807ll - 1,
                                   9223372036854775807ll, -5, 256, -256, 5};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        CHECK_OK(tu_ins(NULL, txn, "item", mp("{s:I}", "n", ns[i])));
    /* a non-unique index: numeric order, ties in primary-key order */
    CHECK_STR(tu_scan(txn, "item", "by_n", NOVAL, "n"),
              "-9223372036854775808,-300,-256,-5,-1,0,5,5,256,300,9223372036854775807");
    CHECK_STR(tu_scan(txn, "item", "by_n", mp("[i]", 5), "id"), "5,11");
    /* an int primary key with negatives */
    static const long long ks[] = {3, -2, 0, -100000, 70000, -1, 1};
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++)
        CHECK_OK(tu_ins(NULL, txn, "neg", mp("{s:I}", "k", ks[i])));
    CHECK_STR(tu_scan(txn, "neg", NULL, NOVAL, "k"), "-100000,-2,-1,0,1,3,70000");
    CHECK_STR(tu_scan(txn, "neg", NULL, mp("[i]", -2), "k"), "-2");
    /* floats, ints stored in a float field among them */
    CHECK_OK(tu_ins(NULL, txn, "item", mp("{s:f}", "w", 2.5)));
    CHECK_OK(tu_ins(NULL, txn, "item", mp("{s:i}", "w", -3)));
    CHECK_OK(tu_ins(NULL, txn, "item", mp("{s:f}", "w", -0.5)));
    CHECK_OK(tu_ins(NULL, txn, "item", mp("{s:i}", "w", 2)));
    /* the records without w (NULL) come first, then numeric order */
    const char *nulls = tu_scan(txn, "item", "by_w", mp("[n]"), "w");
    CHECK_STR(nulls, "<absent>,<absent>,<absent>,<absent>,<absent>,<absent>,<absent>,"
                     "<absent>,<absent>,<absent>,<absent>");
    CHECK_STR(tu_scan(txn, "item", "by_w", NOVAL, "w"), tu_fmt("%s,-3.0,-0.5,2.0,2.5", nulls));
    CHECK_STR(tu_scan(txn, "item", "by_w", mp("[i]", 2), "w"), "2.0");   /* 2 finds 2.0 */
    tu_commit(txn);
}

static void t_scans_order_strings_bytewise(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    udb_txn *txn = tu_w(t);
    static const char *const ss[] = {"b", "a", "ab", "", "B", "\xc3\xa9", "aa", "a b", "~"};
    for (size_t i = 0; i < sizeof ss / sizeof ss[0]; i++)
        CHECK_OK(tu_ins(NULL, txn, "item", mp("{s:s}", "s", ss[i])));
    CHECK_OK(tu_ins(NULL, txn, "item", mp("{s:i}", "n", 1)));        /* s missing: NULL */
    CHECK_STR(tu_scan(txn, "item", "by_s", NOVAL, "s"),
              "<absent>,\"\",\"B\",\"a\",\"a b\",\"aa\",\"ab\",\"b\",\"~\",\"\xc3\xa9\"");
    CHECK_STR(tu_scan(txn, "item", "by_s", mp("[n]"), "n"), "1");   /* NULLs are scannable */
    /* string primary keys sort the same way */
    tu_commit(txn);
}

static void t_scan_with_prefix(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    udb_txn *txn = tu_w(t);
    CHECK_OK(tu_ins(NULL, txn, "item", mp("{s:s, s:i}", "grp", "g1", "n", 3)));
    CHECK_OK(tu_ins(NULL, txn, "item", mp("{s:s, s:i}", "grp", "g1", "n", -1)));
    CHECK_OK(tu_ins(NULL, txn, "item", mp("{s:s, s:i}", "grp", "g2", "n", 0)));
    CHECK_OK(tu_ins(NULL, txn, "item", mp("{s:s, s:i}", "grp", "g", "n", 9)));
    CHECK_OK(tu_ins(NULL, txn, "item", mp("{s:s, s:i}", "grp", "g1", "n", 2)));
    CHECK_STR(tu_scan(txn, "item", "by_grp_n", mp("[s]", "g1"), "n"), "-1,2,3");
    CHECK_STR(tu_scan(txn, "item", "by_grp_n", mp("[s]", "g"), "n"), "9");
    CHECK_STR(tu_scan(txn, "item", "by_grp_n", mp("[s, i]", "g1", 2), "id"), "5");
    CHECK_STR(tu_scan(txn, "item", "by_grp_n", mp("[s, i]", "g1", 7), "id"), "");
    CHECK_STR(tu_scan(txn, "item", "by_grp_n", mp("[s]", "h"), "id"), "");
    CHECK_STR(tu_scan(txn, "item", "by_grp_n", mp("[]"), "grp"),
              "\"g\",\"g1\",\"g1\",\"g1\",\"g2\"");
    CHECK_STR(tu_scan(txn, "item", NULL, mp("[U]", 3ull), "grp"), "\"g2\"");
    CHECK_STR(tu_scan(txn, "item", NULL, NOVAL, "id"), "1,2,3,4,5");
    /* bad prefixes */
    udb_cursor *c = NULL;
    udb_val p = mp("[s, i, i]", "g1", 1, 2);
    CHECK_RC(udb_scan(&c, txn, "item", "by_grp_n", p.data, p.size), UDB_EBADRECORD);
    p = mp("[i]", 5);
    CHECK_RC(udb_scan(&c, txn, "item", "by_grp_n", p.data, p.size), UDB_EBADRECORD);
    CHECK_HAS(udb_errmsg(txn), "field \"grp\": expected str");
    p = mp("s", "g1");
    CHECK_RC(udb_scan(&c, txn, "item", "by_grp_n", p.data, p.size), UDB_EBADRECORD);
    CHECK_RC(udb_scan(&c, txn, "item", "nope", NULL, 0), UDB_EINVAL);
    CHECK_RC(udb_scan(&c, txn, "nope", NULL, NULL, 0), UDB_EINVAL);
    CHECK(c == NULL);
    /* a cursor reports the end more than once */
    CHECK_OK(udb_scan(&c, txn, "item", "by_grp_n", NULL, 0));
    udb_val v;
    for (int i = 0; i < 5; i++)
        CHECK_OK(udb_cursor_next(&v, c));
    CHECK_RC(udb_cursor_next(&v, c), UDB_ENOTFOUND);
    CHECK_RC(udb_cursor_next(&v, c), UDB_ENOTFOUND);
    udb_cursor_close(c);
    tu_commit(txn);
}

static void t_partial_index_enter_and_leave(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    udb_txn *txn = tu_w(t);
    udb_val out;
    udb_val held = mp("{s:s, s:s, s:s}", "room", "r1", "day", "d1", "state", "held");
    CHECK_OK(tu_ins(NULL, txn, "slot", held));                                       /* 1 */
    CHECK_RC(tu_ins(NULL, txn, "slot", mp("{s:s, s:s, s:s}", "room", "r1", "day", "d1",
                                          "state", "booked")), UDB_ECONFLICT);
    CHECK_STR(tu_conflict(txn), "slot: active(room, day)=[\"r1\",\"d1\"] held by 1");
    /* outside the predicate: no conflict, not in the index (also with no state) */
    CHECK_OK(tu_ins(NULL, txn, "slot", mp("{s:s, s:s, s:s}", "room", "r1", "day", "d1",
                                          "state", "cancelled")));                    /* 2 */
    CHECK_OK(tu_ins(NULL, txn, "slot", mp("{s:s, s:s}", "room", "r1", "day", "d1")));  /* 3 */
    CHECK_STR(tu_scan(txn, "slot", "active", NOVAL, "id"), "1");
    /* cancelling 1 frees the slot in the same transaction */
    CHECK_OK(tu_upd(&out, txn, "slot", mp("U", 1ull), mp("{s:s}", "state", "cancelled"),
                    UDB_MERGE));
    CHECK_STR(tu_scan(txn, "slot", "active", NOVAL, "id"), "");
    CHECK_RC(tu_find(&out, txn, "slot", "active", mp("[s, s]", "r1", "d1")), UDB_ENOTFOUND);
    CHECK_OK(tu_ins(NULL, txn, "slot", held));                                       /* 4 */
    /* re-activating 1 now conflicts with 4, and changes nothing */
    CHECK_RC(tu_upd(&out, txn, "slot", mp("U", 1ull), mp("{s:s}", "state", "booked"),
                    UDB_MERGE), UDB_ECONFLICT);
    CHECK_STR(tu_conflict(txn), "slot: active(room, day)=[\"r1\",\"d1\"] held by 4");
    CHECK_OK(tu_get(&out, txn, "slot", mp("U", 1ull)));
    CHECK_STR(tu_field(out, "state"), "\"cancelled\"");
    /* 3 enters the predicate by gaining a state: checked like an insert too */
    CHECK_RC(tu_upd(&out, txn, "slot", mp("U", 3ull), mp("{s:s}", "state", "held"), UDB_MERGE),
             UDB_ECONFLICT);
    /* once 4 leaves (completed by deletion here), 1 may come back */
    CHECK_OK(tu_upd(&out, txn, "slot", mp("U", 4ull), mp("{s:s}", "state", "cancelled"),
                    UDB_MERGE));
    CHECK_OK(tu_upd(&out, txn, "slot", mp("U", 1ull), mp("{s:s}", "state", "booked"),
                    UDB_MERGE));
    CHECK_OK(tu_find(&out, txn, "slot", "active", mp("[s, s]", "r1", "d1")));
    CHECK(tu_fu(out, "id") == 1);
    /* staying inside the predicate while changing other fields keeps the entry */
    CHECK_OK(tu_upd(&out, txn, "slot", mp("U", 1ull), mp("{s:s}", "state", "held"), UDB_MERGE));
    CHECK_STR(tu_scan(txn, "slot", "active", NOVAL, "id"), "1");
    /* a predicate with AND, != and a bool: vip_day holds vip, non-cancelled slots */
    CHECK_OK(tu_ins(NULL, txn, "slot", mp("{s:s, s:s, s:b}", "room", "r9", "day", "d9",
                                          "vip", 1)));                  /* 5: state NULL */
    CHECK_OK(tu_ins(NULL, txn, "slot", mp("{s:s, s:s, s:s, s:b}", "room", "r8", "day", "d9",
                                          "state", "held", "vip", 1)));  /* 6 */
    CHECK_RC(tu_ins(NULL, txn, "slot", mp("{s:s, s:s, s:s, s:b}", "room", "r7", "day", "d9",
                                          "state", "booked", "vip", 1)), UDB_ECONFLICT);
    CHECK_STR(tu_conflict(txn), "slot: vip_day(day)=[\"d9\"] held by 6");
    CHECK_OK(tu_ins(NULL, txn, "slot", mp("{s:s, s:s, s:s, s:b}", "room", "r6", "day", "d9",
                                          "state", "cancelled", "vip", 1)));
    CHECK_OK(tu_ins(NULL, txn, "slot", mp("{s:s, s:s, s:s, s:b}", "room", "r5", "day", "d9",
                                          "state", "booked", "vip", 0)));
    CHECK_STR(tu_scan(txn, "slot", "vip_day", NOVAL, "id"), "6");
    tu_commit(txn);
}

static void t_nulls_distinct_and_not_distinct(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    udb_txn *txn = tu_w(t);
    udb_val out;
    /* NULLs distinct (SQL's default): records with a nil or missing part all go in */
    CHECK_OK(tu_ins(NULL, txn, "nd", mp("{s:s, s:n}", "x", "a", "y")));
    CHECK_OK(tu_ins(NULL, txn, "nd", mp("{s:s, s:n}", "x", "a", "y")));
    CHECK_OK(tu_ins(NULL, txn, "nd", mp("{s:s}", "x", "a")));
    CHECK_OK(tu_ins(NULL, txn, "nd", mp("{}")));
    CHECK_OK(tu_ins(NULL, txn, "nd", mp("{}")));
    CHECK_OK(tu_ins(NULL, txn, "nd", mp("{s:s, s:s}", "x", "a", "y", "b")));
    CHECK_RC(tu_ins(NULL, txn, "nd", mp("{s:s, s:s}", "x", "a", "y", "b")), UDB_ECONFLICT);
    CHECK_RC(tu_find(&out, txn, "nd", "xy", mp("[s, n]", "a")), UDB_ENOTFOUND);
    CHECK(tu_count(txn, "nd") == 6);
    /* NULLS NOT DISTINCT: a nil is a value like any other */
    CHECK_OK(tu_ins(NULL, txn, "nnd", mp("{s:s, s:n}", "x", "a", "y")));
    CHECK_RC(tu_ins(NULL, txn, "nnd", mp("{s:s}", "x", "a")), UDB_ECONFLICT);
    CHECK_STR(tu_conflict(txn), "nnd: xy(x, y)=[\"a\",null] held by 1");
    CHECK_OK(tu_ins(NULL, txn, "nnd", mp("{}")));
    CHECK_RC(tu_ins(NULL, txn, "nnd", mp("{s:n, s:n}", "x", "y")), UDB_ECONFLICT);
    CHECK_OK(tu_ins(NULL, txn, "nnd", mp("{s:s}", "y", "a")));
    CHECK_OK(tu_find(&out, txn, "nnd", "xy", mp("[s, n]", "a")));
    CHECK(tu_fu(out, "id") == 1);
    CHECK_OK(tu_find(&out, txn, "nnd", "xy", mp("[n, n]")));
    CHECK(tu_fu(out, "id") == 2);
    CHECK(tu_count(txn, "nnd") == 3);
    /* updating a nil into a value, and back, moves the entry */
    CHECK_OK(tu_upd(&out, txn, "nnd", mp("U", 1ull), mp("{s:s}", "y", "z"), UDB_MERGE));
    CHECK_OK(tu_ins(NULL, txn, "nnd", mp("{s:s}", "x", "a")));
    CHECK_RC(tu_upd(&out, txn, "nnd", mp("U", 1ull), mp("{s:n}", "y"), UDB_MERGE), UDB_ECONFLICT);
    tu_commit(txn);
}

/* The repro: a scan of a unique index with NULLs distinct returns
 * every record (SQL's ORDER BY over its fields, NULLs first, ties by key),
 * and a prefix with nil matches missing fields -- uniqueness unchanged. */
static void t_unique_index_scans_hold_null_records(tu *t)
{
    if (!tu_setup(t, "{`types`: {`t`: {`key`: `id`, `fields`: {`id`: {`type`: `uint`, "
                     "`auto`: true}, `s`: {`type`: `str`}, `n`: {`type`: `int`}}, "
                     "`unique`: {`dd`: {`fields`: [`s`, `n`]}}}}}"))
        return;
    udb_txn *txn = tu_w(t);
    CHECK_OK(tu_ins(NULL, txn, "t", mp("{s:s, s:i}", "s", "a", "n", 1)));    /* 1 */
    CHECK_OK(tu_ins(NULL, txn, "t", mp("{s:s, s:i}", "s", "a", "n", 2)));    /* 2 */
    CHECK_OK(tu_ins(NULL, txn, "t", mp("{s:s, s:i}", "s", "b", "n", 1)));    /* 3 */
    CHECK_OK(tu_ins(NULL, txn, "t", mp("{s:s}", "s", "k")));                 /* 4 */
    CHECK_OK(tu_ins(NULL, txn, "t", mp("{s:i}", "n", 5)));                   /* 5 */
    CHECK_OK(tu_ins(NULL, txn, "t", mp("{}")));                              /* 6 */
    CHECK_OK(tu_ins(NULL, txn, "t", mp("{s:s, s:n}", "s", "a", "n")));       /* 7 */
    tu_commit(txn);
    txn = tu_r(t);
    CHECK_STR(tu_scan(txn, "t", "dd", NOVAL, "id"), "6,5,7,1,2,3,4");
    CHECK_STR(tu_scan(txn, "t", "dd", mp("[s]", "k"), "id"), "4");
    CHECK_STR(tu_scan(txn, "t", "dd", mp("[n]"), "id"), "6,5");
    CHECK_STR(tu_scan(txn, "t", "dd", mp("[s, n]", "a"), "id"), "7");
    CHECK_STR(tu_scan(txn, "t", "dd", mp("[s]", "a"), "id"), "7,1,2");
    CHECK_STR(tu_scan(txn, "t", "dd", mp("[n, i]", 5), "id"), "5");
    CHECK_STR(tu_scan(txn, "t", "dd", mp("[s, i]", "a", 2), "id"), "2");
    tu_commit(txn);
    /* NULLs still never conflict; values still do */
    txn = tu_w(t);
    udb_val out;
    CHECK_OK(tu_ins(NULL, txn, "t", mp("{s:s}", "s", "k")));                 /* 8 */
    CHECK_OK(tu_ins(NULL, txn, "t", mp("{}")));                              /* 9 */
    CHECK_RC(tu_ins(NULL, txn, "t", mp("{s:s, s:i}", "s", "a", "n", 1)), UDB_ECONFLICT);
    CHECK_RC(tu_find(&out, txn, "t", "dd", mp("[s, n]", "k")), UDB_ENOTFOUND);
    int created = -1;
    CHECK_OK(udb_insert_or_get(&out, &created, txn, "t", "dd", mp("{s:s}", "s", "k").data,
                               mp("{s:s}", "s", "k").size));
    CHECK(created == 1);
    /* moving in and out of NULL moves the entry */
    CHECK_OK(tu_upd(NULL, txn, "t", mp("U", 8ull), mp("{s:i}", "n", 3), UDB_MERGE));
    CHECK_RC(tu_upd(NULL, txn, "t", mp("U", 9ull), mp("{s:s, s:i}", "s", "k", "n", 3), UDB_MERGE),
             UDB_ECONFLICT);
    CHECK_OK(tu_upd(NULL, txn, "t", mp("U", 8ull), mp("{s:n}", "n"), UDB_MERGE));
    CHECK_OK(tu_del(txn, "t", mp("U", 4ull)));
    CHECK_STR(tu_scan(txn, "t", "dd", mp("[s]", "k"), "id"), "8,10");
    tu_commit(txn);
}

static void t_every_violated_index_reported_in_order(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    udb_txn *txn = tu_w(t);
    CHECK_OK(tu_ins(NULL, txn, "multi", mp("{s:s, s:s, s:s, s:i}", "code", "c1", "email", "e1",
                                           "phone", "p1", "n", 1)));
    CHECK_OK(tu_ins(NULL, txn, "multi", mp("{s:s, s:s, s:s, s:i}", "code", "c2", "email", "e2",
                                           "phone", "p2", "n", -7)));
    /* collides on the key (c1), phone (c1), email (c2) and the pair (c2) */
    udb_val out = {"untouched", 9};
    CHECK_RC(tu_ins(&out, txn, "multi", mp("{s:s, s:s, s:s, s:i}", "code", "c1", "email", "e2",
                                           "phone", "p1", "n", -7)), UDB_ECONFLICT);
    CHECK(out.size == 9);
    /* primary key first, then the unique indexes as declared (phone before email) */
    CHECK_STR(tu_conflict(txn), "multi: code(code)=[\"c1\"] held by \"c1\"; "
                                "phone(phone)=[\"p1\"] held by \"c1\"; "
                                "email(email)=[\"e2\"] held by \"c2\"; "
                                "pair(email, n)=[\"e2\",-7] held by \"c2\"");
    CHECK_STR(udb_errmsg(txn), "duplicate key in unique index \"multi.code\": (code)=(c1) already "
                               "exists as code c1 (and 3 more unique indexes violated)");
    const udb_conflict *c = udb_conflict_info(txn);
    if (CHECK(c != NULL && c->count == 4)) {
        CHECK_STR(c->type, "multi");
        CHECK(c->indexes[3].nfields == 2);
        CHECK_STR(c->indexes[3].fields[1], "n");
    }
    /* only one conflict: the message names it alone */
    CHECK_RC(tu_ins(NULL, txn, "multi", mp("{s:s, s:s}", "code", "c3", "phone", "p2")),
             UDB_ECONFLICT);
    CHECK_STR(udb_errmsg(txn), "duplicate key in unique index \"multi.phone\": (phone)=(p2) "
                               "already exists as code c2");
    /* the conflict wrote nothing: c3 does not exist, its email is free */
    udb_val v;
    CHECK_RC(tu_get(&v, txn, "multi", mp("s", "c3")), UDB_ENOTFOUND);
    CHECK(udb_conflict_info(txn) == NULL);             /* cleared by the next operation */
    CHECK(tu_count(txn, "multi") == 2);
    /* and the transaction goes on */
    CHECK_OK(tu_ins(NULL, txn, "multi", mp("{s:s, s:s, s:s}", "code", "c3", "email", "e3",
                                           "phone", "p3")));
    tu_commit(txn);
    tu_check_db(t);
    txn = tu_r(t);
    CHECK(tu_count(txn, "multi") == 3);
    CHECK_STR(tu_scan(txn, "multi", "phone", NOVAL, "code"), "\"c1\",\"c2\",\"c3\"");
    tu_commit(txn);
}

static void t_conflict_on_a_later_index_writes_nothing(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    udb_txn *txn = tu_w(t);
    udb_val out;
    CHECK_OK(tu_ins(NULL, txn, "multi", mp("{s:s, s:s, s:s}", "code", "c1", "email", "e1",
                                           "phone", "p1")));
    /* new key, new phone, taken email: neither the record nor its phone entry appear */
    CHECK_RC(tu_ins(NULL, txn, "multi", mp("{s:s, s:s, s:s}", "code", "c2", "email", "e1",
                                           "phone", "p2")), UDB_ECONFLICT);
    CHECK_STR(tu_conflict(txn), "multi: email(email)=[\"e1\"] held by \"c1\"");
    CHECK_RC(tu_get(&out, txn, "multi", mp("s", "c2")), UDB_ENOTFOUND);
    CHECK_RC(tu_find(&out, txn, "multi", "phone", mp("[s]", "p2")), UDB_ENOTFOUND);
    /* a taken primary key with every unique key free: none of the entries stay (the LMDB
       backend puts them before the record, and takes them out again) */
    CHECK_RC(tu_ins(NULL, txn, "multi", mp("{s:s, s:s, s:s, s:i}", "code", "c1", "email", "e7",
                                           "phone", "p7", "n", 7)), UDB_ECONFLICT);
    CHECK_STR(tu_conflict(txn), "multi: code(code)=[\"c1\"] held by \"c1\"");
    CHECK_RC(tu_find(&out, txn, "multi", "phone", mp("[s]", "p7")), UDB_ENOTFOUND);
    CHECK_RC(tu_find(&out, txn, "multi", "email", mp("[s]", "e7")), UDB_ENOTFOUND);
    CHECK_RC(tu_find(&out, txn, "multi", "pair", mp("[s, i]", "e7", 7)), UDB_ENOTFOUND);
    CHECK_OK(tu_get(&out, txn, "multi", mp("s", "c1")));
    CHECK_STR(tu_render(out), "{\"code\":\"c1\",\"email\":\"e1\",\"phone\":\"p1\"}");
    /* the keys it left free are free: another record takes them */
    CHECK_OK(tu_ins(NULL, txn, "multi", mp("{s:s, s:s, s:s, s:i}", "code", "c7", "email", "e7",
                                           "phone", "p7", "n", 7)));
    /* an update that conflicts leaves the record and all its entries as they were */
    CHECK_OK(tu_ins(NULL, txn, "multi", mp("{s:s, s:s, s:s}", "code", "c3", "email", "e3",
                                           "phone", "p3")));
    CHECK_RC(tu_upd(&out, txn, "multi", mp("s", "c3"), mp("{s:s, s:s}", "phone", "p9",
                                                          "email", "e1"), UDB_MERGE),
             UDB_ECONFLICT);
    CHECK_RC(tu_find(&out, txn, "multi", "phone", mp("[s]", "p9")), UDB_ENOTFOUND);
    CHECK_OK(tu_find(&out, txn, "multi", "phone", mp("[s]", "p3")));
    CHECK_STR(tu_render(out), "{\"code\":\"c3\",\"email\":\"e3\",\"phone\":\"p3\"}");
    tu_commit(txn);
    tu_check_db(t);
}

static void t_update_moves_index_entries(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    udb_txn *txn = tu_w(t);
    udb_val out;
    CHECK_OK(tu_ins(NULL, txn, "item", mp("{s:s, s:s, s:i, s:s}", "a", "a1", "b", "b1", "n", 1,
                                          "grp", "g")));
    CHECK_OK(tu_upd(&out, txn, "item", mp("U", 1ull),
                    mp("{s:s, s:i}", "a", "a2", "n", 2), UDB_MERGE));
    /* the old unique key is free, the new one taken */
    CHECK_RC(tu_find(&out, txn, "item", "ab", mp("[s, s]", "a1", "b1")), UDB_ENOTFOUND);
    CHECK_OK(tu_find(&out, txn, "item", "ab", mp("[s, s]", "a2", "b1")));
    CHECK(tu_fu(out, "id") == 1);
    CHECK_OK(tu_ins(NULL, txn, "item", mp("{s:s, s:s}", "a", "a1", "b", "b1")));
    CHECK_RC(tu_ins(NULL, txn, "item", mp("{s:s, s:s}", "a", "a2", "b", "b1")), UDB_ECONFLICT);
    CHECK_STR(tu_conflict(txn), "item: ab(a, b)=[\"a2\",\"b1\"] held by 1");
    /* non-unique entries moved as well */
    CHECK_STR(tu_scan(txn, "item", "by_n", mp("[i]", 1), "id"), "");
    CHECK_STR(tu_scan(txn, "item", "by_n", mp("[i]", 2), "id"), "1");
    CHECK_STR(tu_scan(txn, "item", "by_grp_n", mp("[s]", "g"), "n"), "2");
    /* replacing without b takes the record out of the unique index (NULL) */
    CHECK_OK(tu_upd(&out, txn, "item", mp("U", 1ull), mp("{s:s}", "a", "a2"), 0));
    CHECK_RC(tu_find(&out, txn, "item", "ab", mp("[s, s]", "a2", "b1")), UDB_ENOTFOUND);
    CHECK_STR(tu_scan(txn, "item", "by_grp_n", NOVAL, "id"), "1,2");   /* equal NULLs: by key */
    tu_commit(txn);
}

static void t_delete_frees_keys(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    udb_txn *txn = tu_w(t);
    udb_val out;
    CHECK_OK(tu_ins(NULL, txn, "item", mp("{s:s, s:s, s:i}", "a", "x", "b", "y", "n", 4)));
    CHECK_OK(tu_ins(NULL, txn, "slot", mp("{s:s, s:s, s:s}", "room", "r", "day", "d",
                                          "state", "held")));
    CHECK_OK(tu_del(txn, "item", mp("U", 1ull)));
    CHECK_OK(tu_del(txn, "slot", mp("U", 1ull)));
    CHECK_RC(tu_find(&out, txn, "item", "ab", mp("[s, s]", "x", "y")), UDB_ENOTFOUND);
    CHECK_STR(tu_scan(txn, "item", "by_n", NOVAL, "id"), "");
    CHECK_OK(tu_ins(&out, txn, "item", mp("{s:s, s:s}", "a", "x", "b", "y")));
    CHECK(tu_fu(out, "id") == 2);
    CHECK_OK(tu_ins(NULL, txn, "slot", mp("{s:s, s:s, s:s}", "room", "r", "day", "d",
                                          "state", "booked")));
    tu_commit(txn);
}

static void t_find_on_unique_indexes(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    udb_txn *txn = tu_w(t);
    udb_val out;
    CHECK_OK(tu_ins(NULL, txn, "multi", mp("{s:s, s:s, s:i}", "code", "c1", "email", "e",
                                           "n", 5)));
    CHECK_OK(tu_find(&out, txn, "multi", "pair", mp("[s, i]", "e", 5)));
    CHECK_STR(tu_field(out, "code"), "\"c1\"");
    CHECK_OK(tu_find(&out, txn, "multi", "code", mp("[s]", "c1")));   /* the primary key */
    CHECK_OK(tu_find(&out, txn, "multi", NULL, mp("[s]", "c1")));
    CHECK_RC(tu_find(&out, txn, "multi", "pair", mp("[s]", "e")), UDB_EBADRECORD);
    CHECK_HAS(udb_errmsg(txn), "array of 2 values");
    CHECK_RC(tu_find(&out, txn, "multi", "pair", mp("[s, s]", "e", "5")), UDB_EBADRECORD);
    CHECK_RC(tu_find(&out, txn, "multi", "pair", mp("{s:s}", "email", "e")), UDB_EBADRECORD);
    CHECK_RC(tu_find(&out, txn, "multi", "nope", mp("[s]", "e")), UDB_EINVAL);
    CHECK_RC(tu_find(&out, txn, "item", "by_n", mp("[i]", 1)), UDB_EINVAL);
    CHECK_HAS(udb_errmsg(txn), "not unique");
    CHECK_RC(tu_find(&out, txn, "multi", "pair", mp("[s, i]", "e", 6)), UDB_ENOTFOUND);
    /* an index named as messages name it, qualified with its type, is the same index;
       a conflict names it as declared */
    CHECK_OK(tu_find(&out, txn, "multi", "multi.pair", mp("[s, i]", "e", 5)));
    CHECK_STR(tu_field(out, "code"), "\"c1\"");
    CHECK_OK(tu_find(&out, txn, "multi", "multi.code", mp("[s]", "c1")));
    CHECK_RC(tu_find(&out, txn, "multi", "item.pair", mp("[s, i]", "e", 5)), UDB_EINVAL);
    CHECK_RC(tu_find(&out, txn, "item", "item.by_n", mp("[i]", 1)), UDB_EINVAL);
    CHECK_HAS(udb_errmsg(txn), "index \"item.by_n\" is not unique");
    CHECK_RC(tu_ins(NULL, txn, "multi", mp("{s:s, s:s}", "code", "c2", "email", "e")),
             UDB_ECONFLICT);
    const udb_conflict *c = udb_conflict_info(txn);
    if (CHECK(c != NULL && c->count == 1))
        CHECK_STR(c->indexes[0].index, "email");
    CHECK_HAS(udb_errmsg(txn), "unique index \"multi.email\"");
    udb_cursor *cur = NULL;
    CHECK_OK(udb_scan(&cur, txn, "multi", "multi.email", NULL, 0));
    udb_cursor_close(cur);
    tu_commit(txn);
    /* in a read-only transaction too */
    txn = tu_r(t);
    CHECK_OK(tu_find(&out, txn, "multi", "email", mp("[s]", "e")));
    CHECK_STR(tu_field(out, "code"), "\"c1\"");
    tu_commit(txn);
}

static void t_float_bool_and_bin_keys(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    udb_txn *txn = tu_w(t);
    udb_val out;
    /* one number, one key: 1 and 1.0 collide, so do 0.0 and -0.0 */
    CHECK_OK(tu_ins(NULL, txn, "num", mp("{s:i}", "w", 1)));
    CHECK_RC(tu_ins(NULL, txn, "num", mp("{s:f}", "w", 1.0)), UDB_ECONFLICT);
    CHECK_RC(tu_ins(NULL, txn, "num", mp("{s:F}", "w", 1.0)), UDB_ECONFLICT);
    CHECK_OK(tu_ins(NULL, txn, "num", mp("{s:f}", "w", 0.0)));
    CHECK_RC(tu_ins(NULL, txn, "num", mp("{s:f}", "w", -0.0)), UDB_ECONFLICT);
    CHECK_OK(tu_ins(NULL, txn, "num", mp("{s:f}", "w", 1.0000000000000002)));
    CHECK_OK(tu_find(&out, txn, "num", "w", mp("[f]", 1.0)));
    CHECK(tu_fu(out, "id") == 1);
    CHECK_OK(tu_find(&out, txn, "num", "w", mp("[i]", 0)));
    CHECK(tu_fu(out, "id") == 2);
    /* bool and bin parts of a compound key */
    CHECK_OK(tu_ins(NULL, txn, "num", mp("{s:b, s:x}", "ok", 1, "raw", "\0", (size_t)1)));
    CHECK_OK(tu_ins(NULL, txn, "num", mp("{s:b, s:x}", "ok", 0, "raw", "\0", (size_t)1)));
    CHECK_OK(tu_ins(NULL, txn, "num", mp("{s:b, s:x}", "ok", 1, "raw", "\0\0", (size_t)2)));
    CHECK_RC(tu_ins(NULL, txn, "num", mp("{s:b, s:x}", "ok", 1, "raw", "\0", (size_t)1)),
             UDB_ECONFLICT);
    CHECK_STR(tu_conflict(txn), "num: ok_raw(ok, raw)=[true,<bin 1>] held by 4");
    /* records without ok and raw are in the index too, first (NULLs first) */
    CHECK_STR(tu_scan(txn, "num", "ok_raw", NOVAL, "id"), "1,2,3,5,4,6");
    tu_commit(txn);
}

static void count_report(const char *problem, void *ctx)
{
    (void)problem;
    ++*(size_t *)ctx;
}

/* The end-of-case udb_check() is only worth something if it sees damage:
 * remove an index entry and plant a stray one behind the engine's back. */
/* Keep the first report line matching "damaged" (malloc'd). */
static void keep_report(const char *problem, void *ctx)
{
    char **line = ctx;
    if (!*line && strstr(problem, "damaged"))
        *line = strdup(problem);
}

static void t_check_sees_index_damage(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    udb_txn *txn = tu_w(t);
    CHECK_OK(tu_ins(NULL, txn, "multi", mp("{s:s, s:s}", "code", "c1", "phone", "p1")));
    tu_commit(txn);
    tu_check_db(t);

    txn = tu_w(t);
    const udb_index *phone =
        udb__type_index(udb__schema_type(udb__txn_schema(txn), "multi"), "phone");
    udb_buf key = {0}, stray = {0}, pk = {0};
    udb__tk_str(&key, UDB_TK_STR, "p1", 2);
    udb__tk_str(&stray, UDB_TK_STR, "p2", 2);
    udb__tk_str(&pk, UDB_TK_STR, "c9", 2);
    MDB_val k = {key.len, key.p}, s2 = {stray.len, stray.p}, v = {pk.len, pk.p};
    CHECK_OK(mdb_del(udb__txn_mdb(txn), udb__dbi(udb__txn_schema(txn), phone), &k, NULL));
    CHECK_OK(mdb_put(udb__txn_mdb(txn), udb__dbi(udb__txn_schema(txn), phone), &s2, &v, 0));
    tu_commit(txn);
    size_t problems = 0, reported = 0;
    CHECK_RC(udb_check(&problems, t->env, count_report, &reported), UDB_ECORRUPT);
    CHECK(problems == 2 && reported == 2);

    /* repair, and the check is happy again */
    txn = tu_w(t);
    MDB_val own = {0, NULL};
    udb_buf c1 = {0};
    udb__tk_str(&c1, UDB_TK_STR, "c1", 2);
    own.mv_size = c1.len;
    own.mv_data = c1.p;
    CHECK_OK(mdb_put(udb__txn_mdb(txn), udb__dbi(udb__txn_schema(txn), phone), &k, &own, 0));
    CHECK_OK(mdb_del(udb__txn_mdb(txn), udb__dbi(udb__txn_schema(txn), phone), &s2, NULL));
    tu_commit(txn);
    udb__buf_free(&key);
    udb__buf_free(&stray);
    udb__buf_free(&pk);
    udb__buf_free(&c1);
}

/* A long key's entry (longkey.h) is checked like any other: a damaged
 * trailer, and an entry whose full key is not its record's, are found. */
static void t_check_sees_long_key_damage(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    char phone[601];
    memset(phone, '7', 600);
    phone[600] = 0;
    udb_txn *txn = tu_w(t);
    CHECK_OK(tu_ins(NULL, txn, "multi", mp("{s:s, s:s}", "code", "c1", "phone", phone)));
    tu_commit(txn);
    tu_check_db(t);
    txn = tu_w(t);
    const udb_index *ix = udb__type_index(udb__schema_type(udb__txn_schema(txn), "multi"),
                                          "phone");
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    unsigned char val[200];
    size_t n = 0;
    if (CHECK_OK(mdb_cursor_open(udb__txn_mdb(txn), udb__dbi(udb__txn_schema(txn), ix), &cur)) &&
        CHECK_OK(mdb_cursor_get(cur, &k, &v, MDB_FIRST)) && CHECK(k.mv_size == UDB_KEY_LONG) &&
        CHECK(v.mv_size < sizeof val)) {
        n = v.mv_size;
        memcpy(val, v.mv_data, n);
        /* the key's tail says '8' where the record has '7': not its entry
           (the tail ends in the string's 0x00 terminator, before the length) */
        val[n - 6] = '8';
        MDB_val nv = {n, val};
        CHECK_OK(mdb_cursor_put(cur, &k, &nv, MDB_CURRENT));
    }
    mdb_cursor_close(cur);
    tu_commit(txn);
    size_t problems = 0, reported = 0;
    CHECK_RC(udb_check(&problems, t->env, count_report, &reported), UDB_ECORRUPT);
    CHECK(problems == 2);   /* record missing from the index; entry not its record's */
    /* a trailer that claims more bytes than there are */
    txn = tu_w(t);
    if (CHECK_OK(mdb_cursor_open(udb__txn_mdb(txn), udb__dbi(udb__txn_schema(txn), ix), &cur)) &&
        CHECK_OK(mdb_cursor_get(cur, &k, &v, MDB_FIRST))) {
        val[n - 6] = '7';
        val[n - 4] = 0x7f;
        MDB_val nv = {n, val};
        CHECK_OK(mdb_cursor_put(cur, &k, &nv, MDB_CURRENT));
    }
    mdb_cursor_close(cur);
    tu_commit(txn);
    char *line = NULL;
    CHECK_RC(udb_check(&problems, t->env, keep_report, &line), UDB_ECORRUPT);
    CHECK(problems == 2);
    CHECK_HAS(line ? line : "", "damaged long-key entry");
    free(line);
    /* repaired, the check is happy again (the end-of-case check) */
    txn = tu_w(t);
    if (CHECK_OK(mdb_cursor_open(udb__txn_mdb(txn), udb__dbi(udb__txn_schema(txn), ix), &cur)) &&
        CHECK_OK(mdb_cursor_get(cur, &k, &v, MDB_FIRST))) {
        val[n - 4] = 0;
        MDB_val nv = {n, val};
        CHECK_OK(mdb_cursor_put(cur, &k, &nv, MDB_CURRENT));
    }
    mdb_cursor_close(cur);
    tu_commit(txn);
}

typedef struct progress_seen {
    size_t calls;
    uint64_t last_done, total;
    bool ordered;   /* done grew, total never changed */
} progress_seen;

static void note_progress(uint64_t done, uint64_t total, void *ctx)
{
    progress_seen *p = ctx;
    if (p->calls++ && (done <= p->last_done || total != p->total))
        p->ordered = false;
    p->last_done = done;
    p->total = total;
}

/* udb_check_progress counts records and index entries: 5000 records, each in
 * `phone`, `email` and `pair` (those without an email hold a NULL there). */
static int insert_multi(udb_txn *txn, void *ctx)
{
    int first = *(int *)ctx, rc = 0;
    for (int i = first; i < first + 1000 && !rc; i++) {
        char code[16], phone[16], email[24];
        snprintf(code, sizeof code, "c%d", i);
        snprintf(phone, sizeof phone, "p%d", i);
        snprintf(email, sizeof email, "e%d@x", i);
        udb_val rec = i % 2 ? mp("{s:s, s:s, s:i}", "code", code, "phone", phone, "n", i)
                            : mp("{s:s, s:s, s:s, s:i}", "code", code, "phone", phone,
                                 "email", email, "n", i);
        rc = tu_ins(NULL, txn, "multi", rec);
    }
    return rc;
}

static void t_check_reports_progress(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    for (int first = 0; first < 5000; first += 1000)
        CHECK_OK(udb_write(t->env, insert_multi, &first));
    progress_seen seen = {0, 0, 0, true};
    size_t problems = 99;
    CHECK_OK(udb_check_progress(&problems, t->env, NULL, note_progress, &seen));
    CHECK(problems == 0);
    CHECK(seen.ordered);
    CHECK(seen.total == 20000 && seen.last_done == 20000);
    CHECK(seen.calls == 20000 / 4096 + 1);   /* every 4096, and once at the end */
    /* no progress callback: the plain check */
    CHECK_OK(udb_check_progress(NULL, t->env, NULL, NULL, NULL));
}

TU_MAIN(TU_CASE(t_check_sees_index_damage), TU_CASE(t_check_sees_long_key_damage),
        TU_CASE(t_unique_index_scans_hold_null_records), TU_CASE(t_check_reports_progress),
        TU_CASE(t_compound_keys_do_not_collide_across_boundaries),
        TU_CASE(t_float_bool_and_bin_keys), TU_CASE(t_scans_order_integers_numerically),
        TU_CASE(t_scans_order_strings_bytewise), TU_CASE(t_scan_with_prefix),
        TU_CASE(t_partial_index_enter_and_leave), TU_CASE(t_nulls_distinct_and_not_distinct),
        TU_CASE(t_every_violated_index_reported_in_order),
        TU_CASE(t_conflict_on_a_later_index_writes_nothing), TU_CASE(t_update_moves_index_entries),
        TU_CASE(t_delete_frees_keys), TU_CASE(t_find_on_unique_indexes))
