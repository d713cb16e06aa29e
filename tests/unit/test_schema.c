/*
 * test_schema.c -- the schema: every parse error names what is wrong,
 * re-applying is a no-op, the printed schema round-trips, and schema changes
 * on a database with data either build their indexes or change nothing.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "env_int.h"
#include "testutil.h"

/* One type "t" with a field of most kinds; F adds fields, R adds type keys. */
#define T1(F, R)                                                                           \
    "{`types`: {`t`: {`key`: `id`, `fields`: {`id`: {`type`: `uint`}, `name`: {`type`: "    \
    "`str`}, `n`: {`type`: `int`}, `status`: {`type`: `enum`, `values`: [`a`, `b`]}, "      \
    "`note`: {`type`: `any`}, `flag`: {`type`: `bool`}" F "}" R "}}}"
#define WHERE(w) T1("", ", `unique`: {`u`: {`fields`: [`name`], `where`: `" w "`}}")

static const struct {
    const char *schema;
    const char *says[4];
} bad_schemas[] = {
    {"{`types`: ", {"not valid JSON"}},
    {"[1]", {"must be a JSON object"}},
    {"{`tipes`: {}}", {"unknown key \"tipes\""}},
    {"{`types`: []}", {"\"types\" must be an object"}},
    {"{`types`: {`t`: []}}", {"type \"t\"", "definition must be an object"}},
    {"{`types`: {`t`: {`key`: `id`, `fields`: {}}}}", {"\"fields\" must be a non-empty object"}},
    {T1(", `x`: {`type`: `strg`}", ""), {"type \"t\"", "field \"x\"", "unknown type \"strg\""}},
    {T1(", `x`: {}", ""), {"field \"x\"", "missing \"type\""}},
    {"{`types`: {`t`: {`key`: `nope`, `fields`: {`id`: {`type`: `uint`}}}}}",
     {"type \"t\"", "key \"nope\" is not a declared field"}},
    {"{`types`: {`t`: {`fields`: {`id`: {`type`: `uint`}}}}}", {"type \"t\"", "missing \"key\""}},
    {"{`types`: {`t`: {`key`: `id`, `fields`: {`id`: {`type`: `float`}}}}}",
     {"key field \"id\" must be str, int or uint"}},
    {T1(", `x`: {`type`: `str`, `auto`: true}", ""),
     {"field \"x\"", "\"auto\" is only for a uint key"}},
    {T1(", `x`: {`type`: `enum`}", ""), {"field \"x\"", "enum needs \"values\""}},
    {T1(", `x`: {`type`: `enum`, `values`: [`a`, `a`]}", ""), {"enum value \"a\" listed twice"}},
    {T1(", `x`: {`type`: `str`, `values`: [`a`]}", ""), {"field \"x\"", "only for enum"}},
    {T1(", `x`: {`type`: `str`, `required`: 1}", ""), {"\"required\" must be true or false"}},
    {T1(", `x`: {`type`: `str`, `requird`: true}", ""), {"field \"x\"", "unknown key \"requird\""}},
    {T1("", ", `uniqe`: {}"), {"type \"t\"", "unknown key \"uniqe\""}},
    {T1("", ", `unique`: {`u`: {`fields`: [`note`]}}"),
     {"type \"t\"", "unique index \"u\"", "field \"note\" has type any"}},
    {T1("", ", `indexes`: {`i`: {`fields`: [`name`, `note`]}}"),
     {"index \"i\"", "field \"note\" has type any"}},
    {T1("", ", `indexes`: {`i`: {`fields`: [`nope`]}}"),
     {"type \"t\"", "index \"i\"", "\"nope\" is not a declared field"}},
    {T1("", ", `unique`: {`u`: {`fields`: []}}"), {"unique index \"u\"", "1 to 8"}},
    {T1(", `f1`: {`type`: `int`}, `f2`: {`type`: `int`}, `f3`: {`type`: `int`}, "
        "`f4`: {`type`: `int`}",
        ", `unique`: {`u`: {`fields`: [`id`, `name`, `n`, `status`, `flag`, `f1`, `f2`, "
        "`f3`, `f4`]}}"),
     {"unique index \"u\"", "1 to 8"}},
    {T1("", ", `unique`: {`u`: {`fields`: [`name`, `name`]}}"), {"field \"name\" listed twice"}},
    {T1("", ", `unique`: {`u`: {`fields`: [`name`], `nulls`: `maybe`}}"),
     {"\"nulls\" must be \"distinct\" or \"not_distinct\""}},
    {T1("", ", `indexes`: {`i`: {`fields`: [`name`], `nulls`: `not_distinct`}}"),
     {"index \"i\"", "unknown key \"nulls\""}},
    {WHERE("nope = 1"), {"unique index \"u\"", "where", "\"nope\" is not a declared field"}},
    {WHERE("n = 'x'"), {"where", "a string literal compared with a non-string field"}},
    {WHERE("name = 5"), {"where", "an integer literal compared with a non-numeric field"}},
    {WHERE("name = true"), {"where", "a boolean literal compared with a non-bool field"}},
    {WHERE("flag IN ('a')"), {"where", "a string literal compared with a non-string field"}},
    {WHERE("status IN ('a', 'bogus')"), {"'bogus' is not a value of enum field \"status\""}},
    {WHERE("status = 'a' OR status = 'b'"), {"only AND", "OR status"}},
    {WHERE("name = 'x"), {"unterminated string literal"}},
    {WHERE("  "), {"empty predicate"}},
    {WHERE("name IS NOT 'x'"), {"expected NULL after IS"}},
    {WHERE("name > 'x'"), {"expected IN, =, !=, IS NULL or IS NOT NULL"}},
    {WHERE("note = 1"), {"field \"note\" (any) can only be tested with IS [NOT] NULL"}},
    {WHERE("n = 1.5"), {"bad integer literal"}},
    {WHERE("n = 99999999999999999999"), {"bad integer literal"}},
    {WHERE("n IN (1, 2"), {"expected , or ) in IN list"}},
    {T1("", ", `unique`: {`dup`: {`fields`: [`name`]}}, `indexes`: {`dup`: {`fields`: [`n`]}}"),
     {"type \"t\"", "index name \"dup\" is used twice"}},
    {T1("", ", `unique`: {`id`: {`fields`: [`name`]}}"), {"index name \"id\" is used twice"}},
    {T1("", ", `unique`: {`u`: {`fields`: [`name`]}, `u`: {`fields`: [`n`]}}"),
     {"not valid JSON", "duplicate"}},
    {"{`types`: {`1bad`: {`key`: `id`, `fields`: {`id`: {`type`: `uint`}}}}}",
     {"invalid type name \"1bad\""}},
    {"{`types`: {`aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa`: "
     "{`key`: `id`, `fields`: {`id`: {`type`: `uint`}}}}}",
     {"invalid type name"}},
    {T1(", `bad-name`: {`type`: `str`}", ""), {"invalid field name \"bad-name\""}},
    {T1("", ", `unique`: {`has space`: {`fields`: [`name`]}}"),
     {"invalid index name \"has space\""}},
};

static void t_parse_errors_name_the_problem(tu *t)
{
    if (!tu_open(t))
        return;
    for (size_t i = 0; i < sizeof bad_schemas / sizeof bad_schemas[0]; i++) {
        const char *s = bad_schemas[i].schema;
        if (!CHECK_RC(tu_apply(t, s), UDB_ESCHEMA)) {
            tu_fail(__FILE__, __LINE__, "bad schema accepted", "%s", jq(s));
            continue;
        }
        const char *msg = udb_env_errmsg(t->env);
        for (size_t k = 0; k < 4 && bad_schemas[i].says[k]; k++)
            if (!strstr(msg, bad_schemas[i].says[k]))
                tu_fail(__FILE__, __LINE__, "message names the problem",
                        "schema  %s\n    message %s\n    lacks   %s", jq(s), msg,
                        bad_schemas[i].says[k]);
    }
    char *json = NULL;
    CHECK_RC(udb_schema_json(&json, t->env), UDB_ENOTFOUND);   /* nothing was stored */
    CHECK(json == NULL);
}

#define PF_ID "`id`: {`type`: `uint`, `auto`: true}"
#define PF_EMAIL "`email`: {`type`: `str`, `required`: true}"
#define PF_CITY "`city`: {`type`: `str`}"
#define PF_LEVEL "`level`: {`type`: `enum`, `values`: [`lo`, `hi`]}"
#define PF_ALL PF_ID ", " PF_EMAIL ", " PF_CITY ", " PF_LEVEL
#define PERSON_FIELDS "`key`: `id`, `fields`: {" PF_ALL "}"
#define P_WITH(fields) "`person`: {`key`: `id`, `fields`: {" fields "}}"
#define PET "`pet`: {`key`: `name`, `fields`: {`name`: {`type`: `str`}}}"
#define TYPES(x) "{`types`: {" x "}}"
#define PERSON(R) "{`types`: {`person`: {" PERSON_FIELDS R "}}}"
#define V1 PERSON("")
#define V2 PERSON(", `unique`: {`email`: {`fields`: [`email`]}}, " \
                  "`indexes`: {`by_city`: {`fields`: [`city`]}}")

static void add_person(tu *t, const char *email, const char *city)
{
    udb_txn *txn = tu_w(t);
    CHECK_OK(tu_ins(NULL, txn, "person", mp("{s:s, s:s}", "email", email, "city", city)));
    tu_commit(txn);
}

static void t_apply_same_schema_twice_is_noop(tu *t)
{
    if (!tu_setup(t, V2))
        return;
    add_person(t, "a@x", "Oslo");
    const udb_schema *before = t->env->schema;
    uint64_t gen = t->env->schema_gen;
    CHECK_OK(tu_apply(t, V2));
    CHECK(t->env->schema == before && t->env->schema_gen == gen);
    /* spacing and key order of the text do not matter */
    CHECK_OK(tu_apply(t, "{`types`:{`person`:{`indexes`:{`by_city`:{`fields`:[`city`]}},"
                         "`unique`:{`email`:{`fields`:[`email`]}}," PERSON_FIELDS "}}}"));
    CHECK(t->env->schema == before && t->env->schema_gen == gen);
    udb_txn *txn = tu_r(t);
    CHECK(tu_count(txn, "person") == 1);
    tu_commit(txn);
}

/* Apply schema to a fresh database, print it back, apply the printed text:
 * a no-op, also after a reopen.  Returns the printed text. */
static const char *round_trip(tu *t, const char *schema)
{
    char *none = NULL;
    udb_close(t->env);
    t->env = NULL;
    snprintf(t->path, sizeof t->path, "%s/db-%zu", t->dir, strlen(schema));
    if (!tu_open(t))
        return "";
    CHECK_RC(udb_schema_json(&none, t->env), UDB_ENOTFOUND);
    if (!CHECK_OK(tu_apply(t, schema)))
        return "";
    const char *printed = tu_schema_text(t);
    if (!CHECK(printed != NULL))
        return "";
    uint64_t gen = t->env->schema_gen;
    CHECK_OK(udb_schema_apply(NULL, t->env, printed, strlen(printed), 0));
    CHECK(t->env->schema_gen == gen);
    CHECK_STR(tu_schema_text(t), printed);
    tu_reopen(t);
    CHECK_STR(tu_schema_text(t), printed);
    gen = t->env->schema_gen;
    CHECK_OK(udb_schema_apply(NULL, t->env, printed, strlen(printed), 0));
    CHECK(t->env->schema_gen == gen);
    return printed;
}

static void t_schema_json_round_trip(tu *t)
{
    const char *schema =
        "{`types`: {`all`: {`key`: `k`, `extra`: true, `fields`: {"
        "`k`: {`type`: `str`}, `i`: {`type`: `int`, `required`: true}, `u`: {`type`: `uint`},"
        "`f`: {`type`: `float`}, `b`: {`type`: `bool`}, `x`: {`type`: `bin`},"
        "`e`: {`type`: `enum`, `values`: [`it's`, `plain`]}, `a`: {`type`: `any`}},"
        "`unique`: {`u1`: {`fields`: [`i`, `u`], `nulls`: `not_distinct`},"
        "  `u2`: {`fields`: [`e`], `where`: `b = true and  i != -3 AND x IS NOT NULL AND "
        "a is null AND e in ('it''s')`}},"
        "`indexes`: {`n1`: {`fields`: [`f`, `b`], `where`: `u IN (1, 2)`}}}}}";
    /* the predicate is printed in canonical form */
    CHECK_HAS(round_trip(t, schema),
              "b = true AND i != -3 AND x IS NOT NULL AND a IS NULL AND e IN ('it''s')",
              "\"nulls\":\"not_distinct\"", "\"extra\":true");
    CHECK_HAS(round_trip(t, tu_scenarios()), "\"where\":\"status IN ('pending', 'confirmed')\"");
}

static void t_new_index_is_built_from_old_records(tu *t)
{
    if (!tu_setup(t, V1))
        return;
    add_person(t, "a@x", "Oslo");
    add_person(t, "b@x", "Rome");
    add_person(t, "c@x", "Oslo");
    if (!CHECK_OK(tu_apply(t, V2)))
        return;
    udb_txn *txn = tu_r(t);
    udb_val v;
    CHECK_OK(tu_find(&v, txn, "person", "email", mp("[s]", "b@x")));
    CHECK(tu_fu(v, "id") == 2);
    CHECK_STR(tu_scan(txn, "person", "by_city", mp("[s]", "Oslo"), "email"), "\"a@x\",\"c@x\"");
    tu_commit(txn);
    /* the new unique index is enforced from now on */
    txn = tu_w(t);
    CHECK_RC(tu_ins(NULL, txn, "person", mp("{s:s}", "email", "c@x")), UDB_ECONFLICT);
    CHECK_STR(tu_conflict(txn), "person: email(email)=[\"c@x\"] held by 3");
    tu_abort(txn);
    /* dropping an index takes UDB_SCHEMA_DROP; it is gone afterwards */
    const char *changes;
    CHECK_OK(tu_apply_f(t, V1, UDB_SCHEMA_DROP, &changes));
    CHECK_HAS(changes, "removed unique index \"person.email\" (email)",
              "removed index \"person.by_city\" (city)");
    txn = tu_r(t);
    CHECK_RC(tu_find(&v, txn, "person", "email", mp("[s]", "b@x")), UDB_EINVAL);
    tu_commit(txn);
}

static void t_new_unique_index_over_collisions_changes_nothing(tu *t)
{
    if (!tu_setup(t, V1))
        return;
    add_person(t, "a@x", "Oslo");     /* 1 */
    add_person(t, "a@x", "Rome");     /* 2 collides with 1 */
    add_person(t, "b@x", "Oslo");     /* 3 */
    add_person(t, "b@x", "Oslo");     /* 4 collides with 3 */
    add_person(t, "c@x", "Oslo");     /* 5 */
    const char *before = tu_schema_text(t);
    uint64_t gen = t->env->schema_gen;
    /* also adds a type: that must not happen either */
    const char *v2more = PERSON(", `unique`: {`email`: {`fields`: [`email`]}}},"
                                "`other`: {`key`: `id`, `fields`: {`id`: {`type`: `str`}}");
    CHECK_RC(tu_apply(t, v2more), UDB_ECONFLICT);
    CHECK_HAS(udb_env_errmsg(t->env), "\"person.email\"", "1 and 2", "3 and 4");
    CHECK(!strstr(udb_env_errmsg(t->env), " 5"));
    CHECK_STR(tu_schema_text(t), before);
    CHECK(t->env->schema_gen == gen);
    CHECK_OK(tu_apply(t, V1));          /* the old schema is still the stored one */
    CHECK(t->env->schema_gen == gen);
    udb_txn *txn = tu_r(t);
    const char *const *types;
    size_t ntypes = 0;
    CHECK_OK(udb_types(&types, &ntypes, txn));
    CHECK(ntypes == 1);
    CHECK(tu_count(txn, "person") == 5);
    udb_val v;
    CHECK_RC(tu_find(&v, txn, "person", "email", mp("[s]", "a@x")), UDB_EINVAL);
    tu_commit(txn);
    tu_reopen(t);
    CHECK_STR(tu_schema_text(t), before);
}

static void t_collision_list_names_at_least_ten_keys(tu *t)
{
    if (!tu_setup(t, V1))
        return;
    udb_txn *txn = tu_w(t);
    for (int i = 0; i < 13; i++)
        CHECK_OK(tu_ins(NULL, txn, "person", mp("{s:s}", "email", "same@x")));
    tu_commit(txn);
    CHECK_RC(tu_apply(t, V2), UDB_ECONFLICT);
    const char *msg = udb_env_errmsg(t->env);
    CHECK_HAS(msg, "12 existing records", "1 and 2", "1 and 6", "1 and 11", "...");
}

static void t_destructive_changes_are_refused(tu *t)
{
    if (!tu_setup(t, TYPES(P_WITH(PF_ALL) ", " PET)))
        return;
    add_person(t, "a@x", "Oslo");
    const char *before = tu_schema_text(t);
    static const struct { const char *schema, *says; } refused[] = {
        {TYPES(P_WITH(PF_ID ", " PF_EMAIL ", " PF_LEVEL) ", " PET),
         "type \"person\": field \"city\" cannot be removed"},
        {TYPES(P_WITH(PF_ID ", " PF_EMAIL ", `city`: {`type`: `int`}, " PF_LEVEL) ", " PET),
         "field \"city\" cannot change type (str to int)"},
        {TYPES(P_WITH(PF_ID ", " PF_EMAIL ", " PF_CITY ", `level`: {`type`: `enum`, "
                      "`values`: [`lo`]}") ", " PET),
         "enum value \"hi\" of field \"level\" cannot be removed"},
        {TYPES("`person`: {`key`: `email`, `fields`: {`id`: {`type`: `uint`}, " PF_EMAIL ", "
               PF_CITY ", " PF_LEVEL "}}, " PET),
         "the key field cannot change"},
        {TYPES(P_WITH("`id`: {`type`: `uint`}, " PF_EMAIL ", " PF_CITY ", " PF_LEVEL) ", " PET),
         "field \"id\" cannot change \"auto\""},
        {TYPES(P_WITH(PF_ALL ", `phone`: {`type`: `str`, `required`: true}") ", " PET),
         "new field \"phone\" must be optional while the type holds records"},
        {TYPES(P_WITH(PF_ID ", " PF_EMAIL ", `city`: {`type`: `str`, `required`: true}, "
                      PF_LEVEL) ", " PET),
         "existing field \"city\" cannot become required"},
    };
    /* UDB_SCHEMA_DROP allows removing constraints, never stranding records */
    for (size_t i = 0; i < 2 * (sizeof refused / sizeof refused[0]); i++) {
        const char *s = refused[i / 2].schema;
        if (!CHECK_RC(tu_apply_f(t, s, i % 2 ? UDB_SCHEMA_DROP : 0, NULL), UDB_ESCHEMA))
            tu_fail(__FILE__, __LINE__, "destructive change accepted", "%s", jq(s));
        else
            CHECK_HAS(udb_env_errmsg(t->env), refused[i / 2].says);
        CHECK_STR(tu_schema_text(t), before);
    }
    /* pet holds no records: a required field may be added there */
    CHECK_OK(tu_apply(t, TYPES(P_WITH(PF_ALL) ", `pet`: {`key`: `name`, `fields`: {`name`: "
                               "{`type`: `str`}, `age`: {`type`: `int`, `required`: true}}}")));
}

static void t_additive_changes_are_allowed(tu *t)
{
    if (!tu_setup(t, V1))
        return;
    add_person(t, "a@x", "Oslo");
    /* a new optional field, a new enum value, a new type with an index */
    const char *v2 =
        "{`types`: {`person`: {`key`: `id`, `fields`: {`id`: {`type`: `uint`, `auto`: true}, "
        "`email`: {`type`: `str`, `required`: true}, `city`: {`type`: `str`}, `level`: "
        "{`type`: `enum`, `values`: [`lo`, `hi`, `max`]}, `age`: {`type`: `int`}}, "
        "`indexes`: {`by_age`: {`fields`: [`age`]}}}, "
        "`pet`: {`key`: `name`, `fields`: {`name`: {`type`: `str`}, `owner`: {`type`: `uint`}},"
        " `indexes`: {`by_owner`: {`fields`: [`owner`]}}}}}";
    if (!CHECK_OK(tu_apply(t, v2)))
        return;
    udb_txn *txn = tu_w(t);
    CHECK_OK(tu_ins(NULL, txn, "person",
                    mp("{s:s, s:s, s:i}", "email", "b@x", "level", "max", "age", 40)));
    CHECK_OK(tu_ins(NULL, txn, "pet", mp("{s:s, s:U}", "name", "rex", "owner", 2ull)));
    /* the old record sits in the new index with a NULL age, first */
    CHECK_STR(tu_scan(txn, "person", "by_age", NOVAL, "email"), "\"a@x\",\"b@x\"");
    CHECK_STR(tu_scan(txn, "pet", "by_owner", mp("[U]", 2ull), "name"), "\"rex\"");
    tu_commit(txn);
}

static void t_redefined_index_is_rebuilt_or_refused(tu *t)
{
    if (!tu_setup(t, V2))
        return;
    add_person(t, "a@x", "Oslo");
    add_person(t, "b@x", "Oslo");
    /* unique email becomes unique (city, email): rebuilt from the records */
    const char *wider = PERSON(", `unique`: {`email`: {`fields`: [`city`, `email`]}}, "
                               "`indexes`: {`by_city`: {`fields`: [`city`]}}");
    CHECK_RC(tu_apply(t, wider), UDB_ESCHEMA);   /* redefining drops the old index */
    CHECK_OK(tu_apply_f(t, wider, UDB_SCHEMA_DROP, NULL));
    udb_txn *txn = tu_r(t);
    udb_val v;
    CHECK_OK(tu_find(&v, txn, "person", "email", mp("[s, s]", "Oslo", "b@x")));
    CHECK(tu_fu(v, "id") == 2);
    tu_commit(txn);
    tu_check_db(t);
    /* narrowing it to city alone collides: refused, the wider one stays intact */
    const char *narrow = PERSON(", `unique`: {`email`: {`fields`: [`city`]}}, "
                                "`indexes`: {`by_city`: {`fields`: [`city`]}}");
    CHECK_RC(tu_apply_f(t, narrow, UDB_SCHEMA_DROP, NULL), UDB_ECONFLICT);
    CHECK_HAS(udb_env_errmsg(t->env), "\"person.email\"", "1 and 2");
    txn = tu_r(t);
    CHECK_OK(tu_find(&v, txn, "person", "email", mp("[s, s]", "Oslo", "a@x")));
    CHECK(tu_fu(v, "id") == 1);
    tu_commit(txn);
    tu_check_db(t);
    /* a unique index turned non-unique under the same name, and back */
    const char *plain = PERSON(", `indexes`: {`email`: {`fields`: [`city`]}}");
    CHECK_RC(tu_apply(t, plain), UDB_ESCHEMA);   /* redefining drops the old index */
    CHECK_OK(tu_apply_f(t, plain, UDB_SCHEMA_DROP, NULL));
    txn = tu_r(t);
    CHECK_STR(tu_scan(txn, "person", "email", mp("[s]", "Oslo"), "id"), "1,2");
    tu_commit(txn);
    tu_check_db(t);
    CHECK_OK(tu_apply_f(t, V2, UDB_SCHEMA_DROP, NULL));
    txn = tu_r(t);
    CHECK_OK(tu_find(&v, txn, "person", "email", mp("[s]", "a@x")));
    CHECK_STR(tu_scan(txn, "person", "by_city", NOVAL, "id"), "1,2");
    tu_commit(txn);
    /* a where clause that admits more records is checked against them too */
    const char *partial = PERSON(", `unique`: {`email`: {`fields`: [`email`]}, `lvl`: {`fields`: "
                                 "[`city`], `where`: `level = 'hi'`}}, "
                                 "`indexes`: {`by_city`: {`fields`: [`city`]}}");
    CHECK_OK(tu_apply(t, partial));
    txn = tu_w(t);
    CHECK_OK(tu_upd(NULL, txn, "person", mp("U", 1ull), mp("{s:s}", "level", "hi"), UDB_MERGE));
    CHECK_OK(tu_upd(NULL, txn, "person", mp("U", 2ull), mp("{s:s}", "level", "lo"), UDB_MERGE));
    tu_commit(txn);
    CHECK_RC(tu_apply_f(t, PERSON(", `unique`: {`email`: {`fields`: [`email`]}, `lvl`: {`fields`: "
                                  "[`city`], `where`: `level IS NOT NULL`}}, "
                                  "`indexes`: {`by_city`: {`fields`: [`city`]}}"),
                        UDB_SCHEMA_DROP, NULL),
             UDB_ECONFLICT);
    CHECK_HAS(udb_env_errmsg(t->env), "\"person.lvl\"");
    txn = tu_r(t);
    CHECK_STR(tu_scan(txn, "person", "lvl", NOVAL, "id"), "1");
    tu_commit(txn);
}

static void t_declaring_a_field_checks_existing_extra_values(tu *t)
{
    /* an "extra" type may already hold a field of the new name, of another type:
       declaring it must not leave records that no longer fit their schema */
    const char *v1 = "{`types`: {`o`: {`key`: `id`, `extra`: true, `fields`: {`id`: {`type`: "
                     "`uint`, `auto`: true}}}}}";
    const char *v2 = "{`types`: {`o`: {`key`: `id`, `extra`: true, `fields`: {`id`: {`type`: "
                     "`uint`, `auto`: true}, `age`: {`type`: `int`}}}}}";
    if (!tu_setup(t, v1))
        return;
    udb_txn *txn = tu_w(t);
    CHECK_OK(tu_ins(NULL, txn, "o", mp("{s:s}", "age", "old")));
    tu_commit(txn);
    const char *before = tu_schema_text(t);
    int rc = tu_apply(t, v2);
    CHECK(rc == UDB_ESCHEMA || rc == UDB_EBADRECORD);
    if (rc == 0)
        return;   /* the end-of-case udb_check shows the record that no longer fits */
    CHECK_HAS(udb_env_errmsg(t->env), "\"age\"");
    CHECK_STR(tu_schema_text(t), before);
}

static void t_auto_key_marked_required_still_auto(tu *t)
{
    /* "required" on an auto key: the stored (canonical) schema drops it, so the
       applying process and a reopening one must agree on what an insert
       without the key does -- it gets the next sequence value. */
    const char *s = "{`types`: {`t`: {`key`: `id`, `fields`: {`id`: {`type`: `uint`, `auto`: "
                    "true, `required`: true}, `v`: {`type`: `str`}}}}}";
    if (!tu_open(t))
        return;
    int rc = tu_apply(t, s);
    if (rc == UDB_ESCHEMA)
        return;          /* refusing the combination is a consistent answer too */
    CHECK_OK(rc);
    udb_txn *txn = tu_w(t);
    CHECK_OK(tu_ins(NULL, txn, "t", mp("{s:s}", "v", "x")));
    tu_commit(txn);
    tu_reopen(t);
    txn = tu_w(t);
    CHECK_OK(tu_ins(NULL, txn, "t", mp("{s:s}", "v", "x")));
    tu_commit(txn);
}

static void t_where_text_is_canonical(tu *t)
{
    if (!tu_open(t))
        return;
    CHECK_OK(tu_apply(t, T1("", ", `unique`: {`u`: {`fields`: [`name`], `where`: "
                                "`  \\`status\\`   in('a','b')and flag=false  `}}")));
    CHECK_HAS(tu_schema_text(t), "\"where\":\"status IN ('a', 'b') AND flag = false\"");
    /* the same predicate spelled differently is the same schema */
    uint64_t gen = t->env->schema_gen;
    CHECK_OK(tu_apply(t, WHERE("status IN ('a', 'b') AND flag = false")));
    CHECK(t->env->schema_gen == gen);
}


/* The repro: an older schema applied to a database a newer one
 * extended must not remove its unique index, silently or otherwise. */
static void t_older_schema_never_drops_silently(tu *t)
{
    if (!tu_setup(t, V2))
        return;
    add_person(t, "a@x", "Oslo");
    const char *before = tu_schema_text(t);
    uint64_t gen = t->env->schema_gen;
    CHECK_RC(tu_apply(t, V1), UDB_ESCHEMA);
    CHECK_HAS(udb_env_errmsg(t->env), "unique index \"person.email\" (email)",
              "index \"person.by_city\" (city)", "Nothing was changed", "UDB_SCHEMA_DROP",
              "UDB_SCHEMA_KEEP");
    CHECK_STR(tu_schema_text(t), before);
    CHECK(t->env->schema_gen == gen);
    udb_txn *txn = tu_w(t);
    CHECK_RC(tu_ins(NULL, txn, "person", mp("{s:s}", "email", "a@x")), UDB_ECONFLICT);
    tu_abort(txn);
    /* the old app version says "keep": a subset is a no-op, nothing rewritten */
    const char *changes;
    CHECK_OK(tu_apply_f(t, V1, UDB_SCHEMA_KEEP, &changes));
    CHECK(t->env->schema_gen == gen);
    CHECK_STR(tu_schema_text(t), before);
    CHECK_HAS(changes, "kept unique index \"person.email\" (email)",
              "kept index \"person.by_city\" (city)", "(not in the given schema)");
    CHECK(!strstr(changes, "added"));
    txn = tu_w(t);
    CHECK_RC(tu_ins(NULL, txn, "person", mp("{s:s}", "email", "a@x")), UDB_ECONFLICT);
    CHECK_OK(tu_ins(NULL, txn, "person", mp("{s:s}", "email", "b@x")));
    tu_commit(txn);
    /* loosening a field or the type is a removal too */
    const char *loose = PERSON(", `extra`: true, `unique`: {`email`: {`fields`: [`email`]}}, "
                               "`indexes`: {`by_city`: {`fields`: [`city`]}}");
    CHECK_RC(tu_apply(t, loose), UDB_ESCHEMA);
    CHECK_HAS(udb_env_errmsg(t->env), "undeclared fields in type \"person\"");
    const char *optional =
        "{`types`: {`person`: {`key`: `id`, `fields`: {" PF_ID ", `email`: {`type`: `str`}, "
        PF_CITY ", " PF_LEVEL "}, `unique`: {`email`: {`fields`: [`email`]}}, "
        "`indexes`: {`by_city`: {`fields`: [`city`]}}}}}";
    CHECK_RC(tu_apply(t, optional), UDB_ESCHEMA);
    CHECK_HAS(udb_env_errmsg(t->env), "\"required\" of field \"person.email\"");
    CHECK(t->env->schema_gen == gen);
    CHECK_OK(tu_apply_f(t, optional, UDB_SCHEMA_KEEP, &changes));
    CHECK_HAS(changes, "kept \"required\" of field \"person.email\"");
    CHECK_STR(tu_schema_text(t), before);
    tu_reopen(t);
    CHECK_STR(tu_schema_text(t), before);
}

static void t_keep_adds_what_is_new(tu *t)
{
    if (!tu_setup(t, V2))
        return;
    add_person(t, "a@x", "Oslo");
    /* an old app version that added its own field, enum value and index */
    const char *mine =
        "{`types`: {`person`: {`key`: `id`, `fields`: {" PF_ID ", " PF_EMAIL ", "
        "`level`: {`type`: `enum`, `values`: [`lo`, `mid`]}, `age`: {`type`: `int`}}, "
        "`unique`: {`email`: {`fields`: [`age`]}}, `indexes`: {`by_age`: {`fields`: [`age`]}}}, "
        PET "}}";
    const char *changes;
    CHECK_RC(tu_apply(t, mine), UDB_ESCHEMA);   /* lacks city: would strand records */
    if (!CHECK_OK(tu_apply_f(t, mine, UDB_SCHEMA_KEEP, &changes)))
        return;
    CHECK_HAS(changes, "added type \"pet\"", "added field \"person.age\" (int)",
              "added enum value \"mid\" to field \"person.level\"",
              "added index \"person.by_age\" (age)",
              "kept unique index \"person.email\" (email)", "kept index \"person.by_city\"");
    const char *now = tu_schema_text(t);
    CHECK_HAS(now, "\"values\":[\"lo\",\"hi\",\"mid\"]", "\"email\":{\"fields\":[\"email\"]}",
              "\"city\"", "\"pet\"");
    udb_txn *txn = tu_w(t);
    CHECK_RC(tu_ins(NULL, txn, "person", mp("{s:s}", "email", "a@x")), UDB_ECONFLICT);
    CHECK_OK(tu_ins(NULL, txn, "person", mp("{s:s, s:i, s:s}", "email", "b@x", "age", 3,
                                           "level", "mid")));
    CHECK_STR(tu_scan(txn, "person", "by_age", NOVAL, "email"), "\"a@x\",\"b@x\"");
    tu_commit(txn);
    /* keeping cannot paper over a different key or field type */
    CHECK_RC(tu_apply_f(t, "{`types`: {`person`: {`key`: `id`, `fields`: {`id`: {`type`: "
                           "`uint`, `auto`: true}, `email`: {`type`: `int`}}}}}",
                        UDB_SCHEMA_KEEP, NULL), UDB_ESCHEMA);
    CHECK_HAS(udb_env_errmsg(t->env), "field \"email\" is str in the stored schema, int");
    CHECK_STR(tu_schema_text(t), now);
}

static void t_drop_removes_types_and_reports(tu *t)
{
    if (!tu_open(t))
        return;
    const char *changes;
    CHECK_OK(tu_apply_f(t, TYPES(P_WITH(PF_ALL) ", " PET), 0, &changes));
    CHECK_HAS(changes, "added type \"person\" (4 fields)", "added type \"pet\" (1 field)");
    CHECK_OK(tu_apply_f(t, TYPES(P_WITH(PF_ALL) ", " PET), 0, &changes));
    CHECK_STR(changes, "");
    udb_txn *txn = tu_w(t);
    CHECK_OK(tu_ins(NULL, txn, "pet", mp("{s:s}", "name", "rex")));
    CHECK_OK(tu_ins(NULL, txn, "pet", mp("{s:s}", "name", "tom")));
    tu_commit(txn);
    CHECK_RC(tu_apply(t, TYPES(P_WITH(PF_ALL))), UDB_ESCHEMA);
    CHECK_HAS(udb_env_errmsg(t->env), "type \"pet\" with its 2 records");
    CHECK_OK(tu_apply_f(t, TYPES(P_WITH(PF_ALL)), UDB_SCHEMA_DROP, &changes));
    CHECK_STR(changes, "removed type \"pet\" with its 2 records");
    tu_check_db(t);
    /* back again: empty */
    CHECK_OK(tu_apply_f(t, TYPES(P_WITH(PF_ALL) ", " PET), 0, &changes));
    txn = tu_r(t);
    CHECK(tu_count(txn, "pet") == 0);
    tu_commit(txn);
    CHECK_RC(tu_apply_f(t, V1, UDB_SCHEMA_KEEP | UDB_SCHEMA_DROP, NULL), UDB_EINVAL);
    CHECK_RC(tu_apply_f(t, V1, 0x80, NULL), UDB_EINVAL);
}

/* Apply schema from a child process (another process's change). */
static bool apply_elsewhere(tu *t, const char *schema)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        udb_env *env = NULL;
        const char *s = jq(schema);
        int rc = udb_open(&env, t->path, NULL);
        if (!rc)
            rc = udb_schema_apply(NULL, env, s, strlen(s), 0);
        udb_close(env);
        _exit(rc ? 1 : 0);
    }
    int st = 0;
    return CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
                 WEXITSTATUS(st) == 0);
}

/* A schema another process changed is the one this process's next
 * transaction uses, read or write, even right after transactions that found
 * the old one (each transaction compares the stored generation with its
 * own at begin: a cache of that answer must not outlive a change). */
static void t_schema_changed_elsewhere_is_used_at_once(tu *t)
{
    if (!tu_setup(t, V1))
        return;
    add_person(t, "a@x", "Oslo");
    add_person(t, "b@x", "Rome");
    udb_txn *txn = tu_r(t);
    CHECK(tu_count(txn, "person") == 2);
    tu_commit(txn);
    txn = tu_r(t);
    CHECK(tu_count(txn, "person") == 2);
    tu_commit(txn);
    /* a read: the unique index made elsewhere is there */
    if (!apply_elsewhere(t, V2))
        return;
    udb_val v;
    txn = tu_r(t);
    CHECK_OK(tu_find(&v, txn, "person", "email", mp("[s]", "b@x")));
    CHECK_STR(tu_field(v, "city"), "\"Rome\"");
    tu_commit(txn);
    add_person(t, "c@x", "Oslo");
    /* a write: the unique index made elsewhere is kept, and refuses */
    if (!apply_elsewhere(t, PERSON(", `unique`: {`email`: {`fields`: [`email`]}, "
                                   "`level`: {`fields`: [`level`]}}, "
                                   "`indexes`: {`by_city`: {`fields`: [`city`]}}")))
        return;
    txn = tu_w(t);
    CHECK_OK(tu_ins(NULL, txn, "person", mp("{s:s, s:s}", "email", "d@x", "level", "hi")));
    CHECK_RC(tu_ins(NULL, txn, "person", mp("{s:s, s:s}", "email", "e@x", "level", "hi")),
             UDB_ECONFLICT);
    tu_commit(txn);
    tu_check_db(t);
}

/* Two processes apply schemas at once: the loser hears that the stored
 * schema moved, and what moved, not that it wants to drop what it never had. */
static void t_concurrent_apply_explains_the_race(tu *t)
{
    if (!tu_setup(t, V1) ||
        !apply_elsewhere(t, PERSON(", `unique`: {`email`: {`fields`: [`email`]}}")))
        return;
    /* this handle still knows V1; its change adds by_city */
    CHECK_RC(tu_apply(t, PERSON(", `indexes`: {`by_city`: {`fields`: [`city`]}}")), UDB_ESCHEMA);
    CHECK_HAS(udb_env_errmsg(t->env), "the stored schema changed underneath this call",
              "added unique index \"person.email\" (email)",
              "Against the schema stored now: this schema would remove");
    /* the next attempt knows the stored schema: a plain refusal */
    CHECK_RC(tu_apply(t, PERSON(", `indexes`: {`by_city`: {`fields`: [`city`]}}")), UDB_ESCHEMA);
    CHECK(!strstr(udb_env_errmsg(t->env), "underneath"));
}

/* udb_schema_apply_notify tells its caller when the writer slot is its own:
 * not while another process holds it, and once after (what `uniqdb
 * --timeout` relies on to give up having written nothing). */
typedef struct notified {
    int calls;
    struct timespec at;
} notified;

static void on_locked(void *payload)
{
    notified *n = payload;
    n->calls++;
    clock_gettime(CLOCK_MONOTONIC, &n->at);
}

static void t_apply_notify_tells_when_the_writer_slot_is_ours(tu *t)
{
    if (!tu_setup(t, V1))
        return;
    int ready[2];
    if (!CHECK(pipe(ready) == 0))
        return;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        /* another process holds the writer slot for 300 ms */
        close(ready[0]);
        udb_env *env = NULL;
        udb_txn *txn = NULL;
        if (udb_open(&env, t->path, NULL) != 0 || udb_begin(&txn, env, 0) != 0)
            _exit(1);
        if (write(ready[1], "h", 1) != 1)
            _exit(1);
        struct timespec hold = {0, 300000000L};
        nanosleep(&hold, NULL);
        udb_abort(txn);
        udb_close(env);
        _exit(0);
    }
    close(ready[1]);
    char c;
    CHECK(read(ready[0], &c, 1) == 1);
    close(ready[0]);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    notified n = {0};
    const char *v2 = jq(PERSON(", `indexes`: {`by_city`: {`fields`: [`city`]}}"));
    CHECK_OK(udb_schema_apply_notify(NULL, t->env, v2, strlen(v2), 0, on_locked, &n));
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(n.calls == 1);
    double waited = (double)(n.at.tv_sec - t0.tv_sec) + (double)(n.at.tv_nsec - t0.tv_nsec) / 1e9;
    CHECK(waited > 0.2); /* not before the other process let go */
    CHECK_HAS(tu_schema_text(t), "by_city");
    /* NULL: plain udb_schema_apply */
    CHECK_OK(udb_schema_apply_notify(NULL, t->env, v2, strlen(v2), 0, NULL, NULL));
}

TU_MAIN(TU_CASE(t_parse_errors_name_the_problem), TU_CASE(t_apply_same_schema_twice_is_noop),
        TU_CASE(t_schema_json_round_trip), TU_CASE(t_new_index_is_built_from_old_records),
        TU_CASE(t_new_unique_index_over_collisions_changes_nothing),
        TU_CASE(t_collision_list_names_at_least_ten_keys),
        TU_CASE(t_destructive_changes_are_refused), TU_CASE(t_additive_changes_are_allowed),
        TU_CASE(t_redefined_index_is_rebuilt_or_refused),
        TU_CASE(t_declaring_a_field_checks_existing_extra_values),
        TU_CASE(t_auto_key_marked_required_still_auto), TU_CASE(t_where_text_is_canonical),
        TU_CASE(t_older_schema_never_drops_silently), TU_CASE(t_keep_adds_what_is_new),
        TU_CASE(t_drop_removes_types_and_reports), TU_CASE(t_concurrent_apply_explains_the_race),
        TU_CASE(t_schema_changed_elsewhere_is_used_at_once),
        TU_CASE(t_apply_notify_tells_when_the_writer_slot_is_ours))
