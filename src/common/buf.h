/* buf.h - growable byte buffer */
#ifndef AEI_COMMON_BUF_H
#define AEI_COMMON_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* A growable buffer; always NUL-terminated when data is not NULL. Zero-initialise to start. */
struct buf {
    char *data;
    size_t len;
    size_t cap;
};

/* Appends n bytes. Aborts on out-of-memory (server-side helper). */
void buf_append(struct buf *b, const void *data, size_t n);
/* Appends a NUL-terminated string. */
void buf_puts(struct buf *b, const char *s);
/* Appends v in decimal (for hot paths, where printf costs). */
void buf_put_u64(struct buf *b, uint64_t v);
/* Appends printf-style formatted text. */
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Makes room for n more bytes without changing len. */
void buf_reserve(struct buf *b, size_t n);
/* Empties the buffer but keeps its memory. */
void buf_reset(struct buf *b);
/* Frees the memory; the buffer may be reused after. */
void buf_free(struct buf *b);

#endif
