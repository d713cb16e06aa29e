/*
 * test_scenarios.c -- the five scenarios of the README ("The five scenarios
 * in C"), each in one process on the scenario schema (tools/scenarios.json),
 * one write transaction per "request".  Their multi-process races live in tests/race.
 */
#include <stdio.h>
#include <string.h>

#include "testutil.h"

/* S1: get-or-create a workflow per (scheduleId, doctorName). */
static void t_s1_get_or_create_on_a_compound_key(tu *t)
{
    if (!tu_setup(t, tu_scenarios()))
        return;
    static const char *const states[] = {"a", "b", "c", "d", "e"};
    int created_total = 0;
    for (size_t i = 0; i < 5; i++) {
        udb_txn *txn = tu_w(t);
        udb_val rec = mp("{s:s, s:s, s:s}", "scheduleId", "sch-1", "doctorName", "Dr. Who",
                         "state", states[i]);
        udb_val out;
        int created = -1;
        CHECK_OK(udb_insert_or_get(&out, &created, txn, "schedule_workflow", "schedule_doctor",
                                   rec.data, rec.size));
        created_total += created;
        /* every caller gets the same record: the first one, not overwritten */
        CHECK_STR(tu_render(out), "{\"id\":1,\"scheduleId\":\"sch-1\",\"doctorName\":\"Dr. Who\","
                                  "\"state\":\"a\"}");
        CHECK(created == (i == 0));
        tu_commit(txn);
    }
    CHECK(created_total == 1);
    udb_txn *txn = tu_w(t);
    udb_val rec = mp("{s:s, s:s}", "scheduleId", "sch-1", "doctorName", "Dr. No"), out;
    int created = -1;
    CHECK_OK(udb_insert_or_get(&out, &created, txn, "schedule_workflow", "schedule_doctor",
                               rec.data, rec.size));
    CHECK(created == 1 && tu_fu(out, "id") == 2);
    CHECK_COUNT(txn, "schedule_workflow", 2);
    tu_commit(txn);
}

/* S2: a caller-chosen id returns the existing client; another unique field still fails. */
static void t_s2_caller_chosen_id(tu *t)
{
    if (!tu_setup(t, tu_scenarios()))
        return;
    udb_val rec = mp("{s:s, s:s, s:s}", "id", "c-42", "email", "ann@x", "name", "Ann");
    for (int i = 0; i < 3; i++) {
        udb_txn *txn = tu_w(t);
        udb_val out;
        int created = -1;
        CHECK_OK(udb_insert_or_get(&out, &created, txn, "client", NULL, rec.data, rec.size));
        CHECK(created == (i == 0));
        CHECK_STR(tu_render(out), "{\"id\":\"c-42\",\"email\":\"ann@x\",\"name\":\"Ann\"}");
        tu_commit(txn);
    }
    udb_txn *txn = tu_w(t);
    udb_val dup = mp("{s:s, s:s}", "id", "c-43", "email", "ann@x"), out;
    int created = -1;
    CHECK_RC(udb_insert_or_get(&out, &created, txn, "client", NULL, dup.data, dup.size),
             UDB_ECONFLICT);
    CHECK_STR(tu_conflict(txn), "client: email(email)=[\"ann@x\"] held by \"c-42\"");
    CHECK_STR(udb_errmsg(txn), "duplicate key in unique index \"client.email\": (email)=(ann@x) "
                               "already exists as id c-42");
    CHECK_COUNT(txn, "client", 1);
    tu_commit(txn);
}

/* S3: a duplicate is a conflict with structured detail; enums name their values. */
static void t_s3_conflict_detail_for_a_409(tu *t)
{
    if (!tu_setup(t, tu_scenarios()))
        return;
    udb_txn *txn = tu_w(t);
    CHECK_OK(tu_ins(NULL, txn, "workflow", mp("{s:s, s:i, s:s, s:{s:[s]}}", "workflow_name",
                                              "billing", "version", 1, "execution_engine",
                                              "temporal", "definition", "steps", "charge")));
    tu_commit(txn);

    txn = tu_w(t);
    int rc = tu_ins(NULL, txn, "workflow", mp("{s:s, s:i, s:s}", "workflow_name", "billing",
                                              "version", 1, "execution_engine", "airflow"));
    CHECK_RC(rc, UDB_ECONFLICT);
    CHECK(rc != UDB_EBADRECORD && rc != UDB_EINVAL && rc != UDB_ESCHEMA && rc != UDB_ENOTFOUND);
    const udb_conflict *c = udb_conflict_info(txn);
    if (CHECK(c != NULL && c->count == 1)) {
        /* everything an RFC 9457 body needs, without parsing the message */
        const udb_conflict_index *ci = &c->indexes[0];
        char body[512];
        snprintf(body, sizeof body,
                 "{\"status\":409,\"type\":\"%s\",\"index\":\"%s\",\"fields\":[\"%s\",\"%s\"],"
                 "\"values\":%s,\"existing\":%s}",
                 c->type, ci->index, ci->fields[0], ci->nfields > 1 ? ci->fields[1] : "?",
                 tu_render(ci->values), tu_render(ci->existing_key));
        CHECK_STR(body, "{\"status\":409,\"type\":\"workflow\",\"index\":\"name_version\","
                        "\"fields\":[\"workflow_name\",\"version\"],\"values\":[\"billing\",1],"
                        "\"existing\":1}");
    }
    CHECK_STR(udb_errmsg(txn), "duplicate key in unique index \"workflow.name_version\": "
                               "(workflow_name, version)=(billing, 1) already exists as id 1");
    /* an unknown engine names the field and the allowed values */
    CHECK_RC(tu_ins(NULL, txn, "workflow", mp("{s:s, s:i, s:s}", "workflow_name", "billing",
                                              "version", 2, "execution_engine", "spark")),
             UDB_EBADRECORD);
    CHECK_STR(udb_errmsg(txn), "type \"workflow\", field \"execution_engine\": expected one of "
                               "temporal, airflow, argo; found str \"spark\"");
    CHECK(udb_conflict_info(txn) == NULL);
    CHECK_OK(tu_ins(NULL, txn, "workflow", mp("{s:s, s:i, s:s}", "workflow_name", "billing",
                                              "version", 2, "execution_engine", "argo")));
    CHECK_COUNT(txn, "workflow", 2);
    tu_commit(txn);
}

static udb_val booking(const char *time, const char *status, const char *user)
{
    return mp("{s:s, s:s, s:s, s:s, s:s}", "psychologist", "p1", "date", "2026-01-15", "time",
              time, "status", status, "user", user);
}

static void set_status(tu *t, unsigned long long id, const char *status, int want)
{
    udb_txn *txn = tu_w(t);
    CHECK_RC(tu_upd(NULL, txn, "booking", mp("U", id), mp("{s:s}", "status", status), UDB_MERGE),
             want);
    tu_commit(txn);
}

/* S4: one active booking per slot; cancelling frees it; take the first free slot. */
static void t_s4_one_active_booking_per_slot(tu *t)
{
    if (!tu_setup(t, tu_scenarios()))
        return;
    udb_txn *txn = tu_w(t);
    udb_val out;
    CHECK_OK(tu_ins(&out, txn, "booking", booking("10:00", "pending", "u1")));
    CHECK(tu_fu(out, "id") == 1);
    tu_commit(txn);

    txn = tu_w(t);
    CHECK_RC(tu_ins(&out, txn, "booking", booking("10:00", "confirmed", "u2")), UDB_ECONFLICT);
    CHECK_STR(udb_errmsg(txn), "duplicate key in unique index \"booking.active_slot\": "
                               "(psychologist, date, time)=(p1, 2026-01-15, 10:00) already "
                               "exists as id 1");
    tu_abort(txn);

    set_status(t, 1, "cancelled", 0);                 /* frees the slot */
    txn = tu_w(t);
    CHECK_OK(tu_ins(&out, txn, "booking", booking("10:00", "confirmed", "u2")));
    CHECK(tu_fu(out, "id") == 2);
    tu_commit(txn);
    set_status(t, 1, "pending", UDB_ECONFLICT);       /* taken since: re-activation conflicts */

    /* automatic booking: the first free candidate, atomically, and which one it was */
    udb_val cands[] = {booking("10:00", "pending", "u3"), booking("11:00", "pending", "u3"),
                       booking("12:00", "pending", "u3")};
    size_t chosen = 99;
    for (size_t want = 1; want <= 3; want++) {
        txn = tu_w(t);
        int rc = udb_insert_first(&out, &chosen, txn, "booking", cands, 3);
        if (want < 3) {
            CHECK_OK(rc);
            CHECK(chosen == want);
            CHECK_STR(tu_field(out, "time"), want == 1 ? "\"11:00\"" : "\"12:00\"");
        } else {
            CHECK_RC(rc, UDB_ECONFLICT);
            CHECK_STR(tu_conflict(txn), "booking: active_slot(psychologist, date, time)="
                                        "[\"p1\",\"2026-01-15\",\"12:00\"] held by 4");
        }
        tu_commit(txn);
    }
    /* a completed booking no longer holds its slot either */
    set_status(t, 2, "completed", 0);
    txn = tu_w(t);
    CHECK_OK(udb_insert_first(&out, &chosen, txn, "booking", cands, 3));
    CHECK(chosen == 0);
    CHECK_SCAN(tu_scan(txn, "booking", "by_user", mp("[s]", "u3"), "time"),
              "\"11:00\",\"12:00\",\"10:00\"");
    CHECK_SCAN(tu_scan(txn, "booking", "active_slot", NOVAL, "id"), "5,3,4");
    tu_commit(txn);
}

/* S5: case numbers from a sequence, taken atomically with the record, no gaps. */
static void t_s5_gapless_case_numbers(tu *t)
{
    if (!tu_setup(t, tu_scenarios()))
        return;
    for (int call = 0; call < 6; call++) {
        udb_txn *txn = tu_w(t);
        uint64_t n = 0;
        CHECK_OK(udb_seq_next(&n, txn, "case_number"));
        char number[32];
        snprintf(number, sizeof number, "CASE-20250929-%06llu", (unsigned long long)n);
        CHECK_OK(tu_ins(NULL, txn, "case", mp("{s:s, s:s, s:I}", "case_number", number,
                                              "caller", "+4712345678", "opened_at",
                                              1759100000ll + call)));
        if (call == 2)
            tu_abort(txn);           /* a failed call: its number is not consumed */
        else
            tu_commit(txn);
    }
    udb_txn *txn = tu_w(t);
    CHECK_SCAN(tu_scan(txn, "case", "case_number", NOVAL, "case_number"),
              "\"CASE-20250929-000001\",\"CASE-20250929-000002\",\"CASE-20250929-000003\","
              "\"CASE-20250929-000004\",\"CASE-20250929-000005\"");
    uint64_t n = 0;
    CHECK_OK(udb_seq_get(&n, txn, "case_number"));
    CHECK(n == 5);
    /* a number taken twice would be a conflict, not a crash */
    CHECK_RC(tu_ins(NULL, txn, "case", mp("{s:s}", "case_number", "CASE-20250929-000003")),
             UDB_ECONFLICT);
    CHECK_STR(tu_conflict(txn), "case: case_number(case_number)=[\"CASE-20250929-000003\"] "
                                "held by 3");
    tu_commit(txn);
}

TU_MAIN(TU_CASE(t_s1_get_or_create_on_a_compound_key), TU_CASE(t_s2_caller_chosen_id),
        TU_CASE(t_s3_conflict_detail_for_a_409), TU_CASE(t_s4_one_active_booking_per_slot),
        TU_CASE(t_s5_gapless_case_numbers))
