/*
 * sup_msgpack.c -- building msgpack from a short format, and rendering it
 * as text for test messages.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

/* Number of items up to the bracket closing the one just opened at p. */
static size_t count_items(const char *p)
{
    int depth = 0;
    size_t commas = 0;
    bool any = false;
    for (; *p; p++) {
        if (*p == '{' || *p == '[') {
            depth++;
        } else if (*p == '}' || *p == ']') {
            if (depth-- == 0)
                break;
        } else if (*p == ',' && depth == 0) {
            commas++;
        }
        if (*p != ' ')
            any = true;
    }
    return any ? commas + 1 : 0;
}

static void expect(const char **p, char c, const char *fmt)
{
    while (**p == ' ')
        (*p)++;
    if (**p != c) {
        fprintf(stderr, "sup_pack: bad format \"%s\": expected '%c' at \"%s\"\n", fmt, c, *p);
        abort();
    }
    (*p)++;
}

static void pack(msgpack_packer *pk, const char **p, va_list *ap, const char *fmt)
{
    while (**p == ' ')
        (*p)++;
    char c = *(*p)++;
    switch (c) {
    case '{':
    case '[': {
        size_t n = count_items(*p);
        if (c == '{')
            msgpack_pack_map(pk, n);
        else
            msgpack_pack_array(pk, n);
        for (size_t i = 0; i < n; i++) {
            if (i)
                expect(p, ',', fmt);
            pack(pk, p, ap, fmt);
            if (c == '{') {
                expect(p, ':', fmt);
                pack(pk, p, ap, fmt);
            }
        }
        expect(p, c == '{' ? '}' : ']', fmt);
        break;
    }
    case 's': sup_pack_cstr(pk, va_arg(*ap, const char *)); break;
    case 'S': {
        const char *s = va_arg(*ap, const char *);
        size_t n = va_arg(*ap, size_t);
        msgpack_pack_str_with_body(pk, s, n);
        break;
    }
    case 'i': msgpack_pack_int(pk, va_arg(*ap, int)); break;
    case 'I': msgpack_pack_long_long(pk, va_arg(*ap, long long)); break;
    case 'u': msgpack_pack_unsigned_int(pk, va_arg(*ap, unsigned)); break;
    case 'U': msgpack_pack_unsigned_long_long(pk, va_arg(*ap, unsigned long long)); break;
    case 'f': msgpack_pack_double(pk, va_arg(*ap, double)); break;
    case 'F': msgpack_pack_float(pk, (float)va_arg(*ap, double)); break;
    case 'b':
        if (va_arg(*ap, int))
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
        break;
    case 'n': msgpack_pack_nil(pk); break;
    case 'x': {
        const void *b = va_arg(*ap, const void *);
        size_t n = va_arg(*ap, size_t);
        msgpack_pack_bin_with_body(pk, b, n);
        break;
    }
    case 'r': {
        udb_val v = va_arg(*ap, udb_val);
        pk->callback(pk->data, v.data, v.size);
        break;
    }
    default:
        fprintf(stderr, "sup_pack: bad format \"%s\" at '%c'\n", fmt, c);
        abort();
    }
}

void sup_vpack(msgpack_packer *pk, const char *fmt, va_list *ap)
{
    const char *p = fmt;
    pack(pk, &p, ap, fmt);
    while (*p == ' ')
        p++;
    if (*p) {
        fprintf(stderr, "sup_pack: bad format \"%s\": trailing \"%s\"\n", fmt, p);
        abort();
    }
}

void sup_pack(msgpack_packer *pk, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sup_vpack(pk, fmt, &ap);
    va_end(ap);
}

int sup_unpack(msgpack_unpacked *u, const void *data, size_t len)
{
    size_t off = 0;
    msgpack_unpacked_init(u);
    if (!data || msgpack_unpack_next(u, data, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        off != len) {
        msgpack_unpacked_destroy(u);
        return -1;
    }
    return 0;
}

const msgpack_object *sup_map_get(const msgpack_object *map, const char *name)
{
    size_t n = strlen(name);
    if (map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == n &&
            memcmp(kv->key.via.str.ptr, name, n) == 0)
            return &kv->val;
    }
    return NULL;
}

static void render(FILE *f, const msgpack_object *o, unsigned depth)
{
    if (depth > 32) {
        fputs("...", f);
        return;
    }
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: fputs("null", f); break;
    case MSGPACK_OBJECT_BOOLEAN: fputs(o->via.boolean ? "true" : "false", f); break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: fprintf(f, "%" PRIu64, o->via.u64); break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: fprintf(f, "%" PRId64, o->via.i64); break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: {
        char num[64];
        snprintf(num, sizeof num, "%.15g", o->via.f64);
        fprintf(f, "%s%s%s", o->type == MSGPACK_OBJECT_FLOAT32 ? "f32:" : "", num,
                strspn(num, "-0123456789") == strlen(num) ? ".0" : "");
        break;
    }
    case MSGPACK_OBJECT_STR:
        fprintf(f, "\"%.*s\"", (int)o->via.str.size, o->via.str.ptr);
        break;
    case MSGPACK_OBJECT_BIN: fprintf(f, "<bin %" PRIu32 ">", o->via.bin.size); break;
    case MSGPACK_OBJECT_ARRAY:
        fputc('[', f);
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i)
                fputc(',', f);
            render(f, &o->via.array.ptr[i], depth + 1);
        }
        fputc(']', f);
        break;
    case MSGPACK_OBJECT_MAP:
        fputc('{', f);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            if (i)
                fputc(',', f);
            render(f, &o->via.map.ptr[i].key, depth + 1);
            fputc(':', f);
            render(f, &o->via.map.ptr[i].val, depth + 1);
        }
        fputc('}', f);
        break;
    default: fputs("<ext>", f); break;
    }
}

void sup_render(FILE *f, const msgpack_object *o)
{
    render(f, o, 0);
}

void sup_render_object(char *out, size_t cap, const msgpack_object *o)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f) {
        render(f, o, 0);
        fclose(f);
    }
    snprintf(out, cap, "%s", text ? text : "<out of memory>");
    free(text);
}

void sup_render_bytes(char *out, size_t cap, const void *data, size_t len)
{
    msgpack_unpacked u;
    if (sup_unpack(&u, data, len) != 0) {
        snprintf(out, cap, "<%zu bad bytes>", len);
        return;
    }
    sup_render_object(out, cap, &u.data);
    msgpack_unpacked_destroy(&u);
}
