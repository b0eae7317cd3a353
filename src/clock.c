/* clock -- see clock.h. */
#define _GNU_SOURCE
#include "clock.h"
#include "tokendist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef TD_TEST_HOOKS
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#endif

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
                         "'%s' 不是已知的时区: 请安装 tzdata，或写 POSIX 形式，例如 CST-8",
                         name);
                return TD_EINVAL;
            }
        }
    }
    setenv("TZ", tz, 1);
    tzset();
    return TD_OK;
}

static int64_t read_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#ifdef TD_TEST_HOOKS
#define TEST_SLICE_MS 20
#define TEST_RECHECK_MS 1

/* The test clock (clock.h): the file TOKENDIST_TEST_CLOCK_FILE names, the
 * identity of the version last read, the offset it held and when (real
 * monotonic ms) the file is next looked at. */
static struct {
    pthread_once_t once;
    pthread_mutex_t lock;
    const char *path;           /* NULL: the test clock is off */
    dev_t dev;
    ino_t ino;                  /* 0: no file (offset 0) */
    struct timespec mtime;
    int64_t offset_ms;
    int64_t next_check;
} test_clock = {.once = PTHREAD_ONCE_INIT, .lock = PTHREAD_MUTEX_INITIALIZER};

static void test_clock_init(void)
{
    const char *p = getenv("TOKENDIST_TEST_CLOCK_FILE");

    if (!p || !*p) return;
    test_clock.path = p;
    /* Straight to stderr: td_log reads this clock.  Tests look for this
     * line to know that the binary has the hook at all. */
    fprintf(stderr, "[测试时钟] 本进程的时间按 %s 中的偏移量 (毫秒) 移动：只有测试构建有此功能\n", p);
}

/* The offset from a fresh read of the file; 0 when it is missing.  A
 * file without a whole number (not written by rename) is not taken:
 * -1 and the caller keeps the old offset and reads again next time. */
static int read_offset(const char *path, int64_t *out)
{
    char buf[32], *end;
    ssize_t n;
    long long v;
    int fd;

    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        if (errno != ENOENT) return -1;
        *out = 0;
        return 0;
    }
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = '\0';
    errno = 0;
    v = strtoll(buf, &end, 10);
    if (end == buf || errno || (*end && *end != '\n')) return -1;
    *out = v;
    return 0;
}

/* The offset in force.  A stat costs microseconds on a VM, so the file is
 * looked at no more than once per TEST_RECHECK_MS; between looks a reading
 * costs a vDSO clock read and an uncontended lock. */
static int64_t test_offset_ms(void)
{
    struct stat st;
    int64_t now, off;

    pthread_once(&test_clock.once, test_clock_init);
    if (!test_clock.path) return 0;
    now = read_ms(CLOCK_MONOTONIC);
    pthread_mutex_lock(&test_clock.lock);
    if (now >= test_clock.next_check) {
        test_clock.next_check = now + TEST_RECHECK_MS;
        if (stat(test_clock.path, &st) != 0) memset(&st, 0, sizeof st);
        if ((st.st_ino != test_clock.ino || st.st_dev != test_clock.dev ||
             st.st_mtim.tv_sec != test_clock.mtime.tv_sec ||
             st.st_mtim.tv_nsec != test_clock.mtime.tv_nsec) &&
            read_offset(test_clock.path, &test_clock.offset_ms) == 0) {
            test_clock.dev = st.st_dev, test_clock.ino = st.st_ino;
            test_clock.mtime = st.st_mtim;
        }
    }
    off = test_clock.offset_ms;
    pthread_mutex_unlock(&test_clock.lock);
    return off;
}
#endif

int64_t td_clock_now(void)
{
#ifdef TD_TEST_HOOKS
    int64_t off = test_offset_ms();
    if (off) return (read_ms(CLOCK_REALTIME) + off) / 1000;
#endif
    return (int64_t)time(NULL);
}

int64_t td_clock_now_ms(void)
{
#ifdef TD_TEST_HOOKS
    return read_ms(CLOCK_REALTIME) + test_offset_ms();
#else
    return read_ms(CLOCK_REALTIME);
#endif
}

int64_t td_clock_mono_ms(void)
{
#ifdef TD_TEST_HOOKS
    return read_ms(CLOCK_MONOTONIC) + test_offset_ms();
#else
    return read_ms(CLOCK_MONOTONIC);
#endif
}

void td_clock_mono_deadline(int64_t due_ms, struct timespec *ts)
{
    int64_t at = due_ms;

#ifdef TD_TEST_HOOKS
    int64_t off = test_offset_ms();
    if (test_clock.path) { /* set before test_offset_ms returned, never changed */
        int64_t cap = read_ms(CLOCK_MONOTONIC) + TEST_SLICE_MS;
        at = due_ms - off < cap ? due_ms - off : cap;
    }
#endif
    if (at < 0) at = 0;
    ts->tv_sec = (time_t)(at / 1000);
    ts->tv_nsec = (long)(at % 1000) * 1000000L;
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
