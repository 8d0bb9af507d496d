/* bench_util.h - pieces shared by `aei bench`'s agents (bench.c) and subscribers (bench_ws.c) */
#ifndef AEI_CLI_BENCH_UTIL_H
#define AEI_CLI_BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

/* CLOCK_MONOTONIC in nanoseconds. */
static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The next number of the xorshift64* generator whose state is *s (never 0): plenty for varying
 * payloads and keys. */
static inline uint64_t bench_rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/*
 * Readies a connection's receive buffer (`*buf` of `*cap` bytes, the first `len` in use) for the
 * next recv(): when fewer than `min_room` bytes are free or it is smaller than `need`, it grows to
 * its size (`init`, above 0, when it has none yet) doubled until it has both. Returns 0;
 * AEI_EINVAL, nothing changed, when that size would pass `max` (a response or message too large);
 * AEI_ENOMEM, nothing changed. The buffer may move; the caller frees it with free().
 */
int bench_rbuf_reserve(uint8_t **buf, size_t *cap, size_t len, size_t min_room, size_t need,
                       size_t init, size_t max);

/* True when the non-blocking connect() on `fd` failed: SO_ERROR is set, or cannot be read. */
bool bench_connect_failed(int fd);

/*
 * Sends buf[*off, len) on the non-blocking socket `fd` (no SIGPIPE), moving *off past what was
 * sent. Returns 1 when all is sent, 0 when the socket is full (wait for EPOLLOUT), or -1 with
 * errno set when the connection failed (EPIPE or ECONNRESET: the peer closed it).
 */
int bench_send(int fd, const char *buf, size_t *off, size_t len);

/* Writes `s` (NULL: empty) to `f` as a JSON string, quotes included. */
void bench_json_string(FILE *f, const char *s);

#endif
