/* config -- see config.h.  The table below is the only place a setting is
 * declared; parsing, --help, --print-config and redaction all read it. */
#include "config.h"
#include "host.h"
#include "log.h"
#include "record.h"
#include "peer.h"
#include "seal.h"
#include "store.h"
#include "strbuf.h"
#include "tokendist.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef enum { T_STR, T_INT, T_BOOL, T_LIST } cfg_type;

#define SENSITIVE 0x1u
#define URL_CREDS 0x2u     /* a URL that may carry user:password@: shown without it */
/* Values checked at load (each item of a list), so that a bad one stops
 * the start with a message naming it. */
#define CIDR 0x4u          /* an IP address or CIDR (peer.h) */
#define HOSTNAME 0x8u      /* a host name or IP address (host.h) */
#define SHAREKEY 0x10u     /* a share key (seal.h); at most TD_SEAL_KEYS_MAX */

#define ALL (TD_CMD_SERVE | TD_CMD_REFRESH | TD_CMD_GET | TD_CMD_CHECK | TD_CMD_FILES | TD_CMD_SCF)
#define SRV (TD_CMD_SERVE | TD_CMD_SCF)
#define FEI (TD_CMD_SERVE | TD_CMD_REFRESH | TD_CMD_CHECK | TD_CMD_SCF)
#define SNK (TD_CMD_SERVE | TD_CMD_REFRESH | TD_CMD_CHECK | TD_CMD_SCF)

typedef struct cfg_entry {
    const char *flag;       /* --flag */
    const char *env[2];     /* environment / env-file names, first is canonical */
    cfg_type type;
    size_t off;
    const char *def;        /* default, as text; a T_BOOL without one is -1 until set */
    long min, max;          /* bounds for T_INT */
    unsigned flags;
    unsigned cmds;
    const char *help;
} cfg_entry;

#define O(f) offsetof(td_config, f)

static const cfg_entry table[] = {
    {"env-file", {"TOKENDIST_ENV_FILE"}, T_STR, O(env_file), NULL, 0, 0, 0, ALL,
     "read KEY=VALUE settings from this file (systemd EnvironmentFile format)"},
    {"tz", {"TOKENDIST_TZ", "TZ_NAME"}, T_STR, O(tz), "Asia/Shanghai", 0, 0, 0, ALL,
     "time zone of the *_time fields and of log lines"},
    {"name", {"TOKENDIST_TOKEN_NAME"}, T_STR, O(name), "default", 0, 0, 0, ALL,
     "token name (the seed's /release/get-token serves \"default\")"},
    {"print-config", {NULL}, T_BOOL, O(print_config), "false", 0, 0, 0, ALL,
     "print the effective settings (secrets as fingerprints) and exit"},

    {"listen", {"TOKENDIST_LISTEN"}, T_STR, O(listen), "127.0.0.1:9000", 0, 0, 0, TD_CMD_SERVE,
     "HOST:PORT to serve HTTP on"},
    {"store", {"TOKENDIST_STORE"}, T_STR, O(store), "sqlite:./var/tokendist.db", 0, 0, URL_CREDS, SRV,
     "where tokens are kept: sqlite:PATH, memory: (nothing kept across restarts), redis://[:PASSWORD@]HOST:PORT/DB or s3://BUCKET/PREFIX (Tencent COS or any S3-compatible store)"},
    {"s3-endpoint", {"TOKENDIST_S3_ENDPOINT"}, T_STR, O(s3_endpoint), NULL, 0, 0, 0, SRV,
     "S3 store: the service's address, e.g. https://cos.ap-guangzhou.myqcloud.com (the URL's ?endpoint= wins)"},
    {"s3-region", {"TOKENDIST_S3_REGION"}, T_STR, O(s3_region), NULL, 0, 0, 0, SRV,
     "S3 store: the region signed for, e.g. ap-guangzhou (default: from the endpoint's name; ?region= wins)"},
    {"s3-path-style", {"TOKENDIST_S3_PATH_STYLE"}, T_BOOL, O(s3_path_style), "false", 0, 0, 0, SRV,
     "S3 store: address the bucket as ENDPOINT/BUCKET instead of BUCKET.ENDPOINT (?path_style=1 wins)"},
    {"s3-revalidate", {"TOKENDIST_S3_REVALIDATE"}, T_INT, O(s3_revalidate), "1", 1, 3600, 0, SRV,
     "S3 store: seconds between checks for records other servers wrote (?revalidate= wins)"},
    {"push-key", {"TOKENDIST_PUSH_KEYS"}, T_LIST, O(push_keys), NULL, 0, 0, SENSITIVE, SRV,
     "key a writer must present to POST a token (repeat, or comma-separated); none: POST refused"},
    {"read-key", {"TOKENDIST_READ_KEYS"}, T_LIST, O(read_keys), NULL, 0, 0, SENSITIVE, SRV,
     "key a reader must present to GET a token (optional; repeat, or comma-separated)"},
    {"trusted-proxy", {"TOKENDIST_TRUSTED_PROXIES"}, T_LIST, O(trusted_proxies), NULL, 0, 0, CIDR, SRV,
     "reverse proxy (CIDR) whose X-Forwarded-For / X-Real-IP names the client (repeat, or comma-separated)"},
    {"allowed-host", {"TOKENDIST_ALLOWED_HOSTS"}, T_LIST, O(allowed_hosts), NULL, 0, 0, HOSTNAME, SRV,
     "Host name answered besides localhost and loopback IPs; others get 421 (repeat, or comma-separated)"},
    {"max-clock-skew", {"TOKENDIST_MAX_CLOCK_SKEW"}, T_INT, O(max_clock_skew), "300", 0, 86400, 0, SRV | TD_CMD_REFRESH,
     "seconds a record's generated_timestamp may lie in the future (400 beyond; a refresher with a share key does not trust a Gitee file it cannot open beyond it)"},
    {"cors-origin", {"TOKENDIST_CORS_ORIGIN"}, T_STR, O(cors_origin), NULL, 0, 0, 0, SRV,
     "value of Access-Control-Allow-Origin (default: * -- but none on a loopback listener without --allowed-host, so no web page can read the token)"},
    {"body-limit", {"TOKENDIST_BODY_LIMIT"}, T_INT, O(body_limit), "65536", 1024, 1048576, 0, SRV,
     "largest POST body in bytes (413 above)"},
    {"conn-limit", {"TOKENDIST_CONN_LIMIT"}, T_INT, O(conn_limit), "4096", 16, 1000000, 0, TD_CMD_SERVE,
     "most connections at once"},
    {"conn-per-ip", {"TOKENDIST_CONN_PER_IP"}, T_INT, O(conn_per_ip), "256", 0, 1000000, 0, TD_CMD_SERVE,
     "most connections from one address (0: no limit)"},
    {"conn-timeout", {"TOKENDIST_CONN_TIMEOUT"}, T_INT, O(conn_timeout), "30", 1, 3600, 0, TD_CMD_SERVE,
     "seconds an idle connection is kept"},
    {"history", {"TOKENDIST_HISTORY"}, T_INT, O(history), "20", 0, 10000, 0, SRV,
     "past records kept per token name, for audit"},
    {"tls-cert", {"TOKENDIST_TLS_CERT"}, T_STR, O(tls_cert), NULL, 0, 0, 0, TD_CMD_SERVE,
     "PEM certificate file: serve HTTPS"},
    {"tls-key", {"TOKENDIST_TLS_KEY"}, T_STR, O(tls_key), NULL, 0, 0, 0, TD_CMD_SERVE,
     "PEM private key file for --tls-cert"},

    {"app-id", {"FEISHU_APP_ID", "APP_ID"}, T_STR, O(feishu_app_id), NULL, 0, 0, 0, FEI | TD_CMD_FILES,
     "Feishu app ID (cli_…); with the secret, the refresher runs"},
    {"app-secret", {"FEISHU_APP_SECRET", "APP_SECRET"}, T_STR, O(feishu_app_secret), NULL, 0, 0, SENSITIVE, FEI | TD_CMD_FILES,
     "Feishu app secret"},
    {"feishu-base-url", {"FEISHU_BASE_URL"}, T_STR, O(feishu_base_url), "https://open.feishu.cn", 0, 0, URL_CREDS, FEI | TD_CMD_FILES,
     "Feishu Open Platform (https://open.larksuite.com for Lark)"},
    {"chat-id", {"FEISHU_CHAT_ID"}, T_STR, O(feishu_chat_id), NULL, 0, 0, 0, FEI,
     "group (oc_…) that gets the token-updated notice, sent by the app"},
    {"webhook-url", {"FEISHU_WEBHOOK_URL"}, T_STR, O(feishu_webhook_url), NULL, 0, 0, SENSITIVE, FEI,
     "custom-bot webhook that gets the notice instead of --chat-id"},
    {"webhook-secret", {"FEISHU_WEBHOOK_SECRET"}, T_STR, O(feishu_webhook_secret), NULL, 0, 0, SENSITIVE, FEI,
     "signing secret of the custom-bot webhook"},
    {"renew-window", {"FEISHU_RENEW_WINDOW"}, T_INT, O(renew_window), "1800", 2, 86400, 0, FEI,
     "seconds before expiry in which Feishu hands out a new token (small values: tests only)"},
    {"retry-min", {"TOKENDIST_RETRY_MIN"}, T_INT, O(retry_min), "2", 1, 3600, 0, FEI,
     "first retry delay in seconds after a failed refresh"},
    {"retry-max", {"TOKENDIST_RETRY_MAX"}, T_INT, O(retry_max), "300", 1, 86400, 0, FEI,
     "longest retry delay in seconds"},
    {"alert-below", {"TOKENDIST_ALERT_BELOW"}, T_INT, O(alert_below), "600", 0, 86400, 0, FEI,
     "alert the group when refreshing fails and less than this many seconds are left"},
    {"http-timeout", {"TOKENDIST_HTTP_TIMEOUT"}, T_INT, O(http_timeout), "10", 1, 600, 0, ALL,
     "seconds an outgoing HTTP request may take"},
    {"once", {NULL}, T_BOOL, O(once), "false", 0, 0, 0, TD_CMD_REFRESH,
     "run one refresh cycle and exit (exit code: did any sink get the token)"},

    {"tokens", {"TOKENDIST_TOKENS"}, T_LIST, O(tokens), NULL, 0, 0, 0, FEI,
     "more tokens to keep, by name (comma-separated): each set up by TOKENDIST_<NAME>_PROVIDER, _APP_ID, _APP_SECRET, … (see tokendist.env(5))"},

    {"source", {"TOKEN_SOURCE"}, T_STR, O(record_source), "财联社自动化系统", 0, 0, 0, FEI,
     "the record's \"source\" field"},
    {"usage", {"TOKEN_USAGE"}, T_STR, O(record_usage), "用于客户端从飞书群获取财联社电报文件", 0, 0, 0, FEI,
     "the record's \"usage\" field"},
    {"platform", {"TOKEN_PLATFORM"}, T_STR, O(record_platform), "腾讯云函数", 0, 0, 0, FEI,
     "the record's \"platform\" field"},

    {"tencent-cloud-enabled", {"TENCENT_CLOUD_ENABLED"}, T_BOOL, O(tencent_cloud_enabled), "true", 0, 0, 0, SNK,
     "push each new token to TENCENT_CLOUD_API_URL"},
    {"api-url", {"TENCENT_CLOUD_API_URL"}, T_STR, O(tencent_cloud_api_url), NULL, 0, 0, URL_CREDS, SNK,
     "distribution endpoint (a tokendist server or Tencent SCF URL), e.g. https://…/release/get-token"},
    {"public-url", {"TOKENDIST_PUBLIC_URL"}, T_STR, O(public_url), NULL, 0, 0, URL_CREDS, FEI,
     "客户端取 token 的地址，显示在群通知里 (默认: TENCENT_CLOUD_API_URL；再没有则是 serve 的监听地址)"},
    {"api-key", {"TENCENT_CLOUD_API_KEY"}, T_STR, O(tencent_cloud_api_key), NULL, 0, 0, SENSITIVE, SNK,
     "push key sent to the endpoint as Authorization: Bearer"},

    {"gitee", {"ENABLE_GITEE_TOKEN_SHARE"}, T_BOOL, O(gitee_enabled), "false", 0, 0, 0, SNK,
     "also share the token through a file in a Gitee repository"},
    /* The readers' side of the same switch, with no default: unset, a
     * named repository is read; false (the producer does not share there),
     * it is not, unless --gitee asks for it. */
    {"gitee", {"ENABLE_GITEE_TOKEN_SHARE"}, T_BOOL, O(gitee_read), NULL, 0, 0, 0, TD_CMD_GET | TD_CMD_FILES,
     "fall back to the Gitee file (default: when GITEE_OWNER/GITEE_REPO are set, unless ENABLE_GITEE_TOKEN_SHARE=false)"},
    {"gitee-access-token", {"GITEE_ACCESS_TOKEN"}, T_STR, O(gitee_access_token), NULL, 0, 0, SENSITIVE, SNK | TD_CMD_GET | TD_CMD_FILES,
     "Gitee personal access token"},
    {"gitee-owner", {"GITEE_OWNER"}, T_STR, O(gitee_owner), NULL, 0, 0, 0, SNK | TD_CMD_GET | TD_CMD_FILES,
     "Gitee repository owner"},
    {"gitee-repo", {"GITEE_REPO"}, T_STR, O(gitee_repo), NULL, 0, 0, 0, SNK | TD_CMD_GET | TD_CMD_FILES,
     "Gitee repository name"},
    {"gitee-file-path", {"GITEE_FILE_PATH"}, T_STR, O(gitee_file_path), "token.json", 0, 0, 0, SNK | TD_CMD_GET | TD_CMD_FILES,
     "file in the Gitee repository that holds the record"},
    {"gitee-branch", {"GITEE_BRANCH"}, T_STR, O(gitee_branch), "master", 0, 0, 0, SNK | TD_CMD_GET | TD_CMD_FILES,
     "Gitee branch"},
    {"gitee-base-url", {"GITEE_BASE_URL"}, T_STR, O(gitee_base_url), "https://gitee.com/api/v5", 0, 0, URL_CREDS, SNK | TD_CMD_GET | TD_CMD_FILES,
     "Gitee API base"},
    {"share-key", {"TOKENDIST_SHARE_KEY"}, T_LIST, O(share_keys), NULL, 0, 0, SENSITIVE | SHAREKEY, SNK | TD_CMD_GET | TD_CMD_FILES,
     "key sealing the Gitee copy with AES-256-GCM (tokendist keygen prints one; the same on the refresher and its clients); comma-separated: the first seals, each opens"},

    {"url", {"TOKENDIST_URLS", "TENCENT_CLOUD_API_URL"}, T_LIST, O(urls), NULL, 0, 0, URL_CREDS, TD_CMD_GET | TD_CMD_FILES,
     "endpoint to get the token from (repeat: tried in order)"},
    {"key", {"TOKENDIST_READ_KEY"}, T_STR, O(read_key), NULL, 0, 0, SENSITIVE, TD_CMD_GET | TD_CMD_FILES,
     "read key sent as Authorization: Bearer"},
    {"field", {"TOKENDIST_FIELD"}, T_STR, O(field), "access_token", 0, 0, 0, TD_CMD_GET,
     "which token to print: access_token or tenant_access_token"},
    {"ticket", {"TOKENDIST_TICKET"}, T_STR, O(ticket), NULL, 0, 0, 0, TD_CMD_GET,
     "print the ticket derived from the token instead (jsapi_ticket; WeChat and WeCom tokens kept with TOKENDIST_<NAME>_JSAPI_TICKET)"},
    {"json", {NULL}, T_BOOL, O(json), "false", 0, 0, 0, TD_CMD_GET,
     "print the whole record as JSON"},
    {"min-remaining", {"TOKENDIST_MIN_REMAINING"}, T_INT, O(min_remaining), "-1", -1, 7200, 0, TD_CMD_GET | TD_CMD_FILES,
     "refuse a token with fewer seconds than this left (-1: the platform's need -- feishu 300, wechat 60, wecom 0, dingtalk 300)"},
    {"cache", {"TOKENDIST_CACHE_FILE"}, T_STR, O(cache_file), NULL, 0, 0, 0, TD_CMD_GET | TD_CMD_FILES,
     "file keeping the last good record, used when every source fails"},

    {"chat", {"FEISHU_CHAT_ID"}, T_STR, O(chat), NULL, 0, 0, 0, TD_CMD_FILES,
     "chat (oc_…) whose files to list or download"},
    {"since", {NULL}, T_STR, O(since), NULL, 0, 0, 0, TD_CMD_FILES,
     "only messages from this time on (YYYY-MM-DD[ HH:MM:SS] or Unix seconds)"},
    {"until", {NULL}, T_STR, O(until), NULL, 0, 0, 0, TD_CMD_FILES,
     "only messages before this time"},
    {"match", {NULL}, T_STR, O(match), NULL, 0, 0, 0, TD_CMD_FILES,
     "only files whose name matches this glob"},
    {"out", {NULL}, T_STR, O(out_dir), ".", 0, 0, 0, TD_CMD_FILES,
     "folder to download into"},
};

#define NTABLE (sizeof table / sizeof *table)

static void *field_ptr(td_config *c, const cfg_entry *e) { return (char *)c + e->off; }

static void list_clear(td_strlist *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static int list_add(td_strlist *l, const char *s, size_t len)
{
    char **v = realloc(l->v, (l->n + 1) * sizeof *v);
    if (!v) return TD_ENOMEM;
    l->v = v;
    if (!(v[l->n] = strndup(s, len))) return TD_ENOMEM;
    l->n++;
    return TD_OK;
}

static int parse_bool(const char *v, int *out)
{
    static const char *yes[] = {"1", "true", "yes", "on"}, *no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (!strcasecmp(v, yes[i])) return *out = 1, TD_OK;
        if (!strcasecmp(v, no[i])) return *out = 0, TD_OK;
    }
    return TD_EINVAL;
}

/* Stores one value into c.  `where` names the source for the message
 * ("--body-limit", "TOKENDIST_BODY_LIMIT", "env-file x:3").  `append`
 * adds to a list instead of replacing it (repeated flags). */
static int set_value(td_config *c, const cfg_entry *e, const char *val, const char *where,
                     int append, char *err, size_t errlen)
{
    void *p = field_ptr(c, e);

    switch (e->type) {
    case T_STR: {
        char **s = p, *dup = NULL;
        if (*val && !(dup = strdup(val))) return TD_ENOMEM;
        free(*s);
        *s = dup;
        return TD_OK;
    }
    case T_INT: {
        char *end;
        long v;
        errno = 0;
        v = strtol(val, &end, 10);
        if (errno || end == val || *end || v < e->min || v > e->max) {
            snprintf(err, errlen, "%s=%s: expected a whole number from %ld to %ld", where, val,
                     e->min, e->max);
            return TD_EINVAL;
        }
        *(long *)p = v;
        return TD_OK;
    }
    case T_BOOL:
        if (parse_bool(val, p) != TD_OK) {
            snprintf(err, errlen, "%s=%s: expected true or false", where, val);
            return TD_EINVAL;
        }
        return TD_OK;
    case T_LIST: {
        td_strlist *l = p;
        const char *s = val;
        if (!append) list_clear(l);
        while (*s) { /* comma-separated, blanks around items ignored */
            const char *end = strchr(s, ',');
            size_t len = end ? (size_t)(end - s) : strlen(s);
            const char *a = s, *b = s + len;
            while (a < b && (*a == ' ' || *a == '\t')) a++;
            while (b > a && (b[-1] == ' ' || b[-1] == '\t')) b--;
            if (b > a && list_add(l, a, (size_t)(b - a)) != TD_OK) return TD_ENOMEM;
            if (b > a && (e->flags & (CIDR | HOSTNAME | SHAREKEY))) {
                char why[300];
                const char *item = l->v[l->n - 1];
                int rc = (e->flags & CIDR)     ? td_peer_cidr_check(item, why, sizeof why)
                         : (e->flags & HOSTNAME) ? td_host_name_check(item, why, sizeof why)
                                                 : td_seal_key_check(item, why, sizeof why);
                if (rc != TD_OK) { /* a key is named by its place, never shown */
                    if (e->flags & SHAREKEY) snprintf(err, errlen, "%s 的第 %zu 个密钥无效: %s", where, l->n, why);
                    else snprintf(err, errlen, "%s: %s", where, why);
                    return TD_EINVAL;
                }
                if ((e->flags & SHAREKEY) && l->n > TD_SEAL_KEYS_MAX) {
                    snprintf(err, errlen, "%s: 最多 %d 个密钥", where, TD_SEAL_KEYS_MAX);
                    return TD_EINVAL;
                }
            }
            s = end ? end + 1 : s + len;
        }
        return TD_OK;
    }
    }
    return TD_EINVAL;
}

static const cfg_entry *find_env(const char *key, unsigned cmd)
{
    for (size_t i = 0; i < NTABLE; i++)
        if (table[i].cmds & cmd)
            for (int j = 0; j < 2; j++)
                if (table[i].env[j] && !strcmp(table[i].env[j], key)) return &table[i];
    return NULL;
}

static const cfg_entry *find_flag(const char *name, size_t len, unsigned cmd)
{
    for (size_t i = 0; i < NTABLE; i++)
        if ((table[i].cmds & cmd) && strlen(table[i].flag) == len &&
            !strncmp(table[i].flag, name, len))
            return &table[i];
    return NULL;
}

int td_config_parse_envfile(const char *text, size_t len, td_config_kv_cb cb, void *ud,
                            char *err, size_t errlen)
{
    const char *p = text, *end = text + len;
    char key[128], val[4096];
    int lineno = 0;

    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *q, *le = eol ? eol : end;
        size_t klen = 0, vlen = 0;

        lineno++;
        while (p < le && (*p == ' ' || *p == '\t')) p++;
        if (le > p && le[-1] == '\r') le--;
        if (p == le || *p == '#' || *p == ';') goto next;
        if ((size_t)(le - p) > 7 && !strncmp(p, "export ", 7)) p += 7;
        for (q = p; q < le && (*q == '_' || (*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z') ||
                               (q > p && *q >= '0' && *q <= '9'));
             q++)
            ;
        klen = (size_t)(q - p);
        while (q < le && (*q == ' ' || *q == '\t')) q++;
        if (klen == 0 || klen >= sizeof key || q == le || *q != '=') {
            snprintf(err, errlen, "line %d: expected KEY=VALUE", lineno);
            return TD_EINVAL;
        }
        memcpy(key, p, klen);
        key[klen] = '\0';
        q++;
        while (q < le && (*q == ' ' || *q == '\t')) q++;
        if (q < le && (*q == '"' || *q == '\'')) {
            char quote = *q++;
            for (; q < le && *q != quote; q++) {
                char ch = *q;
                if (quote == '"' && ch == '\\' && q + 1 < le) {
                    ch = *++q;
                    if (ch == 'n') ch = '\n';
                }
                if (vlen + 1 >= sizeof val) goto toolong;
                val[vlen++] = ch;
            }
            if (q == le) {
                snprintf(err, errlen, "line %d: %s has no closing %c", lineno, key, quote);
                return TD_EINVAL;
            }
        } else {
            const char *ve = le;
            while (ve > q && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            vlen = (size_t)(ve - q);
            if (vlen >= sizeof val) goto toolong;
            memcpy(val, q, vlen);
        }
        val[vlen] = '\0';
        if (memchr(val, '\0', vlen)) {
            snprintf(err, errlen, "line %d: %s contains a NUL byte", lineno, key);
            return TD_EINVAL;
        }
        if (cb(ud, key, val) != TD_OK) {
            snprintf(err, errlen, "line %d: bad value for %s", lineno, key);
            return TD_EINVAL;
        }
    next:
        p = eol ? eol + 1 : end;
    }
    return TD_OK;
toolong:
    snprintf(err, errlen, "line %d: value longer than %zu bytes", lineno, sizeof val - 1);
    return TD_EINVAL;
}

struct envfile_ctx {
    td_config *c;
    unsigned cmd;
    const char *path;
    char *err;
    size_t errlen;
};

static int envfile_kv(void *ud, const char *key, const char *val)
{
    struct envfile_ctx *x = ud;
    const cfg_entry *e = find_env(key, x->cmd);
    char where[512];

    if (!e) { /* an EnvironmentFile may carry other programs' settings; ours per token are kept */
        if (!strncmp(key, "TOKENDIST_", 10)) {
            char kv[4300];
            snprintf(kv, sizeof kv, "%s=%s", key, val);
            return list_add(&x->c->envfile_extra, kv, strlen(kv));
        }
        return TD_OK;
    }
    snprintf(where, sizeof where, "%s (in %s)", key, x->path);
    return set_value(x->c, e, val, where, 0, x->err, x->errlen);
}

static int load_envfile(td_config *c, unsigned cmd, const char *path, char *err, size_t errlen)
{
    FILE *f = NULL;
    char *buf = NULL, sub[512];
    size_t n;
    int rc = TD_EINVAL;
    struct envfile_ctx x = {c, cmd, path, sub, sizeof sub};

    sub[0] = '\0';
    if (!(f = fopen(path, "r"))) {
        snprintf(err, errlen, "cannot read env-file %s: %s", path, strerror(errno));
        goto out;
    }
    if (!(buf = malloc(1 << 20))) { rc = TD_ENOMEM; goto out; }
    n = fread(buf, 1, 1 << 20, f);
    if (ferror(f) || n == 1 << 20) {
        snprintf(err, errlen, "cannot read env-file %s: %s", path,
                 ferror(f) ? strerror(errno) : "larger than 1 MiB");
        goto out;
    }
    if (td_config_parse_envfile(buf, n, envfile_kv, &x, sub, sizeof sub) != TD_OK) {
        snprintf(err, errlen, "env-file %s: %s", path, sub);
        goto out;
    }
    rc = TD_OK;
out:
    free(buf);
    if (f) fclose(f);
    return rc;
}

void td_config_usage(unsigned cmd, FILE *f)
{
    for (size_t i = 0; i < NTABLE; i++) {
        const cfg_entry *e = &table[i];
        char left[64];
        if (!(e->cmds & cmd)) continue;
        snprintf(left, sizeof left, "--%s%s", e->flag,
                 e->type == T_BOOL ? "" : e->type == T_INT ? " N" : " VALUE");
        fprintf(f, "  %-26s %s", left, e->help);
        if (e->env[0]) fprintf(f, " [%s]", e->env[0]);
        if (e->def && e->type != T_BOOL) fprintf(f, " (default: %s)", e->def);
        fputc('\n', f);
    }
    fprintf(f, "  %-26s %s\n", "--help", "show this help");
}

/* A value as --print-config shows it: a secret only as its hash, a URL
 * without the credentials it may carry. */
static const char *shown(const cfg_entry *e, const char *v, char fp[TD_FP_LEN], char *url, size_t urllen)
{
    if (e->flags & SENSITIVE) return td_log_secret_fp(v, fp);
    if (e->flags & URL_CREDS) return td_store_redact(v, url, urllen);
    return v;
}

void td_config_print(const td_config *c, unsigned cmd, FILE *f)
{
    char fp[TD_FP_LEN];

    for (size_t i = 0; i < NTABLE; i++) {
        const cfg_entry *e = &table[i];
        const void *p = (const char *)c + e->off;
        if (!(e->cmds & cmd) || !e->env[0]) continue;
        fprintf(f, "%s=", e->env[0]);
        switch (e->type) {
        case T_STR: {
            const char *s = *(char *const *)p;
            char url[1024];
            fputs(s ? shown(e, s, fp, url, sizeof url) : "", f);
            break;
        }
        case T_INT: fprintf(f, "%ld", *(const long *)p); break;
        case T_BOOL: { /* -1: a switch without default that is not set */
            int v = *(const int *)p;
            fputs(v < 0 ? "" : v ? "true" : "false", f);
            break;
        }
        case T_LIST: {
            const td_strlist *l = p;
            char url[1024];
            for (size_t j = 0; j < l->n; j++)
                fprintf(f, "%s%s", j ? "," : "", shown(e, l->v[j], fp, url, sizeof url));
            break;
        }
        }
        fputc('\n', f);
    }
}

/* Whether the query of url (after '?') has parameter key. */
static int url_has_param(const char *url, const char *key)
{
    const char *q = strchr(url, '?');
    size_t kl = strlen(key);

    for (const char *p = q; p && *p; p = strchr(p + 1, '&'))
        if (!strncmp(p + 1, key, kl) && (p[1 + kl] == '=' || p[1 + kl] == '&' || !p[1 + kl])) return 1;
    return 0;
}

/* The S3 settings reach the store as parameters of its URL (the store
 * knows nothing but its URL): each one the URL does not carry itself is
 * appended, so the URL's own parameters win.  Defaults are left out, so
 * the URL shown in logs stays what was typed unless a setting changed
 * something. */
static int fold_s3_settings(td_config *c, char *err, size_t errlen)
{
    char rv[24];
    const struct { const char *key, *val; } v[] = {
        {"endpoint", c->s3_endpoint},
        {"region", c->s3_region},
        {"path_style", c->s3_path_style ? "1" : NULL},
        {"revalidate", c->s3_revalidate != 1 ? (snprintf(rv, sizeof rv, "%ld", c->s3_revalidate), rv) : NULL},
    };
    td_strbuf b;
    char *url;

    if (!c->store || strncmp(c->store, "s3://", 5) != 0) return TD_OK;
    td_strbuf_heap(&b, 8192);
    td_strbuf_puts(&b, c->store);
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        if (!v[i].val || url_has_param(c->store, v[i].key)) continue;
        td_strbuf_printf(&b, "%c%s=", strchr(td_strbuf_str(&b), '?') ? '&' : '?', v[i].key);
        /* ':' and '/' may stand in a query (RFC 3986 3.4), so an endpoint
         * stays readable in the log line; what would end or confuse the
         * value is escaped. */
        for (const unsigned char *p = (const unsigned char *)v[i].val; *p; p++)
            if (*p <= ' ' || *p >= 0x7f || strchr("&=#%+?", *p)) td_strbuf_printf(&b, "%%%02X", *p);
            else td_strbuf_append(&b, (const char *)p, 1);
    }
    if (!(url = td_strbuf_take(&b, NULL))) {
        snprintf(err, errlen, "TOKENDIST_STORE with the TOKENDIST_S3_* settings is longer than 8 KB");
        return TD_EINVAL;
    }
    free(c->store);
    c->store = url;
    return TD_OK;
}

int td_config_load(td_config *c, unsigned cmd, int argc, char **argv, char *err, size_t errlen)
{
    char where[160];
    unsigned char by_flag[NTABLE];
    const char *envfile = NULL;
    int rc;

    memset(c, 0, sizeof *c);
    memset(by_flag, 0, sizeof by_flag);
    for (size_t i = 0; i < NTABLE; i++) {
        if (table[i].def && (rc = set_value(c, &table[i], table[i].def, table[i].flag, 0, err, errlen)))
            return rc;
        if (!table[i].def && table[i].type == T_BOOL) *(int *)field_ptr(c, &table[i]) = -1;  /* unset */
    }

    /* The env-file is found first (flag, then environment), since it sits
     * below both in precedence. */
    envfile = getenv("TOKENDIST_ENV_FILE");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--env-file") && i + 1 < argc) envfile = argv[i + 1];
        else if (!strncmp(argv[i], "--env-file=", 11)) envfile = argv[i] + 11;
    }
    if (envfile && *envfile && (rc = load_envfile(c, cmd, envfile, err, errlen)) != TD_OK) return rc;

    for (size_t i = 0; i < NTABLE; i++) {
        const cfg_entry *e = &table[i];
        if (!(e->cmds & cmd)) continue;
        /* Of two names, the first set wins (e.g. TOKENDIST_URLS over the
         * seed's TENCENT_CLOUD_API_URL). */
        for (int j = 0; j < 2; j++) {
            const char *v = e->env[j] ? getenv(e->env[j]) : NULL;
            /* An empty first name does not hide a set second one. */
            if (!v || (!*v && j == 0 && e->env[1] && getenv(e->env[1]))) continue;
            if ((rc = set_value(c, e, v, e->env[j], 0, err, errlen)) != TD_OK) return rc;
            break;
        }
    }

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *name, *eq, *val = NULL;
        const cfg_entry *e;
        size_t nlen;
        int neg = 0;

        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("Usage: tokendist %s [OPTIONS]\n\nOptions (flag > environment > env-file > default):\n",
                   argv[0]);
            td_config_usage(cmd, stdout);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument '%s' (see tokendist %s --help)", a, argv[0]);
            return TD_EINVAL;
        }
        name = a + 2;
        eq = strchr(name, '=');
        nlen = eq ? (size_t)(eq - name) : strlen(name);
        e = find_flag(name, nlen, cmd);
        if (!e && nlen > 3 && !strncmp(name, "no-", 3) && (e = find_flag(name + 3, nlen - 3, cmd)) &&
            e->type == T_BOOL && !eq)
            neg = 1;
        if (!e || (neg && e->type != T_BOOL)) {
            snprintf(err, errlen, "unknown option --%.*s (see tokendist %s --help)", (int)nlen, name,
                     argv[0]);
            return TD_EINVAL;
        }
        if (eq) val = eq + 1;
        else if (e->type == T_BOOL) val = neg ? "false" : "true";
        else if (i + 1 < argc) val = argv[++i];
        else {
            snprintf(err, errlen, "option --%s needs a value (see tokendist %s --help)", e->flag, argv[0]);
            return TD_EINVAL;
        }
        snprintf(where, sizeof where, "--%s", e->flag);
        if ((rc = set_value(c, e, val, where, by_flag[e - table], err, errlen)) != TD_OK) return rc;
        by_flag[e - table] = 1;
    }
    /* A name becomes a URL segment, a store key and (per token) the stem of
     * TOKENDIST_<NAME>_… variables: one rule everywhere. */
    if (!c->name || !td_record_name_valid(c->name, strlen(c->name))) {
        snprintf(err, errlen, "--name / TOKENDIST_TOKEN_NAME '%.80s' 无效: 应为 " TD_NAME_RULE,
                 c->name ? c->name : "");
        return TD_EINVAL;
    }
    return fold_s3_settings(c, err, errlen);
}

const char *td_config_env(const td_config *c, const char *key)
{
    const char *v = getenv(key);
    size_t n = strlen(key);

    if (v && *v) return v;
    for (size_t i = c->envfile_extra.n; i-- > 0;) /* the last line for a key wins, as in the table */
        if (!strncmp(c->envfile_extra.v[i], key, n) && c->envfile_extra.v[i][n] == '=')
            return c->envfile_extra.v[i][n + 1] ? c->envfile_extra.v[i] + n + 1 : NULL;
    return NULL;
}

void td_config_free(td_config *c)
{
    list_clear(&c->envfile_extra);
    for (size_t i = 0; i < NTABLE; i++) {
        void *p = field_ptr(c, &table[i]);
        if (table[i].type == T_STR) {
            free(*(char **)p);
            *(char **)p = NULL;
        } else if (table[i].type == T_LIST) {
            list_clear(p);
        }
    }
}
