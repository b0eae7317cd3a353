/*
 * cmd_scf -- `tokendist scf-runtime`: the Tencent SCF event-function
 * custom runtime.  SCF starts it (through deploy/scf/bootstrap) with the
 * runtime API in SCF_RUNTIME_API / SCF_RUNTIME_API_PORT; every HTTP
 * request then arrives as an event and is answered by the same handler as
 * `tokendist serve`.
 *
 * No refresher runs here: SCF freezes an event function between
 * invocations, so a background thread would not run on time.  Refresh in
 * a Web function or a `tokendist serve` elsewhere, sharing a Redis store.
 */
#include "api.h"
#include "cmd.h"
#include "log.h"
#include "scf.h"
#include "store.h"
#include "tokendist.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int td_cmd_scf(int argc, char **argv)
{
    td_config c;
    td_store *store = NULL;
    td_api *api = NULL;
    const char *host = getenv("SCF_RUNTIME_API"), *port = getenv("SCF_RUNTIME_API_PORT");
    char base[300], err[512], shown[512];
    int ex;

    if ((ex = td_cmd_config(&c, TD_CMD_SCF, argc, argv)) >= 0) goto out;
    ex = TD_EXIT_USAGE;
    if (!host || !*host || !port || !*port || strlen(host) > 255 || strlen(port) > 5 ||
        strspn(port, "0123456789") != strlen(port)) {
        td_log("❌ SCF_RUNTIME_API / SCF_RUNTIME_API_PORT 未设置或无效：scf-runtime 只在腾讯云 SCF "
               "事件函数 (自定义运行时) 中运行；普通服务器请用 tokendist serve");
        goto out;
    }
    snprintf(base, sizeof base, "http://%s:%s", host, port);
    ex = TD_EXIT_FAIL;
    signal(SIGPIPE, SIG_IGN);

    if (td_cmd_open_api(&c, NULL, &store, &api, err, sizeof err) != TD_OK) {
        td_log("❌ %s", err);
        td_scf_init_error(base, err);
        goto out;
    }
    td_log("tokendist %s scf-runtime 已启动 (运行时 API %s, 存储: %s, 写入密钥 %zu 个, 读取密钥 %zu 个)",
           TD_VERSION, base, td_store_redact(c.store, shown, sizeof shown), c.push_keys.n,
           c.read_keys.n);
    if (c.push_keys.n == 0)
        td_log("⚠️ 未配置写入密钥 (TOKENDIST_PUSH_KEYS)：所有 POST 都会被拒绝");
    td_scf_run(api, base, err, sizeof err); /* returns only when the runtime API is gone */
    td_log("❌ SCF 运行时 API 不可用，退出: %s", err);
out:
    td_cmd_close_api(store, api);
    td_config_free(&c);
    return ex;
}
