/* config -- see config.h.  The table below is the only place a setting is
 * declared; parsing, --help, --print-config, redaction, the checks of
 * values and the hints for misspelt names all read it. */
#include "config.h"
#include "clock.h"
#include "endpoint.h"
#include "host.h"
#include "http.h"
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
#include <sys/socket.h>

extern char **environ;

typedef enum { T_STR, T_INT, T_BOOL, T_LIST } cfg_type;

#define SENSITIVE 0x1u
#define URL_CREDS 0x2u     /* a URL that may carry user:password@: shown without it */

#define ALL (TD_CMD_SERVE | TD_CMD_REFRESH | TD_CMD_GET | TD_CMD_CHECK | TD_CMD_FILES | TD_CMD_SCF)
#define SRV (TD_CMD_SERVE | TD_CMD_SCF)
/* The refresher runs in serve, refresh and scf-runtime; check runs one
 * upload cycle of it (no notice, no retries, no Gitee). */
#define RUN (TD_CMD_SERVE | TD_CMD_REFRESH | TD_CMD_SCF)
#define FEI (RUN | TD_CMD_CHECK)
/* The Gitee repository: written by the refresher, read by the clients. */
#define GIT (RUN | TD_CMD_GET | TD_CMD_FILES)
#define CLI (TD_CMD_GET | TD_CMD_FILES)

/* A value's check: TD_OK, or TD_EINVAL with why saying what is wrong and
 * what to write -- naming the value itself unless it is a secret. */
typedef int (*cfg_check)(const char *v, char *why, size_t whylen);

typedef struct cfg_entry {
    const char *flag;       /* --flag */
    const char *env[2];     /* environment / env-file names, first is canonical */
    cfg_type type;
    size_t off;
    const char *def;        /* default, as text; a T_BOOL without one is -1 until set */
    long min, max;          /* bounds for T_INT; for T_LIST, max is the most items (0: any) */
    unsigned flags;
    unsigned cmds;
    const char *help;
    cfg_check check;        /* for T_STR and each item of a T_LIST; NULL: any text */
} cfg_entry;

static int check_listen(const char *v, char *why, size_t whylen);
static int check_store(const char *v, char *why, size_t whylen);
static int check_name(const char *v, char *why, size_t whylen);
/* Every URL setting by the one rule (td_endpoint_check_url), when it is
 * read: a malformed one is a settings error naming its source, not a
 * network error later. */
static int check_url(const char *v, char *why, size_t whylen)
{
    return td_endpoint_check_url(v, 1, why, whylen);
}

/* A webhook's address is itself a credential: never shown. */
static int check_secret_url(const char *v, char *why, size_t whylen)
{
    return td_endpoint_check_url(v, 0, why, whylen);
}

static int check_field(const char *v, char *why, size_t whylen);
static int check_time(const char *v, char *why, size_t whylen);

#define O(f) offsetof(td_config, f)

static const cfg_entry table[] = {
    {"env-file", {"TOKENDIST_ENV_FILE"}, T_STR, O(env_file), NULL, 0, 0, 0, ALL,
     "从这个文件读取 KEY=VALUE 设置 (systemd EnvironmentFile 格式)", NULL},
    {"tz", {"TOKENDIST_TZ", "TZ_NAME"}, T_STR, O(tz), "Asia/Shanghai", 0, 0, 0, ALL,
     "*_time 字段和日志时间所用的时区", NULL},
    {"name", {"TOKENDIST_TOKEN_NAME"}, T_STR, O(name), "default", 0, 0, 0, ALL,
     "token 名称 (原来的 /release/get-token 对应 \"default\")", check_name},
    {"print-config", {NULL}, T_BOOL, O(print_config), "false", 0, 0, 0, ALL,
     "打印生效的设置 (密钥只显示指纹) 后退出", NULL},

    {"listen", {"TOKENDIST_LISTEN"}, T_STR, O(listen), "127.0.0.1:9000", 0, 0, 0, TD_CMD_SERVE,
     "HTTP 服务监听的 HOST:PORT", check_listen},
    {"store", {"TOKENDIST_STORE"}, T_STR, O(store), "sqlite:./var/tokendist.db", 0, 0, URL_CREDS, SRV,
     "token 存在哪里: sqlite:PATH、memory: (重启后不保留)、redis://[:PASSWORD@]HOST:PORT/DB 或 s3://BUCKET/PREFIX (腾讯云 COS 或任何兼容 S3 的存储)",
     check_store},
    {"s3-endpoint", {"TOKENDIST_S3_ENDPOINT"}, T_STR, O(s3_endpoint), NULL, 0, 0, URL_CREDS, SRV,
     "S3 存储: 服务地址，例如 https://cos.ap-guangzhou.myqcloud.com (URL 中的 ?endpoint= 优先)", NULL},
    {"s3-region", {"TOKENDIST_S3_REGION"}, T_STR, O(s3_region), NULL, 0, 0, 0, SRV,
     "S3 存储: 签名所用的地域，例如 ap-guangzhou (默认取自服务地址；?region= 优先)", NULL},
    {"s3-path-style", {"TOKENDIST_S3_PATH_STYLE"}, T_BOOL, O(s3_path_style), "false", 0, 0, 0, SRV,
     "S3 存储: 以 ENDPOINT/BUCKET 而不是 BUCKET.ENDPOINT 访问存储桶 (?path_style=1 优先)", NULL},
    {"s3-revalidate", {"TOKENDIST_S3_REVALIDATE"}, T_INT, O(s3_revalidate), "1", 1, 3600, 0, SRV,
     "S3 存储: 每隔多少秒检查其他服务器写入的记录 (?revalidate= 优先)", NULL},
    {"s3-credentials-file", {"TOKENDIST_S3_CREDENTIALS_FILE"}, T_STR, O(s3_credentials_file), NULL, 0, 0, 0, SRV,
     "S3 存储: 从这个文件 (绝对路径，KEY=VALUE 行，名称同凭证的环境变量) 读取凭证，文件变了就重新读取，"
     "供续期临时密钥 (?credentials_file= 优先)；不设置则取自环境变量", NULL},
    {"push-key", {"TOKENDIST_PUSH_KEYS"}, T_LIST, O(push_keys), NULL, 0, 0, SENSITIVE, SRV,
     "写入者 POST token 时要出示的密钥 (可重复，或以逗号分隔)；不设置则拒绝所有 POST", NULL},
    {"read-key", {"TOKENDIST_READ_KEYS"}, T_LIST, O(read_keys), NULL, 0, 0, SENSITIVE, SRV,
     "读取者 GET token 时要出示的密钥 (可选；可重复，或以逗号分隔)", NULL},
    {"trusted-proxy", {"TOKENDIST_TRUSTED_PROXIES"}, T_LIST, O(trusted_proxies), NULL, 0, 0, 0, SRV,
     "可信的反向代理 (CIDR)，由 --real-ip-header 指定的请求头写明客户端地址 (可重复，或以逗号分隔)",
     td_peer_cidr_check},
    {"real-ip-header", {"TOKENDIST_REAL_IP_HEADER"}, T_STR, O(real_ip_header), NULL, 0, 0, 0, SRV,
     "可信代理用来写明客户端地址的那一个请求头: X-Forwarded-For (取其最右边不是可信代理的地址) 或 X-Real-IP "
     "(nginx 的 proxy_set_header X-Real-IP $remote_addr)；不设置: 两者皆可，但另一个写明了别的地址时只认代理本身",
     td_peer_header_check},
    {"allowed-host", {"TOKENDIST_ALLOWED_HOSTS"}, T_LIST, O(allowed_hosts), NULL, 0, 0, 0, SRV,
     "除 localhost 和回环地址外允许的 Host 名，其他的答 421 (可重复，或以逗号分隔)", td_host_name_check},
    {"max-clock-skew", {"TOKENDIST_MAX_CLOCK_SKEW"}, T_INT, O(max_clock_skew), "300", 0, 86400, 0, RUN,
     "记录的 generated_timestamp 最多可以超前多少秒 (超过答 400；设置了共享密钥的刷新器对打不开的 Gitee 文件也只信到这里)",
     NULL},
    {"cors-origin", {"TOKENDIST_CORS_ORIGIN"}, T_STR, O(cors_origin), NULL, 0, 0, 0, SRV,
     "Access-Control-Allow-Origin 的值 (默认 *；但监听回环地址且没有 --allowed-host 时不发，网页读不到 token)", NULL},
    {"body-limit", {"TOKENDIST_BODY_LIMIT"}, T_INT, O(body_limit), "65536", 1024, 1048576, 0, SRV,
     "POST 请求体最大字节数 (超过答 413)", NULL},
    {"conn-limit", {"TOKENDIST_CONN_LIMIT"}, T_INT, O(conn_limit), "4096", 16, 1000000, 0, TD_CMD_SERVE,
     "同时最多的连接数", NULL},
    {"conn-per-ip", {"TOKENDIST_CONN_PER_IP"}, T_INT, O(conn_per_ip), "256", 0, 1000000, 0, TD_CMD_SERVE,
     "同一地址最多的连接数 (0: 不限)", NULL},
    {"conn-timeout", {"TOKENDIST_CONN_TIMEOUT"}, T_INT, O(conn_timeout), "30", 1, 3600, 0, TD_CMD_SERVE,
     "空闲连接保留的秒数", NULL},
    {"history", {"TOKENDIST_HISTORY"}, T_INT, O(history), "20", 0, 10000, 0, SRV,
     "每个 token 名称保留多少条历史记录，供审计", NULL},
    {"tls-cert", {"TOKENDIST_TLS_CERT"}, T_STR, O(tls_cert), NULL, 0, 0, 0, TD_CMD_SERVE,
     "PEM 证书文件: 以 HTTPS 提供服务 (与 --tls-key 一起设置)", NULL},
    {"tls-key", {"TOKENDIST_TLS_KEY"}, T_STR, O(tls_key), NULL, 0, 0, 0, TD_CMD_SERVE,
     "--tls-cert 对应的 PEM 私钥文件", NULL},

    {"app-id", {"FEISHU_APP_ID", "APP_ID"}, T_STR, O(feishu_app_id), NULL, 0, 0, 0, FEI,
     "飞书应用的 App ID (cli_…)；与 App Secret 一起设置时刷新器才会运行", NULL},
    {"app-secret", {"FEISHU_APP_SECRET", "APP_SECRET"}, T_STR, O(feishu_app_secret), NULL, 0, 0, SENSITIVE, FEI,
     "飞书应用的 App Secret", NULL},
    {"feishu-base-url", {"FEISHU_BASE_URL"}, T_STR, O(feishu_base_url), "https://open.feishu.cn", 0, 0, URL_CREDS, FEI | TD_CMD_FILES,
     "飞书开放平台地址 (Lark 用 https://open.larksuite.com)", check_url},
    {"chat-id", {"FEISHU_CHAT_ID"}, T_STR, O(feishu_chat_id), NULL, 0, 0, 0, RUN,
     "接收「token 已更新」通知的群 (oc_…)，由应用发送", NULL},
    {"webhook-url", {"FEISHU_WEBHOOK_URL"}, T_STR, O(feishu_webhook_url), NULL, 0, 0, SENSITIVE, RUN,
     "自定义机器人的 webhook，代替 --chat-id 接收通知", check_secret_url},
    {"webhook-secret", {"FEISHU_WEBHOOK_SECRET"}, T_STR, O(feishu_webhook_secret), NULL, 0, 0, SENSITIVE, RUN,
     "自定义机器人 webhook 的签名密钥", NULL},
    {"renew-window", {"FEISHU_RENEW_WINDOW"}, T_INT, O(renew_window), "1800", 2, 86400, 0, FEI,
     "过期前多少秒内飞书会发新 token (很小的值只用于测试)", NULL},
    {"retry-min", {"TOKENDIST_RETRY_MIN"}, T_INT, O(retry_min), "2", 1, 3600, 0, RUN,
     "刷新失败后第一次重试前等待的秒数", NULL},
    {"retry-max", {"TOKENDIST_RETRY_MAX"}, T_INT, O(retry_max), "300", 1, 86400, 0, RUN,
     "重试间隔最长的秒数", NULL},
    {"alert-below", {"TOKENDIST_ALERT_BELOW"}, T_INT, O(alert_below), "600", 0, 86400, 0, RUN,
     "刷新失败且 token 剩余不足这么多秒时，向群里告警", NULL},
    {"http-timeout", {"TOKENDIST_HTTP_TIMEOUT"}, T_INT, O(http_timeout), "10", 1, 600, 0, ALL,
     "每个对外 HTTP 请求最多用多少秒", NULL},
    {"once", {NULL}, T_BOOL, O(once), "false", 0, 0, 0, TD_CMD_REFRESH,
     "只运行一轮刷新就退出 (退出码: 是否有分发目标拿到了 token)", NULL},

    {"tokens", {"TOKENDIST_TOKENS"}, T_LIST, O(tokens), NULL, 0, 0, 0, RUN,
     "要维护的更多 token 的名称 (以逗号分隔)，每个由 TOKENDIST_<NAME>_PROVIDER、_APP_ID、_APP_SECRET … 配置 (见 tokendist.env(5))", NULL},

    {"source", {"TOKEN_SOURCE"}, T_STR, O(record_source), "财联社自动化系统", 0, 0, 0, FEI,
     "记录的 \"source\" 字段", NULL},
    {"usage", {"TOKEN_USAGE"}, T_STR, O(record_usage), "用于客户端从飞书群获取财联社电报文件", 0, 0, 0, FEI,
     "记录的 \"usage\" 字段", NULL},
    {"platform", {"TOKEN_PLATFORM"}, T_STR, O(record_platform), "腾讯云函数", 0, 0, 0, FEI,
     "记录的 \"platform\" 字段", NULL},

    {"tencent-cloud-enabled", {"TENCENT_CLOUD_ENABLED"}, T_BOOL, O(tencent_cloud_enabled), "true", 0, 0, 0, FEI,
     "把每个新 token 推送到 TENCENT_CLOUD_API_URL", NULL},
    {"api-url", {"TENCENT_CLOUD_API_URL"}, T_STR, O(tencent_cloud_api_url), NULL, 0, 0, URL_CREDS, FEI,
     "分发地址 (一个 tokendist 服务或腾讯云函数的地址)，例如 https://…/release/get-token", check_url},
    {"public-url", {"TOKENDIST_PUBLIC_URL"}, T_STR, O(public_url), NULL, 0, 0, URL_CREDS, RUN,
     "客户端取 token 的地址，显示在群通知里 (默认: TENCENT_CLOUD_API_URL；再没有则是 serve 的监听地址)", check_url},
    {"api-key", {"TENCENT_CLOUD_API_KEY"}, T_STR, O(tencent_cloud_api_key), NULL, 0, 0, SENSITIVE, FEI,
     "推送时以 Authorization: Bearer 发给分发地址的写入密钥", NULL},

    {"gitee", {"ENABLE_GITEE_TOKEN_SHARE"}, T_BOOL, O(gitee_enabled), "false", 0, 0, 0, RUN,
     "同时把 token 写入 Gitee 仓库中的一个文件", NULL},
    /* The readers' side of the same switch, with no default: unset, a
     * named repository is read; false (the producer does not share there),
     * it is not, unless --gitee asks for it. */
    {"gitee", {"ENABLE_GITEE_TOKEN_SHARE"}, T_BOOL, O(gitee_read), NULL, 0, 0, 0, CLI,
     "从 Gitee 文件取 token (默认: 设置了 GITEE_OWNER 和 GITEE_REPO 时取；ENABLE_GITEE_TOKEN_SHARE=false 时不取，除非给出 --gitee)",
     NULL},
    {"gitee-access-token", {"GITEE_ACCESS_TOKEN"}, T_STR, O(gitee_access_token), NULL, 0, 0, SENSITIVE, GIT,
     "Gitee 私人令牌", NULL},
    {"gitee-owner", {"GITEE_OWNER"}, T_STR, O(gitee_owner), NULL, 0, 0, 0, GIT,
     "Gitee 仓库的所有者", NULL},
    {"gitee-repo", {"GITEE_REPO"}, T_STR, O(gitee_repo), NULL, 0, 0, 0, GIT,
     "Gitee 仓库名", NULL},
    {"gitee-file-path", {"GITEE_FILE_PATH"}, T_STR, O(gitee_file_path), "token.json", 0, 0, 0, GIT,
     "Gitee 仓库中存放 token 记录的文件", NULL},
    {"gitee-branch", {"GITEE_BRANCH"}, T_STR, O(gitee_branch), "master", 0, 0, 0, GIT,
     "Gitee 分支", NULL},
    {"gitee-base-url", {"GITEE_BASE_URL"}, T_STR, O(gitee_base_url), "https://gitee.com/api/v5", 0, 0, URL_CREDS, GIT,
     "Gitee API 地址", check_url},
    {"share-key", {"TOKENDIST_SHARE_KEY"}, T_LIST, O(share_keys), NULL, 0, TD_SEAL_KEYS_MAX, SENSITIVE, GIT,
     "以 AES-256-GCM 加密 Gitee 副本的共享密钥 (tokendist keygen 生成；刷新器和客户端用同一个)；以逗号分隔时第一个用于加密，每个都可用于解密",
     td_seal_key_check},

    {"url", {"TOKENDIST_URLS", "TENCENT_CLOUD_API_URL"}, T_LIST, O(urls), NULL, 0, 0, URL_CREDS, CLI,
     "从这个地址获取 token (可重复: 依次尝试)", check_url},
    {"key", {"TOKENDIST_READ_KEY"}, T_STR, O(read_key), NULL, 0, 0, SENSITIVE, CLI,
     "以 Authorization: Bearer 发送的读取密钥", NULL},
    {"field", {"TOKENDIST_FIELD"}, T_STR, O(field), "access_token", 0, 0, 0, TD_CMD_GET,
     "打印哪个 token: access_token 或 tenant_access_token", check_field},
    {"ticket", {"TOKENDIST_TICKET"}, T_STR, O(ticket), NULL, 0, 0, 0, TD_CMD_GET,
     "改为打印由 token 换来的票据 (jsapi_ticket；微信和企业微信的 token 需设置 TOKENDIST_<NAME>_JSAPI_TICKET)", NULL},
    {"json", {NULL}, T_BOOL, O(json), "false", 0, 0, 0, TD_CMD_GET,
     "以 JSON 打印整条记录", NULL},
    {"min-remaining", {"TOKENDIST_MIN_REMAINING"}, T_INT, O(min_remaining), "-1", -1, 7200, 0, CLI,
     "剩余有效期少于这么多秒的 token 不要 (-1: 按平台的需要 —— 飞书 300、微信 60、企业微信 0、钉钉 300)", NULL},
    {"cache", {"TOKENDIST_CACHE_FILE"}, T_STR, O(cache_file), NULL, 0, 0, 0, CLI,
     "保存最近一次成功取得的记录的文件，所有来源都失败时使用", NULL},

    {"chat", {"FEISHU_CHAT_ID"}, T_STR, O(chat), NULL, 0, 0, 0, TD_CMD_FILES,
     "要列出或下载文件的群 (oc_…)", NULL},
    {"since", {NULL}, T_STR, O(since), NULL, 0, 0, 0, TD_CMD_FILES,
     "只看这个时间之后的消息 (YYYY-MM-DD[ HH:MM:SS] 或 Unix 秒)", check_time},
    {"until", {NULL}, T_STR, O(until), NULL, 0, 0, 0, TD_CMD_FILES,
     "只看这个时间之前的消息", check_time},
    {"match", {NULL}, T_STR, O(match), NULL, 0, 0, 0, TD_CMD_FILES,
     "只要文件名匹配这个通配符的文件", NULL},
    {"out", {NULL}, T_STR, O(out_dir), ".", 0, 0, 0, TD_CMD_FILES,
     "下载到这个文件夹", NULL},
};

#define NTABLE (sizeof table / sizeof *table)

/* The variables of each token TOKENDIST_TOKENS names (tokens.h). */
const char *const td_config_token_vars[] = {"PROVIDER", "APP_ID", "APP_SECRET", "BASE_URL", "JSAPI_TICKET",
                                           "RENEW_WINDOW", "API_URL", "API_KEY", "GITEE_FILE_PATH", NULL};

/* The commands' names, by bit, for "--listen 不是 get 的选项". */
static const char *const cmd_names[] = {"serve", "refresh", "get", "check", "files", "scf-runtime", "keygen"};

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

/* --- checks of values ---------------------------------------------------- */

static int check_listen(const char *v, char *why, size_t whylen)
{
    struct sockaddr_storage ss;
    char sub[256];

    if (td_http_parse_listen(v, &ss, sub, sizeof sub) == TD_OK) return TD_OK;
    snprintf(why, whylen, "'%.200s' 不是 HOST:PORT，应写成 127.0.0.1:9000、0.0.0.0:9000 或 [::1]:9000 这样 "
                          "(端口 0 到 65535，0 表示任选一个空闲端口)", v);
    return TD_EINVAL;
}

/* An s3:// URL is checked once the TOKENDIST_S3_* settings are folded
 * into it (fold_s3_settings): it may lack its endpoint until then. */
static int check_store(const char *v, char *why, size_t whylen)
{
    return strncmp(v, "s3:", 3) ? td_store_check_url(v, why, whylen) : TD_OK;
}

/* A name becomes a URL segment, a store key and (per token) the stem of
 * TOKENDIST_<NAME>_… variables: one rule everywhere. */
static int check_name(const char *v, char *why, size_t whylen)
{
    if (td_record_name_valid(v, strlen(v))) return TD_OK;
    snprintf(why, whylen, "'%.80s' 不能用作 token 名称: 应为 " TD_NAME_RULE, v);
    return TD_EINVAL;
}

static int check_field(const char *v, char *why, size_t whylen)
{
    if (!strcmp(v, "access_token") || !strcmp(v, "tenant_access_token")) return TD_OK;
    snprintf(why, whylen, "'%.80s' 不是 access_token 或 tenant_access_token", v);
    return TD_EINVAL;
}

static int check_time(const char *v, char *why, size_t whylen)
{
    int64_t t;

    if (td_clock_parse(v, &t) == TD_OK && t > 0) return TD_OK;
    snprintf(why, whylen, "'%.80s' 不是时间: 应写成 YYYY-MM-DD、\"YYYY-MM-DD HH:MM:SS\" (按 --tz 的时区) 或 Unix 秒", v);
    return TD_EINVAL;
}

/* A value as a message or --print-config shows it: a secret only as its
 * hash, a URL without the credentials it may carry. */
static const char *shown(const cfg_entry *e, const char *v, char fp[TD_FP_LEN], char *url, size_t urllen)
{
    if (e->flags & SENSITIVE) return td_log_secret_fp(v, fp);
    if (e->flags & URL_CREDS) return td_store_redact(v, url, urllen);
    return v;
}

/* Stores one value into c.  `where` names the setting and its source for
 * a message ("选项 --body-limit", "环境变量 TOKENDIST_BODY_LIMIT",
 * "env-file x.env 第 3 行的 TOKENDIST_BODY_LIMIT").  `append` adds to a
 * list instead of replacing it (repeated flags).  An empty value counts as
 * not given, from every source: the next source down applies. */
static int set_value(td_config *c, const cfg_entry *e, const char *val, const char *where,
                     int append, char *err, size_t errlen)
{
    void *p = field_ptr(c, e);
    char why[600];

    if (!*val) return TD_OK;
    switch (e->type) {
    case T_STR: {
        char **s = p, *dup;
        if (e->check && e->check(val, why, sizeof why) != TD_OK) {
            snprintf(err, errlen, "%s 的值无效: %s", where, why);
            return TD_EINVAL;
        }
        if (!(dup = strdup(val))) return TD_ENOMEM;
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
            snprintf(err, errlen, "%s 的值无效: '%.80s' 不是 %ld 到 %ld 之间的整数", where, val, e->min, e->max);
            return TD_EINVAL;
        }
        *(long *)p = v;
        return TD_OK;
    }
    case T_BOOL:
        if (parse_bool(val, p) != TD_OK) {
            snprintf(err, errlen, "%s 的值无效: '%.80s' 不是 true 或 false (也可写 1/0、yes/no、on/off)", where, val);
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
            if (b > a && e->check && e->check(l->v[l->n - 1], why, sizeof why) != TD_OK) {
                if (e->flags & SENSITIVE) /* a key is named by its place, never shown */
                    snprintf(err, errlen, "%s 的第 %zu 个密钥无效: %s", where, l->n, why);
                else
                    snprintf(err, errlen, "%s 的值无效: %s", where, why);
                return TD_EINVAL;
            }
            if (e->max && l->n > (size_t)e->max) {
                snprintf(err, errlen, "%s 最多 %ld 个%s", where, e->max, e->flags & SENSITIVE ? "密钥" : "值");
                return TD_EINVAL;
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

/* --- near misses ---------------------------------------------------------- */

int td_config_distance(const char *a, size_t al, const char *b, size_t bl)
{
    int d[3][128], *pp = d[0], *p = d[1], *q = d[2];

    if (al > 127 || bl > 127) return 99;
    for (size_t j = 0; j <= bl; j++) p[j] = (int)j;
    for (size_t i = 1; i <= al; i++) {
        q[0] = (int)i;
        for (size_t j = 1; j <= bl; j++) {
            int v = p[j - 1] + (a[i - 1] != b[j - 1]);
            if (p[j] + 1 < v) v = p[j] + 1;
            if (q[j - 1] + 1 < v) v = q[j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && pp[j - 2] + 1 < v)
                v = pp[j - 2] + 1;
            q[j] = v;
        }
        int *t = pp;
        pp = p, p = q, q = t;
    }
    return p[bl];
}

/* The flag of cmd nearest to name (within NEAR), or NULL. */
static const char *near_flag(const char *name, size_t len, unsigned cmd)
{
    const char *best = NULL;
    int bd = TD_CONFIG_NEAR + 1;

    for (size_t i = 0; i < NTABLE; i++) {
        int d;
        if (!(table[i].cmds & cmd) || len < 3) continue;
        if ((d = td_config_distance(name, len, table[i].flag, strlen(table[i].flag))) < bd) bd = d, best = table[i].flag;
    }
    return best;
}

/* --- env-files ------------------------------------------------------------ */

int td_config_parse_envfile(const char *text, size_t len, td_config_kv_cb cb, void *ud,
                            char *err, size_t errlen)
{
    const char *p = text, *end = text + len;
    char key[128], val[4096];
    int lineno = 0;

    /* Windows editors (Notepad) start a UTF-8 file with a byte-order mark;
     * it is not part of the first key. */
    if (len >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3)) p += 3;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *q, *le = eol ? eol : end;
        size_t klen = 0, vlen = 0;

        lineno++;
        while (p < le && (*p == ' ' || *p == '\t')) p++;
        if (le > p && le[-1] == '\r') le--;     /* CRLF lines */
        if (p == le || *p == '#' || *p == ';') goto next;
        if ((size_t)(le - p) > 7 && !strncmp(p, "export ", 7)) p += 7;
        for (q = p; q < le && (*q == '_' || (*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z') ||
                               (q > p && *q >= '0' && *q <= '9'));
             q++)
            ;
        klen = (size_t)(q - p);
        while (q < le && (*q == ' ' || *q == '\t')) q++;
        if (klen == 0 || klen >= sizeof key || q == le || *q != '=') {
            snprintf(err, errlen, "第 %d 行: 应为 KEY=VALUE (KEY 由字母、数字和 _ 组成，不以数字开头；注释行以 # 开头)",
                     lineno);
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
                snprintf(err, errlen, "第 %d 行: %s 的值缺少结尾的 %c", lineno, key, quote);
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
            snprintf(err, errlen, "第 %d 行: %s 的值含有 NUL 字节", lineno, key);
            return TD_EINVAL;
        }
        if (cb(ud, lineno, key, val) != TD_OK) return TD_EINVAL; /* err: as cb left it */
    next:
        p = eol ? eol + 1 : end;
    }
    return TD_OK;
toolong:
    snprintf(err, errlen, "第 %d 行: 值超过 %zu 字节", lineno, sizeof val - 1);
    return TD_EINVAL;
}

struct envfile_ctx {
    td_config *c;
    unsigned cmd;
    const char *path;
    char *err;
    size_t errlen;
};

static int envfile_kv(void *ud, int lineno, const char *key, const char *val)
{
    struct envfile_ctx *x = ud;
    const cfg_entry *e = find_env(key, x->cmd);
    char where[600];

    if (!e) {
        /* An EnvironmentFile may carry other programs' settings; ours per
         * token are kept, and every name this command does not use is
         * remembered (without its value) for the typo hints. */
        char kl[160];
        if (!strncmp(key, "TOKENDIST_", 10) && *val) {
            char kv[4300];
            snprintf(kv, sizeof kv, "%s=%s", key, val);
            if (list_add(&x->c->envfile_extra, kv, strlen(kv)) != TD_OK) return TD_ENOMEM;
        }
        if (!find_env(key, ALL)) {
            snprintf(kl, sizeof kl, "%s %d", key, lineno);
            if (list_add(&x->c->envfile_unknown, kl, strlen(kl)) != TD_OK) return TD_ENOMEM;
        }
        return TD_OK;
    }
    snprintf(where, sizeof where, "env-file %s 第 %d 行的 %s", x->path, lineno, key);
    return set_value(x->c, e, val, where, 0, x->err, x->errlen);
}

/* Why a file could not be read, in the reader's words. */
static const char *file_error(int e)
{
    switch (e) {
    case ENOENT: return "文件不存在";
    case EACCES: return "没有读取权限";
    case EISDIR: return "这是一个文件夹，不是文件";
    default: return strerror(e);
    }
}

static int load_envfile(td_config *c, unsigned cmd, const char *path, const char *from, char *err,
                        size_t errlen)
{
    FILE *f = NULL;
    char *buf = NULL, sub[1024];
    size_t n;
    int rc = TD_EINVAL;
    struct envfile_ctx x = {c, cmd, path, err, errlen};

    sub[0] = '\0';
    err[0] = '\0';
    if (!(f = fopen(path, "r"))) {
        snprintf(err, errlen, "无法读取 env-file %s (%s): %s", path, from, file_error(errno));
        goto out;
    }
    if (!(buf = malloc(1 << 20))) { rc = TD_ENOMEM; goto out; }
    n = fread(buf, 1, 1 << 20, f);
    if (ferror(f) || n == 1 << 20) {
        snprintf(err, errlen, "无法读取 env-file %s (%s): %s", path, from,
                 ferror(f) ? file_error(errno) : "文件大于 1 MiB");
        goto out;
    }
    if (td_config_parse_envfile(buf, n, envfile_kv, &x, sub, sizeof sub) != TD_OK) {
        if (!err[0]) snprintf(err, errlen, "env-file %s %s", path, sub); /* else: a value's message */
        goto out;
    }
    rc = TD_OK;
out:
    free(buf);
    if (f) fclose(f);
    return rc;
}

/* --- misspelt variables --------------------------------------------------- */

/* Whether key has the prefix (up to the first '_') of a name in the table:
 * the families a typo is looked for in (FEISHU_, TENCENT_, GITEE_,
 * TOKENDIST_, …).  Other programs' variables are not ours to judge. */
static int watched(const char *key, size_t klen)
{
    const char *u = memchr(key, '_', klen);

    if (!u) return 0;
    for (size_t i = 0; i < NTABLE; i++)
        for (int j = 0; j < 2; j++) {
            const char *n = table[i].env[j];
            if (n && !strncmp(n, key, (size_t)(u - key) + 1)) return 1;
        }
    return 0;
}

/* Visits every name a variable of ours may have: the table's, and those
 * of each token TOKENDIST_TOKENS names.  Stops when fn returns non-zero. */
static int each_known(const td_config *c, int (*fn)(void *, const char *, size_t), void *ud)
{
    char name[160];

    for (size_t i = 0; i < NTABLE; i++)
        for (int j = 0; j < 2; j++)
            if (table[i].env[j] && fn(ud, table[i].env[j], strlen(table[i].env[j]))) return 1;
    for (size_t t = 0; t < c->tokens.n; t++)
        for (size_t k = 0; td_config_token_vars[k]; k++) {
            size_t n = (size_t)snprintf(name, sizeof name, "TOKENDIST_%s_%s", c->tokens.v[t], td_config_token_vars[k]);
            if (n >= sizeof name) continue;
            for (char *p = name; *p; p++)
                if (*p >= 'a' && *p <= 'z') *p = (char)(*p - 'a' + 'A');
            if (fn(ud, name, n)) return 1;
        }
    return 0;
}

struct near_ctx {
    const char *key;
    size_t klen;
    int best;
    char name[160];
};

static int near_one(void *ud, const char *n, size_t len)
{
    struct near_ctx *x = ud;
    int d = td_config_distance(x->key, x->klen, n, len);

    if (d == 0) return x->best = 0, 1;
    if (d < x->best && len < sizeof x->name) {
        x->best = d;
        memcpy(x->name, n, len + 1);
    }
    return 0;
}

/* Adds a warning when key (from `source`) is no variable of ours but one
 * edit or two from one.  Values are never looked at. */
static int warn_if_typo(td_config *c, const char *key, size_t klen, const char *source)
{
    struct near_ctx x = {.key = key, .klen = klen, .best = TD_CONFIG_NEAR + 1};
    char msg[600];

    if (!watched(key, klen)) return TD_OK;
    each_known(c, near_one, &x);
    if (x.best == 0 || x.best > TD_CONFIG_NEAR) return TD_OK;
    snprintf(msg, sizeof msg, "%s%.*s 不是 tokendist 的设置，已忽略；你是不是想写 %s？", source, (int)klen, key, x.name);
    return list_add(&c->warnings, msg, strlen(msg));
}

static int scan_typos(td_config *c, const char *envfile)
{
    char source[600];
    int rc = TD_OK;

    for (char **e = environ; e && *e && rc == TD_OK; e++) {
        const char *eq = strchr(*e, '=');
        if (eq) rc = warn_if_typo(c, *e, (size_t)(eq - *e), "环境变量 ");
    }
    for (size_t i = 0; i < c->envfile_unknown.n && rc == TD_OK; i++) {
        const char *kl = c->envfile_unknown.v[i], *sp = strchr(kl, ' ');
        snprintf(source, sizeof source, "env-file %s 第 %s 行的 ", envfile, sp + 1);
        rc = warn_if_typo(c, kl, (size_t)(sp - kl), source);
    }
    return rc;
}

void td_config_usage(unsigned cmd, FILE *f)
{
    size_t n = 0;

    for (size_t i = 0; i < NTABLE; i++) n += (table[i].cmds & cmd) != 0;
    fputs(n ? "选项 (优先级: 命令行 > 环境变量 > env-file > 默认值；值为空等于没有设置):\n" : "选项:\n", f);
    for (size_t i = 0; i < NTABLE; i++) {
        const cfg_entry *e = &table[i];
        char left[64];
        if (!(e->cmds & cmd)) continue;
        snprintf(left, sizeof left, "--%s%s", e->flag,
                 e->type == T_BOOL ? "" : e->type == T_INT ? " N" : " VALUE");
        fprintf(f, "  %-26s %s", left, e->help);
        if (e->env[0]) fprintf(f, " [%s]", e->env[0]);
        if (e->def && e->type != T_BOOL) fprintf(f, " (默认: %s)", e->def);
        if (e->type == T_BOOL && e->def && !strcmp(e->def, "true")) fprintf(f, " (默认开启，--no-%s 关闭)", e->flag);
        fputc('\n', f);
    }
    fprintf(f, "  %-26s %s\n", "--help", "显示本帮助");
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
        {"credentials_file", c->s3_credentials_file},
    };
    td_strbuf b;
    char *url, why[600];

    if (!c->store || strncmp(c->store, "s3:", 3) != 0) return TD_OK;
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
        snprintf(err, errlen, "TOKENDIST_STORE 加上 TOKENDIST_S3_* 设置后超过 8 KB");
        return TD_EINVAL;
    }
    free(c->store);
    c->store = url;
    if (td_store_check_url(c->store, why, sizeof why) != TD_OK) {
        snprintf(err, errlen, "S3 存储的设置 (--store / TOKENDIST_STORE 连同 TOKENDIST_S3_*) 无效: %s", why);
        return TD_EINVAL;
    }
    return TD_OK;
}

/* The message for an option cmd does not have: the option it resembles,
 * or the commands it belongs to. */
static void unknown_option(const char *name, size_t nlen, unsigned cmd, const char *cmdname, char *err,
                           size_t errlen)
{
    const cfg_entry *other = find_flag(name, nlen, ALL & ~cmd);
    const char *near = near_flag(name, nlen, cmd);
    td_strbuf b;

    td_strbuf_fixed(&b, err, errlen);
    if (other) {
        td_strbuf_printf(&b, "--%.*s 不是 %s 的选项，它属于", (int)nlen, name, cmdname);
        for (size_t i = 0; i < sizeof cmd_names / sizeof *cmd_names; i++)
            if (other->cmds & (1u << i)) td_strbuf_printf(&b, " tokendist %s", cmd_names[i]);
    } else {
        td_strbuf_printf(&b, "未知选项 --%.*s", (int)nlen, name);
        if (near) td_strbuf_printf(&b, "，你是不是想写 --%s？", near);
    }
    td_strbuf_printf(&b, " (见 tokendist %s --help)", cmdname);
}

int td_config_load(td_config *c, unsigned cmd, int argc, char **argv, char *err, size_t errlen)
{
    char where[160], from[80];
    unsigned char by_flag[NTABLE];
    const char *envfile = NULL;
    int rc;

    memset(c, 0, sizeof *c);
    memset(by_flag, 0, sizeof by_flag);
    /* --help answers whatever else is wrong: it is how one finds out. */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
    for (size_t i = 0; i < NTABLE; i++) {
        if (table[i].def && (rc = set_value(c, &table[i], table[i].def, table[i].flag, 0, err, errlen)))
            return rc;
        if (!table[i].def && table[i].type == T_BOOL) *(int *)field_ptr(c, &table[i]) = -1;  /* unset */
    }

    /* The env-file is found first (flag, then environment), since it sits
     * below both in precedence. */
    envfile = getenv("TOKENDIST_ENV_FILE");
    snprintf(from, sizeof from, "环境变量 TOKENDIST_ENV_FILE");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--env-file") && i + 1 < argc) envfile = argv[i + 1];
        else if (!strncmp(argv[i], "--env-file=", 11)) envfile = argv[i] + 11;
        else continue;
        snprintf(from, sizeof from, "选项 --env-file");
    }
    if (!find_flag("env-file", 8, cmd)) envfile = NULL;   /* keygen reads no settings */
    if (envfile && *envfile && (rc = load_envfile(c, cmd, envfile, from, err, errlen)) != TD_OK) return rc;

    for (size_t i = 0; i < NTABLE; i++) {
        const cfg_entry *e = &table[i];
        if (!(e->cmds & cmd)) continue;
        /* Of two names, the first set wins (e.g. TOKENDIST_URLS over the
         * seed's TENCENT_CLOUD_API_URL); an empty one is not set. */
        for (int j = 0; j < 2; j++) {
            const char *v = e->env[j] ? getenv(e->env[j]) : NULL;
            if (!v || !*v) continue;
            snprintf(where, sizeof where, "环境变量 %s", e->env[j]);
            if ((rc = set_value(c, e, v, where, 0, err, errlen)) != TD_OK) return rc;
            break;
        }
    }

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *name, *eq, *val = NULL;
        const cfg_entry *e;
        size_t nlen;
        int neg = 0;

        if (strncmp(a, "--", 2) != 0 || !a[2]) {
            snprintf(err, errlen, "多余的参数 '%.80s': 选项都以 -- 开头 (见 tokendist %s --help)", a, argv[0]);
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
            unknown_option(name, nlen, cmd, argv[0], err, errlen);
            return TD_EINVAL;
        }
        if (eq) val = eq + 1;
        else if (e->type == T_BOOL) val = neg ? "false" : "true";
        else if (i + 1 < argc) val = argv[++i];
        else {
            snprintf(err, errlen, "选项 --%s 缺少值: 写成 --%s %s (见 tokendist %s --help)", e->flag, e->flag,
                     e->type == T_INT ? "N" : "VALUE", argv[0]);
            return TD_EINVAL;
        }
        snprintf(where, sizeof where, "选项 --%s", e->flag);
        if ((rc = set_value(c, e, val, where, by_flag[e - table], err, errlen)) != TD_OK) return rc;
        if (*val) by_flag[e - table] = 1;
    }
    if ((rc = scan_typos(c, envfile)) != TD_OK) return rc;
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
    list_clear(&c->envfile_unknown);
    list_clear(&c->warnings);
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
