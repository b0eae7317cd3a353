/* status -- see status.h. */
#include "status.h"
#include "clock.h"
#include "strbuf.h"
#include "tokendist.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* "About to expire", as the alert rules say it (deploy/prometheus): under
 * ten minutes left, and the renewal a minute late by the platform's rule
 * (a WeChat token renewed with five minutes left is not about to expire;
 * a Feishu token with ten minutes left is, its renewal was due twenty
 * minutes ago). */
#define ALERT_BELOW_S 600
#define LATE_S 60

static int expiring(long long left, long long win)
{
    return left < ALERT_BELOW_S && (win < 0 || left < win - LATE_S);
}
#define BAR_W 900               /* the drawings' coordinate width */

/* --- the fixed texts ------------------------------------------------------ */

static const char STYLE[] =
    ":root{--ok:#1f8f4e;--warn:#c77700;--bad:#c62828;--ink:#1d2733;--dim:#5b6776;--line:#dde3ea;"
    "--card:#fff;--bg:#f3f5f8;--win:#f6c26b;--track:#e6ebf1}"
    "*{box-sizing:border-box}"
    "body{margin:0;background:var(--bg);color:var(--ink);font:15px/1.55 system-ui,-apple-system,"
    "\"Segoe UI\",\"PingFang SC\",\"Noto Sans CJK SC\",\"Microsoft YaHei\",sans-serif,\"Noto Color Emoji\"}"
    "header{background:#18324d;color:#fff;padding:14px 24px}"
    "header h1{margin:0;font-size:20px;font-weight:600}"
    "header p{margin:2px 0 0;color:#c9d6e4;font-size:13px}"
    "header button{float:right;margin-top:4px;background:transparent;color:#fff;border:1px solid #8fa6bf;"
    "border-radius:6px;padding:3px 10px;font:inherit;font-size:13px;cursor:pointer}"
    "main,#keybox,.nojs{max-width:980px;margin:0 auto;padding:16px 24px}"
    ".card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 18px;"
    "margin:0 0 16px;overflow-wrap:anywhere}"
    ".card h2{margin:0;font-size:17px;display:flex;gap:10px;align-items:center;flex-wrap:wrap}"
    ".card h2 .sub{font-weight:400;color:var(--dim);font-size:13px}"
    ".badge{margin-left:auto;font-size:13px;font-weight:600;border-radius:999px;padding:2px 10px;"
    "border:1px solid currentColor;white-space:nowrap}"
    ".ok{color:var(--ok)}.warn{color:var(--warn)}.bad{color:var(--bad)}.dim{color:var(--dim)}"
    ".big{font-size:16px;margin:8px 0 2px}"
    "svg{display:block;width:100%;height:auto;margin:6px 0 4px}"
    "svg text{font:12px system-ui,\"Noto Sans CJK SC\",sans-serif;fill:var(--dim)}"
    "dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 14px;margin:10px 0 0}"
    "dt{color:var(--dim)}dd{margin:0}"
    "ul{margin:4px 0 0;padding-left:0;list-style:none}li{margin:2px 0}"
    "table{border-collapse:collapse;width:100%;font-size:13px;margin-top:4px}"
    "th,td{text-align:left;padding:3px 8px;border-bottom:1px solid var(--line);white-space:nowrap}"
    "th{color:var(--dim);font-weight:500}"
    "code{font:13px ui-monospace,\"DejaVu Sans Mono\",monospace;background:#eef2f6;border-radius:4px;"
    "padding:0 4px}"
    "details{margin-top:8px}summary{cursor:pointer;color:var(--dim)}"
    ".legend{font-size:12px;color:var(--dim)}"
    ".legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin:0 4px 0 10px;"
    "vertical-align:-1px}"
    ".legend .l1{background:var(--ok)}.legend .l2{background:var(--win)}.legend .l3{background:var(--ink)}"
    ".note{color:var(--dim);font-size:13px}"
    "#keybox form{background:#fff;border:1px solid var(--line);border-radius:10px;padding:18px;max-width:560px}"
    "#keybox input{width:100%;font:inherit;padding:6px 8px;margin:8px 0;border:1px solid #b8c3cf;"
    "border-radius:6px}"
    "#keybox button{font:inherit;padding:5px 16px;border-radius:6px;border:0;background:#18324d;color:#fff;"
    "cursor:pointer}"
    "[hidden]{display:none!important}"
    "footer{max-width:980px;margin:0 auto;padding:0 24px 24px;color:var(--dim);font-size:12px}";

/* Fetch-and-redraw.  The key lives in this tab's sessionStorage and
 * travels as a header: never in the URL (logs, Referer, history). */
static const char SCRIPT[] =
    "(function(){'use strict';"
    "var K='tokendist.read_key',d=document,main=d.getElementById('status'),box=d.getElementById('keybox'),"
    "form=d.getElementById('keyform'),input=d.getElementById('key'),note=d.getElementById('keynote'),"
    "live=d.getElementById('live'),forget=d.getElementById('forget'),"
    "keyed=d.body.getAttribute('data-keyed')==='1';"
    "function key(){try{return sessionStorage.getItem(K)||'';}catch(e){return '';}}"
    "function drop(){try{sessionStorage.removeItem(K);}catch(e){}}"
    "function ask(msg){main.hidden=true;box.hidden=false;forget.hidden=true;note.textContent=msg||'';"
    "live.textContent='🔐 等待读取密钥';input.focus();}"
    "function load(){var k=key(),h={'Accept':'application/json'};"
    "if(keyed&&!k){ask('');return;}"
    "if(k)h['Authorization']='Bearer '+k;"
    "fetch('status.json',{headers:h,cache:'no-store',credentials:'omit',referrerPolicy:'no-referrer'})"
    ".then(function(r){"
    "if(r.status===401||r.status===403){drop();ask(r.status===403?'❌ 读取密钥无效，请重新输入':'请输入读取密钥');return null;}"
    "if(r.status===429){drop();ask('⛔ 认证失败次数过多，请稍后再试');return null;}"
    "if(!r.ok)throw new Error('HTTP '+r.status);return r.json();})"
    ".then(function(j){if(!j)return;box.hidden=true;main.hidden=false;forget.hidden=!keyed;"
    "main.innerHTML=j.html;live.textContent='🟢 实时更新：每 10 秒自动刷新';})"
    ".catch(function(e){live.textContent='⚠️ 暂时无法获取状态 ('+e.message+')，稍后自动重试';});}"
    "form.addEventListener('submit',function(ev){ev.preventDefault();var v=input.value.trim();input.value='';"
    "if(!v)return;try{sessionStorage.setItem(K,v);}catch(e){}note.textContent='';load();});"
    "forget.addEventListener('click',function(){drop();ask('已清除本标签页保存的读取密钥');});"
    "setInterval(load,10000);load();})();";

_Static_assert(TD_STATUS_POLL_S == 10, "SCRIPT fetches every 10 s and says so");

static pthread_once_t csp_once = PTHREAD_ONCE_INIT;
static char csp[400];

static void csp_hash(const char *text, char out[64])
{
    unsigned char d[SHA256_DIGEST_LENGTH];

    SHA256((const unsigned char *)text, strlen(text), d);
    EVP_EncodeBlock((unsigned char *)out, d, sizeof d); /* 44 characters + NUL */
}

static void csp_init(void)
{
    char s[64], t[64];

    csp_hash(SCRIPT, s);
    csp_hash(STYLE, t);
    snprintf(csp, sizeof csp,
             "default-src 'none'; script-src 'sha256-%s'; style-src 'sha256-%s'; connect-src 'self'; "
             "img-src data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
             s, t);
}

const char *td_status_csp(void)
{
    pthread_once(&csp_once, csp_init);
    return csp;
}

/* --- reading the facts ---------------------------------------------------- */

static long long jint(const json_t *o, const char *k, long long def)
{
    const json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (long long)json_integer_value(v) : def;
}

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* --- writing -------------------------------------------------------------- */

static void esc(td_strbuf *b, const char *s)
{
    const char *run = s;

    if (!s) return;
    for (; *s; s++) {
        const char *rep = *s == '&' ? "&amp;" : *s == '<' ? "&lt;" : *s == '>' ? "&gt;"
                        : *s == '"' ? "&quot;" : *s == '\'' ? "&#39;" : NULL;
        if (!rep) continue;
        td_strbuf_append(b, run, (size_t)(s - run));
        td_strbuf_puts(b, rep);
        run = s + 1;
    }
    td_strbuf_puts(b, run);
}

/* "1 小时 29 分", "2 小时", "12 分钟", "3 分 5 秒", "5 分钟", "40 秒". */
static const char *span(long long s, char *buf, size_t len)
{
    if (s < 0) s = -s;
    if (s >= 3600 && s % 3600 / 60) snprintf(buf, len, "%lld 小时 %lld 分", s / 3600, s % 3600 / 60);
    else if (s >= 3600) snprintf(buf, len, "%lld 小时", s / 3600);
    else if (s >= 600 || (s >= 60 && s % 60 == 0)) snprintf(buf, len, "%lld 分钟", s / 60);
    else if (s >= 60) snprintf(buf, len, "%lld 分 %lld 秒", s / 60, s % 60);
    else snprintf(buf, len, "%lld 秒", s);
    return buf;
}

/* A time and how far it is from now: "14:30:01 (3 分钟前)". */
static void when(td_strbuf *b, long long ts, long long now)
{
    char t[TD_TIME_LEN], sp[48];

    td_clock_format((int64_t)ts, t);
    td_strbuf_printf(b, "%s", t + 11);
    if (ts > now + 2) td_strbuf_printf(b, " <span class=\"dim\">(%s后)</span>", span(ts - now, sp, sizeof sp));
    else if (ts < now - 2) td_strbuf_printf(b, " <span class=\"dim\">(%s前)</span>", span(now - ts, sp, sizeof sp));
    else td_strbuf_puts(b, " <span class=\"dim\">(刚刚)</span>");
}

static int x_of(long long t, long long t0, long long t1)
{
    if (t1 <= t0) return 0;
    if (t <= t0) return 0;
    if (t >= t1) return BAR_W;
    return (int)((t - t0) * BAR_W / (t1 - t0));
}

/* The record's lifetime as a bar: what is left (green; amber inside the
 * renewal window, red under ten minutes), the window as a band under it,
 * now as a line. */
static void lifetime_bar(td_strbuf *b, const json_t *rec, const json_t *tok, long long now)
{
    long long gen = jint(rec, "generated_timestamp", 0), exp = jint(rec, "expire_timestamp", 0);
    long long win = jint(tok, "renew_window", -1), left = exp - now;
    const char *renewal = jstr(tok, "renewal");
    int xn = x_of(now, gen, exp), xw = win > 0 ? x_of(exp - win, gen, exp) : BAR_W;
    const char *fill = expiring(left, win) ? "#c62828" : win > 0 && left <= win ? "#c77700" : "#1f8f4e";
    char t1[TD_TIME_LEN], t2[TD_TIME_LEN], t3[TD_TIME_LEN], sp[48];

    td_clock_format((int64_t)gen, t1);
    td_clock_format((int64_t)exp, t2);
    td_strbuf_printf(b, "<svg viewBox=\"0 0 %d 56\" role=\"img\" aria-label=\"剩余寿命\">", BAR_W);
    td_strbuf_printf(b, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"20\" rx=\"4\" fill=\"#e6ebf1\"/>", BAR_W);
    if (left > 0)
        td_strbuf_printf(b, "<rect x=\"%d\" y=\"0\" width=\"%d\" height=\"20\" rx=\"4\" fill=\"%s\"/>", xn,
                         BAR_W - xn, fill);
    if (win > 0) {
        td_strbuf_printf(b, "<rect x=\"%d\" y=\"24\" width=\"%d\" height=\"8\" rx=\"2\" fill=\"#f6c26b\"/>", xw,
                         BAR_W - xw);
        td_clock_format((int64_t)(exp - win), t3);
        if (xw > 330)
            td_strbuf_printf(b, "<text x=\"%d\" y=\"32\" text-anchor=\"end\">换发窗口 %s 起 (最后 %s) ▸</text>",
                             xw - 6, t3 + 11, span(win, sp, sizeof sp));
        else
            td_strbuf_printf(b, "<text x=\"%d\" y=\"46\" text-anchor=\"middle\">换发窗口 %s 起 (最后 %s)</text>",
                             BAR_W / 2, t3 + 11, span(win, sp, sizeof sp));
    } else if (renewal && !strcmp(renewal, "after_expiry")) {
        td_strbuf_printf(b, "<text x=\"%d\" y=\"32\" text-anchor=\"end\">到期后立即换新 ▸</text>", BAR_W - 4);
    }
    td_strbuf_printf(b, "<rect x=\"%d\" y=\"-2\" width=\"2\" height=\"36\" fill=\"#1d2733\"/>",
                     xn > BAR_W - 2 ? BAR_W - 2 : xn);
    td_strbuf_printf(b, "<text x=\"0\" y=\"52\">生成 %s</text>", t1 + 11);
    td_strbuf_printf(b, "<text x=\"%d\" y=\"52\" text-anchor=\"end\">过期 %s</text>", BAR_W, t2 + 11);
    td_strbuf_puts(b, "</svg>");
}

/* The recent records on one time axis, newest on top: overlaps show the
 * platform's renewal (the old token valid beside the new one). */
static void timeline(td_strbuf *b, const json_t *hist, long long now)
{
    size_t rows = 0, i;
    long long t0 = 0, t1 = now;
    const json_t *h;
    char a[TD_TIME_LEN], c[TD_TIME_LEN];

    json_array_foreach(hist, i, h) {
        long long g = jint(h, "generated_timestamp", 0), e = jint(h, "expire_timestamp", 0);
        if (!jstr(h, "access_token_fingerprint")) continue;
        if (!t0 || g < t0) t0 = g;
        if (e > t1) t1 = e;
        rows++;
    }
    if (!rows) return;
    td_strbuf_printf(b, "<svg viewBox=\"0 0 %d %zu\" role=\"img\" aria-label=\"时间线\">", BAR_W, rows * 14 + 22);
    rows = 0;
    json_array_foreach(hist, i, h) {
        long long g = jint(h, "generated_timestamp", 0), e = jint(h, "expire_timestamp", 0);
        int x0, x1;
        if (!jstr(h, "access_token_fingerprint")) continue;
        x0 = x_of(g, t0, t1), x1 = x_of(e, t0, t1);
        td_strbuf_printf(b, "<rect x=\"%d\" y=\"%zu\" width=\"%d\" height=\"10\" rx=\"3\" fill=\"%s\"/>", x0,
                         rows * 14, x1 - x0 > 2 ? x1 - x0 : 2,
                         json_is_true(json_object_get(h, "current")) ? "#1f8f4e"
                         : e > now                                   ? "#7fa7cf"
                                                                     : "#b9c3ce");
        rows++;
    }
    td_strbuf_printf(b, "<rect x=\"%d\" y=\"0\" width=\"2\" height=\"%zu\" fill=\"#1d2733\"/>",
                     x_of(now, t0, t1) > BAR_W - 2 ? BAR_W - 2 : x_of(now, t0, t1), rows * 14);
    td_clock_format((int64_t)t0, a);
    td_clock_format((int64_t)t1, c);
    td_strbuf_printf(b, "<text x=\"0\" y=\"%zu\">%s</text><text x=\"%d\" y=\"%zu\" text-anchor=\"end\">%s</text>",
                     rows * 14 + 16, a + 5, BAR_W, rows * 14 + 16, c + 5);
    td_strbuf_puts(b, "</svg>");
}

static void history_table(td_strbuf *b, const json_t *hist, long long now)
{
    size_t i;
    const json_t *h;

    td_strbuf_puts(b, "<table><tr><th>生成时间</th><th>过期时间</th><th>指纹</th><th>状态</th></tr>");
    json_array_foreach(hist, i, h) {
        const char *fp = jstr(h, "access_token_fingerprint");
        if (!fp) {
            td_strbuf_puts(b, "<tr><td colspan=\"4\" class=\"bad\">⚠️ 无法读取的记录: ");
            esc(b, jstr(h, "problem"));
            td_strbuf_puts(b, "</td></tr>");
            continue;
        }
        td_strbuf_puts(b, "<tr><td>");
        esc(b, jstr(h, "generated_time"));
        td_strbuf_puts(b, "</td><td>");
        esc(b, jstr(h, "expire_time"));
        td_strbuf_puts(b, "</td><td><code>");
        esc(b, fp);
        td_strbuf_puts(b, "</code></td><td>");
        td_strbuf_puts(b, json_is_true(json_object_get(h, "current")) ? "<span class=\"ok\">● 分发中</span>"
                          : jint(h, "expire_timestamp", 0) > now    ? "仍有效"
                                                                    : "<span class=\"dim\">已过期</span>");
        td_strbuf_puts(b, "</td></tr>");
    }
    td_strbuf_puts(b, "</table>");
}

static const char *event_icon(const char *kind)
{
    if (!kind) return "•";
    if (!strcmp(kind, "failure")) return "❌";
    if (!strcmp(kind, "alert")) return "🚨";
    if (!strcmp(kind, "recovered")) return "✅";
    return "💬";
}

static void events(td_strbuf *b, const json_t *evs, long long now)
{
    size_t i;
    const json_t *e;

    if (!json_array_size(evs)) {
        td_strbuf_puts(b, "<span class=\"dim\">无</span>");
        return;
    }
    td_strbuf_puts(b, "<ul>");
    json_array_foreach(evs, i, e) {
        long long first = jint(e, "first_timestamp", 0), last = jint(e, "timestamp", 0), n = jint(e, "count", 1);
        char t[TD_TIME_LEN];
        td_strbuf_printf(b, "<li>%s ", event_icon(jstr(e, "kind")));
        if (n > 1) {
            td_clock_format((int64_t)first, t);
            td_strbuf_printf(b, "%s–", t + 11);
        }
        when(b, last, now);
        if (n > 1) td_strbuf_printf(b, " <b>×%lld</b>", n);
        td_strbuf_puts(b, " ");
        esc(b, jstr(e, "text"));
        td_strbuf_puts(b, "</li>");
    }
    td_strbuf_puts(b, "</ul>");
}

static void sinks(td_strbuf *b, const json_t *arr, long long now)
{
    size_t i;
    const json_t *k;

    td_strbuf_puts(b, "<ul>");
    json_array_foreach(arr, i, k) {
        long long ok = jint(k, "last_success_timestamp", 0), bad = jint(k, "last_failure_timestamp", 0);
        long long fails = jint(k, "failures_in_a_row", 0);
        td_strbuf_puts(b, "<li>");
        esc(b, jstr(k, "label"));
        td_strbuf_puts(b, ": ");
        if (fails > 0) {
            td_strbuf_printf(b, "<span class=\"bad\">❌ 连续失败 %lld 次</span>，最近一次 ", fails);
            when(b, bad, now);
            td_strbuf_puts(b, "：");
            esc(b, jstr(k, "last_error"));
            if (ok) {
                td_strbuf_puts(b, "；上次成功 ");
                when(b, ok, now);
            }
        } else if (ok) {
            td_strbuf_puts(b, "<span class=\"ok\">✅ 已送达</span> ");
            when(b, ok, now);
        } else {
            td_strbuf_puts(b, "<span class=\"dim\">尚未分发</span>");
        }
        td_strbuf_puts(b, "</li>");
    }
    td_strbuf_puts(b, "</ul>");
}

/* The refresher's part of a card: lease, last and next refresh, sinks,
 * failures and alerts. */
static void refresh_rows(td_strbuf *b, const json_t *rf, long long now)
{
    const char *holder = jstr(rf, "lease_holder");
    int held = json_is_true(json_object_get(rf, "lease_held"));
    long long ok = jint(rf, "last_success_timestamp", 0), bad = jint(rf, "last_failure_timestamp", 0);
    long long next = jint(rf, "next_refresh_timestamp", 0), fails = jint(rf, "failures_in_a_row", 0);

    td_strbuf_puts(b, "<dt>🏷️ 刷新租约</dt><dd>");
    if (held) {
        td_strbuf_puts(b, "<span class=\"ok\">本实例持有</span>，由本实例刷新 <code>");
        esc(b, holder);
        td_strbuf_puts(b, "</code></dd>");
    } else if (holder) {
        td_strbuf_puts(b, "由 <code>");
        esc(b, holder);
        td_strbuf_puts(b, "</code> 持有并刷新；本实例待命 (刷新详情见持有租约的实例)</dd>");
    } else {
        td_strbuf_puts(b, "<span class=\"bad\">⚠️ 没有实例持有</span>：配置了凭证的实例会在 30 秒内接管</dd>");
    }
    td_strbuf_puts(b, "<dt>🔄 上次刷新</dt><dd>");
    if (!ok && !bad) td_strbuf_puts(b, "<span class=\"dim\">还没有</span>");
    else if (bad > ok) {
        td_strbuf_puts(b, "<span class=\"bad\">❌ 失败</span> ");
        when(b, bad, now);
        td_strbuf_printf(b, "，连续 %lld 次：", fails);
        esc(b, jstr(rf, "last_error"));
        if (ok) {
            td_strbuf_puts(b, "；上次成功 ");
            when(b, ok, now);
        }
    } else {
        td_strbuf_puts(b, "<span class=\"ok\">✅ 成功</span> ");
        when(b, ok, now);
    }
    td_strbuf_printf(b, " <span class=\"dim\">· 共 %lld 轮，其中强制 %lld 次</span></dd>", jint(rf, "cycles", 0),
                     jint(rf, "forced", 0));
    if (held) {
        td_strbuf_puts(b, "<dt>⏭️ 下次刷新</dt><dd>");
        if (json_is_true(json_object_get(rf, "refreshing"))) td_strbuf_puts(b, "正在刷新…");
        else if (next) when(b, next, now);
        else td_strbuf_puts(b, "<span class=\"dim\">未安排</span>");
        if (fails > 0) td_strbuf_puts(b, " <span class=\"dim\">(失败后退避重试)</span>");
        td_strbuf_puts(b, "</dd>");
    }
    if (json_array_size(json_object_get(rf, "sinks"))) {
        td_strbuf_puts(b, "<dt>📦 分发目标</dt><dd>");
        sinks(b, json_object_get(rf, "sinks"), now);
        td_strbuf_puts(b, "</dd>");
    }
    if (json_object_get(rf, "events")) {
        td_strbuf_puts(b, "<dt>🚨 失败与告警</dt><dd>");
        events(b, json_object_get(rf, "events"), now);
        td_strbuf_puts(b, "</dd>");
    }
}

/* The card's badge: the worst of what is true now. */
static void badge(td_strbuf *b, const json_t *tok, long long now)
{
    const json_t *rec = json_object_get(tok, "record"), *rf = json_object_get(tok, "refresh");
    long long left = json_is_object(rec) ? jint(rec, "expire_timestamp", 0) - now : 0;
    long long win = jint(tok, "renew_window", -1), fails = jint(rf, "failures_in_a_row", 0);
    const json_t *k;
    size_t i;
    int sink_fails = 0;

    json_array_foreach(json_object_get(rf, "sinks"), i, k) sink_fails |= jint(k, "failures_in_a_row", 0) > 0;
    if (!json_is_object(rec)) td_strbuf_puts(b, "<span class=\"badge warn\">⏳ 尚无 token</span>");
    else if (left <= 0) td_strbuf_puts(b, "<span class=\"badge bad\">⛔ 已过期</span>");
    else if (expiring(left, win)) td_strbuf_puts(b, "<span class=\"badge bad\">⏰ 即将过期</span>");
    else if (fails > 0) td_strbuf_puts(b, "<span class=\"badge bad\">❌ 刷新失败</span>");
    else if (sink_fails) td_strbuf_puts(b, "<span class=\"badge warn\">⚠️ 分发失败</span>");
    else if (win > 0 && left <= win) td_strbuf_puts(b, "<span class=\"badge warn\">🔄 换发窗口内</span>");
    else td_strbuf_puts(b, "<span class=\"badge ok\">✅ 正常</span>");
}

static void card(td_strbuf *b, const json_t *tok, long long now)
{
    const json_t *rec = json_object_get(tok, "record"), *rf = json_object_get(tok, "refresh");
    const json_t *hist = json_object_get(tok, "history");
    const char *kind = jstr(tok, "kind"), *label = jstr(tok, "provider_label");
    const char *renewal = jstr(tok, "renewal"), *from = jstr(tok, "derived_from");
    long long win = jint(tok, "renew_window", -1);
    int ticket = kind && !strcmp(kind, "jsapi_ticket");
    char sp[48];

    td_strbuf_puts(b, "<section class=\"card\"><h2>");
    td_strbuf_puts(b, ticket ? "🎫 " : "🔑 ");
    esc(b, jstr(tok, "name"));
    td_strbuf_puts(b, " <span class=\"sub\">");
    esc(b, label ? label : jstr(tok, "provider") ? jstr(tok, "provider") : "平台未知");
    td_strbuf_puts(b, ticket ? " jsapi_ticket" : " access token");
    if (win > 0) td_strbuf_printf(b, " · 换发窗口 %s", span(win, sp, sizeof sp));
    else if (renewal && !strcmp(renewal, "after_expiry")) td_strbuf_puts(b, " · 到期后换新");
    td_strbuf_puts(b, "</span>");
    badge(b, tok, now);
    td_strbuf_puts(b, "</h2>");

    if (json_is_object(rec)) {
        long long left = jint(rec, "expire_timestamp", 0) - now;
        long long life = jint(rec, "expire_timestamp", 0) - jint(rec, "generated_timestamp", 0);
        char sp2[48];
        if (left > 0)
            td_strbuf_printf(b, "<p class=\"big\">⏰ 剩余 <b>%s</b> <span class=\"dim\">/ 寿命 %s · 过期时间 ",
                             span(left, sp, sizeof sp), span(life, sp2, sizeof sp2));
        else
            td_strbuf_printf(b, "<p class=\"big bad\">⛔ 已过期 %s <span class=\"dim\">· 过期时间 ",
                             span(left, sp, sizeof sp));
        esc(b, jstr(rec, "expire_time"));
        td_strbuf_puts(b, "</span></p>");
        lifetime_bar(b, rec, tok, now);
        td_strbuf_puts(b, "<p class=\"legend\"><i class=\"l1\"></i>剩余寿命<i class=\"l2\"></i>换发窗口"
                          "<i class=\"l3\"></i>现在</p>");
    } else {
        td_strbuf_puts(b, "<p class=\"big warn\">⏳ 还没有可分发的 token</p>");
    }
    td_strbuf_puts(b, "<dl>");
    if (json_is_object(rec)) {
        const char *fp = jstr(rec, "access_token_fingerprint"), *ten = jstr(rec, "tenant_access_token_fingerprint");
        td_strbuf_puts(b, "<dt>🔏 指纹</dt><dd><code>");
        esc(b, fp);
        td_strbuf_puts(b, "</code>");
        if (ten && (!fp || strcmp(ten, fp))) { /* Feishu's internal apps: the same token twice */
            td_strbuf_puts(b, " · tenant <code>");
            esc(b, ten);
            td_strbuf_puts(b, "</code>");
        }
        td_strbuf_puts(b, " <span class=\"dim\">(生成于 ");
        esc(b, jstr(rec, "generated_time"));
        td_strbuf_puts(b, ")</span></dd>");
    }
    if (json_is_object(rf)) refresh_rows(b, rf, now);
    else if (ticket) {
        td_strbuf_puts(b, "<dt>🔄 刷新</dt><dd>随 token <code>");
        esc(b, from);
        td_strbuf_puts(b, "</code> 一起换新，并在过期前 5 分钟重新获取</dd>");
    } else {
        td_strbuf_puts(b, "<dt>🔄 刷新</dt><dd><span class=\"dim\">本服务器不刷新此 token：由生产者推送 "
                          "(POST)</span></dd>");
    }
    td_strbuf_puts(b, "</dl>");
    if (jstr(tok, "history_error")) {
        td_strbuf_puts(b, "<p class=\"bad\">⚠️ 无法读取历史记录: ");
        esc(b, jstr(tok, "history_error"));
        td_strbuf_puts(b, "</p>");
    } else if (json_array_size(hist)) {
        td_strbuf_printf(b, "<details open><summary>📜 最近 %zu 条记录</summary>", json_array_size(hist));
        timeline(b, hist, now);
        history_table(b, hist, now);
        td_strbuf_puts(b, "</details>");
    }
    td_strbuf_puts(b, "</section>");
}

static void fragment(td_strbuf *b, const json_t *facts)
{
    long long now = jint(facts, "now", 0);
    const json_t *toks = json_object_get(facts, "tokens"), *bad = json_object_get(facts, "unreadable"), *t;
    const char *store = jstr(facts, "store");
    size_t i;

    td_strbuf_puts(b, "<p class=\"note\">🕒 服务器时间 ");
    esc(b, jstr(facts, "time"));
    td_strbuf_puts(b, " · 💾 存储 ");
    if (store && !strcmp(store, "ok")) td_strbuf_puts(b, "<span class=\"ok\">正常</span>");
    else {
        td_strbuf_puts(b, "<span class=\"bad\">❌ 无法访问: ");
        esc(b, store);
        td_strbuf_puts(b, "</span>");
    }
    td_strbuf_printf(b, " · tokendist %s</p>", TD_VERSION);
    if (!json_array_size(toks))
        td_strbuf_puts(b, "<section class=\"card\"><h2>📭 还没有 token</h2><p>本服务器既没有收到推送的 token，"
                          "也没有配置要刷新的 token (FEISHU_APP_ID/FEISHU_APP_SECRET 或 TOKENDIST_TOKENS)。</p>"
                          "</section>");
    json_array_foreach(toks, i, t) card(b, t, now);
    if (jint(facts, "tokens_not_shown", 0) > 0)
        td_strbuf_printf(b, "<p class=\"note\">另有 %lld 个 token 未显示 (本页最多显示 %zu 个)。</p>",
                         jint(facts, "tokens_not_shown", 0), json_array_size(toks));
    if (jint(facts, "unreadable_records", 0) > 0) {
        td_strbuf_printf(b, "<section class=\"card\"><h2>⚠️ 存储中有 %lld 条记录无法读取 "
                            "<span class=\"sub\">已跳过，其他 token 照常分发</span></h2><ul>",
                         jint(facts, "unreadable_records", 0));
        json_array_foreach(bad, i, t) {
            td_strbuf_puts(b, "<li><code>");
            esc(b, jstr(t, "name"));
            td_strbuf_puts(b, "</code>: ");
            esc(b, jstr(t, "problem"));
            td_strbuf_puts(b, "</li>");
        }
        td_strbuf_puts(b, "</ul></section>");
    }
}

char *td_status_fragment(const json_t *facts, size_t *len)
{
    td_strbuf b;

    td_strbuf_heap(&b, TD_STATUS_MAX);
    fragment(&b, facts);
    return td_strbuf_take(&b, len);
}

char *td_status_page(const json_t *facts, int keyed, size_t *len)
{
    td_strbuf b;

    td_strbuf_heap(&b, TD_STATUS_MAX);
    td_strbuf_puts(&b, "<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">"
                       "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                       "<meta name=\"referrer\" content=\"no-referrer\">"
                       "<link rel=\"icon\" href=\"data:,\"><title>tokendist 状态</title>");
    /* Without JavaScript the page reloads itself; with it, the script
     * redraws in place (a reload would drop the typed key's form). */
    if (facts) td_strbuf_printf(&b, "<noscript><meta http-equiv=\"refresh\" content=\"%d\"></noscript>",
                                TD_STATUS_RELOAD_S);
    td_strbuf_printf(&b, "<style>%s</style></head><body data-keyed=\"%d\">", STYLE, keyed ? 1 : 0);
    td_strbuf_puts(&b, "<header><button id=\"forget\" type=\"button\" hidden>🔒 清除读取密钥</button>"
                       "<h1>🔑 tokendist 状态</h1><p id=\"live\">");
    if (facts) td_strbuf_printf(&b, "每 %d 秒自动刷新", TD_STATUS_RELOAD_S);
    td_strbuf_puts(&b, "</p></header>");
    td_strbuf_puts(&b, "<noscript><p class=\"nojs note\">");
    if (keyed)
        td_strbuf_puts(&b, "🔐 本服务器设置了读取密钥：在页面上输入密钥需要启用 JavaScript "
                           "(密钥只放在请求头里发送，不放进网址)。不用浏览器也可以查看：<code>curl -H "
                           "\"Authorization: Bearer 读取密钥\" http://服务器地址/status.json</code>");
    else
        td_strbuf_printf(&b, "ℹ️ 未启用 JavaScript：页面由服务器生成，每 %d 秒重新加载一次。", TD_STATUS_RELOAD_S);
    td_strbuf_puts(&b, "</p></noscript>");
    td_strbuf_puts(&b, "<div id=\"keybox\" hidden><form id=\"keyform\" autocomplete=\"off\">"
                       "<h2>🔐 请输入读取密钥</h2><p class=\"note\">本服务器设置了读取密钥 (TOKENDIST_READ_KEYS)。"
                       "密钥只保存在本标签页 (sessionStorage，关闭标签页即清除)，只通过请求头发送，不会出现在网址里。</p>"
                       "<input id=\"key\" type=\"password\" aria-label=\"读取密钥\" placeholder=\"读取密钥\">"
                       "<button type=\"submit\">查看状态</button><p id=\"keynote\" class=\"bad\"></p></form></div>");
    td_strbuf_puts(&b, "<main id=\"status\">");
    if (facts) fragment(&b, facts);
    td_strbuf_puts(&b, "</main><footer>🔏 本页只显示 token 的指纹 (前 5 位和后 2 位)，从不显示 token 本身。"
                       "同样的数据: <code>/status.json</code>，Prometheus: <code>/metrics</code>。</footer>");
    td_strbuf_printf(&b, "<script>%s</script></body></html>\n", SCRIPT);
    return td_strbuf_take(&b, len);
}
