/*
 * conn.c -- PostgreSQL connections: the URL, the pool, the error codes.
 *
 * Each connection is opened with client_encoding UTF8,
 * standard_conforming_strings on (the DDL's literals depend on it),
 * extra_float_digits 3 (float8 text exact: pgstore.c reads floats back), and
 * fallback_application_name "uniqdb".  libpq gives no SQLSTATE for a
 * failed connection, so a refused login is told apart from an unreachable
 * server by libpq's own signals (PQconnectionNeedsPassword) and the
 * server's FATAL texts of class 28 (English: the server's lc_messages); all
 * else that stops a connection is UDB_ECONNECT.  libpq's text is always
 * kept in the message.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgconn.h"

static const char *const schemes[] = {"postgresql://", "postgres://"};

bool udb__pg_is_url(const char *path)
{
    for (size_t i = 0; path && i < 2; i++)
        if (strncmp(path, schemes[i], strlen(schemes[i])) == 0)
            return true;
    return false;
}

void udb__pg_url_free(udb_pgurl *u)
{
    free(u->conninfo);
    free(u->schema);
    u->conninfo = u->schema = NULL;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* %-decode n bytes of s into a new string: NULL on a bad escape or NUL. */
static char *pct_decode(const char *s, size_t n, bool *bad)
{
    char *out = malloc(n + 1), *o = out;
    *bad = false;
    for (size_t i = 0; out && i < n; i++) {
        if (s[i] != '%') {
            *o++ = s[i];
            continue;
        }
        int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
        int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            *bad = true;
            free(out);
            return NULL;
        }
        *o++ = (char)(hi << 4 | lo);
        i += 2;
    }
    if (out)
        *o = '\0';
    return out;
}

void udb__pg_url_redact(udb_buf *b, const char *url)
{
    const char *auth = strstr(url, "://");
    auth = auth ? auth + 3 : url;
    size_t alen = strcspn(auth, "/?#");
    const char *at = NULL;
    for (const char *p = auth; p < auth + alen; p++)
        if (*p == '@')
            at = p;
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    const char *p = url;
    if (colon) {
        udb__buf_put(b, p, (size_t)(colon + 1 - p));
        udb__buf_printf(b, "***");
        p = at;
    }
    /* a password=... parameter of the query */
    for (const char *q = strchr(p, '?'); q;) {
        const char *v = q + 1;
        const char *amp = strchr(v, '&');
        if (strncmp(v, "password=", 9) == 0) {
            udb__buf_put(b, p, (size_t)(v + 9 - p));
            udb__buf_printf(b, "***");
            p = amp ? amp : v + strlen(v);
        }
        q = amp;
    }
    udb__buf_printf(b, "%s", p);
}

int udb__pg_url_parse(udb_pgurl *out, const char *url, udb_buf *msg)
{
    memset(out, 0, sizeof *out);
    if (!udb__pg_is_url(url)) {
        udb__buf_printf(msg, "a PostgreSQL URL begins postgresql:// or postgres://");
        return UDB_EINVAL;
    }
    udb_buf shown = {0};
    udb__pg_url_redact(&shown, url);
    const char *full = url;
    url = shown.oom || !shown.p ? "(the URL)" : (const char *)shown.p;
    const char *q = strchr(full, '?');
    size_t base = q ? (size_t)(q - full) : strlen(full);
    udb_buf ci = {0};
    udb__buf_put(&ci, full, base);
    int rc = 0;
    char sep = '?';
    for (const char *p = q ? q + 1 : NULL; p && *p && !rc;) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        if (n > 7 && strncmp(p, "schema=", 7) == 0) {
            bool bad;
            if (out->schema) {
                udb__buf_printf(msg, "%s: the schema parameter is given twice", url);
                rc = UDB_EINVAL;
            } else if (!(out->schema = pct_decode(p + 7, n - 7, &bad))) {
                udb__buf_printf(msg, bad ? "%s: the schema parameter has a bad %%-escape (or "
                                "a NUL)" : "%s: out of memory", url);
                rc = bad ? UDB_EINVAL : UDB_ENOMEM;
            } else if (strlen(out->schema) > 63) {
                udb__buf_printf(msg, "%s: schema \"%s\" is longer than PostgreSQL's 63-byte "
                                "names", url, out->schema);
                rc = UDB_EINVAL;
            }
        } else if (n == 6 && strncmp(p, "schema", 6) == 0) {
            udb__buf_printf(msg, "%s: the schema parameter needs a name (schema=NAME)", url);
            rc = UDB_EINVAL;
        } else if (strncmp(p, "schema=", 7) == 0) {
            udb__buf_printf(msg, "%s: the schema parameter needs a name (schema=NAME)", url);
            rc = UDB_EINVAL;
        } else if (n) {
            udb__buf_byte(&ci, (unsigned char)sep);
            udb__buf_put(&ci, p, n);
            sep = '&';
        }
        p = amp ? amp + 1 : NULL;
    }
    if (!rc && !out->schema && !(out->schema = strdup(UDB_PG_DEFAULT_SCHEMA)))
        rc = UDB_ENOMEM;
    udb__buf_byte(&ci, '\0');
    if (!rc && ci.oom)
        rc = UDB_ENOMEM;
    udb__buf_free(&shown);
    if (rc) {
        udb__buf_free(&ci);
        udb__pg_url_free(out);
        return rc;
    }
    out->conninfo = (char *)ci.p;
    return 0;
}

/* ---- errors ------------------------------------------------------------------ */

static int code_of(const char *state)
{
    if (!state || strlen(state) != 5)
        return UDB_ESERVER;
    if (strcmp(state, "23505") == 0)
        return UDB_ECONFLICT;
    if (strcmp(state, "54000") == 0)
        return UDB_EKEYTOOLONG;   /* an index row over the server's limit (2704 bytes) */
    if (strncmp(state, "23", 2) == 0)
        return UDB_EBADRECORD;
    if (strncmp(state, "08", 2) == 0 || strcmp(state, "53300") == 0 ||
        strcmp(state, "57P01") == 0 || strcmp(state, "57P02") == 0 ||
        strcmp(state, "57P03") == 0)
        return UDB_ECONNECT;
    if (strncmp(state, "28", 2) == 0)
        return UDB_EAUTH;
    if (strncmp(state, "53", 2) == 0)
        return UDB_ENOMEM;
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)
        return UDB_ERETRY;
    return UDB_ESERVER;
}

/* libpq's messages end with a newline; keep the text, not the newline. */
static void put_trimmed(udb_buf *msg, const char *text)
{
    size_t n = text ? strlen(text) : 0;
    while (n && (text[n - 1] == '\n' || text[n - 1] == ' '))
        n--;
    udb__buf_put(msg, text, n);
}

int udb__pg_error(udb_buf *msg, PGconn *c, const PGresult *r, const char *what)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    int rc = code_of(state);
    if (!state && (!c || PQstatus(c) != CONNECTION_OK))
        rc = UDB_ECONNECT;
    udb__buf_printf(msg, "%s: ", what);
    if (state)
        udb__buf_printf(msg, "%s ", state);
    put_trimmed(msg, r && PQresultErrorMessage(r)[0] ? PQresultErrorMessage(r)
                                                     : c ? PQerrorMessage(c) : "no connection");
    return rc;
}

int udb__pg_execp(PGresult **out, PGconn *c, const char *sql, int n,
                  const char *const *values, udb_buf *msg)
{
    if (out)
        *out = NULL;
    PGresult *r = n ? PQexecParams(c, sql, n, NULL, values, NULL, NULL, 0) : PQexec(c, sql);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        int rc = udb__pg_error(msg, c, r, "PostgreSQL");
        PQclear(r);
        return rc;
    }
    if (out)
        *out = r;
    else
        PQclear(r);
    return 0;
}

int udb__pg_exec(PGresult **out, PGconn *c, const char *sql, udb_buf *msg)
{
    return udb__pg_execp(out, c, sql, 0, NULL, msg);
}

/* ---- connections and the pool ------------------------------------------------- */

struct udb_pgpool {
    pthread_mutex_t mu;
    pthread_cond_t freed;
    udb_pgurl url;
    pid_t pid;
    size_t max, open, nidle;
    PGconn **idle;
    int version, fake_version;
    bool nolock;      /* tests: see udb__pg_pool_test_race */
    int sleep_ms;
};

/* A failed login, by what libpq says: class 28 texts of the server, or a
 * password that was needed and not given. */
static bool login_refused(PGconn *c)
{
    static const char *const texts[] = {
        "authentication failed", "no pg_hba.conf entry", "does not exist\n",
        "password authentication", "no password supplied", "is not permitted to log in",
    };
    const char *m = PQerrorMessage(c);
    if (PQconnectionNeedsPassword(c))
        return true;
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        if (strstr(m, texts[i]) && (i != 2 || strstr(m, "role \"")))
            return true;
    return false;
}

static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static int connect_one(PGconn **out, udb_pgpool *p, udb_buf *msg)
{
    static const char *const keys[] = {"dbname", "client_encoding",
                                       "fallback_application_name", NULL};
    const char *vals[] = {p->url.conninfo, "UTF8", "uniqdb", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    int rc = 0;
    if (!c) {
        udb__buf_printf(msg, "PostgreSQL: out of memory for a connection");
        return UDB_ENOMEM;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        rc = login_refused(c) ? UDB_EAUTH : UDB_ECONNECT;
        udb__buf_printf(msg, "PostgreSQL %s: ", rc == UDB_EAUTH ? "refused the login"
                                                                : "connection failed");
        put_trimmed(msg, PQerrorMessage(c));
    } else {
        PQsetNoticeProcessor(c, ignore_notice, NULL);   /* "already exists, skipping" */
        /* extra_float_digits > 0: float8 text is the shortest exact form
           (PostgreSQL >= 12), whatever the server's or role's setting, so
           float fields read back as the bits stored -- set for the session
           once here, not in every transaction (nothing of uniqdb's resets it) */
        rc = udb__pg_exec(NULL, c, "SET standard_conforming_strings = on; "
                          "SET extra_float_digits = 3", msg);
    }
    if (rc) {
        PQfinish(c);
        return rc;
    }
    *out = c;
    return 0;
}

int udb__pg_pool_open(udb_pgpool **out, const char *url, size_t max, udb_buf *msg)
{
    udb_pgpool *p = calloc(1, sizeof *p);
    if (!p)
        return UDB_ENOMEM;
    p->max = max ? max : 1;
    p->pid = getpid();
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->freed, NULL);
    int rc = udb__pg_url_parse(&p->url, url, msg);
    if (!rc && !(p->idle = calloc(p->max, sizeof *p->idle)))
        rc = UDB_ENOMEM;
    PGconn *c = NULL;
    if (!rc)
        rc = connect_one(&c, p, msg);
    if (rc) {
        udb__pg_pool_close(p);
        return rc;
    }
    p->version = PQserverVersion(c);
    p->open = 1;
    p->idle[p->nidle++] = c;
    *out = p;
    return 0;
}

void udb__pg_pool_close(udb_pgpool *p)
{
    if (!p)
        return;
    /* in a forked child the connections are the parent's: PQfinish would end
       its sessions (it sends Terminate), so they are left alone */
    for (size_t i = 0; i < p->nidle && p->pid == getpid(); i++)
        PQfinish(p->idle[i]);
    free(p->idle);
    udb__pg_url_free(&p->url);
    pthread_cond_destroy(&p->freed);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int udb__pg_acquire(PGconn **out, udb_pgpool *p, udb_buf *msg)
{
    if (p->pid != getpid()) {
        udb__buf_printf(msg, "this PostgreSQL connection pool belongs to process %d: a forked "
                        "child opens its own", (int)p->pid);
        return UDB_EINVAL;
    }
    pthread_mutex_lock(&p->mu);
    while (p->nidle == 0 && p->open >= p->max)
        pthread_cond_wait(&p->freed, &p->mu);
    if (p->nidle) {
        *out = p->idle[--p->nidle];
        pthread_mutex_unlock(&p->mu);
        return 0;
    }
    p->open++;   /* this slot is ours while connecting (outside the lock) */
    pthread_mutex_unlock(&p->mu);
    int rc = connect_one(out, p, msg);
    if (rc) {
        pthread_mutex_lock(&p->mu);
        p->open--;
        pthread_cond_signal(&p->freed);
        pthread_mutex_unlock(&p->mu);
    }
    return rc;
}

int udb__pg_connect_extra(PGconn **out, udb_pgpool *p, udb_buf *msg)
{
    if (p->pid != getpid()) {
        udb__buf_printf(msg, "this PostgreSQL connection pool belongs to process %d: a forked "
                        "child opens its own", (int)p->pid);
        return UDB_EINVAL;
    }
    return connect_one(out, p, msg);
}

void udb__pg_release(udb_pgpool *p, PGconn *c)
{
    if (!c)
        return;
    bool keep = PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) == PQTRANS_IDLE;
    if (!keep)
        PQfinish(c);
    pthread_mutex_lock(&p->mu);
    if (keep)
        p->idle[p->nidle++] = c;
    else
        p->open--;
    pthread_cond_signal(&p->freed);
    pthread_mutex_unlock(&p->mu);
}

const char *udb__pg_pool_schema(const udb_pgpool *p)
{
    return p->url.schema;
}

int udb__pg_pool_server_version(const udb_pgpool *p)
{
    return p->fake_version ? p->fake_version : p->version;
}

void udb__pg_pool_fake_version(udb_pgpool *p, int version)
{
    p->fake_version = version;
}

size_t udb__pg_pool_open_count(udb_pgpool *p)
{
    pthread_mutex_lock(&p->mu);
    size_t n = p->open;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void udb__pg_pool_test_race(udb_pgpool *p, bool nolock, int sleep_ms)
{
    p->nolock = nolock;
    p->sleep_ms = sleep_ms;
}

bool udb__pg_pool_nolock(const udb_pgpool *p)
{
    return p->nolock;
}

int udb__pg_pool_sleep_ms(const udb_pgpool *p)
{
    return p->sleep_ms;
}
