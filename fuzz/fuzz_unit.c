/*
 * fuzz_unit.c -- the bytes a udb_exec() unit and its results travel as
 * between processes (engine/core/unit.c): a leader reads units other processes
 * wrote into shared memory, and a caller reads the results a leader wrote.
 * Neither may trust the other's bytes.
 *
 * Input: byte 0 selects the mode.
 *   0: the rest is a shipped unit.  udb__unit_decode must reject it or
 *      give ops that udb_exec() would accept; what it gives must encode to
 *      bytes that decode to the same encoding again (a fixed point).
 *   1: byte 1 is a number of results n (1-8), the rest a response.
 *      udb__results_decode must reject it or fill n results whose encoding
 *      is a fixed point in the same way; a rejection leaves them empty.
 *   2: ops built from the rest (every kind, every field its kind takes)
 *      must survive encode -> decode field by field.
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz.h"
#include "unit.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static void encode_ops(udb_buf *b, const udb_op *ops, size_t n)
{
    memset(b, 0, sizeof *b);
    udb__unit_encode(b, ops, n);
    FUZZ_CHECK(!b->oom, "out of memory encoding a unit");
}

static bool same_bytes(const udb_buf *a, const udb_buf *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

static void unit_bytes(const uint8_t *data, size_t size)
{
    udb_arena a = {0}, a2 = {0};
    udb_op *ops, *ops2;
    size_t n, n2;
    if (udb__unit_decode(&ops, &n, &a, data, size) != 0) {
        udb__arena_free(&a);
        return;
    }
    FUZZ_CHECK(udb__unit_check(ops, n) == 0, "a decoded unit fails udb_exec's checks");
    udb_buf e1, e2;
    encode_ops(&e1, ops, n);
    FUZZ_CHECK(udb__unit_decode(&ops2, &n2, &a2, e1.p, e1.len) == 0 && n2 == n,
               "a unit's own encoding does not decode");
    encode_ops(&e2, ops2, n2);
    FUZZ_CHECK(same_bytes(&e1, &e2), "encode(decode(x)) is not a fixed point");
    udb__buf_free(&e1);
    udb__buf_free(&e2);
    udb__arena_free(&a);
    udb__arena_free(&a2);
}

static void encode_results(udb_buf *b, udb_results *res, size_t failed, int failed_rc)
{
    udb_unit u = {NULL, res->count, res, failed, failed_rc};
    memset(b, 0, sizeof *b);
    udb__results_encode(b, &u);
    FUZZ_CHECK(!b->oom, "out of memory encoding results");
}

static void result_bytes(const uint8_t *data, size_t size)
{
    if (size < 1)
        return;
    size_t n = data[0] % 8 + 1;
    udb_results *res = udb__results_new(n), *res2 = udb__results_new(n);
    FUZZ_CHECK(res && res2, "out of memory");
    size_t failed = 0, failed2 = 0;
    int frc = 0, frc2 = 0;
    if (udb__results_decode(res, &failed, &frc, data + 1, size - 1) != 0) {
        for (size_t i = 0; i < n; i++) {
            const udb_result *r = udb_result_at(res, i);
            FUZZ_CHECK(r->rc == 0 && !r->record.data && !r->conflict && r->errmsg &&
                           !r->errmsg[0],
                       "a rejected response left result %zu filled", i);
        }
    } else {
        FUZZ_CHECK(failed <= n, "failed %zu of %zu results", failed, n);
        udb_buf e1, e2;
        encode_results(&e1, res, failed, frc);
        FUZZ_CHECK(udb__results_decode(res2, &failed2, &frc2, e1.p, e1.len) == 0 &&
                       failed2 == failed && frc2 == frc,
                   "results' own encoding does not decode");
        encode_results(&e2, res2, failed2, frc2);
        FUZZ_CHECK(same_bytes(&e1, &e2), "encode(decode(x)) is not a fixed point");
        udb__buf_free(&e1);
        udb__buf_free(&e2);
    }
    udb_results_free(res);
    udb_results_free(res2);
}

/* ---- mode 2: ops built from the input --------------------------------------- */

static const char *gen_str(fuzz_reader *r, char *buf, size_t cap)
{
    const uint8_t *p;
    size_t n = fuzz_bytes(r, &p, fuzz_u8(r) % cap);
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)(p[i] ? p[i] : 'z');   /* names hold no NUL */
    buf[n] = 0;
    return buf;
}

static udb_val gen_val(fuzz_reader *r)
{
    const uint8_t *p;
    size_t n = fuzz_bytes(r, &p, fuzz_u8(r));
    return (udb_val){n ? p : (const void *)"", n};
}

static bool same_val(udb_val a, udb_val b)
{
    return a.size == b.size && (a.data == NULL) == (b.data == NULL) &&
           (a.size == 0 || memcmp(a.data, b.data, a.size) == 0);
}

static bool same_str(const char *a, const char *b)
{
    return (a == NULL) == (b == NULL) && (!a || strcmp(a, b) == 0);
}

enum { MAXOPS = 6 };

static void built_ops(const uint8_t *data, size_t size)
{
    fuzz_reader r;
    fuzz_reader_init(&r, data, size);
    udb_op ops[MAXOPS];
    udb_val cands[MAXOPS][3];
    char names[MAXOPS][4][40];
    size_t n = fuzz_u8(&r) % MAXOPS + 1;
    size_t last_seq = (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        udb_op init = UDB_OP_INIT, *op = &ops[i];
        *op = init;
        op->kind = fuzz_u8(&r) % 7 + 1;
        if (i == 0 && op->kind != UDB_OP_SEQ_NEXT && fuzz_u8(&r) % 2)
            op->kind = UDB_OP_SEQ_NEXT;
        if (op->kind != UDB_OP_SEQ_NEXT)
            op->type = gen_str(&r, names[i][0], 40);
        switch (op->kind) {
        case UDB_OP_INSERT_OR_GET:
        case UDB_OP_UPSERT:
            if (fuzz_u8(&r) % 2)
                op->index = gen_str(&r, names[i][1], 40);
            break;
        default:
            break;
        }
        if (op->kind <= UDB_OP_UPDATE)
            op->rec = gen_val(&r);
        if (op->kind == UDB_OP_UPDATE || op->kind == UDB_OP_DELETE)
            op->key = gen_val(&r);
        if (op->kind == UDB_OP_UPSERT && fuzz_u8(&r) % 2)
            op->on_insert = gen_val(&r);
        if (op->kind == UDB_OP_UPDATE)
            op->flags = fuzz_u8(&r) % 2 ? UDB_MERGE : 0;
        if (op->kind == UDB_OP_INSERT_FIRST) {
            op->ncandidates = fuzz_u8(&r) % 3 + 1;
            for (size_t j = 0; j < op->ncandidates; j++)
                cands[i][j] = gen_val(&r);
            op->candidates = cands[i];
        }
        if (op->kind == UDB_OP_SEQ_NEXT) {
            op->seq = gen_str(&r, names[i][2], 40);
            last_seq = i;
        }
        if (op->kind <= UDB_OP_UPDATE && last_seq != (size_t)-1 && fuzz_u8(&r) % 2) {
            op->seq_field = gen_str(&r, names[i][3], 40);
            op->seq_op = last_seq;
        }
    }
    if (udb__unit_check(ops, n) != 0)
        return;   /* e.g. an empty record: udb_exec refuses it before encoding */
    udb_buf e;
    encode_ops(&e, ops, n);
    udb_arena a = {0};
    udb_op *got;
    size_t ng;
    FUZZ_CHECK(udb__unit_decode(&got, &ng, &a, e.p, e.len) == 0 && ng == n,
               "a valid unit does not survive encode -> decode");
    for (size_t i = 0; i < n; i++) {
        const udb_op *x = &ops[i], *y = &got[i];
        FUZZ_CHECK(x->kind == y->kind && x->flags == y->flags && x->seq_op == y->seq_op &&
                       same_str(x->type, y->type) && same_str(x->index, y->index) &&
                       same_str(x->seq, y->seq) && same_str(x->seq_field, y->seq_field) &&
                       same_val(x->rec, y->rec) && same_val(x->key, y->key) &&
                       same_val(x->on_insert, y->on_insert) &&
                       x->ncandidates == y->ncandidates,
                   "op %zu changed on its way", i);
        for (size_t j = 0; j < x->ncandidates; j++)
            FUZZ_CHECK(same_val(x->candidates[j], y->candidates[j]),
                       "op %zu candidate %zu changed on its way", i, j);
    }
    udb__buf_free(&e);
    udb__arena_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    switch (data[0] % 3) {
    case 0:
        unit_bytes(data + 1, size - 1);
        break;
    case 1:
        result_bytes(data + 1, size - 1);
        break;
    default:
        built_ops(data + 1, size - 1);
        break;
    }
    return 0;
}
