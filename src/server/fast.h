/* fast.h - what the streaming (yajl) fast paths of request bodies share: checks that accept
 * exactly what the jansson paths accept, and the inputs left to those paths */
#ifndef AEI_SERVER_FAST_H
#define AEI_SERVER_FAST_H

#include "server/heartbeat.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_parse.h>

/* Labels ({"name": "value"}) being read, for a compact, sorted copy. */
struct fast_label {
    char *key, *value;
};
struct fast_labels {
    struct fast_label items[HB_LABELS_MAX];
    size_t n;
    char *key; /* read, its value not yet */
};

/* Returns a NUL-ended copy of the len bytes at s. Aborts on out-of-memory. */
char *fast_dup(const unsigned char *s, size_t len);

/* Whether a body holds what yajl takes and jansson refuses, which the fast paths leave to the
 * jansson path: escaped UTF-16 surrogates, vertical tab and form feed as whitespace, and UTF-8
 * that is invalid, overlong or encodes surrogates. */
bool fast_is_unusual(const char *s, size_t len);

/* Reads a number as jansson does (an integer as int64 made double, a real by strtod) into *out.
 * False for what jansson might refuse or read otherwise: leading zeros, integers past 18
 * digits, overflow. */
bool fast_number(const char *s, size_t len, double *out);

/* Copies an id of 1..AEI_ID_MAX bytes into out (AEI_ID_MAX + 1 bytes) and checks it with
 * id_is_valid(). */
bool fast_id(const unsigned char *s, size_t len, char *out);

/* Whether UTF-8 text (checked by yajl) has at most `limit` code points. */
bool fast_chars_within(const unsigned char *s, size_t len, size_t limit);

/* Reads an RFC 3339 time as aei_time_parse() does. */
bool fast_time(const unsigned char *s, size_t len, int64_t *us);

/* Takes a label's name: false when there are too many, it is empty, too long or repeated. */
bool fast_labels_key(struct fast_labels *l, const unsigned char *key, size_t len);
/* Takes the value of the label whose name came last: false when there is none or it is too
 * long. */
bool fast_labels_value(struct fast_labels *l, const unsigned char *s, size_t len);
/* Returns the labels as compact JSON with the names sorted (as jansson writes them with
 * JSON_SORT_KEYS), or NULL when a name still waits for its value; empties l. Caller frees. */
char *fast_labels_render(struct fast_labels *l);
/* Frees what l holds; l may be reused. */
void fast_labels_clear(struct fast_labels *l);

/* Runs yajl with `callbacks` (taking ctx) over the len bytes at body. *h is set before parsing,
 * so that callbacks can ask it how far they are. True when the body is one complete value that
 * ended at *end (which the callbacks set when the top level closes), followed by whitespace
 * alone. */
bool fast_parse(const yajl_callbacks *callbacks, void *ctx, yajl_handle *h, const char *body,
                size_t len, const size_t *end);

#endif
