/* libFuzzer: the env-file parser (operators' files, systemd EnvironmentFile). */
#include "config.h"
#include "tokendist.h"

#include <stdint.h>
#include <string.h>

static int sink(void *ud, int lineno, const char *key, const char *val)
{
    (void)ud;
    if (lineno < 1) __builtin_trap();
    if (!*key || strlen(val) > 4095) __builtin_trap();
    return TD_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    (void)td_config_parse_envfile((const char *)data, size, sink, NULL, err, sizeof err);
    return 0;
}
