/*
 * scf -- Tencent SCF event functions: the second front door to api.c.
 *
 * An event function with a custom runtime gets each HTTP request as an
 * event JSON from SCF's runtime API and answers with an "integrated
 * response".  Two event shapes arrive:
 *   API Gateway trigger: httpMethod, path, headers, queryString, body,
 *                        isBase64Encoded, requestContext {sourceIp, ...}
 *   Function URL:        the same without requestContext (lower-case
 *                        headers, the client in x-scf-remote-addr)
 * Both become one td_api_req for td_api_handle, the handler behind the
 * HTTP server too, so both front doors answer every request identically.
 *
 * The runtime API (http://$SCF_RUNTIME_API:$SCF_RUNTIME_API_PORT):
 *   POST /runtime/init/ready            once, when ready for events (body
 *                                       " ": an empty one may go unheard)
 *   GET  /runtime/invocation/next       long poll: the next event
 *   POST /runtime/invocation/response   the integrated response
 *   POST /runtime/invocation/error      an event we cannot handle
 *   POST /runtime/init/error            start-up failed
 *
 * /next states the function's execution timeout in its header
 * time_limit_in_ms (beside request_id and memory_limit_in_mb: the Custom
 * Runtime API, https://cloud.tencent.com/document/product/583/47274, as
 * the tencent_scf crate reads it, Context in
 * https://docs.rs/tencent_scf/latest/src/tencent_scf/lib.rs.html; the
 * built-in runtimes hand the same value to a handler as
 * context.time_limit_in_ms, "函数执行超时时间",
 * https://cloud.tencent.com/document/product/583/9210).  SCF ends an
 * invocation at that limit -- 3 s unless the function is configured
 * otherwise -- so every wait inside one (a refresh the timer or a GET
 * waits for) ends early enough to answer.
 */
#ifndef TD_SCF_H
#define TD_SCF_H

#include "api.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define TD_SCF_EVENT_MAX (6u << 20)     /* SCF's own limit on a request */

/* One HTTP request carried by an event; req points into the rest. */
typedef struct td_scf_req {
    td_api_req req;
    int head;                   /* HEAD: answer without a body, as HTTP does */
    json_t *event;              /* owns the strings req points to */
    char *path;                 /* percent-decoded, without the query */
    char *body;                 /* decoded when isBase64Encoded */
    size_t body_len;
    char remote[64];
} td_scf_req;

/* Translates an event into a request.  TD_EINVAL with err saying why when
 * the event is not an HTTP request we can read (not JSON, no httpMethod,
 * a body that is not valid base64, ...), TD_ETOOBIG over
 * TD_SCF_EVENT_MAX. */
int td_scf_parse_event(const char *json, size_t len, td_scf_req *out, char *err, size_t errlen);
void td_scf_req_clear(td_scf_req *r);   /* NULL-safe, idempotent */

/* The integrated response for resp, as JSON text (caller frees):
 * {"isBase64Encoded": false, "statusCode": N, "headers": {...}, "body": "..."};
 * a body that is not UTF-8 text goes base64 with isBase64Encoded true.
 * head: send no body. */
char *td_scf_response(const td_api_resp *resp, int head, size_t *len);

/* How long an invocation may take.  deadline_ms: td_clock_mono_ms by
 * which its answer should be posted -- the function's time limit from
 * when the event arrived, less a margin to post the answer -- or 0 when
 * /next did not state the limit; limit_ms: the limit as stated (0:
 * unknown), for messages. */
typedef struct td_scf_budget {
    int64_t deadline_ms;
    long limit_ms;
} td_scf_budget;

/* The budget of an invocation whose event arrived at mono_ms with the
 * time_limit_in_ms header value limit (NULL or not a number: unknown). */
td_scf_budget td_scf_budget_of(int64_t mono_ms, const char *limit);

/* Answers one event: TD_OK with the integrated response in *out (caller
 * frees), or the td_scf_parse_event failure with err.  deadline_ms: the
 * budget's, 0 for none. */
int td_scf_handle(td_api *api, const char *event, size_t len, int64_t deadline_ms, char **out,
                  size_t *outlen, char *err, size_t errlen);

/* Reports a failed start to POST /runtime/init/error (best effort). */
void td_scf_init_error(const char *base_url, const char *msg);

/* 1 when the event text is a Timer trigger's event:
 * {"Type": "Timer", "TriggerName": …, "Time": …, "Message": …}. */
int td_scf_is_timer(const char *json, size_t len);

/* What a Timer event does (cmd_scf.c: one refresh cycle when one is due),
 * within budget b: TD_OK with *out a JSON text for the invocation's answer
 * (caller frees), or a failure with err saying why (an invocation error). */
typedef int (*td_scf_timer_cb)(void *ud, const td_scf_budget *b, char **out, char *err, size_t errlen);

/* Reports ready, then answers events until the runtime API is gone (it
 * failed to answer for a while).  base_url: "http://HOST:PORT".  Timer
 * events go to timer (NULL: an invocation error).  Returns only on
 * failure, with err saying what failed. */
int td_scf_run(td_api *api, const char *base_url, td_scf_timer_cb timer, void *ud, char *err, size_t errlen);

#endif
