/* Unit tests for the client's cache file write (td__client_write_cache):
 * every path closes its descriptor exactly once and leaves no temporary
 * file behind.
 *
 * This executable defines close() and fsync() itself, so the library's
 * calls come here (the static tdcore resolves them to these): they pass
 * through to the system calls, except for the descriptor a test arms,
 * whose close() then fails the way Linux's does on a failed write-back
 * (EIO, yet the descriptor is released) and whose fsync() can fail.  A
 * second close() of that number is the bug this file exists for: in a
 * threaded program the number may already belong to someone else's file
 * or socket. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "client.h"
#include "tokendist.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int armed_fd = -1;      /* the descriptor the test watches */
static int fail_close, fail_fsync;
static int closes;              /* close() calls on armed_fd */

int close(int fd)
{
    long rc;
    if (fd != armed_fd) return (int)syscall(SYS_close, fd);
    closes++;
    rc = syscall(SYS_close, fd);
    if (fail_close && rc == 0) {
        errno = EIO;
        return -1;
    }
    return (int)rc;
}

int fsync(int fd)
{
    if (fd == armed_fd && fail_fsync) {
        errno = EIO;
        return -1;
    }
    return (int)syscall(SYS_fsync, fd);
}

/* The number the next open() gets: the lowest free one. */
static int next_fd(void)
{
    int fd = dup(0);
    syscall(SYS_close, fd);
    return fd;
}

static char dir[] = "/tmp/td-cache-test-XXXXXX";

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

/* Entries of the test folder, to see that no temporary is left. */
static int entries(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void arm(int close_fails, int fsync_fails)
{
    armed_fd = next_fd();
    fail_close = close_fails, fail_fsync = fsync_fails;
    closes = 0;
}

static void disarm(void) { armed_fd = -1; }

static void writes_and_closes_once(void **state)
{
    char path[256], buf[64] = "", why[256];
    struct stat st;
    FILE *f;
    (void)state;

    snprintf(path, sizeof path, "%s/ok.json", dir);
    arm(0, 0);
    assert_int_equal(td__client_write_cache(path, "{\"a\":1}", 7, why, sizeof why), TD_OK);
    disarm();
    assert_int_equal(closes, 1);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_non_null(f = fopen(path, "r"));
    assert_non_null(fgets(buf, sizeof buf, f));
    fclose(f);
    assert_string_equal(buf, "{\"a\":1}");
    assert_int_equal(entries(), 1);
    unlink(path);
}

/* close() fails (NFS reporting a lost write-back): an error, the
 * descriptor closed once, the old cache untouched, no temporary left. */
static void failing_close_closes_once(void **state)
{
    char path[256], why[256];
    (void)state;

    snprintf(path, sizeof path, "%s/close.json", dir);
    arm(1, 0);
    assert_int_equal(td__client_write_cache(path, "{\"a\":1}", 7, why, sizeof why), TD_EIO);
    disarm();
    assert_int_equal(closes, 1);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(entries(), 0);
}

static void failing_fsync_closes_once(void **state)
{
    char path[256], why[256];
    (void)state;

    snprintf(path, sizeof path, "%s/fsync.json", dir);
    arm(0, 1);
    assert_int_equal(td__client_write_cache(path, "{\"a\":1}", 7, why, sizeof why), TD_EIO);
    disarm();
    assert_int_equal(closes, 1);
    assert_int_equal(entries(), 0);
}

/* No descriptor is opened for a path that cannot get a temporary name,
 * nor in a folder that cannot be made (a file stands where it would go);
 * each failure says why. */
static void no_descriptor_when_nothing_can_be_written(void **state)
{
    static char longpath[5000];
    char path[256], why[256];
    int before = next_fd();
    FILE *f;
    (void)state;

    memset(longpath, 'a', sizeof longpath - 1);
    assert_int_equal(td__client_write_cache(longpath, "{}", 2, why, sizeof why), TD_ETOOBIG);
    assert_non_null(strstr(why, "路径太长"));
    snprintf(path, sizeof path, "%s/plain-file", dir);
    assert_non_null(f = fopen(path, "w"));
    fclose(f);
    snprintf(path, sizeof path, "%s/plain-file/sub/folder.json", dir);
    assert_int_equal(td__client_write_cache(path, "{}", 2, why, sizeof why), TD_EIO);
    assert_non_null(strstr(why, "无法创建文件夹"));
    assert_non_null(strstr(why, "plain-file"));
    assert_int_equal(next_fd(), before);
    snprintf(path, sizeof path, "%s/plain-file", dir);
    unlink(path);
}

/* Missing folders are made, 0700 each (the file holds a token), as the
 * Node and Python clients do. */
static void missing_folders_are_made_private(void **state)
{
    char path[256], why[256];
    struct stat st;
    (void)state;

    snprintf(path, sizeof path, "%s/new/deeper//cache.json", dir);
    assert_int_equal(td__client_write_cache(path, "{}", 2, why, sizeof why), TD_OK);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    snprintf(path, sizeof path, "%s/new", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(path, sizeof path, "%s/new/deeper", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(path, sizeof path, "rm -rf %s/new", dir);
    assert_int_equal(system(path), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(writes_and_closes_once),
        cmocka_unit_test(failing_close_closes_once),
        cmocka_unit_test(failing_fsync_closes_once),
        cmocka_unit_test(no_descriptor_when_nothing_can_be_written),
        cmocka_unit_test(missing_folders_are_made_private),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
