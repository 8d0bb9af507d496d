/* ws.h - the client side of RFC 6455 for the load generator: handshake and frames */
#ifndef AEI_CLI_WS_H
#define AEI_CLI_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Opcodes (RFC 6455, 5.2). */
#define WS_OP_CONT 0x0
#define WS_OP_TEXT 0x1
#define WS_OP_BINARY 0x2
#define WS_OP_CLOSE 0x8
#define WS_OP_PING 0x9
#define WS_OP_PONG 0xA

/* The longest frame header: 2 bytes, a 64-bit length and a masking key. */
#define WS_MAX_HEADER 14
/* Length of a Sec-WebSocket-Key or of a Sec-WebSocket-Accept value, with the NUL. */
#define WS_KEY_LEN 25
#define WS_ACCEPT_LEN 29

struct ws_frame {
    bool fin;
    unsigned opcode;
    size_t header_len;  /* bytes before the payload; 0 while the header is incomplete */
    size_t payload_len; /* valid once header_len is set */
    size_t total_len;   /* header_len + payload_len */
};

/*
 * Parses the server frame at the start of `buf` (`len` bytes received so far). Returns 1 when
 * the whole frame is there, 0 when more bytes are needed (once the header is complete,
 * `out->total_len` says how many), AEI_EINVAL when the bytes cannot be a frame from a server
 * that negotiated no extension: a reserved bit set, an unknown opcode, a masked frame, a control
 * frame that is fragmented or longer than 125 bytes, a length not in its shortest encoding or
 * with the top bit set, or a payload longer than `max_payload`.
 */
int ws_frame_parse(const uint8_t *buf, size_t len, size_t max_payload, struct ws_frame *out);

/*
 * Writes one client frame (FIN set, masked with `mask`) carrying `len` bytes of `payload` into
 * `out`, which holds at least len + WS_MAX_HEADER bytes. Returns the frame's length.
 */
size_t ws_frame_build(uint8_t *out, unsigned opcode, const void *payload, size_t len,
                      uint32_t mask);

/* XORs `len` bytes of `p` with the masking key `mask` starting at key offset `off`. */
void ws_mask(uint8_t *p, size_t len, uint32_t mask, size_t off);

/* Returns the close code of a close frame's payload, 1005 when it carries none. */
unsigned ws_close_code(const uint8_t *payload, size_t len);

/* Writes the base64 of 16 random bytes, a Sec-WebSocket-Key, into key[WS_KEY_LEN]. */
void ws_key_encode(const uint8_t raw[16], char key[WS_KEY_LEN]);

/* Writes the Sec-WebSocket-Accept value expected for `key` into out[WS_ACCEPT_LEN]. */
void ws_accept_for(const char *key, char out[WS_ACCEPT_LEN]);

/* Writes the SHA-1 of `len` bytes at `p` into `digest`; exposed for tests. */
void ws_sha1(const void *p, size_t len, uint8_t digest[20]);

/*
 * Writes the opening handshake (a GET with Upgrade: websocket) into `out` (`cap` bytes). `token`
 * may be NULL (no Authorization header). Returns its length, or AEI_EINVAL when it does not fit.
 */
int ws_request(char *out, size_t cap, const char *path, const char *authority, const char *token,
               const char *key);

/*
 * Checks the head of a 101 answer to the handshake sent with `key`: Upgrade: websocket,
 * Connection: upgrade, the right Sec-WebSocket-Accept, and no extension. Returns 0, or
 * AEI_EINVAL with `*why` set to a static description.
 */
int ws_response_check(const char *head, size_t len, const char *key, const char **why);

#endif
