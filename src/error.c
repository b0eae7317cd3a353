/* error -- td_strerror, the text of the one error convention (tokendist.h).
 * Chinese, like everything a person reads; the codes are what programs
 * test, so a text may be reworded but a code never renumbered. */
#include "tokendist.h"

const char *td_strerror(int code)
{
    static const char *const text[] = {
        [0] = "成功",
        [-TD_ERR] = "失败",
        [-TD_ENOMEM] = "内存不足",
        [-TD_EINVAL] = "输入无效",
        [-TD_ENOTFOUND] = "没有找到 token (或已过期)",
        [-TD_ECONFLICT] = "冲突: 已有不比它旧的记录",
        [-TD_EUNAVAIL] = "暂时不可用，请稍后重试",
        [-TD_EIO] = "存储或文件读写失败",
        [-TD_EAUTH] = "缺少凭据或凭据错误",
        [-TD_EHTTP] = "HTTP 请求失败",
        [-TD_EUPSTREAM] = "上游返回了错误",
        [-TD_ETOOBIG] = "输入超出上限",
        [-TD_EEXPIRED] = "token 已过期或即将过期",
        [-TD_ETIMEOUT] = "超时",
        [-TD_ERATELIMIT] = "被上游限流",
        [-TD_ECANCELED] = "已取消: 进程正在退出",
        [-TD_ENOTSUP] = "此版本的 libtokendist 不支持",
        [-TD_ESHAREKEY] = "共享密钥缺失或不符: 无法打开加密的 Gitee 记录",
    };
    _Static_assert(sizeof text / sizeof *text == -TD__ELAST, "every TD_E* code has a text");
    if (code > 0 || code <= TD__ELAST) return "未知错误";
    return text[-code];
}
