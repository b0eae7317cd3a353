/*
 * cmd_keygen -- `tokendist keygen`: print a new share key for
 * TOKENDIST_SHARE_KEY (seal.h), the one that seals the Gitee copy.
 *
 * The key goes to stdout only, for `KEY=$(tokendist keygen)` or a redirect
 * into the env-file; nothing else is printed on success.
 */
#include "cmd.h"
#include "seal.h"
#include "tokendist.h"

#include <stdio.h>
#include <string.h>

int td_cmd_keygen(int argc, char **argv)
{
    char key[TD_SEAL_KEY_B64], err[256];
    td_config c;
    int ex = td_cmd_config(&c, TD_CMD_KEYGEN, argc, argv);  /* --help, or a stray word refused */

    td_config_free(&c);
    if (ex >= 0) return ex;
    if (td_seal_keygen(key, err, sizeof err) != TD_OK) {
        fprintf(stderr, "tokendist keygen: %s\n", err);
        return TD_EXIT_FAIL;
    }
    printf("%s\n", key);
    ex = fflush(stdout) == 0 ? TD_EXIT_OK : TD_EXIT_FAIL;
    memset(key, 0, sizeof key);
    return ex;
}
