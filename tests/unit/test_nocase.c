/*
 * test_nocase.c -- "collate": "nocase" index fields (SQLite's NOCASE): ASCII
 * letters compare without case in unique and plain indexes, the record keeps
 * its own spelling, find and scan prefixes match in any case, the conflict
 * detail shows the holder's values, non-ASCII bytes are never folded, NULLs
 * behave as before, the schema text round-trips, adding or removing the
 * collation is a redefinition under KEEP/DROP, and udb_check verifies the fold.
 *
 * UDB_NOCASE_CONTROL=1 (the negative control, test 'nocase-control', which
 * must fail): after every insert of the case t_control_unfolded the test
 * rewrites the record's nocase index entry unfolded, as an engine without
 * the fold would write it; the case's expectations and the end-of-case
 * udb_check must then fail.
 */
#include <stdlib.h>
#include <string.h>

#include "keycodec.h"
#include "layout.h"
#include "schema.h"
#include "txn.h"
#include "testutil.h"

#define FIELDS                                                                             \
    "`fields`: {`id`: {`type`: `uint`, `auto`: true}, `email`: {`type`: `str`},"         \
    "  `org`: {`type`: `str`}, `n`: {`type`: `int`}, `tag`: {`type`: `str`}}"

static const char *const SCHEMA =
    "{`types`: {`user`: {`key`: `id`, " FIELDS ","
    "  `unique`: {`email`: {`fields`: [{`field`: `email`, `collate`: `nocase`}]},"
    "    `org_tag`: {`fields`: [`org`, {`field`: `tag`, `collate`: `nocase`}]}},"
    "  `indexes`: {`by_tag`: {`fields`: [{`field`: `tag`, `collate`: `nocase`}, `n`]}}}}}";

/* org_tag with NULLS NOT DISTINCT. */
static const char *const NND =
    "{`types`: {`user`: {`key`: `id`, " FIELDS ","
    "  `unique`: {`email`: {`fields`: [{`field`: `email`, `collate`: `nocase`}]},"
    "    `org_tag`: {`fields`: [`org`, {`field`: `tag`, `collate`: `nocase`}],"
    "                `nulls`: `not_distinct`}}}}}";

/* The same type with a plain (case-sensitive) unique email index. */
static const char *const PLAIN =
    "{`types`: {`user`: {`key`: `id`, " FIELDS ","
    "  `unique`: {`email`: {`fields`: [`email`]}}}}}";
static const char *const NOCASE_ONLY =
    "{`types`: {`user`: {`key`: `id`, " FIELDS ","
    "  `unique`: {`email`: {`fields`: [{`field`: `email`, `collate`: `nocase`}]}}}}}";

static void t_conflict_in_other_case(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    udb_txn *txn = tu_w(t);
    CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:s}", "email", "ana@example.com")));
    CHECK_RC(tu_ins(NULL, txn, "user", mp("{s:s}", "email", "Ana@Example.com")), UDB_ECONFLICT);
    /* the detail holds the values as the holder stores them */
    CHECK_STR(tu_conflict(txn), "user: email(email)=[\"ana@example.com\"] held by 1");
    CHECK_HAS(udb_errmsg(txn), "(email)=(ana@example.com) already exists as id 1");
    CHECK_RC(tu_ins(NULL, txn, "user", mp("{s:s}", "email", "ANA@EXAMPLE.COM")), UDB_ECONFLICT);
    /* the other way round: the holder's own capitals are what is reported */
    CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:s}", "email", "Bob@Example.ORG")));
    CHECK_RC(tu_ins(NULL, txn, "user", mp("{s:s}", "email", "bob@example.org")), UDB_ECONFLICT);
    CHECK_STR(tu_conflict(txn), "user: email(email)=[\"Bob@Example.ORG\"] held by 2");
    /* a compound index: only the nocase field folds */
    CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:s, s:s}", "org", "acme", "tag", "Red")));
    CHECK_RC(tu_ins(NULL, txn, "user", mp("{s:s, s:s}", "org", "acme", "tag", "rED")),
             UDB_ECONFLICT);
    CHECK_STR(tu_conflict(txn), "user: org_tag(org, tag)=[\"acme\",\"Red\"] held by 3");
    CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:s, s:s}", "org", "ACME", "tag", "red")));
    /* several violated indexes: each reports its own holder's spelling */
    CHECK_RC(tu_ins(NULL, txn, "user", mp("{s:s, s:s, s:s}", "email", "BOB@example.org", "org",
                                          "acme", "tag", "RED")), UDB_ECONFLICT);
    CHECK_STR(tu_conflict(txn), "user: email(email)=[\"Bob@Example.ORG\"] held by 2; "
                                "org_tag(org, tag)=[\"acme\",\"Red\"] held by 3");
    CHECK(tu_count(txn, "user") == 4);
    tu_commit(txn);
}

static void t_record_keeps_its_spelling_and_find_any_case(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    udb_txn *txn = tu_w(t);
    udb_val out;
    CHECK_OK(tu_ins(&out, txn, "user", mp("{s:s}", "email", "Ana@Example.com")));
    CHECK_STR(tu_field(out, "email"), "\"Ana@Example.com\"");
    CHECK_OK(tu_get(&out, txn, "user", mp("U", 1ull)));
    CHECK_STR(tu_field(out, "email"), "\"Ana@Example.com\"");
    static const char *const spellings[] = {"ana@example.com", "ANA@EXAMPLE.COM",
                                            "Ana@Example.com", "aNA@eXAMPLE.cOM"};
    for (size_t i = 0; i < sizeof spellings / sizeof spellings[0]; i++) {
        CHECK_OK(tu_find(&out, txn, "user", "email", mp("[s]", spellings[i])));
        CHECK_STR(tu_field(out, "email"), "\"Ana@Example.com\"");
    }
    CHECK_RC(tu_find(&out, txn, "user", "email", mp("[s]", "ana@example.co")), UDB_ENOTFOUND);
    /* an update may change the record's own case: its own entry, no conflict */
    CHECK_OK(tu_upd(&out, txn, "user", mp("U", 1ull), mp("{s:s}", "email", "ANA@example.com"),
                    UDB_MERGE));
    CHECK_STR(tu_field(out, "email"), "\"ANA@example.com\"");
    CHECK_OK(tu_find(&out, txn, "user", "email", mp("[s]", "ana@EXAMPLE.com")));
    CHECK_STR(tu_field(out, "email"), "\"ANA@example.com\"");
    /* another record cannot take it in any case, by update either */
    CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:s}", "email", "eve@example.com")));
    CHECK_RC(tu_upd(NULL, txn, "user", mp("U", 2ull), mp("{s:s}", "email", "Ana@Example.Com"),
                    UDB_MERGE), UDB_ECONFLICT);
    CHECK_STR(tu_conflict(txn), "user: email(email)=[\"ANA@example.com\"] held by 1");
    /* insert-or-get finds the holder in any case, and returns it as stored */
    udb_val rec = mp("{s:s}", "email", "ana@example.COM");
    int created = -1;
    CHECK_OK(udb_insert_or_get(&out, &created, txn, "user", "email", rec.data, rec.size));
    CHECK(created == 0);
    CHECK_STR(tu_field(out, "email"), "\"ANA@example.com\"");
    /* an upsert on the nocase index updates the holder, with the new spelling */
    rec = mp("{s:s, s:i}", "email", "ana@example.com", "n", 7);
    CHECK_OK(udb_upsert(&out, &created, txn, "user", "email", rec.data, rec.size, NULL, 0));
    CHECK(created == 0);
    CHECK(tu_fu(out, "id") == 1);
    CHECK_STR(tu_field(out, "email"), "\"ana@example.com\"");
    /* deleting frees the value for every spelling */
    CHECK_OK(tu_del(txn, "user", mp("U", 1ull)));
    CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:s}", "email", "ANA@EXAMPLE.COM")));
    tu_commit(txn);
}

static void t_non_ascii_is_not_folded(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    udb_txn *txn = tu_w(t);
    udb_val out;
    /* É (U+00C9) and é (U+00E9), Σ and σ, the Kelvin sign and k: distinct */
    CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:s}", "email", "\xc3\x89mile@x")));
    CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:s}", "email", "\xc3\xa9mile@x")));
    CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:s}", "email", "\xce\xa3@x")));
    CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:s}", "email", "\xcf\x83@x")));
    CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:s}", "email", "\xe2\x84\xaa@x")));
    CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:s}", "email", "k@x")));
    /* the ASCII letters around them still fold */
    CHECK_RC(tu_ins(NULL, txn, "user", mp("{s:s}", "email", "\xc3\x89MILE@X")), UDB_ECONFLICT);
    CHECK_STR(tu_conflict(txn), "user: email(email)=[\"\xc3\x89mile@x\"] held by 1");
    CHECK_OK(tu_find(&out, txn, "user", "email", mp("[s]", "\xc3\xa9MILE@X")));
    CHECK(tu_fu(out, "id") == 2);
    CHECK_OK(tu_find(&out, txn, "user", "email", mp("[s]", "K@X")));
    CHECK(tu_fu(out, "id") == 6);   /* K folds to k, not to the Kelvin sign */
    /* bytes next to the letters (@ [ \ ] ^ _ `) are not letters */
    CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:s}", "email", "@")));
    CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:s}", "email", "`")));
    CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:s}", "email", "[")));
    CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:s}", "email", "{")));
    CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:s}", "email", "_")));
    CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:s}", "email", "\x7f")));
    /* a NUL inside a value is a byte like another: both sides of it fold */
    CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:S}", "email", "A\0B", (size_t)3)));
    CHECK_RC(tu_ins(NULL, txn, "user", mp("{s:S}", "email", "a\0b", (size_t)3)), UDB_ECONFLICT);
    CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:S}", "email", "a\0c", (size_t)3)));
    tu_commit(txn);
}

static void t_index_order_is_folded(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    udb_txn *txn = tu_w(t);
    /* binary order would be A, B2, _, a1, b; NOCASE order (SQLite's: folded
       to lower case) puts _ (0x5f) before every letter */
    static const char *const tags[] = {"b", "A", "_", "a1", "B2", "a"};
    for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++)
        CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:s, s:i, s:s}", "tag", tags[i], "n", (int)i,
                                              "org", tu_fmt("o%zu", i))));
    CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:i}", "n", 9)));   /* tag NULL: first */
    CHECK_STR(tu_scan(txn, "user", "by_tag", NOVAL, "tag"),
              "<absent>,\"_\",\"A\",\"a\",\"a1\",\"b\",\"B2\"");
    /* equal under NOCASE: ordered by the next field, n */
    CHECK_STR(tu_scan(txn, "user", "by_tag", NOVAL, "n"), "9,2,1,5,3,0,4");
    /* a scan prefix matches in any case */
    CHECK_STR(tu_scan(txn, "user", "by_tag", mp("[s]", "A"), "n"), "1,5");
    CHECK_STR(tu_scan(txn, "user", "by_tag", mp("[s]", "b2"), "tag"), "\"B2\"");
    CHECK_STR(tu_scan(txn, "user", "by_tag", mp("[s, i]", "a", 5), "tag"), "\"a\"");
    CHECK_STR(tu_scan(txn, "user", "org_tag", mp("[s, s]", "o1", "a"), "tag"), "\"A\"");
    CHECK_STR(tu_scan(txn, "user", "org_tag", mp("[s, s]", "O1", "a"), "tag"), "");
    /* range bounds fold too: ["A"] up to ["B"] (excluded) is every tag a... */
    udb_range r = UDB_RANGE_INIT;
    r.lo = mp("[s]", "A");
    r.hi = mp("[s]", "B");
    r.flags = UDB_HI_EXCL;
    CHECK_STR(tu_scan_range(txn, "user", "by_tag", &r, "tag"), "\"A\",\"a\",\"a1\"");
    r.flags = UDB_REVERSE;
    r.lo = mp("[s]", "_");
    CHECK_STR(tu_scan_range(txn, "user", "by_tag", &r, "n"), "0,3,5,1,2");
    tu_commit(txn);
}

static void t_nulls_unchanged(tu *t)
{
    if (!tu_setup(t, NND))
        return;
    udb_txn *txn = tu_w(t);
    udb_val out;
    /* org_tag is NULLS NOT DISTINCT: (NULL, NULL) is taken by record 1; email
       is NULLs distinct: the second record without one conflicts only there */
    CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:s}", "email", "x@y")));
    CHECK_RC(tu_ins(NULL, txn, "user", mp("{s:i}", "n", 2)), UDB_ECONFLICT);
    CHECK_STR(tu_conflict(txn), "user: org_tag(org, tag)=[null,null] held by 1");
    CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:s}", "tag", "Q")));
    CHECK_RC(tu_ins(NULL, txn, "user", mp("{s:s}", "tag", "q")), UDB_ECONFLICT);
    CHECK_STR(tu_conflict(txn), "user: org_tag(org, tag)=[null,\"Q\"] held by 2");
    CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:s, s:s}", "org", "o", "tag", "q")));
    CHECK_RC(tu_find(&out, txn, "user", "email", mp("[n]")), UDB_ENOTFOUND);
    CHECK_OK(tu_find(&out, txn, "user", "org_tag", mp("[n, s]", "q")));
    CHECK(tu_fu(out, "id") == 2);
    CHECK_OK(tu_find(&out, txn, "user", "org_tag", mp("[n, n]")));
    CHECK(tu_fu(out, "id") == 1);
    CHECK_STR(tu_scan(txn, "user", "org_tag", mp("[n]"), "id"), "1,2");
    tu_commit(txn);
    /* NULLs distinct (SCHEMA's org_tag): a NULL org never conflicts, any case */
    const char *changes;
    CHECK_OK(tu_apply_f(t, SCHEMA, UDB_SCHEMA_DROP, &changes));
    CHECK_HAS(changes, "redefined as unique (org, tag collate nocase)");
    txn = tu_w(t);
    CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:s}", "tag", "q")));
    CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:s}", "tag", "Q")));
    CHECK_RC(tu_ins(NULL, txn, "user", mp("{s:s, s:s}", "org", "o", "tag", "Q")), UDB_ECONFLICT);
    CHECK_STR(tu_conflict(txn), "user: org_tag(org, tag)=[\"o\",\"q\"] held by 3");
    tu_commit(txn);
}

static void t_schema_text_round_trips(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    const char *text = tu_schema_text(t);
    CHECK_HAS(text, "\"email\":{\"fields\":[{\"field\":\"email\",\"collate\":\"nocase\"}]}",
              "\"fields\":[\"org\",{\"field\":\"tag\",\"collate\":\"nocase\"}]");
    /* the stored text applied again is the stored schema: a no-op */
    const char *changes;
    CHECK_OK(tu_apply_f(t, text, 0, &changes));
    CHECK_STR(changes, "");
    tu_reopen(t);
    CHECK_STR(tu_schema_text(t), text);
    /* {"field": x} and "collate": "binary" are plain fields: stored as names */
    udb_schema *s = NULL;
    udb_buf msg = {0};
    const char *obj = jq("{`types`: {`u`: {`key`: `id`, `fields`: {`id`: {`type`: `int`},"
                         " `e`: {`type`: `str`}, `f`: {`type`: `str`}}, `unique`: {`e`: "
                         "{`fields`: [{`field`: `e`}, {`field`: `f`, `collate`: `binary`}]}}}}}");
    CHECK_OK(udb__schema_parse(&s, obj, strlen(obj), &msg));
    if (s)
        CHECK_HAS(s->json, "\"unique\":{\"e\":{\"fields\":[\"e\",\"f\"]}}");
    udb__schema_free(s);
    static const struct { const char *fields, *want; } bad[] = {
        {"[{`field`: `n`, `collate`: `nocase`}]",
         "field \"n\" has type int; \"collate\": \"nocase\" is only for str fields"},
        {"[{`field`: `b`, `collate`: `nocase`}]", "field \"b\" has type bin"},
        {"[{`field`: `e`, `collate`: `NOCASE`}]", "\"collate\" must be \"nocase\""},
        {"[{`field`: `e`, `collate`: 1}]", "\"collate\" must be \"nocase\""},
        {"[{`collate`: `nocase`}]", "needs \"field\", the field's name"},
        {"[{`field`: 3, `collate`: `nocase`}]", "needs \"field\""},
        {"[{`field`: `e`, `colate`: `nocase`}]",
         "unknown key \"colate\" (allowed: field, collate)"},
        {"[{`field`: `zz`}]", "\"zz\" is not a declared field"},
        {"[`e`, {`field`: `e`, `collate`: `nocase`}]", "field \"e\" listed twice"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *js = jq(tu_fmt("{`types`: {`u`: {`key`: `id`, `fields`: {`id`: {`type`: "
                                   "`int`}, `e`: {`type`: `str`}, `n`: {`type`: `int`}, "
                                   "`b`: {`type`: `bin`}}, `indexes`: {`x`: {`fields`: %s}}}}}",
                                   bad[i].fields));
        msg.len = 0;
        s = NULL;
        CHECK_RC(udb__schema_parse(&s, js, strlen(js), &msg), UDB_ESCHEMA);
        udb__buf_byte(&msg, 0);
        CHECK_HAS((const char *)msg.p, bad[i].want);
        udb__schema_free(s);
    }
    udb__buf_free(&msg);
}

static void t_collate_change_is_a_redefinition(tu *t)
{
    if (!tu_setup(t, PLAIN))
        return;
    udb_txn *txn = tu_w(t);
    CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:s}", "email", "ana@example.com")));
    CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:s}", "email", "bob@example.com")));
    tu_commit(txn);
    const char *plain = tu_schema_text(t), *changes;
    /* making the index nocase changes its definition: refused without a flag */
    CHECK_RC(tu_apply(t, NOCASE_ONLY), UDB_ESCHEMA);
    CHECK_HAS(udb_env_errmsg(t->env), "unique index \"user.email\" (email), redefined as "
              "unique (email collate nocase)", "UDB_SCHEMA_DROP");
    CHECK_STR(tu_schema_text(t), plain);
    /* KEEP: the stored definition wins, still case-sensitive */
    CHECK_OK(tu_apply_f(t, NOCASE_ONLY, UDB_SCHEMA_KEEP, &changes));
    CHECK_STR(tu_schema_text(t), plain);
    CHECK_HAS(changes, "kept unique index \"user.email\" (email), redefined as unique "
              "(email collate nocase)");
    txn = tu_w(t);
    CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:s}", "email", "ANA@example.com")));
    tu_commit(txn);
    /* DROP: the index is rebuilt folded -- and the three records collide */
    CHECK_RC(tu_apply_f(t, NOCASE_ONLY, UDB_SCHEMA_DROP, &changes), UDB_ECONFLICT);
    CHECK_HAS(udb_env_errmsg(t->env), "new unique index \"user.email\" (email) is violated by "
              "1 existing record; colliding id: 1 and 3");
    CHECK_STR(tu_schema_text(t), plain);
    txn = tu_w(t);
    CHECK_OK(tu_del(txn, "user", mp("U", 3ull)));
    tu_commit(txn);
    CHECK_OK(tu_apply_f(t, NOCASE_ONLY, UDB_SCHEMA_DROP, &changes));
    CHECK_HAS(changes, "rebuilt unique index \"user.email\" (email collate nocase)",
              "removed unique index \"user.email\" (email), redefined as unique "
              "(email collate nocase)");
    txn = tu_w(t);
    CHECK_RC(tu_ins(NULL, txn, "user", mp("{s:s}", "email", "BOB@example.com")), UDB_ECONFLICT);
    CHECK_STR(tu_conflict(txn), "user: email(email)=[\"bob@example.com\"] held by 2");
    tu_commit(txn);
    /* and back: removing the collation is a redefinition too */
    CHECK_RC(tu_apply(t, PLAIN), UDB_ESCHEMA);
    CHECK_HAS(udb_env_errmsg(t->env), "unique index \"user.email\" (email collate nocase), "
              "redefined as unique (email)");
    CHECK_OK(tu_apply_f(t, PLAIN, UDB_SCHEMA_DROP, &changes));
    CHECK_STR(tu_schema_text(t), plain);
    txn = tu_w(t);
    CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:s}", "email", "BOB@example.com")));
    tu_commit(txn);
}

static void t_new_nocase_index_lists_violations(tu *t)
{
    if (!tu_setup(t, "{`types`: {`user`: {`key`: `id`, " FIELDS "}}}"))
        return;
    udb_txn *txn = tu_w(t);
    static const char *const emails[] = {"a@x", "A@x", "b@x", "a@X", "B@X", "c@x"};
    for (size_t i = 0; i < sizeof emails / sizeof emails[0]; i++)
        CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:s}", "email", emails[i])));
    tu_commit(txn);
    const char *before = tu_schema_text(t);
    CHECK_RC(tu_apply(t, NOCASE_ONLY), UDB_ECONFLICT);
    CHECK_HAS(udb_env_errmsg(t->env), "new unique index \"user.email\" (email) is violated by "
              "3 existing records; colliding id: 1 and 2; 1 and 4; 3 and 5");
    CHECK_STR(tu_schema_text(t), before);
    /* the same index without the collation is fine */
    CHECK_OK(tu_apply(t, PLAIN));
}

static void count_report(const char *problem, void *ctx)
{
    (void)problem;
    ++*(size_t *)ctx;
}

/* Rewrite record pk's entry of the nocase index email unfolded (as an engine
 * without the fold would have written it). */
static void write_unfolded(udb_txn *txn, const char *email, uint64_t pk)
{
    const udb_index *ix =
        udb__type_index(udb__schema_type(udb__txn_schema(txn), "user"), "email");
    udb_buf folded = {0}, raw = {0}, key = {0};
    udb__tk_str_nocase(&folded, email, strlen(email));
    udb__tk_str(&raw, UDB_TK_STR, email, strlen(email));
    udb__tk_uint(&key, pk);
    MDB_val f = {folded.len, folded.p}, r = {raw.len, raw.p}, v = {key.len, key.p};
    CHECK_OK(mdb_del(udb__txn_mdb(txn), udb__dbi(udb__txn_schema(txn), ix), &f, NULL));
    CHECK_OK(mdb_put(udb__txn_mdb(txn), udb__dbi(udb__txn_schema(txn), ix), &r, &v, 0));
    udb__buf_free(&folded);
    udb__buf_free(&raw);
    udb__buf_free(&key);
}

/* udb_check verifies entries with the fold: an entry written unfolded is
 * both a missing entry of its record and an entry that matches no record. */
static void t_check_sees_unfolded_entry(tu *t)
{
    if (!tu_setup(t, NOCASE_ONLY))
        return;
    udb_txn *txn = tu_w(t);
    CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:s}", "email", "Ana@Example.com")));
    CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:s}", "email", "bob@example.com")));
    tu_commit(txn);
    tu_check_db(t);
    txn = tu_w(t);
    write_unfolded(txn, "Ana@Example.com", 1);
    tu_commit(txn);
    size_t problems = 0, reported = 0;
    CHECK_RC(udb_check(&problems, t->env, count_report, &reported), UDB_ECORRUPT);
    CHECK(problems == 2 && reported == 2);
    /* repair: delete and insert the record again; the check is happy */
    txn = tu_w(t);
    udb_buf raw = {0};
    udb__tk_str(&raw, UDB_TK_STR, "Ana@Example.com", 15);
    MDB_val r = {raw.len, raw.p};
    const udb_index *ix =
        udb__type_index(udb__schema_type(udb__txn_schema(txn), "user"), "email");
    CHECK_OK(mdb_del(udb__txn_mdb(txn), udb__dbi(udb__txn_schema(txn), ix), &r, NULL));
    udb__buf_free(&raw);
    CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:s}", "email", "ANA@example.com")));
    tu_commit(txn);
}

/* Run by the negative control with UDB_NOCASE_CONTROL=1: each insert's
 * entry rewritten unfolded, as if the engine did not fold. */
static void t_control_unfolded(tu *t)
{
    bool control = getenv("UDB_NOCASE_CONTROL") != NULL;
    if (!tu_setup(t, NOCASE_ONLY))
        return;
    udb_txn *txn = tu_w(t);
    udb_val out;
    CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:s}", "email", "Ana@Example.com")));
    if (control)
        write_unfolded(txn, "Ana@Example.com", 1);
    CHECK_RC(tu_ins(NULL, txn, "user", mp("{s:s}", "email", "ana@example.com")), UDB_ECONFLICT);
    CHECK_OK(tu_find(&out, txn, "user", "email", mp("[s]", "ANA@EXAMPLE.COM")));
    tu_commit(txn);
}

/* udb_pg_ddl (export and the PostgreSQL backend): a nocase field is
 * lower(f COLLATE "C"), through bytea's escape text for a bytea column. */
static void t_pg_ddl(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    udb_txn *txn = tu_r(t);
    char *out = NULL;
    udb_pg_ddl_options o = {"public", UDB_PG_DDL_INDEXES, NULL, NULL};
    CHECK_OK(udb_pg_ddl(&out, txn, &o));
    CHECK_HAS(out, "CREATE UNIQUE INDEX \"user.email\" ON \"public\".\"user\" "
              "(lower(\"email\" COLLATE \"C\"));\n",
              "CREATE UNIQUE INDEX \"user.org_tag\" ON \"public\".\"user\" "
              "(\"org\", lower(\"tag\" COLLATE \"C\"));\n",
              "CREATE INDEX \"user.by_tag\" ON \"public\".\"user\" "
              "(lower(\"tag\" COLLATE \"C\"), \"n\");\n");
    udb_free(out);
    const char *bytea[] = {"user.email", NULL};
    o.bytea_fields = bytea;
    CHECK_OK(udb_pg_ddl(&out, txn, &o));
    CHECK_HAS(out, "(lower(encode(\"email\", 'escape') COLLATE \"C\"));\n",
              "(\"org\", lower(\"tag\" COLLATE \"C\"))");
    udb_free(out);
    tu_abort(txn);
}

TU_MAIN(TU_CASE(t_conflict_in_other_case), TU_CASE(t_record_keeps_its_spelling_and_find_any_case),
        TU_CASE(t_non_ascii_is_not_folded), TU_CASE(t_index_order_is_folded),
        TU_CASE(t_nulls_unchanged), TU_CASE(t_schema_text_round_trips),
        TU_CASE(t_collate_change_is_a_redefinition), TU_CASE(t_new_nocase_index_lists_violations),
        TU_CASE(t_check_sees_unfolded_entry), TU_CASE(t_control_unfolded), TU_CASE(t_pg_ddl))
