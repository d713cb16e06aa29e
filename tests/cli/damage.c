/*
 * damage.c -- test helper: damage a uniqdb database underneath the library,
 * with raw LMDB calls, so that `uniqdb check` can be shown to find it.
 *
 *   damage DIR list                        named databases and their entry counts
 *   damage DIR del-first NAME              delete the first entry of NAME
 *   damage DIR mangle-first-key NAME       add a copy of the first entry under a
 *                                          slightly different key
 *   damage DIR set-first-value NAME HEX    overwrite the first entry's value
 *   damage DIR first-value NAME            print the first entry's key and value
 *   damage DIR del-key NAME KEY            delete the entry whose key is the text KEY
 *   damage DIR hold-write SECONDS          hold the write lock (another writer)
 *
 * The engine's layout: "t:<type>" holds records, "u:<type>:<index>" unique
 * index entries, "i:<type>:<index>" non-unique ones, plus "__meta" and "__seq".
 * Prints the key it touched in hex; exits 0 on success.
 */
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int die(const char *what, int rc)
{
    fprintf(stderr, "damage: %s: %s\n", what, rc ? mdb_strerror(rc) : "failed");
    return 1;
}

static void print_hex(const char *label, const MDB_val *v)
{
    printf("%s ", label);
    for (size_t i = 0; i < v->mv_size; i++)
        printf("%02x", ((const unsigned char *)v->mv_data)[i]);
    printf("\n");
}

static int list(MDB_txn *txn)
{
    MDB_dbi main_dbi;
    MDB_cursor *cur;
    int rc;
    if ((rc = mdb_dbi_open(txn, NULL, 0, &main_dbi)) || (rc = mdb_cursor_open(txn, main_dbi, &cur)))
        return die("open main db", rc);
    MDB_val k, v;
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        char name[512];
        if (k.mv_size >= sizeof name)
            continue;
        memcpy(name, k.mv_data, k.mv_size);
        name[k.mv_size] = '\0';
        MDB_dbi dbi;
        MDB_stat st;
        if (mdb_dbi_open(txn, name, 0, &dbi) == 0 && mdb_stat(txn, dbi, &st) == 0)
            printf("%s %zu\n", name, st.ms_entries);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : die("walk main db", rc);
}

static int parse_hex(MDB_val *out, const char *hex)
{
    size_t n = strlen(hex);
    if (n % 2)
        return -1;
    unsigned char *p = malloc(n / 2 + 1);
    if (!p)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned int b;
        if (sscanf(hex + 2 * i, "%2x", &b) != 1) {
            free(p);
            return -1;
        }
        p[i] = (unsigned char)b;
    }
    out->mv_data = p;
    out->mv_size = n / 2;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: damage DIR list|del-first NAME|mangle-first-key NAME|"
                        "set-first-value NAME HEX|first-value NAME|del-key NAME KEY\n");
        return 2;
    }
    const char *op = argv[2];
    MDB_env *env = NULL;
    int rc;
    if ((rc = mdb_env_create(&env)) || (rc = mdb_env_set_maxdbs(env, 512)) ||
        (rc = mdb_env_open(env, argv[1], 0, 0640)))
        return die("open environment", rc);
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    int ex = 1;
    if ((rc = mdb_txn_begin(env, NULL, 0, &txn))) {
        ex = die("begin", rc);
        goto out;
    }
    if (strcmp(op, "hold-write") == 0) {
        /* another writer: hold LMDB's write lock for SECONDS, change nothing */
        printf("holding\n");
        fflush(stdout);
        sleep(argc > 3 ? (unsigned)atoi(argv[3]) : 2);
        ex = 0;
        goto out;
    }
    if (strcmp(op, "list") == 0) {
        ex = list(txn);
        goto commit;
    }
    if (argc < 4) {
        ex = die("missing NAME", 0);
        goto out;
    }
    MDB_dbi dbi;
    MDB_val k, v;
    if ((rc = mdb_dbi_open(txn, argv[3], 0, &dbi)) || (rc = mdb_cursor_open(txn, dbi, &cur)) ||
        (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST))) {
        ex = die(argv[3], rc);
        goto out;
    }
    if (strcmp(op, "del-key") == 0) {
        MDB_val key = {argc > 4 ? strlen(argv[4]) : 0, argc > 4 ? argv[4] : NULL};
        mdb_cursor_close(cur);
        cur = NULL;
        if (!key.mv_data || (rc = mdb_del(txn, dbi, &key, NULL))) {
            ex = die("del-key", rc);
            goto out;
        }
        print_hex("deleted", &key);
    } else if (strcmp(op, "first-value") == 0) {
        print_hex("key", &k);
        print_hex("value", &v);
    } else if (strcmp(op, "del-first") == 0) {
        print_hex("deleted", &k);
        if ((rc = mdb_cursor_del(cur, 0))) {
            ex = die("delete", rc);
            goto out;
        }
    } else if (strcmp(op, "mangle-first-key") == 0) {
        unsigned char key[512], val[512];
        if (k.mv_size == 0 || k.mv_size > sizeof key || v.mv_size > sizeof val) {
            ex = die("first entry has an unusable size", 0);
            goto out;
        }
        /* Strings end in a 0x00 terminator: change the last character instead;
         * otherwise bump the last byte (an integer's lowest byte). */
        memcpy(key, k.mv_data, k.mv_size);
        memcpy(val, v.mv_data, v.mv_size);
        if (key[k.mv_size - 1] == 0x00 && k.mv_size >= 2)
            key[k.mv_size - 2] ^= 0x01;
        else
            key[k.mv_size - 1] = (unsigned char)(key[k.mv_size - 1] + 1);
        MDB_val nk, nv;
        nk.mv_data = key;
        nk.mv_size = k.mv_size;
        nv.mv_data = val;
        nv.mv_size = v.mv_size;
        mdb_cursor_close(cur);
        cur = NULL;
        print_hex("added", &nk);
        if ((rc = mdb_put(txn, dbi, &nk, &nv, MDB_NOOVERWRITE))) {
            ex = die("put", rc);
            goto out;
        }
    } else if (strcmp(op, "set-first-value") == 0) {
        unsigned char kbuf[512];
        MDB_val nv, key;
        if (k.mv_size > sizeof kbuf || argc < 5 || parse_hex(&nv, argv[4])) {
            ex = die("set-first-value needs a HEX value", 0);
            goto out;
        }
        memcpy(kbuf, k.mv_data, k.mv_size);
        key.mv_data = kbuf;
        key.mv_size = k.mv_size;
        mdb_cursor_close(cur);
        cur = NULL;
        print_hex("overwrote", &key);
        rc = mdb_put(txn, dbi, &key, &nv, 0);
        free(nv.mv_data);
        if (rc) {
            ex = die("put", rc);
            goto out;
        }
    } else {
        ex = die("unknown operation", 0);
        goto out;
    }
    ex = 0;
commit:
    mdb_cursor_close(cur);
    cur = NULL;
    if ((rc = mdb_txn_commit(txn)))
        ex = die("commit", rc);
    txn = NULL;
out:
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return ex;
}
