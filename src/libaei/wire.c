/* wire.c - libaei's HTTP: one request over libcurl, retried with backoff and full jitter. */
#include "internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double aei__now(struct aei_agent *a)
{
    if (a->cfg.now)
        return a->cfg.now(a->cfg.user);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Waits `seconds` between retries on the agent's condition variable (on CLOCK_MONOTONIC), so
 * that aei_agent_stop() cuts a long backoff short instead of overrunning its timeout. Once the
 * agent is stopping, the wait goes on only when `until_stop_deadline` (data that would be lost)
 * and it ends before the stop's deadline. Returns false when the retry should not be made. */
static bool stoppable_sleep(struct aei_agent *a, double seconds, bool until_stop_deadline)
{
    double end = mono_now() + (seconds > 0 ? seconds : 0);
    struct timespec until = {.tv_sec = (time_t)end, .tv_nsec = (long)((end - floor(end)) * 1e9)};
    bool go_on = true;
    pthread_mutex_lock(&a->lock);
    for (;;) {
        double left = end - mono_now();
        if (a->stopping && (!until_stop_deadline || a->stop_by - aei__now(a) < left)) {
            go_on = false;
            break;
        }
        if (left <= 0)
            break;
        pthread_cond_timedwait(&a->wake, &a->lock, &until);
    }
    pthread_mutex_unlock(&a->lock);
    return go_on;
}

void aei__log(struct aei_agent *a, enum aei_log_level level, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (a->cfg.on_log)
        a->cfg.on_log(level, msg, a->cfg.user);
    else if (level >= AEI_LOG_WARNING)
        fprintf(stderr, "libaei: %s\n", msg);
}

void aei__set_error(struct aei_error *err, int http_status, const char *code, const char *fmt, ...)
{
    if (!err)
        return;
    memset(err, 0, sizeof *err);
    err->http_status = http_status;
    snprintf(err->code, sizeof err->code, "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

struct reply {
    char *body;
    size_t len;
    double retry_after; /* seconds, or -1 when absent or an HTTP date */
};

static size_t on_body(char *data, size_t size, size_t n, void *userp)
{
    struct reply *r = userp;
    size_t add = size * n;
    char *grown = realloc(r->body, r->len + add + 1);
    if (!grown)
        return 0; /* curl reports a write error: retried like a broken connection */
    memcpy(grown + r->len, data, add);
    r->len += add;
    grown[r->len] = '\0';
    r->body = grown;
    return add;
}

static size_t on_header(char *data, size_t size, size_t n, void *userp)
{
    struct reply *r = userp;
    size_t len = size * n;
    static const char name[] = "retry-after:";
    if (len > sizeof name - 1 && strncasecmp(data, name, sizeof name - 1) == 0) {
        char value[64];
        size_t vlen = len - (sizeof name - 1);
        if (vlen >= sizeof value)
            vlen = sizeof value - 1;
        memcpy(value, data + sizeof name - 1, vlen);
        value[vlen] = '\0';
        char *end;
        double s = strtod(value, &end);
        while (*end == ' ' || *end == '\r' || *end == '\n')
            end++;
        /* Only delay-seconds: an HTTP date falls back to backoff. */
        r->retry_after = (end != value && *end == '\0' && s >= 0) ? s : -1;
    }
    return len;
}

/* A uniform number in [0, 1) from the agent's own generator (splitmix64). */
static double agent_random(struct aei_agent *a)
{
    pthread_mutex_lock(&a->lock);
    uint64_t z = (a->rng += 0x9e3779b97f4a7c15u);
    pthread_mutex_unlock(&a->lock);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1.0p-53; /* the top 53 bits: exactly representable */
}

/* The n-th retry's wait: exactly Retry-After (bounded), else full jitter. */
static double delay(struct aei_agent *a, int attempt, double retry_after)
{
    if (retry_after >= 0)
        return fmin(retry_after, a->cfg.retry_cap_s * 10);
    double r = a->cfg.random ? a->cfg.random(a->cfg.user) : agent_random(a);
    return r *
           fmin(a->cfg.retry_cap_s, a->cfg.retry_base_s * ldexp(1.0, attempt < 60 ? attempt : 60));
}

static const char *jstr(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

static void refused_error(struct aei_error *err, long status, const struct reply *r)
{
    json_t *doc = r->body ? json_loads(r->body, 0, NULL) : NULL;
    json_t *e = json_object_get(doc, "error");
    if (json_is_object(e)) {
        aei__set_error(err, (int)status, *jstr(e, "code") ? jstr(e, "code") : "http_error", "%s",
                       jstr(e, "message"));
        if (err)
            snprintf(err->field, sizeof err->field, "%s", jstr(e, "field"));
    } else {
        aei__set_error(err, (int)status, "http_error", "%.200s", r->body ? r->body : "");
    }
    json_decref(doc);
}

enum outcome { SENT, RETRY, REFUSED };

/* One attempt; fills *why for a retryable failure. */
static enum outcome attempt_once(struct aei_agent *a, CURL *curl, const char *method,
                                 const char *url, const char *body, struct reply *r,
                                 json_t **answer, struct aei_error *err, char *why, size_t whylen)
{
    struct curl_slist *headers = NULL;
    headers = curl_slist_append(headers, a->auth_header);
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Expect:"); /* no 100-continue round trip */
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)(a->cfg.timeout_s * 1000));
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "libaei/0.1");
    CURLcode rc = curl_easy_perform(curl);
    curl_slist_free_all(headers);
    if (rc != CURLE_OK) {
        snprintf(why, whylen, "%s", curl_easy_strerror(rc));
        return RETRY;
    }
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300) {
        *answer = r->len ? json_loads(r->body, 0, NULL) : NULL;
        return SENT;
    }
    if (status == 429 || status >= 500) {
        snprintf(why, whylen, "HTTP %ld", status);
        return RETRY;
    }
    refused_error(err, status, r);
    return REFUSED;
}

/* Whether a wait of `wait` seconds still fits before a stop's deadline. */
static bool may_wait(struct aei_agent *a, double wait, bool until_stop_deadline)
{
    pthread_mutex_lock(&a->lock);
    a->stats.retries++;
    bool ok = !a->stopping || (until_stop_deadline && a->stop_by - aei__now(a) >= wait);
    pthread_mutex_unlock(&a->lock);
    return ok;
}

int aei__request(struct aei_agent *a, CURL *curl, const char *method, const char *path,
                 const char *body, int attempts, bool until_stop_deadline, json_t **answer,
                 struct aei_error *err)
{
    char url[1024];
    snprintf(url, sizeof url, "%s%s", a->server_url, path);
    int limit = attempts ? attempts : a->cfg.max_attempts;
    *answer = NULL;
    for (int attempt = 0;; attempt++) {
        struct reply r = {.retry_after = -1};
        char why[256];
        enum outcome o = attempt_once(a, curl, method, url, body, &r, answer, err, why, sizeof why);
        double retry_after = r.retry_after;
        free(r.body);
        if (o == SENT)
            return AEI_OK;
        if (o == REFUSED)
            return AEI_EREFUSED;
        if (limit > 0 && attempt + 1 >= limit) {
            aei__set_error(err, 0, "unreachable", "%s %s: gave up after %d attempts: %s", method,
                           path, attempt + 1, why);
            return AEI_EUNREACHABLE;
        }
        double wait = delay(a, attempt, retry_after);
        if (!may_wait(a, wait, until_stop_deadline)) {
            aei__set_error(err, 0, "unreachable", "%s %s: stopping: %s", method, path, why);
            return AEI_EUNREACHABLE;
        }
        aei__log(a, AEI_LOG_DEBUG, "%s %s: %s; retrying in %.3f s", method, path, why, wait);
        if (a->cfg.sleep) {
            a->cfg.sleep(wait, a->cfg.user);
        } else if (!stoppable_sleep(a, wait, until_stop_deadline)) {
            aei__set_error(err, 0, "unreachable", "%s %s: stopping: %s", method, path, why);
            return AEI_EUNREACHABLE;
        }
    }
}
