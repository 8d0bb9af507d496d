/* ws.c - the client side of RFC 6455 for the load generator: handshake and frames */
#include "cli/ws.h"

#include "aei/error.h"
#include "cli/resp.h"

#include <stdio.h>
#include <string.h>

int ws_frame_parse(const uint8_t *buf, size_t len, size_t max_payload, struct ws_frame *out)
{
    memset(out, 0, sizeof(*out));
    if (len < 2)
        return 0;
    uint8_t b0 = buf[0], b1 = buf[1];
    unsigned op = b0 & 0x0F;
    if (b0 & 0x70)
        return AEI_EINVAL; /* RSV1-3: no extension was negotiated */
    if (b1 & 0x80)
        return AEI_EINVAL; /* a server never masks (RFC 6455, 5.1) */
    bool control = op & 0x8;
    if (op != WS_OP_CONT && op != WS_OP_TEXT && op != WS_OP_BINARY && op != WS_OP_CLOSE &&
        op != WS_OP_PING && op != WS_OP_PONG)
        return AEI_EINVAL;
    uint64_t plen = b1 & 0x7F;
    size_t hlen = 2;
    if (plen == 126) {
        if (len < 4)
            return 0;
        plen = (uint64_t)buf[2] << 8 | buf[3];
        hlen = 4;
        if (plen < 126)
            return AEI_EINVAL;
    } else if (plen == 127) {
        if (len < 10)
            return 0;
        plen = 0;
        for (int i = 2; i < 10; i++)
            plen = plen << 8 | buf[i];
        hlen = 10;
        if (plen >> 63 || plen <= 0xFFFF)
            return AEI_EINVAL;
    }
    if (control && (!(b0 & 0x80) || plen > 125))
        return AEI_EINVAL;
    if (plen > max_payload)
        return AEI_EINVAL;
    out->fin = b0 & 0x80;
    out->opcode = op;
    out->header_len = hlen;
    out->payload_len = (size_t)plen;
    out->total_len = hlen + (size_t)plen;
    return len >= out->total_len ? 1 : 0;
}

void ws_mask(uint8_t *p, size_t len, uint32_t mask, size_t off)
{
    uint8_t k[4] = {(uint8_t)(mask >> 24), (uint8_t)(mask >> 16), (uint8_t)(mask >> 8),
                    (uint8_t)mask};
    for (size_t i = 0; i < len; i++)
        p[i] ^= k[(off + i) & 3];
}

size_t ws_frame_build(uint8_t *out, unsigned opcode, const void *payload, size_t len, uint32_t mask)
{
    size_t h = 0;
    out[h++] = (uint8_t)(0x80 | (opcode & 0x0F));
    if (len < 126) {
        out[h++] = (uint8_t)(0x80 | len);
    } else if (len <= 0xFFFF) {
        out[h++] = 0x80 | 126;
        out[h++] = (uint8_t)(len >> 8);
        out[h++] = (uint8_t)len;
    } else {
        out[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            out[h++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    out[h++] = (uint8_t)(mask >> 24);
    out[h++] = (uint8_t)(mask >> 16);
    out[h++] = (uint8_t)(mask >> 8);
    out[h++] = (uint8_t)mask;
    if (len)
        memcpy(out + h, payload, len);
    ws_mask(out + h, len, mask, 0);
    return h + len;
}

unsigned ws_close_code(const uint8_t *payload, size_t len)
{
    if (len < 2)
        return 1005;
    return (unsigned)payload[0] << 8 | payload[1];
}

/* ---- SHA-1 (FIPS 180-4), only for Sec-WebSocket-Accept ---- */

static uint32_t rol(uint32_t x, int n)
{
    return x << n | x >> (32 - n);
}

static void sha1_block(uint32_t h[5], const uint8_t *b)
{
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16 |
               (uint32_t)b[4 * i + 2] << 8 | b[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) {
            f = (bb & c) | (~bb & d);
            k = 0x5A827999;
        } else if (i < 40) {
            f = bb ^ c ^ d;
            k = 0x6ED9EBA1;
        } else if (i < 60) {
            f = (bb & c) | (bb & d) | (c & d);
            k = 0x8F1BBCDC;
        } else {
            f = bb ^ c ^ d;
            k = 0xCA62C1D6;
        }
        uint32_t t = rol(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = rol(bb, 30);
        bb = a;
        a = t;
    }
    h[0] += a;
    h[1] += bb;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

void ws_sha1(const void *p, size_t len, uint8_t digest[20])
{
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    const uint8_t *in = p;
    size_t left = len;
    while (left >= 64) {
        sha1_block(h, in);
        in += 64;
        left -= 64;
    }
    uint8_t tail[128] = {0};
    memcpy(tail, in, left);
    tail[left] = 0x80;
    size_t tl = left + 1 + 8 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++)
        tail[tl - 1 - i] = (uint8_t)(bits >> (8 * i));
    sha1_block(h, tail);
    if (tl == 128)
        sha1_block(h, tail + 64);
    for (int i = 0; i < 5; i++) {
        digest[4 * i] = (uint8_t)(h[i] >> 24);
        digest[4 * i + 1] = (uint8_t)(h[i] >> 16);
        digest[4 * i + 2] = (uint8_t)(h[i] >> 8);
        digest[4 * i + 3] = (uint8_t)h[i];
    }
}

static void base64(const uint8_t *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = '\0';
}

void ws_key_encode(const uint8_t raw[16], char key[WS_KEY_LEN])
{
    base64(raw, 16, key);
}

void ws_accept_for(const char *key, char out[WS_ACCEPT_LEN])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char buf[128];
    size_t k = strlen(key);
    if (k > sizeof(buf) - sizeof(guid))
        k = sizeof(buf) - sizeof(guid);
    memcpy(buf, key, k);
    memcpy(buf + k, guid, sizeof(guid) - 1);
    uint8_t d[20];
    ws_sha1(buf, k + sizeof(guid) - 1, d);
    base64(d, 20, out);
}

int ws_request(char *out, size_t cap, const char *path, const char *authority, const char *token,
               const char *key)
{
    int n = snprintf(out, cap,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                     "User-Agent: aei-bench\r\n%s%s%s\r\n",
                     path, authority, key, token ? "Authorization: Bearer " : "",
                     token ? token : "", token ? "\r\n" : "");
    if (n < 0 || (size_t)n >= cap)
        return AEI_EINVAL;
    return n;
}

int ws_response_check(const char *head, size_t len, const char *key, const char **why)
{
    bool upgrade = false, connection = false, accept = false, accept_seen = false;
    char want[WS_ACCEPT_LEN];
    ws_accept_for(key, want);
    *why = NULL;
    if (len < 12 || memcmp(head, "HTTP/1.1 101", 12) != 0) {
        *why = "the answer is not 101 Switching Protocols";
        return AEI_EINVAL;
    }
    /* Skip the status line, then walk the fields up to the blank line. */
    size_t pos = 0;
    while (pos + 1 < len && !(head[pos] == '\r' && head[pos + 1] == '\n'))
        pos++;
    pos += 2;
    while (pos + 1 < len && !(head[pos] == '\r' && head[pos + 1] == '\n')) {
        size_t eol = pos;
        while (eol + 1 < len && !(head[eol] == '\r' && head[eol + 1] == '\n'))
            eol++;
        if (eol + 1 >= len)
            break;
        const char *line = head + pos;
        size_t n = eol - pos;
        const char *colon = memchr(line, ':', n);
        if (colon) {
            size_t nl = (size_t)(colon - line);
            const char *v = colon + 1;
            size_t vl = n - nl - 1;
            while (vl && (*v == ' ' || *v == '\t')) {
                v++;
                vl--;
            }
            while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                vl--;
            if (resp_name_is(line, nl, "upgrade"))
                upgrade = resp_value_has(v, vl, "websocket");
            else if (resp_name_is(line, nl, "connection"))
                connection = resp_value_has(v, vl, "upgrade");
            else if (resp_name_is(line, nl, "sec-websocket-accept")) {
                accept_seen = true;
                accept = vl == WS_ACCEPT_LEN - 1 && memcmp(v, want, vl) == 0;
            } else if (resp_name_is(line, nl, "sec-websocket-extensions") && vl) {
                *why = "the server chose an extension the client did not offer";
                return AEI_EINVAL;
            }
        }
        pos = eol + 2;
    }
    if (!upgrade)
        *why = "no 'Upgrade: websocket' in the 101 answer";
    else if (!connection)
        *why = "no 'Connection: Upgrade' in the 101 answer";
    else if (!accept_seen)
        *why = "no Sec-WebSocket-Accept in the 101 answer";
    else if (!accept)
        *why = "the Sec-WebSocket-Accept does not match the key sent";
    return *why ? AEI_EINVAL : 0;
}
