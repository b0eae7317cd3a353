/* clock -- see clock.h. */
#define _GNU_SOURCE
#include "clock.h"
#include "tokendist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Fixed-offset stand-ins (POSIX TZ syntax: the sign is inverted) for the
 * zones our users name, so a machine without tzdata still prints their
 * local time instead of silently printing UTC. */
static const struct { const char *iana, *posix; } fallback_zones[] = {
    {"Asia/Shanghai", "CST-8"}, {"Asia/Chongqing", "CST-8"},
    {"Asia/Hong_Kong", "HKT-8"}, {"Asia/Taipei", "CST-8"},
    {"Asia/Singapore", "SGT-8"}, {"Asia/Tokyo", "JST-9"},
    {"UTC", "UTC0"}, {"Etc/UTC", "UTC0"},
};

int td_clock_set_zone(const char *name, char *err, size_t errlen)
{
    char path[512];
    const char *tz = name;

    if (!name || !*name) name = tz = "Asia/Shanghai";
    if (strchr(name, '/') || !strcmp(name, "UTC")) {
        snprintf(path, sizeof path, "/usr/share/zoneinfo/%s", name);
        if (strstr(name, "..") || access(path, R_OK) != 0) {
            tz = NULL;
            for (size_t i = 0; i < sizeof fallback_zones / sizeof *fallback_zones; i++)
                if (!strcmp(fallback_zones[i].iana, name)) tz = fallback_zones[i].posix;
            if (!tz) {
                snprintf(err, errlen,
                         "unknown time zone '%s': install tzdata or use a POSIX TZ such as CST-8",
                         name);
                return TD_EINVAL;
            }
        }
    }
    setenv("TZ", tz, 1);
    tzset();
    return TD_OK;
}

int64_t td_clock_now(void) { return (int64_t)time(NULL); }

int64_t td_clock_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t td_clock_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *td_clock_format(int64_t ts, char buf[TD_TIME_LEN])
{
    time_t t = (time_t)ts;
    struct tm tm;

    if (!localtime_r(&t, &tm) || strftime(buf, TD_TIME_LEN, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(buf, TD_TIME_LEN, "%lld", (long long)ts);
    return buf;
}

int td_clock_parse(const char *s, int64_t *out)
{
    struct tm tm;
    const char *end;
    char *e;
    long long v;

    if (!s || !*s) return TD_EINVAL;
    v = strtoll(s, &e, 10);
    if (*e == '\0' && e - s >= 9) { /* plain Unix seconds */
        *out = v;
        return TD_OK;
    }
    memset(&tm, 0, sizeof tm);
    if (!(end = strptime(s, "%Y-%m-%d", &tm))) return TD_EINVAL;
    if (*end == ' ' || *end == 'T') {
        if (!(end = strptime(end + 1, "%H:%M:%S", &tm))) return TD_EINVAL;
    }
    if (*end != '\0') return TD_EINVAL;
    tm.tm_isdst = -1;
    *out = (int64_t)mktime(&tm);
    return TD_OK;
}
