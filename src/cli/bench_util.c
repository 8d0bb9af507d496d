/* bench_util.c - pieces shared by `aei bench`'s agents (bench.c) and subscribers (bench_ws.c) */
#include "cli/bench_util.h"

#include "aei/error.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>

int bench_rbuf_reserve(uint8_t **buf, size_t *cap, size_t len, size_t min_room, size_t need,
                       size_t init, size_t max)
{
    if (*cap - len >= min_room && *cap >= need)
        return 0;
    size_t c = *cap ? *cap : init;
    while (c - len < min_room || c < need)
        c *= 2;
    if (c > max)
        return AEI_EINVAL;
    uint8_t *nb = realloc(*buf, c);
    if (!nb)
        return AEI_ENOMEM;
    *buf = nb;
    *cap = c;
    return 0;
}

bool bench_connect_failed(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);
    return getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err;
}

int bench_send(int fd, const char *buf, size_t *off, size_t len)
{
    while (*off < len) {
        ssize_t n = send(fd, buf + *off, len - *off, MSG_NOSIGNAL);
        if (n > 0) {
            *off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        return -1;
    }
    return 1;
}

void bench_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}
