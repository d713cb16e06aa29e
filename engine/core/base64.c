/*
 * base64.c -- base64 (RFC 4648, standard alphabet, padded) for the JSON
 * forms of binary values ({"$bin": ...}, {"$str": ...}) in json.c.
 *
 * Written here rather than taken from a library: Debian's candidates are
 * libsodium and OpenSSL (a cryptography dependency for sixty lines) and
 * GLib (whose decoder skips invalid characters).  The decoder is strict on
 * purpose: one text per byte string, so a value read back prints the same.
 */
#include "base64.h"

#include <stdint.h>

#include <stdlib.h>
#include <string.h>

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *udb__b64_encode(const unsigned char *in, size_t n)
{
    if (n > (SIZE_MAX - 1) / 4 * 3 - 3)
        return NULL;
    size_t outlen = (n + 2) / 3 * 4;
    char *out = malloc(outlen + 1);
    if (!out)
        return NULL;
    size_t i, o = 0;
    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64chars[v >> 18 & 63];
        out[o++] = b64chars[v >> 12 & 63];
        out[o++] = b64chars[v >> 6 & 63];
        out[o++] = b64chars[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = b64chars[v >> 18 & 63];
        out[o++] = b64chars[v >> 12 & 63];
        out[o++] = i + 1 < n ? b64chars[v >> 6 & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
    return out;
}

static int b64_value(char c)
{
    const char *p = c ? strchr(b64chars, c) : NULL;
    return p ? (int)(p - b64chars) : -1;
}

int udb__b64_decode(unsigned char **out, size_t *outlen, const char *in, size_t n)
{
    if (n % 4 != 0)
        return -1;
    unsigned char *p = malloc(n / 4 * 3 + 1);
    if (!p)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int a = b64_value(in[i]), b = b64_value(in[i + 1]);
        int c = in[i + 2] == '=' ? -2 : b64_value(in[i + 2]);
        int d = in[i + 3] == '=' ? -2 : b64_value(in[i + 3]);
        int last = i + 4 == n;
        if (a < 0 || b < 0 || c == -1 || d == -1 || (c == -2 && d != -2) ||
            ((c == -2 || d == -2) && !last))
            goto bad;
        p[o++] = (unsigned char)(a << 2 | b >> 4);
        if (c >= 0) {
            p[o++] = (unsigned char)((b & 15) << 4 | c >> 2);
            if (d >= 0)
                p[o++] = (unsigned char)((c & 3) << 6 | d);
            else if (c & 3)
                goto bad; /* non-canonical trailing bits */
        } else if (b & 15) {
            goto bad;
        }
    }
    *out = p;
    *outlen = o;
    return 0;
bad:
    free(p);
    return -1;
}
