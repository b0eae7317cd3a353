/*
 * config -- every setting of every command in one declarative table.
 *
 * A setting has a flag name, the environment variable(s) it is read from
 * (the seed's own names where the seed has one, e.g. TENCENT_CLOUD_API_URL),
 * a type with bounds, a default, the commands it belongs to, and a
 * SENSITIVE flag: sensitive values are redacted by td_config_print and
 * never logged.  Precedence: command-line flag > environment > env-file
 * (KEY=VALUE, systemd EnvironmentFile compatible) > default.
 */
#ifndef TD_CONFIG_H
#define TD_CONFIG_H

#include <stddef.h>
#include <stdio.h>

/* Commands, as a bit set: which settings each accepts and lists in --help. */
enum {
    TD_CMD_SERVE = 1 << 0,
    TD_CMD_REFRESH = 1 << 1,
    TD_CMD_GET = 1 << 2,
    TD_CMD_CHECK = 1 << 3,
    TD_CMD_FILES = 1 << 4,
    TD_CMD_SCF = 1 << 5,
    TD_CMD_KEYGEN = 1 << 6,     /* no settings: --help only */
};

typedef struct td_strlist {
    char **v;
    size_t n;
} td_strlist;

typedef struct td_config {
    /* general */
    char *env_file;
    char *tz;
    char *name;                 /* token name; "default" is the seed's */
    int print_config;

    /* serve */
    char *listen;
    char *store;                /* s3:// URLs carry the s3_* settings below as query parameters */
    char *s3_endpoint;
    char *s3_region;
    int s3_path_style;
    long s3_revalidate;         /* seconds between a reader's checks for changes */
    char *s3_credentials_file;  /* credentials read (again) from a file instead of the environment */
    td_strlist push_keys;
    td_strlist read_keys;
    td_strlist trusted_proxies; /* CIDRs whose forwarding header is believed */
    char *real_ip_header;       /* which: "X-Forwarded-For" or "X-Real-IP" (any case); NULL: both must agree */
    td_strlist allowed_hosts;   /* Host names answered besides the loopback's */
    long max_clock_skew;        /* seconds a record may be generated ahead */
    char *cors_origin;
    long body_limit;
    long conn_limit;
    long conn_per_ip;
    long conn_timeout;
    long history;
    char *tls_cert;
    char *tls_key;

    /* Feishu (refresher and files) */
    char *feishu_app_id;
    char *feishu_app_secret;
    char *feishu_base_url;
    char *feishu_chat_id;
    char *feishu_webhook_url;
    char *feishu_webhook_secret;
    long renew_window;          /* Feishu renews inside the last 30 min */
    long retry_min;
    long retry_max;
    long alert_below;           /* alert when less than this is left */
    long http_timeout;
    int once;

    /* record fields the refresher writes */
    char *record_source;
    char *record_usage;
    char *record_platform;

    /* sinks: the distribution endpoint (our server or a Tencent SCF URL) */
    int tencent_cloud_enabled;
    char *tencent_cloud_api_url;
    char *tencent_cloud_api_key;
    char *public_url;           /* the notice's 🔗 line */

    /* sinks and client fallback: Gitee */
    int gitee_enabled;          /* the refresher shares the token there */
    int gitee_read;             /* get, files: 1 read it, 0 not, -1 unset (read when a repository is named) */
    char *gitee_access_token;
    char *gitee_owner;
    char *gitee_repo;
    char *gitee_file_path;
    char *gitee_branch;
    char *gitee_base_url;
    td_strlist share_keys;      /* seal the Gitee copy (seal.h); the first seals */

    /* get (client) */
    td_strlist urls;
    char *read_key;
    char *field;
    char *ticket;
    int json;
    long min_remaining;
    char *cache_file;

    /* files */
    char *chat;
    char *since;
    char *until;
    char *match;
    char *out_dir;

    /* more tokens (tokens.h): names, and the env-file's TOKENDIST_<NAME>_…
     * lines, which the table cannot list (see td_config_env) */
    td_strlist tokens;
    td_strlist envfile_extra;   /* "KEY=VALUE" */
    td_strlist envfile_unknown; /* "KEY LINE": names no command reads, for the typo hints */

    /* Sentences for the operator that do not stop the command (a variable
     * that looks like a misspelt one); never holding a value. */
    td_strlist warnings;
} td_config;

/* The variables of a token TOKENDIST_TOKENS names, after
 * "TOKENDIST_<NAME>_" (tokens.h); NULL-terminated. */
extern const char *const td_config_token_vars[];

/* A variable the table does not declare (TOKENDIST_<NAME>_…): the
 * environment's value, else the env-file's, else NULL.  An empty value
 * counts as unset. */
const char *td_config_env(const td_config *c, const char *key);

/* Fills c from defaults, env-file, environment and argv (argv[0] is the
 * command name; remaining non-flag words are refused).  Every value is
 * checked here, so a bad one stops a command before it starts anything.
 * An empty value (a variable set to "", an env-file line KEY=, --opt=)
 * counts as not given.  On failure err names the setting, where it came
 * from (option, environment variable, env-file line) and what to write.
 * Returns TD_OK, TD_EINVAL, or 1 when --help (or -h) was asked, before
 * anything else is read; the caller prints the help. */
int td_config_load(td_config *c, unsigned cmd, int argc, char **argv,
                   char *err, size_t errlen);
void td_config_free(td_config *c);

/* Prints the settings of cmd with their current values (sensitive ones as
 * fingerprints) in env-file form. */
void td_config_print(const td_config *c, unsigned cmd, FILE *f);

/* The edit distance of a and b (insertions, deletions, substitutions and
 * swaps of neighbours each count 1; 99 beyond 127 bytes), and the most
 * that is taken for a typo: FEISHU_APP_SECERT is 1 from FEISHU_APP_SECRET,
 * --lisen 1 from --listen.  Used for the "你是不是想写 …？" hints. */
#define TD_CONFIG_NEAR 2
int td_config_distance(const char *a, size_t al, const char *b, size_t bl);

/* Prints the option list of cmd under its heading, for --help. */
void td_config_usage(unsigned cmd, FILE *f);

/* Parses one env-file into callback calls; exposed for tests and fuzzing.
 * A UTF-8 byte-order mark and CRLF line ends are accepted.  Returns TD_OK
 * or TD_EINVAL with err naming the line; when cb fails, TD_EINVAL with err
 * as cb left it. */
typedef int (*td_config_kv_cb)(void *ud, int lineno, const char *key, const char *val);
int td_config_parse_envfile(const char *text, size_t len, td_config_kv_cb cb,
                            void *ud, char *err, size_t errlen);

#endif
