/*
 * fuzz_redact.c -- cli_redact (tools/uniqdb.c): the `uniqdb` tool quotes DB
 * in its messages, and a PostgreSQL URL's password must never be among them.
 *
 * Input: byte 0 picks the output's capacity (1 to 64 bytes when its top bit
 * is set, else room for everything); the rest is a C string (up to its first
 * NUL).  Properties:
 *   1. the output fits its capacity, NUL-terminated (ASan catches a byte
 *      more), and without a URL in the input is the input (truncated);
 *   2. with room for everything, redacting the output again changes nothing;
 *   3. a URL built from the input's words, postgresql://USER:PASS@host/db?
 *      password=PASS&schema=s, inside a message, never shows PASS once the
 *      password is made of characters that end neither part (and is not a
 *      word of the message itself).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    size_t len = strlen(text);
    size_t cap = data[0] & 0x80 ? (size_t)(data[0] & 0x3f) + 1 : len * 2 + 64;
    char *out = malloc(cap);
    cli_redact(out, cap, text);
    FUZZ_CHECK(strlen(out) < cap, "output of %zu bytes in %zu", strlen(out), cap);
    if (!strstr(text, "postgres://") && !strstr(text, "postgresql://"))
        FUZZ_CHECK(strncmp(out, text, cap - 1) == 0 && strlen(out) == (len < cap ? len : cap - 1),
                   "text without a URL changed: \"%s\" -> \"%s\"", text, out);
    if (!(data[0] & 0x80)) {
        char *again = malloc(cap);
        cli_redact(again, cap, out);
        FUZZ_CHECK(strcmp(again, out) == 0, "not idempotent: \"%s\" -> \"%s\"", out, again);
        free(again);
    }
    /* a password of characters that end neither the authority nor a parameter */
    char pass[33];
    size_t np = 0;
    for (size_t i = 0; i < len && np < 32; i++)
        if (!strchr("@/?#&:'\" \t\n\r*", text[i]))
            pass[np++] = text[i];
    pass[np] = '\0';
    /* the message's own words: a password that is one of them ("postgresql",
       "schema", ...) shows whatever is hidden, so it proves nothing */
    static const char words[] = "x: postgresql://u:@h/db?password=&schema=s: no change, "
                                "and postgres://:@[::1]:5/d?a=b&password=";
    if (np >= 4 && !strstr(words, pass)) {
        size_t mcap = 4 * np + 128;
        char *msg = malloc(mcap), *red = malloc(mcap);
        snprintf(msg, mcap, "x: postgresql://u:%s@h/db?password=%s&schema=s: no change, "
                 "and postgres://%s:%s@[::1]:5/d?a=b&password=%s", pass, pass, pass, pass, pass);
        cli_redact(red, mcap, msg);
        /* the user name (a copy of the password in the second URL) may stay */
        char *user = strstr(red, "postgres://");
        FUZZ_CHECK(user != NULL, "the second URL went: \"%s\"", red);
        size_t shown = 0;
        for (const char *p = red; (p = strstr(p, pass)) != NULL; p++)
            shown++;
        FUZZ_CHECK(shown == 1 && strncmp(user + 11, pass, np) == 0,
                   "password shown %zu times: \"%s\"", shown, red);
        free(msg);
        free(red);
    }
    free(out);
    free(text);
    return 0;
}
