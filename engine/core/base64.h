/*
 * base64.h -- base64, RFC 4648 with padding (base64.c): the text of the JSON
 * forms {"$bin": ...} and {"$str": ...} (json.c).  A leaf.
 */
#ifndef UDB_BASE64_H
#define UDB_BASE64_H

#include <stddef.h>

/* Encode n bytes; malloc'd, NUL-terminated text, or NULL out of memory. */
char *udb__b64_encode(const unsigned char *in, size_t n);

/* Decode strict base64 (padded, canonical, no whitespace) of length n.
 * *out is malloc'd (never NULL on success).  Returns 0, or -1 if the text is
 * not such base64 or memory ran out. */
int udb__b64_decode(unsigned char **out, size_t *outlen, const char *in, size_t n);

#endif
