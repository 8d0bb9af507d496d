/* test_ws.c - WebSocket client pieces of the load generator: frames, masking, handshake */
#include "cli/ws.h"

#include "aei/error.h"

#include <criterion/criterion.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX (1u << 20)

/* Parses `len` bytes from a heap copy of exactly that size, so that the sanitizer build catches
 * any read past what was received. */
static int parse_n(const uint8_t *b, size_t len, size_t max, struct ws_frame *f)
{
    uint8_t *copy = malloc(len ? len : 1);
    cr_assert_not_null(copy);
    memcpy(copy, b, len);
    int rc = ws_frame_parse(copy, len, max, f);
    free(copy);
    return rc;
}

/* A whole frame parses at full length and asks for more at every shorter length. */
static struct ws_frame parse_whole(const uint8_t *b, size_t len)
{
    struct ws_frame f;
    for (size_t k = 0; k < len; k++)
        cr_assert_eq(parse_n(b, k, MAX, &f), 0, "prefix of %zu of %zu bytes", k, len);
    cr_assert_eq(parse_n(b, len, MAX, &f), 1);
    cr_assert_eq(f.total_len, len);
    return f;
}

Test(ws_frame, small_text)
{
    const uint8_t b[] = {0x81, 0x05, 'h', 'e', 'l', 'l', 'o'};
    struct ws_frame f = parse_whole(b, sizeof(b));
    cr_assert(f.fin);
    cr_assert_eq(f.opcode, WS_OP_TEXT);
    cr_assert_eq(f.header_len, 2);
    cr_assert_eq(f.payload_len, 5);
}

Test(ws_frame, length_16_bit)
{
    uint8_t b[4 + 300];
    b[0] = 0x81;
    b[1] = 126;
    b[2] = 300 >> 8;
    b[3] = 300 & 0xFF;
    memset(b + 4, 'x', 300);
    struct ws_frame f = parse_whole(b, sizeof(b));
    cr_assert_eq(f.header_len, 4);
    cr_assert_eq(f.payload_len, 300);
}

Test(ws_frame, length_64_bit)
{
    size_t n = 70000;
    uint8_t *b = malloc(10 + n);
    cr_assert_not_null(b);
    b[0] = 0x82;
    b[1] = 127;
    for (int i = 0; i < 8; i++)
        b[2 + i] = (uint8_t)((uint64_t)n >> (8 * (7 - i)));
    memset(b + 10, 0, n);
    struct ws_frame f;
    /* The header tells the total before the payload is in. */
    cr_assert_eq(parse_n(b, 10, MAX, &f), 0);
    cr_assert_eq(f.header_len, 10);
    cr_assert_eq(f.total_len, 10 + n);
    cr_assert_eq(parse_n(b, 10 + n, MAX, &f), 1);
    cr_assert_eq(f.opcode, WS_OP_BINARY);
    cr_assert_eq(f.payload_len, n);
    free(b);
}

Test(ws_frame, fragments_and_control)
{
    const uint8_t first[] = {0x01, 0x02, '[', '{'};
    const uint8_t cont[] = {0x00, 0x01, '}'};
    const uint8_t last[] = {0x80, 0x01, ']'};
    const uint8_t ping[] = {0x89, 0x02, 'h', 'i'};
    const uint8_t close[] = {0x88, 0x02, 0x0F, 0xA8};
    struct ws_frame f = parse_whole(first, sizeof(first));
    cr_assert(!f.fin);
    cr_assert_eq(f.opcode, WS_OP_TEXT);
    f = parse_whole(cont, sizeof(cont));
    cr_assert(!f.fin);
    cr_assert_eq(f.opcode, WS_OP_CONT);
    f = parse_whole(last, sizeof(last));
    cr_assert(f.fin);
    cr_assert_eq(f.opcode, WS_OP_CONT);
    f = parse_whole(ping, sizeof(ping));
    cr_assert_eq(f.opcode, WS_OP_PING);
    f = parse_whole(close, sizeof(close));
    cr_assert_eq(f.opcode, WS_OP_CLOSE);
    cr_assert_eq(ws_close_code(close + 2, 2), 4008);
    cr_assert_eq(ws_close_code(close + 2, 0), 1005);
}

Test(ws_frame, rejects_reserved_bits)
{
    struct ws_frame f;
    for (uint8_t rsv = 0x10; rsv <= 0x40; rsv <<= 1) {
        const uint8_t b[] = {(uint8_t)(0x81 | rsv), 0x01, 'x'};
        cr_assert_eq(parse_n(b, sizeof(b), MAX, &f), AEI_EINVAL, "RSV bit 0x%02x", rsv);
        /* Even before the payload arrives. */
        cr_assert_eq(parse_n(b, 2, MAX, &f), AEI_EINVAL);
    }
}

Test(ws_frame, rejects_bad_opcodes_and_masks)
{
    struct ws_frame f;
    static const uint8_t bad_ops[] = {0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF};
    for (size_t i = 0; i < sizeof(bad_ops); i++) {
        const uint8_t b[] = {(uint8_t)(0x80 | bad_ops[i]), 0x00};
        cr_assert_eq(parse_n(b, sizeof(b), MAX, &f), AEI_EINVAL, "opcode %x", bad_ops[i]);
    }
    /* A server must not mask. */
    const uint8_t masked[] = {0x81, 0x81, 1, 2, 3, 4, 'x'};
    cr_assert_eq(parse_n(masked, sizeof(masked), MAX, &f), AEI_EINVAL);
}

Test(ws_frame, rejects_bad_control_frames)
{
    struct ws_frame f;
    /* Fragmented ping. */
    const uint8_t frag[] = {0x09, 0x00};
    cr_assert_eq(parse_n(frag, sizeof(frag), MAX, &f), AEI_EINVAL);
    /* A close frame longer than 125 bytes, in the 16-bit form. */
    const uint8_t longc[] = {0x88, 126, 0, 126};
    cr_assert_eq(parse_n(longc, sizeof(longc), MAX, &f), AEI_EINVAL);
}

Test(ws_frame, rejects_bad_lengths)
{
    struct ws_frame f;
    /* Not the shortest encoding. */
    const uint8_t short16[] = {0x81, 126, 0, 125};
    cr_assert_eq(parse_n(short16, sizeof(short16), MAX, &f), AEI_EINVAL);
    const uint8_t short64[] = {0x81, 127, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
    cr_assert_eq(parse_n(short64, sizeof(short64), MAX, &f), AEI_EINVAL);
    /* The top bit of a 64-bit length must be 0. */
    const uint8_t top[] = {0x81, 127, 0x80, 0, 0, 0, 0, 0, 0, 0};
    cr_assert_eq(parse_n(top, sizeof(top), MAX, &f), AEI_EINVAL);
    /* Absurd, and merely over the limit. */
    const uint8_t huge[] = {0x81, 127, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    cr_assert_eq(parse_n(huge, sizeof(huge), MAX, &f), AEI_EINVAL);
    const uint8_t over[] = {0x81, 126, 0x01, 0x00};
    cr_assert_eq(parse_n(over, sizeof(over), 255, &f), AEI_EINVAL);
    cr_assert_eq(parse_n(over, sizeof(over), 256, &f), 0);
}

Test(ws_frame, truncated_headers_need_more)
{
    struct ws_frame f;
    const uint8_t b16[] = {0x81, 126, 0x01};
    cr_assert_eq(parse_n(b16, sizeof(b16), MAX, &f), 0);
    cr_assert_eq(f.header_len, 0);
    const uint8_t b64[] = {0x81, 127, 0, 0, 0, 0, 0, 1};
    cr_assert_eq(parse_n(b64, sizeof(b64), MAX, &f), 0);
    cr_assert_eq(f.header_len, 0);
    cr_assert_eq(parse_n(b64, 0, MAX, &f), 0);
    cr_assert_eq(parse_n(b64, 1, MAX, &f), 0);
}

/* Unmasks a client frame the way a server does and checks what it carries. */
static void check_built(size_t len, unsigned op)
{
    uint8_t *payload = malloc(len + 1);
    uint8_t *out = malloc(len + WS_MAX_HEADER);
    cr_assert(payload && out);
    for (size_t i = 0; i < len; i++)
        payload[i] = (uint8_t)(i * 7 + 3);
    size_t n = ws_frame_build(out, op, payload, len, 0xA1B2C3D4u);
    cr_assert_eq(out[0], 0x80 | op);
    cr_assert(out[1] & 0x80, "client frames are masked");
    size_t plen = out[1] & 0x7F, h = 2;
    if (plen == 126) {
        plen = (size_t)out[2] << 8 | out[3];
        h = 4;
    } else if (plen == 127) {
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = plen << 8 | out[2 + i];
        h = 10;
    }
    cr_assert_eq(plen, len);
    cr_assert_eq(out[h], 0xA1);
    cr_assert_eq(out[h + 3], 0xD4);
    cr_assert_eq(n, h + 4 + len);
    ws_mask(out + h + 4, len, 0xA1B2C3D4u, 0);
    cr_assert(len == 0 || memcmp(out + h + 4, payload, len) == 0);
    free(payload);
    free(out);
}

Test(ws_frame, build_masks_and_encodes_lengths)
{
    check_built(0, WS_OP_CLOSE);
    check_built(38, WS_OP_TEXT);
    check_built(125, WS_OP_PONG);
    check_built(126, WS_OP_TEXT);
    check_built(65535, WS_OP_TEXT);
    check_built(65536, WS_OP_BINARY);
}

Test(ws_handshake, sha1_vectors)
{
    uint8_t d[20];
    ws_sha1("abc", 3, d);
    const uint8_t abc[20] = {0xa9, 0x99, 0x3e, 0x36, 0x47, 0x06, 0x81, 0x6a, 0xba, 0x3e,
                             0x25, 0x71, 0x78, 0x50, 0xc2, 0x6c, 0x9c, 0xd0, 0xd8, 0x9d};
    cr_assert_arr_eq(d, abc, 20);
    /* 56 bytes: the padding needs a second block. */
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    ws_sha1(two, strlen(two), d);
    const uint8_t want[20] = {0x84, 0x98, 0x3e, 0x44, 0x1c, 0x3b, 0xd2, 0x6e, 0xba, 0xae,
                              0x4a, 0xa1, 0xf9, 0x51, 0x29, 0xe5, 0xe5, 0x46, 0x70, 0xf1};
    cr_assert_arr_eq(d, want, 20);
}

Test(ws_handshake, accept_of_rfc_example)
{
    char out[WS_ACCEPT_LEN];
    ws_accept_for("dGhlIHNhbXBsZSBub25jZQ==", out);
    cr_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    char key[WS_KEY_LEN];
    const uint8_t raw[16] = "the sample nonce";
    ws_key_encode(raw, key);
    cr_assert_str_eq(key, "dGhlIHNhbXBsZSBub25jZQ==");
}

Test(ws_handshake, request_has_the_headers)
{
    char buf[512];
    int n = ws_request(buf, sizeof(buf), "/ws", "127.0.0.1:3000", "tok", "KEY==");
    cr_assert_gt(n, 0);
    cr_assert_not_null(strstr(buf, "GET /ws HTTP/1.1\r\n"));
    cr_assert_not_null(strstr(buf, "\r\nUpgrade: websocket\r\n"));
    cr_assert_not_null(strstr(buf, "\r\nSec-WebSocket-Key: KEY==\r\n"));
    cr_assert_not_null(strstr(buf, "\r\nAuthorization: Bearer tok\r\n"));
    cr_assert(n >= 4 && memcmp(buf + n - 4, "\r\n\r\n", 4) == 0);
    n = ws_request(buf, sizeof(buf), "/", "h:1", NULL, "K");
    cr_assert_gt(n, 0);
    cr_assert_null(strstr(buf, "Authorization"));
    cr_assert_eq(ws_request(buf, 16, "/", "h:1", NULL, "K"), AEI_EINVAL);
}

Test(ws_handshake, response_check)
{
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    const char *why;
    const char *ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\n"
                     "Connection: keep-alive, Upgrade\r\n"
                     "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    cr_assert_eq(ws_response_check(ok, strlen(ok), key, &why), 0);
    const char *wrong = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Accept: AAAA\r\n\r\n";
    cr_assert_eq(ws_response_check(wrong, strlen(wrong), key, &why), AEI_EINVAL);
    cr_assert_not_null(strstr(why, "does not match"));
    const char *noup = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    cr_assert_eq(ws_response_check(noup, strlen(noup), key, &why), AEI_EINVAL);
    const char *ext = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Extensions: permessage-deflate\r\n"
                      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    cr_assert_eq(ws_response_check(ext, strlen(ext), key, &why), AEI_EINVAL);
    const char *denied = "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n";
    cr_assert_eq(ws_response_check(denied, strlen(denied), key, &why), AEI_EINVAL);
}
