/* json.h - jansson wrappers whose errors name the line, column or field at fault */
#ifndef AEI_COMMON_JSON_H
#define AEI_COMMON_JSON_H

#include "common/buf.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

/* Deepest nesting of arrays and objects accepted in a request body. */
#define JSON_MAX_DEPTH 32

/* What was wrong with a piece of input, ready to become an error answer. */
struct problem {
    const char *code;  /* stable error code, e.g. "invalid_field" */
    char message[320]; /* what was wrong and what to do */
    char field[160];   /* the field path at fault, or "" */
    int line, column;  /* position in the body for malformed JSON, or 0 */
};

/* Parses a request body, refusing duplicate keys, NUL characters and nesting deeper than
 * JSON_MAX_DEPTH. Returns a new reference, or NULL with *pb filled in (code "empty_body" or
 * "malformed_json"). */
json_t *json_parse_body(const char *data, size_t len, struct problem *pb);

/* Fills *pb as an "invalid_field" problem: "field F: expected E, got G". */
void problem_field(struct problem *pb, const char *field, const char *expected, const json_t *got);

/* Writes a short rendering of a JSON value for error messages ("\"high\"", "150", "an object"). */
void json_describe(const json_t *v, char *out, size_t n);

/* Returns a new JSON string of s in which every byte that is not part of valid UTF-8 is
 * replaced by '?': for messages that quote what a client sent. Caller owns the reference. */
json_t *json_string_lossy(const char *s);

/* Appends s, valid UTF-8, as a JSON string; for writing hot-path JSON without building a tree. */
void json_write_string(struct buf *out, const char *s);
/* The same for the len bytes at s, which need not end with a NUL. */
void json_write_string_n(struct buf *out, const char *s, size_t len);
/* Appends v as jansson writes a real with 15 significant digits: "42.0", "0.73", "6.2e-6". */
void json_write_real(struct buf *out, double v);

/* Returns doc as compact JSON text, reals with 15 significant digits (0.73, not
 * 0.72999999999999998), and releases doc. Aborts on out-of-memory. Caller frees with free(). */
char *json_render(json_t *doc);
/* Renders a keyset page {"<name>": list, "next": cursor} (taking list): the cursor is
 * "<last_key>-<last_id>" of the page's last row when more rows follow, else null. */
char *json_render_page(const char *name, json_t *list, bool more, int64_t last_key,
                       const char *last_id);

/* Whether the len bytes at s are valid UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF). */
bool utf8_valid(const char *s, size_t len);

/* Counts the code points of s, valid UTF-8 (as jansson's strings are). */
size_t utf8_length(const char *s);

/* Returns the nesting depth of v (a scalar is 0). */
int json_depth(const json_t *v);

/* Returns true if s is a valid agent id: 1-128 characters of [A-Za-z0-9._:-]. */
bool id_is_valid(const char *s);

#endif
