/*
 * addon.h -- what the two halves of the Node.js addon share: the per-JS-realm
 * state (instance data), the msgpack byte buffer, and the conversions between
 * JS values and msgpack (convert.c).
 */
#ifndef UDB_NODE_ADDON_H
#define UDB_NODE_ADDON_H

#define NAPI_VERSION 8
#include <node_api.h>
#include <stddef.h>
#include <stdint.h>

typedef struct async_state async_state; /* addon.c: writes in flight */

/* A growable byte buffer; oom is set once a grow failed (then len stops). */
typedef struct mbuf {
    uint8_t *p;
    size_t len, cap;
    int oom;
} mbuf;

/* One per JS realm (main thread, each worker): references to what index.js
 * handed over in init(), and the channel of its writes' completions. */
typedef struct realm {
    async_state *async;
    napi_ref make_error;  /* (desc) -> Error: builds ConflictError, RecordError, UdbError */
    napi_ref float32;     /* class Float32: a number to store as a msgpack float32 */
    napi_ref raw_string;  /* class RawString: a msgpack str whose bytes are not UTF-8 */
    napi_ref map_ctor;    /* globalThis.Map */
    napi_ref object_proto; /* Object.prototype */
    napi_ref rbuf_ref;    /* index.js's read buffer (a Buffer: JS memory) */
    uint8_t *rbuf;        /* its bytes: a record read is copied there for decode.js */
    size_t rcap;
    mbuf kbuf;            /* the key of a get or find, kept between reads */
    int kbusy;            /* kbuf in use (a read called back into JS that read again) */
    char **names;         /* type and index names interned by index.js (intern()) */
    uint32_t nnames, capnames;
} realm;

void mbuf_free(mbuf *b);

/* Encode JS value v as msgpack into b.  On bad input: throws a TypeError
 * naming where the value sits ("record.note.tags[2]": root, the argument's
 * name, then fields and indexes; .field is set to that path) and returns -1.
 * As a record (top level of a record or patch), `undefined` members are left
 * out, as JSON.stringify does. */
int enc_value(napi_env env, realm *r, napi_value v, mbuf *b, const char *root);

/* Decode the msgpack value in [p, p+len) into *out (copied into JS memory).
 * Returns 0, or -1 with an Error thrown (malformed bytes). */
int dec_value(napi_env env, realm *r, const uint8_t *p, size_t len, napi_value *out);

/* A u64 as a JS number when it is a safe integer, else a bigint. */
napi_value js_u64(napi_env env, uint64_t v);

#endif
